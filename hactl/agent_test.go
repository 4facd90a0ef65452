package hactl_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/hactltest"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pg/pgtest"
	"github.com/hapair/hapair/hactl/pki"
)

func healthy(s *hapb.Snapshot) bool {
	return s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY
}

func hasEvent(evs []*hapb.Event, detail string) bool {
	for _, e := range evs {
		if strings.Contains(e.GetDetail(), detail) {
			return true
		}
	}
	return false
}

func TestAgentsFormAReplicatingPair(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{})
	l.Start("secondary-node") // the standby waits for the primary to clone from
	l.Start("primary-node")
	ps := l.WaitFor("primary-node", "a healthy pair seen from the primary", healthy)
	ss := l.WaitFor("secondary-node", "a healthy pair seen from the secondary", healthy)
	pc := l.Client("primary-node")

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
	if wr.GetStatus() != "streaming" || int(wr.GetSenderPort()) != l.PGPort() || wr.GetSenderHost() != l.IP("primary-node") || wr.GetSlotName() != pg.SlotName("secondary-node") {
		t.Fatalf("standby wal receiver %v: want streaming from %s:%d through %s", wr, l.IP("primary-node"), l.PGPort(), pg.SlotName("secondary-node"))
	}
	if ss.GetLocal().GetRole() != hapb.NodeRole_NODE_ROLE_STANDBY {
		t.Errorf("secondary role %v, want STANDBY", ss.GetLocal().GetRole())
	}
	// Heartbeats flow on the configured link.
	if len(ps.GetLinks()) == 0 {
		ps = l.WaitFor("primary-node", "heartbeat link up", func(s *hapb.Snapshot) bool { return len(s.GetLinks()) > 0 && s.GetLinks()[0].GetConnected() })
	}
	if lk := ps.GetLinks()[0]; lk.GetName() != "public" {
		t.Errorf("link %v: want the public link", lk)
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
		conn, err := l.Controller("primary-node").Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE watched (name text); INSERT INTO watched VALUES ('TEST')"); err != nil {
			t.Fatal(err)
		}
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
		for _, want := range []string{"PostgreSQL initialised as primary", "cluster lab formed with primary-node, secondary-node", "primary-node is Active (epoch 1)"} {
			if !hasEvent(ev.GetEvents(), want) {
				t.Errorf("primary events %v: want %q", ev.GetEvents(), want)
			}
		}
		if _, err := pc.Events(context.Background(), &hapb.EventsRequest{Limit: -1}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Events(limit -1): %v, want InvalidArgument", err)
		}
	})

	t.Run("deploying a member is refused", func(t *testing.T) {
		st, err := pc.Deploy(context.Background(), &hapb.DeployRequest{})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("Deploy: %v, want FailedPrecondition", err)
		}
		if _, err := pc.PairingToken(context.Background(), &hapb.PairingTokenRequest{}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("PairingToken: %v, want FailedPrecondition", err)
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
		intruder, err := l.CA().Issue("intruder", nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Config("primary-node").Self().AgentAddr()
		for _, tc := range []struct {
			name string
			id   *pki.Identity
			want codes.Code
		}{
			{name: "certificate of another cluster", id: stranger, want: codes.Unavailable},
			{name: "this cluster's CA, not a member", id: intruder, want: codes.PermissionDenied},
		} {
			t.Run(tc.name, func(t *testing.T) {
				conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS(tc.id, "primary-node"))))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				pcl := hapb.NewPeerClient(conn)
				src, err := pcl.GetReplicationSource(ctx, &hapb.ReplicationSourceRequest{})
				if status.Code(err) != tc.want || src.GetPassword() != "" {
					t.Fatalf("GetReplicationSource: %v (password given: %v), want %v", err, src.GetPassword() != "", tc.want)
				}
				if _, err := pcl.Leave(ctx, &hapb.LeaveRequest{Node: "secondary-node"}); status.Code(err) != tc.want {
					t.Fatalf("Leave: %v, want %v", err, tc.want)
				}
			})
		}
	})
}

func TestAgentConfigErrors(t *testing.T) {
	pgtest.RequirePostgres(t)
	base := hactl.DefaultConfig()
	base.NodeName, base.StateDir = "primary-node", t.TempDir()
	base.Members = []hactl.MemberConfig{{Name: "primary-node", Kind: "data", PublicAddr: "127.0.0.1", AgentPort: 7400, RaftPort: 7401, HeartbeatPort: 7402, PGPort: 5432}}
	peer := hactl.MemberConfig{Name: "secondary-node", Kind: "data", PublicAddr: "127.0.0.1", AgentPort: 7500, RaftPort: 7501, HeartbeatPort: 7502, PGPort: 5433}
	tests := []struct {
		name   string
		mutate func(*hactl.Config)
		want   string
	}{
		{name: "standby without a peer", mutate: func(c *hactl.Config) { c.Bootstrap = hactl.BootstrapStandby }, want: "needs a peer"},
		{name: "unknown bootstrap", mutate: func(c *hactl.Config) { c.Bootstrap = "sideways" }, want: `bootstrap "sideways"`},
		{name: "this node not listed", mutate: func(c *hactl.Config) { c.NodeName = "elsewhere" }, want: `this node "elsewhere" is not listed`},
		{name: "two members with one name", mutate: func(c *hactl.Config) {
			p := peer
			p.Name = "primary-node"
			c.Members = append(c.Members, p)
		}, want: "unique name"},
		{name: "peer without identity", mutate: func(c *hactl.Config) { c.Members = append(c.Members, peer) }, want: "no cluster identity"},
		{name: "bad public address", mutate: func(c *hactl.Config) { c.Members[0].PublicAddr = "localhost" }, want: "public_addr"},
		{name: "lease not shorter than raft heartbeat", mutate: func(c *hactl.Config) { c.Timers.LeaderLease = c.Timers.RaftHeartbeat }, want: "leader_lease"},
		{name: "bad replication mode", mutate: func(c *hactl.Config) { c.ReplicationMode = "eventually" }, want: "replication_mode"},
		{name: "unknown vip mode", mutate: func(c *hactl.Config) { c.VIP = &hactl.VIPConfig{Address: "127.0.0.12", Mode: "magic"} }, want: "vip.mode"},
		{name: "linux vip without interface", mutate: func(c *hactl.Config) { c.VIP = &hactl.VIPConfig{Address: "198.18.0.12", Mode: "linux"} }, want: "vip.interface"},
		{name: "bad tie-breaker", mutate: func(c *hactl.Config) { c.TieBreaker = "gateway" }, want: "tie_breaker"},
		{name: "unknown failover policy", mutate: func(c *hactl.Config) { c.FailoverPolicy = "sometimes" }, want: "failover_policy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Members = append([]hactl.MemberConfig(nil), base.Members...)
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
