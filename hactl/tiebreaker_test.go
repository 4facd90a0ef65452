package hactl_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/hactltest"
	"github.com/hapair/hapair/hactl/hapb"
)

// tieBreaker is a TCP listener standing for the gateway a pair without a
// witness probes; close makes it unreachable.
type tieBreaker struct {
	addr string
	mu   sync.Mutex
	ln   net.Listener
	wg   sync.WaitGroup
}

func newTieBreaker(t *testing.T) *tieBreaker {
	tb := &tieBreaker{}
	tb.open(t, "127.0.0.1:0")
	t.Cleanup(tb.close)
	return tb
}

func (tb *tieBreaker) open(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("tie-breaker: %v", err)
	}
	tb.mu.Lock()
	tb.ln, tb.addr = ln, ln.Addr().String()
	tb.mu.Unlock()
	tb.wg.Add(1)
	go func() {
		defer tb.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (tb *tieBreaker) close() {
	tb.mu.Lock()
	ln := tb.ln
	tb.ln = nil
	tb.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	tb.wg.Wait()
}

func withTieBreaker(l *hactltest.Lab, addr string) {
	for _, n := range l.Names() {
		c := l.Config(n)
		c.TieBreaker = addr
		c.Timers.FailoverTimeout = hactl.Duration(3 * time.Second)
		l.SetConfig(n, c)
	}
}

// tieBreakerPair starts a pair without a witness that uses a tie-breaker,
// and waits until primary-node is Active and streams to secondary-node.
func tieBreakerPair(t *testing.T) (*hactltest.Lab, *tieBreaker) {
	t.Helper()
	l := hactltest.New(t, hactltest.Options{})
	tb := newTieBreaker(t)
	withTieBreaker(l, tb.addr)
	l.Start("primary-node")
	l.Start("secondary-node")
	l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
	l.WaitFor("secondary-node", "replication", hactltest.Replicates("primary-node", "secondary-node"))
	return l, tb
}

// TestTieBreakerFailover: a pair without a witness, the Active host lost:
// the standby, its peer silent on every link and the tie-breaker reachable,
// takes over by itself; the old node rejoins as Standby.
func TestTieBreakerFailover(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{})
	tb := newTieBreaker(t)
	withTieBreaker(l, tb.addr)
	l.Start("primary-node")
	l.Start("secondary-node")
	s := l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
	if want := "two nodes, no witness: split-brain protection relies on the tie-breaker " + tb.addr; s.GetCluster().GetProtection() != want {
		t.Errorf("protection %q, want %q", s.GetCluster().GetProtection(), want)
	}
	dsn := appUser(t, l, "primary-node")
	l.WaitFor("secondary-node", "replication", hactltest.Replicates("primary-node", "secondary-node"))
	l.Crash("primary-node")
	l.WaitFor("secondary-node", "secondary-node takes over through the tie-breaker", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_ACTIVE && s.GetLocal().GetHoldsVip() && hasEvent(s.GetRecentEvents(), "tie-breaker "+tb.addr+" reachable")
	})
	if got := serverAddr(t, dsn); got != l.IP("secondary-node") {
		t.Fatalf("the VIP reaches %s, want secondary-node", got)
	}
	l.Start("primary-node")
	l.WaitFor("secondary-node", "the old node rejoins as Standby", hactltest.Replicates("secondary-node", "primary-node"))
}

// TestTieBreakerIsolatedActive: the Active node loses its peer on every link
// (frozen) and cannot reach the tie-breaker: it stops writing and releases
// the VIP. When the peer and the tie-breaker are back, so is an Active node.
func TestTieBreakerIsolatedActive(t *testing.T) {
	l, tb := tieBreakerPair(t)
	addr := tb.addr
	tb.close()
	resume := l.Freeze("secondary-node")
	l.WaitFor("primary-node", "the isolated Active node stops writing", func(s *hapb.Snapshot) bool {
		return !s.GetLocal().GetHoldsVip() && s.GetLocal().GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY &&
			hasEvent(s.GetRecentEvents(), "unreachable: stopping writes")
	})
	tb.open(t, addr)
	resume()
	l.WaitFor("primary-node", "an Active node again", func(s *hapb.Snapshot) bool {
		a := s.GetCluster().GetActiveNode()
		return s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY && s.GetCluster().GetVip().GetHolder() == a
	})
}

// TestTieBreakerStoppedStandby: an operator stops the Standby of a pair
// without a witness while the tie-breaker is unreachable. The stopped node's
// heartbeat goes silent on purpose, and the Active node, which knows from
// the replicated state that its peer is stopped, keeps serving well past the
// point where an isolated Active node would stop writing.
func TestTieBreakerStoppedStandby(t *testing.T) {
	l, tb := tieBreakerPair(t)
	tb.close()
	if _, err := hactltest.RunOp(t, stopOp(l.Client("secondary-node"))); err != nil {
		t.Fatalf("ClusterStop on the Standby: %v", err)
	}
	failover := time.Duration(l.Config("primary-node").Timers.FailoverTimeout)
	s := l.WaitFor("primary-node", "the peer silent on every link for longer than failover_timeout", func(s *hapb.Snapshot) bool {
		if !heartbeatIs(false)(s) {
			return false
		}
		for _, lk := range s.GetLinks() {
			if lk.GetLastSeen() == nil || s.GetSampledAt().AsTime().Sub(lk.GetLastSeen().AsTime()) <= failover {
				return false
			}
		}
		return true
	})
	if !s.GetLocal().GetHoldsVip() || s.GetLocal().GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY ||
		hasEvent(s.GetRecentEvents(), "unreachable: stopping writes") {
		t.Fatalf("the Active node fenced itself because its stopped peer is silent: holds VIP %v, database %v, events %v",
			s.GetLocal().GetHoldsVip(), s.GetLocal().GetDatabase().GetRole(), s.GetRecentEvents())
	}
	if _, err := hactltest.RunOp(t, startOp(l.Client("secondary-node"))); err != nil {
		t.Fatalf("ClusterStart on the Standby: %v", err)
	}
	l.WaitFor("primary-node", "heartbeat and replication back", func(s *hapb.Snapshot) bool {
		return heartbeatIs(true)(s) && hactltest.Replicates("primary-node", "secondary-node")(s)
	})
}
