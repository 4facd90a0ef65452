package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const year = 365 * 24 * time.Hour

var loopback = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}

func mustCA(t *testing.T, name string, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(name, now)
	if err != nil {
		t.Fatalf("NewCA(%q): %v", name, err)
	}
	return ca
}

func mustIssue(t *testing.T, ca *CA, name string, now time.Time) *Identity {
	t.Helper()
	id, err := ca.Issue(name, loopback, now)
	if err != nil {
		t.Fatalf("Issue(%q): %v", name, err)
	}
	return id
}

func TestNewCA(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ca := mustCA(t, "prod-1", now)
	c := ca.Cert
	if got, want := c.Subject.CommonName, "hapair cluster prod-1 CA"; got != want {
		t.Errorf("CN = %q, want %q", got, want)
	}
	if !c.IsCA || !c.BasicConstraintsValid || !c.MaxPathLenZero || c.MaxPathLen != 0 {
		t.Errorf("basic constraints: IsCA=%v valid=%v MaxPathLen=%d MaxPathLenZero=%v",
			c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
		t.Errorf("KeyUsage = %v, want %v", c.KeyUsage, want)
	}
	if !c.NotBefore.Equal(now.Add(-time.Hour)) || !c.NotAfter.Equal(now.Add(10*year)) {
		t.Errorf("validity %s .. %s, want now-1h .. now+10y", c.NotBefore, c.NotAfter)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() != 128 {
		t.Errorf("serial %v: %d bits, want a positive 128-bit number", c.SerialNumber, c.SerialNumber.BitLen())
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if !publicKeysEqual(c.PublicKey, ca.Key.Public()) {
		t.Error("Key does not match Cert")
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if parsed, err := parseOneCert(ca.CertPEM); err != nil || !parsed.Equal(c) {
		t.Errorf("CertPEM does not hold Cert (err %v)", err)
	}
	other := mustCA(t, "prod-1", now)
	if other.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Error("two CAs got the same serial number")
	}
	if publicKeysEqual(other.Cert.PublicKey, c.PublicKey) {
		t.Error("two CAs got the same key")
	}
}

func TestNameValidation(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // substring of the error; "" means valid
	}{
		{name: "simple", input: "node-a"},
		{name: "digits only", input: "0"},
		{name: "max length", input: strings.Repeat("a", 63)},
		{name: "empty", input: "", wantErr: "empty"},
		{name: "too long", input: strings.Repeat("a", 64), wantErr: "at most 63"},
		{name: "upper case", input: "Node-a", wantErr: "only a-z, 0-9 and '-'"},
		{name: "underscore", input: "node_a", wantErr: "only a-z, 0-9 and '-'"},
		{name: "dot", input: "node.a", wantErr: "only a-z, 0-9 and '-'"},
		{name: "space", input: "node a", wantErr: "only a-z, 0-9 and '-'"},
		{name: "non-ascii", input: "nöde", wantErr: "only a-z, 0-9 and '-'"},
		{name: "leading hyphen", input: "-node", wantErr: "start or end"},
		{name: "trailing hyphen", input: "node-", wantErr: "start or end"},
	}
	ca := mustCA(t, "test", time.Now())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ca.Issue(tt.input, nil, time.Now())
			_, caErr := NewCA(tt.input, time.Now())
			if tt.wantErr == "" {
				if err != nil || caErr != nil {
					t.Fatalf("Issue(%q) err %v, NewCA err %v; want both valid", tt.input, err, caErr)
				}
				if id.NodeName != tt.input {
					t.Errorf("NodeName = %q, want %q", id.NodeName, tt.input)
				}
				return
			}
			for what, err := range map[string]error{"Issue": err, "NewCA": caErr} {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s(%q) err = %v, want one containing %q", what, tt.input, err, tt.wantErr)
				}
			}
		})
	}
}

func TestIssue(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ca := mustCA(t, "test", now)
	id := mustIssue(t, ca, "node-a", now)
	c := id.Cert
	if id.NodeName != "node-a" || c.Subject.CommonName != "node-a" {
		t.Errorf("NodeName %q, CN %q, want node-a", id.NodeName, c.Subject.CommonName)
	}
	if len(c.DNSNames) != 1 || c.DNSNames[0] != "node-a" {
		t.Errorf("DNSNames = %q, want [node-a]", c.DNSNames)
	}
	if len(c.IPAddresses) != len(loopback) {
		t.Fatalf("IPAddresses = %v, want %v", c.IPAddresses, loopback)
	}
	for i, ip := range loopback {
		if !c.IPAddresses[i].Equal(ip) {
			t.Errorf("IPAddresses[%d] = %v, want %v", i, c.IPAddresses[i], ip)
		}
	}
	if c.IsCA {
		t.Error("leaf is a CA")
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want DigitalSignature", c.KeyUsage)
	}
	if !hasExtKeyUsage(c, x509.ExtKeyUsageServerAuth) || !hasExtKeyUsage(c, x509.ExtKeyUsageClientAuth) || len(c.ExtKeyUsage) != 2 {
		t.Errorf("ExtKeyUsage = %v, want ServerAuth and ClientAuth", c.ExtKeyUsage)
	}
	if !c.NotBefore.Equal(now.Add(-time.Hour)) || !c.NotAfter.Equal(now.Add(5*year)) {
		t.Errorf("validity %s .. %s, want now-1h .. now+5y", c.NotBefore, c.NotAfter)
	}
	if c.SerialNumber.BitLen() != 128 {
		t.Errorf("serial has %d bits, want 128", c.SerialNumber.BitLen())
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if publicKeysEqual(c.PublicKey, ca.Cert.PublicKey) {
		t.Error("leaf reuses the CA key")
	}
	if _, err := c.Verify(x509.VerifyOptions{
		Roots:     id.Roots,
		DNSName:   "node-a",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}); err != nil {
		t.Errorf("leaf does not verify against Roots: %v", err)
	}
	if !bytes.Equal(id.CACertPEM, ca.CertPEM) {
		t.Error("CACertPEM is not the CA's certificate")
	}
	if id.TLS.Leaf == nil || !id.TLS.Leaf.Equal(c) {
		t.Error("TLS.Leaf is not Cert")
	}
	other := mustIssue(t, ca, "node-a", now)
	if publicKeysEqual(other.Cert.PublicKey, c.PublicKey) {
		t.Error("two identities got the same key")
	}
}

func TestIssueNotAfterCappedByCA(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "test", now.Add(-8*year)) // expires in about 2 years
	id := mustIssue(t, ca, "node-a", now)
	if !id.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("leaf NotAfter %s, want the CA's %s", id.Cert.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := ca.Issue("node-a", nil, now.Add(3*year)); err == nil {
		t.Error("Issue after the CA expired succeeded, want an error")
	}
}

func TestIssueConcurrent(t *testing.T) {
	ca := mustCA(t, "test", time.Now())
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	serials := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := ca.Issue("node-a", nil, time.Now())
			errs[i] = err
			if err == nil {
				serials[i] = id.Cert.SerialNumber.String()
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Issue %d: %v", i, err)
		}
		if seen[serials[i]] {
			t.Errorf("duplicate serial %s", serials[i])
		}
		seen[serials[i]] = true
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %#o, want %#o", filepath.Base(path), got, want)
	}
}

// checkOnlyFiles fails if dir holds anything but the wanted files (so no
// temporary files are left behind).
func checkOnlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

func TestSaveLoadCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "ca")
	ca := mustCA(t, "test", time.Now())
	if err := SaveCA(dir, ca); err != nil {
		t.Fatal(err)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, filepath.Join(dir, "ca.crt"), 0o644)
	checkMode(t, filepath.Join(dir, "ca.key"), 0o600)
	checkOnlyFiles(t, dir, "ca.crt", "ca.key")

	got, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.Equal(ca.Cert) || !bytes.Equal(got.CertPEM, ca.CertPEM) {
		t.Error("loaded certificate differs from the saved one")
	}
	if !publicKeysEqual(got.Key.Public(), ca.Key.Public()) {
		t.Error("loaded key differs from the saved one")
	}
	// The loaded CA can issue identities that the original CA's roots trust.
	id := mustIssue(t, got, "node-a", time.Now())
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := id.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("certificate issued by the loaded CA does not verify: %v", err)
	}
}

func TestSaveLoadIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	ca := mustCA(t, "test", time.Now())
	id := mustIssue(t, ca, "node-a", time.Now())
	if Exists(dir) {
		t.Fatal("Exists before save")
	}
	if err := SaveIdentity(dir, id); err != nil {
		t.Fatal(err)
	}
	if !Exists(dir) {
		t.Fatal("not Exists after save")
	}
	checkMode(t, dir, 0o700)
	checkMode(t, filepath.Join(dir, "ca.crt"), 0o644)
	checkMode(t, filepath.Join(dir, "node.crt"), 0o644)
	checkMode(t, filepath.Join(dir, "node.key"), 0o600)
	checkOnlyFiles(t, dir, "ca.crt", "node.crt", "node.key") // no ca.key, no temp files

	got, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeName != "node-a" || !got.Cert.Equal(id.Cert) {
		t.Errorf("loaded %q %v, want node-a and the saved certificate", got.NodeName, got.Cert.Subject)
	}
	for _, f := range []struct {
		name      string
		got, want []byte
	}{
		{"CertPEM", got.CertPEM, id.CertPEM},
		{"KeyPEM", got.KeyPEM, id.KeyPEM},
		{"CACertPEM", got.CACertPEM, id.CACertPEM},
	} {
		if !bytes.Equal(f.got, f.want) {
			t.Errorf("loaded %s differs from the saved one", f.name)
		}
	}
	if got.TLS.Leaf == nil || !got.TLS.Leaf.Equal(id.Cert) || got.TLS.PrivateKey == nil {
		t.Error("loaded TLS certificate is incomplete")
	}
	if _, err := got.Cert.Verify(x509.VerifyOptions{Roots: got.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("loaded certificate does not verify against loaded Roots: %v", err)
	}

	// Saving again replaces the identity.
	id2 := mustIssue(t, ca, "node-b", time.Now())
	if err := SaveIdentity(dir, id2); err != nil {
		t.Fatal(err)
	}
	got, err = LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeName != "node-b" || !got.Cert.Equal(id2.Cert) {
		t.Errorf("after overwrite loaded %q, want node-b", got.NodeName)
	}
	checkOnlyFiles(t, dir, "ca.crt", "node.crt", "node.key")
	checkMode(t, filepath.Join(dir, "node.key"), 0o600)
}

func TestLoadNotFound(t *testing.T) {
	ca := mustCA(t, "test", time.Now())
	id := mustIssue(t, ca, "node-a", time.Now())
	tests := []struct {
		name   string
		setup  func(t *testing.T) string // returns the directory
		loadCA bool
	}{
		{name: "identity dir missing", setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }},
		{name: "identity dir empty", setup: func(t *testing.T) string { return t.TempDir() }},
		{name: "missing ca.crt", setup: savedIdentityWithout(id, "ca.crt")},
		{name: "missing node.crt", setup: savedIdentityWithout(id, "node.crt")},
		{name: "missing node.key", setup: savedIdentityWithout(id, "node.key")},
		{name: "CA dir missing", loadCA: true, setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }},
		{name: "CA dir empty", loadCA: true, setup: func(t *testing.T) string { return t.TempDir() }},
		{name: "missing ca.key", loadCA: true, setup: savedCAWithout(ca, "ca.key")},
		{name: "missing CA ca.crt", loadCA: true, setup: savedCAWithout(ca, "ca.crt")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			var err error
			prefix := "load identity from " + dir + ": "
			if tt.loadCA {
				_, err = LoadCA(dir)
				prefix = "load CA from " + dir + ": "
			} else {
				_, err = LoadIdentity(dir)
				if Exists(dir) {
					t.Error("Exists with a file missing")
				}
			}
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("err = %v, want it to wrap fs.ErrNotExist too", err)
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("err = %q, want prefix %q", err, prefix)
			}
		})
	}
}

func savedIdentityWithout(id *Identity, file string) func(t *testing.T) string {
	return func(t *testing.T) string {
		dir := t.TempDir()
		if err := SaveIdentity(dir, id); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
}

func savedCAWithout(ca *CA, file string) func(t *testing.T) string {
	return func(t *testing.T) string {
		dir := t.TempDir()
		if err := SaveCA(dir, ca); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
}

func TestLoadIdentityRejectsInconsistentFiles(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "test", now)
	idA := mustIssue(t, ca, "node-a", now)
	idB := mustIssue(t, ca, "node-b", now)
	otherCA := mustCA(t, "other", now)
	idOther := mustIssue(t, otherCA, "node-a", now)

	tests := []struct {
		name    string
		files   map[string][]byte // overwrite these after saving idA
		wantErr string
	}{
		{name: "key of another node", files: map[string][]byte{"node.key": idB.KeyPEM}, wantErr: "node.key does not match node.crt"},
		{name: "certificate and key from another CA", files: map[string][]byte{"node.crt": idOther.CertPEM, "node.key": idOther.KeyPEM}, wantErr: "node.crt does not chain to ca.crt"},
		{name: "ca.crt of another CA", files: map[string][]byte{"ca.crt": otherCA.CertPEM}, wantErr: "node.crt does not chain to ca.crt"},
		{name: "ca.crt is a leaf", files: map[string][]byte{"ca.crt": idA.CertPEM}, wantErr: "not a CA certificate"},
		{name: "two certificates in ca.crt", files: map[string][]byte{"ca.crt": append(bytes.Clone(ca.CertPEM), otherCA.CertPEM...)}, wantErr: "want exactly one"},
		{name: "node.crt not PEM", files: map[string][]byte{"node.crt": []byte("garbage")}, wantErr: "node.crt: no PEM data"},
		{name: "node.key empty", files: map[string][]byte{"node.key": nil}, wantErr: "node.key: no PEM data"},
		{name: "node.key holds a certificate", files: map[string][]byte{"node.key": idA.CertPEM}, wantErr: `want "PRIVATE KEY"`},
		{name: "CA key in node.key", files: map[string][]byte{"node.key": mustCAKeyPEM(t, ca)}, wantErr: "node.key does not match node.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveIdentity(dir, idA); err != nil {
				t.Fatal(err)
			}
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadIdentity(dir)
			if err == nil {
				t.Fatal("LoadIdentity succeeded, want an error")
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v is ErrNotFound, want a different error", err)
			}
			if !strings.HasPrefix(err.Error(), "load identity from "+dir+": ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want it to start with %q and contain %q", err, "load identity from "+dir, tt.wantErr)
			}
			// SaveIdentity refuses the same inconsistent set.
			bad := &Identity{CACertPEM: idA.CACertPEM, CertPEM: idA.CertPEM, KeyPEM: idA.KeyPEM}
			for name, data := range tt.files {
				switch name {
				case "ca.crt":
					bad.CACertPEM = data
				case "node.crt":
					bad.CertPEM = data
				case "node.key":
					bad.KeyPEM = data
				}
			}
			saveDir := filepath.Join(t.TempDir(), "save")
			if err := SaveIdentity(saveDir, bad); err == nil {
				t.Error("SaveIdentity of the inconsistent set succeeded, want an error")
			}
			if _, err := os.Stat(saveDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("failed SaveIdentity left %s behind (stat err %v)", saveDir, err)
			}
		})
	}
}

func mustCAKeyPEM(t *testing.T, ca *CA) []byte {
	t.Helper()
	der, err := marshalKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pemEncodeKey(der)
}

func TestLoadCARejectsInconsistentFiles(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "test", now)
	otherCA := mustCA(t, "other", now)
	id := mustIssue(t, ca, "node-a", now)
	tests := []struct {
		name    string
		files   map[string][]byte
		wantErr string
	}{
		{name: "key of another CA", files: map[string][]byte{"ca.key": mustCAKeyPEM(t, otherCA)}, wantErr: "ca.key does not match ca.crt"},
		{name: "leaf certificate and key", files: map[string][]byte{"ca.crt": id.CertPEM, "ca.key": id.KeyPEM}, wantErr: "not a CA certificate"},
		{name: "ca.key not PEM", files: map[string][]byte{"ca.key": []byte("garbage")}, wantErr: "ca.key: no PEM data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveCA(dir, ca); err != nil {
				t.Fatal(err)
			}
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadCA(dir)
			if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q (not ErrNotFound)", err, tt.wantErr)
			}
		})
	}
	mismatched := &CA{Cert: ca.Cert, Key: otherCA.Key, CertPEM: ca.CertPEM}
	if err := SaveCA(t.TempDir(), mismatched); err == nil {
		t.Error("SaveCA of a mismatched CA succeeded, want an error")
	}
}

func TestLoadIdentityAcceptsExpired(t *testing.T) {
	// An expired identity can still be loaded to be inspected or replaced;
	// the TLS handshake (TestHandshake) rejects it.
	now := time.Now()
	ca := mustCA(t, "test", now)
	expired := mustIssue(t, ca, "node-a", now.Add(-6*year))
	dir := t.TempDir()
	if err := SaveIdentity(dir, expired); err != nil {
		t.Fatal(err)
	}
	got, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cert.NotAfter.Before(now) {
		t.Errorf("NotAfter %s, want it in the past", got.Cert.NotAfter)
	}
}

func TestPeerNameUnverified(t *testing.T) {
	ca := mustCA(t, "test", time.Now())
	id := mustIssue(t, ca, "node-a", time.Now())
	tests := []struct {
		name string
		cs   tls.ConnectionState
	}{
		{name: "zero state", cs: tls.ConnectionState{}},
		{name: "peer certificates but no verified chain", cs: tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{id.Cert}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if name, err := PeerName(tt.cs); err == nil {
				t.Errorf("PeerName = %q, want an error", name)
			}
		})
	}
}

func TestTLSConfigs(t *testing.T) {
	ca := mustCA(t, "test", time.Now())
	id := mustIssue(t, ca, "node-a", time.Now())
	s := ServerTLS(id)
	if s.MinVersion != tls.VersionTLS13 || s.ClientAuth != tls.RequireAndVerifyClientCert || s.ClientCAs != id.Roots || len(s.Certificates) != 1 {
		t.Errorf("ServerTLS = %+v", s)
	}
	c := ClientTLS(id, "node-b")
	if c.MinVersion != tls.VersionTLS13 || c.RootCAs != id.Roots || c.ServerName != "node-b" || len(c.Certificates) != 1 || c.InsecureSkipVerify {
		t.Errorf("ClientTLS = %+v", c)
	}
	if ServerTLS(id) == s || ClientTLS(id, "node-b") == c {
		t.Error("configs are shared between calls")
	}
}

// handshakeResult is the outcome of one TLS connection, on both sides.
type handshakeResult struct {
	serverErr, clientErr     error
	serverState, clientState tls.ConnectionState
}

// handshake runs one TLS connection over loopback TCP. The server, once its
// handshake succeeds, writes one byte; the client reads it. With TLS 1.3 a
// client learns that the server rejected its certificate only then. Every
// goroutine has finished when handshake returns.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()

	var res handshakeResult
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close() // runs before wg.Wait, in case Accept is still blocked
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			res.serverErr = err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		tc := tls.Server(conn, serverCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			res.serverErr = err
			return
		}
		res.serverState = tc.ConnectionState()
		if _, err := tc.Write([]byte{1}); err != nil {
			res.serverErr = err
			return
		}
		// Wait for the client to close, so it can read the byte.
		_, _ = io.Copy(io.Discard, tc)
	}()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		res.clientErr = err
		return res
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	tc := tls.Client(conn, clientCfg)
	err = tc.HandshakeContext(ctx)
	if err == nil {
		var b [1]byte
		_, err = io.ReadFull(tc, b[:])
	}
	res.clientErr = err
	res.clientState = tc.ConnectionState()
	_ = tc.Close()
	wg.Wait() // res.server* are written by the goroutine
	return res
}

func wantCertInvalid(reason x509.InvalidReason) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var e x509.CertificateInvalidError
		if !errors.As(err, &e) || e.Reason != reason {
			t.Errorf("err = %v, want x509.CertificateInvalidError with reason %d", err, reason)
		}
	}
}

func wantUnknownAuthority(t *testing.T, err error) {
	t.Helper()
	var e x509.UnknownAuthorityError
	if !errors.As(err, &e) {
		t.Errorf("err = %v, want x509.UnknownAuthorityError", err)
	}
}

func wantHostnameError(t *testing.T, err error) {
	t.Helper()
	var e x509.HostnameError
	if !errors.As(err, &e) {
		t.Errorf("err = %v, want x509.HostnameError", err)
	}
}

func wantErrContaining(s string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("err = %v, want one containing %q", err, s)
		}
	}
}

func TestHandshake(t *testing.T) {
	now := time.Now()
	ca := mustCA(t, "test", now)
	nodeA := mustIssue(t, ca, "node-a", now)
	nodeB := mustIssue(t, ca, "node-b", now)
	expiredB := mustIssue(t, ca, "node-b", now.Add(-6*year))
	futureB := mustIssue(t, ca, "node-b", now.Add(48*time.Hour))
	otherCA := mustCA(t, "other", now)
	// An impostor with the right name from another cluster's CA.
	impostorA := mustIssue(t, otherCA, "node-a", now)
	impostorB := mustIssue(t, otherCA, "node-b", now)

	tests := []struct {
		name       string
		server     *Identity
		client     *Identity
		serverName string
		// clientCfg, if set, alters the client's configuration.
		clientCfg func(c *tls.Config)
		// wantServerErr and wantClientErr check the errors of a failing
		// handshake; both nil means the connection must succeed.
		wantServerErr, wantClientErr func(t *testing.T, err error)
	}{
		{name: "same CA by node name", server: nodeA, client: nodeB, serverName: "node-a"},
		{name: "same CA by IPv4 address", server: nodeA, client: nodeB, serverName: "127.0.0.1"},
		{name: "same CA by IPv6 address", server: nodeA, client: nodeB, serverName: "::1"},
		{
			// A node of another cluster does not trust this cluster's server.
			name: "client of another CA", server: nodeA, client: impostorB, serverName: "node-a",
			wantServerErr: wantErrContaining("bad certificate"),
			wantClientErr: wantUnknownAuthority,
		},
		{
			// An attacker who knows the public ca.crt, but has a certificate
			// from another CA only, forces the server to look at it (a Go
			// client would otherwise send no certificate, as the server asks
			// for one from the cluster CA).
			name: "client certificate from another CA", server: nodeA, client: impostorB, serverName: "node-a",
			clientCfg: func(c *tls.Config) {
				c.RootCAs = nodeA.Roots
				c.Certificates = nil
				c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					return &impostorB.TLS, nil
				}
			},
			wantServerErr: wantUnknownAuthority,
			wantClientErr: wantErrContaining("unknown certificate authority"),
		},
		{
			name: "server certificate from another CA", server: impostorA, client: nodeB, serverName: "node-a",
			wantServerErr: wantErrContaining("bad certificate"),
			wantClientErr: wantUnknownAuthority,
		},
		{
			name: "client presents no certificate", server: nodeA, client: nodeB, serverName: "node-a",
			clientCfg:     func(c *tls.Config) { c.Certificates = nil },
			wantServerErr: wantErrContaining("client didn't provide a certificate"),
			wantClientErr: wantErrContaining("certificate required"),
		},
		{
			name: "server name does not match", server: nodeA, client: nodeB, serverName: "node-c",
			wantServerErr: wantErrContaining("bad certificate"),
			wantClientErr: wantHostnameError,
		},
		{
			// A node must not accept its own name from its peer, and vice versa.
			name: "server name is the client's own name", server: nodeA, client: nodeB, serverName: "node-b",
			wantServerErr: wantErrContaining("bad certificate"),
			wantClientErr: wantHostnameError,
		},
		{
			name: "server name IP not in certificate", server: nodeA, client: nodeB, serverName: "127.0.0.2",
			wantServerErr: wantErrContaining("bad certificate"),
			wantClientErr: wantHostnameError,
		},
		{
			name: "client certificate expired", server: nodeA, client: expiredB, serverName: "node-a",
			wantServerErr: wantCertInvalid(x509.Expired),
			wantClientErr: wantErrContaining("expired certificate"),
		},
		{
			name: "server certificate expired", server: expiredB, client: nodeA, serverName: "node-b",
			wantServerErr: wantErrContaining("bad certificate"),
			wantClientErr: wantCertInvalid(x509.Expired),
		},
		{
			name: "client certificate not yet valid", server: nodeA, client: futureB, serverName: "node-a",
			wantServerErr: wantCertInvalid(x509.Expired), // x509 reports both as Expired
			wantClientErr: wantErrContaining("expired certificate"),
		},
		{
			name: "client limited to TLS 1.2", server: nodeA, client: nodeB, serverName: "node-a",
			clientCfg:     func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 },
			wantServerErr: wantErrContaining("unsupported versions"),
			wantClientErr: wantErrContaining("protocol version"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientCfg := ClientTLS(tt.client, tt.serverName)
			if tt.clientCfg != nil {
				tt.clientCfg(clientCfg)
			}
			res := handshake(t, ServerTLS(tt.server), clientCfg)
			if tt.wantServerErr == nil && tt.wantClientErr == nil {
				if res.serverErr != nil || res.clientErr != nil {
					t.Fatalf("server err %v, client err %v; want success", res.serverErr, res.clientErr)
				}
				if v := res.clientState.Version; v != tls.VersionTLS13 {
					t.Errorf("version %#x, want TLS 1.3", v)
				}
				for _, side := range []struct {
					name  string
					state tls.ConnectionState
					want  string
				}{
					{"server", res.serverState, tt.client.NodeName},
					{"client", res.clientState, tt.server.NodeName},
				} {
					got, err := PeerName(side.state)
					if err != nil || got != side.want {
						t.Errorf("%s: PeerName = %q, %v; want %q", side.name, got, err, side.want)
					}
				}
				return
			}
			if res.serverErr == nil || res.clientErr == nil {
				t.Fatalf("server err %v, client err %v; want both to fail", res.serverErr, res.clientErr)
			}
			tt.wantServerErr(t, res.serverErr)
			tt.wantClientErr(t, res.clientErr)
			if name, err := PeerName(res.serverState); err == nil {
				t.Errorf("server: PeerName = %q after a failed handshake, want an error", name)
			}
		})
	}
}

// TestHandshakeAfterReload checks that identities saved and loaded again
// (as the agents do at start) still authenticate each other.
func TestHandshakeAfterReload(t *testing.T) {
	now := time.Now()
	caDir, dirA, dirB := t.TempDir(), t.TempDir(), t.TempDir()
	ca := mustCA(t, "test", now)
	if err := SaveCA(caDir, ca); err != nil {
		t.Fatal(err)
	}
	loadedCA, err := LoadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	for dir, name := range map[string]string{dirA: "node-a", dirB: "node-b"} {
		if err := SaveIdentity(dir, mustIssue(t, loadedCA, name, now)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := LoadIdentity(dirA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadIdentity(dirB)
	if err != nil {
		t.Fatal(err)
	}
	res := handshake(t, ServerTLS(a), ClientTLS(b, "node-a"))
	if res.serverErr != nil || res.clientErr != nil {
		t.Fatalf("server err %v, client err %v; want success", res.serverErr, res.clientErr)
	}
	if got, err := PeerName(res.serverState); err != nil || got != "node-b" {
		t.Errorf("server: PeerName = %q, %v; want node-b", got, err)
	}
}
