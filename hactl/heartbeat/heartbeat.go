package heartbeat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultInterval is the default time between two pings on a link.
	DefaultInterval = 200 * time.Millisecond
	// DefaultDeadAfter is the default silence after which a link is down.
	DefaultDeadAfter = time.Second
	// BindRetry is how long a link whose socket could not be bound (or
	// failed) waits before trying again.
	BindRetry = time.Second
)

const (
	logEvery = time.Second // at most one rejected-packet log line per link per logEvery
	// maxSessions is how many peer sessions a link remembers for replay
	// detection of pings.
	maxSessions = 4
)

// ErrRunning is returned by Run when the Heartbeat is already running.
var ErrRunning = errors.New("heartbeat: already running")

// Link is one network path to the peer.
type Link struct {
	// Name identifies the link in status and logs, e.g. "heartbeat" or
	// "public". Names must be unique within a Config.
	Name string
	// Listen is the local UDP ip:port to bind, e.g. "198.18.0.1:5405". The
	// port must not be 0: the peer is configured with it.
	Listen string
	// Peer is the peer's ip:port on this link; pings and pongs are sent there.
	Peer string
}

// Config configures a Heartbeat. Zero Interval, DeadAfter and Logger get
// defaults; everything else is required.
type Config struct {
	// Node is this node's name, sent in every packet (1 to 63 bytes).
	Node string
	// PeerNode is the peer's name; packets from any other sender are
	// rejected. It must differ from Node.
	PeerNode string
	// Links are the paths to the peer; at least one.
	Links []Link
	// Interval is the time between two pings on each link (default 200ms).
	Interval time.Duration
	// DeadAfter is how long a link stays connected after the last valid
	// packet from the peer on it (default 1s), and how long a ping waits for
	// its pong before it counts as missed. It must be longer than Interval.
	DeadAfter time.Duration
	// Key is the secret shared by both nodes, at least 32 bytes; every packet
	// carries an HMAC-SHA256 keyed with it. New copies it.
	Key []byte
	// Logger receives link up/down transitions, bind failures and
	// (rate-limited) rejected packets. Nil discards.
	Logger *slog.Logger
}

// LinkStatus is a snapshot of one link.
type LinkStatus struct {
	// Name, Listen and Peer are the link's configuration.
	Name, Listen, Peer string
	// Connected reports whether a valid packet from the peer arrived on
	// this link less than DeadAfter ago (and the link is running).
	Connected bool
	// RTT is the last measured round-trip time (ping sent to pong received);
	// zero until the first pong.
	RTT time.Duration
	// LastSeen is when the last valid packet from the peer arrived on this
	// link; zero if none yet.
	LastSeen time.Time
	// Missed counts the pings sent on this link that got no pong within
	// DeadAfter.
	Missed uint64
	// Sent counts the datagrams (pings and pongs) sent on this link;
	// Received the valid packets from the peer accepted on it.
	Sent, Received uint64
	// Rejected counts the datagrams dropped as invalid: undecodable, bad MAC,
	// wrong sender, replayed ping, a pong matching no outstanding ping, or a
	// pong arriving DeadAfter or more after its ping (also counted in Missed).
	Rejected uint64
	// Err is the link's current problem, e.g. its socket cannot be bound
	// (the link retries every BindRetry) or sending fails; empty when none.
	Err string
}

// Heartbeat runs the heartbeat of one node on all its links. Create it with
// New, start it with Run, and read it with Status, Connected, PeerPayload
// and Changed. All methods are safe for concurrent use.
type Heartbeat struct {
	cfg     Config
	key     []byte
	log     *slog.Logger
	links   []*link
	running atomic.Bool
	// paused: this node takes no part in the heartbeat (see SetPaused).
	paused atomic.Bool

	mu            sync.Mutex // guards everything below and every link's mutable fields
	changed       chan struct{}
	payload       []byte // ours; replaced, never modified in place
	peerPayload   []byte
	peerPayloadAt time.Time
	// Per-Run protocol state, reset when Run starts.
	session     uint64 // our session nonce
	seq         uint64 // last sequence number used, shared by all links
	peerOK      bool   // peerSession is trusted
	peerSession uint64 // the trusted peer session
	confirmSeq  uint64 // highest of our seqs answered by peerSession
	payloadSeq  uint64 // seq of the ping that last set peerPayload
}

type seenSession struct {
	session, seq uint64
	at           time.Time
}

type link struct {
	cfg    Link
	listen netip.AddrPort
	peer   netip.AddrPort
	log    *slog.Logger

	// Guarded by Heartbeat.mu.
	st          LinkStatus
	outstanding map[uint64]time.Time // our unanswered pings: seq -> send time
	seen        []seenSession        // newest ping seq per peer session
	rejectLog   rateLimit
	sendLog     rateLimit
}

// rateLimit lets one event through per logEvery and counts the others.
type rateLimit struct {
	last       time.Time
	suppressed uint64
}

func (r *rateLimit) allow(now time.Time) (ok bool, suppressed uint64) {
	if !r.last.IsZero() && now.Sub(r.last) < logEvery {
		r.suppressed++
		return false, 0
	}
	r.last = now
	suppressed, r.suppressed = r.suppressed, 0
	return true, suppressed
}

// New validates cfg, applies defaults and returns a Heartbeat that is not
// running yet: no socket is bound until Run. All configuration problems are
// reported together.
func New(cfg Config) (*Heartbeat, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if cfg.Node == "" || len(cfg.Node) > MaxNodeLen {
		bad("Node %q: must be 1 to %d bytes", cfg.Node, MaxNodeLen)
	}
	if cfg.PeerNode == "" || len(cfg.PeerNode) > MaxNodeLen {
		bad("PeerNode %q: must be 1 to %d bytes", cfg.PeerNode, MaxNodeLen)
	}
	if cfg.Node != "" && cfg.Node == cfg.PeerNode {
		bad("Node and PeerNode are both %q", cfg.Node)
	}
	if len(cfg.Key) < MinKeyLen {
		bad("Key: %d bytes, need at least %d", len(cfg.Key), MinKeyLen)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	switch {
	case cfg.Interval < 0:
		bad("Interval %v: must be positive", cfg.Interval)
	case cfg.DeadAfter < 0:
		bad("DeadAfter %v: must be positive", cfg.DeadAfter)
	case cfg.DeadAfter <= cfg.Interval:
		bad("DeadAfter %v must be longer than Interval %v", cfg.DeadAfter, cfg.Interval)
	}
	if len(cfg.Links) == 0 {
		bad("Links: at least one link is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Heartbeat{
		key:     bytes.Clone(cfg.Key),
		log:     cfg.Logger,
		changed: make(chan struct{}),
	}
	names := map[string]bool{}
	listens := map[netip.AddrPort]string{}
	for i, lc := range cfg.Links {
		where := fmt.Sprintf("Links[%d] %q", i, lc.Name)
		if lc.Name == "" {
			bad("%s: Name is empty", where)
		} else if names[lc.Name] {
			bad("%s: duplicate link name", where)
		}
		names[lc.Name] = true
		listen, err := parseAddr(lc.Listen)
		if err != nil {
			bad("%s: Listen: %v", where, err)
		} else if other, dup := listens[listen]; dup {
			bad("%s: Listen %s is also used by link %q", where, listen, other)
		} else {
			listens[listen] = lc.Name
		}
		peer, perr := parseAddr(lc.Peer)
		if perr != nil {
			bad("%s: Peer: %v", where, perr)
		} else if peer.Addr().IsUnspecified() {
			bad("%s: Peer %s: unspecified address", where, peer)
		}
		if err == nil && perr == nil {
			if listen == peer {
				bad("%s: Listen and Peer are the same address %s", where, peer)
			}
			dualStack := listen.Addr().Is6() && listen.Addr().IsUnspecified()
			if !dualStack && listen.Addr().Is4() != peer.Addr().Is4() {
				bad("%s: Listen %s and Peer %s are of different address families", where, listen, peer)
			}
		}
		h.links = append(h.links, &link{
			cfg:    lc,
			listen: listen,
			peer:   peer,
			log:    cfg.Logger.With("link", lc.Name),
			st:     LinkStatus{Name: lc.Name, Listen: lc.Listen, Peer: lc.Peer},
		})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("heartbeat: invalid config: %w", errors.Join(errs...))
	}
	cfg.Links = append([]Link(nil), cfg.Links...)
	cfg.Key = nil // use h.key
	h.cfg = cfg
	return h, nil
}

// parseAddr parses a numeric ip:port with a non-zero port.
func parseAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not a numeric ip:port: %w", s, err)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: port 0", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// SetPayload sets the application data (at most MaxPayload bytes; e.g. role,
// epoch, WAL position) carried in every ping and pong sent from now on. It
// copies b. A larger b is refused with an error wrapping ErrTooLarge and the
// previous payload is kept.
func (h *Heartbeat) SetPayload(b []byte) error {
	if len(b) > MaxPayload {
		return fmt.Errorf("%w: payload is %d bytes, max %d", ErrTooLarge, len(b), MaxPayload)
	}
	var p []byte
	if len(b) > 0 {
		p = bytes.Clone(b)
	}
	h.mu.Lock()
	h.payload = p
	h.mu.Unlock()
	return nil
}

// PeerPayload returns a copy of the latest payload received from the peer in
// a trusted ping on any link, and when it arrived; nil and the zero time if
// none yet. It survives Run restarts and link failures: check Connected to
// know whether it is current.
func (h *Heartbeat) PeerPayload() (payload []byte, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return bytes.Clone(h.peerPayload), h.peerPayloadAt.Round(0)
}

// SetPaused stops (true) or resumes (false) this node's part in the
// heartbeat and reports whether that changed anything. While paused it sends
// no pings and ignores every packet it receives, so its links go down at once
// here and after DeadAfter on the peer, as the heartbeat of an appliance's
// stopped cluster services does. The sockets stay bound, so resuming is
// immediate.
func (h *Heartbeat) SetPaused(on bool) bool {
	if h.paused.Swap(on) == on {
		return false
	}
	h.mu.Lock()
	for _, l := range h.links {
		clear(l.outstanding)
		if on && l.st.Connected {
			l.st.Connected = false
		}
	}
	h.notifyLocked()
	h.mu.Unlock()
	if on {
		h.log.Info("heartbeat paused: cluster services stopped on this node")
	} else {
		h.log.Info("heartbeat resumed")
	}
	return true
}

// Paused reports whether SetPaused(true) is in force.
func (h *Heartbeat) Paused() bool { return h.paused.Load() }

// Status returns a snapshot of every link, in configuration order.
func (h *Heartbeat) Status() []LinkStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]LinkStatus, len(h.links))
	for i, l := range h.links {
		out[i] = l.st
		out[i].LastSeen = l.st.LastSeen.Round(0) // drop the monotonic reading
	}
	return out
}

// Connected reports whether at least one link is connected.
func (h *Heartbeat) Connected() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.links {
		if l.st.Connected {
			return true
		}
	}
	return false
}

// Changed returns a channel that is closed (and replaced by a new one) the
// next time any link goes up or down, so that the agent can re-evaluate at
// once. Call Changed again after each close to wait for the next change;
// read Status or Connected after the close to see the new state.
func (h *Heartbeat) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

func (h *Heartbeat) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Run binds every link's UDP socket, sends a ping every Interval on each
// link, answers the peer's pings and keeps the status up to date, until ctx
// is done. A link whose socket cannot be bound (address not present, port in
// use) or whose socket fails records the error in its LinkStatus.Err and
// retries every BindRetry without affecting the other links. Each Run uses
// a new random session nonce.
//
// Run returns nil once ctx is done, after closing every socket, marking
// every link disconnected and stopping every goroutine it started. It
// returns ErrRunning at once if another Run is active.
func (h *Heartbeat) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer h.running.Store(false)

	var nb [8]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return fmt.Errorf("heartbeat: session nonce: %w", err)
	}
	session := binary.BigEndian.Uint64(nb[:])
	h.mu.Lock()
	h.session = session
	h.seq = 0
	h.peerOK, h.peerSession, h.confirmSeq, h.payloadSeq = false, 0, 0, 0
	for _, l := range h.links {
		l.outstanding = make(map[uint64]time.Time)
		l.seen = nil
	}
	h.mu.Unlock()

	h.log.Info("heartbeat started", "node", h.cfg.Node, "peer_node", h.cfg.PeerNode,
		"links", len(h.links), "session", fmt.Sprintf("%016x", session))
	var wg sync.WaitGroup
	for _, l := range h.links {
		wg.Go(func() { h.runLink(ctx, l) })
	}
	wg.Wait()
	h.log.Info("heartbeat stopped", "node", h.cfg.Node)
	return nil
}

// runLink binds l's socket and serves it until ctx is done, rebinding every
// BindRetry after a failure.
func (h *Heartbeat) runLink(ctx context.Context, l *link) {
	var lastErr string
	for {
		var lc net.ListenConfig
		pc, err := lc.ListenPacket(ctx, "udp", l.listen.String())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			msg := "bind: " + err.Error()
			h.setErr(l, msg)
			if msg != lastErr {
				l.log.Warn("heartbeat link cannot bind, retrying", "listen", l.cfg.Listen,
					"retry_every", BindRetry, "error", err)
				lastErr = msg
			}
		} else {
			lastErr = ""
			h.setErr(l, "")
			l.log.Debug("heartbeat link listening", "listen", l.cfg.Listen, "peer", l.cfg.Peer)
			err = h.serve(ctx, l, pc.(*net.UDPConn))
			h.stopLink(l, err)
			if err == nil {
				return
			}
			l.log.Warn("heartbeat link socket failed, rebinding", "listen", l.cfg.Listen,
				"retry_every", BindRetry, "error", err)
		}
		t := time.NewTimer(BindRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (h *Heartbeat) setErr(l *link, msg string) {
	h.mu.Lock()
	l.st.Err = msg
	h.mu.Unlock()
}

// stopLink marks l down after its socket was closed; err is why (nil when
// Run is stopping).
func (h *Heartbeat) stopLink(l *link, err error) {
	h.mu.Lock()
	was := l.st.Connected
	l.st.Connected = false
	if err != nil {
		l.st.Err = err.Error()
	}
	clear(l.outstanding)
	if was {
		h.notifyLocked()
	}
	h.mu.Unlock()
	if was {
		l.log.Info("heartbeat link down", "reason", "stopped", "peer", l.cfg.Peer)
	}
}

// serve runs one bound socket: a receiver goroutine, and in this goroutine
// the ping ticker and the down-detection timer. It closes conn and waits for
// the receiver before returning: nil when ctx is done, else the receive
// error.
func (h *Heartbeat) serve(ctx context.Context, l *link, conn *net.UDPConn) error {
	recvErr := make(chan error, 1)
	go func() { recvErr <- h.receive(l, conn) }()

	ticker := time.NewTicker(h.cfg.Interval)
	defer ticker.Stop()
	deadline := time.NewTimer(h.cfg.DeadAfter)
	defer deadline.Stop()

	h.sendPing(l, conn)
	for {
		if next := h.check(l, time.Now()); next > 0 {
			deadline.Reset(next)
		}
		select {
		case <-ctx.Done():
			conn.Close()
			<-recvErr
			return nil
		case err := <-recvErr:
			conn.Close()
			if err == nil {
				err = net.ErrClosed
			}
			return fmt.Errorf("receive: %w", err)
		case <-ticker.C:
			h.sendPing(l, conn)
		case <-deadline.C:
		}
	}
}

// check expires unanswered pings and takes l down when the peer has been
// silent for DeadAfter. It returns how long until l would go down, or 0 when
// l is not connected.
func (h *Heartbeat) check(l *link, now time.Time) time.Duration {
	var left time.Duration
	var down bool
	var last time.Time
	h.mu.Lock()
	for seq, sent := range l.outstanding {
		if now.Sub(sent) >= h.cfg.DeadAfter {
			delete(l.outstanding, seq)
			l.st.Missed++
		}
	}
	if l.st.Connected {
		left = h.cfg.DeadAfter - now.Sub(l.st.LastSeen)
		if left <= 0 {
			left = 0
			down = true
			last = l.st.LastSeen
			l.st.Connected = false
			h.notifyLocked()
		}
	}
	h.mu.Unlock()
	if down {
		l.log.Warn("heartbeat link down", "reason", "peer_silent", "peer", l.cfg.Peer,
			"last_seen", last.Round(0), "dead_after", h.cfg.DeadAfter)
	}
	return left
}

func (h *Heartbeat) sendPing(l *link, conn *net.UDPConn) {
	if h.paused.Load() {
		return
	}
	h.mu.Lock()
	h.seq++
	now := time.Now()
	p := Packet{Type: TypePing, Node: h.cfg.Node, Seq: h.seq, SentAt: now.UnixNano(),
		Session: h.session, Payload: h.payload}
	// Recorded before sending: on loopback the pong can beat the write's return.
	l.outstanding[p.Seq] = now
	h.mu.Unlock()
	if !h.send(l, conn, p) {
		h.mu.Lock()
		delete(l.outstanding, p.Seq)
		h.mu.Unlock()
	}
}

// send encodes and sends p to l's peer, updating Sent and Err.
func (h *Heartbeat) send(l *link, conn *net.UDPConn, p Packet) bool {
	b, err := Encode(p, h.key)
	if err == nil {
		_, err = conn.WriteToUDPAddrPort(b, l.peer)
	}
	h.mu.Lock()
	var logIt bool
	var suppressed uint64
	if err == nil {
		l.st.Sent++
		l.st.Err = ""
	} else {
		l.st.Err = "send: " + err.Error()
		logIt, suppressed = l.sendLog.allow(time.Now())
	}
	h.mu.Unlock()
	if logIt {
		l.log.Warn("heartbeat send failed", "type", p.Type.String(), "peer", l.cfg.Peer,
			"error", err, "suppressed", suppressed)
	}
	return err == nil
}

// receive reads l's socket until it is closed (nil) or fails (the error).
func (h *Heartbeat) receive(l *link, conn *net.UDPConn) error {
	buf := make([]byte, MaxPacketSize+1) // one spare byte detects oversized datagrams
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if n > MaxPacketSize {
			h.reject(l, from, "bad_packet", fmt.Errorf("%w: datagram longer than %d bytes", ErrTooLarge, MaxPacketSize))
			continue
		}
		h.handle(l, conn, buf[:n], from)
	}
}

func (h *Heartbeat) handle(l *link, conn *net.UDPConn, b []byte, from netip.AddrPort) {
	if h.paused.Load() {
		return // not counted as rejected: nobody is listening on purpose
	}
	p, err := Decode(b, h.key)
	if err != nil {
		h.reject(l, from, "bad_packet", err)
		return
	}
	if p.Node != h.cfg.PeerNode {
		h.reject(l, from, "wrong_node", fmt.Errorf("sender %q, expected %q", p.Node, h.cfg.PeerNode))
		return
	}
	if p.Type == TypePing {
		h.handlePing(l, conn, p, from)
	} else {
		h.handlePong(l, p, from)
	}
}

func (h *Heartbeat) handlePing(l *link, conn *net.UDPConn, p Packet, from netip.AddrPort) {
	now := time.Now()
	h.mu.Lock()
	if !h.freshPingLocked(l, p.Session, p.Seq, now) {
		h.mu.Unlock()
		h.reject(l, from, "replayed_ping", fmt.Errorf("session %016x seq %d is not newer than the last accepted", p.Session, p.Seq))
		return
	}
	var up bool
	if h.peerOK && p.Session == h.peerSession {
		up = h.acceptLocked(l, now)
		if p.Seq > h.payloadSeq {
			h.payloadSeq = p.Seq
			h.peerPayload = p.Payload
			h.peerPayloadAt = now
		}
	}
	pong := Packet{Type: TypePong, Node: h.cfg.Node, Seq: p.Seq, SentAt: p.SentAt,
		Session: h.session, Payload: h.payload}
	h.mu.Unlock()
	if up {
		l.log.Info("heartbeat link up", "peer", l.cfg.Peer, "from", from.String())
	}
	h.send(l, conn, pong)
}

// freshPingLocked reports whether (session, seq) is newer than the last ping
// seen from that session on l, and records it.
func (h *Heartbeat) freshPingLocked(l *link, session, seq uint64, now time.Time) bool {
	for i := range l.seen {
		if l.seen[i].session == session {
			if seq <= l.seen[i].seq {
				return false
			}
			l.seen[i].seq, l.seen[i].at = seq, now
			return true
		}
	}
	if len(l.seen) >= maxSessions {
		// Forget the least recently active session, never the trusted one.
		victim := -1
		for i, s := range l.seen {
			if h.peerOK && s.session == h.peerSession {
				continue
			}
			if victim < 0 || s.at.Before(l.seen[victim].at) {
				victim = i
			}
		}
		l.seen = append(l.seen[:victim], l.seen[victim+1:]...)
	}
	l.seen = append(l.seen, seenSession{session: session, seq: seq, at: now})
	return true
}

func (h *Heartbeat) handlePong(l *link, p Packet, from netip.AddrPort) {
	now := time.Now()
	h.mu.Lock()
	sent, ok := l.outstanding[p.Seq]
	if !ok || sent.UnixNano() != p.SentAt {
		h.mu.Unlock()
		h.reject(l, from, "unexpected_pong", fmt.Errorf("seq %d matches no outstanding ping", p.Seq))
		return
	}
	delete(l.outstanding, p.Seq)
	rtt := now.Sub(sent)
	if rtt >= h.cfg.DeadAfter {
		l.st.Missed++
		h.mu.Unlock()
		h.reject(l, from, "late_pong", fmt.Errorf("seq %d answered after %v", p.Seq, rtt))
		return
	}
	l.st.RTT = max(rtt, 1) // never report a measured RTT as zero
	newSession, restarted := false, false
	switch {
	case !h.peerOK || (p.Session != h.peerSession && p.Seq > h.confirmSeq):
		// A fresh pong proves the session is live now; a late pong from an
		// older session (lower seq) cannot switch back to it.
		newSession, restarted = true, h.peerOK
		h.peerOK, h.peerSession, h.confirmSeq, h.payloadSeq = true, p.Session, p.Seq, 0
	case p.Session == h.peerSession && p.Seq > h.confirmSeq:
		h.confirmSeq = p.Seq
	}
	up := h.acceptLocked(l, now)
	h.mu.Unlock()
	if newSession {
		l.log.Info("heartbeat peer session confirmed", "peer_node", h.cfg.PeerNode,
			"peer_session", fmt.Sprintf("%016x", p.Session), "restarted", restarted)
	}
	if up {
		l.log.Info("heartbeat link up", "peer", l.cfg.Peer, "from", from.String(), "rtt", rtt)
	}
}

// acceptLocked records a valid packet on l and reports whether l went up.
func (h *Heartbeat) acceptLocked(l *link, now time.Time) bool {
	l.st.LastSeen = now
	l.st.Received++
	if l.st.Connected {
		return false
	}
	l.st.Connected = true
	h.notifyLocked()
	return true
}

// reject counts a dropped datagram and logs it, at most once per logEvery
// per link.
func (h *Heartbeat) reject(l *link, from netip.AddrPort, reason string, err error) {
	h.mu.Lock()
	l.st.Rejected++
	total := l.st.Rejected
	ok, suppressed := l.rejectLog.allow(time.Now())
	h.mu.Unlock()
	if ok {
		l.log.Warn("heartbeat packet rejected", "reason", reason, "error", err.Error(),
			"from", from.String(), "rejected_total", total, "suppressed", suppressed)
	}
}
