package heartbeat

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Senders that must never bring a link up: each is rejected and counted.
func TestForeignSenderRejected(t *testing.T) {
	otherKey := bytes.Repeat([]byte("x"), MinKeyLen)
	tests := []struct {
		name string
		// intruder returns the config of the node impersonating node-b.
		intruder func(b Config) Config
	}{
		{"wrong key", func(b Config) Config { b.Key = otherKey; return b }},
		{"wrong node name", func(b Config) Config { b.Node = "node-x"; return b }},
		{"wrong node name and key", func(b Config) Config { b.Node, b.Key = "node-x", otherKey; return b }},
		{"reflected own name", func(b Config) Config { b.Node, b.PeerNode = "node-a", "node-b"; return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgA, cfgB := pairConfigs(t)
			a := mustNew(t, cfgA)
			x := mustNew(t, tt.intruder(cfgB))
			changed := a.Changed()
			start(t, a)
			start(t, x)
			waitFor(t, settle, "rejections on both links", func() bool {
				for _, s := range a.Status() {
					if s.Rejected < 3 {
						return false
					}
				}
				return true
			})
			for _, s := range a.Status() {
				if s.Connected || s.Received != 0 || !s.LastSeen.IsZero() || s.RTT != 0 {
					t.Errorf("link %s accepted the intruder: %+v", s.Name, s)
				}
			}
			if a.Connected() {
				t.Fatal("Connected() with only an intruder")
			}
			if p, _ := a.PeerPayload(); p != nil {
				t.Fatalf("intruder payload accepted: %q", p)
			}
			select {
			case <-changed:
				t.Fatal("a link went up for the intruder")
			default:
			}
		})
	}
}

// fakePeer is a scripted node-b on raw sockets: it answers node-a's pings
// with pongs of its session and lets the test send arbitrary packets.
type fakePeer struct {
	t       *testing.T
	conns   []*net.UDPConn
	dsts    []netip.AddrPort // node-a's listen address per link
	session uint64
	pongs   chan Packet   // pongs received from node-a
	pings   []chan Packet // pings received from node-a, per link
	mute    atomic.Bool   // stop answering node-a's pings
	wg      sync.WaitGroup
}

func newFakePeer(t *testing.T, cfgB Config, session uint64) *fakePeer {
	f := &fakePeer{t: t, session: session, pongs: make(chan Packet, 1024)}
	for _, l := range cfgB.Links {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(l.Listen)))
		if err != nil {
			t.Fatalf("fake peer listen: %v", err)
		}
		f.conns = append(f.conns, c)
		f.dsts = append(f.dsts, netip.MustParseAddrPort(l.Peer))
		f.pings = append(f.pings, make(chan Packet, 1))
	}
	for i := range f.conns {
		f.wg.Go(func() { f.serve(i) })
	}
	t.Cleanup(func() {
		for _, c := range f.conns {
			c.Close()
		}
		f.wg.Wait()
	})
	return f
}

func (f *fakePeer) serve(i int) {
	buf := make([]byte, 2048)
	for {
		n, _, err := f.conns[i].ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed by the cleanup
		}
		p, err := Decode(buf[:n], testKey)
		if err != nil {
			continue
		}
		switch p.Type {
		case TypePing:
			select {
			case f.pings[i] <- p:
			default: // keep the oldest unread; nextPing drains
			}
			if !f.mute.Load() {
				f.send(i, Packet{Type: TypePong, Node: "node-b", Seq: p.Seq, SentAt: p.SentAt, Session: f.session})
			}
		case TypePong:
			select {
			case f.pongs <- p:
			default:
			}
		}
	}
}

func (f *fakePeer) send(i int, p Packet) []byte {
	b, err := Encode(p, testKey)
	if err != nil {
		f.t.Errorf("encode: %v", err)
		return nil
	}
	f.sendRaw(i, b)
	return b
}

func (f *fakePeer) sendRaw(i int, b []byte) {
	if _, err := f.conns[i].WriteToUDPAddrPort(b, f.dsts[i]); err != nil {
		f.t.Errorf("fake peer send: %v", err)
	}
}

// nextPing returns a ping from node-a on link i received after the call.
func (f *fakePeer) nextPing(t *testing.T, i int) Packet {
	t.Helper()
	select {
	case <-f.pings[i]: // possibly stale
	default:
	}
	select {
	case p := <-f.pings[i]:
		return p
	case <-time.After(settle):
		t.Fatal("no ping from node-a")
		return Packet{}
	}
}

// waitPong waits for node-a's pong to the ping with this seq.
func (f *fakePeer) waitPong(t *testing.T, seq uint64) Packet {
	t.Helper()
	timeout := time.After(settle)
	for {
		select {
		case p := <-f.pongs:
			if p.Seq == seq {
				return p
			}
		case <-timeout:
			t.Fatalf("no pong for seq %d", seq)
		}
	}
}

func TestReplayAndSessions(t *testing.T) {
	cfgA, cfgB := pairConfigs(t)
	cfgA.DeadAfter = 2 * time.Second // the fake keeps answering; be lenient
	a := mustNew(t, cfgA)
	const session = 0x1111
	f := newFakePeer(t, cfgB, session)
	start(t, a)
	waitFor(t, settle, "links up from the fake's pongs", func() bool { return allConnected(a) })

	ping := func(session, seq uint64, payload string) Packet {
		return Packet{Type: TypePing, Node: "node-b", Seq: seq, SentAt: time.Now().UnixNano(), Session: session, Payload: []byte(payload)}
	}
	rejected := func(link int) uint64 { return a.Status()[link].Rejected }
	expectRejected := func(t *testing.T, link int, before uint64) {
		t.Helper()
		waitFor(t, settle, "the packet to be rejected", func() bool { return rejected(link) == before+1 })
	}
	payload := func() string { p, _ := a.PeerPayload(); return string(p) }
	var genuine []byte // a pong accepted by node-a, replayed later

	// Steps run in order and build on each other.
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"trusted ping accepted and answered", func(t *testing.T) {
			f.send(0, ping(session, 100, "epoch=1"))
			if p := f.waitPong(t, 100); p.Node != "node-a" || p.Session == 0 {
				t.Fatalf("pong %+v", p)
			}
			waitFor(t, settle, "payload", func() bool { return payload() == "epoch=1" })
		}},
		{"same ping replayed", func(t *testing.T) {
			before := rejected(0)
			f.send(0, ping(session, 100, "epoch=0"))
			expectRejected(t, 0, before)
		}},
		{"older ping replayed", func(t *testing.T) {
			before := rejected(0)
			f.send(0, ping(session, 50, "epoch=0"))
			expectRejected(t, 0, before)
		}},
		{"newer ping accepted", func(t *testing.T) {
			f.send(0, ping(session, 200, "epoch=2"))
			f.waitPong(t, 200)
			waitFor(t, settle, "payload", func() bool { return payload() == "epoch=2" })
		}},
		{"older seq on the other link: fresh for the link, payload kept", func(t *testing.T) {
			received := a.Status()[1].Received
			f.send(1, ping(session, 150, "epoch=1.5"))
			f.waitPong(t, 150)
			waitFor(t, settle, "accepted on link 1", func() bool { return a.Status()[1].Received > received })
			if got := payload(); got != "epoch=2" {
				t.Fatalf("payload went back to %q", got)
			}
		}},
		{"ping from an unconfirmed session answered but not trusted", func(t *testing.T) {
			f.send(0, ping(0x2222, 1, "intruder"))
			if p := f.waitPong(t, 1); p.Seq != 1 {
				t.Fatalf("pong %+v", p)
			}
			// node-a updates the payload before it answers, so any wrong
			// acceptance is visible by now.
			if got := payload(); got != "epoch=2" {
				t.Fatalf("unconfirmed session changed the payload to %q", got)
			}
		}},
		{"unconfirmed session replay rejected", func(t *testing.T) {
			before := rejected(0)
			f.send(0, ping(0x2222, 1, "intruder"))
			expectRejected(t, 0, before)
		}},
		{"trusted session not forgotten after many unconfirmed ones", func(t *testing.T) {
			for i := range uint64(2 * maxSessions) {
				f.send(0, ping(0x3000+i, 1000+i, "intruder"))
				f.waitPong(t, 1000+i)
			}
			before := rejected(0)
			f.send(0, ping(session, 200, "epoch=0"))
			expectRejected(t, 0, before)
			if got := payload(); got != "epoch=2" {
				t.Fatalf("payload %q", got)
			}
		}},
		{"pong for no ping", func(t *testing.T) {
			before := rejected(0)
			f.send(0, Packet{Type: TypePong, Node: "node-b", Seq: 1 << 60, SentAt: time.Now().UnixNano(), Session: session})
			expectRejected(t, 0, before)
		}},
		{"pong with a forged send time, then the genuine one", func(t *testing.T) {
			f.mute.Store(true)
			defer f.mute.Store(false)
			p := f.nextPing(t, 0)
			before, received := rejected(0), a.Status()[0].Received
			f.send(0, Packet{Type: TypePong, Node: "node-b", Seq: p.Seq, SentAt: p.SentAt + 1, Session: session})
			expectRejected(t, 0, before)
			genuine = f.send(0, Packet{Type: TypePong, Node: "node-b", Seq: p.Seq, SentAt: p.SentAt, Session: session})
			waitFor(t, settle, "the genuine pong accepted", func() bool { return a.Status()[0].Received > received })
			if got := rejected(0); got != before+1 {
				t.Fatalf("Rejected = %d, want %d", got, before+1)
			}
		}},
		{"captured pong replayed", func(t *testing.T) {
			before := rejected(0)
			f.sendRaw(0, genuine)
			expectRejected(t, 0, before)
		}},
		{"garbage", func(t *testing.T) {
			before := rejected(1)
			f.sendRaw(1, []byte("GET / HTTP/1.0\r\n\r\n"))
			expectRejected(t, 1, before)
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) records(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// A burst of garbage is counted in full but logged at most once per second
// per link, with snake_case keys; the node keeps working.
func TestGarbageRateLimitedLogging(t *testing.T) {
	cfgA, cfgB := pairConfigs(t)
	var logs lockedBuffer
	cfgA.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := mustNew(t, cfgA)
	start(t, a)
	waitFor(t, settle, "link bound", func() bool { return a.Status()[0].Sent > 0 })

	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.7:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := netip.MustParseAddrPort(cfgA.Links[0].Listen)
	valid, err := Encode(Packet{Type: TypePing, Node: "node-b", Seq: 1, Session: 1}, testKey)
	if err != nil {
		t.Fatal(err)
	}
	garbage := [][]byte{
		{},
		{0},
		[]byte("HAPB"),
		[]byte("HAPB\x01\x01\xff"),
		bytes.Repeat([]byte{0xFF}, 4000),
		valid[:len(valid)-1],
		append(bytes.Clone(valid[:len(valid)-MACLen]), make([]byte, MACLen)...),
	}
	// Rounds are paced by the receiver so that no datagram is lost to a full
	// socket buffer.
	const rounds = 20
	began := time.Now()
	for i := range rounds {
		for _, g := range garbage {
			if _, err := c.WriteToUDPAddrPort(g, dst); err != nil {
				t.Fatal(err)
			}
		}
		want := uint64((i + 1) * len(garbage))
		waitFor(t, settle, "the garbage counted", func() bool { return a.Status()[0].Rejected >= want })
	}
	burst := time.Since(began)
	want := uint64(rounds * len(garbage))
	if got := a.Status()[0].Rejected; got != want {
		t.Fatalf("Rejected = %d, want %d", got, want)
	}

	// Bring node-b up: the node still works after the garbage.
	start(t, mustNew(t, cfgB))
	waitFor(t, settle, "links up after garbage", func() bool { return allConnected(a) })

	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	rejectLines := 0
	for _, r := range logs.records(t) {
		for k := range r {
			if !snake.MatchString(k) {
				t.Errorf("log key %q is not snake_case in %v", k, r)
			}
		}
		if r["msg"] == "heartbeat packet rejected" {
			rejectLines++
			for _, k := range []string{"link", "reason", "error", "from", "rejected_total", "suppressed"} {
				if _, ok := r[k]; !ok {
					t.Errorf("rejection log lacks %q: %v", k, r)
				}
			}
		}
	}
	// At most one line per second of burst, plus one for the window the
	// burst started in.
	maxLines := 1 + int(burst/logEvery) + 1
	if rejectLines < 1 || rejectLines > maxLines || uint64(rejectLines) >= want {
		t.Fatalf("%d rejection log lines for %d rejected datagrams in %v, want 1 to %d", rejectLines, want, burst, maxLines)
	}
}
