package hactl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pki"
	"github.com/hapair/hapair/hactl/sysinfo"
)

// Deps are the agent's collaborators; zero values get sensible defaults.
type Deps struct {
	Logger  *slog.Logger
	SysInfo sysinfo.Reader
}

// Agent is one node's HA agent. Create it with New and run it with Run.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	pg      *pg.Controller
	id      *pki.Identity // nil until this node is deployed
	sys     sysinfo.Reader
	events  *eventLog
	hub     *hub
	started time.Time
	kick    chan struct{} // asks the sampler to sample now
	done    chan struct{} // closed when Run begins to shut down

	mu        sync.Mutex // guards local, peer, system, lastRole
	local     *hapb.NodeStatus
	peer      *hapb.PeerView
	system    *hapb.SystemStatus
	lastRole  hapb.DatabaseRole
	peerWasUp bool

	peerClient hapb.PeerClient
	peerConn   *grpc.ClientConn
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
	pcfg.Logger = log
	ctl, err := pg.New(pcfg)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.NodeName, err)
	}
	a := &Agent{
		cfg:     cfg,
		log:     log,
		pg:      ctl,
		sys:     deps.SysInfo,
		hub:     newHub(),
		started: time.Now(),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		peer:    &hapb.PeerView{},
	}
	a.events = newEventLog(cfg.EventLimit, a.kickSampler)
	if cfg.Peer != nil {
		a.peer = &hapb.PeerView{Name: cfg.Peer.Name, AgentAddr: cfg.Peer.AgentAddr}
		id, err := pki.LoadIdentity(cfg.PKIDir())
		switch {
		case errors.Is(err, pki.ErrNotFound):
			return nil, fmt.Errorf("agent %s has a peer but no cluster identity in %s: issue one with `hactl pki issue`: %w", cfg.NodeName, cfg.PKIDir(), err)
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

// Run serves the Agent API on the unix socket and the Peer API on the
// cluster link, brings the database up as configured, samples until ctx is
// done, then shuts down in two phases (stop accepting, then drain) and stops
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
	local, err := listenUnix(a.cfg.SocketPath())
	if err != nil {
		return fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
	}
	localSrv := grpc.NewServer()
	hapb.RegisterAgentServer(localSrv, &agentServer{a: a})

	var peerSrv *grpc.Server
	var peerLn net.Listener
	if a.id != nil {
		peerLn, err = net.Listen("tcp", a.cfg.ListenPeer)
		if err != nil {
			local.Close()
			return fmt.Errorf("agent %s: listen on the cluster link %s: %w", a.cfg.NodeName, a.cfg.ListenPeer, err)
		}
		peerSrv = grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerTLS(a.id))))
		hapb.RegisterPeerServer(peerSrv, &peerServer{a: a})
		if err := a.dialPeer(); err != nil {
			local.Close()
			peerLn.Close()
			return fmt.Errorf("agent %s: %w", a.cfg.NodeName, err)
		}
		defer a.peerConn.Close()
	}

	a.log.Info("agent started", "socket", a.cfg.SocketPath(), "listen_peer", a.cfg.ListenPeer, "version", Version)
	a.events.add(a.cfg.NodeName, "agent", "agent started (version "+Version+")")

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	serveErr := make(chan error, 2)
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
	if peerSrv != nil {
		goServe("peer api", peerSrv, peerLn)
	}
	wg.Add(2)
	go func() { defer wg.Done(); a.sampleLoop(runCtx) }()
	go func() { defer wg.Done(); a.peerLoop(runCtx) }()
	wg.Add(1)
	go func() { defer wg.Done(); a.bootstrap(runCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	a.log.Info("agent stopping")
	close(a.done) // ends every Watch stream
	cancel()
	stopGRPC(localSrv)
	if peerSrv != nil {
		stopGRPC(peerSrv)
	}
	wg.Wait()
	_ = os.Remove(a.cfg.SocketPath())
	if !a.cfg.KeepPostgresOnExit {
		sctx, scancel := context.WithTimeout(context.Background(), 90*time.Second)
		if err := a.pg.Stop(sctx); err != nil {
			runErr = errors.Join(runErr, err)
		}
		scancel()
	}
	a.pg.Close()
	a.log.Info("agent stopped")
	return runErr
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
// make what the configuration asks for.
func (a *Agent) bootstrap(ctx context.Context) {
	defer a.kickSampler()
	st, err := a.pg.Status(ctx)
	if err != nil && st.Role == pg.RoleUnknown {
		a.fail("bootstrap", fmt.Errorf("read database state: %w", err))
		return
	}
	switch {
	case st.Role != pg.RoleUninitialized:
		if err := a.pg.Start(ctx); err != nil {
			a.fail("start", err)
			return
		}
		a.events.add(a.cfg.NodeName, "database", "PostgreSQL started")
	case a.cfg.Bootstrap == BootstrapPrimary:
		if err := a.pg.Init(ctx); err != nil {
			a.fail("init", err)
			return
		}
		a.events.add(a.cfg.NodeName, "database", "PostgreSQL initialised as primary")
	case a.cfg.Bootstrap == BootstrapStandby:
		if err := a.cloneFromPeer(ctx); err != nil {
			a.fail("clone", err)
			return
		}
		a.events.add(a.cfg.NodeName, "database", "PostgreSQL cloned from "+a.cfg.Peer.Name+" and streaming")
	default:
		a.log.Info("no database and no bootstrap configured: nothing to start")
	}
}

func (a *Agent) fail(op string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	a.log.Error(op+" failed", "err", err)
	a.events.add(a.cfg.NodeName, "error", op+": "+err.Error())
}

// cloneFromPeer asks the peer for its replication source, retrying (bounded
// by BootstrapTimeout) while the peer's database is not up yet, then clones.
func (a *Agent) cloneFromPeer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.BootstrapTimeout))
	defer cancel()
	var src *hapb.ReplicationSource
	var lastErr error
	for attempt := 1; ; attempt++ {
		cctx, ccancel := context.WithTimeout(ctx, time.Duration(a.cfg.PeerTimeout)*3)
		src, lastErr = a.peerClient.GetReplicationSource(cctx, &hapb.ReplicationSourceRequest{})
		ccancel()
		if lastErr == nil {
			break
		}
		a.log.Info("waiting for the peer's database to clone from", "attempt", attempt, "err", lastErr)
		select {
		case <-ctx.Done():
			return fmt.Errorf("ask %s for a replication source (%d attempts): %w", a.cfg.Peer.Name, attempt, lastErr)
		case <-time.After(time.Second):
		}
	}
	up := pg.Upstream{Host: src.GetHost(), Port: int(src.GetPort()), SlotName: src.GetSlotName()}
	cred := pg.Credential{User: src.GetUser(), Password: src.GetPassword()}
	return a.pg.Clone(ctx, up, cred)
}

func (a *Agent) kickSampler() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}
