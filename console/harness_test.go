package console

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	gossh "golang.org/x/crypto/ssh"
	"google.golang.org/grpc"

	"github.com/hapair/hapair/commands"
	"github.com/hapair/hapair/hactl/hapb"
)

// waitLimit bounds every wait of the tests for output (a deadline, not an
// assertion about speed).
const waitLimit = 20 * time.Second

// fakeAgent answers Status with a canned snapshot.
type fakeAgent struct {
	hapb.UnimplementedAgentServer
	mu   sync.Mutex
	snap *hapb.Snapshot
}

func (f *fakeAgent) Status(context.Context, *hapb.StatusRequest) (*hapb.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, nil
}

func (f *fakeAgent) set(s *hapb.Snapshot) {
	f.mu.Lock()
	f.snap = s
	f.mu.Unlock()
}

func snapshot(health hapb.ClusterHealth, role hapb.NodeRole) *hapb.Snapshot {
	return &hapb.Snapshot{
		Local:   &hapb.NodeStatus{Name: "primary-node", Role: role},
		Cluster: &hapb.ClusterView{Name: "demo", Health: health},
	}
}

// startFakeAgent serves f on a unix socket and returns the socket's path.
func startFakeAgent(t testing.TB, f *fakeAgent) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hapc")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hapb.RegisterAgentServer(gs, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	t.Cleanup(func() {
		gs.Stop()
		<-done
		os.RemoveAll(dir)
	})
	return sock
}

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the log lines that contain every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// testServer is a console on 127.0.0.1:0 with a fake agent and three users:
// admin (password and key), oper (operator, password), keyonly (admin, key).
type testServer struct {
	srv      *Server
	addr     string
	agent    *fakeAgent
	logs     *logBuffer
	dir      string
	adminKey gossh.Signer
	adminPW  string
	operPW   string
	clock    *fakeClock
	stop     func() error // ends Serve (once) and returns its error
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type serverOpt func(*Config, *Deps)

// testRegistry is Builtin with commands that let tests reach the
// transport's edges: exit codes, stderr, cancellation, questions.
func testRegistry() *commands.Registry {
	r := commands.Builtin()
	r.Register(&commands.Command{Name: "t_code", Operator: true, Summary: "exit with the code given",
		Run: func(ctx context.Context, env *commands.Env, args []string) int {
			var code int
			if len(args) != 1 {
				return env.Usagef("one code")
			}
			fmt.Sscan(args[0], &code)
			fmt.Fprintf(env.Stdout, "out %d color=%v interactive=%v term=%v\n", code, env.Color, env.Interactive, env.Term != nil)
			fmt.Fprintf(env.Stderr, "err %d\n", code)
			return code
		}})
	r.Register(&commands.Command{Name: "t_wait", Operator: true, Summary: "wait until cancelled",
		Run: func(ctx context.Context, env *commands.Env, args []string) int {
			fmt.Fprintln(env.Stdout, "waiting")
			<-ctx.Done()
			fmt.Fprintln(env.Stdout, "cancelled")
			return commands.ExitAborted
		}})
	r.Register(&commands.Command{Name: "t_ask", Operator: true, Summary: "ask a question",
		Run: func(ctx context.Context, env *commands.Env, args []string) int {
			if env.Term == nil {
				fmt.Fprintln(env.Stderr, "no terminal")
				return commands.ExitUsage
			}
			a, err := env.Term.ReadLine(ctx, "name? ")
			if err != nil {
				fmt.Fprintf(env.Stdout, "ask error: %v\n", err)
				return commands.ExitAborted
			}
			p, err := env.Term.ReadPassword(ctx, "secret? ")
			if err != nil {
				fmt.Fprintf(env.Stdout, "ask error: %v\n", err)
				return commands.ExitAborted
			}
			fmt.Fprintf(env.Stdout, "answer=%q secret-len=%d\n", a, len(p))
			return 0
		}})
	r.Register(&commands.Command{Name: "t_whoami", Operator: true, Summary: "who is this session",
		Run: func(ctx context.Context, env *commands.Env, args []string) int {
			fmt.Fprintf(env.Stdout, "user=%s role=%s\n", env.User, env.Role)
			return 0
		}})
	return r
}

func newTestServer(t testing.TB, opts ...serverOpt) *testServer {
	t.Helper()
	ts := &testServer{agent: &fakeAgent{snap: snapshot(hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY, hapb.NodeRole_NODE_ROLE_ACTIVE)},
		logs: &logBuffer{}, dir: t.TempDir(), clock: &fakeClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}}
	sock := startFakeAgent(t, ts.agent)
	cfg := Config{Listen: "127.0.0.1:0", Dir: ts.dir, AgentSocket: sock, NodeName: "primary-node"}
	deps := Deps{Logger: slog.New(slog.NewTextHandler(ts.logs, nil)), Registry: testRegistry(),
		BcryptCost: bcrypt.MinCost, Now: ts.clock.now}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	ts.adminPW, ts.operPW = "admin-password-1", "operator-password-1"
	u := srv.Users()
	now := time.Now()
	must(t, u.Add("admin", commands.RoleAdmin, ts.adminPW, now))
	must(t, u.Add("oper", commands.RoleOperator, ts.operPW, now))
	must(t, u.Add("keyonly", commands.RoleAdmin, "", now))
	ts.adminKey = newSigner(t)
	if _, err := u.AddKey("admin", gossh.MarshalAuthorizedKey(ts.adminKey.PublicKey())); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ts.addr = srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newSigner(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial connects as user with the given methods, checking the host key.
func (ts *testServer) dial(user string, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	return gossh.Dial("tcp", ts.addr, &gossh.ClientConfig{
		User:            user,
		Auth:            auth,
		HostKeyCallback: gossh.FixedHostKey(ts.srv.HostKey()),
		Timeout:         waitLimit,
	})
}

func (ts *testServer) admin(t testing.TB) *gossh.Client {
	t.Helper()
	c, err := ts.dial("admin", gossh.PublicKeys(ts.adminKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// execResult is what one exec session gave.
type execResult struct {
	stdout, stderr string
	code           int
	err            error
}

func runExec(c *gossh.Client, line string) execResult {
	s, err := c.NewSession()
	if err != nil {
		return execResult{err: err, code: -1}
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run(line)
	r := execResult{stdout: out.String(), stderr: errb.String(), err: err}
	var ee *gossh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code, r.err = ee.ExitStatus(), nil
	default:
		r.code = -1
	}
	return r
}

// term is an interactive session through a pty-req.
type term struct {
	t    testing.TB
	s    *gossh.Session
	in   io.WriteCloser
	mu   sync.Mutex
	out  bytes.Buffer
	seen int // what expect already matched
	wake chan struct{}
	done chan struct{}
}

func openTerm(t testing.TB, c *gossh.Client, cols, rows int) *term {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	tm := &term{t: t, s: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
	tm.in, err = s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm-256color", rows, cols, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(tm.done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			select {
			case tm.wake <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { s.Close(); <-tm.done })
	return tm
}

func (tm *term) send(s string) {
	tm.t.Helper()
	if _, err := io.WriteString(tm.in, s); err != nil {
		tm.t.Fatalf("send %q: %v", s, err)
	}
}

// expect waits until the output after what was already matched contains
// want, and moves past it. It returns the text up to and including want.
func (tm *term) expect(want string) string {
	tm.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		tm.mu.Lock()
		all := tm.out.String()
		tm.mu.Unlock()
		if i := strings.Index(all[tm.seen:], want); i >= 0 {
			got := all[tm.seen : tm.seen+i+len(want)]
			tm.seen += i + len(want)
			return got
		}
		select {
		case <-tm.wake:
		case <-tm.done:
			tm.mu.Lock()
			all = tm.out.String()
			tm.mu.Unlock()
			if strings.Contains(all[tm.seen:], want) {
				continue
			}
			tm.t.Fatalf("session ended before %q; output after the last match:\n%q", want, all[tm.seen:])
		case <-deadline.C:
			tm.t.Fatalf("no %q within %v; output after the last match:\n%q", want, waitLimit, all[tm.seen:])
		}
	}
}

// exitCode waits for the session's end and returns its exit status.
func (tm *term) exitCode() int {
	tm.t.Helper()
	err := tm.s.Wait()
	var ee *gossh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitStatus()
	}
	tm.t.Fatalf("session: %v", err)
	return -1
}

var sshBinary = flag.String("ssh", "ssh", "the OpenSSH client binary for the tests that drive it")
