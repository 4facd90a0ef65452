package pairing

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"
)

const (
	// alpn is the TLS application protocol of pairing connections; it keeps
	// them apart from any other TLS protocol.
	alpn = "hapair-pairing/1"
	// protocolVersion is carried in the proof messages.
	protocolVersion = 1
	// ekmLabel is the RFC 8446 exporter label for the channel binding.
	ekmLabel = "EXPORTER-hapair-pairing"
	ekmLen   = 32
	// maxProofSize bounds the messages read before the proofs succeeded.
	maxProofSize = 1 << 10
	// maxConcurrent bounds the connections a Listener serves at once.
	maxConcurrent = 4
)

// Roles in the proofs.
const (
	roleClient = "client"
	roleServer = "server"
)

// Message types.
const (
	msgProof  = "proof"  // both ways: a token proof
	msgReject = "reject" // server: the client's proof was not accepted
	msgOffer  = "offer"  // client: the Offer
	msgAccept = "accept" // server: the Accept
	msgRefuse = "refuse" // server: the Offer is refused, with a reason
	msgDone   = "done"   // client: the Accept was received
)

// message is one protocol message: a JSON object in a length-prefixed frame.
type message struct {
	Type    string  `json:"type"`
	Version int     `json:"v,omitempty"`
	MAC     []byte  `json:"mac,omitempty"`
	Offer   *Offer  `json:"offer,omitempty"`
	Accept  *Accept `json:"accept,omitempty"`
	Reason  string  `json:"reason,omitempty"`
}

// errFrameTooLarge is returned (wrapped) by readFrame and writeFrame for a
// message bigger than allowed.
var errFrameTooLarge = errors.New("message too large")

// writeFrame writes m as one frame: 4-byte big-endian length, then JSON.
func writeFrame(w io.Writer, m *message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	defer clear(body)
	if len(body) > MaxMessageSize {
		return fmt.Errorf("%w: %s message is %d bytes, at most %d allowed", errFrameTooLarge, m.Type, len(body), MaxMessageSize)
	}
	buf := make([]byte, 4+len(body))
	defer clear(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err = w.Write(buf)
	return err
}

// readFrame reads one frame of at most limit bytes of JSON and decodes it.
func readFrame(r io.Reader, limit int) (*message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, errors.New("empty message")
	}
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, at most %d allowed", errFrameTooLarge, n, limit)
	}
	body := make([]byte, n)
	defer clear(body)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	m := new(message)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("malformed message: %w", err)
	}
	if m.Type == "" {
		return nil, errors.New("malformed message: no type")
	}
	return m, nil
}

// computeProof returns HMAC-SHA256(key, role || ekm || SHA-256(clientLeaf)
// || SHA-256(serverLeaf)). role, ekm and the hashes have fixed lengths, so
// the concatenation is unambiguous.
func computeProof(key []byte, role string, ekm, clientLeaf, serverLeaf []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(role))
	mac.Write(ekm)
	ch := sha256.Sum256(clientLeaf)
	mac.Write(ch[:])
	sh := sha256.Sum256(serverLeaf)
	mac.Write(sh[:])
	return mac.Sum(nil)
}

// ephemeralCert makes a self-signed certificate with a fresh P-256 key, for
// one pairing connection. It is never stored, and nobody verifies it: the
// token proof binds it instead.
func ephemeralCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ephemeral certificate: generate key: %w", err)
	}
	var sn [16]byte
	if _, err := rand.Read(sn[:]); err != nil {
		return tls.Certificate{}, fmt.Errorf("ephemeral certificate: serial number: %w", err)
	}
	sn[0] |= 0x40 // positive and non-zero
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sn[:]),
		Subject:               pkix.Name{CommonName: "hapair pairing (ephemeral)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ephemeral certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serverConfig is the joiner's TLS configuration: TLS 1.3, its ephemeral
// certificate, and any client certificate required but not verified (the
// token proof authenticates the client).
func serverConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		NextProtos:             []string{alpn},
		SessionTicketsDisabled: true, // every connection is a full handshake
	}
}

// clientConfig is the deployer's TLS configuration: TLS 1.3 and its
// ephemeral certificate. The server certificate is deliberately not
// verified against any authority (there is none yet); the token proof,
// which covers the server's certificate and the session's exported keying
// material, authenticates the server instead.
func clientConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, //nolint:gosec // replaced by the token proof with channel binding
		ServerName:         "hapair-pairing",
		NextProtos:         []string{alpn},
	}
}

// conn is one side of a pairing connection, with per-step deadlines bounded
// by ctx.
type conn struct {
	ctx    context.Context
	raw    net.Conn
	tc     *tls.Conn
	step   time.Duration
	client bool // the dialing side
}

// deadline is the deadline for the next step: StepTimeout from now, or the
// context's deadline if that is sooner.
func (c *conn) deadline() time.Time {
	d := time.Now().Add(c.step)
	if cd, ok := c.ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// wrap describes an error of step what, preferring the context's cause if
// the context is done (the connection was closed because of it).
func (c *conn) wrap(what string, err error) error {
	return fmt.Errorf("%s: %w", what, ctxErr(c.ctx, err))
}

// ctxErr returns the context's cause instead of err if the context is done,
// or if err is a timeout at or after the context's deadline (the socket
// deadline, set to the context's, can fire a moment before the context
// itself is marked done).
func ctxErr(ctx context.Context, err error) error {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			<-ctx.Done() // due now
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// handshake runs the TLS handshake and returns the channel binding: the
// exported keying material, our leaf certificate and the peer's.
func (c *conn) handshake(own []byte) (ekm, clientLeaf, serverLeaf []byte, err error) {
	if err := c.raw.SetDeadline(c.deadline()); err != nil {
		return nil, nil, nil, c.wrap("TLS handshake", err)
	}
	if err := c.tc.HandshakeContext(c.ctx); err != nil {
		return nil, nil, nil, c.wrap("TLS handshake", err)
	}
	cs := c.tc.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		return nil, nil, nil, fmt.Errorf("TLS handshake: version %#x negotiated, want TLS 1.3", cs.Version)
	}
	if cs.NegotiatedProtocol != alpn {
		return nil, nil, nil, fmt.Errorf("TLS handshake: application protocol %q negotiated, want %q", cs.NegotiatedProtocol, alpn)
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, nil, nil, errors.New("TLS handshake: peer sent no certificate")
	}
	ekm, err = cs.ExportKeyingMaterial(ekmLabel, nil, ekmLen)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("TLS exported keying material: %w", err)
	}
	if cs.DidResume {
		return nil, nil, nil, errors.New("TLS handshake: session was resumed")
	}
	peer := cs.PeerCertificates[0].Raw
	// Which leaf is the client's depends on the side we are on.
	if c.client {
		return ekm, own, peer, nil
	}
	return ekm, peer, own, nil
}

// send writes one message within the step deadline.
func (c *conn) send(m *message) error {
	if err := c.ctx.Err(); err != nil {
		return fmt.Errorf("send %s: %w", m.Type, context.Cause(c.ctx))
	}
	if err := c.raw.SetDeadline(c.deadline()); err != nil {
		return c.wrap("send "+m.Type, err)
	}
	if err := writeFrame(c.tc, m); err != nil {
		return c.wrap("send "+m.Type, err)
	}
	return nil
}

// recv reads one message of at most limit bytes within the step deadline.
// what names the expected message in errors.
func (c *conn) recv(what string, limit int) (*message, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, fmt.Errorf("receive %s: %w", what, context.Cause(c.ctx))
	}
	if err := c.raw.SetDeadline(c.deadline()); err != nil {
		return nil, c.wrap("receive "+what, err)
	}
	m, err := readFrame(c.tc, limit)
	if err != nil {
		return nil, c.wrap("receive "+what, err)
	}
	return m, nil
}

// proofMAC checks that m is a proof message of this protocol version and
// returns its MAC.
func proofMAC(m *message) ([]byte, error) {
	if m.Type != msgProof {
		return nil, fmt.Errorf("got a %q message, want a proof", m.Type)
	}
	if m.Version != protocolVersion {
		return nil, fmt.Errorf("protocol version %d, want %d", m.Version, protocolVersion)
	}
	if len(m.MAC) != sha256.Size {
		return nil, fmt.Errorf("proof is %d bytes, want %d", len(m.MAC), sha256.Size)
	}
	return m.MAC, nil
}

// check validates an Offer: valid names, a CA certificate, a certificate
// signed by it for a valid node name (wantNode, if not empty), a key that
// matches the certificate, and valid JSON in Extra. It returns the
// certificate's node name. Errors never contain key material.
func (o *Offer) check(wantNode string) (string, error) {
	if err := validName("cluster", o.ClusterName); err != nil {
		return "", err
	}
	if err := validName("deployer", o.DeployerName); err != nil {
		return "", err
	}
	ca, err := parseOneCert(o.CACertPEM)
	if err != nil {
		return "", fmt.Errorf("CA certificate: %w", err)
	}
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return "", fmt.Errorf("CA certificate %q is not a CA certificate", ca.Subject.CommonName)
	}
	leaf, err := parseOneCert(o.CertPEM)
	if err != nil {
		return "", fmt.Errorf("node certificate: %w", err)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return "", fmt.Errorf("node certificate is not signed by the CA certificate %q: %w", ca.Subject.CommonName, err)
	}
	node := leaf.Subject.CommonName
	if err := validName("node", node); err != nil {
		return "", fmt.Errorf("node certificate: %w", err)
	}
	if wantNode != "" && node != wantNode {
		return "", fmt.Errorf("node certificate is for node %q, but this node is %q", node, wantNode)
	}
	if _, err := tls.X509KeyPair(o.CertPEM, o.KeyPEM); err != nil {
		return "", errors.New("node key is missing, malformed or does not match the node certificate")
	}
	if len(o.Extra) > 0 && !json.Valid(o.Extra) {
		return "", errors.New("offer Extra is not valid JSON")
	}
	return node, nil
}

// parseOneCert parses data holding exactly one PEM certificate.
func parseOneCert(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM data found")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, "CERTIFICATE")
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

// validName checks a node or cluster name like package pki does: a
// lower-case DNS label of at most 63 characters.
func validName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("invalid %s name: empty", kind)
	}
	if len(name) > 63 {
		return fmt.Errorf("invalid %s name: %d characters, at most 63 allowed", kind, len(name))
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
