package console

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Permissions.Extensions keys the console's auth callbacks set. Each callback
// returns a fresh Permissions, so x/crypto's per-key cache (and its
// VerifiedPublicKeyCallback, called only for a key the client proved it
// holds) decides which set the connection ends up with.
const (
	extUser   = "hapair-user"
	extMethod = "hapair-method"
	extKeyFP  = "hapair-key-fp"
)

// Authentication methods as the audit log names them.
const (
	MethodPassword  = "password"
	MethodPublicKey = "publickey"
)

type connStateKey struct{}

// connState is what the console knows of one TCP connection.
type connState struct {
	source string // IP address, the lockout key

	mu            sync.Mutex
	authenticated bool
	keyRejected   bool // a public key was refused
	pwFailed      bool // a password failure was already counted
	lockedLogged  bool
}

// trackedConn closes the connection when authentication takes too long and,
// when it closes without a successful login, counts a refused public key as
// one failed attempt (a client may try several keys, so not each key).
type trackedConn struct {
	net.Conn
	srv   *Server
	st    *connState
	timer *time.Timer
	once  sync.Once
	done  atomic.Bool
}

func (c *trackedConn) Read(p []byte) (int, error) {
	quickAck(c.Conn)
	return c.Conn.Read(p)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.timer.Stop()
		c.st.mu.Lock()
		count := !c.st.authenticated && c.st.keyRejected && !c.st.pwFailed
		c.st.mu.Unlock()
		if count {
			c.srv.countFailure(c.st.source, "", MethodPublicKey, "no offered key is authorised")
		}
	})
	return c.Conn.Close()
}

func sourceIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

func (s *Server) newSSHServer() *ssh.Server {
	srv := &ssh.Server{
		Addr:        s.cfg.Listen,
		HostSigners: []ssh.Signer{s.hostKey},
		Version:     "hapair-console",
		Handler:     s.handleSession,
		// Only session channels; no forwarding of any kind.
		ChannelHandlers:   map[string]ssh.ChannelHandler{"session": s.sessionChannel},
		RequestHandlers:   map[string]ssh.RequestHandler{},
		SubsystemHandlers: map[string]ssh.SubsystemHandler{},
		SessionRequestCallback: func(sess ssh.Session, requestType string) bool {
			return requestType == "shell" || requestType == "exec"
		},
		PtyCallback:      func(ctx ssh.Context, pty ssh.Pty) bool { return validPty(pty) },
		PasswordHandler:  s.passwordHandler,
		PublicKeyHandler: s.publicKeyHandler,
		ConnCallback:     s.connCallback,
	}
	srv.ServerConfigCallback = func(ctx ssh.Context) *gossh.ServerConfig {
		cfg := &gossh.ServerConfig{MaxAuthTries: maxAuthTriesPerConn}
		cfg.VerifiedPublicKeyCallback = s.verifiedKey
		cfg.AuthLogCallback = func(conn gossh.ConnMetadata, method string, err error) {
			s.authLog(ctx, conn, method, err)
		}
		return cfg
	}
	return srv
}

func stateOf(ctx ssh.Context) *connState {
	st, _ := ctx.Value(connStateKey{}).(*connState)
	return st
}

func (s *Server) connCallback(ctx ssh.Context, conn net.Conn) net.Conn {
	st := &connState{source: sourceIP(conn.RemoteAddr())}
	ctx.SetValue(connStateKey{}, st)
	tc := &trackedConn{Conn: conn, srv: s, st: st}
	tc.timer = time.AfterFunc(s.cfg.HandshakeTimeout, func() {
		st.mu.Lock()
		ok := st.authenticated
		st.mu.Unlock()
		if !ok {
			s.log.Warn("ssh handshake timed out", "source", st.source)
			_ = tc.Close()
		}
	})
	return tc
}

// freshPerms gives each auth callback its own Permissions object (gliderlabs
// otherwise hands every callback the same one), and makes the next callback
// read the connection's metadata again: gliderlabs copies it into the
// context only once, so without this ctx.User() would stay the user name of
// the first attempt.
func freshPerms(ctx ssh.Context, ext map[string]string) {
	ctx.SetValue(ssh.ContextKeyPermissions, &ssh.Permissions{Permissions: &gossh.Permissions{Extensions: ext}})
	ctx.SetValue(ssh.ContextKeySessionID, nil)
}

// refusedLocked reports whether the connection's source is locked out, and
// logs it once per connection.
func (s *Server) refusedLocked(ctx ssh.Context, st *connState) bool {
	locked, until := s.lock.locked(st.source)
	if !locked {
		return false
	}
	st.mu.Lock()
	first := !st.lockedLogged
	st.lockedLogged = true
	st.mu.Unlock()
	if first {
		s.log.Warn("auth refused: source locked out", "source", st.source, "user", ctx.User(),
			"until", until.UTC().Format(time.RFC3339))
	}
	return true
}

func (s *Server) passwordHandler(ctx ssh.Context, password string) bool {
	user := ctx.User()
	st := stateOf(ctx)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("password check panicked", "err", fmt.Sprint(r))
		}
	}()
	if st == nil || s.refusedLocked(ctx, st) {
		freshPerms(ctx, nil)
		return false
	}
	ok, err := s.users.CheckPassword(user, password)
	if err != nil {
		s.log.Error("password check", "user", user, "err", err)
	}
	if !ok {
		freshPerms(ctx, nil)
		return false
	}
	freshPerms(ctx, map[string]string{extUser: user, extMethod: MethodPassword})
	return true
}

// publicKeyHandler only says whether key would be acceptable for the user:
// the client has not proved it holds the key yet (CVE-2024-45337). The
// identity is settled in verifiedKey, which x/crypto calls with the key the
// client signed with.
func (s *Server) publicKeyHandler(ctx ssh.Context, key ssh.PublicKey) bool {
	user := ctx.User()
	st := stateOf(ctx)
	if st == nil || s.refusedLocked(ctx, st) {
		freshPerms(ctx, nil)
		return false
	}
	ok, err := s.users.AuthorizedKey(user, key)
	if err != nil {
		s.log.Error("authorized keys", "user", user, "err", err)
	}
	if !ok {
		freshPerms(ctx, nil)
		return false
	}
	freshPerms(ctx, map[string]string{extUser: user, extMethod: MethodPublicKey,
		extKeyFP: gossh.FingerprintSHA256(key)})
	return true
}

// verifiedKey runs after the client's signature with key was verified: the
// identity is rebuilt from the connection's user and that key, and must
// agree with what the key callback recorded for it.
func (s *Server) verifiedKey(conn gossh.ConnMetadata, key gossh.PublicKey, perms *gossh.Permissions, _ string) (*gossh.Permissions, error) {
	fp := gossh.FingerprintSHA256(key)
	if perms == nil || perms.Extensions[extUser] != conn.User() || perms.Extensions[extKeyFP] != fp ||
		perms.Extensions[extMethod] != MethodPublicKey {
		return nil, errors.New("public key: identity mismatch")
	}
	ok, err := s.users.AuthorizedKey(conn.User(), key)
	if err != nil || !ok {
		return nil, errors.New("public key: not authorised")
	}
	return &gossh.Permissions{Extensions: map[string]string{extUser: conn.User(), extMethod: MethodPublicKey, extKeyFP: fp}}, nil
}

// authLog logs each authentication attempt and counts failures.
func (s *Server) authLog(ctx ssh.Context, conn gossh.ConnMetadata, method string, err error) {
	st := stateOf(ctx)
	if st == nil || method == "none" {
		return
	}
	if err == nil {
		st.mu.Lock()
		st.authenticated = true
		st.mu.Unlock()
		s.lock.succeed(st.source)
		s.log.Info("auth ok", "user", conn.User(), "source", st.source, "method", method)
		return
	}
	if locked, _ := s.lock.locked(st.source); locked {
		return // already logged; attempts while locked out are not counted
	}
	switch method {
	case MethodPassword:
		st.mu.Lock()
		st.pwFailed = true
		st.mu.Unlock()
		s.countFailure(st.source, conn.User(), method, "wrong user or password")
	case MethodPublicKey:
		st.mu.Lock()
		st.keyRejected = true
		st.mu.Unlock()
		s.log.Info("public key refused", "user", conn.User(), "source", st.source)
	default:
		s.log.Info("auth method refused", "user", conn.User(), "source", st.source, "method", method)
	}
}

func (s *Server) countFailure(source, user, method, reason string) {
	lockedNow, n := s.lock.fail(source)
	s.log.Warn("auth failed", "user", user, "source", source, "method", method, "reason", reason, "failures", n)
	if lockedNow {
		s.log.Warn("source locked out", "source", source, "failures", n,
			"duration", s.cfg.LockoutDuration.String())
	}
}

// identity is who a session's connection authenticated as.
type identity struct {
	User   string
	Role   string
	Method string
	KeyFP  string
	Source string
}

// identify decides who the session is from what authentication really used:
// the connection's final Permissions (x/crypto keeps those of the method that
// succeeded, for a key the one the client signed with) and the connection's
// user name, never gliderlabs' context values, which keep the last key
// offered and the first user name tried.
func (s *Server) identify(sess ssh.Session) (identity, error) {
	conn, ok := sess.Context().Value(ssh.ContextKeyConn).(*gossh.ServerConn)
	if !ok || conn == nil {
		return identity{}, errors.New("no SSH connection in the session context")
	}
	p := conn.Permissions
	if p == nil || p.Extensions[extUser] == "" {
		return identity{}, errors.New("the connection did not authenticate with the console")
	}
	id := identity{User: p.Extensions[extUser], Method: p.Extensions[extMethod], KeyFP: p.Extensions[extKeyFP],
		Source: sourceIP(conn.RemoteAddr())}
	if id.User != conn.User() {
		return identity{}, fmt.Errorf("authenticated as %q but the connection says %q", id.User, conn.User())
	}
	if id.Method != MethodPassword && id.Method != MethodPublicKey {
		return identity{}, fmt.Errorf("unknown authentication method %q", id.Method)
	}
	u, err := s.users.Get(id.User)
	if err != nil {
		return identity{}, err
	}
	if err := validRole(u.Role); err != nil {
		return identity{}, err
	}
	id.Role = u.Role
	return id, nil
}
