package hactl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"github.com/hapair/hapair/hactl/cluster"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/heartbeat"
	"github.com/hapair/hapair/hactl/pairing"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pki"
	"github.com/hapair/hapair/hactl/sysinfo"
	"github.com/hapair/hapair/vipnet"
)

// Deps are the agent's collaborators; zero values get sensible defaults.
type Deps struct {
	Logger  *slog.Logger
	SysInfo sysinfo.Reader
	// VIP overrides the holder built from the configuration (tests).
	VIP vipnet.Holder
}

// Agent is one node's HA agent. Create it with New and run it with Run.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	pg      *pg.Controller // nil on the witness
	vip     vipnet.Holder  // nil without a VIP (and on the witness)
	id      *pki.Identity
	sys     sysinfo.Reader
	events  *eventLog
	hub     *hub
	marker  *marker
	started time.Time
	kick    chan struct{}  // asks the sampler to sample now
	recon   chan struct{}  // asks the reconciler to run now
	done    chan struct{}  // closed when Run begins to shut down
	restart chan struct{}  // a deployment changed the membership
	bg      sync.WaitGroup // background work started by calls (pairing)

	pairMu  sync.Mutex
	pairing *pairing.Listener

	node    *cluster.Node // nil until raft runs (and after teardown)
	nodeMu  sync.Mutex
	hb      *heartbeat.Heartbeat
	hbMu    sync.Mutex
	clients map[string]hapb.PeerClient // Peer API of every other member
	conns   []*grpc.ClientConn

	opMu        sync.Mutex   // one operation (or reconcile pass) at a time
	established atomic.Bool  // leader that promoted and holds the VIP
	holding     atomic.Bool  // Active without quorum (two voters, peer away)
	planned     atomic.Bool  // a planned handover is running on this node
	leaderSince atomic.Int64 // unix nanos when leadership was won

	mu           sync.Mutex // guards the fields below
	local        *hapb.NodeStatus
	peer         *hapb.PeerView
	system       *hapb.SystemStatus
	lastRole     hapb.DatabaseRole
	peerWasUp    bool
	askCancel    context.CancelFunc // ends a reconcile pass's question to the Active node (askContext)
	primaryLSN   uint64             // last WAL position the Active node announced
	primarySync  string             // its synchronous standby, as it announced
	primaryAt    time.Time          // when
	peerLostAt   time.Time          // when the peer's replication was last seen missing (sync mode)
	syncDegraded bool
	// notStreamingSince: when this standby was last seen not streaming.
	notStreamingSince time.Time
	// lastFollowErr: the last failure to follow the Active node, so a
	// repeated one is logged, not recorded as a new event every second.
	lastFollowErr string
	// peerBeatRole is the database role the peer's latest heartbeat
	// announced, at peerBeatAt.
	peerBeatRole  string
	peerBeatAt    time.Time
	peerBeatEpoch uint64
}

// New checks cfg and prepares the agent; it starts nothing.
func New(cfg Config, deps Deps) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", cfg.NodeName)
	a := &Agent{
		cfg:     cfg,
		log:     log,
		sys:     deps.SysInfo,
		hub:     newHub(),
		marker:  &marker{path: filepath.Join(cfg.StateDir, "cluster-membership.json")},
		started: time.Now(),
		kick:    make(chan struct{}, 1),
		recon:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		restart: make(chan struct{}, 1),
		peer:    &hapb.PeerView{},
		clients: map[string]hapb.PeerClient{},
	}
	a.events = newEventLog(cfg.EventLimit, a.kickSampler)
	if !cfg.IsWitness() {
		var runAs *pg.OSUser
		if os.Geteuid() == 0 {
			u, err := pg.LookupOSUser(cfg.Postgres.OSUser)
			if err != nil {
				return nil, fmt.Errorf("agent runs as root, PostgreSQL must not: %w", err)
			}
			runAs = u
		}
		pcfg, err := cfg.pgConfig(runAs)
		if err != nil {
			return nil, err
		}
		if hb := cfg.Self().HeartbeatAddr; hb != "" {
			pcfg.ExtraListenAddrs = []string{hb}
		}
		// A VIP on an interface comes and goes: PostgreSQL must answer on
		// it without a restart (the user-space VIP forwards to the public
		// address instead).
		pcfg.ListenAll = cfg.VIP != nil && cfg.VIP.Mode == "linux"
		pcfg.Logger = log
		ctl, err := pg.New(pcfg)
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", cfg.NodeName, err)
		}
		a.pg = ctl
		a.vip = deps.VIP
		if a.vip == nil && cfg.VIP != nil {
			h, err := newVIPHolder(cfg, log)
			if err != nil {
				return nil, fmt.Errorf("agent %s: %w", cfg.NodeName, err)
			}
			a.vip = h
		}
	}
	if peer, ok := cfg.PeerMember(); ok {
		a.peer = &hapb.PeerView{Name: peer.Name, AgentAddr: peer.AgentAddr()}
	}
	if len(cfg.Members) > 1 {
		id, err := pki.LoadIdentity(cfg.PKIDir())
		switch {
		case errors.Is(err, pki.ErrNotFound):
			return nil, fmt.Errorf("agent %s has cluster members but no cluster identity in %s: issue one with `hactl pki issue`: %w", cfg.NodeName, cfg.PKIDir(), err)
		case err != nil:
			return nil, fmt.Errorf("agent %s: %w", cfg.NodeName, err)
		}
		if id.NodeName != cfg.NodeName {
			return nil, fmt.Errorf("agent %s: the identity in %s is %s's", cfg.NodeName, cfg.PKIDir(), id.NodeName)
		}
		a.id = id
	}
	return a, nil
}

// newVIPHolder builds the configured VIP holder.
func newVIPHolder(cfg Config, logger *slog.Logger) (vipnet.Holder, error) {
	v := cfg.VIP
	switch v.Mode {
	case "userspace":
		self := cfg.Self()
		ports := v.Ports
		if len(ports) == 0 {
			ports = []int{self.PGPort}
		}
		var fw []vipnet.Forward
		for _, p := range ports {
			fw = append(fw, vipnet.Forward{Port: p, Target: net.JoinHostPort(self.PublicAddr, strconv.Itoa(p))})
		}
		return vipnet.NewUserspace(vipnet.UserspaceConfig{Addr: v.Address, Forwards: fw})
	case "linux":
		bits := v.PrefixLen
		if bits == 0 {
			bits = 32
			if ip := net.ParseIP(v.Address); ip != nil && ip.To4() == nil {
				bits = 128
			}
		}
		prefix, err := netip.ParsePrefix(v.Address + "/" + strconv.Itoa(bits))
		if err != nil {
			return nil, fmt.Errorf("vip %s/%d: %w", v.Address, v.PrefixLen, err)
		}
		// A LAN answers an ARP probe within milliseconds; every millisecond
		// of the probe is write unavailability during a handover.
		return vipnet.NewLinux(vipnet.LinuxConfig{Address: prefix, Interface: v.Interface, Logger: logger, ProbeTimeout: 100 * time.Millisecond})
	}
	return nil, fmt.Errorf("vip mode %q is not available", v.Mode)
}

// Run serves the Agent API on the unix socket and the Peer API on the
// cluster links, takes part in the consensus, brings the database up as
// configured, samples and reconciles until ctx is done, then shuts down in
// two phases (stop accepting, then drain): releases the VIP and stops
// PostgreSQL unless configured to keep it.
func (a *Agent) Run(ctx context.Context) error {
	// The state directory is the agent's; PostgreSQL's OS user must be able
	// to traverse it (not list it) to reach pg/.
	if err := os.MkdirAll(a.cfg.StateDir, 0o711); err != nil {
		return fmt.Errorf("agent %s: state directory: %w", a.cfg.NodeName, err)
	}
	if err := os.Chmod(a.cfg.StateDir, 0o711); err != nil {
		return fmt.Errorf("agent %s: state directory: %w", a.cfg.NodeName, err)
	}
	if err := a.marker.load(); err != nil {
		return fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
	}
	local, err := listenUnix(a.cfg.SocketPath())
	if err != nil {
		return fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
	}
	localSrv := grpc.NewServer()
	hapb.RegisterAgentServer(localSrv, &agentServer{a: a})

	var peerSrv *grpc.Server
	var peerLns []net.Listener
	closeAll := func() {
		local.Close()
		for _, l := range peerLns {
			l.Close()
		}
		for _, c := range a.conns {
			c.Close()
		}
	}
	if a.id != nil {
		self := a.cfg.Self()
		for _, addr := range self.Addrs() {
			ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(self.AgentPort)))
			if err != nil {
				closeAll()
				return fmt.Errorf("agent %s: listen on the cluster link: %w", a.cfg.NodeName, err)
			}
			peerLns = append(peerLns, ln)
		}
		peerSrv = grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerTLS(a.id))))
		hapb.RegisterPeerServer(peerSrv, &peerServer{a: a})
		if err := a.dialMembers(); err != nil {
			closeAll()
			return fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
		}
		if !a.marker.standalone() {
			if err := a.startRaft(); err != nil {
				closeAll()
				return fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
			}
		}
	}
	defer func() {
		for _, c := range a.conns {
			c.Close()
		}
	}()

	a.log.Info("agent started", "socket", a.cfg.SocketPath(), "version", Version, "witness", a.cfg.IsWitness())
	a.events.add(a.cfg.NodeName, "agent", "agent started (version "+Version+")")

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	serveErr := make(chan error, 1+len(peerLns))
	goServe := func(name string, s *grpc.Server, ln net.Listener) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				serveErr <- fmt.Errorf("serve %s: %w", name, err)
			}
		}()
	}
	goServe("agent api", localSrv, local)
	for _, ln := range peerLns {
		goServe("peer api "+ln.Addr().String(), peerSrv, ln)
	}
	goLoop := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(runCtx) }()
	}
	goLoop(a.sampleLoop)
	goLoop(a.peerLoop)
	goLoop(a.heartbeatLoop)
	goLoop(a.leaderLoop)
	goLoop(a.reconcileLoop)
	goLoop(a.tieBreakerLoop)
	goLoop(a.bootstrap)

	var runErr error
	restarting := false
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	case <-a.restart:
		restarting = true
		// Let the operation that asked for it send its last word.
		time.Sleep(200 * time.Millisecond)
	}
	a.log.Info("agent stopping")
	close(a.done) // ends every Watch stream
	cancel()
	stopGRPC(localSrv)
	if peerSrv != nil {
		stopGRPC(peerSrv)
	}
	wg.Wait()
	a.pairMu.Lock()
	if a.pairing != nil {
		a.pairing.Close()
	}
	a.pairMu.Unlock()
	a.bg.Wait()
	if n := a.raftNode(); n != nil {
		if err := n.Shutdown(); err != nil {
			a.log.Warn("raft shutdown", "err", err)
		}
	}
	_ = os.Remove(a.cfg.SocketPath())
	sctx, scancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer scancel()
	if a.vip != nil {
		if err := a.vip.Close(); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("release vip: %w", err))
		}
	}
	if a.pg != nil {
		if !a.cfg.KeepPostgresOnExit && !restarting {
			if err := a.pg.Stop(sctx); err != nil {
				runErr = errors.Join(runErr, err)
			}
		}
		a.pg.Close()
	}
	a.log.Info("agent stopped")
	if restarting && runErr == nil {
		return ErrRestart
	}
	return runErr
}

// dialMembers prepares an mTLS client to every other member's Peer API. It
// reconnects fast: grpc's default backoff (up to two minutes) would hide a
// peer that is back.
func (a *Agent) dialMembers() error {
	for _, m := range a.cfg.Members {
		if m.Name == a.cfg.NodeName {
			continue
		}
		conn, err := grpc.NewClient(m.AgentAddr(),
			grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS(a.id, m.Name))),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: time.Second,
			}))
		if err != nil {
			return fmt.Errorf("peer client for %s at %s: %w", m.Name, m.AgentAddr(), err)
		}
		a.conns = append(a.conns, conn)
		a.clients[m.Name] = hapb.NewPeerClient(conn)
	}
	return nil
}

// stopGRPC stops accepting, lets calls in flight finish for a moment, then
// cuts them.
func stopGRPC(s *grpc.Server) {
	stopped := make(chan struct{})
	go func() { s.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		s.Stop()
		<-stopped
	}
}

// listenUnix listens on path, refusing if another agent is serving it and
// removing a stale socket left by a crash.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another agent is already serving %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

// bootstrap brings the database up once at start: start what exists, or
// make what the configuration asks for. Afterwards the reconciler keeps it
// in the role the cluster decided.
func (a *Agent) bootstrap(ctx context.Context) {
	if a.pg == nil {
		return
	}
	defer a.kickSampler()
	defer a.kickReconcile()
	exists, err := a.pg.Initialized()
	if err != nil {
		a.fail("bootstrap", fmt.Errorf("read database state: %w", err))
		return
	}
	switch {
	case exists && a.marker.deactivated():
		a.log.Info("this node was deactivated by a teardown; its database stays stopped")
	case exists:
		if err := a.pg.Reconfigure(ctx); err != nil {
			a.fail("reconfigure", err)
		}
		// The reconciler starts it in the role the cluster decided; a
		// stand-alone node (or one outside any cluster) just starts.
		if a.raftNode() == nil {
			if err := a.pg.Start(ctx); err != nil {
				a.fail("start", err)
				return
			}
			a.events.add(a.cfg.NodeName, "database", "PostgreSQL started")
		}
	case a.cfg.Bootstrap == BootstrapPrimary:
		if err := a.pg.Init(ctx); err != nil {
			a.fail("init", err)
			return
		}
		a.events.add(a.cfg.NodeName, "database", "PostgreSQL initialised as primary")
	case a.cfg.Bootstrap == BootstrapStandby:
		peer, _ := a.cfg.PeerMember()
		if err := a.cloneFrom(ctx, peer.Name, time.Duration(a.cfg.Timers.Bootstrap)); err != nil {
			a.fail("clone", err)
			return
		}
		a.events.add(a.cfg.NodeName, "database", "PostgreSQL cloned from "+peer.Name+" and streaming")
	default:
		a.log.Info("no database and no bootstrap configured: waiting to be cloned from the Active node")
	}
}

func (a *Agent) fail(op string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	a.log.Error(op+" failed", "err", err)
	a.events.add(a.cfg.NodeName, "error", op+": "+err.Error())
}

// replicationSource asks member's agent how to stream from it (it ensures
// the slot it keeps for this node).
func (a *Agent) replicationSource(ctx context.Context, member string) (*hapb.ReplicationSource, error) {
	c, ok := a.clients[member]
	if !ok {
		return nil, fmt.Errorf("no client for %s", member)
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Duration(a.cfg.Timers.PeerTimeout))
	defer cancel()
	src, err := c.GetReplicationSource(cctx, &hapb.ReplicationSourceRequest{})
	if err != nil {
		return nil, fmt.Errorf("ask %s for a replication source: %w", member, err)
	}
	return src, nil
}

// upstreamOf is where a standby of src streams from: the source's
// heartbeat-link address first, then its public one (libpq tries in order).
func (a *Agent) upstreamOf(src *hapb.ReplicationSource) pg.Upstream {
	host := src.GetHost()
	if m, ok := a.cfg.Member(src.GetNode()); ok && m.HeartbeatAddr != "" {
		host = m.HeartbeatAddr + "," + m.PublicAddr
	}
	return pg.Upstream{Host: host, Port: int(src.GetPort()), SlotName: src.GetSlotName()}
}

// cloneFrom asks member for its replication source, retrying (bounded by
// wait) while its database is not up yet, then clones.
func (a *Agent) cloneFrom(ctx context.Context, member string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var src *hapb.ReplicationSource
	var lastErr error
	for attempt := 1; ; attempt++ {
		src, lastErr = a.replicationSource(ctx, member)
		if lastErr == nil {
			break
		}
		a.log.Info("waiting for a database to clone from", "from", member, "attempt", attempt, "err", lastErr)
		select {
		case <-ctx.Done():
			return fmt.Errorf("clone from %s (%d attempts): %w", member, attempt, lastErr)
		case <-time.After(time.Second):
		}
	}
	cred := pg.Credential{User: src.GetUser(), Password: src.GetPassword()}
	return a.pg.Clone(ctx, a.upstreamOf(src), cred)
}

func (a *Agent) kickSampler() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Agent) kickReconcile() {
	select {
	case a.recon <- struct{}{}:
	default:
	}
}

func (a *Agent) raftNode() *cluster.Node {
	a.nodeMu.Lock()
	defer a.nodeMu.Unlock()
	return a.node
}
