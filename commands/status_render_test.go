package commands

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/hapair/hapair/hactl/hapb"
)

var update = flag.Bool("update", false, "rewrite the golden files of the status tests")

var statusCases = []struct {
	name string
	snap func() *hapb.Snapshot
	code int
}{
	{"healthy", healthySnapshot, ExitOK},
	{"degraded_peer_offline", degradedSnapshot, ExitDegraded},
	{"stopped", stoppedSnapshot, ExitNotRunning},
	{"standalone", standAloneSnapshot, ExitNotEnabled},
	{"handover_link_down", handoverSnapshot, ExitDegraded},
	{"hostile_strings", hostileSnapshot, ExitDegraded},
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./commands -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// checkPrintable fails on a line wider than StatusWidth or any byte that is
// not printable ASCII.
func checkPrintable(t *testing.T, out string) {
	t.Helper()
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if len(l) > StatusWidth {
			t.Errorf("line %d is %d columns: %q", i+1, len(l), l)
		}
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %d has trailing spaces: %q", i+1, l)
		}
		for _, c := range []byte(l) {
			if c < 0x20 || c >= 0x7f {
				t.Errorf("line %d has byte %#x: %q", i+1, c, l)
				break
			}
		}
	}
}

func TestRenderStatusGolden(t *testing.T) {
	for _, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.snap()
			if got := StatusExitCode(s); got != tc.code {
				t.Errorf("StatusExitCode = %d, want %d", got, tc.code)
			}
			var b bytes.Buffer
			if err := RenderStatus(&b, s, fixtureNow, false); err != nil {
				t.Fatal(err)
			}
			checkPrintable(t, b.String())
			golden(t, "status_"+tc.name+".golden", b.Bytes())
		})
	}
}

// TestRenderStatusFacts checks, beyond the golden files, the sentences the
// issue names word for word and that facts come from the right place.
func TestRenderStatusFacts(t *testing.T) {
	render := func(s *hapb.Snapshot) string {
		var b bytes.Buffer
		if err := RenderStatus(&b, s, fixtureNow, false); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	tests := []struct {
		name    string
		snap    *hapb.Snapshot
		want    []string
		notWant []string
	}{
		{"healthy", healthySnapshot(), []string{
			"Cluster prod: The cluster is healthy.\n",
			"  primary-node (198.18.0.5) ==> secondary-node (198.18.0.10)\n      streaming  lag 0 B  async\n",
			"this node, public 198.18.0.5, heartbeat 169.254.0.1, holds the VIP",
			"VIP:          198.18.0.12 held by primary-node since 11:00:00",
			"heartbeat  169.254.0.1 -> 169.254.0.2  connected  rtt 0.2 ms",
			"Maintenance:  off",
			"Witness:      witness",
		}, nil},
		{"replication over the heartbeat link", func() *hapb.Snapshot {
			// The standby's own receiver says it streams from the primary's
			// heartbeat address; the primary sees it come from the standby's.
			s := healthySnapshot()
			s.Local.Database.Replicas[0].ClientAddr = "169.254.0.2"
			s.Peer.Status.Database.WalReceiver.SenderHost = "169.254.0.1"
			return s
		}(), []string{
			"  primary-node (169.254.0.1) ==> secondary-node (169.254.0.2)\n      streaming  lag 0 B  async\n",
		}, []string{"primary-node (198.18.0.5) ==>"}},
		{"degraded", degradedSnapshot(), []string{
			"The cluster is degraded: one of the cluster nodes is offline\n",
			"Offline",
			"peer unreachable: rpc error: code = Unavailable",
			"(last contact 3m12s",
			"heartbeat  169.254.0.1 -> 169.254.0.2  disconnected for 3m12s\n",
			"Replication:\n  none: no primary reports a standby streaming from it\n",
		}, []string{
			// The peer's last known status is stale: never shown as fact.
			"Standby", "0/3000148", "secondary-node (198.18.0.10) ==>",
		}},
		{"stopped", stoppedSnapshot(), []string{
			"Error: cluster is not currently running on this node\n",
			"This node:    primary-node, Stopped, database stopped\n",
			"Peer:         secondary-node, Active, database primary, reachable\n",
			"VIP:          198.18.0.12 held by secondary-node",
		}, []string{"Replication:"}},
		{"stand-alone", standAloneSnapshot(), []string{"HA is not enabled on this node.\n"}, []string{"Error:", "Replication:"}},
		{"handover: direction from the peer's pg_stat_replication", handoverSnapshot(), []string{
			"  secondary-node (198.18.0.10) ==> primary-node (198.18.0.5)\n      streaming  lag 1.5 KiB  sync\n",
			"Maintenance:  on: automatic failover is paused",
			"public     198.18.0.5 -> 198.18.0.10  disconnected for 12s\n",
		}, []string{"primary-node (198.18.0.5) ==>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := render(tt.snap)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("unexpected %q in:\n%s", w, out)
				}
			}
		})
	}
}

func TestStatusExitCode(t *testing.T) {
	snap := func(h hapb.ClusterHealth, r hapb.NodeRole) *hapb.Snapshot {
		return &hapb.Snapshot{Local: &hapb.NodeStatus{Role: r}, Cluster: &hapb.ClusterView{Health: h}}
	}
	tests := []struct {
		name string
		s    *hapb.Snapshot
		want int
	}{
		{"healthy active", snap(hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY, hapb.NodeRole_NODE_ROLE_ACTIVE), ExitOK},
		{"healthy witness", snap(hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY, hapb.NodeRole_NODE_ROLE_WITNESS), ExitOK},
		{"degraded", snap(hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, hapb.NodeRole_NODE_ROLE_ACTIVE), ExitDegraded},
		{"unspecified health", snap(hapb.ClusterHealth_CLUSTER_HEALTH_UNSPECIFIED, hapb.NodeRole_NODE_ROLE_ACTIVE), ExitDegraded},
		{"not running", snap(hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING, hapb.NodeRole_NODE_ROLE_STANDBY), ExitNotRunning},
		{"stopped role beats degraded health", snap(hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, hapb.NodeRole_NODE_ROLE_STOPPED), ExitNotRunning},
		{"not enabled", snap(hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED, hapb.NodeRole_NODE_ROLE_ACTIVE), ExitNotEnabled},
		{"stand-alone role beats health", snap(hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY, hapb.NodeRole_NODE_ROLE_STANDALONE), ExitNotEnabled},
		{"empty snapshot", &hapb.Snapshot{}, ExitDegraded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusExitCode(tt.s); got != tt.want {
				t.Fatalf("StatusExitCode = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestRenderStatusColor checks that colour adds only SGR sequences, which
// stripped give exactly the plain report.
func TestRenderStatusColor(t *testing.T) {
	sgr := regexp.MustCompile("\x1b\\[[0-9;]*m")
	for _, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			var plain, colour bytes.Buffer
			if err := RenderStatus(&plain, tc.snap(), fixtureNow, false); err != nil {
				t.Fatal(err)
			}
			if err := RenderStatus(&colour, tc.snap(), fixtureNow, true); err != nil {
				t.Fatal(err)
			}
			if !sgr.MatchString(colour.String()) {
				t.Fatal("no colour in the coloured report")
			}
			if got := sgr.ReplaceAllString(colour.String(), ""); got != plain.String() {
				t.Fatalf("colour changed the text:\n%s\nwant:\n%s", got, plain.String())
			}
		})
	}
}

// TestRenderStatusNeverPanics renders partial and empty snapshots: every
// field of the agent's answer may be missing.
func TestRenderStatusNeverPanics(t *testing.T) {
	snaps := []*hapb.Snapshot{
		{},
		{Local: &hapb.NodeStatus{}},
		{Cluster: &hapb.ClusterView{Health: hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY}},
		{Peer: &hapb.PeerView{Reachable: true}, Cluster: &hapb.ClusterView{Health: hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED}},
		{Local: &hapb.NodeStatus{Role: hapb.NodeRole_NODE_ROLE_STOPPED}},
		{Links: []*hapb.LinkStatus{{}}, RecentEvents: []*hapb.Event{{}}},
	}
	for i, s := range snaps {
		var b bytes.Buffer
		if err := RenderStatus(&b, s, fixtureNow, false); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		checkPrintable(t, b.String())
		if err := WriteStatusJSON(&bytes.Buffer{}, NewStatusJSON(s)); err != nil {
			t.Fatalf("snapshot %d: json: %v", i, err)
		}
	}
	if err := RenderStatus(&bytes.Buffer{}, nil, fixtureNow, false); err == nil {
		t.Fatal("nil snapshot: no error")
	}
}

func TestStatusJSONGolden(t *testing.T) {
	for _, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			v := NewStatusJSON(tc.snap())
			if v.Schema != "hapair.status/v1" || v.ExitCode != tc.code {
				t.Fatalf("schema %q, exit_code %d", v.Schema, v.ExitCode)
			}
			var b bytes.Buffer
			if err := WriteStatusJSON(&b, v); err != nil {
				t.Fatal(err)
			}
			golden(t, "status_"+tc.name+".json.golden", b.Bytes())

			// It round-trips: decoding gives the same value back.
			var back StatusJSON
			dec := json.NewDecoder(&b)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&back); err != nil {
				t.Fatal(err)
			}
			if tc.name != "hostile_strings" && !reflect.DeepEqual(&back, v) {
				t.Fatalf("round trip:\n%+v\nwant\n%+v", back, *v)
			}
			// No raw control character at all, even those JSON allows.
			for _, r := range b.String() {
				if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || unicode.Is(unicode.Cf, r) {
					t.Fatalf("raw control character %U in the JSON", r)
				}
			}
		})
	}
}

// TestStatusJSONFieldNames pins every field name of the schema: scripts
// depend on them, and changing one needs a new schema version.
func TestStatusJSONFieldNames(t *testing.T) {
	var names []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == reflect.TypeOf(time.Time{}) {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name == "" {
				t.Fatalf("%s.%s has no json name", typ.Name(), f.Name)
			}
			names = append(names, prefix+name)
			walk(prefix+name+".", f.Type)
		}
	}
	walk("", reflect.TypeOf(StatusJSON{}))
	golden(t, "status_json_fields.golden", []byte(strings.Join(names, "\n")+"\n"))
}

// TestStatusJSONKeepsStrings checks that JSON strings are the agent's own
// (not view.Clean'd), while the bytes written stay terminal-safe.
func TestStatusJSONKeepsStrings(t *testing.T) {
	s := hostileSnapshot()
	var b bytes.Buffer
	if err := WriteStatusJSON(&b, NewStatusJSON(s)); err != nil {
		t.Fatal(err)
	}
	var back StatusJSON
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Cluster.Name != s.Cluster.Name {
		t.Fatalf("cluster name %q, want %q", back.Cluster.Name, s.Cluster.Name)
	}
	if back.VIP.Address != s.Cluster.Vip.Address {
		t.Fatalf("vip %q, want %q", back.VIP.Address, s.Cluster.Vip.Address)
	}
}
