// Package pairing pairs two stand-alone hapair nodes with a one-time token,
// so that the deploying node can hand the joining node its cluster identity
// (the cluster CA certificate and the joiner's own certificate and key, made
// with package pki) together with the deploy settings.
//
// # Flow
//
// On the joining node the operator asks for a token (NewToken). The agent
// opens a pairing listener for it (Listen), shows the token once, and waits
// in Listener.Accept. The operator types the token on the deploying node,
// whose agent calls Dial with it and an Offer. The two agents prove to each
// other that they know the token; then the deployer sends the Offer, the
// joiner answers with an Accept (or refuses, with a reason), and the deployer
// confirms that it received the answer. Only then does Listener.Accept
// return the Offer, which the joiner installs, for example with
//
//	pki.SaveIdentity(dir, &pki.Identity{CACertPEM: o.CACertPEM, CertPEM: o.CertPEM, KeyPEM: o.KeyPEM})
//
// # Protocol
//
// Over TCP, the two sides run TLS 1.3 (ALPN "hapair-pairing/1"), each with
// an ephemeral self-signed certificate made for that connection only and
// never stored. Neither side verifies the other's certificate against any
// authority: that check is replaced by a proof of knowledge of the token,
// bound to this very TLS session. After the handshake both sides compute
//
//	ekm = ExportKeyingMaterial("EXPORTER-hapair-pairing", nil, 32)
//
// (RFC 8446 section 7.5; it depends on both sides' key shares and on the
// transcript, so it is different for every TLS session), and
//
//	proof(role) = HMAC-SHA256(key = token, role || ekm || SHA-256(client leaf) || SHA-256(server leaf))
//
// with role "client" or "server". The client (deployer) sends its proof
// first; the server (joiner) checks it in constant time and only if it is
// right answers with its own proof, which the client checks in turn. Then
// the messages flow: Offer from the client, Accept or Refuse from the
// server, and a final confirmation from the client. Every message is a frame
// of a 4-byte big-endian length and a JSON object, at most MaxMessageSize
// bytes (1 KiB before the proofs); every step has a deadline (StepTimeout),
// and Dial as a whole is bounded by its context.
//
// The final confirmation makes the outcome consistent in one direction:
// if Accept returns the Offer, Dial succeeded (the deployer received the
// Accept). If the connection breaks just after the deployer sent its
// confirmation, Dial may succeed while Accept fails; the joiner then has
// installed nothing and the operator pairs again with a new token.
//
// # Security
//
//   - No static or default secret exists: the token is 100 bits from
//     crypto/rand, made on the joining node and carried to the other node by
//     the operator; the TLS keys are made per connection. Neither side ever
//     trusts a peer on first use: only a peer that proves the token gets
//     anything.
//   - Nothing secret travels before both proofs succeeded: the Offer (which
//     holds the joiner's private key and the deploy secrets) is sent by the
//     deployer only after the joiner proved the token, inside the TLS session
//     the proof was bound to, so it reaches only a holder of the token.
//     Likewise the joiner installs nothing from a peer that did not prove
//     the token.
//   - A man in the middle who terminates TLS towards each side has two
//     different TLS sessions, hence two different ekm values (and different
//     certificates), so a proof relayed from one session is wrong in the
//     other, and without the token it cannot make a proof of its own. Both
//     sides fail and no Offer is sent.
//   - The client proof differs from the server proof (the role is part of
//     the MAC), so neither can be reflected back as the other.
//   - Online guessing is limited: the joiner rejects every proof once
//     MaxAttempts attempts failed (the token is then burnt), checking and
//     counting atomically even for concurrent connections. A wrong proof
//     tells the guesser nothing but "wrong".
//   - Offline guessing is infeasible: someone who impersonates the joiner
//     gets the deployer's proof and could test tokens against it offline,
//     but the token has 100 bits and expires within MaxTokenTTL, and the
//     deployer, seeing no valid server proof, sends nothing.
//   - The token is single use: the first valid proof consumes it, whatever
//     happens next; it also expires (Token.ExpiresAt). A consumed, burnt or
//     expired token closes the listener.
//   - Neither the token nor any key is logged; Token's String and LogValue
//     redact the value.
//
// Concurrency: Dial, NewToken and ParseToken are safe for concurrent use. A
// Listener's methods may be called concurrently, but only one Accept runs
// at a time.
package pairing

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// MaxAttempts is how many failed pairing attempts a Listener tolerates for
// its token; at the MaxAttempts-th the token is burnt and Accept returns
// ErrTooManyAttempts. A failed attempt is a wrong proof or any connection
// that sent data but did not get as far as a valid proof (garbage, a
// failed TLS handshake, a malformed or oversized message, a timeout).
const MaxAttempts = 5

// StepTimeout bounds every step of the protocol (TCP connect, TLS
// handshake, each message read or written) on both sides. In particular the
// joiner's decide function must answer within it, or the deployer gives up.
const StepTimeout = 10 * time.Second

// MaxMessageSize is the largest protocol message, in bytes of JSON. A
// bigger message is an error and ends the connection.
const MaxMessageSize = 1 << 20

// Errors returned by Dial and Listener.Accept; test with errors.Is.
var (
	// ErrBadToken is returned by Dial when the pairing peer rejected its
	// token proof or could not prove knowledge of the token itself.
	ErrBadToken = errors.New("pairing: the token is wrong or was already used")
	// ErrRefused is returned (wrapped, see RefusedError) by Dial when the
	// joining node refused the Offer, and by Listener.Accept when this node
	// refused it.
	ErrRefused = errors.New("pairing: offer refused")
	// ErrTokenBurnt is returned by Listener.Accept when the token can no
	// longer be used: it was used by a pairing (successful or not), or too
	// many attempts failed (ErrTooManyAttempts also matches ErrTokenBurnt).
	ErrTokenBurnt = errors.New("pairing: the token was already used; make a new one")
	// ErrTooManyAttempts is returned by Listener.Accept when MaxAttempts
	// pairing attempts failed. errors.Is(ErrTooManyAttempts, ErrTokenBurnt)
	// is true.
	ErrTooManyAttempts = fmt.Errorf("%w (too many failed attempts)", ErrTokenBurnt)
	// ErrExpired is returned by Listen and Listener.Accept when the token
	// has expired.
	ErrExpired = errors.New("pairing: the token has expired; make a new one")
)

// RefusedError is the error returned by Dial when the joining node refused
// the Offer. It matches ErrRefused with errors.Is.
type RefusedError struct {
	// Reason is the joiner's explanation, sanitised: printable text of at
	// most 512 bytes (other characters replaced by '?'). It comes from the
	// authenticated peer.
	Reason string
}

// Error implements error.
func (e *RefusedError) Error() string {
	return "pairing: the joining node refused the offer: " + e.Reason
}

// Is reports whether target is ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Offer is what the deploying node gives the joining node: its cluster
// identity and the deploy settings. It travels only after both sides proved
// knowledge of the token.
type Offer struct {
	// ClusterName is the name of the cluster (a pki name: a lower-case DNS
	// label).
	ClusterName string `json:"cluster_name"`
	// DeployerName is the deploying node's name (a pki name).
	DeployerName string `json:"deployer_name"`
	// CACertPEM is the cluster CA certificate, PEM encoded (pki.CA.CertPEM).
	CACertPEM []byte `json:"ca_cert_pem"`
	// CertPEM is the joiner's certificate, issued by the cluster CA for the
	// joiner's node name (pki.Identity.CertPEM).
	CertPEM []byte `json:"cert_pem"`
	// KeyPEM is the joiner's private key, PKCS #8 PEM encoded
	// (pki.Identity.KeyPEM). It is secret.
	KeyPEM []byte `json:"key_pem"`
	// Extra is opaque to this package: deploy settings and secrets filled
	// in by the agent. It must be valid JSON if not empty; it arrives
	// compacted (insignificant white space removed).
	Extra json.RawMessage `json:"extra,omitempty"`
}

// Accept is the joining node's answer to an Offer it accepts.
type Accept struct {
	// NodeName is the joiner's node name; it equals the CN of the offered
	// certificate.
	NodeName string `json:"node_name"`
	// Extra is opaque to this package: for example the joiner's public and
	// heartbeat addresses and ports. It must be valid JSON if not empty; it
	// arrives compacted.
	Extra json.RawMessage `json:"extra,omitempty"`
}

// maxReasonLen is the longest refusal reason sent or accepted, in bytes.
const maxReasonLen = 512

// sanitizeReason makes a refusal reason safe to show: printable characters
// only (others become '?'), at most maxReasonLen bytes.
func sanitizeReason(s string) string {
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsPrint(r) {
			r = '?'
		}
		if b.Len()+len(string(r)) > maxReasonLen {
			break
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "no reason given"
	}
	return b.String()
}
