package vipnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testVIP is the loopback address the tests serve as the VIP.
const testVIP = "127.0.0.12"

// bound is the upper limit for anything a test waits on; it is a safety net
// against hangs, never an assertion about speed.
const bound = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// freePort returns a TCP port that is free on the VIP address right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(testVIP, "0"))
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// deadTarget returns a loopback host:port on which nothing listens.
func deadTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// echoServer echoes every connection until the client half-closes, then
// half-closes back. Its goroutines end in t.Cleanup.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("echo server: %v", err)
	}
	e := &echoServer{ln: ln, conns: make(map[net.Conn]struct{})}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func (e *echoServer) addr() string { return e.ln.Addr().String() }

// newHolder returns a Userspace on testVIP that is closed in t.Cleanup.
func newHolder(t *testing.T, fwds ...Forward) *Userspace {
	t.Helper()
	u, err := NewUserspace(UserspaceConfig{Addr: testVIP, Forwards: fwds, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("NewUserspace: %v", err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

func vipAddr(port int) string { return net.JoinHostPort(testVIP, strconv.Itoa(port)) }

// dialVIP connects a client to the VIP's port; the connection has a deadline
// of bound and is closed in t.Cleanup.
func dialVIP(t *testing.T, port int) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", vipAddr(port), bound)
	if err != nil {
		t.Fatalf("dial VIP: %v", err)
	}
	c.SetDeadline(time.Now().Add(bound))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg on c and expects it echoed back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// expectClosed expects the peer to close c: a read ends with EOF or a reset,
// not with the safety deadline.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, c) // nil on EOF
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection was not closed by the holder (read timed out after %v)", bound)
	}
}

func mustHeld(t *testing.T, u *Userspace, want bool) {
	t.Helper()
	got, err := u.Held(testCtx(t))
	if err != nil {
		t.Fatalf("Held: %v", err)
	}
	if got != want {
		t.Fatalf("Held = %v, want %v", got, want)
	}
}

func TestNewUserspaceValidation(t *testing.T) {
	ok := []Forward{{Port: 5432, Target: "127.0.0.5:5432"}}
	tests := []struct {
		name    string
		cfg     UserspaceConfig
		wantErr string // "" means valid
	}{
		{"valid", UserspaceConfig{Addr: "127.0.0.12", Forwards: ok}, ""},
		{"valid IPv6 loopback", UserspaceConfig{Addr: "::1", Forwards: ok}, ""},
		{"valid host name target", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 22, Target: "localhost:2222"}}}, ""},
		{"empty address", UserspaceConfig{Forwards: ok}, "Addr is empty"},
		{"not an IP", UserspaceConfig{Addr: "vip.example", Forwards: ok}, "not an IP address"},
		{"address with port", UserspaceConfig{Addr: "127.0.0.12:5432", Forwards: ok}, "not an IP address"},
		{"non-loopback address", UserspaceConfig{Addr: "198.18.0.12", Forwards: ok}, "not a loopback address"},
		{"unspecified address", UserspaceConfig{Addr: "0.0.0.0", Forwards: ok}, "not a loopback address"},
		{"address with zone", UserspaceConfig{Addr: "::1%lo", Forwards: ok}, "has a zone"},
		{"no forwards", UserspaceConfig{Addr: "127.0.0.12"}, "Forwards is empty"},
		{"port zero", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 0, Target: "127.0.0.5:5432"}}}, "Port 0 is out of range"},
		{"port too big", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 65536, Target: "127.0.0.5:5432"}}}, "Port 65536 is out of range"},
		{"negative port", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: -1, Target: "127.0.0.5:5432"}}}, "out of range"},
		{"duplicate port", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 5432, Target: "127.0.0.5:5432"}, {Port: 5432, Target: "127.0.0.5:5433"}}}, "listed twice"},
		{"empty target", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 5432}}}, "target is empty"},
		{"target without port", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 5432, Target: "127.0.0.5"}}}, "not host:port"},
		{"target without host", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 5432, Target: ":5432"}}}, "has no host"},
		{"target port zero", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 5432, Target: "127.0.0.5:0"}}}, "not a number in 1-65535"},
		{"target port name", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 5432, Target: "127.0.0.5:postgres"}}}, "not a number in 1-65535"},
		{"target is the VIP itself", UserspaceConfig{Addr: "127.0.0.12", Forwards: []Forward{{Port: 5432, Target: "127.0.0.12:5432"}}}, "relay to itself"},
		{"negative dial timeout", UserspaceConfig{Addr: "127.0.0.12", Forwards: ok, DialTimeout: -time.Second}, "DialTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := NewUserspace(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewUserspace: %v", err)
				}
				if u.Address() == "" {
					t.Fatalf("Address is empty")
				}
				u.Close()
				return
			}
			if err == nil {
				u.Close()
				t.Fatalf("NewUserspace accepted a bad config; want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestAcquireForwardsAndHeld(t *testing.T) {
	echo := startEcho(t)
	port := freePort(t)
	u := newHolder(t, Forward{Port: port, Target: echo.addr()})
	ctx := testCtx(t)

	if u.Address() != testVIP {
		t.Fatalf("Address = %q, want %q", u.Address(), testVIP)
	}
	mustHeld(t, u, false)
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	mustHeld(t, u, true)

	c := dialVIP(t, port)
	roundTrip(t, c, "hello through the VIP")

	// Acquiring again is a no-op: same listeners, the open connection lives on.
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("second Acquire: %v", err)
	}
	mustHeld(t, u, true)
	roundTrip(t, c, "still here")
	if n := u.Connections(); n != 1 {
		t.Fatalf("Connections = %d, want 1", n)
	}

	// Half-close is passed on both ways: the client's end of input reaches
	// the echo server, whose half-close comes back as EOF after the data.
	if _, err := io.WriteString(c, "last words"); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read after half-close: %v", err)
	}
	if string(rest) != "last words" {
		t.Fatalf("after half-close got %q, want %q", rest, "last words")
	}

	// Held probes are neither forwarded nor counted.
	accepted, failed := u.Counters()
	if accepted != 1 || failed != 0 {
		t.Fatalf("Counters = (%d, %d), want (1, 0)", accepted, failed)
	}
	if n := echo.accepted.Load(); n != 1 {
		t.Fatalf("echo server accepted %d connections, want 1 (probes must not be forwarded)", n)
	}
}

func TestConflictAndMove(t *testing.T) {
	tests := []struct {
		name string
		// secondExtra puts a port only the second holder serves before the
		// shared one, so the conflict happens after it opened a listener.
		secondExtra bool
	}{
		{name: "same single port"},
		{name: "conflict on second port releases the first", secondExtra: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			ctx := testCtx(t)
			shared := freePort(t)
			first := newHolder(t, Forward{Port: shared, Target: echo.addr()})
			var fwds []Forward
			extra := 0
			if tt.secondExtra {
				extra = freePort(t)
				fwds = append(fwds, Forward{Port: extra, Target: echo.addr()})
			}
			fwds = append(fwds, Forward{Port: shared, Target: echo.addr()})
			second := newHolder(t, fwds...)

			if err := first.Acquire(ctx); err != nil {
				t.Fatalf("first Acquire: %v", err)
			}
			err := second.Acquire(ctx)
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("second Acquire = %v, want ErrConflict", err)
			}
			if !strings.Contains(err.Error(), vipAddr(shared)) {
				t.Fatalf("conflict error %q does not name %s", err, vipAddr(shared))
			}
			t.Logf("conflict: %v", err)
			mustHeld(t, second, false)
			mustHeld(t, first, true)
			if tt.secondExtra {
				// Nothing half-held: the extra port was given back.
				ln, err := net.Listen("tcp", vipAddr(extra))
				if err != nil {
					t.Fatalf("extra port still bound after the failed Acquire: %v", err)
				}
				ln.Close()
			}

			// The VIP moves: the first releases, the second takes it.
			if err := first.Release(ctx); err != nil {
				t.Fatalf("first Release: %v", err)
			}
			if err := second.Acquire(ctx); err != nil {
				t.Fatalf("second Acquire after the move: %v", err)
			}
			mustHeld(t, second, true)
			mustHeld(t, first, false)
			roundTrip(t, dialVIP(t, shared), "served by the second holder")
			if err := first.Acquire(ctx); !errors.Is(err, ErrConflict) {
				t.Fatalf("first Acquire after the move = %v, want ErrConflict", err)
			}
		})
	}
}

func TestReleaseCutsConnections(t *testing.T) {
	echo := startEcho(t)
	port := freePort(t)
	u := newHolder(t, Forward{Port: port, Target: echo.addr()})
	ctx := testCtx(t)
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	c := dialVIP(t, port)
	roundTrip(t, c, "long-lived session")
	if n := u.Connections(); n != 1 {
		t.Fatalf("Connections = %d, want 1", n)
	}

	if err := u.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	expectClosed(t, c)
	mustHeld(t, u, false)
	if n := u.Connections(); n != 0 {
		t.Fatalf("Connections after Release = %d, want 0", n)
	}
	if n := u.running.Load(); n != 0 {
		t.Fatalf("%d goroutines still running after Release", n)
	}
	if c, err := net.DialTimeout("tcp", vipAddr(port), bound); err == nil {
		c.Close()
		t.Fatalf("VIP port still accepts connections after Release")
	}
	if err := u.Release(ctx); err != nil {
		t.Fatalf("second Release: %v", err)
	}

	// A Release whose ctx has already ended still gives the VIP up.
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire again: %v", err)
	}
	roundTrip(t, dialVIP(t, port), "back again")
	done, cancel := context.WithCancel(context.Background())
	cancel()
	_ = u.Release(done) // may report that goroutines were still ending
	mustHeld(t, u, false)
	ln, err := net.Listen("tcp", vipAddr(port))
	if err != nil {
		t.Fatalf("port still bound after Release with an ended ctx: %v", err)
	}
	ln.Close()
}

func TestTargetDown(t *testing.T) {
	echo := startEcho(t)
	deadPort, livePort := freePort(t), freePort(t)
	u := newHolder(t,
		Forward{Port: deadPort, Target: deadTarget(t)},
		Forward{Port: livePort, Target: echo.addr()},
	)
	ctx := testCtx(t)
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	for i := 1; i <= 2; i++ {
		expectClosed(t, dialVIP(t, deadPort))
		if _, failed := u.Counters(); failed != uint64(i) {
			t.Fatalf("failedDials = %d, want %d", failed, i)
		}
		// The holder keeps serving the other port, and the VIP.
		roundTrip(t, dialVIP(t, livePort), "the other service still works")
		mustHeld(t, u, true)
	}
	if accepted, _ := u.Counters(); accepted != 4 {
		t.Fatalf("accepted = %d, want 4", accepted)
	}
}

func TestConnectionLimit(t *testing.T) {
	echo := startEcho(t)
	port := freePort(t)
	u := newHolder(t, Forward{Port: port, Target: echo.addr()})
	u.maxConns = 1
	ctx := testCtx(t)
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	c1 := dialVIP(t, port)
	roundTrip(t, c1, "first")
	expectClosed(t, dialVIP(t, port))
	// Held still works at the limit: probes are not forwarded connections.
	mustHeld(t, u, true)
	roundTrip(t, c1, "first still served")
	if n := u.Connections(); n != 1 {
		t.Fatalf("Connections = %d, want 1", n)
	}
	if accepted, _ := u.Counters(); accepted != 1 {
		t.Fatalf("accepted = %d, want 1 (refused connections are not counted)", accepted)
	}
}

func TestHeldAndAcquireHonourCtx(t *testing.T) {
	echo := startEcho(t)
	port := freePort(t)
	u := newHolder(t, Forward{Port: port, Target: echo.addr()})
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := u.Acquire(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with an ended ctx = %v, want context.Canceled", err)
	}
	mustHeld(t, u, false)
	if err := u.Acquire(testCtx(t)); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if held, err := u.Held(ended); held || !errors.Is(err, context.Canceled) {
		t.Fatalf("Held with an ended ctx = (%v, %v), want (false, context.Canceled)", held, err)
	}
}

func TestHeldSeesLostListenerAndAcquireRepairs(t *testing.T) {
	echo := startEcho(t)
	port := freePort(t)
	u := newHolder(t, Forward{Port: port, Target: echo.addr()})
	ctx := testCtx(t)
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	mustHeld(t, u, true)

	// The listener goes away behind the holder's back; nothing remembered
	// may make Held say true.
	u.mu.Lock()
	u.sess.ports[0].ln.Close()
	u.mu.Unlock()
	mustHeld(t, u, false)

	// Level-triggered: the reconcile loop calls Acquire again, which repairs.
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire to repair: %v", err)
	}
	mustHeld(t, u, true)
	roundTrip(t, dialVIP(t, port), "repaired")
}

// TestConcurrentUse runs clients, Held and Release/Acquire cycles at the same
// time, for the race detector; clients cut by a Release simply reconnect.
func TestConcurrentUse(t *testing.T) {
	echo := startEcho(t)
	port := freePort(t)
	u := newHolder(t, Forward{Port: port, Target: echo.addr()})
	ctx := testCtx(t)
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	stopAll := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopAll() // also on t.Fatalf
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte("client " + strconv.Itoa(i))
			buf := make([]byte, len(msg))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", vipAddr(port), bound)
				if err != nil {
					time.Sleep(time.Millisecond) // released right now
					continue
				}
				c.SetDeadline(time.Now().Add(bound))
				for range 5 {
					if _, err := c.Write(msg); err != nil {
						break
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						break
					}
					if !bytes.Equal(buf, msg) {
						t.Errorf("echo = %q, want %q", buf, msg)
					}
					served.Add(1)
				}
				c.Close()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := u.Held(ctx); err != nil {
				t.Errorf("Held: %v", err)
				return
			}
		}
	}()
	for range 20 {
		if err := u.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := u.Acquire(ctx); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	mustHeld(t, u, true)
	stopAll()
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := u.running.Load(); n != 0 {
		t.Fatalf("%d goroutines running after Close", n)
	}
	if n := u.Connections(); n != 0 {
		t.Fatalf("Connections after Close = %d, want 0", n)
	}
	t.Logf("%d echoes served across 20 VIP moves", served.Load())
}

// ownGoroutines lists the stacks of goroutines running code of this
// package's holder (not of the tests).
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		if strings.Contains(s, "vipnet.(*session)") || strings.Contains(s, "vipnet.(*Userspace)") {
			out = append(out, s)
		}
	}
	return out
}

func TestCloseWaitsForGoroutines(t *testing.T) {
	echo := startEcho(t)
	p1, p2 := freePort(t), freePort(t)
	u := newHolder(t,
		Forward{Port: p1, Target: echo.addr()},
		Forward{Port: p2, Target: deadTarget(t)},
	)
	ctx := testCtx(t)
	if err := u.Acquire(ctx); err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	var clients []net.Conn
	for i := range 3 {
		c := dialVIP(t, p1)
		roundTrip(t, c, "client "+strconv.Itoa(i))
		clients = append(clients, c)
	}
	mustHeld(t, u, true)
	if n := u.running.Load(); n < 1+1+3*2 { // two accept loops, two goroutines per relay
		t.Fatalf("running = %d, want at least 8", n)
	}

	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := u.running.Load(); n != 0 {
		t.Fatalf("%d goroutines still running after Close returned", n)
	}
	for _, c := range clients {
		expectClosed(t, c)
	}
	// The runtime agrees: no goroutine of the holder is left. (A goroutine
	// that has just signalled the WaitGroup may take a moment to vanish from
	// the runtime's list; wait for that, bounded.)
	deadline := time.Now().Add(bound)
	for left := ownGoroutines(); len(left) > 0; left = ownGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of the holder left after Close:\n%s", strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := u.Acquire(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close = %v, want ErrClosed", err)
	}
	mustHeld(t, u, false)
	if err := u.Release(ctx); err != nil {
		t.Fatalf("Release after Close: %v", err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestMain(m *testing.M) {
	// The tests serve 127.0.0.12; skip cleanly where 127.0.0.0/8 is not all
	// loopback (for example macOS without an alias).
	ln, err := net.Listen("tcp", net.JoinHostPort(testVIP, "0"))
	if err != nil {
		os.Stdout.WriteString("vipnet: skipping tests, cannot listen on " + testVIP + ": " + err.Error() + "\n")
		os.Exit(0)
	}
	ln.Close()
	os.Exit(m.Run())
}
