package hactl_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

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
func startWriterIn(t *testing.T, nsName, dsn string) *writer {
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

// TestNetLabVIPMoves runs the pair in the namespace lab: a client on
// 198.18.0.100 reaches the Active node through 198.18.0.12; a planned stop
// moves the address, the client's neighbour table learns the new MAC, the old
// node no longer has it; cutting only the heartbeat link changes nothing.
// All along, a sampler checks every 50 ms that no two hosts hold the VIP.
func TestNetLabVIPMoves(t *testing.T) {
	l := newNetLab(t)
	for _, n := range []string{"witness", "primary-node", "secondary-node"} {
		l.Start(n)
	}
	l.WaitFor("primary-node", "primary-node Active in the lab", hactltest.ActiveIs("primary-node"))
	l.WaitFor("secondary-node", "replication over the lab", hactltest.Replicates("primary-node", "secondary-node"))

	// The sampler: never two holders of the VIP.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var overlaps, samples int
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			a, b := l.HoldsVIP("primary-node"), l.HoldsVIP("secondary-node")
			mu.Lock()
			samples++
			if a && b {
				overlaps++
			}
			mu.Unlock()
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		t.Logf("VIP sampler: %d samples, %d with two holders", samples, overlaps)
		if overlaps > 0 {
			t.Errorf("two hosts held the VIP at once in %d of %d samples", overlaps, samples)
		}
	}()

	pw := "lab-" + fmt.Sprint(time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	conn, err := l.Controller("primary-node").Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE ROLE app LOGIN PASSWORD '" + pw + "'", "CREATE TABLE accounts (name text)",
		"CREATE TABLE registrations (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())", "GRANT ALL ON accounts, registrations TO app"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close(ctx)
	cancel()
	// cluster_name is the node's name: which node answered through the VIP.
	if got, err := clientQuery(l, pw, "SELECT current_setting('cluster_name')"); err != nil || got != "primary-node" {
		t.Fatalf("from the client, the VIP reaches %q (%v), want primary-node", got, err)
	}

	// Planned stop: the VIP moves to the secondary, with a client writing
	// every 10 ms from the client host.
	clientNS := l.ClientNamespace()
	w := startWriterIn(t, clientNS, fmt.Sprintf("host=%s port=5432 user=app password=%s dbname=postgres sslmode=disable connect_timeout=2", l.VIP(), pw))
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := hactltest.RunOp(t, stopOp(l.Client("primary-node"))); err != nil {
		t.Fatalf("ClusterStop: %v", err)
	}
	time.Sleep(time.Second)
	acked, gaps := w.finish()
	t.Logf("lab, planned stop: %d registrations acknowledged, write unavailability %v (longest gap around the stop: %v); client errors: %v",
		len(acked), gaps, outage(w.ackTimes, start, time.Now()).Round(time.Millisecond), w.errs)
	if len(acked) < 20 {
		t.Fatalf("the client in the lab got only %d acknowledged writes; errors %v", len(acked), w.errs)
	}
	last := acked[len(acked)-1]
	if n, err := clientQuery(l, pw, fmt.Sprintf("SELECT count(*) FROM registrations WHERE id <= %d", last)); err != nil || n != fmt.Sprint(last) {
		t.Fatalf("registrations 1..%d on the new Active node: %q (%v): acknowledged writes lost", last, n, err)
	}
	var got string
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
