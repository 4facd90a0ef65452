package hactl_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vishvananda/netns"

	"github.com/hapair/hapair/hactl/hactltest"
	"github.com/hapair/hapair/hactl/hapb"
)

// newNetLab builds the namespace lab (hactltest.NewNet) with this
// package's prefix.
func newNetLab(t *testing.T) *hactltest.Lab {
	t.Helper()
	return hactltest.NewNet(t, hactltest.NetOptions{})
}

// clientQuery runs psql in the client host against the VIP.
func clientQuery(l *hactltest.Lab, dsnPassword, sql string) (string, error) {
	return hactltest.InNamespace(l.ClientNamespace(), "psql", "-X", "-q", "-At", "-c", sql,
		fmt.Sprintf("host=%s port=5432 user=app password=%s dbname=postgres connect_timeout=2 sslmode=disable", l.VIP(), dsnPassword))
}

// startWriterIn runs the registering client (see writer) inside a lab host:
// its goroutine is locked to a thread switched into that network namespace,
// so its connections leave from 198.18.0.100 like a real client's.
func startWriterIn(t testing.TB, nsName, dsn string) *writer {
	t.Helper()
	w := &writer{dsn: dsn, stop: make(chan struct{}), done: make(chan struct{}), errs: map[string]int{}}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ready <- err
			close(w.done)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(nsName)
		if err == nil {
			err = netns.Set(target)
			target.Close()
		}
		ready <- err
		if err != nil {
			close(w.done)
			return
		}
		w.run()
		// Back home; if that fails the thread stays locked and dies with
		// the goroutine.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("client in %s: %v", nsName, err)
	}
	return w
}

// netPair starts the namespace lab's three agents, waits until
// primary-node is Active and streams to secondary-node, and creates the
// application role; it returns the lab and the role's password.
func netPair(tb testing.TB) (*hactltest.Lab, string) {
	tb.Helper()
	l := hactltest.NewNet(tb, hactltest.NetOptions{})
	l.Start("witness", "primary-node", "secondary-node")
	l.WaitFor("primary-node", "primary-node Active in the lab", hactltest.ActiveIs("primary-node"))
	l.WaitFor("secondary-node", "replication over the lab", hactltest.Replicates("primary-node", "secondary-node"))
	cfg, err := pgx.ParseConfig(appUser(tb, l, "primary-node"))
	if err != nil {
		tb.Fatal(err)
	}
	return l, cfg.Password
}

// appDSN is the application's DSN through the VIP, as the client host uses it.
func appDSN(l *hactltest.Lab, pw string) string {
	return fmt.Sprintf("host=%s port=5432 user=app password=%s dbname=postgres sslmode=disable connect_timeout=2", l.VIP(), pw)
}

// samplerSawThePair fails the test if the lab's split-brain sampler never
// saw a VIP holder or a writable database: its checks would then prove
// nothing.
func samplerSawThePair(t *testing.T, l *hactltest.Lab) {
	t.Helper()
	if st := l.SamplerStats(); st.VIPHeld == 0 || st.Writable == 0 {
		t.Errorf("the sampler never saw the VIP held or a writable database: %v", st)
	}
}

// TestNetLabVIPMoves runs the pair in the namespace lab: a client on
// 198.18.0.100 reaches the Active node through 198.18.0.12; a planned stop
// moves the address, the client's neighbour table learns the new MAC, the old
// node no longer has it; cutting only the heartbeat link changes nothing.
// All along, the lab's sampler checks every 50 ms that no two hosts hold the
// VIP and no two databases accept writes.
func TestNetLabVIPMoves(t *testing.T) {
	l, pw := netPair(t)
	defer samplerSawThePair(t, l)

	// cluster_name is the node's name: which node answered through the VIP.
	if got, err := clientQuery(l, pw, "SELECT current_setting('cluster_name')"); err != nil || got != "primary-node" {
		t.Fatalf("from the client, the VIP reaches %q (%v), want primary-node", got, err)
	}

	// Planned stop: the VIP moves to the secondary, with a client writing
	// every 10 ms from the client host.
	clientNS := l.ClientNamespace()
	w := startWriterIn(t, clientNS, appDSN(l, pw))
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := hactltest.RunOp(t, stopOp(l.Client("primary-node"))); err != nil {
		t.Fatalf("ClusterStop: %v", err)
	}
	time.Sleep(time.Second)
	acked, gaps := w.finish()
	t.Logf("lab, planned stop: %d registrations acknowledged, write unavailability %v (longest gap around the stop: %v; longest single try, connect included: %v); client errors: %v",
		len(acked), gaps, outage(w.ackTimes, start, time.Now()).Round(time.Millisecond), probe{w}.longestTry(start, time.Now()).Round(time.Millisecond), w.errs)
	if len(acked) < 20 {
		t.Fatalf("the client in the lab got only %d acknowledged writes; errors %v", len(acked), w.errs)
	}
	last := acked[len(acked)-1]
	if n, err := clientQuery(l, pw, fmt.Sprintf("SELECT count(*) FROM registrations WHERE id <= %d", last)); err != nil || n != fmt.Sprint(last) {
		t.Fatalf("registrations 1..%d on the new Active node: %q (%v): acknowledged writes lost", last, n, err)
	}
	var got string
	var err error
	for i := 0; i < 300; i++ {
		got, err = clientQuery(l, pw, "INSERT INTO accounts VALUES ('TEST') RETURNING current_setting('cluster_name')")
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != "secondary-node" {
		t.Fatalf("after the stop the client's write went to %q (%v), want secondary-node", got, err)
	}
	mac, err := hactltest.InNamespace(l.Namespace("secondary-node"), "cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatal(err)
	}
	neigh, err := hactltest.InNamespace(l.ClientNamespace(), "ip", "neigh", "show", l.VIP())
	if err != nil || !strings.Contains(neigh, mac) {
		t.Errorf("the client's neighbour entry for the VIP is %q, want the secondary's MAC %s", neigh, mac)
	}
	if l.HoldsVIP("primary-node") {
		t.Error("the stopped node still has the VIP")
	}

	// Rejoin, then cut only the heartbeat link: heartbeats go on over the
	// public network, nothing fails over.
	if _, err := hactltest.RunOp(t, startOp(l.Client("primary-node"))); err != nil {
		t.Fatalf("ClusterStart: %v", err)
	}
	l.WaitFor("secondary-node", "replication secondary ==> primary over the lab", hactltest.Replicates("secondary-node", "primary-node"))
	if out, err := hactltest.InNamespace(l.Namespace("primary-node"), "ip", "link", "set", "eth1", "down"); err != nil {
		t.Fatalf("cut the heartbeat link: %v %s", err, out)
	}
	l.WaitFor("secondary-node", "heartbeat link down, public up", func(s *hapb.Snapshot) bool {
		up := map[string]bool{}
		for _, lk := range s.GetLinks() {
			up[lk.GetName()] = lk.GetConnected()
		}
		return len(up) == 2 && !up["heartbeat"] && up["public"]
	})
	time.Sleep(3 * time.Second)
	s := l.WaitFor("secondary-node", "still Active", func(*hapb.Snapshot) bool { return true })
	if s.GetCluster().GetActiveNode() != "secondary-node" || !l.HoldsVIP("secondary-node") {
		t.Fatalf("after cutting the heartbeat link: active %q, VIP on secondary %v; want no failover", s.GetCluster().GetActiveNode(), l.HoldsVIP("secondary-node"))
	}
}

// setLinks sets both links of name's host up or down: eth0 (the public
// network, which clients use) first, then eth1 (the heartbeat link). It
// returns when eth0 changed: the moment of the fault for a client.
func setLinks(l *hactltest.Lab, name string, up bool) time.Time {
	l.SetLink(name, "eth0", up)
	at := time.Now()
	l.SetLink(name, "eth1", up)
	return at
}

// linksCut is what one cut of the Active node's links showed.
type linksCut struct {
	toTakeover   time.Duration // fault -> the new Active node seen holding the VIP (100 ms polling)
	toFirstWrite time.Duration // fault -> acknowledgement of the client's first write tried after it, through the VIP
}

// cutActiveLinks cuts both links of active's host while w writes through
// the VIP, waits until standby took over and the client wrote again, and
// checks that the old Active node dropped the VIP and stopped accepting
// writes. It leaves the links cut.
func cutActiveLinks(tb testing.TB, l *hactltest.Lab, w *writer, active, standby string) linksCut {
	tb.Helper()
	p := probe{w}
	t0 := setLinks(l, active, false)
	l.WaitFor(standby, standby+" takes over, "+active+" cut off", func(s *hapb.Snapshot) bool {
		return s.GetCluster().GetActiveNode() == standby && s.GetLocal().GetHoldsVip() &&
			s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
	})
	c := linksCut{toTakeover: time.Since(t0)}
	// The new Active node holds the VIP: the old one must have dropped it
	// and stopped writing before (read from the systems, not the agents).
	if l.HoldsVIP(active) {
		tb.Errorf("%s still has the VIP on eth0 while %s holds it", active, standby)
	}
	if l.Writable(active) {
		tb.Errorf("%s's database still accepts writes while %s is Active", active, standby)
	}
	if !l.HoldsVIP(standby) {
		tb.Errorf("%s's agent says it holds the VIP, its eth0 does not have it", standby)
	}
	for deadline := time.Now().Add(30 * time.Second); p.firstWriteAfter(t0) < 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	c.toFirstWrite = p.firstWriteAfter(t0)
	if c.toFirstWrite < 0 {
		w.mu.Lock()
		errs := fmt.Sprint(w.errs)
		w.mu.Unlock()
		tb.Fatalf("the client wrote nothing through the VIP for 30 s after %s's links were cut; its errors: %s", active, errs)
	}
	return c
}

// restoreLinks brings active's links back and waits until it is a Standby
// streaming from the new Active node.
func restoreLinks(tb testing.TB, l *hactltest.Lab, old, active string) {
	tb.Helper()
	setLinks(l, old, true)
	l.WaitFor(old, old+" rejoins as Standby", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_STANDBY && !s.GetLocal().GetHoldsVip() &&
			s.GetLocal().GetDatabase().GetWalReceiver().GetStatus() == "streaming"
	})
	l.WaitFor(active, "replication "+active+" ==> "+old, hactltest.Replicates(active, old))
}

// TestNetLabActiveLinksCut cuts both links of the Active node's host
// (public and heartbeat), witness present: the secondary takes over; the
// old Active node dropped the VIP and stopped accepting writes (read from
// its namespace and its database); a client in the client host writing
// every 10 ms through the VIP reaches the new Active node. When the links
// are back, the old node rejoins as Standby. The time from the cut to the
// client's first acknowledged write is logged (BenchmarkNetLabActiveLinksCut
// measures it).
func TestNetLabActiveLinksCut(t *testing.T) {
	l, pw := netPair(t)
	defer samplerSawThePair(t, l)
	w := startWriterIn(t, l.ClientNamespace(), appDSN(l, pw))
	time.Sleep(500 * time.Millisecond)

	c := cutActiveLinks(t, l, w, "primary-node", "secondary-node")
	t.Logf("lab, both links of the Active node cut: takeover seen after %v, client's first write through the VIP after %v",
		c.toTakeover.Round(time.Millisecond), c.toFirstWrite.Round(time.Millisecond))
	var got string
	var err error
	for i := 0; i < 300; i++ {
		got, err = clientQuery(l, pw, "INSERT INTO accounts VALUES ('AFTER-CUT') RETURNING current_setting('cluster_name')")
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != "secondary-node" {
		t.Fatalf("after the cut the client's write went to %q (%v), want secondary-node", got, err)
	}
	// Still cut off a while later: the old node has not come back by itself.
	time.Sleep(2 * time.Second)
	if l.HoldsVIP("primary-node") || l.Writable("primary-node") {
		t.Fatalf("the cut-off node holds the VIP (%v) or accepts writes (%v)", l.HoldsVIP("primary-node"), l.Writable("primary-node"))
	}

	restoreLinks(t, l, "primary-node", "secondary-node")
	acked, _ := w.finish()
	lost := lostOn(t, l, "secondary-node", acked)
	t.Logf("lab, links cut: %d registrations acknowledged, %d of them missing on the new Active node (asynchronous replication); client errors: %v",
		len(acked), lost, w.errs)
	if len(acked) < 20 {
		t.Fatalf("the client in the lab got only %d acknowledged writes; errors %v", len(acked), w.errs)
	}
	if got, err := clientQuery(l, pw, "SELECT current_setting('cluster_name')"); err != nil || got != "secondary-node" {
		t.Fatalf("after the old Active node rejoined, the VIP reaches %q (%v), want secondary-node", got, err)
	}
}

// lostOn counts acknowledged registrations missing on name's database,
// read over its unix socket.
func lostOn(tb testing.TB, l *hactltest.Lab, name string, acked []int64) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := l.Controller(name).Connect(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id FROM registrations")
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		tb.Fatal(err)
	}
	present := map[int64]bool{}
	for _, id := range ids {
		present[id] = true
	}
	lost := 0
	for _, id := range acked {
		if !present[id] {
			lost++
		}
	}
	return lost
}
