package vipnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultDialTimeout bounds each dial to a Forward's target when
// UserspaceConfig.DialTimeout is zero. It also bounds one Held probe.
const DefaultDialTimeout = 2 * time.Second

// MaxConnsPerPort is how many forwarded connections one forwarded port relays
// at the same time; further connections are closed at once, with a log line.
const MaxConnsPerPort = 1024

// Forward is one TCP port served on the VIP and the local service it relays to.
type Forward struct {
	// Port is the TCP port listened on at the VIP, 1-65535.
	Port int
	// Target is the host:port of the local service, e.g. "127.0.0.5:5432".
	Target string
}

// UserspaceConfig configures NewUserspace.
type UserspaceConfig struct {
	// Addr is the VIP, a loopback IP address such as 127.0.0.12.
	Addr string
	// Forwards are the ports served while the VIP is held; at least one,
	// with distinct ports.
	Forwards []Forward
	// Logger receives acquire/release events and connection problems; nil
	// discards them.
	Logger *slog.Logger
	// DialTimeout bounds each dial to a target; zero means DefaultDialTimeout.
	DialTimeout time.Duration
}

// Userspace is the user-space Holder: it holds a loopback VIP by listening on
// Addr:Port for every Forward and relaying each accepted connection to the
// Forward's Target (both directions, half-close passed on).
//
// The kernel lets only one socket listen on an address and port, so only one
// Userspace (in any process) holds a given VIP at a time; Acquire reports
// ErrConflict when the port is already bound.
//
// Concurrency contract: all methods are safe for concurrent use. Acquire,
// Release and Close are serialized; Held, Connections, Counters and Address
// never wait for them. Every goroutine (accept loops, relays) belongs to the
// Userspace: Release stops those of the released VIP and Close waits for all.
type Userspace struct {
	addr        string // canonical form of the VIP
	forwards    []Forward
	log         *slog.Logger
	dialTimeout time.Duration
	maxConns    int64 // per port; MaxConnsPerPort, lowered by tests

	opMu sync.Mutex // serializes Acquire, Release and Close

	mu       sync.Mutex // guards the fields below
	sess     *session   // non-nil while the VIP is held
	closed   bool
	draining []*session // released sessions whose goroutines were not yet seen to end

	accepted    atomic.Uint64 // connections admitted for forwarding
	failedDials atomic.Uint64 // dials to a target that failed
	conns       atomic.Int64  // forwarded connections open
	running     atomic.Int64  // goroutines started and not yet ended
}

var _ Holder = (*Userspace)(nil)

// NewUserspace checks cfg and returns a Userspace that holds nothing yet.
func NewUserspace(cfg UserspaceConfig) (*Userspace, error) {
	addr, err := parseLoopback(cfg.Addr)
	if err != nil {
		return nil, err
	}
	if len(cfg.Forwards) == 0 {
		return nil, errors.New("vipnet: Forwards is empty: the user-space VIP needs at least one port to serve")
	}
	seen := make(map[int]bool, len(cfg.Forwards))
	for i, f := range cfg.Forwards {
		if f.Port < 1 || f.Port > 65535 {
			return nil, fmt.Errorf("vipnet: Forwards[%d]: Port %d is out of range 1-65535", i, f.Port)
		}
		if seen[f.Port] {
			return nil, fmt.Errorf("vipnet: Forwards[%d]: Port %d is listed twice", i, f.Port)
		}
		seen[f.Port] = true
	}
	for i, f := range cfg.Forwards {
		if err := checkTarget(f.Target, addr, seen); err != nil {
			return nil, fmt.Errorf("vipnet: Forwards[%d] (port %d): %w", i, f.Port, err)
		}
	}
	if cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("vipnet: DialTimeout %v is negative", cfg.DialTimeout)
	}
	dt := cfg.DialTimeout
	if dt == 0 {
		dt = DefaultDialTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Userspace{
		addr:        addr.String(),
		forwards:    append([]Forward(nil), cfg.Forwards...),
		log:         log.With("vip", addr.String()),
		dialTimeout: dt,
		maxConns:    MaxConnsPerPort,
	}, nil
}

func parseLoopback(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, errors.New("vipnet: Addr is empty: want a loopback IP address such as 127.0.0.12")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vipnet: Addr %q is not an IP address: want a loopback IP such as 127.0.0.12", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("vipnet: Addr %q has a zone: want a plain loopback IP such as 127.0.0.12", s)
	}
	a = a.Unmap()
	if !a.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("vipnet: Addr %s is not a loopback address: the user-space holder serves only 127.0.0.0/8 or ::1", a)
	}
	return a, nil
}

func checkTarget(t string, vip netip.Addr, vipPorts map[int]bool) error {
	if t == "" {
		return errors.New("target is empty: want host:port of the local service")
	}
	host, port, err := net.SplitHostPort(t)
	if err != nil {
		return fmt.Errorf("target %q is not host:port: %v", t, err)
	}
	if host == "" {
		return fmt.Errorf("target %q has no host", t)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("target %q: port %q is not a number in 1-65535", t, port)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Unmap() == vip && vipPorts[n] {
		return fmt.Errorf("target %q is the VIP's own forwarded port: it would relay to itself", t)
	}
	return nil
}

// Address returns the VIP, e.g. "127.0.0.12". Safe for concurrent use.
func (u *Userspace) Address() string { return u.addr }

// Connections returns how many forwarded connections are open now, counting
// those still dialing their target. Safe for concurrent use.
func (u *Userspace) Connections() int { return int(u.conns.Load()) }

// Counters returns, since NewUserspace, how many client connections were
// accepted for forwarding (Held probes and connections refused over the limit
// are not counted) and how many dials to a target failed. Safe for concurrent
// use.
func (u *Userspace) Counters() (accepted, failedDials uint64) {
	return u.accepted.Load(), u.failedDials.Load()
}

// Acquire takes the VIP by listening on Addr:Port for every Forward. It
// returns nil at once when they are already being served. If a port is bound
// by someone else it returns an error wrapping ErrConflict that names the
// address, after closing the listeners it had opened for other ports. After
// Close it returns ErrClosed. Serialized with Release and Close.
func (u *Userspace) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vipnet: acquire %s: %w", u.addr, err)
	}
	u.opMu.Lock()
	defer u.opMu.Unlock()
	u.mu.Lock()
	closed, s := u.closed, u.sess
	u.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if s != nil {
		if s.serving() {
			return nil
		}
		// A listener stopped behind our back: start over rather than hold
		// the VIP half-way.
		u.log.Warn("vipnet: a VIP listener stopped; acquiring again")
		_ = u.releaseLocked(ctx)
	}

	var lc net.ListenConfig
	lns := make([]net.Listener, 0, len(u.forwards))
	for _, f := range u.forwards {
		hp := net.JoinHostPort(u.addr, strconv.Itoa(f.Port))
		ln, err := lc.Listen(ctx, "tcp", hp)
		if err == nil {
			lns = append(lns, ln)
			continue
		}
		for _, l := range lns {
			l.Close()
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("vipnet: acquire %s: %w: %s is already bound on this host (by the other node's holder or another program): %w",
				u.addr, ErrConflict, hp, err)
		}
		return fmt.Errorf("vipnet: acquire %s: %w", u.addr, err)
	}

	s = &session{u: u, conns: make(map[net.Conn]struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for i, ln := range lns {
		s.ports = append(s.ports, &port{
			fwd:      u.forwards[i],
			ln:       ln,
			hostport: ln.Addr().String(),
			probes:   make(map[*probe]struct{}),
		})
	}
	u.mu.Lock()
	u.sess = s
	u.mu.Unlock()
	for _, p := range s.ports {
		s.spawn(func() { s.acceptLoop(p) })
	}
	u.log.Info("vipnet: VIP acquired", "ports", len(s.ports))
	return nil
}

// Release gives up the VIP: it closes the listeners, cuts every forwarded
// connection (so clients reconnect to the new Active node) and cancels dials
// in flight, then waits until the goroutines serving them have ended. Not
// holding the VIP is success. The VIP is released even when ctx ends first;
// the error then only says the goroutines were not yet seen to end (Close
// waits for them). Serialized with Acquire and Close.
func (u *Userspace) Release(ctx context.Context) error {
	u.opMu.Lock()
	defer u.opMu.Unlock()
	return u.releaseLocked(ctx)
}

// releaseLocked is Release; the caller holds opMu.
func (u *Userspace) releaseLocked(ctx context.Context) error {
	u.mu.Lock()
	s := u.sess
	u.sess = nil
	u.mu.Unlock()
	if s == nil {
		return nil
	}
	cut := s.shutdown()
	u.log.Info("vipnet: VIP released", "connections_cut", cut)
	select {
	case <-s.done:
		return nil
	default:
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		u.mu.Lock()
		u.draining = append(u.draining, s)
		u.mu.Unlock()
		return fmt.Errorf("vipnet: release %s: VIP released, connection goroutines still ending: %w", u.addr, ctx.Err())
	}
}

// Held reports whether the VIP is really served by this Userspace now: every
// listener's accept loop is running and a TCP connection to each Addr:Port
// arrives at this Userspace's own listener (a probe, which is not forwarded
// and not counted). A probe that goes elsewhere or nowhere means false. Each
// call is bounded by ctx and by DialTimeout; the error is non-nil only when
// ctx ended. Safe for concurrent use; it never waits for Acquire or Release.
func (u *Userspace) Held(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("vipnet: held %s: %w", u.addr, err)
	}
	u.mu.Lock()
	s := u.sess
	u.mu.Unlock()
	if s == nil {
		return false, nil
	}
	pctx, cancel := context.WithTimeout(ctx, u.dialTimeout)
	defer cancel()
	for _, p := range s.ports {
		if !s.serving() || !s.probe(pctx, p) {
			if err := ctx.Err(); err != nil {
				return false, fmt.Errorf("vipnet: held %s: %w", u.addr, err)
			}
			return false, nil
		}
	}
	return true, nil
}

// Close releases the VIP and waits for every goroutine the Userspace
// started, including those of earlier releases whose wait was cut short.
// Afterwards Acquire returns ErrClosed. Calling Close again returns nil.
func (u *Userspace) Close() error {
	u.opMu.Lock()
	defer u.opMu.Unlock()
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	u.mu.Unlock()
	_ = u.releaseLocked(context.Background())
	u.mu.Lock()
	draining := u.draining
	u.draining = nil
	u.mu.Unlock()
	for _, s := range draining {
		<-s.done
	}
	return nil
}

// session is one period of holding the VIP: from Acquire to Release.
type session struct {
	u      *Userspace
	ctx    context.Context // cancelled by shutdown; bounds dials and probes
	cancel context.CancelFunc
	ports  []*port
	wg     sync.WaitGroup // every goroutine of the session
	done   chan struct{}  // closed when wg is done, after shutdown

	mu    sync.Mutex
	cut   bool                  // shutdown has run: no more conns may be tracked
	conns map[net.Conn]struct{} // client and target conns of forwarded connections
}

// port is one listener of a session.
type port struct {
	fwd      Forward
	ln       net.Listener
	hostport string       // the listener's address, dialled by Held probes
	active   atomic.Int64 // forwarded connections on this port
	stopped  atomic.Bool  // the accept loop has ended

	lastRefusal atomic.Int64  // unix nanos of the last refusal log line
	suppressed  atomic.Uint64 // refusals not logged since

	mu     sync.Mutex
	probes map[*probe]struct{} // Held probes dialling this port now
}

// probe is one Held connection to a port. The accepting side recognises it by
// its source address, which the prober publishes as soon as its dial returns.
type probe struct {
	ready chan struct{}  // closed once local is set or the dial failed
	local netip.AddrPort // the probe's source address; written before ready is closed
	hit   chan struct{}  // closed by the accepting side when it saw the probe
	once  sync.Once
}

// spawn runs f in a goroutine owned by the session.
func (s *session) spawn(f func()) {
	s.wg.Add(1)
	s.u.running.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.u.running.Add(-1)
		f()
	}()
}

// serving reports whether the session is live and every accept loop runs.
func (s *session) serving() bool {
	if s.ctx.Err() != nil {
		return false
	}
	for _, p := range s.ports {
		if p.stopped.Load() {
			return false
		}
	}
	return true
}

// shutdown stops the session: no new connections, dials cancelled, open
// connections cut. It returns how many forwarded connections were open; s.done
// is closed once all goroutines have ended.
func (s *session) shutdown() int64 {
	s.cancel()
	for _, p := range s.ports {
		p.ln.Close()
	}
	cut := s.u.conns.Load()
	s.mu.Lock()
	s.cut = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	s.done = make(chan struct{})
	go func() {
		s.wg.Wait()
		close(s.done)
	}()
	return cut
}

// track registers c so shutdown cuts it; false when shutdown already ran.
func (s *session) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// untrack forgets c and closes it.
func (s *session) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

func (s *session) acceptLoop(p *port) {
	defer p.stopped.Store(true)
	var delay time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				s.u.log.Warn("vipnet: VIP listener closed unexpectedly", "addr", p.hostport)
				return
			}
			// Temporary trouble such as too many open files: back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.u.log.Warn("vipnet: accept failed; retrying", "addr", p.hostport, "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		probes := p.pendingProbes()
		if len(probes) == 0 && p.active.Load() >= s.u.maxConns {
			s.refuse(p, c)
			continue
		}
		s.spawn(func() { s.handle(p, c, probes) })
	}
}

// pendingProbes returns the probes dialling p now. A probe connection that
// was accepted is necessarily among them, since probes register first.
func (p *port) pendingProbes() []*probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.probes) == 0 {
		return nil
	}
	out := make([]*probe, 0, len(p.probes))
	for pr := range p.probes {
		out = append(out, pr)
	}
	return out
}

// refuse closes c, which is over the connection limit, and logs it at most
// once a second per port.
func (s *session) refuse(p *port, c net.Conn) {
	remote := c.RemoteAddr().String()
	c.Close()
	now := time.Now().UnixNano()
	last := p.lastRefusal.Load()
	if now-last < int64(time.Second) || !p.lastRefusal.CompareAndSwap(last, now) {
		p.suppressed.Add(1)
		return
	}
	s.u.log.Warn("vipnet: too many forwarded connections; refusing connection",
		"addr", p.hostport, "limit", s.u.maxConns, "remote", remote,
		"refused_unlogged", p.suppressed.Swap(0))
}

// handle serves one accepted connection: a Held probe, or a client to relay.
func (s *session) handle(p *port, client net.Conn, probes []*probe) {
	if len(probes) > 0 && s.isProbe(client, probes) {
		client.Close()
		return
	}
	if !s.track(client) {
		client.Close()
		return
	}
	defer s.untrack(client) // runs last: counters are down before the client sees the close
	if p.active.Add(1) > s.u.maxConns {
		p.active.Add(-1)
		s.refuse(p, client)
		return
	}
	defer p.active.Add(-1)
	s.u.accepted.Add(1)
	s.u.conns.Add(1)
	defer s.u.conns.Add(-1)

	dctx, cancel := context.WithTimeout(s.ctx, s.u.dialTimeout)
	var d net.Dialer
	target, err := d.DialContext(dctx, "tcp", p.fwd.Target)
	cancel()
	if err != nil {
		if s.ctx.Err() != nil {
			return // released while dialling: not the target's fault
		}
		s.u.failedDials.Add(1)
		s.u.log.Warn("vipnet: cannot reach forward target; closing client connection",
			"addr", p.hostport, "target", p.fwd.Target, "remote", client.RemoteAddr().String(), "err", err)
		return
	}
	if !s.track(target) {
		target.Close()
		return
	}
	defer s.untrack(target)
	s.relay(client, target)
}

// isProbe reports whether c is the connection of one of probes, and if so
// tells that probe it arrived.
func (s *session) isProbe(c net.Conn, probes []*probe) bool {
	remote := addrPort(c.RemoteAddr())
	for _, pr := range probes {
		select {
		case <-pr.ready:
		case <-s.ctx.Done():
			return false
		}
		if pr.local.IsValid() && pr.local == remote {
			pr.once.Do(func() { close(pr.hit) })
			return true
		}
	}
	return false
}

// probe dials p and reports whether the connection arrived at p's listener.
func (s *session) probe(ctx context.Context, p *port) bool {
	pr := &probe{ready: make(chan struct{}), hit: make(chan struct{})}
	p.mu.Lock()
	p.probes[pr] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.probes, pr)
		p.mu.Unlock()
	}()

	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.hostport)
	if err != nil {
		close(pr.ready)
		return false
	}
	defer c.Close()
	pr.local = addrPort(c.LocalAddr())
	close(pr.ready)
	select {
	case <-pr.hit:
		return true
	case <-ctx.Done():
		return false
	case <-s.ctx.Done():
		return false
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// relay copies both ways between client and target until both directions
// have ended. An end of input is passed on as a half-close; an error in
// either direction closes both connections, which ends the other direction.
func (s *session) relay(client, target net.Conn) {
	done := make(chan struct{})
	s.spawn(func() {
		defer close(done)
		pipe(target, client)
	})
	pipe(client, target)
	<-done
}

// pipe copies src to dst; at the end of src it half-closes dst.
func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
		dst.Close()
	}
}
