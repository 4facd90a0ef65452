package pairing

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hapair/hapair/hactl/pki"
)

const (
	joinerName   = "node-b"
	deployerName = "node-a"
	// waitLimit bounds every wait in these tests.
	waitLimit = 20 * time.Second
)

var loopbackIPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// makeOffer returns an offer for a joiner called node, from a fresh CA.
func makeOffer(t *testing.T, node string) Offer {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("test-cluster", now)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.Issue(node, loopbackIPs, now)
	if err != nil {
		t.Fatal(err)
	}
	return Offer{
		ClusterName:  "test-cluster",
		DeployerName: deployerName,
		CACertPEM:    id.CACertPEM,
		CertPEM:      id.CertPEM,
		KeyPEM:       id.KeyPEM,
		Extra:        json.RawMessage(`{"db":{"password":"hunter2-secret"},"port":5432}`),
	}
}

type fixture struct {
	l   *Listener
	tok Token
	log *syncBuffer
}

// listen opens a Listener on loopback for a new token valid for ttl.
func listen(t *testing.T, ttl time.Duration) *fixture {
	t.Helper()
	tok, err := NewToken(ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := Listen("127.0.0.1:0", tok, joinerName, logger)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if strings.Contains(logs.String(), tok.Value) {
			t.Errorf("the log contains the token")
		}
	})
	return &fixture{l: l, tok: tok, log: logs}
}

type acceptResult struct {
	offer Offer
	err   error
}

// goAccept runs l.Accept in a goroutine, stopped and waited for at cleanup.
func goAccept(t *testing.T, l *Listener, decide func(Offer) (Accept, error)) <-chan acceptResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	ch := make(chan acceptResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		o, err := l.Accept(ctx, decide)
		ch <- acceptResult{o, err}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ch
}

func waitAccept(t *testing.T, ch <-chan acceptResult) acceptResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitLimit):
		t.Fatal("Accept did not return")
		return acceptResult{}
	}
}

// stillWaiting checks that Accept has not returned.
func stillWaiting(t *testing.T, ch <-chan acceptResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("Accept returned (%v), want it to keep waiting", r.err)
	case <-time.After(100 * time.Millisecond):
	}
}

func acceptWith(extra string) func(Offer) (Accept, error) {
	return func(Offer) (Accept, error) {
		return Accept{Extra: json.RawMessage(extra)}, nil
	}
}

func dialCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func otherToken(t *testing.T, not Token) string {
	t.Helper()
	for {
		tok, err := NewToken(time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if tok.Value != not.Value {
			return tok.Value
		}
	}
}

func jsonEqual(t *testing.T, got, want json.RawMessage) bool {
	t.Helper()
	var g, w bytes.Buffer
	if err := json.Compact(&g, got); err != nil {
		t.Fatalf("invalid JSON %q: %v", got, err)
	}
	if err := json.Compact(&w, want); err != nil {
		t.Fatalf("invalid JSON %q: %v", want, err)
	}
	return bytes.Equal(g.Bytes(), w.Bytes())
}

func TestPairHappyPath(t *testing.T) {
	f := listen(t, time.Minute)
	offer := makeOffer(t, joinerName)
	offer.Extra = json.RawMessage(`{ "db": {"password": "hunter2-secret"}, "port": 5432 }`)
	var decided Offer
	results := goAccept(t, f.l, func(o Offer) (Accept, error) {
		decided = o
		return Accept{Extra: json.RawMessage(`{"public":"127.0.0.1:5432","heartbeat":"127.0.0.1:7947"}`)}, nil
	})

	// The operator may type the token sloppily.
	typed := strings.ToLower(strings.ReplaceAll(f.tok.Value, "-", " "))
	acc, err := Dial(dialCtx(t), f.l.Addr().String(), typed, offer)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if acc.NodeName != joinerName {
		t.Errorf("Accept.NodeName = %q, want %q", acc.NodeName, joinerName)
	}
	if !jsonEqual(t, acc.Extra, json.RawMessage(`{"public":"127.0.0.1:5432","heartbeat":"127.0.0.1:7947"}`)) {
		t.Errorf("Accept.Extra = %s", acc.Extra)
	}

	r := waitAccept(t, results)
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	got := r.offer
	if got.ClusterName != offer.ClusterName || got.DeployerName != offer.DeployerName {
		t.Errorf("names = %q, %q; want %q, %q", got.ClusterName, got.DeployerName, offer.ClusterName, offer.DeployerName)
	}
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"CACertPEM", got.CACertPEM, offer.CACertPEM},
		{"CertPEM", got.CertPEM, offer.CertPEM},
		{"KeyPEM", got.KeyPEM, offer.KeyPEM},
	} {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s differs from the one sent", c.name)
		}
	}
	if !jsonEqual(t, got.Extra, offer.Extra) {
		t.Errorf("Extra = %s, want %s", got.Extra, offer.Extra)
	}
	if !bytes.Equal(decided.KeyPEM, offer.KeyPEM) {
		t.Errorf("decide was not called with the offer")
	}
	if n := f.l.FailedAttempts(); n != 0 {
		t.Errorf("FailedAttempts = %d, want 0", n)
	}

	// The offer is a usable identity.
	dir := t.TempDir()
	if err := pki.SaveIdentity(dir, &pki.Identity{CACertPEM: got.CACertPEM, CertPEM: got.CertPEM, KeyPEM: got.KeyPEM}); err != nil {
		t.Fatalf("SaveIdentity: %v", err)
	}
	if id, err := pki.LoadIdentity(dir); err != nil || id.NodeName != joinerName {
		t.Fatalf("LoadIdentity = %v, %v", id, err)
	}

	logs := f.log.String()
	for _, secret := range []string{"hunter2-secret", "PRIVATE KEY"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
}

func TestTokenReuse(t *testing.T) {
	f := listen(t, time.Minute)
	offer := makeOffer(t, joinerName)
	results := goAccept(t, f.l, acceptWith(`{}`))
	if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer); err != nil {
		t.Fatalf("first Dial: %v", err)
	}
	if r := waitAccept(t, results); r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}

	// The token is burnt: a second Accept fails at once, and a second Dial
	// with the same token fails.
	if _, err := f.l.Accept(dialCtx(t), acceptWith(`{}`)); !errors.Is(err, ErrTokenBurnt) {
		t.Errorf("second Accept error = %v, want ErrTokenBurnt", err)
	}
	if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer); err == nil {
		t.Errorf("second Dial with a used token succeeded")
	}
}

func TestWrongTokenThenRight(t *testing.T) {
	f := listen(t, time.Minute)
	offer := makeOffer(t, joinerName)
	results := goAccept(t, f.l, acceptWith(`{}`))

	_, err := Dial(dialCtx(t), f.l.Addr().String(), otherToken(t, f.tok), offer)
	if !errors.Is(err, ErrBadToken) {
		t.Fatalf("Dial with a wrong token: error = %v, want ErrBadToken", err)
	}
	if !strings.Contains(err.Error(), "the token is wrong or was already used") {
		t.Errorf("error %q does not explain", err)
	}
	if n := f.l.FailedAttempts(); n != 1 {
		t.Errorf("FailedAttempts = %d, want 1", n)
	}
	stillWaiting(t, results)

	if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer); err != nil {
		t.Fatalf("Dial with the right token: %v", err)
	}
	if r := waitAccept(t, results); r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
}

func TestTooManyAttempts(t *testing.T) {
	f := listen(t, time.Minute)
	offer := makeOffer(t, joinerName)
	results := goAccept(t, f.l, acceptWith(`{}`))

	for i := 1; i <= MaxAttempts; i++ {
		if _, err := Dial(dialCtx(t), f.l.Addr().String(), otherToken(t, f.tok), offer); !errors.Is(err, ErrBadToken) {
			t.Fatalf("wrong Dial #%d: error = %v, want ErrBadToken", i, err)
		}
	}
	r := waitAccept(t, results)
	if !errors.Is(r.err, ErrTooManyAttempts) || !errors.Is(r.err, ErrTokenBurnt) {
		t.Fatalf("Accept error = %v, want ErrTooManyAttempts (and ErrTokenBurnt)", r.err)
	}
	if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer); err == nil {
		t.Fatal("Dial with the right token succeeded after the token was burnt")
	}
	if _, err := f.l.Accept(dialCtx(t), acceptWith(`{}`)); !errors.Is(err, ErrTooManyAttempts) {
		t.Errorf("later Accept error = %v, want ErrTooManyAttempts", err)
	}
	if n := f.l.FailedAttempts(); n != MaxAttempts {
		t.Errorf("FailedAttempts = %d, want %d", n, MaxAttempts)
	}
}

// Concurrent guesses must not get more than MaxAttempts proofs checked.
func TestConcurrentGuessesBounded(t *testing.T) {
	t.Run("verify", func(t *testing.T) {
		f := listen(t, time.Minute)
		want := bytes.Repeat([]byte{1}, 32)
		wrong := bytes.Repeat([]byte{2}, 32)
		const n = 50
		verdicts := make(chan verdict, n+1)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				verdicts <- f.l.verify(wrong, want)
			}()
		}
		wg.Wait()
		verdicts <- f.l.verify(want, want) // the right proof, too late
		close(verdicts)
		count := map[verdict]int{}
		for v := range verdicts {
			count[v]++
		}
		if count[verdictWrong] != MaxAttempts-1 || count[verdictBurnt] != 1 ||
			count[verdictNotOpen] != n+1-MaxAttempts || count[verdictOK] != 0 {
			t.Errorf("verdicts: %v; want %d wrong, 1 burnt, the rest not open", count, MaxAttempts-1)
		}
	})
	t.Run("network", func(t *testing.T) {
		f := listen(t, time.Minute)
		offer := makeOffer(t, joinerName)
		results := goAccept(t, f.l, acceptWith(`{}`))
		var wg sync.WaitGroup
		for i := 0; i < 3*MaxAttempts; i++ {
			wrong := otherToken(t, f.tok)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := Dial(dialCtx(t), f.l.Addr().String(), wrong, offer); err == nil {
					t.Error("Dial with a wrong token succeeded")
				}
			}()
		}
		wg.Wait()
		if r := waitAccept(t, results); !errors.Is(r.err, ErrTooManyAttempts) {
			t.Fatalf("Accept error = %v, want ErrTooManyAttempts", r.err)
		}
		if n := f.l.FailedAttempts(); n != MaxAttempts {
			t.Errorf("FailedAttempts = %d, want exactly %d", n, MaxAttempts)
		}
	})
}

func TestExpiry(t *testing.T) {
	f := listen(t, 300*time.Millisecond)
	offer := makeOffer(t, joinerName)
	start := time.Now()
	r := waitAccept(t, goAccept(t, f.l, acceptWith(`{}`)))
	if !errors.Is(r.err, ErrExpired) {
		t.Fatalf("Accept error = %v, want ErrExpired", r.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Accept took %s to notice the expiry", d)
	}
	if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer); err == nil {
		t.Error("Dial with an expired token succeeded")
	}
	if _, err := f.l.Accept(dialCtx(t), acceptWith(`{}`)); !errors.Is(err, ErrExpired) {
		t.Errorf("later Accept error = %v, want ErrExpired", err)
	}

	// An already expired token cannot be listened for.
	tok := Token{Value: f.tok.Value, ExpiresAt: time.Now().Add(-time.Second)}
	if l, err := Listen("127.0.0.1:0", tok, joinerName, nil); !errors.Is(err, ErrExpired) {
		if l != nil {
			_ = l.Close()
		}
		t.Errorf("Listen with an expired token: error = %v, want ErrExpired", err)
	}
}

// An expired token is rejected even when Accept has not noticed yet.
func TestExpiredProofRejected(t *testing.T) {
	f := listen(t, time.Minute)
	offer := makeOffer(t, joinerName)
	f.l.mu.Lock()
	f.l.expiresAt = time.Now().Add(-time.Millisecond) // as if the timer were late
	f.l.mu.Unlock()
	f.l.verify(nil, nil) // marks it expired
	if !f.l.stateIs(stateExpired) {
		t.Fatal("state is not expired")
	}
	// The running state check rejects even the right proof.
	if v := f.l.verify([]byte("x"), []byte("x")); v != verdictNotOpen {
		t.Errorf("verify after expiry = %v, want verdictNotOpen", v)
	}
	if _, err := f.l.Accept(dialCtx(t), acceptWith(`{}`)); !errors.Is(err, ErrExpired) {
		t.Errorf("Accept error = %v, want ErrExpired", err)
	}
	if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer); err == nil {
		t.Error("Dial succeeded")
	}
}

func TestRefused(t *testing.T) {
	f := listen(t, time.Minute)
	offer := makeOffer(t, joinerName)
	results := goAccept(t, f.l, func(o Offer) (Accept, error) {
		return Accept{}, errors.New(`already a member of cluster "other"` + "\x1b[2J")
	})
	_, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Dial error = %v, want ErrRefused", err)
	}
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("Dial error %v is not a *RefusedError", err)
	}
	if want := `already a member of cluster "other"?[2J`; re.Reason != want {
		t.Errorf("Reason = %q, want %q (sanitised)", re.Reason, want)
	}
	r := waitAccept(t, results)
	if !errors.Is(r.err, ErrRefused) || !strings.Contains(r.err.Error(), "already a member") {
		t.Errorf("Accept error = %v, want ErrRefused with the reason", r.err)
	}
	if r.offer.KeyPEM != nil {
		t.Error("Accept returned an offer it refused")
	}
	if _, err := f.l.Accept(dialCtx(t), acceptWith(`{}`)); !errors.Is(err, ErrTokenBurnt) {
		t.Errorf("later Accept error = %v, want ErrTokenBurnt", err)
	}
}

func TestOfferForAnotherNodeRefused(t *testing.T) {
	f := listen(t, time.Minute)
	offer := makeOffer(t, "node-c")
	called := false
	results := goAccept(t, f.l, func(Offer) (Accept, error) {
		called = true
		return Accept{}, nil
	})
	_, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer)
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, `"node-c"`) {
		t.Fatalf("Dial error = %v, want a refusal naming node-c", err)
	}
	if r := waitAccept(t, results); !errors.Is(r.err, ErrRefused) {
		t.Errorf("Accept error = %v, want ErrRefused", r.err)
	}
	if called {
		t.Error("decide was called for an invalid offer")
	}
}

func TestDialChecksOffer(t *testing.T) {
	good := makeOffer(t, joinerName)
	other := makeOffer(t, joinerName)
	for _, tc := range []struct {
		name    string
		mutate  func(o *Offer)
		wantErr string
	}{
		{"no cluster name", func(o *Offer) { o.ClusterName = "" }, "cluster name"},
		{"bad deployer name", func(o *Offer) { o.DeployerName = "Node_A" }, "deployer name"},
		{"no CA", func(o *Offer) { o.CACertPEM = nil }, "CA certificate"},
		{"leaf as CA", func(o *Offer) { o.CACertPEM = o.CertPEM }, "not a CA certificate"},
		{"certificate from another CA", func(o *Offer) { o.CertPEM, o.KeyPEM = other.CertPEM, other.KeyPEM }, "not signed"},
		{"key of another node", func(o *Offer) { o.KeyPEM = other.KeyPEM }, "does not match"},
		{"no key", func(o *Offer) { o.KeyPEM = nil }, "node key"},
		{"bad Extra", func(o *Offer) { o.Extra = json.RawMessage(`{"a":`) }, "Extra"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := listen(t, time.Minute)
			o := good
			tc.mutate(&o)
			_, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, o)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Dial error = %v, want one mentioning %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error reveals key material: %v", err)
			}
		})
	}
}

func TestDialBadTokenSyntax(t *testing.T) {
	_, err := Dial(dialCtx(t), "127.0.0.1:1", "not a token", makeOffer(t, joinerName))
	if err == nil || !strings.Contains(err.Error(), "invalid token") {
		t.Errorf("Dial error = %v, want an invalid token error", err)
	}
}

func TestAcceptContextThenRetry(t *testing.T) {
	f := listen(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := f.l.Accept(ctx, acceptWith(`{}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept error = %v, want context.DeadlineExceeded", err)
	}
	// The token was not consumed: pairing still works.
	results := goAccept(t, f.l, acceptWith(`{}`))
	if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, makeOffer(t, joinerName)); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if r := waitAccept(t, results); r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
}

func TestAcceptOneAtATime(t *testing.T) {
	f := listen(t, time.Minute)
	results := goAccept(t, f.l, acceptWith(`{}`))
	deadline := time.Now().Add(waitLimit)
	for {
		f.l.mu.Lock()
		running := f.l.accepting
		f.l.mu.Unlock()
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Accept did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := f.l.Accept(dialCtx(t), acceptWith(`{}`)); err == nil || !strings.Contains(err.Error(), "another Accept") {
		t.Errorf("concurrent Accept error = %v", err)
	}
	stillWaiting(t, results)
}

func TestCloseStopsAccept(t *testing.T) {
	f := listen(t, time.Minute)
	results := goAccept(t, f.l, acceptWith(`{}`))
	stillWaiting(t, results)
	if err := f.l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := waitAccept(t, results); !errors.Is(r.err, net.ErrClosed) {
		t.Errorf("Accept error = %v, want net.ErrClosed", r.err)
	}
	if _, err := f.l.Accept(dialCtx(t), acceptWith(`{}`)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close error = %v, want net.ErrClosed", err)
	}
}

// A peer that accepts TCP but never speaks: Dial is bounded by its context.
func TestDialBoundedByContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		_ = ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tok, _ := NewToken(time.Minute, time.Now())
	start := time.Now()
	_, err = Dial(ctx, ln.Addr().String(), tok.Value, makeOffer(t, joinerName))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %s", d)
	}
}

// mitm is an attacker between deployer and joiner: it terminates TLS
// towards each side with its own ephemeral certificate, as an attacker
// would, and relays the protocol messages.
type mitm struct {
	ln       net.Listener
	target   string
	terminal bool // terminate TLS (true) or relay raw TCP (false)

	mu   sync.Mutex
	seen []string // message types the deployer sent
	done chan struct{}
}

func startMITM(t *testing.T, target string, terminate bool) *mitm {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mitm{ln: ln, target: target, terminal: terminate, done: make(chan struct{})}
	go m.run(t)
	t.Cleanup(func() {
		_ = ln.Close()
		<-m.done
	})
	return m
}

func (m *mitm) run(t *testing.T) {
	defer close(m.done)
	down, err := m.ln.Accept()
	if err != nil {
		return
	}
	defer down.Close()
	up, err := net.Dial("tcp", m.target)
	if err != nil {
		t.Errorf("mitm: dial joiner: %v", err)
		return
	}
	defer up.Close()
	_ = down.SetDeadline(time.Now().Add(waitLimit))
	_ = up.SetDeadline(time.Now().Add(waitLimit))

	if !m.terminal {
		// A plain TCP relay sees only ciphertext.
		go func() { _, _ = io.Copy(up, down); _ = up.Close() }()
		_, _ = io.Copy(down, up)
		return
	}
	downCert, err := ephemeralCert()
	if err != nil {
		t.Error(err)
		return
	}
	upCert, err := ephemeralCert()
	if err != nil {
		t.Error(err)
		return
	}
	deployer := tls.Server(down, serverConfig(downCert))
	joiner := tls.Client(up, clientConfig(upCert))
	if err := deployer.Handshake(); err != nil {
		t.Errorf("mitm: handshake with deployer: %v", err)
		return
	}
	if err := joiner.Handshake(); err != nil {
		t.Errorf("mitm: handshake with joiner: %v", err)
		return
	}
	// Relay messages both ways, one at a time, recording what the deployer
	// sends, until either side stops.
	for {
		msg, err := readFrame(deployer, MaxMessageSize)
		if err != nil {
			return
		}
		m.mu.Lock()
		m.seen = append(m.seen, msg.Type)
		m.mu.Unlock()
		if err := writeFrame(joiner, msg); err != nil {
			return
		}
		reply, err := readFrame(joiner, MaxMessageSize)
		if err != nil {
			return
		}
		if err := writeFrame(deployer, reply); err != nil {
			return
		}
	}
}

func (m *mitm) seenTypes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.seen...)
}

func TestManInTheMiddle(t *testing.T) {
	for _, tc := range []struct {
		name      string
		terminate bool
		wantOK    bool
	}{
		// Relaying raw TCP is harmless: the attacker sees only ciphertext,
		// and the pairing works.
		{"TCP relay", false, true},
		// Terminating TLS on each side gives two sessions with different
		// exported keys: the relayed proof is wrong, nothing secret flows.
		{"TLS-terminating proxy", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := listen(t, time.Minute)
			offer := makeOffer(t, joinerName)
			results := goAccept(t, f.l, acceptWith(`{}`))
			m := startMITM(t, f.l.Addr().String(), tc.terminate)

			_, err := Dial(dialCtx(t), m.ln.Addr().String(), f.tok.Value, offer)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("Dial through a TCP relay: %v", err)
				}
				if r := waitAccept(t, results); r.err != nil {
					t.Fatalf("Accept: %v", r.err)
				}
				return
			}
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("Dial through the MITM: error = %v, want ErrBadToken", err)
			}
			_ = m.ln.Close()
			<-m.done
			if got := m.seenTypes(); len(got) != 1 || got[0] != msgProof {
				t.Errorf("the deployer sent %v through the MITM, want only its proof", got)
			}
			if n := f.l.FailedAttempts(); n != 1 {
				t.Errorf("FailedAttempts = %d, want 1", n)
			}
			stillWaiting(t, results)

			// The real deployer can still pair directly.
			if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, offer); err != nil {
				t.Fatalf("direct Dial: %v", err)
			}
			if r := waitAccept(t, results); r.err != nil {
				t.Fatalf("Accept: %v", r.err)
			}
		})
	}
}

// An impostor listener that knows the EKM but not the token cannot make the
// deployer send its offer: it only gets a proof it cannot use.
func TestImpostorJoiner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string, 1)
	go func() {
		var types []string
		defer func() { got <- types }()
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(waitLimit))
		cert, err := ephemeralCert()
		if err != nil {
			return
		}
		c := &conn{ctx: context.Background(), raw: raw, tc: tls.Server(raw, serverConfig(cert)), step: waitLimit}
		ekm, cl, sl, err := c.handshake(cert.Certificate[0])
		if err != nil {
			return
		}
		if m, err := c.recv("proof", maxProofSize); err == nil {
			types = append(types, m.Type)
		}
		// A guessed token's proof.
		guess := computeProof([]byte("AAAA-AAAA-AAAA-AAAA-AAAA"), roleServer, ekm, cl, sl)
		_ = c.send(&message{Type: msgProof, Version: protocolVersion, MAC: guess})
		if m, err := c.recv("offer", MaxMessageSize); err == nil {
			types = append(types, m.Type)
		}
	}()
	tok, _ := NewToken(time.Minute, time.Now())
	_, err = Dial(dialCtx(t), ln.Addr().String(), tok.Value, makeOffer(t, joinerName))
	if !errors.Is(err, ErrBadToken) {
		t.Errorf("Dial to an impostor: error = %v, want ErrBadToken", err)
	}
	if types := <-got; len(types) != 1 || types[0] != msgProof {
		t.Errorf("the impostor received %v, want only the proof", types)
	}
}

// tlsDial connects to the listener with a TLS client as the protocol's,
// for tests that then misbehave.
func tlsDial(t *testing.T, addr string, alpnProto string) (*tls.Conn, error) {
	t.Helper()
	cert, err := ephemeralCert()
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(cert)
	cfg.NextProtos = []string{alpnProto}
	d := &tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

func frameHeader(n uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return b[:]
}

func TestGarbage(t *testing.T) {
	for _, tc := range []struct {
		name string
		// send misbehaves on a connection to addr and returns it (or nil
		// if the connection failed already).
		send        func(t *testing.T, addr string) net.Conn
		wantCounted int
	}{
		{"connect and close", func(t *testing.T, addr string) net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, 0},
		{"HTTP request", func(t *testing.T, addr string) net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
			return c
		}, 1},
		{"random bytes", func(t *testing.T, addr string) net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(bytes.Repeat([]byte{0x16, 0x03, 0xff, 0x00, 0x42}, 1000))
			return c
		}, 1},
		{"wrong ALPN", func(t *testing.T, addr string) net.Conn {
			c, err := tlsDial(t, addr, "h2")
			if err != nil {
				return nil // the server refused the handshake
			}
			return c
		}, 1},
		{"oversized frame", func(t *testing.T, addr string) net.Conn {
			c, err := tlsDial(t, addr, alpn)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(frameHeader(2 << 20))
			_, _ = c.Write(make([]byte, 4096))
			return c
		}, 1},
		{"maximum frame before the proof", func(t *testing.T, addr string) net.Conn {
			c, err := tlsDial(t, addr, alpn)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(frameHeader(MaxMessageSize))
			return c
		}, 1},
		{"empty frame", func(t *testing.T, addr string) net.Conn {
			c, err := tlsDial(t, addr, alpn)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(frameHeader(0))
			return c
		}, 1},
		{"malformed JSON", func(t *testing.T, addr string) net.Conn {
			c, err := tlsDial(t, addr, alpn)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(append(frameHeader(5), "{nope"...))
			return c
		}, 1},
		{"offer before proof", func(t *testing.T, addr string) net.Conn {
			c, err := tlsDial(t, addr, alpn)
			if err != nil {
				t.Fatal(err)
			}
			o := makeOffer(t, joinerName)
			_ = writeFrame(c, &message{Type: msgOffer, Offer: &o})
			return c
		}, 1},
		{"proof of another version", func(t *testing.T, addr string) net.Conn {
			c, err := tlsDial(t, addr, alpn)
			if err != nil {
				t.Fatal(err)
			}
			_ = writeFrame(c, &message{Type: msgProof, Version: 2, MAC: make([]byte, 32)})
			return c
		}, 1},
		{"short proof", func(t *testing.T, addr string) net.Conn {
			c, err := tlsDial(t, addr, alpn)
			if err != nil {
				t.Fatal(err)
			}
			_ = writeFrame(c, &message{Type: msgProof, Version: protocolVersion, MAC: []byte{1}})
			return c
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := listen(t, time.Minute)
			results := goAccept(t, f.l, acceptWith(`{}`))
			addr := f.l.Addr().String()

			if c := tc.send(t, addr); c != nil {
				if tc.wantCounted == 0 {
					_ = c.Close()
				} else {
					// The listener must hang up on us, well before any
					// step timeout.
					_ = c.SetReadDeadline(time.Now().Add(waitLimit))
					_, err := io.Copy(io.Discard, c)
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Errorf("the listener did not disconnect: %v", err)
					}
					_ = c.Close()
				}
			}
			// The failure is counted when the listener hangs up; allow for
			// a connection it has not served yet.
			deadline := time.Now().Add(waitLimit)
			for f.l.FailedAttempts() != tc.wantCounted && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := f.l.FailedAttempts(); n != tc.wantCounted {
				t.Errorf("FailedAttempts = %d, want %d", n, tc.wantCounted)
			}
			stillWaiting(t, results)

			// The listener still serves the real deployer.
			if _, err := Dial(dialCtx(t), addr, f.tok.Value, makeOffer(t, joinerName)); err != nil {
				t.Fatalf("Dial after garbage: %v", err)
			}
			if r := waitAccept(t, results); r.err != nil {
				t.Fatalf("Accept: %v", r.err)
			}
			if n := f.l.FailedAttempts(); n != tc.wantCounted {
				t.Errorf("FailedAttempts after pairing = %d, want %d", n, tc.wantCounted)
			}
		})
	}
}

// A client that connects and stays silent is dropped after the step
// timeout; it is not counted (it cannot be a guess).
func TestSilentClient(t *testing.T) {
	f := listen(t, time.Minute)
	f.l.step = 200 * time.Millisecond
	results := goAccept(t, f.l, acceptWith(`{}`))
	c, err := net.Dial("tcp", f.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	start := time.Now()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("read: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("silent client dropped after %s", d)
	}
	if n := f.l.FailedAttempts(); n != 0 {
		t.Errorf("FailedAttempts = %d, want 0", n)
	}
	stillWaiting(t, results)
}

// Silent connections filling every serving slot delay the deployer but do
// not shut it out: extra connections wait in the queue, not dropped.
func TestSilentFloodDoesNotShutOut(t *testing.T) {
	f := listen(t, time.Minute)
	f.l.step = 200 * time.Millisecond
	results := goAccept(t, f.l, acceptWith(`{}`))
	for i := 0; i < 2*maxConcurrent; i++ {
		c, err := net.Dial("tcp", f.l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if _, err := Dial(dialCtx(t), f.l.Addr().String(), f.tok.Value, makeOffer(t, joinerName)); err != nil {
		t.Fatalf("Dial behind a flood: %v", err)
	}
	if r := waitAccept(t, results); r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	if n := f.l.FailedAttempts(); n != 0 {
		t.Errorf("FailedAttempts = %d, want 0", n)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	want := &message{Type: msgProof, Version: protocolVersion, MAC: bytes.Repeat([]byte{7}, 32)}
	if err := writeFrame(&buf, want); err != nil {
		t.Fatal(err)
	}
	got, err := readFrame(&buf, maxProofSize)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != want.Type || got.Version != want.Version || !bytes.Equal(got.MAC, want.MAC) {
		t.Errorf("round trip: got %+v, want %+v", got, want)
	}

	big := &message{Type: msgRefuse, Reason: strings.Repeat("x", MaxMessageSize)}
	if err := writeFrame(io.Discard, big); !errors.Is(err, errFrameTooLarge) {
		t.Errorf("writeFrame of %d bytes: error = %v, want errFrameTooLarge", MaxMessageSize, err)
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		limit int
	}{
		{"over the limit", append(frameHeader(maxProofSize+1), make([]byte, maxProofSize+1)...), maxProofSize},
		{"over the maximum", frameHeader(1<<32 - 1), MaxMessageSize},
		{"empty", frameHeader(0), MaxMessageSize},
		{"truncated", append(frameHeader(10), "{}"...), MaxMessageSize},
		{"trailing data", append(frameHeader(9), `{"a":1} x`...), MaxMessageSize},
		{"no type", append(frameHeader(2), "{}"...), MaxMessageSize},
		{"not an object", append(frameHeader(2), "[]"...), MaxMessageSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := readFrame(bytes.NewReader(tc.in), tc.limit); err == nil {
				t.Errorf("readFrame = %+v, want an error", m)
			}
		})
	}
}

func TestProofSeparation(t *testing.T) {
	key := []byte("K7QF-M2XD-9WRT-B4NC-HPZE")
	ekm := bytes.Repeat([]byte{1}, 32)
	cl, sl := []byte("client leaf"), []byte("server leaf")
	base := computeProof(key, roleClient, ekm, cl, sl)
	for _, tc := range []struct {
		name string
		mac  []byte
	}{
		{"role", computeProof(key, roleServer, ekm, cl, sl)},
		{"key", computeProof([]byte("K7QF-M2XD-9WRT-B4NC-HPZ0"), roleClient, ekm, cl, sl)},
		{"ekm", computeProof(key, roleClient, bytes.Repeat([]byte{2}, 32), cl, sl)},
		{"client leaf", computeProof(key, roleClient, ekm, []byte("other"), sl)},
		{"server leaf", computeProof(key, roleClient, ekm, cl, []byte("other"))},
		{"swapped leaves", computeProof(key, roleClient, ekm, sl, cl)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.mac, base) {
				t.Errorf("changing the %s does not change the proof", tc.name)
			}
		})
	}
}

func TestSanitizeReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"", "no reason given"},
		{"a\nb\x00c\x1b", "a?b?c?"},
		{strings.Repeat("é", maxReasonLen), strings.Repeat("é", maxReasonLen/2)},
	} {
		if got := sanitizeReason(tc.in); got != tc.want {
			t.Errorf("sanitizeReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func (l *Listener) stateIs(s tokenState) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == s
}
