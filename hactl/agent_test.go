package hactl_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/cli"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pg/pgtest"
	"github.com/hapair/hapair/hactl/pki"
)

// pair is two agents on loopback with their own PostgreSQL servers.
type pair struct {
	ca                 *pki.CA
	primary, secondary hactl.Config
}

func newPair(t *testing.T) *pair {
	t.Helper()
	pgtest.RequirePostgres(t)
	ca, err := pki.NewCA("demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := pgtest.Dir(t)
	p := &pair{ca: ca}
	agentPorts := []int{pgtest.FreePort(t), pgtest.FreePort(t)}
	names := []string{"primary-node", "secondary-node"}
	cfgs := make([]hactl.Config, 2)
	for i, name := range names {
		c := hactl.DefaultConfig()
		c.ClusterName = "demo"
		c.NodeName = name
		c.StateDir = filepath.Join(dir, name)
		c.PublicAddr = "127.0.0.1"
		c.ListenPeer = "127.0.0.1:" + strconv.Itoa(agentPorts[i])
		c.Peer = &hactl.PeerConfig{Name: names[1-i], AgentAddr: "127.0.0.1:" + strconv.Itoa(agentPorts[1-i]), PublicAddr: "127.0.0.1"}
		c.Postgres.Port = pgtest.FreePort(t)
		c.SampleInterval = hactl.Duration(100 * time.Millisecond)
		c.BootstrapTimeout = hactl.Duration(2 * time.Minute)
		id, err := ca.Issue(name, []net.IP{net.ParseIP("127.0.0.1")}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.SaveIdentity(c.PKIDir(), id); err != nil {
			t.Fatal(err)
		}
		cfgs[i] = c
	}
	cfgs[0].Bootstrap, cfgs[1].Bootstrap = hactl.BootstrapPrimary, hactl.BootstrapStandby
	p.primary, p.secondary = cfgs[0], cfgs[1]
	return p
}

// start runs an agent until the test ends; the test waits for Run to return
// (which stops PostgreSQL) and kills a postmaster left behind by PID.
func start(t *testing.T, cfg hactl.Config) {
	t.Helper()
	a, err := hactl.New(cfg, hactl.Deps{Logger: pgtest.Logger(t)})
	if err != nil {
		t.Fatalf("new agent %s: %v", cfg.NodeName, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent %s: %v", cfg.NodeName, err)
			}
		case <-time.After(2 * time.Minute):
			t.Errorf("agent %s did not stop", cfg.NodeName)
		}
		pidFile := filepath.Join(cfg.StateDir, "pg", "data", "postmaster.pid")
		if pid := readPID(pidFile); pid > 0 && syscall.Kill(pid, 0) == nil {
			t.Errorf("agent %s left PostgreSQL %d running; killing it", cfg.NodeName, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

func readPID(path string) int {
	var pid int
	if b, err := os.ReadFile(path); err == nil {
		fmt.Sscanf(string(b), "%d", &pid)
	}
	return pid
}

func client(t *testing.T, cfg hactl.Config) hapb.AgentClient {
	t.Helper()
	conn, err := cli.Dial(cfg.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return hapb.NewAgentClient(conn)
}

// waitFor polls Status (bounded) until ok accepts a snapshot.
func waitFor(t *testing.T, c hapb.AgentClient, what string, ok func(*hapb.Snapshot) bool) *hapb.Snapshot {
	t.Helper()
	var last *hapb.Snapshot
	var lastErr error
	for i := 0; i < 900; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last, lastErr = c.Status(ctx, &hapb.StatusRequest{})
		cancel()
		if lastErr == nil && ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last status %v (error %v)", what, last, lastErr)
	return nil
}

func healthy(s *hapb.Snapshot) bool {
	return s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY
}

func TestAgentsFormAReplicatingPair(t *testing.T) {
	p := newPair(t)
	start(t, p.secondary) // the standby waits for the primary to clone from
	start(t, p.primary)
	pc, sc := client(t, p.primary), client(t, p.secondary)

	ps := waitFor(t, pc, "a healthy pair seen from the primary", healthy)
	ss := waitFor(t, sc, "a healthy pair seen from the secondary", healthy)

	// The primary's own view, read from PostgreSQL.
	ldb := ps.GetLocal().GetDatabase()
	if ldb.GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY || ldb.GetTimeline() != 1 || ldb.GetCurrentLsn() == 0 {
		t.Fatalf("primary database %v: want primary on timeline 1 with a WAL position", ldb)
	}
	if len(ldb.GetReplicas()) != 1 || ldb.GetReplicas()[0].GetApplicationName() != "secondary-node" || ldb.GetReplicas()[0].GetSyncState() != "async" {
		t.Fatalf("primary replicas %v: want secondary-node, async", ldb.GetReplicas())
	}
	if ps.GetLocal().GetRole() != hapb.NodeRole_NODE_ROLE_ACTIVE || ps.GetCluster().GetActiveNode() != "primary-node" {
		t.Errorf("primary role %v, active %q: want ACTIVE primary-node", ps.GetLocal().GetRole(), ps.GetCluster().GetActiveNode())
	}
	// The peer as the primary's agent learned it over mTLS.
	if !ps.GetPeer().GetReachable() || ps.GetPeer().GetStatus().GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_STANDBY {
		t.Fatalf("primary's peer view %v: want a reachable standby", ps.GetPeer())
	}
	// The standby's view: its WAL receiver streams from the primary's port.
	wr := ss.GetLocal().GetDatabase().GetWalReceiver()
	if wr.GetStatus() != "streaming" || int(wr.GetSenderPort()) != p.primary.Postgres.Port || wr.GetSlotName() != pg.SlotName("secondary-node") {
		t.Fatalf("standby wal receiver %v: want streaming from port %d through %s", wr, p.primary.Postgres.Port, pg.SlotName("secondary-node"))
	}
	if ss.GetLocal().GetRole() != hapb.NodeRole_NODE_ROLE_STANDBY {
		t.Errorf("secondary role %v, want STANDBY", ss.GetLocal().GetRole())
	}

	t.Run("watch pushes a change", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		w, err := pc.Watch(ctx, &hapb.WatchRequest{})
		if err != nil {
			t.Fatal(err)
		}
		first, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		before := first.GetLocal().GetDatabase().GetCurrentLsn()
		writeRow(t, p.primary)
		for i := 0; i < 200; i++ {
			s, err := w.Recv()
			if err != nil {
				t.Fatalf("watch: %v", err)
			}
			if s.GetSeq() <= first.GetSeq() {
				t.Fatalf("watch sent seq %d after %d: want it to grow", s.GetSeq(), first.GetSeq())
			}
			if s.GetLocal().GetDatabase().GetCurrentLsn() > before {
				return
			}
		}
		t.Fatal("the write never showed in a watched snapshot")
	})

	t.Run("events", func(t *testing.T) {
		ev, err := pc.Events(context.Background(), &hapb.EventsRequest{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !hasEvent(ev.GetEvents(), "PostgreSQL initialised as primary") {
			t.Errorf("primary events %v: want the initialisation", ev.GetEvents())
		}
		if _, err := pc.Events(context.Background(), &hapb.EventsRequest{Limit: -1}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Events(limit -1): %v, want InvalidArgument", err)
		}
	})

	t.Run("operations not built yet say so", func(t *testing.T) {
		st, err := pc.ClusterStop(context.Background(), &hapb.ClusterStopRequest{})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("ClusterStop: %v, want Unimplemented", err)
		}
	})

	t.Run("the peer API refuses strangers", func(t *testing.T) {
		other, err := pki.NewCA("other", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		stranger, err := other.Issue("secondary-node", nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		intruder, err := p.ca.Issue("intruder", nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			id   *pki.Identity
			want codes.Code
		}{
			{name: "certificate of another cluster", id: stranger, want: codes.Unavailable},
			{name: "this cluster's CA, not the peer", id: intruder, want: codes.PermissionDenied},
		} {
			t.Run(tc.name, func(t *testing.T) {
				conn, err := grpc.NewClient(p.primary.ListenPeer, grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS(tc.id, "primary-node"))))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				src, err := hapb.NewPeerClient(conn).GetReplicationSource(ctx, &hapb.ReplicationSourceRequest{})
				if status.Code(err) != tc.want || src.GetPassword() != "" {
					t.Fatalf("GetReplicationSource: %v (password given: %v), want %v", err, src.GetPassword() != "", tc.want)
				}
			})
		}
	})
}

func hasEvent(evs []*hapb.Event, detail string) bool {
	for _, e := range evs {
		if e.GetDetail() == detail {
			return true
		}
	}
	return false
}

// writeRow writes through the primary's own superuser socket.
func writeRow(t *testing.T, cfg hactl.Config) {
	t.Helper()
	pcfg := pg.DefaultConfig()
	pcfg.NodeName, pcfg.BaseDir, pcfg.Port, pcfg.ListenAddr = cfg.NodeName, filepath.Join(cfg.StateDir, "pg"), cfg.Postgres.Port, cfg.PublicAddr
	runAs, err := pg.DatabaseOSUser()
	if err != nil {
		t.Fatal(err)
	}
	pcfg.RunAs = runAs
	ctl, err := pg.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := ctl.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS accounts (name text); INSERT INTO accounts VALUES ('TEST')"); err != nil {
		t.Fatal(err)
	}
}

func TestAgentConfigErrors(t *testing.T) {
	pgtest.RequirePostgres(t)
	base := hactl.DefaultConfig()
	base.NodeName, base.StateDir, base.PublicAddr, base.ListenPeer = "primary-node", t.TempDir(), "127.0.0.1", "127.0.0.1:7400"
	tests := []struct {
		name   string
		mutate func(*hactl.Config)
		want   string
	}{
		{name: "standby without a peer", mutate: func(c *hactl.Config) { c.Bootstrap = hactl.BootstrapStandby }, want: "needs a peer"},
		{name: "unknown bootstrap", mutate: func(c *hactl.Config) { c.Bootstrap = "sideways" }, want: `bootstrap "sideways"`},
		{name: "peer named like this node", mutate: func(c *hactl.Config) {
			c.Peer = &hactl.PeerConfig{Name: "primary-node", AgentAddr: "127.0.0.1:1", PublicAddr: "127.0.0.1"}
		}, want: "another node's name"},
		{name: "peer without identity", mutate: func(c *hactl.Config) {
			c.Peer = &hactl.PeerConfig{Name: "secondary-node", AgentAddr: "127.0.0.1:1", PublicAddr: "127.0.0.1"}
		}, want: "no cluster identity"},
		{name: "bad public address", mutate: func(c *hactl.Config) { c.PublicAddr = "localhost" }, want: "public_addr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mutate(&c)
			_, err := hactl.New(c, hactl.Deps{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := hactl.LoadConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("LoadConfig(missing): %v, want ENOENT", err)
	}
}
