package pairing

import (
	"context"
	"crypto/hmac"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tokenState is the life cycle of a Listener's token.
type tokenState int

const (
	stateOpen    tokenState = iota // waiting for a valid proof
	stateClaimed                   // a valid proof consumed it
	stateBurnt                     // MaxAttempts attempts failed
	stateExpired                   // past ExpiresAt
)

// Listener is the joining side of a pairing: it listens on a TCP address
// and accepts pairing attempts for one outstanding token. Make one with
// Listen; wait for the deployer with Accept; Close it when done.
//
// The methods are safe for concurrent use, but only one Accept runs at a
// time. Connections are served only while Accept runs (up to a few at once);
// others wait in the listen queue.
type Listener struct {
	ln        net.Listener
	key       []byte // the canonical token: the HMAC key
	expiresAt time.Time
	nodeName  string
	log       *slog.Logger
	step      time.Duration

	conns    chan net.Conn // from the accepting goroutine
	stop     chan struct{} // closed by shutdown
	stopOnce sync.Once
	acceptWG sync.WaitGroup // the accepting goroutine

	mu        sync.Mutex
	state     tokenState
	attempts  int
	accepting bool
	closed    bool // Close was called
}

// Listen opens a pairing listener on the TCP address addr (for example
// ":7946", or "127.0.0.1:0" in tests) for the token tok, made by NewToken on
// this node. nodeName is this node's name: an offered certificate must be
// for it. logger receives notes about attempts (never the token or keys);
// nil discards them.
//
// Listen fails with ErrExpired if tok has expired. Close the Listener when
// done with it.
func Listen(addr string, tok Token, nodeName string, logger *slog.Logger) (*Listener, error) {
	key, err := ParseToken(tok.Value)
	if err != nil {
		return nil, fmt.Errorf("pairing: listen: %w", err)
	}
	if tok.ExpiresAt.IsZero() {
		return nil, errors.New("pairing: listen: the token has no expiry time")
	}
	if !time.Now().Before(tok.ExpiresAt) {
		return nil, fmt.Errorf("pairing: listen: %w", ErrExpired)
	}
	if err := validName("node", nodeName); err != nil {
		return nil, fmt.Errorf("pairing: listen: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pairing: listen: %w", err)
	}
	l := &Listener{
		ln:        ln,
		key:       []byte(key),
		expiresAt: tok.ExpiresAt,
		nodeName:  nodeName,
		log:       logger.With("component", "pairing"),
		step:      StepTimeout,
		conns:     make(chan net.Conn),
		stop:      make(chan struct{}),
	}
	l.acceptWG.Add(1)
	go l.acceptLoop()
	l.log.Info("pairing listener open", "addr", ln.Addr().String(), "expires_at", tok.ExpiresAt)
	return l, nil
}

// Addr returns the address the Listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// FailedAttempts returns how many pairing attempts have failed so far (see
// MaxAttempts).
func (l *Listener) FailedAttempts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts
}

// Close stops the Listener: it stops listening and makes a running Accept
// return. It is safe to call more than once.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	err := l.shutdown()
	l.acceptWG.Wait()
	return err
}

// shutdown stops listening; the first call's error is returned, later calls
// return nil.
func (l *Listener) shutdown() error {
	var err error
	l.stopOnce.Do(func() {
		close(l.stop)
		err = l.ln.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// acceptLoop hands incoming connections to Accept until shutdown.
func (l *Listener) acceptLoop() {
	defer l.acceptWG.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("pairing listener: accept failed", "err", err)
			select {
			case <-l.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case l.conns <- c:
		case <-l.stop:
			_ = c.Close()
			return
		}
	}
}

// result is what a connection handler reports to Accept: the outcome of a
// pairing with a valid proof, or that the token got burnt.
type result struct {
	offer Offer
	err   error
}

// Accept waits for a deploying node that proves the token, then receives
// its Offer, calls decide with it, and returns it once the deployer
// confirmed it received the answer.
//
// Before decide is called, the Offer is checked: valid names, a CA
// certificate, a certificate it signed for this node (the nodeName given to
// Listen) and the matching key, valid JSON in Extra. decide accepts the
// Offer by returning an Accept (if its NodeName is empty it is set to this
// node's name; any other name is refused), or refuses it by returning an
// error, whose text is sent to the deployer as the reason (so it must not
// hold secrets); Accept then returns an error matching ErrRefused. decide
// must not install anything: the pairing is complete only when Accept
// returns the Offer. It runs on another goroutine, should answer within
// StepTimeout, and Accept does not return before it does.
//
// Wrong proofs and garbage count as failed attempts and Accept keeps
// waiting. It returns when:
//   - a pairing completed: the Offer and nil;
//   - a deployer proved the token, but the pairing then failed or was
//     refused: that error (the token is consumed all the same);
//   - MaxAttempts attempts failed: ErrTooManyAttempts;
//   - the token expired (and no pairing is under way): ErrExpired;
//   - ctx is done: its error (the token is not consumed unless a pairing
//     was under way; Accept may be called again);
//   - the Listener was closed: an error matching net.ErrClosed.
//
// Once the token is consumed, burnt or expired, the Listener stops
// listening and every later Accept returns ErrTokenBurnt,
// ErrTooManyAttempts or ErrExpired at once.
func (l *Listener) Accept(ctx context.Context, decide func(Offer) (Accept, error)) (Offer, error) {
	if decide == nil {
		return Offer{}, errors.New("pairing: accept: decide is nil")
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Offer{}, fmt.Errorf("pairing: accept: %w", net.ErrClosed)
	}
	if l.accepting {
		l.mu.Unlock()
		return Offer{}, errors.New("pairing: accept: another Accept is running")
	}
	if l.state == stateOpen && !time.Now().Before(l.expiresAt) {
		l.state = stateExpired
	}
	if err := l.stateErrLocked(); err != nil {
		l.mu.Unlock()
		_ = l.shutdown()
		return Offer{}, err
	}
	l.accepting = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.accepting = false
		l.mu.Unlock()
	}()

	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, 2) // at most one sender; room to spare
	// At most maxConcurrent connections are served at once; more wait in
	// the listen queue (not dropped, so a flood delays but does not shut
	// out the deployer).
	finished := make(chan struct{}, maxConcurrent)
	active := 0
	var wg sync.WaitGroup
	expiry := time.NewTimer(time.Until(l.expiresAt))
	defer expiry.Stop()

	var res *result
loop:
	for {
		var incoming <-chan net.Conn
		if active < maxConcurrent {
			incoming = l.conns
		}
		select {
		case c := <-incoming:
			active++
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { finished <- struct{}{} }()
				l.serve(hctx, c, decide, results)
			}()
		case <-finished:
			active--
		case r := <-results:
			res = &r
			break loop
		case <-expiry.C:
			if l.expireIfOpen() {
				break loop
			}
			// A pairing is under way: let it finish (it is bounded by
			// StepTimeout per step and by ctx).
		case <-ctx.Done():
			break loop
		case <-l.stop:
			break loop
		}
	}
	cancel()
	wg.Wait()
	if res == nil {
		select {
		case r := <-results:
			res = &r
		default:
		}
	}

	l.mu.Lock()
	state, closed := l.state, l.closed
	l.mu.Unlock()
	switch {
	case state == stateClaimed && res != nil:
		_ = l.shutdown()
		return res.offer, res.err
	case state == stateOpen && closed:
		return Offer{}, fmt.Errorf("pairing: accept: %w", net.ErrClosed)
	case state == stateOpen:
		return Offer{}, fmt.Errorf("pairing: accept: %w", context.Cause(ctx))
	default:
		_ = l.shutdown()
		l.mu.Lock()
		defer l.mu.Unlock()
		return Offer{}, l.stateErrLocked()
	}
}

// stateErrLocked returns the error for a token that is no longer open, or
// nil. l.mu must be held.
func (l *Listener) stateErrLocked() error {
	switch l.state {
	case stateClaimed:
		return ErrTokenBurnt
	case stateBurnt:
		return ErrTooManyAttempts
	case stateExpired:
		return ErrExpired
	}
	if l.closed {
		return fmt.Errorf("pairing: accept: %w", net.ErrClosed)
	}
	return nil
}

// expireIfOpen marks an open token expired. It reports whether Accept should
// stop waiting: false only while a pairing is under way.
func (l *Listener) expireIfOpen() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == stateOpen {
		l.state = stateExpired
	}
	return l.state != stateClaimed
}

// verdict is the outcome of a connection's attempt.
type verdict int

const (
	verdictNone    verdict = iota // no proof checked (an error before it)
	verdictOK                     // right; the token is now claimed
	verdictWrong                  // failed; counted
	verdictBurnt                  // failed, and the token is now burnt
	verdictNotOpen                // the token was not open; not counted
)

// verify checks a client proof against the expected one and updates the
// token state, atomically: no more than MaxAttempts proofs are ever compared,
// however many connections try at once.
func (l *Listener) verify(got, want []byte) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == stateOpen && !time.Now().Before(l.expiresAt) {
		l.state = stateExpired
	}
	if l.state != stateOpen {
		return verdictNotOpen
	}
	if hmac.Equal(got, want) {
		l.state = stateClaimed
		return verdictOK
	}
	return l.failLocked()
}

// failed counts a failed attempt that did not get as far as a proof.
func (l *Listener) failed() verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != stateOpen {
		return verdictNotOpen
	}
	return l.failLocked()
}

func (l *Listener) failLocked() verdict {
	l.attempts++
	if l.attempts >= MaxAttempts {
		l.state = stateBurnt
		return verdictBurnt
	}
	return verdictWrong
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// errWrongProof and errNotOpen end a connection whose proof was rejected.
var (
	errWrongProof = errors.New("wrong token proof")
	errNotOpen    = errors.New("the token was already used, burnt or expired")
)

// serve handles one connection; it reports to results only when it claimed
// the token (the pairing's outcome) or burnt it.
func (l *Listener) serve(ctx context.Context, raw net.Conn, decide func(Offer) (Accept, error), results chan<- result) {
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	remote := raw.RemoteAddr().String()
	cc := &countingConn{Conn: raw}

	c, v, err := l.prove(ctx, cc)
	if v == verdictOK {
		// The token is claimed: whatever happens now, it is consumed.
		var offer Offer
		if err == nil {
			offer, err = l.exchange(c, decide)
		}
		if err != nil {
			l.log.Warn("pairing: failed after the token proof; the token is used up", "remote", remote, "err", err)
			trySend(results, result{err: fmt.Errorf("pairing with %s: %w", remote, err)})
			return
		}
		l.log.Info("pairing: done", "remote", remote, "cluster", offer.ClusterName, "deployer", offer.DeployerName)
		trySend(results, result{offer: offer})
		return
	}
	if v == verdictNone {
		switch {
		case ctx.Err() != nil:
			return // Accept is ending; not the peer's fault
		case cc.n.Load() == 0:
			// Nothing was sent (a port probe, or a client that gave up
			// at once): that cannot be a guess.
			l.log.Debug("pairing: connection closed without data", "remote", remote, "err", err)
			return
		}
		v = l.failed()
	}
	switch v {
	case verdictNotOpen:
		l.log.Warn("pairing: attempt rejected: the token is no longer accepted", "remote", remote, "err", err)
	case verdictWrong, verdictBurnt:
		l.log.Warn("pairing: attempt failed", "remote", remote, "err", err,
			"failed_attempts", l.FailedAttempts(), "max_attempts", MaxAttempts)
	}
	if v == verdictBurnt {
		l.log.Warn("pairing: too many failed attempts; the token is burnt")
		trySend(results, result{err: ErrTooManyAttempts})
	}
}

func trySend(ch chan<- result, r result) {
	select {
	case ch <- r:
	default:
	}
}

// prove runs the TLS handshake and the token proofs on the server side. It
// returns verdictNone with an error that happened before a proof could be
// checked (not counted yet), verify's verdict for a checked proof, and for
// verdictOK (the token is now claimed) the connection, ready for the
// exchange, or an error sending our proof.
func (l *Listener) prove(ctx context.Context, raw net.Conn) (*conn, verdict, error) {
	cert, err := ephemeralCert()
	if err != nil {
		return nil, verdictNone, err
	}
	c := &conn{ctx: ctx, raw: raw, tc: tls.Server(raw, serverConfig(cert)), step: l.step}
	ekm, clientLeaf, serverLeaf, err := c.handshake(cert.Certificate[0])
	if err != nil {
		return nil, verdictNone, err
	}
	m, err := c.recv("token proof", maxProofSize)
	if err != nil {
		return nil, verdictNone, err
	}
	got, err := proofMAC(m)
	if err != nil {
		return nil, verdictNone, fmt.Errorf("receive token proof: %w", err)
	}
	v := l.verify(got, computeProof(l.key, roleClient, ekm, clientLeaf, serverLeaf))
	switch v {
	case verdictOK:
	case verdictNotOpen:
		_ = c.send(&message{Type: msgReject})
		return nil, v, errNotOpen
	default:
		_ = c.send(&message{Type: msgReject})
		return nil, v, errWrongProof
	}
	mine := computeProof(l.key, roleServer, ekm, clientLeaf, serverLeaf)
	if err := c.send(&message{Type: msgProof, Version: protocolVersion, MAC: mine}); err != nil {
		return nil, v, err
	}
	return c, v, nil
}

// exchange receives the Offer, checks it, asks decide, answers, and waits
// for the deployer's confirmation.
func (l *Listener) exchange(c *conn, decide func(Offer) (Accept, error)) (Offer, error) {
	m, err := c.recv("offer", MaxMessageSize)
	if err != nil {
		return Offer{}, err
	}
	if m.Type != msgOffer || m.Offer == nil {
		return Offer{}, fmt.Errorf("receive offer: got a %q message, want an offer", m.Type)
	}
	offer := *m.Offer
	refuse := func(err error) (Offer, error) {
		reason := sanitizeReason(err.Error())
		if serr := c.send(&message{Type: msgRefuse, Reason: reason}); serr != nil {
			return Offer{}, fmt.Errorf("%w: %s (and telling the deployer failed: %w)", ErrRefused, reason, serr)
		}
		return Offer{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if _, err := offer.check(l.nodeName); err != nil {
		return refuse(fmt.Errorf("invalid offer: %w", err))
	}
	acc, err := decide(offer)
	if err != nil {
		return refuse(err)
	}
	if acc.NodeName == "" {
		acc.NodeName = l.nodeName
	}
	if acc.NodeName != l.nodeName {
		return refuse(fmt.Errorf("internal error: the answer names node %q, but this node is %q", acc.NodeName, l.nodeName))
	}
	if err := c.send(&message{Type: msgAccept, Accept: &acc}); err != nil {
		return Offer{}, err
	}
	m, err = c.recv("confirmation", maxProofSize)
	if err != nil {
		return Offer{}, err
	}
	if m.Type != msgDone {
		return Offer{}, fmt.Errorf("receive confirmation: got a %q message, want done", m.Type)
	}
	return offer, nil
}
