package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/gliderlabs/ssh"

	"github.com/hapair/hapair/commands"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

// Prompt is the interactive console's prompt.
const Prompt = ">> "

// bannerTimeout bounds the Status call of the banner.
const bannerTimeout = 2 * time.Second

// sessionState is one SSH session's state.
type sessionState struct {
	srv  *Server
	sess ssh.Session
	id   identity
	out  *lockedWriter // stdout (interactive: stderr too)
	q    *inputQueue

	mu      sync.Mutex
	term    string
	width   int
	height  int
	program *tea.Program
	logout  bool
	idled   bool
}

// lockedWriter serialises writes from the command, the idle watcher and the
// dashboard's program.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// crlfWriter turns "\n" into "\r\n" (the stderr stream of a PTY session,
// which gliderlabs does not translate).
type crlfWriter struct{ w io.Writer }

func (c crlfWriter) Write(p []byte) (int, error) {
	q := strings.ReplaceAll(strings.ReplaceAll(string(p), "\r\n", "\n"), "\n", "\r\n")
	if _, err := io.WriteString(c.w, q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// handleSession is the gliderlabs session handler: it decides who the
// session is, then runs one command (exec) or the interactive console.
func (s *Server) handleSession(sess ssh.Session) {
	code := commands.ExitInternal
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session panicked", "user", sess.User(), "err", fmt.Sprint(r))
			_ = sess.Exit(commands.ExitInternal)
		}
	}()
	id, err := s.identify(sess)
	if err != nil {
		s.log.Warn("session refused", "conn_user", sess.User(), "source", sourceIP(sess.RemoteAddr()), "err", err)
		fmt.Fprintln(sess.Stderr(), "console: session refused")
		_ = sess.Exit(1)
		return
	}
	ctx, cancel := context.WithCancel(sess.Context())
	defer cancel()
	st := &sessionState{srv: s, sess: sess, id: id, out: &lockedWriter{w: sess}, q: newInputQueue(time.Now)}
	if !s.track(st, cancel) {
		fmt.Fprintln(sess.Stderr(), "console: shutting down")
		_ = sess.Exit(1)
		return
	}
	defer s.untrack(st)
	pty, winch, isPty := sess.Pty()
	if isPty {
		st.setSize(pty.Term, pty.Window)
		go func() { // drained until gliderlabs closes it with the channel
			for w := range winch {
				st.resize(w)
			}
		}()
	}
	line := sess.RawCommand()
	switch {
	case line != "":
		code = st.exec(ctx, line, isPty)
	case !isPty:
		fmt.Fprintln(sess.Stderr(), "This console needs a terminal (ssh -t), or give a command: ssh host ha_status")
		code = commands.ExitUsage
	default:
		st.interactive(ctx)
		code = 0
	}
	_ = sess.Exit(code)
}

func (st *sessionState) setSize(term string, w ssh.Window) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if term != "" {
		st.term = term
	}
	st.width, st.height = w.Width, w.Height
}

func (st *sessionState) size() (int, int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	w, h := st.width, st.height
	if w <= 0 {
		w = 80
	}
	if h <= 0 {
		h = 24
	}
	return w, h
}

func (st *sessionState) cols() int { w, _ := st.size(); return w }

func (st *sessionState) termName() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.term
}

// resize records a window change and tells the full-screen program.
func (st *sessionState) resize(w ssh.Window) {
	st.setSize("", w)
	st.mu.Lock()
	p := st.program
	st.mu.Unlock()
	if p != nil {
		width, height := st.size()
		go p.Send(tea.WindowSizeMsg{Width: width, Height: height}) // returns when the program ends
	}
}

func (st *sessionState) color(isPty bool) bool {
	t := st.termName()
	return isPty && t != "" && t != "dumb"
}

// pump is the only reader of the session's input: it queues what arrives
// until the channel's input ends.
func (st *sessionState) pump(ctx context.Context) {
	buf := make([]byte, 32<<10)
	for {
		n, err := st.sess.Read(buf)
		if n > 0 {
			st.q.push(ctx, buf[:n])
		}
		if err != nil {
			st.q.closeInput()
			return
		}
	}
}

// exec runs one command line for "ssh host <command>".
func (st *sessionState) exec(ctx context.Context, line string, isPty bool) int {
	var stdout, stderr io.Writer = st.out, st.sess.Stderr()
	if isPty {
		stderr = crlfWriter{w: st.sess.Stderr()}
		go st.pump(ctx)
	}
	env := st.env(stdout, stderr, false, isPty)
	return st.run(ctx, env, line, "exec")
}

// env builds the Env a command runs with in this session.
func (st *sessionState) env(stdout, stderr io.Writer, interactive, isPty bool) *commands.Env {
	e := &commands.Env{
		Stdout:      stdout,
		Stderr:      stderr,
		Role:        st.id.Role,
		Interactive: interactive,
		User:        st.id.User,
		Agent:       st.srv.agent,
		Accounts:    st.srv.users,
		Color:       st.color(isPty),
		Now:         st.srv.now,
	}
	if isPty { // a terminal to ask questions on and to draw the dashboard
		e.Term = &sessionTerminal{st: st}
		if st.srv.dash != nil {
			e.Dashboard = st.dashboard
		}
	}
	if interactive {
		e.Logout = func() {
			st.mu.Lock()
			st.logout = true
			st.mu.Unlock()
		}
	}
	return e
}

// run dispatches one line with a context that ^C cancels, and audits it.
func (st *sessionState) run(ctx context.Context, env *commands.Env, line, mode string) int {
	start := time.Now()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st.q.setInterrupt(cancel)
	code := st.srv.reg.Dispatch(cctx, env, line)
	st.q.setInterrupt(nil)
	st.srv.audit(st.id, mode, line, code, time.Since(start))
	return code
}

// audit writes the one log line per command.
func (s *Server) audit(id identity, mode, line string, code int, d time.Duration) {
	attrs := []any{"user", id.User, "role", id.Role, "source", id.Source, "auth", id.Method}
	if id.KeyFP != "" {
		attrs = append(attrs, "key_fp", id.KeyFP)
	}
	if len(line) > 256 {
		line = line[:256] + "..."
	}
	attrs = append(attrs, "mode", mode, "command", view.Clean(line), "exit_code", code,
		"duration_ms", float64(d.Microseconds())/1000)
	s.log.Info("console command", attrs...)
}

// interactive runs the ">>" console until exit, ^D, the idle timeout, the
// end of the connection or the server's shutdown.
func (st *sessionState) interactive(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go st.pump(ctx)
	go st.idleWatch(ctx, cancel)
	st.srv.log.Info("console login", "user", st.id.User, "role", st.id.Role, "source", st.id.Source,
		"auth", st.id.Method, "key_fp", st.id.KeyFP)
	st.banner(ctx)
	hist := loadHistory(filepath.Join(st.srv.users.UserDir(st.id.User), historyFile))
	ed := &editor{q: st.q, w: st.out, width: st.cols, hist: hist, complete: st.srv.reg.Complete}
	env := st.env(st.out, st.out, true, true)
	_, exitErr := st.srv.reg.Lookup("exit")
	for ctx.Err() == nil {
		line, err := ed.readLine(ctx, Prompt, true)
		switch {
		case errors.Is(err, commands.ErrInterrupted):
			continue
		case errors.Is(err, errLineTooLong):
			fmt.Fprintf(st.out, "%v\n", err)
			continue
		case err != nil:
			st.farewell(ctx)
			return
		}
		if err := hist.add(line); err != nil {
			st.srv.log.Warn("history", "user", st.id.User, "err", err)
		}
		if exitErr != nil && (strings.TrimSpace(line) == "exit" || strings.TrimSpace(line) == "logout") {
			st.srv.audit(st.id, "interactive", line, 0, 0)
			return
		}
		st.run(ctx, env, line, "interactive")
		st.mu.Lock()
		out := st.logout
		st.mu.Unlock()
		if out {
			return
		}
	}
	st.farewell(ctx)
}

// farewell says why the session ends when it is not the operator's choice.
func (st *sessionState) farewell(ctx context.Context) {
	st.mu.Lock()
	idled := st.idled
	st.mu.Unlock()
	if !idled && ctx.Err() != nil && st.sess.Context().Err() == nil {
		fmt.Fprint(st.out, "\nThe console is shutting down.\n")
	}
}

// idleWatch ends the session after IdleTimeout without input. A running
// command or an open dashboard does not count as input.
func (st *sessionState) idleWatch(ctx context.Context, cancel context.CancelFunc) {
	limit := st.srv.cfg.IdleTimeout
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			left := limit - time.Since(st.q.idleSince())
			if left > 0 {
				t.Reset(left)
				continue
			}
			st.mu.Lock()
			st.idled = true
			p := st.program
			st.mu.Unlock()
			if p != nil {
				p.Kill()
			}
			fmt.Fprint(st.out, "\nidle timeout, logging out\n")
			st.srv.log.Info("console idle timeout", "user", st.id.User, "source", st.id.Source)
			cancel()
			return
		}
	}
}

// banner prints the node, the session's role and the cluster's health.
func (st *sessionState) banner(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, bannerTimeout)
	defer cancel()
	node := view.Clean(st.srv.cfg.NodeName)
	snap, err := st.srv.agent.Status(cctx, &hapb.StatusRequest{})
	var health string
	switch {
	case err != nil:
		health = "agent not reachable"
	default:
		health = bannerHealth(snap)
		if n := view.Clean(snap.GetLocal().GetName()); n != "" {
			node = n
		}
	}
	fmt.Fprintf(st.out, "hapair console · %s · %s · logged in as %s (%s)\n",
		node, health, view.Clean(st.id.User), st.id.Role)
	fmt.Fprint(st.out, "Type help for the commands, exit to leave.\n")
}

func bannerHealth(s *hapb.Snapshot) string {
	parts := []string{view.RoleWord(s.GetLocal().GetRole())}
	c := s.GetCluster()
	h := view.HealthWord(c.GetHealth())
	if h == "" {
		h = "unknown"
	}
	name := view.Clean(c.GetName())
	if name != "" {
		h = "cluster " + name + " " + h
	} else {
		h = "cluster " + h
	}
	if r := view.Clean(c.GetHealthReason()); r != "" && c.GetHealth() != hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY {
		if len(r) > 60 {
			r = r[:60] + "..."
		}
		h += " (" + r + ")"
	}
	return strings.Join(append(parts, h), " · ")
}

// sessionTerminal is commands.Terminal over the session's input queue.
type sessionTerminal struct{ st *sessionState }

func (t *sessionTerminal) read(ctx context.Context, prompt string, echo bool) (string, error) {
	q := t.st.q
	q.mu.Lock()
	prev := q.interrupt
	q.mu.Unlock()
	q.setInterrupt(nil) // ^C goes to the editor while it reads
	defer q.setInterrupt(prev)
	ed := &editor{q: q, w: t.st.out, width: t.st.cols}
	return ed.readLine(ctx, view.Clean(prompt), echo)
}

// ReadLine reads a line with echo (no history, no completion).
func (t *sessionTerminal) ReadLine(ctx context.Context, prompt string) (string, error) {
	return t.read(ctx, prompt, true)
}

// ReadPassword reads a line without echo.
func (t *sessionTerminal) ReadPassword(ctx context.Context, prompt string) (string, error) {
	return t.read(ctx, prompt, false)
}
