package hactltest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// SampleInterval is how often a namespace lab's sampler looks at the VIP
// and the databases.
const SampleInterval = 50 * time.Millisecond

// sampleQueryTimeout bounds one database's answer in a sample: a database
// that has not answered by then counts as not accepting writes.
const sampleQueryTimeout = 200 * time.Millisecond

// SamplerStats is what a namespace lab's sampler saw so far.
type SamplerStats struct {
	// Samples is how many samples were taken.
	Samples int
	// VIPHeld counts samples in which at least one host had the VIP, and
	// VIPOverlaps those in which two hosts had it at once.
	VIPHeld, VIPOverlaps int
	// Writable counts samples in which at least one database accepted
	// writes, and WritableOverlaps those in which two did at once.
	Writable, WritableOverlaps int
	// First describes the first overlap ("" when there was none).
	First string
}

func (s SamplerStats) String() string {
	return fmt.Sprintf("%d samples; VIP held in %d, by two hosts in %d; a writable database in %d, two in %d",
		s.Samples, s.VIPHeld, s.VIPOverlaps, s.Writable, s.WritableOverlaps)
}

// sampler checks, every SampleInterval, that no two data hosts of a
// namespace lab hold the VIP (read with netlink in each host's namespace)
// and that no two databases accept writes (SELECT pg_is_in_recovery() over
// each server's unix socket, which is on the shared filesystem: a database
// that does not answer within sampleQueryTimeout counts as not writable).
// Its goroutine is owned by the lab: it runs from NewNet until the test's
// cleanup, after the agents stopped.
type sampler struct {
	nodes  []*sampledNode
	vip    net.IP
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	stats SamplerStats
}

type sampledNode struct {
	name string
	nl   *netlink.Handle
	cfg  *pgx.ConnConfig
	conn *pgx.Conn // reused between samples; only the sampler's goroutine uses it
}

// startSampler opens a netlink handle in each data host's namespace and
// starts sampling.
func (l *Lab) startSampler() {
	l.t.Helper()
	s := &sampler{vip: net.ParseIP(l.vip), done: make(chan struct{})}
	for _, n := range l.names {
		if l.cfgs[n].IsWitness() {
			continue
		}
		h, err := netns.GetFromName(l.ns[n])
		if err != nil {
			l.t.Fatalf("sampler: open namespace %s: %v", l.ns[n], err)
		}
		nl, err := netlink.NewHandleAt(h)
		h.Close()
		if err != nil {
			l.t.Fatalf("sampler: netlink in %s: %v", l.ns[n], err)
		}
		cc, err := l.Controller(n).ConnConfig()
		if err != nil {
			nl.Close()
			l.t.Fatalf("sampler: %s: %v", n, err)
		}
		cc.ConnectTimeout = sampleQueryTimeout
		s.nodes = append(s.nodes, &sampledNode{name: n, nl: nl, cfg: cc})
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	l.sampler = s
}

func (s *sampler) run(ctx context.Context) {
	defer close(s.done)
	defer func() {
		for _, n := range s.nodes {
			if n.conn != nil {
				n.conn.Close(context.Background())
			}
			n.nl.Close()
		}
	}()
	tick := time.NewTicker(SampleInterval)
	defer tick.Stop()
	// Bounded: a test lasts far less than this many samples (~4 h).
	for i := 0; i < 300000; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.sample(ctx)
	}
}

func (s *sampler) sample(ctx context.Context) {
	at := time.Now()
	var holders, writers []string
	for _, n := range s.nodes {
		if n.holdsVIP(s.vip) {
			holders = append(holders, n.name)
		}
	}
	for _, n := range s.nodes {
		if n.writable(ctx) {
			writers = append(writers, n.name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Samples++
	if len(holders) > 0 {
		s.stats.VIPHeld++
	}
	if len(holders) > 1 {
		s.stats.VIPOverlaps++
		if s.stats.First == "" {
			s.stats.First = fmt.Sprintf("%s: the VIP on %s", at.Format("15:04:05.000"), strings.Join(holders, " and "))
		}
	}
	if len(writers) > 0 {
		s.stats.Writable++
	}
	if len(writers) > 1 {
		s.stats.WritableOverlaps++
		if s.stats.First == "" {
			s.stats.First = fmt.Sprintf("%s: databases of %s both accept writes", at.Format("15:04:05.000"), strings.Join(writers, " and "))
		}
	}
}

// holdsVIP reads eth0's IPv4 addresses in n's namespace (false on error:
// the interface exists for the lab's whole life).
func (n *sampledNode) holdsVIP(vip net.IP) bool {
	link, err := n.nl.LinkByName("eth0")
	if err != nil {
		return false
	}
	addrs, err := n.nl.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IP.Equal(vip) {
			return true
		}
	}
	return false
}

// writable asks n's PostgreSQL whether it is a primary (accepts writes).
func (n *sampledNode) writable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, sampleQueryTimeout)
	defer cancel()
	if n.conn == nil {
		c, err := pgx.ConnectConfig(ctx, n.cfg)
		if err != nil {
			return false
		}
		n.conn = c
	}
	var inRecovery bool
	if err := n.conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		n.conn.Close(context.Background())
		n.conn = nil
		return false
	}
	return !inRecovery
}

// stop ends the sampling and returns what it saw.
func (s *sampler) stop() SamplerStats {
	s.cancel()
	<-s.done
	return s.Stats()
}

// Stats returns what the sampler saw so far.
func (s *sampler) Stats() SamplerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// SamplerStats returns what a namespace lab's sampler (see NewNet) saw so
// far; the zero value in a loopback lab.
func (l *Lab) SamplerStats() SamplerStats {
	if l.sampler == nil {
		return SamplerStats{}
	}
	return l.sampler.Stats()
}

// Writable reports whether name's PostgreSQL accepts writes now: it answers
// SELECT pg_is_in_recovery() = false over its unix socket within 1 s.
func (l *Lab) Writable(name string) bool {
	l.t.Helper()
	cc, err := l.Controller(name).ConnConfig()
	if err != nil {
		l.t.Fatalf("writable %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n := &sampledNode{name: name, cfg: cc}
	defer func() {
		if n.conn != nil {
			n.conn.Close(context.Background())
		}
	}()
	return n.writable(ctx)
}

// checkSampler stops the sampler at the end of a test and fails the test
// if it saw an overlap.
func (l *Lab) checkSampler(tb testing.TB) {
	st := l.sampler.stop()
	tb.Logf("split-brain sampler (every %v): %v", SampleInterval, st)
	if st.VIPOverlaps > 0 || st.WritableOverlaps > 0 {
		tb.Errorf("split brain seen by the sampler: %d samples with two VIP holders, %d with two writable databases; first: %s",
			st.VIPOverlaps, st.WritableOverlaps, st.First)
	}
}
