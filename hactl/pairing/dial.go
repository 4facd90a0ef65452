package pairing

import (
	"context"
	"crypto/hmac"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// Dial runs the deploying side of a pairing: it connects to the pairing
// listener of the joining node at addr ("host:port"), proves knowledge of
// token (as typed by the operator; see ParseToken) and checks the joiner's
// proof, sends offer, and returns the joiner's Accept once it has confirmed
// receiving it.
//
// offer is checked first: valid cluster and deployer names, a CA
// certificate, a certificate it signed (whose CN is the joiner's node name)
// and the matching key, valid JSON in Extra. The Accept's NodeName is
// checked to be that CN.
//
// Every step is bounded by StepTimeout, and the whole exchange by ctx.
// Errors: ErrBadToken if the joiner rejected the proof or could not prove
// the token itself (nothing was sent then); a *RefusedError (matching
// ErrRefused) if the joiner refused the offer; otherwise an error naming
// the failed step, for example a network error. Whenever Dial fails, the
// joiner's Accept fails too (the joiner installs an offer only after the
// final confirmation, which Dial sends last); the converse is not certain,
// see the package documentation.
//
// Dial is safe for concurrent use.
func Dial(ctx context.Context, addr, token string, offer Offer) (Accept, error) {
	key, err := ParseToken(token)
	if err != nil {
		return Accept{}, err
	}
	node, err := offer.check("")
	if err != nil {
		return Accept{}, fmt.Errorf("pairing: invalid offer: %w", err)
	}
	acc, err := dial(ctx, addr, []byte(key), &offer, node, StepTimeout)
	if err != nil {
		return Accept{}, fmt.Errorf("pair with %s: %w", addr, err)
	}
	return acc, nil
}

// dial runs the client side of the protocol; wantNode is the node name the
// offered certificate is for.
func dial(ctx context.Context, addr string, key []byte, offer *Offer, wantNode string, step time.Duration) (Accept, error) {
	if err := ctx.Err(); err != nil {
		return Accept{}, context.Cause(ctx)
	}
	dialCtx, cancel := context.WithTimeout(ctx, step)
	var d net.Dialer
	raw, err := d.DialContext(dialCtx, "tcp", addr)
	cancel()
	if err != nil {
		return Accept{}, fmt.Errorf("connect: %w", ctxErr(ctx, err))
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()

	cert, err := ephemeralCert()
	if err != nil {
		return Accept{}, err
	}
	c := &conn{ctx: ctx, raw: raw, tc: tls.Client(raw, clientConfig(cert)), step: step, client: true}
	ekm, clientLeaf, serverLeaf, err := c.handshake(cert.Certificate[0])
	if err != nil {
		return Accept{}, err
	}

	// Our proof first: the joiner answers with its own only if ours is right.
	mine := computeProof(key, roleClient, ekm, clientLeaf, serverLeaf)
	if err := c.send(&message{Type: msgProof, Version: protocolVersion, MAC: mine}); err != nil {
		return Accept{}, err
	}
	m, err := c.recv("token proof", maxProofSize)
	if err != nil {
		return Accept{}, err
	}
	if m.Type == msgReject {
		return Accept{}, ErrBadToken
	}
	theirs, err := proofMAC(m)
	if err != nil {
		return Accept{}, fmt.Errorf("receive token proof: %w", err)
	}
	if !hmac.Equal(theirs, computeProof(key, roleServer, ekm, clientLeaf, serverLeaf)) {
		return Accept{}, fmt.Errorf("the peer could not prove it knows the token (is someone in the middle?): %w", ErrBadToken)
	}

	// Both proofs are done: the peer holds the token, and this TLS session
	// is the one it proved it on. Only now does the secret offer travel.
	if err := c.send(&message{Type: msgOffer, Offer: offer}); err != nil {
		return Accept{}, err
	}
	m, err = c.recv("answer to the offer", MaxMessageSize)
	if err != nil {
		return Accept{}, err
	}
	switch m.Type {
	case msgRefuse:
		return Accept{}, &RefusedError{Reason: sanitizeReason(m.Reason)}
	case msgAccept:
	default:
		return Accept{}, fmt.Errorf("receive answer to the offer: got a %q message, want accept or refuse", m.Type)
	}
	if m.Accept == nil {
		return Accept{}, errors.New("receive answer to the offer: accept message without content")
	}
	acc := *m.Accept
	if err := validName("node", acc.NodeName); err != nil {
		return Accept{}, fmt.Errorf("joining node's answer: %w", err)
	}
	if acc.NodeName != wantNode {
		// Not confirming makes the joiner drop the offer too.
		return Accept{}, fmt.Errorf("joining node says it is %q, but the offered certificate is for %q", acc.NodeName, wantNode)
	}
	if err := c.send(&message{Type: msgDone}); err != nil {
		return Accept{}, err
	}
	_ = c.tc.Close() // close_notify: the confirmation is the last word
	return acc, nil
}
