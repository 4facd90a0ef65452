package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Names of the files in a CA or identity directory.
const (
	fileCACert   = "ca.crt"
	fileCAKey    = "ca.key"
	fileNodeCert = "node.crt"
	fileNodeKey  = "node.key"
)

// File modes: certificates are public, keys are readable by the owner only,
// and a directory made by SaveCA or SaveIdentity is private to the owner.
const (
	certFileMode fs.FileMode = 0o644
	keyFileMode  fs.FileMode = 0o600
	dirMode      fs.FileMode = 0o700
)

// ErrNotFound is returned (wrapped; test with errors.Is) by LoadCA and
// LoadIdentity when a file they need does not exist, for example because the
// node has not been given its identity yet.
var ErrNotFound = errors.New("not found")

// SaveCA writes ca to dir as ca.crt (mode 0644) and ca.key (mode 0600),
// making dir with mode 0700 if it does not exist. Each file is replaced
// atomically (written to a temporary file in dir, synced, then renamed), so
// a crash leaves either the old or the new content of each file.
//
// SaveCA is safe to call concurrently for different directories; concurrent
// saves to the same directory must be serialised by the caller.
func SaveCA(dir string, ca *CA) error {
	if err := saveCA(dir, ca); err != nil {
		return fmt.Errorf("save CA to %s: %w", dir, err)
	}
	return nil
}

func saveCA(dir string, ca *CA) error {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return errors.New("CA is incomplete (needs Cert and Key)")
	}
	keyDER, err := marshalKey(ca.Key)
	if err != nil {
		return err
	}
	certPEM := ca.CertPEM
	if len(certPEM) == 0 {
		certPEM = encodeCert(ca.Cert.Raw)
	}
	keyPEM := pemEncodeKey(keyDER)
	// Refuse to write a pair that LoadCA would reject.
	if _, err := newCA(certPEM, keyPEM); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, fileCAKey, keyPEM, keyFileMode); err != nil {
		return err
	}
	return writeFileAtomic(dir, fileCACert, certPEM, certFileMode)
}

// LoadCA reads a CA saved by SaveCA from dir and checks that ca.crt is a CA
// certificate and that ca.key is its key. If either file does not exist the
// error wraps ErrNotFound.
//
// LoadCA is safe for concurrent use.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := readFile(dir, fileCACert)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	keyPEM, err := readFile(dir, fileCAKey)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	ca, err := newCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	return ca, nil
}

// SaveIdentity writes id to dir as ca.crt (the cluster CA certificate, mode
// 0644), node.key (mode 0600) and node.crt (mode 0644), making dir with mode
// 0700 if it does not exist. The CA's private key is never written here.
// Each file is replaced atomically (written to a temporary file in dir,
// synced, then renamed); node.crt is written last. The three files together
// are not replaced atomically, but LoadIdentity detects a mixed set.
//
// SaveIdentity refuses an identity that LoadIdentity would reject. It is
// safe to call concurrently for different directories; concurrent saves to
// the same directory must be serialised by the caller.
func SaveIdentity(dir string, id *Identity) error {
	if err := saveIdentity(dir, id); err != nil {
		return fmt.Errorf("save identity to %s: %w", dir, err)
	}
	return nil
}

func saveIdentity(dir string, id *Identity) error {
	if id == nil {
		return errors.New("identity is nil")
	}
	if len(id.CACertPEM) == 0 || len(id.CertPEM) == 0 || len(id.KeyPEM) == 0 {
		return errors.New("identity is incomplete (needs CACertPEM, CertPEM and KeyPEM)")
	}
	if _, err := newIdentity(id.CACertPEM, id.CertPEM, id.KeyPEM); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, fileCACert, id.CACertPEM, certFileMode); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, fileNodeKey, id.KeyPEM, keyFileMode); err != nil {
		return err
	}
	return writeFileAtomic(dir, fileNodeCert, id.CertPEM, certFileMode)
}

// LoadIdentity reads an identity saved by SaveIdentity from dir. It checks
// that node.crt chains to ca.crt, is usable for TLS server and client
// authentication, names a valid node, and matches node.key. It does not
// reject an expired certificate (TLS handshakes do); see Identity.Cert's
// NotAfter. If any of the three files does not exist the error wraps
// ErrNotFound.
//
// LoadIdentity is safe for concurrent use.
func LoadIdentity(dir string) (*Identity, error) {
	var data [3][]byte
	for i, name := range []string{fileCACert, fileNodeCert, fileNodeKey} {
		b, err := readFile(dir, name)
		if err != nil {
			return nil, fmt.Errorf("load identity from %s: %w", dir, err)
		}
		data[i] = b
	}
	id, err := newIdentity(data[0], data[1], data[2])
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	return id, nil
}

// Exists reports whether dir holds all three identity files (ca.crt,
// node.crt and node.key) as regular files. It does not check their content;
// LoadIdentity does. It is safe for concurrent use.
func Exists(dir string) bool {
	for _, name := range []string{fileCACert, fileNodeCert, fileNodeKey} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// readFile reads dir/name; a missing file gives an error wrapping both
// ErrNotFound and the underlying fs.ErrNotExist.
func readFile(dir, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w: %w", name, ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// writeFileAtomic replaces dir/name with data and the given mode: it writes
// a temporary file in dir, syncs it, renames it over dir/name and syncs dir.
func writeFileAtomic(dir, name string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
			err = fmt.Errorf("write %s: %w", name, err)
		}
	}()
	// CreateTemp makes the file 0600, so a key is never readable by others,
	// even for a moment; Chmod is not subject to the umask.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
