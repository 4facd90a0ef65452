package heartbeat

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	good := func() Config {
		return Config{
			Node: "node-a", PeerNode: "node-b", Key: testKey,
			Links: []Link{
				{Name: "heartbeat", Listen: "169.254.0.1:5405", Peer: "169.254.0.2:5405"},
				{Name: "public", Listen: "198.18.0.1:5405", Peer: "198.18.0.2:5405"},
			},
		}
	}
	tests := []struct {
		name    string
		mut     func(*Config)
		wantErr string // substring; empty means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"valid ipv6", func(c *Config) { c.Links = []Link{{Name: "v6", Listen: "[::1]:1", Peer: "[::1]:2"}} }, ""},
		{"valid wildcard listen", func(c *Config) { c.Links[0].Listen = "0.0.0.0:5405" }, ""},
		{"empty node", func(c *Config) { c.Node = "" }, "Node"},
		{"long node", func(c *Config) { c.Node = strings.Repeat("n", 64) }, "1 to 63 bytes"},
		{"empty peer node", func(c *Config) { c.PeerNode = "" }, "PeerNode"},
		{"same node names", func(c *Config) { c.PeerNode = c.Node }, "both"},
		{"short key", func(c *Config) { c.Key = testKey[:31] }, "Key: 31 bytes"},
		{"no links", func(c *Config) { c.Links = nil }, "at least one link"},
		{"empty link name", func(c *Config) { c.Links[0].Name = "" }, "Name is empty"},
		{"duplicate link name", func(c *Config) { c.Links[1].Name = "heartbeat" }, "duplicate link name"},
		{"duplicate listen", func(c *Config) { c.Links[1].Listen = c.Links[0].Listen }, "also used by link"},
		{"hostname listen", func(c *Config) { c.Links[0].Listen = "localhost:5405" }, "numeric ip:port"},
		{"listen without port", func(c *Config) { c.Links[0].Listen = "169.254.0.1" }, "Listen"},
		{"listen port 0", func(c *Config) { c.Links[0].Listen = "169.254.0.1:0" }, "port 0"},
		{"bad peer", func(c *Config) { c.Links[0].Peer = "peer" }, "Peer"},
		{"unspecified peer", func(c *Config) { c.Links[0].Peer = "0.0.0.0:5405" }, "unspecified"},
		{"listen equals peer", func(c *Config) { c.Links[0].Peer = c.Links[0].Listen }, "same address"},
		{"mixed families", func(c *Config) { c.Links[0].Peer = "[2001:db8::1]:5405" }, "address families"},
		{"negative interval", func(c *Config) { c.Interval = -time.Second }, "Interval"},
		{"negative dead-after", func(c *Config) { c.DeadAfter = -time.Second }, "DeadAfter"},
		{"dead-after not above interval", func(c *Config) { c.Interval, c.DeadAfter = time.Second, time.Second }, "longer than Interval"},
		{"default dead-after below interval", func(c *Config) { c.Interval = 2 * time.Second }, "longer than Interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mut(&cfg)
			h, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if h.cfg.Interval != DefaultInterval || h.cfg.DeadAfter != DefaultDeadAfter {
					t.Fatalf("defaults not applied: %v %v", h.cfg.Interval, h.cfg.DeadAfter)
				}
				if len(h.Status()) != len(cfg.Links) || h.Connected() {
					t.Fatalf("fresh Heartbeat status: %+v", h.Status())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to mention %q", err, tt.wantErr)
			}
			if h != nil {
				t.Fatal("New returned a Heartbeat with an error")
			}
		})
	}
}

func TestNewCopiesConfig(t *testing.T) {
	a, _ := pairConfigs(t)
	key := bytes.Clone(a.Key)
	a.Key = key
	h := mustNew(t, a)
	key[0] ^= 0xFF
	a.Links[0].Name = "changed"
	if !bytes.Equal(h.key, testKey) || h.Status()[0].Name != "heartbeat" {
		t.Fatal("New kept references to the caller's Key or Links")
	}
}

func TestSetPayload(t *testing.T) {
	a, _ := pairConfigs(t)
	h := mustNew(t, a)
	tests := []struct {
		name    string
		size    int
		wantErr error
	}{
		{"empty", 0, nil},
		{"small", 10, nil},
		{"max", MaxPayload, nil},
		{"too large", MaxPayload + 1, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.SetPayload(make([]byte, tt.size)); !errors.Is(err, tt.wantErr) {
				t.Fatalf("SetPayload(%d bytes) = %v, want %v", tt.size, err, tt.wantErr)
			}
		})
	}
	if p, at := h.PeerPayload(); p != nil || !at.IsZero() {
		t.Fatalf("PeerPayload before any packet = %q, %v", p, at)
	}
}

// Two nodes on loopback: both links come up, RTT is measured, payloads
// travel both ways; when one node stops the other sees every link go down
// and missed pings grow; when it restarts everything comes back.
func TestPairConnectsStopsAndRestarts(t *testing.T) {
	baseGoroutines := runtime.NumGoroutine()
	cfgA, cfgB := pairConfigs(t)
	a, b := mustNew(t, cfgA), mustNew(t, cfgB)
	if err := a.SetPayload([]byte("role=active epoch=7")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPayload([]byte("role=standby epoch=7")); err != nil {
		t.Fatal(err)
	}
	changedA := a.Changed()
	ra := start(t, a)
	rb := start(t, b)

	waitFor(t, settle, "both links connected on both nodes", func() bool {
		return allConnected(a) && allConnected(b)
	})
	select {
	case <-changedA:
	default:
		t.Fatal("Changed() was not closed when the links came up")
	}
	waitFor(t, settle, "an RTT measured on every link", func() bool {
		for _, h := range []*Heartbeat{a, b} {
			for _, s := range h.Status() {
				if s.RTT <= 0 {
					return false
				}
			}
		}
		return true
	})
	waitFor(t, settle, "payloads both ways", func() bool {
		pa, _ := a.PeerPayload()
		pb, _ := b.PeerPayload()
		return string(pa) == "role=standby epoch=7" && string(pb) == "role=active epoch=7"
	})
	if _, at := a.PeerPayload(); at.IsZero() || time.Since(at) < 0 {
		t.Fatalf("PeerPayload time %v", at)
	}
	for _, s := range a.Status() {
		if s.Sent == 0 || s.Received == 0 || s.LastSeen.IsZero() || s.Err != "" {
			t.Errorf("link %s status after connecting: %+v", s.Name, s)
		}
	}
	if s := a.Status()[1]; s.Name != "public" || s.Listen != cfgA.Links[1].Listen || s.Peer != cfgA.Links[1].Peer {
		t.Errorf("status identity %+v", s)
	}

	// A new payload replaces the old one at the peer.
	if err := a.SetPayload([]byte("role=active epoch=8")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, settle, "updated payload", func() bool {
		p, _ := b.PeerPayload()
		return string(p) == "role=active epoch=8"
	})

	// Stop B: A sees both links down.
	missedBefore := a.Status()[0].Missed + a.Status()[1].Missed
	changedA = a.Changed()
	rb.stop()
	if !noneConnected(b) {
		t.Fatalf("B still reports connected links after Run returned: %+v", b.Status())
	}
	waitFor(t, downBound, "A to see both links down", func() bool { return noneConnected(a) })
	select {
	case <-changedA:
	default:
		t.Fatal("Changed() was not closed when the links went down")
	}
	waitFor(t, settle, "missed pings to grow", func() bool {
		return a.Status()[0].Missed+a.Status()[1].Missed > missedBefore
	})
	if p, _ := a.PeerPayload(); string(p) != "role=standby epoch=7" {
		t.Fatalf("PeerPayload after peer stop = %q, want the last one received", p)
	}

	// Restart B as a new process would: a new Heartbeat on the same addresses.
	b2 := mustNew(t, cfgB)
	if err := b2.SetPayload([]byte("role=standby epoch=9")); err != nil {
		t.Fatal(err)
	}
	rb2 := start(t, b2)
	waitFor(t, settle, "reconnection after restart", func() bool {
		return allConnected(a) && allConnected(b2)
	})
	waitFor(t, settle, "payload of the restarted peer", func() bool {
		p, _ := a.PeerPayload()
		return string(p) == "role=standby epoch=9"
	})

	rb2.stop()
	ra.stop()
	if a.Connected() {
		t.Fatal("A connected after its Run returned")
	}
	// Every goroutine the heartbeats started is gone.
	waitFor(t, settle, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= baseGoroutines })
}

func TestRunTwiceAndAgain(t *testing.T) {
	cfgA, cfgB := pairConfigs(t)
	a, b := mustNew(t, cfgA), mustNew(t, cfgB)
	start(t, b)
	ra := start(t, a)
	waitFor(t, settle, "connected", func() bool { return allConnected(a) })
	if err := a.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second concurrent Run = %v, want ErrRunning", err)
	}
	ra.stop()
	// The same Heartbeat runs again with a new session; the peer accepts it.
	start(t, a)
	waitFor(t, settle, "connected after Run again", func() bool { return allConnected(a) && allConnected(b) })
}

func TestRunCancelledContext(t *testing.T) {
	a, _ := pairConfigs(t)
	h := mustNew(t, a)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run with a cancelled context did not return")
	}
}

// A proxy on the public link drops everything: that link goes down, the
// heartbeat link stays up and the pair stays connected.
func TestCutOneLink(t *testing.T) {
	cfgA, cfgB := pairConfigs(t)
	proxy := newProxy(t, "127.0.0.6", cfgA.Links[1].Listen, cfgB.Links[1].Listen)
	cfgA.Links[1].Peer = proxy.ASide()
	cfgB.Links[1].Peer = proxy.BSide()
	a, b := mustNew(t, cfgA), mustNew(t, cfgB)
	start(t, a)
	start(t, b)
	waitFor(t, settle, "both links up through the proxy", func() bool { return allConnected(a) && allConnected(b) })

	missed := linkStatus(a, "public").Missed
	proxy.drop.Store(true)
	waitFor(t, downBound, "the public link down on both nodes", func() bool {
		if !a.Connected() || !b.Connected() {
			t.Fatal("Connected() became false while the heartbeat link works")
		}
		return !linkStatus(a, "public").Connected && !linkStatus(b, "public").Connected
	})
	waitFor(t, settle, "missed pings on the cut link", func() bool { return linkStatus(a, "public").Missed > missed })
	for _, h := range []*Heartbeat{a, b} {
		if !linkStatus(h, "heartbeat").Connected || !h.Connected() {
			t.Fatalf("heartbeat link or pair down: %+v", h.Status())
		}
	}

	proxy.drop.Store(false)
	waitFor(t, settle, "the public link back", func() bool { return allConnected(a) && allConnected(b) })
}

// A link whose address cannot be bound reports the error, does not stop the
// other link, and comes up once the address is free.
func TestBindFailureRetries(t *testing.T) {
	cfgA, cfgB := pairConfigs(t)
	squatter, err := net.ListenPacket("udp", cfgA.Links[0].Listen)
	if err != nil {
		t.Fatalf("occupy %s: %v", cfgA.Links[0].Listen, err)
	}
	defer squatter.Close()
	a, b := mustNew(t, cfgA), mustNew(t, cfgB)
	start(t, a)
	start(t, b)
	waitFor(t, settle, "bind error reported on the heartbeat link", func() bool {
		return strings.Contains(linkStatus(a, "heartbeat").Err, "bind")
	})
	waitFor(t, settle, "the public link up despite it", func() bool {
		return linkStatus(a, "public").Connected && a.Connected()
	})
	if linkStatus(a, "heartbeat").Connected {
		t.Fatal("unbound link reported connected")
	}
	squatter.Close()
	waitFor(t, settle, "the heartbeat link bound and up", func() bool {
		s := linkStatus(a, "heartbeat")
		return s.Connected && s.Err == ""
	})
}

// A paused node (its cluster services stopped) takes no part: its links go
// down at once, the peer's after DeadAfter, nothing it receives counts as a
// rejected packet, and resuming brings every link back.
func TestPauseAndResume(t *testing.T) {
	cfgA, cfgB := pairConfigs(t)
	a, b := mustNew(t, cfgA), mustNew(t, cfgB)
	start(t, a)
	start(t, b)
	waitFor(t, settle, "both links up", func() bool { return allConnected(a) && allConnected(b) })

	changed := a.Changed()
	if !a.SetPaused(true) || !a.Paused() {
		t.Fatal("SetPaused(true) on a running heartbeat changed nothing")
	}
	if a.SetPaused(true) {
		t.Fatal("pausing twice reported a change")
	}
	select {
	case <-changed:
	default:
		t.Fatal("pausing did not signal Changed")
	}
	if a.Connected() {
		t.Fatalf("the paused node still shows a link connected: %+v", a.Status())
	}
	waitFor(t, downBound, "the peer's links down", func() bool { return noneConnected(b) })
	// Any ping in flight when the pause began is long sent by now; while
	// the peer misses two more of its own pings, the paused node sends none.
	sent := map[string]uint64{}
	for _, st := range a.Status() {
		sent[st.Name] = st.Sent
	}
	missed := linkStatus(b, "heartbeat").Missed
	waitFor(t, downBound, "the peer missing two more pings", func() bool { return linkStatus(b, "heartbeat").Missed >= missed+2 })
	for _, st := range a.Status() {
		if st.Connected || st.Sent != sent[st.Name] || st.Rejected != 0 {
			t.Fatalf("paused node, link %s: %+v (sent %d before); it must send nothing and reject nothing", st.Name, st, sent[st.Name])
		}
	}

	if !a.SetPaused(false) || a.Paused() {
		t.Fatal("SetPaused(false) changed nothing")
	}
	waitFor(t, settle, "both links back after resuming", func() bool { return allConnected(a) && allConnected(b) })
}
