// Package pki is the per-cluster public key infrastructure of a hapair pair.
//
// At deploy time a fresh certificate authority is made for each cluster with
// NewCA, and each of the two hactl nodes gets its own leaf certificate and key
// from CA.Issue. The nodes then talk to each other over gRPC with mutual TLS
// (TLS 1.3 only), using ServerTLS and ClientTLS, and learn who is on the other
// end of a connection with PeerName. There are no static or default
// credentials: every key in this package is generated at run time from
// crypto/rand and only ever stored in files that the caller chose.
//
// Keys are ECDSA P-256. Certificates and keys are stored PEM encoded
// (certificates as "CERTIFICATE", keys as PKCS #8 "PRIVATE KEY") in a
// directory, see SaveCA, LoadCA, SaveIdentity and LoadIdentity.
//
// Concurrency: every function and method here is safe for concurrent use,
// and CA and Identity values are safe for concurrent use once created (they
// must not be modified afterwards). The one caveat is that concurrent saves
// to the same directory must be serialised by the caller.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Validity periods and clock-skew allowance used by NewCA and CA.Issue.
const (
	// CAValidity is how long a cluster CA made by NewCA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// LeafValidity is how long a node certificate made by CA.Issue is valid
	// (never beyond the end of the issuing CA's validity).
	LeafValidity = 5 * 365 * 24 * time.Hour
	// Backdate is how far before "now" certificates start to be valid, to
	// tolerate clock skew between the two nodes.
	Backdate = time.Hour
)

// MaxNameLen is the longest node or cluster name accepted (a DNS label).
const MaxNameLen = 63

// CA is a cluster certificate authority: a self-signed certificate and its
// private key, used at deploy time to issue the nodes' identities.
//
// A CA is safe for concurrent use once created; its fields must not be
// modified afterwards.
type CA struct {
	// Cert is the parsed self-signed CA certificate.
	Cert *x509.Certificate
	// Key is the CA's private key. It signs node certificates.
	Key crypto.Signer
	// CertPEM is Cert, PEM encoded (the content of ca.crt).
	CertPEM []byte
}

// Identity is what one node needs to take part in mutual TLS with its peer:
// its own certificate and key, and the cluster CA it trusts.
//
// An Identity is safe for concurrent use once created; its fields must not
// be modified afterwards.
type Identity struct {
	// NodeName is the node's name: the CN and only DNS name of Cert.
	NodeName string
	// Cert is the node's parsed leaf certificate.
	Cert *x509.Certificate
	// CertPEM is Cert, PEM encoded (the content of node.crt).
	CertPEM []byte
	// KeyPEM is the node's private key, PKCS #8 PEM encoded (the content of
	// node.key). It is secret.
	KeyPEM []byte
	// TLS is Cert and its key, ready for tls.Config.Certificates.
	TLS tls.Certificate
	// Roots holds only the cluster CA certificate: the sole trust anchor
	// for peers.
	Roots *x509.CertPool
	// CACertPEM is the cluster CA certificate, PEM encoded (the content of
	// ca.crt). SaveIdentity writes it.
	CACertPEM []byte
}

// NewCA makes a new self-signed cluster CA with a fresh P-256 key.
//
// clusterName must be a valid name (non-empty, at most 63 characters of
// a-z, 0-9 and '-', not starting or ending with '-'); the CA's subject CN is
// "hapair cluster <clusterName> CA". The CA is valid from now-1h to now+10y.
// It can sign leaf certificates only (path length 0). NewCA is safe for
// concurrent use.
func NewCA(clusterName string, now time.Time) (*CA, error) {
	if err := validateName("cluster", clusterName); err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hapair cluster " + clusterName + " CA"},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("new CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA: parse certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der)}, nil
}

// Issue makes a new identity for the node nodeName, with its own fresh P-256
// key, signed by ca.
//
// nodeName must be a valid name (non-empty, at most 63 characters of a-z,
// 0-9 and '-', not starting or ending with '-'); it becomes the
// certificate's CN and its only DNS name, so peers can reach the node by
// that name (see ClientTLS). ips are added as IP address names, so peers can
// also use one of them as the server name. The certificate is usable for
// both TLS server and client authentication and is valid from now-1h to
// now+5y, but never beyond the CA's own expiry. Issue is safe for
// concurrent use.
func (ca *CA) Issue(nodeName string, ips []net.IP, now time.Time) (*Identity, error) {
	if err := validateName("node", nodeName); err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, fmt.Errorf("issue certificate for %q: CA is incomplete (needs Cert and Key)", nodeName)
	}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("issue certificate for %q: %q is not a CA certificate", nodeName, ca.Cert.Subject.CommonName)
	}
	for i, ip := range ips {
		if len(ip) != net.IPv4len && len(ip) != net.IPv6len {
			return nil, fmt.Errorf("issue certificate for %q: ips[%d] is not a valid IP address", nodeName, i)
		}
	}
	notBefore, notAfter := now.Add(-Backdate), now.Add(LeafValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("issue certificate for %q: CA %q expired at %s, before %s",
			nodeName, ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339), notBefore.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: generate key: %w", nodeName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", nodeName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: nodeName},
		DNSNames:              []string{nodeName},
		IPAddresses:           append([]net.IP(nil), ips...),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: create certificate: %w", nodeName, err)
	}
	keyDER, err := marshalKey(key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", nodeName, err)
	}
	caPEM := ca.CertPEM
	if len(caPEM) == 0 {
		caPEM = encodeCert(ca.Cert.Raw)
	}
	id, err := newIdentity(caPEM, encodeCert(der), pemEncodeKey(keyDER))
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", nodeName, err)
	}
	return id, nil
}

// ServerTLS returns a new TLS configuration for a node's server: TLS 1.3
// only, presenting id's certificate, and requiring every client to present a
// certificate issued by the cluster CA (for client authentication). Use
// PeerName to learn which node connected. id must not be nil.
//
// Each call returns a new *tls.Config that the caller may modify before
// first use. ServerTLS is safe for concurrent use, and so is the returned
// configuration once in use.
func ServerTLS(id *Identity) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.TLS},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    id.Roots,
	}
}

// ClientTLS returns a new TLS configuration for a node connecting to its
// peer: TLS 1.3 only, presenting id's certificate, and trusting only a
// server whose certificate is issued by the cluster CA and is valid for
// serverName (the peer's node name, or one of its IP addresses as given to
// CA.Issue). id must not be nil.
//
// Each call returns a new *tls.Config that the caller may modify before
// first use. ClientTLS is safe for concurrent use, and so is the returned
// configuration once in use.
func ClientTLS(id *Identity, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      id.Roots,
		Certificates: []tls.Certificate{id.TLS},
		ServerName:   serverName,
	}
}

// PeerName returns the node name of the peer of a TLS connection whose
// certificate was verified against the cluster CA (by a configuration from
// ServerTLS or ClientTLS): the CN of the verified leaf certificate. It
// returns an error if the peer's certificate was not verified, for example
// before the handshake completed, or if the CN is not a valid node name.
// It is safe for concurrent use.
func PeerName(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", errors.New("peer name: peer certificate was not verified")
	}
	name := cs.VerifiedChains[0][0].Subject.CommonName
	if err := validateName("node", name); err != nil {
		return "", fmt.Errorf("peer name: verified peer certificate: %w", err)
	}
	return name, nil
}

// newIdentity builds an Identity from its three PEM files' contents and
// checks that they are consistent: the certificate chains to the CA, has the
// extended key usages mTLS needs, names a valid node, and matches the key.
// Validity dates are not checked here: TLS handshakes check them.
func newIdentity(caPEM, certPEM, keyPEM []byte) (*Identity, error) {
	caCert, err := parseOneCert(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileCACert, err)
	}
	if !caCert.IsCA {
		return nil, fmt.Errorf("%s: %q is not a CA certificate", fileCACert, caCert.Subject.CommonName)
	}
	leaf, err := parseOneCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileNodeCert, err)
	}
	if err := validateName("node", leaf.Subject.CommonName); err != nil {
		return nil, fmt.Errorf("%s: %w", fileNodeCert, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	// The chain is checked without regard to time, so that an expired
	// identity can still be loaded (and inspected or replaced); TLS
	// handshakes enforce validity dates, with a full x509 verification.
	if !bytes.Equal(leaf.RawIssuer, caCert.RawSubject) {
		return nil, fmt.Errorf("%s does not chain to %s: issued by %q, not %q",
			fileNodeCert, fileCACert, leaf.Issuer.String(), caCert.Subject.String())
	}
	if err := leaf.CheckSignatureFrom(caCert); err != nil {
		return nil, fmt.Errorf("%s does not chain to %s (%q): %w", fileNodeCert, fileCACert, caCert.Subject.CommonName, err)
	}
	if len(leaf.UnhandledCriticalExtensions) != 0 {
		return nil, fmt.Errorf("%s: certificate has unhandled critical extensions", fileNodeCert)
	}
	if !hasExtKeyUsage(leaf, x509.ExtKeyUsageServerAuth) || !hasExtKeyUsage(leaf, x509.ExtKeyUsageClientAuth) {
		return nil, fmt.Errorf("%s: certificate is not valid for both TLS server and client authentication", fileNodeCert)
	}
	if _, err := parseKey(keyPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", fileNodeKey, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s does not match %s: %w", fileNodeKey, fileNodeCert, err)
	}
	pair.Leaf = leaf
	return &Identity{
		NodeName:  leaf.Subject.CommonName,
		Cert:      leaf,
		CertPEM:   bytes.Clone(certPEM),
		KeyPEM:    bytes.Clone(keyPEM),
		TLS:       pair,
		Roots:     roots,
		CACertPEM: bytes.Clone(caPEM),
	}, nil
}

// newCA builds a CA from its two PEM files' contents and checks that they
// are consistent.
func newCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseOneCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileCACert, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%s: %q is not a CA certificate", fileCACert, cert.Subject.CommonName)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("%s: not a valid self-signed certificate: %w", fileCACert, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileCAKey, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("%s does not match %s", fileCAKey, fileCACert)
	}
	return &CA{Cert: cert, Key: key, CertPEM: bytes.Clone(certPEM)}, nil
}

const (
	pemCert = "CERTIFICATE"
	pemKey  = "PRIVATE KEY"
)

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: der})
}

// marshalKey encodes key as PKCS #8 DER.
func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return der, nil
}

func pemEncodeKey(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemKey, Bytes: der})
}

// parseOneCert parses data holding exactly one PEM certificate.
func parseOneCert(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM data found")
	}
	if block.Type != pemCert {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, pemCert)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the certificate (want exactly one)")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// parseKey parses data holding exactly one PKCS #8 PEM private key.
func parseKey(data []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM data found")
	}
	if block.Type != pemKey {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, pemKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the key (want exactly one)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func hasExtKeyUsage(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, got := range c.ExtKeyUsage {
		if got == u {
			return true
		}
	}
	return false
}

// randomSerial returns a random, positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random serial number: %w", err)
	}
	b[0] |= 0x80 // full 128 bits, and never zero
	return new(big.Int).SetBytes(b[:]), nil
}

// validateName checks a node or cluster name: a lower-case DNS label.
func validateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("invalid %s name: empty", kind)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("invalid %s name %q: %d characters, at most %d allowed", kind, name, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("invalid %s name %q: character %q at offset %d (only a-z, 0-9 and '-' allowed)", kind, name, c, i)
		}
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("invalid %s name %q: must not start or end with '-'", kind, name)
	}
	return nil
}
