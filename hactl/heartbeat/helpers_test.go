package heartbeat

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Test timing: short beats so that the tests are quick; every wait is a
// generous liveness bound, never a speed assertion.
const (
	testInterval  = 50 * time.Millisecond
	testDeadAfter = 400 * time.Millisecond
	settle        = 5 * time.Second // "eventually" bound for connections
	downBound     = testDeadAfter + 3*time.Second
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// freeAddr returns ip:port with a UDP port that was free a moment ago.
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatalf("reserve a UDP port on %s: %v", ip, err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// pairConfigs returns configs for node-a (on 127.0.0.2) and node-b (on
// 127.0.0.3), joined by the links "heartbeat" and "public".
func pairConfigs(t *testing.T) (a, b Config) {
	t.Helper()
	a1, a2 := freeAddr(t, "127.0.0.2"), freeAddr(t, "127.0.0.2")
	b1, b2 := freeAddr(t, "127.0.0.3"), freeAddr(t, "127.0.0.3")
	base := Config{Interval: testInterval, DeadAfter: testDeadAfter, Key: testKey, Logger: testLogger(t)}
	a, b = base, base
	a.Node, a.PeerNode = "node-a", "node-b"
	b.Node, b.PeerNode = "node-b", "node-a"
	a.Links = []Link{{Name: "heartbeat", Listen: a1, Peer: b1}, {Name: "public", Listen: a2, Peer: b2}}
	b.Links = []Link{{Name: "heartbeat", Listen: b1, Peer: a1}, {Name: "public", Listen: b2, Peer: a2}}
	return a, b
}

func mustNew(t *testing.T, cfg Config) *Heartbeat {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// runner runs one Heartbeat.Run in a goroutine; stop cancels it and checks
// that Run returns.
type runner struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func start(t *testing.T, h *Heartbeat) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- h.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *runner) stop() {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			r.t.Errorf("Run did not return within 10s of its context being cancelled")
		}
	})
}

// waitFor polls cond until it holds or the bound passes.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func linkStatus(h *Heartbeat, name string) LinkStatus {
	for _, s := range h.Status() {
		if s.Name == name {
			return s
		}
	}
	return LinkStatus{}
}

func allConnected(h *Heartbeat) bool {
	for _, s := range h.Status() {
		if !s.Connected {
			return false
		}
	}
	return true
}

func noneConnected(h *Heartbeat) bool {
	for _, s := range h.Status() {
		if s.Connected {
			return false
		}
	}
	return !h.Connected()
}

// udpProxy relays datagrams between A and B on one link and can drop them.
// A sends to ASide(), B sends to BSide().
type udpProxy struct {
	aSide, bSide *net.UDPConn
	drop         atomic.Bool
	wg           sync.WaitGroup
}

func newProxy(t *testing.T, ip, aListen, bListen string) *udpProxy {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ip+":0")))
		if err != nil {
			t.Fatalf("proxy listen: %v", err)
		}
		return c
	}
	p := &udpProxy{aSide: listen(), bSide: listen()}
	p.wg.Go(func() { p.relay(p.aSide, p.bSide, netip.MustParseAddrPort(bListen)) })
	p.wg.Go(func() { p.relay(p.bSide, p.aSide, netip.MustParseAddrPort(aListen)) })
	t.Cleanup(func() {
		p.aSide.Close()
		p.bSide.Close()
		p.wg.Wait()
	})
	return p
}

func (p *udpProxy) ASide() string { return p.aSide.LocalAddr().String() }
func (p *udpProxy) BSide() string { return p.bSide.LocalAddr().String() }

func (p *udpProxy) relay(from, to *net.UDPConn, dst netip.AddrPort) {
	buf := make([]byte, 2048)
	for {
		n, _, err := from.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed by the cleanup
		}
		if p.drop.Load() {
			continue
		}
		to.WriteToUDPAddrPort(buf[:n], dst)
	}
}
