package hactl_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg/pgtest"
	"github.com/hapair/hapair/hactl/pki"
)

// The lab's address plan (../shared/LAB.md).
var netIP = map[string]string{"primary-node": "198.18.0.5", "secondary-node": "198.18.0.10", "witness": "198.18.0.20"}
var netHB = map[string]string{"primary-node": "169.254.0.1", "secondary-node": "169.254.0.2"}
var netHost = map[string]string{"primary-node": "primary", "secondary-node": "secondary", "witness": "witness"}

const netVIP = "198.18.0.12"

// netLab builds scripts/lab.sh's namespaces and a cluster in them: the
// agents run inside their hosts, the VIP is held with netlink and ARP.
func newNetLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (builds network namespaces with scripts/lab.sh)")
	}
	pgtest.RequirePostgres(t)
	prefix := os.Getenv("HAPAIR_LAB_PREFIX")
	if prefix == "" {
		prefix = "hapt"
	}
	script, err := filepath.Abs("../scripts/lab.sh")
	if err != nil {
		t.Fatal(err)
	}
	run := func(arg string) error {
		cmd := exec.Command(script, arg)
		cmd.Env = append(os.Environ(), "HAPAIR_LAB_PREFIX="+prefix)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("lab.sh %s: %v: %s", arg, err, out)
		}
		return nil
	}
	if err := run("up"); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("lab", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: pgtest.Dir(t), ca: ca, cfgs: map[string]hactl.Config{}, procs: map[string]*exec.Cmd{}, pgPort: 5432, ns: map[string]string{}}
	// Registered first, so it runs last: after the agents are stopped.
	t.Cleanup(func() {
		if err := run("down"); err != nil {
			t.Error(err)
		}
	})
	var members []hactl.MemberConfig
	for _, n := range []string{"primary-node", "secondary-node", "witness"} {
		m := hactl.MemberConfig{Name: n, Kind: "data", PublicAddr: netIP[n], HeartbeatAddr: netHB[n],
			AgentPort: 7400, RaftPort: 7401, HeartbeatPort: 7402, PGPort: 5432}
		if n == "witness" {
			m.Kind, m.PGPort = "witness", 0
		}
		members = append(members, m)
		l.ns[n] = prefix + "-" + netHost[n]
	}
	for _, n := range []string{"primary-node", "secondary-node", "witness"} {
		c := hactl.DefaultConfig()
		c.ClusterName, c.NodeName, c.StateDir, c.Members = "lab", n, filepath.Join(l.dir, n), members
		if n != "witness" {
			c.VIP = &hactl.VIPConfig{Address: netVIP, Mode: "linux", Interface: "eth0", PrefixLen: 24}
			c.Postgres.ClientNets = []string{"198.18.0.0/24"}
		}
		switch n {
		case "primary-node":
			c.Bootstrap = hactl.BootstrapPrimary
		case "secondary-node":
			c.Bootstrap = hactl.BootstrapStandby
		}
		ips := []string{netIP[n]}
		if hb := netHB[n]; hb != "" {
			ips = append(ips, hb)
		}
		l.member(c, ips...)
	}
	t.Cleanup(l.cleanup)
	return l
}

// inNS runs a command in a lab host and returns its output.
func (l *lab) inNS(ns string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (l *lab) holdsVIP(name string) bool {
	out, err := l.inNS(l.ns[name], "ip", "-4", "addr", "show", "dev", "eth0")
	return err == nil && strings.Contains(out, " "+netVIP+"/")
}

// clientQuery runs psql in the client host against the VIP.
func (l *lab) clientQuery(dsnPassword, sql string) (string, error) {
	client := strings.TrimSuffix(l.ns["primary-node"], "-primary") + "-client"
	return l.inNS(client, "psql", "-X", "-q", "-At", "-c", sql,
		fmt.Sprintf("host=%s port=5432 user=app password=%s dbname=postgres connect_timeout=2 sslmode=disable", netVIP, dsnPassword))
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
		l.start(n)
	}
	l.waitFor("primary-node", "primary-node Active in the lab", activeIs("primary-node"))
	l.waitFor("secondary-node", "replication over the lab", replicates("primary-node", "secondary-node"))

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
			a, b := l.holdsVIP("primary-node"), l.holdsVIP("secondary-node")
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
	conn, err := l.controller("primary-node").Connect(ctx)
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
	if got, err := l.clientQuery(pw, "SELECT current_setting('cluster_name')"); err != nil || got != "primary-node" {
		t.Fatalf("from the client, the VIP reaches %q (%v), want primary-node", got, err)
	}

	// Planned stop: the VIP moves to the secondary, with a client writing
	// every 10 ms from the client host.
	clientNS := strings.TrimSuffix(l.ns["primary-node"], "-primary") + "-client"
	w := startWriterIn(t, clientNS, fmt.Sprintf("host=%s port=5432 user=app password=%s dbname=postgres sslmode=disable connect_timeout=2", netVIP, pw))
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := runOp(t, stopOp(l.client("primary-node"))); err != nil {
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
	if n, err := l.clientQuery(pw, fmt.Sprintf("SELECT count(*) FROM registrations WHERE id <= %d", last)); err != nil || n != fmt.Sprint(last) {
		t.Fatalf("registrations 1..%d on the new Active node: %q (%v): acknowledged writes lost", last, n, err)
	}
	var got string
	for i := 0; i < 300; i++ {
		got, err = l.clientQuery(pw, "INSERT INTO accounts VALUES ('TEST') RETURNING current_setting('cluster_name')")
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != "secondary-node" {
		t.Fatalf("after the stop the client's write went to %q (%v), want secondary-node", got, err)
	}
	mac, err := l.inNS(l.ns["secondary-node"], "cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatal(err)
	}
	client := strings.TrimSuffix(l.ns["primary-node"], "-primary") + "-client"
	neigh, err := l.inNS(client, "ip", "neigh", "show", netVIP)
	if err != nil || !strings.Contains(neigh, mac) {
		t.Errorf("the client's neighbour entry for the VIP is %q, want the secondary's MAC %s", neigh, mac)
	}
	if l.holdsVIP("primary-node") {
		t.Error("the stopped node still has the VIP")
	}

	// Rejoin, then cut only the heartbeat link: heartbeats go on over the
	// public network, nothing fails over.
	if _, err := runOp(t, startOp(l.client("primary-node"))); err != nil {
		t.Fatalf("ClusterStart: %v", err)
	}
	l.waitFor("secondary-node", "replication secondary ==> primary over the lab", replicates("secondary-node", "primary-node"))
	if out, err := l.inNS(l.ns["primary-node"], "ip", "link", "set", "eth1", "down"); err != nil {
		t.Fatalf("cut the heartbeat link: %v %s", err, out)
	}
	l.waitFor("secondary-node", "heartbeat link down, public up", func(s *hapb.Snapshot) bool {
		up := map[string]bool{}
		for _, lk := range s.GetLinks() {
			up[lk.GetName()] = lk.GetConnected()
		}
		return len(up) == 2 && !up["heartbeat"] && up["public"]
	})
	time.Sleep(3 * time.Second)
	s := l.waitFor("secondary-node", "still Active", func(*hapb.Snapshot) bool { return true })
	if s.GetCluster().GetActiveNode() != "secondary-node" || !l.holdsVIP("secondary-node") {
		t.Fatalf("after cutting the heartbeat link: active %q, VIP on secondary %v; want no failover", s.GetCluster().GetActiveNode(), l.holdsVIP("secondary-node"))
	}
}
