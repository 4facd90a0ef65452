// Package console is the SSH transport of the hapair console: the server
// (github.com/gliderlabs/ssh), authentication against the console's own
// users (passwords and public keys), the restricted interactive session with
// the ">>" prompt and its line editor, exec mode for scripts ("ssh host
// ha_status --json") and the glue that runs the full-screen dashboard on a
// session. What a command means lives in package commands; the console only
// carries lines to commands.Registry.Dispatch and bytes back.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
	"google.golang.org/grpc"

	"github.com/hapair/hapair/commands"
	"github.com/hapair/hapair/hactl/hapb"
)

// Defaults of Config.
const (
	DefaultIdleTimeout      = 15 * time.Minute
	DefaultMaxAuthFailures  = 5
	DefaultFailureWindow    = 10 * time.Minute
	DefaultLockoutDuration  = 5 * time.Minute
	DefaultHandshakeTimeout = 30 * time.Second
	DefaultDrainTimeout     = 10 * time.Second
	maxLockoutEntries       = 4096
	maxAuthTriesPerConn     = 6
)

// DashboardSession is what the console gives a dashboard model for one
// session: the agent to watch, a lipgloss renderer bound to the session's
// terminal, the terminal's size when the dashboard opens (later sizes arrive
// as tea.WindowSizeMsg) and who is looking.
type DashboardSession struct {
	Agent    hapb.AgentClient
	Renderer *lipgloss.Renderer
	Width    int
	Height   int
	User     string
	Role     string
	NodeName string
	Now      func() time.Time
}

// DashboardFactory builds the full-screen model for one session. The model
// leaves by emitting a message for which Config.IsLeave returns true (by
// default LeaveMsg), returned directly by Update's command
// (`return m, func() tea.Msg { return LeaveMsg{} }`); tea.Quit works too.
type DashboardFactory func(ctx context.Context, s DashboardSession) tea.Model

// LeaveMsg is the message a full-screen model emits to hand the terminal back
// to the ">>" prompt.
type LeaveMsg struct{}

// Config is one console's configuration.
type Config struct {
	// Listen is the TCP address to serve, e.g. "127.0.0.1:2222".
	Listen string
	// Dir is the console's state directory: the host key, the users file,
	// per-user authorized_keys and history.
	Dir string
	// AgentSocket is the local agent's unix socket (used unless Deps.Agent
	// is set).
	AgentSocket string
	// NodeName is shown in the banner and the prompt's log lines.
	NodeName string
	// IdleTimeout ends an interactive session after this long without
	// input, also while the dashboard is open (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxAuthFailures failed logins from one source address within
	// FailureWindow lock it out for LockoutDuration.
	MaxAuthFailures int
	FailureWindow   time.Duration
	LockoutDuration time.Duration
	// HandshakeTimeout closes connections that have not authenticated in
	// this time (DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// DrainTimeout is how long Serve waits, once its context ends, for
	// sessions to finish before closing them (DefaultDrainTimeout).
	DrainTimeout time.Duration
}

// Deps are the console's collaborators.
type Deps struct {
	// Logger receives the audit and auth log (slog.Default if nil).
	Logger *slog.Logger
	// Registry holds the commands (commands.Builtin() if nil).
	Registry *commands.Registry
	// Agent overrides dialing Config.AgentSocket (tests).
	Agent hapb.AgentClient
	// Dashboard builds the full-screen dashboard; nil: the dashboard
	// command says it is not available.
	Dashboard DashboardFactory
	// IsLeave tells the message by which a dashboard model leaves; nil
	// means LeaveMsg.
	IsLeave func(tea.Msg) bool
	// Now is the clock (time.Now if nil); the lockout uses it.
	Now func() time.Time
	// BcryptCost overrides the cost of new password hashes (tests).
	BcryptCost int
}

// Server is one node's SSH console.
type Server struct {
	cfg      Config
	log      *slog.Logger
	reg      *commands.Registry
	agent    hapb.AgentClient
	conn     *grpc.ClientConn
	users    *Users
	lock     *lockout
	now      func() time.Time
	dash     DashboardFactory
	isLeave  func(tea.Msg) bool
	hostKey  gossh.Signer
	ssh      *ssh.Server
	sessions sync.WaitGroup

	mu       sync.Mutex
	ln       net.Listener
	cancels  map[*sessionState]context.CancelFunc
	draining bool
}

// New checks cfg, opens the users store and loads (or makes) the host key. It
// does not listen: Listen or Serve does.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("console: state dir %q: want an absolute path", cfg.Dir)
	}
	if cfg.Listen == "" {
		return nil, errors.New("console: no listen address")
	}
	if deps.Agent == nil && cfg.AgentSocket == "" {
		return nil, errors.New("console: no agent socket")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = DefaultFailureWindow
	}
	if cfg.LockoutDuration <= 0 {
		cfg.LockoutDuration = DefaultLockoutDuration
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	s := &Server{cfg: cfg, log: deps.Logger, reg: deps.Registry, agent: deps.Agent, now: deps.Now,
		dash: deps.Dashboard, isLeave: deps.IsLeave, cancels: map[*sessionState]context.CancelFunc{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.reg == nil {
		s.reg = commands.Builtin()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.isLeave == nil {
		s.isLeave = func(m tea.Msg) bool { _, ok := m.(LeaveMsg); return ok }
	}
	users, err := OpenUsers(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if deps.BcryptCost > 0 {
		users.Cost = deps.BcryptCost
	}
	s.users = users
	s.hostKey, err = LoadOrCreateHostKey(filepath.Join(cfg.Dir, HostKeyFile))
	if err != nil {
		return nil, err
	}
	s.lock = newLockout(cfg.MaxAuthFailures, cfg.FailureWindow, cfg.LockoutDuration, maxLockoutEntries, s.now)
	if s.agent == nil {
		conn, err := hapb.DialAgent(cfg.AgentSocket)
		if err != nil {
			return nil, err
		}
		s.conn, s.agent = conn, hapb.NewAgentClient(conn)
	}
	s.ssh = s.newSSHServer()
	if err := checkAuthConfigured(s.ssh); err != nil {
		return nil, err
	}
	return s, nil
}

// checkAuthConfigured refuses a gliderlabs server without auth handlers:
// with none, gliderlabs lets every client in ("none" authentication).
func checkAuthConfigured(srv *ssh.Server) error {
	if srv.PasswordHandler == nil || srv.PublicKeyHandler == nil {
		return errors.New("console: the SSH server has no authentication handler (it would admit everyone)")
	}
	return nil
}

// Users is the console's user store.
func (s *Server) Users() *Users { return s.users }

// HostKey is the server's public host key.
func (s *Server) HostKey() gossh.PublicKey { return s.hostKey.PublicKey() }

// Listen binds Config.Listen (Serve calls it if needed); Addr then tells
// the address, e.g. with port 0.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("console listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	return nil
}

// Addr is the listening address (nil before Listen).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections until ctx ends, then shuts down in two phases:
// stop accepting and tell every session to end (interactive sessions print
// a notice; running commands are cancelled), wait up to DrainTimeout for
// them, then close what is left. It returns nil after a clean stop.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.log.Info("console listening", "addr", s.Addr().String(), "node", s.cfg.NodeName,
		"host_key", gossh.FingerprintSHA256(s.hostKey.PublicKey()))
	errc := make(chan error, 1)
	go func() { errc <- s.ssh.Serve(s.ln) }()
	var err error
	select {
	case serr := <-errc:
		errc <- serr // for phase 2
		err = fmt.Errorf("console serve: %w", serr)
	case <-ctx.Done():
	}
	// Phase 1: stop accepting, tell every session to end, wait for them.
	s.mu.Lock()
	s.draining = true
	for _, cancel := range s.cancels {
		cancel()
	}
	s.mu.Unlock()
	_ = s.ln.Close()
	if !waitGroup(&s.sessions, s.cfg.DrainTimeout) {
		s.log.Warn("console drain incomplete; closing the connections")
	}
	// Phase 2: close every connection (clients may keep theirs open after
	// their sessions ended) and wait for the handlers once more.
	_ = s.ssh.Close()
	if serr := <-errc; serr != nil && !errors.Is(serr, ssh.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) && err == nil {
		err = fmt.Errorf("console serve: %w", serr)
	}
	if !waitGroup(&s.sessions, s.cfg.DrainTimeout) {
		s.log.Warn("console: session handlers still running after close")
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
	if ctx.Err() != nil && err == nil {
		s.log.Info("console stopped")
		return nil
	}
	return err
}

// waitGroup waits for wg up to d and reports whether it finished.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// EnsureAdmin prepares a store on first start: when it has no user yet, it
// creates "admin" with authorizedKey (an authorized_keys line) when given,
// and otherwise with a random password that it writes to out, once. It
// returns the password made ("" if none).
func EnsureAdmin(u *Users, authorizedKey []byte, out io.Writer, now time.Time) (string, error) {
	list, err := u.List()
	if err != nil {
		return "", err
	}
	if len(list) > 0 {
		return "", nil
	}
	if len(authorizedKey) > 0 {
		if _, _, _, _, err := gossh.ParseAuthorizedKey(authorizedKey); err != nil {
			return "", fmt.Errorf("admin key: %w", err)
		}
		if err := u.Add("admin", commands.RoleAdmin, "", now); err != nil {
			return "", err
		}
		fp, err := u.AddKey("admin", authorizedKey)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(out, "console: created user admin (role admin) with public key %s\n", fp)
		return "", nil
	}
	pw := RandomPassword()
	if err := u.Add("admin", commands.RoleAdmin, pw, now); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "console: created user admin (role admin); its password, shown once: %s\n", pw)
	return pw, nil
}

// sessionGone makes a context.CancelFunc registry entry for a session.
func (s *Server) track(st *sessionState, cancel context.CancelFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.cancels[st] = cancel
	s.sessions.Add(1)
	return true
}

func (s *Server) untrack(st *sessionState) {
	s.mu.Lock()
	delete(s.cancels, st)
	s.mu.Unlock()
	s.sessions.Done()
}
