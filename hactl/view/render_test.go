package view

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hapair/hapair/hactl/hapb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestFormatLSN(t *testing.T) {
	tests := []struct {
		name string
		in   uint64
		want string
	}{
		{name: "zero", in: 0, want: "0/0"},
		{name: "low only", in: 0x3000148, want: "0/3000148"},
		{name: "high and low", in: 0x1_0000_00A8, want: "1/A8"},
		{name: "upper case hex", in: 0xAB_DEADBEEF, want: "AB/DEADBEEF"},
		{name: "low word zero", in: 0x2_0000_0000, want: "2/0"},
		{name: "max", in: math.MaxUint64, want: "FFFFFFFF/FFFFFFFF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatLSN(tc.in); got != tc.want {
				t.Errorf("FormatLSN(%#x) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		name string
		in   uint64
		want string
	}{
		{name: "zero", in: 0, want: "0 B"},
		{name: "one byte", in: 1, want: "1 B"},
		{name: "just under a KiB", in: 1023, want: "1023 B"},
		{name: "one KiB", in: 1024, want: "1.0 KiB"},
		{name: "one and a half KiB", in: 1536, want: "1.5 KiB"},
		{name: "rounds to nearest tenth", in: 1024 + 973, want: "2.0 KiB"},
		{name: "just under a MiB moves up", in: 1<<20 - 1, want: "1.0 MiB"},
		{name: "MiB", in: 5 * 1 << 20, want: "5.0 MiB"},
		{name: "GiB with decimal", in: 7*1<<30 + 858993459, want: "7.8 GiB"},
		{name: "large GiB", in: 500 << 30, want: "500.0 GiB"},
		{name: "TiB beyond GiB", in: 2 << 40, want: "2.0 TiB"},
		{name: "max", in: math.MaxUint64, want: "16.0 EiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatBytes(tc.in); got != tc.want {
				t.Errorf("FormatBytes(%d) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatAgo(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{name: "zero", in: 0, want: "0.0s ago"},
		{name: "sub-second", in: 400 * time.Millisecond, want: "0.4s ago"},
		{name: "truncates tenths", in: 9999 * time.Millisecond, want: "9.9s ago"},
		{name: "whole seconds from ten", in: 10 * time.Second, want: "10s ago"},
		{name: "under a minute", in: 59*time.Second + 900*time.Millisecond, want: "59s ago"},
		{name: "minutes and seconds", in: 3*time.Minute + 12*time.Second, want: "3m12s ago"},
		{name: "seconds padded", in: 3*time.Minute + 5*time.Second, want: "3m05s ago"},
		{name: "hours and minutes", in: 5*time.Hour + 3*time.Minute + 59*time.Second, want: "5h03m ago"},
		{name: "days and hours", in: 12*24*time.Hour + 3*time.Hour + 10*time.Minute, want: "12d03h ago"},
		{name: "future from clock skew", in: -2 * time.Second, want: "2.0s in the future"},
		{name: "most negative", in: math.MinInt64, want: "106751d23h in the future"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatAgo(tc.in); got != tc.want {
				t.Errorf("FormatAgo(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{name: "agent uptime", in: 3*time.Minute + 12*time.Second, want: "3m12s"},
		{name: "negative", in: -90 * time.Second, want: "-1m30s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatDuration(tc.in); got != tc.want {
				t.Errorf("FormatDuration(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRoleWord(t *testing.T) {
	tests := []struct {
		name string
		in   hapb.NodeRole
		want string
	}{
		{name: "active", in: hapb.NodeRole_NODE_ROLE_ACTIVE, want: "Active"},
		{name: "standby", in: hapb.NodeRole_NODE_ROLE_STANDBY, want: "Standby"},
		{name: "stopped", in: hapb.NodeRole_NODE_ROLE_STOPPED, want: "Stopped"},
		{name: "standalone", in: hapb.NodeRole_NODE_ROLE_STANDALONE, want: "Stand-alone"},
		{name: "witness", in: hapb.NodeRole_NODE_ROLE_WITNESS, want: "Witness"},
		{name: "unspecified", in: hapb.NodeRole_NODE_ROLE_UNSPECIFIED, want: "Unknown"},
		{name: "unrecognised", in: hapb.NodeRole(99), want: "Unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := RoleWord(tc.in); got != tc.want {
				t.Errorf("RoleWord(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// now is the fixed "current time" of every rendered snapshot.
var now = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

func ts(ago time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-ago)) }

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

const gib = 1 << 30

func sys(host string) *hapb.SystemStatus {
	return &hapb.SystemStatus{
		Hostname:          host,
		MemTotalBytes:     8 * gib,
		MemAvailableBytes: 5*gib + gib/5,
		DiskPath:          "/var/lib/postgresql",
		DiskTotalBytes:    50 * gib,
		DiskFreeBytes:     40*gib + gib/10,
		HostUptime:        dur(12*24*time.Hour + 3*time.Hour),
		Load1:             0.12,
	}
}

// primary is an Active node whose database streams to the node replica
// (application_name and client address as PostgreSQL reports them).
func primary(name, addr string, replica, replicaAddr string) *hapb.NodeStatus {
	n := &hapb.NodeStatus{
		Name:           name,
		PublicAddr:     addr,
		HeartbeatAddr:  heartbeatOf(addr),
		Role:           hapb.NodeRole_NODE_ROLE_ACTIVE,
		AgentVersion:   "1.4.0",
		AgentStartedAt: ts(3*time.Minute + 12*time.Second),
		SampledAt:      ts(200 * time.Millisecond),
		System:         sys(name),
		Database: &hapb.DatabaseStatus{
			Role:          hapb.DatabaseRole_DATABASE_ROLE_PRIMARY,
			Timeline:      3,
			CurrentLsn:    0x3000748,
			ServerVersion: "15.6",
			Port:          5432,
			ListenAddr:    addr,
			StartedAt:     ts(time.Hour),
		},
	}
	if replica != "" {
		n.Database.Replicas = []*hapb.ReplicationRow{{
			Pid:             4242,
			ApplicationName: replica,
			ClientAddr:      replicaAddr,
			State:           "streaming",
			SentLsn:         0x3000748,
			WriteLsn:        0x3000748,
			FlushLsn:        0x3000748,
			ReplayLsn:       0x3000148,
			WriteLag:        dur(800 * time.Microsecond),
			FlushLag:        dur(1200 * time.Microsecond),
			ReplayLag:       dur(12345 * time.Microsecond),
			SyncState:       "sync",
			LagBytes:        1536,
			ReplyTime:       ts(300 * time.Millisecond),
		}}
	}
	return n
}

// standby is a Standby node streaming from upstream at upstreamAddr.
func standby(name, addr, upstreamAddr string) *hapb.NodeStatus {
	return &hapb.NodeStatus{
		Name:           name,
		PublicAddr:     addr,
		HeartbeatAddr:  heartbeatOf(addr),
		Role:           hapb.NodeRole_NODE_ROLE_STANDBY,
		AgentVersion:   "1.4.0",
		AgentStartedAt: ts(time.Hour + 2*time.Minute),
		SampledAt:      ts(300 * time.Millisecond),
		System:         sys(name),
		Database: &hapb.DatabaseStatus{
			Role:          hapb.DatabaseRole_DATABASE_ROLE_STANDBY,
			Timeline:      3,
			ReceiveLsn:    0x3000748,
			ReplayLsn:     0x3000148,
			LastReplayAt:  ts(3200 * time.Millisecond),
			ServerVersion: "15.6",
			Port:          5432,
			ListenAddr:    addr,
			WalReceiver: &hapb.WalReceiver{
				Pid:         5151,
				Status:      "streaming",
				ReceivedTli: 3,
				WrittenLsn:  0x3000748,
				FlushedLsn:  0x3000748,
				SlotName:    "hapair_" + name,
				SenderHost:  upstreamAddr,
				SenderPort:  5432,
			},
		},
	}
}

func events() []*hapb.Event {
	mk := func(seq uint64, ago time.Duration, node, kind, detail string) *hapb.Event {
		return &hapb.Event{Seq: seq, Time: ts(ago), Node: node, Kind: kind, Detail: detail}
	}
	return []*hapb.Event{
		mk(7, 2*time.Minute, "db1", "replica-connected", "db2 streaming from 0/3000000, sync"),
		mk(6, 3*time.Minute, "db1", "agent-start", "hactl 1.4.0"),
		mk(5, 10*time.Minute, "db2", "switchover",
			"the Active role moved from db2 to db1 at the operator's request; db2 follows db1 on timeline 3 and its database was rewound"),
		mk(4, 11*time.Minute, "db2", "maintenance", "off"),
		mk(3, 20*time.Minute, "db1", "vip", "198.18.0.12 held by db2"),
		mk(2, time.Hour, "db1", "sixth-event-not-shown", "x"),
		mk(1, 2*time.Hour, "db1", "seventh-event-not-shown", "y"),
	}
}

type statusCase struct {
	name string
	snap *hapb.Snapshot
	// want are substrings the output must contain, checked independently of
	// the golden file so that rewriting it cannot hide a regression.
	want []string
	// wantNot must not appear.
	wantNot []string
}

func statusCases() []statusCase {
	return []statusCase{
		{
			name: "healthy pair, primary local",
			snap: &hapb.Snapshot{
				Seq:       42,
				SampledAt: ts(200 * time.Millisecond),
				Local:     primary("db1", "198.18.0.5", "db2", "198.18.0.10"),
				Peer: &hapb.PeerView{
					Name:        "db2",
					AgentAddr:   "198.18.0.10:7443",
					Reachable:   true,
					Status:      standby("db2", "198.18.0.10", "198.18.0.5"),
					LastContact: ts(400 * time.Millisecond),
				},
				Cluster: &hapb.ClusterView{
					Name:       "prod",
					Health:     hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY,
					ActiveNode: "db1",
					Epoch:      3,
					Vip:        &hapb.Vip{Address: "198.18.0.12", Holder: "db1", Since: ts(time.Hour)},
					Protection: "three voters (witness w)",
				},
				Links: []*hapb.LinkStatus{
					{Name: "heartbeat", Connected: true, Rtt: durationpb.New(250 * time.Microsecond), LastSeen: ts(100 * time.Millisecond)},
					{Name: "public", Connected: false, Missed: 7},
				},
				RecentEvents: events(),
			},
			want: []string{
				"cluster prod: healthy\n",
				"  active: db1 (epoch 3)\n",
				"  vip: 198.18.0.12 held by db1 since 11:00:00\n",
				"  protection: three voters (witness w)\n",
				"  heartbeat heartbeat: connected, rtt 0.2 ms, last beat 0.1s ago, 0 missed\n",
				"  heartbeat public: disconnected, 7 missed\n",
				"db1 (this node): Active\n",
				"public 198.18.0.5, heartbeat 169.254.0.1",
				"agent 1.4.0, up 3m12s",
				"database: primary, timeline 3, PostgreSQL 15.6, listen 198.18.0.5:5432",
				"wal: current 0/3000748",
				"replica db2 (198.18.0.10): streaming, sync, lag 1.5 KiB, replay lag 0.012s",
				"sent 0/3000748  write 0/3000748  flush 0/3000748  replay 0/3000148",
				"db2 (peer, via 198.18.0.10:7443): Standby\n",
				"agent 1.4.0, up 1h02m",
				"database: standby, timeline 3",
				"wal: received 0/3000748  replayed 0/3000148  last replay 11:59:56 (3.2s ago)",
				"receiver: streaming from 198.18.0.5:5432 slot hapair_db2 timeline 3",
				"flushed 0/3000748",
				"\nreplication: db1 (198.18.0.5) ==> db2 (198.18.0.10)  streaming  lag 1.5 KiB\n    sync\n", // wrapped at 80 columns
				"system db1: mem 5.2 GiB/8.0 GiB free, disk 40.1 GiB/50.0 GiB free",
				"on /var/lib/postgresql",
				"load 0.12, host up 12d03h",
				"system db2: ",
				"recent events:\n  11:58:00 db1 replica-connected: db2 streaming from 0/3000000, sync\n",
				"11:49:00 db2 maintenance: off",
				"11:40:00 db1 vip: 198.18.0.12 held by db2\n",
			},
			wantNot: []string{"sixth-event-not-shown", "seventh-event-not-shown", "unreachable", "replication: none"},
		},
		{
			name: "standby local, peer primary",
			snap: &hapb.Snapshot{
				Local: standby("db2", "198.18.0.10", "198.18.0.5"),
				Peer: &hapb.PeerView{
					Name:        "db1",
					AgentAddr:   "198.18.0.5:7443",
					Reachable:   true,
					Status:      primary("db1", "198.18.0.5", "db2", "198.18.0.10"),
					LastContact: ts(time.Second),
				},
				Cluster: &hapb.ClusterView{Name: "prod", Health: hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY},
			},
			want: []string{
				"cluster prod: healthy\n",
				"db2 (this node): Standby\n",
				"wal: received 0/3000748  replayed 0/3000148",
				"receiver: streaming from 198.18.0.5:5432 slot hapair_db2",
				"db1 (peer, via 198.18.0.5:7443): Active\n",
				"wal: current 0/3000748",
				"replica db2 (198.18.0.10): streaming, sync",
				"\nreplication: db1 (198.18.0.5) ==> db2 (198.18.0.10)  streaming  lag 1.5 KiB\n    sync\n", // wrapped at 80 columns
				"system db2: mem",
				"system db1: mem",
			},
			wantNot: []string{"recent events", "db2 (198.18.0.10) ==>", "replication: none"},
		},
		{
			name: "peer unreachable",
			snap: &hapb.Snapshot{
				Local: primary("db1", "198.18.0.5", "", ""),
				Peer: &hapb.PeerView{
					Name:      "db2",
					AgentAddr: "198.18.0.10:7443",
					Reachable: false,
					Error:     "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp 198.18.0.10:7443: connect: connection refused\"",
					// The last status learned before the link went down is
					// stale: none of it may be shown or summarised.
					Status:      primary("db2", "198.18.0.10", "db1", "198.18.0.5"),
					LastContact: ts(4*time.Minute + 3*time.Second),
				},
				Cluster: &hapb.ClusterView{
					Name:         "prod",
					Health:       hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED,
					HealthReason: "one of the cluster nodes is offline",
				},
				RecentEvents: events()[:1],
			},
			want: []string{
				"cluster prod: degraded: one of the cluster nodes is offline\n",
				"db1 (this node): Active\n",
				"\ndb2 (peer, via 198.18.0.10:7443)\n",
				"  unreachable: rpc error: code = Unavailable desc = connection error: desc =",
				"dial tcp 198.18.0.10:7443: connect:",
				"  last contact 4m03s ago\n",
				"\nreplication: none\n",
				"system db1: mem",
			},
			wantNot: []string{"==>", "system db2", "db1 (198.18.0.5)", "Standby"},
		},
		{
			name: "database stopped with error",
			snap: &hapb.Snapshot{
				Local: &hapb.NodeStatus{
					Name:           "db1",
					PublicAddr:     "198.18.0.5",
					HeartbeatAddr:  "169.254.0.1",
					Role:           hapb.NodeRole_NODE_ROLE_STOPPED,
					AgentVersion:   "1.4.0",
					AgentStartedAt: ts(26*time.Hour + 5*time.Minute),
					Database: &hapb.DatabaseStatus{
						Role:          hapb.DatabaseRole_DATABASE_ROLE_STOPPED,
						ServerVersion: "15.6",
						Port:          5432,
						ListenAddr:    "198.18.0.5",
						Error:         "connect to 198.18.0.5:5432: failed to connect to `user=hactl database=postgres`: 198.18.0.5:5432 (198.18.0.5): dial error: dial tcp 198.18.0.5:5432: connect: connection refused",
					},
				},
				Peer: &hapb.PeerView{
					Name:        "db2",
					AgentAddr:   "198.18.0.10:7443",
					Reachable:   true,
					Status:      primary("db2", "198.18.0.10", "", ""),
					LastContact: ts(500 * time.Millisecond),
				},
				Cluster: &hapb.ClusterView{
					Name:         "prod",
					Health:       hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED,
					HealthReason: "cluster services are stopped on db1",
				},
			},
			want: []string{
				"cluster prod: degraded: cluster services are stopped on db1\n",
				"db1 (this node): Stopped\n",
				"agent 1.4.0, up 1d02h\n",
				"  database: stopped, PostgreSQL 15.6, listen 198.18.0.5:5432\n",
				"  database: error: connect to 198.18.0.5:5432: failed to connect to",
				"connect: connection refused\n",
				"db2 (peer, via 198.18.0.10:7443): Active\n",
				"\nreplication: none\n",
			},
			wantNot: []string{"==>", "wal: received", "unreachable"},
		},
		{
			name: "uninitialised, no peer",
			snap: &hapb.Snapshot{
				Local: &hapb.NodeStatus{
					Name:           "pg-appliance-7",
					PublicAddr:     "10.1.2.3",
					Role:           hapb.NodeRole_NODE_ROLE_STANDALONE,
					AgentVersion:   "1.4.0",
					AgentStartedAt: ts(2500 * time.Millisecond),
					Database: &hapb.DatabaseStatus{
						Role: hapb.DatabaseRole_DATABASE_ROLE_UNINITIALIZED,
					},
					System: &hapb.SystemStatus{
						MemTotalBytes:     2 * gib,
						MemAvailableBytes: gib + gib/2,
						DiskPath:          "/",
						DiskTotalBytes:    20 * gib,
						DiskFreeBytes:     19 * gib,
						HostUptime:        dur(5 * time.Minute),
						Load1:             1.5,
					},
				},
				Cluster: &hapb.ClusterView{Health: hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED},
			},
			want: []string{
				"cluster: not enabled\n",
				"pg-appliance-7 (this node): Stand-alone\n",
				"  public 10.1.2.3\n",
				"  agent 1.4.0, up 2.5s\n",
				"  database: not initialised\n",
				"\npeer: none configured\n",
				"\nreplication: none\n",
				"system pg-appliance-7: mem 1.5 GiB/2.0 GiB free, disk 19.0 GiB/20.0 GiB free\n    on /, load 1.50, host up 5m00s\n",
			},
			wantNot: []string{"wal:", "receiver:", "heartbeat", "recent events", "==>"},
		},
	}
}

func goldenPath(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if !strings.HasSuffix(b.String(), "_") {
			b.WriteByte('_')
		}
	}
	return filepath.Join("testdata", strings.Trim(b.String(), "_")+".golden")
}

func TestRenderStatus(t *testing.T) {
	for _, tc := range statusCases() {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderStatus(&buf, tc.snap, now); err != nil {
				t.Fatalf("RenderStatus: %v", err)
			}
			got := buf.String()

			path := goldenPath(tc.name)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run go test -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run go test -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", path, got, want)
			}

			for _, s := range tc.want {
				if !strings.Contains(got, s) {
					t.Errorf("output lacks %q\n%s", s, got)
				}
			}
			for _, s := range tc.wantNot {
				if strings.Contains(got, s) {
					t.Errorf("output has %q, want it absent\n%s", s, got)
				}
			}
			checkPlain(t, got)

			var again bytes.Buffer
			if err := RenderStatus(&again, tc.snap, now); err != nil || again.String() != got {
				t.Errorf("second render differs: err %v", err)
			}
		})
	}
}

// checkPlain asserts every line fits in Width columns, is printable ASCII
// and has no trailing space, and the text ends with exactly one newline.
func checkPlain(t *testing.T, out string) {
	t.Helper()
	if !strings.HasSuffix(out, "\n") || strings.HasSuffix(out, "\n\n") {
		t.Errorf("output should end with exactly one newline: %q", out[max(0, len(out)-20):])
	}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if len(line) > Width {
			t.Errorf("line %d is %d columns, want <= %d: %q", i+1, len(line), Width, line)
		}
		if strings.TrimRight(line, " ") != line {
			t.Errorf("line %d has trailing space: %q", i+1, line)
		}
		for _, c := range []byte(line) {
			if c < 0x20 || c >= 0x7f {
				t.Errorf("line %d has byte %#x, want printable ASCII: %q", i+1, c, line)
				break
			}
		}
	}
}

func TestRenderStatusHealthyOrder(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderStatus(&buf, statusCases()[0].snap, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	order := []string{"cluster prod: healthy", "db1 (this node)", "db2 (peer,", "replication: db1", "system db1:", "system db2:", "recent events:"}
	last := -1
	for _, s := range order {
		i := strings.Index(out, s)
		if i < 0 || i < last {
			t.Fatalf("%q at %d, want after %d; order %q\n%s", s, i, last, order, out)
		}
		last = i
	}
	// Newest first, as given.
	if a, b := strings.Index(out, "replica-connected"), strings.Index(out, "agent-start"); a > b {
		t.Errorf("events out of order:\n%s", out)
	}
}

// TestRenderStatusHostile feeds strings a peer could send: terminal escapes,
// line breaks, non-ASCII text, invalid UTF-8 and one very long word.
func TestRenderStatusHostile(t *testing.T) {
	s := &hapb.Snapshot{
		Local: &hapb.NodeStatus{Name: "db1\x1b[2J", Role: hapb.NodeRole_NODE_ROLE_ACTIVE},
		Peer: &hapb.PeerView{
			Name:      "db2",
			AgentAddr: "198.18.0.10:7443",
			Error:     "bad\x1b[31m red\nsecond line \xff caf\u00e9 " + strings.Repeat("x", 300) + strings.Repeat(" word", 200),
		},
		Cluster: &hapb.ClusterView{Name: "n\u00f6rd", Health: hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY},
	}
	var buf bytes.Buffer
	if err := RenderStatus(&buf, s, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	checkPlain(t, out)
	for _, want := range []string{`cluster n\u00f6rd: healthy`, `db1\x1b[2J (this node): Active`, "unreachable: bad\\x1b[31m red second line \\xff caf\\u00e9\n    xxxx", "..."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
	var unreachable int
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "    ") || strings.Contains(line, "unreachable:") {
			unreachable++
		}
	}
	if unreachable > maxTextLines {
		t.Errorf("error took %d lines, want at most %d\n%s", unreachable, maxTextLines, out)
	}
}

func TestRenderStatusEmpty(t *testing.T) {
	if err := RenderStatus(&bytes.Buffer{}, nil, now); err == nil {
		t.Error("RenderStatus(nil snapshot) succeeded, want an error")
	}
	var buf bytes.Buffer
	if err := RenderStatus(&buf, &hapb.Snapshot{}, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	checkPlain(t, out)
	for _, want := range []string{"cluster: unknown\n", "unnamed (this node): no status\n", "peer: none configured\n", "replication: none\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		name string
		in   string
		hang int
		want []string
	}{
		{name: "fits", in: "  short", hang: 4, want: []string{"  short"}},
		{name: "exactly width", in: strings.Repeat("a", Width), hang: 4, want: []string{strings.Repeat("a", Width)}},
		{
			name: "breaks at last space",
			in:   "  " + strings.Repeat("a", 69) + " bbbbbbbb cc",
			hang: 4,
			want: []string{"  " + strings.Repeat("a", 69) + " bbbbbbbb", "    cc"},
		},
		{
			name: "long word broken",
			in:   "  " + strings.Repeat("z", 100),
			hang: 4,
			want: []string{"  " + strings.Repeat("z", 78), "    " + strings.Repeat("z", 22)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := WrapLine(tc.in, tc.hang)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("WrapLine = %q, want %q", got, tc.want)
			}
		})
	}
}

// heartbeatOf gives the heartbeat address of a node of the lab's address plan.
func heartbeatOf(public string) string {
	if public == "198.18.0.10" {
		return "169.254.0.2"
	}
	return "169.254.0.1"
}
