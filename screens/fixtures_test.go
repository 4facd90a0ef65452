package screens

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
)

// t0 is the fixed "now" of the golden screens.
var t0 = time.Date(2026, 12, 1, 14, 30, 0, 0, time.UTC)

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func asciiRenderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return r
}

func colourRenderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.TrueColor)
	r.SetHasDarkBackground(true)
	return r
}

// clock is a settable Options.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var members = []*hapb.Member{
	{Name: "primary-node", Kind: "data", PublicAddr: "198.18.0.5", HeartbeatAddr: "169.254.0.1"},
	{Name: "secondary-node", Kind: "data", PublicAddr: "198.18.0.10", HeartbeatAddr: "169.254.0.2"},
	{Name: "witness", Kind: "witness", PublicAddr: "198.18.0.20"},
}

func system(memFree uint64, up time.Duration) *hapb.SystemStatus {
	return &hapb.SystemStatus{
		Hostname: "h", MemTotalBytes: 8 << 30, MemAvailableBytes: memFree,
		DiskPath: "/var/lib/postgresql", DiskTotalBytes: 50 << 30, DiskFreeBytes: 40 << 30,
		HostUptime: durationpb.New(up), Load1: 0.12,
	}
}

func node(name string, role hapb.NodeRole, db *hapb.DatabaseStatus, holdsVIP bool) *hapb.NodeStatus {
	n := &hapb.NodeStatus{Name: name, Role: role, Database: db, HoldsVip: holdsVIP, AgentVersion: "0.9.0",
		System: system(5<<30, 12*24*time.Hour+3*time.Hour)}
	for _, m := range members {
		if m.Name == name {
			n.PublicAddr, n.HeartbeatAddr = m.PublicAddr, m.HeartbeatAddr
		}
	}
	return n
}

func primaryDB(tl uint32, replicas ...*hapb.ReplicationRow) *hapb.DatabaseStatus {
	return &hapb.DatabaseStatus{Role: hapb.DatabaseRole_DATABASE_ROLE_PRIMARY, Timeline: tl,
		CurrentLsn: 0x3000748, ServerVersion: "15.6", Replicas: replicas}
}

func standbyDB(tl uint32, from string) *hapb.DatabaseStatus {
	return &hapb.DatabaseStatus{Role: hapb.DatabaseRole_DATABASE_ROLE_STANDBY, Timeline: tl,
		ReceiveLsn: 0x3000748, ReplayLsn: 0x3000748, ServerVersion: "15.6",
		WalReceiver: &hapb.WalReceiver{Status: "streaming", SenderHost: from, SenderPort: 5432, ReceivedTli: tl}}
}

func stoppedDB() *hapb.DatabaseStatus {
	return &hapb.DatabaseStatus{Role: hapb.DatabaseRole_DATABASE_ROLE_STOPPED, ServerVersion: "15.6"}
}

func row(app, addr, state string, lag uint64) *hapb.ReplicationRow {
	return &hapb.ReplicationRow{ApplicationName: app, ClientAddr: addr, State: state, SyncState: "async",
		LagBytes: lag, ReplayLsn: 0x3000748 - lag, ReplayLag: durationpb.New(1500 * time.Microsecond)}
}

func links(connected bool) []*hapb.LinkStatus {
	out := []*hapb.LinkStatus{
		{Name: "heartbeat", LocalAddr: "169.254.0.1:5405", PeerAddr: "169.254.0.2:5405", Connected: connected,
			Rtt: durationpb.New(420 * time.Microsecond), LastSeen: ts(t0.Add(-180 * time.Millisecond)), Missed: 0},
		{Name: "public", LocalAddr: "198.18.0.5:5405", PeerAddr: "198.18.0.10:5405", Connected: connected,
			Rtt: durationpb.New(610 * time.Microsecond), LastSeen: ts(t0.Add(-190 * time.Millisecond)), Missed: 2},
	}
	if !connected {
		for _, l := range out {
			l.LastSeen = ts(t0.Add(-7 * time.Second))
			l.Missed = 35
		}
	}
	return out
}

func events() []*hapb.Event {
	return []*hapb.Event{
		{Seq: 4, Time: ts(t0.Add(-2 * time.Minute)), Node: "secondary-node", Kind: "joined", Detail: "secondary-node streams from primary-node"},
		{Seq: 3, Time: ts(t0.Add(-5 * time.Minute)), Node: "primary-node", Kind: "promoted", Detail: "epoch 1, timeline 1"},
		{Seq: 2, Time: ts(t0.Add(-6 * time.Minute)), Node: "primary-node", Kind: "vip", Detail: "primary-node holds 198.18.0.12"},
		{Seq: 1, Time: ts(t0.Add(-7 * time.Minute)), Node: "primary-node", Kind: "formed", Detail: "cluster appliance formed"},
	}
}

// history is a longer history: a day of beats lost and found, older than events().
func history() []*hapb.Event {
	var out []*hapb.Event
	for i := range 16 {
		kind, detail := "heartbeat", "link public lost"
		if i%2 == 1 {
			kind, detail = "heartbeat", "link public back"
		}
		out = append(out, &hapb.Event{Time: ts(t0.Add(-time.Hour - time.Duration(i)*time.Minute)), Node: "secondary-node", Kind: kind, Detail: detail})
	}
	return out
}

func cluster(health hapb.ClusterHealth, reason, active, holder string) *hapb.ClusterView {
	c := &hapb.ClusterView{Name: "appliance", Id: "c1", Health: health, HealthReason: reason,
		ActiveNode: active, Epoch: 1, Members: members, Witness: "witness", ReplicationMode: "async",
		Vip: &hapb.Vip{Address: "198.18.0.12", Holder: holder}}
	if holder != "" {
		c.Vip.Since = ts(t0.Add(-5 * time.Minute))
	}
	return c
}

func peer(st *hapb.NodeStatus) *hapb.PeerView {
	return &hapb.PeerView{Name: st.GetName(), AgentAddr: st.GetPublicAddr() + ":7400", Reachable: true, Status: st, LastContact: ts(t0)}
}

// Scenarios of the golden screens, each as the local agent would send it.
func healthy() *hapb.Snapshot {
	return &hapb.Snapshot{
		Seq: 10, SampledAt: ts(t0), ChangedAt: ts(t0),
		Local:        node("primary-node", hapb.NodeRole_NODE_ROLE_ACTIVE, primaryDB(1, row("secondary-node", "198.18.0.10", "streaming", 0)), true),
		Peer:         peer(node("secondary-node", hapb.NodeRole_NODE_ROLE_STANDBY, standbyDB(1, "198.18.0.5"), false)),
		Cluster:      cluster(hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY, "", "primary-node", "primary-node"),
		Links:        links(true),
		RecentEvents: append(events(), history()...),
	}
}

// reversed: after scenario A step 3, seen from primary-node (now Standby).
func reversed() *hapb.Snapshot {
	s := healthy()
	s.Local = node("primary-node", hapb.NodeRole_NODE_ROLE_STANDBY, standbyDB(2, "198.18.0.10"), false)
	s.Peer = peer(node("secondary-node", hapb.NodeRole_NODE_ROLE_ACTIVE, primaryDB(2, row("primary-node", "198.18.0.5", "streaming", 2048)), true))
	s.Cluster = cluster(hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY, "", "secondary-node", "secondary-node")
	s.Cluster.Epoch = 2
	return s
}

// degraded: seen from secondary-node after primary-node went offline.
func degraded() *hapb.Snapshot {
	return &hapb.Snapshot{
		Seq: 20, SampledAt: ts(t0), ChangedAt: ts(t0),
		Local: node("secondary-node", hapb.NodeRole_NODE_ROLE_ACTIVE, primaryDB(2), true),
		Peer: &hapb.PeerView{Name: "primary-node", AgentAddr: "198.18.0.5:7400", Reachable: false,
			Error: "dial 198.18.0.5:7400: connect: connection refused", LastContact: ts(t0.Add(-7 * time.Second)),
			Status: node("primary-node", hapb.NodeRole_NODE_ROLE_ACTIVE, primaryDB(1), true)},
		Cluster:      cluster(hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "one of the cluster nodes is offline", "secondary-node", "secondary-node"),
		Links:        links(false),
		RecentEvents: events(),
	}
}

// handover: primary-node stopped its database and hands over; the VIP is
// between holders.
func handover() *hapb.Snapshot {
	s := healthy()
	s.Local = node("primary-node", hapb.NodeRole_NODE_ROLE_STOPPED, stoppedDB(), false)
	s.Peer = peer(node("secondary-node", hapb.NodeRole_NODE_ROLE_STANDBY, standbyDB(1, "198.18.0.5"), false))
	s.Peer.Status.Database.WalReceiver.Status = "waiting"
	s.Cluster = cluster(hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING, "cluster is not currently running on this node", "primary-node", "")
	s.Cluster.HandoverFrom, s.Cluster.HandoverTo = "primary-node", "secondary-node"
	return s
}

// stopped: primary-node after ha_cluster_stop; secondary-node is Active.
func stopped() *hapb.Snapshot {
	s := healthy()
	s.Local = node("primary-node", hapb.NodeRole_NODE_ROLE_STOPPED, stoppedDB(), false)
	s.Peer = peer(node("secondary-node", hapb.NodeRole_NODE_ROLE_ACTIVE, primaryDB(2), true))
	s.Cluster = cluster(hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING, "cluster is not currently running on this node", "secondary-node", "secondary-node")
	s.Cluster.Epoch = 2
	s.Links = links(false)
	return s
}

// standalone: after ha_teardown.
func standalone() *hapb.Snapshot {
	return &hapb.Snapshot{
		Seq: 3, SampledAt: ts(t0), ChangedAt: ts(t0),
		Local:   node("primary-node", hapb.NodeRole_NODE_ROLE_STANDALONE, primaryDB(2), false),
		Cluster: &hapb.ClusterView{Name: "", Health: hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED, HealthReason: "HA is not enabled on this node"},
		RecentEvents: []*hapb.Event{
			{Seq: 9, Time: ts(t0.Add(-time.Minute)), Node: "primary-node", Kind: "teardown", Detail: "the HA cluster was destroyed; this server runs stand-alone"},
		},
	}
}

func maintenance() *hapb.Snapshot {
	s := healthy()
	s.Cluster.Maintenance = true
	s.Cluster.Health, s.Cluster.HealthReason = hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "maintenance mode: automatic failover paused"
	return s
}

// testDashboard is a dashboard without an agent, fed by the test.
func testDashboard(t testing.TB, opts Options) (*Dashboard, *clock) {
	t.Helper()
	c := &clock{t: t0}
	if opts.Renderer == nil {
		opts.Renderer = asciiRenderer()
	}
	if opts.Now == nil {
		opts.Now = c.now
	}
	d := newDashboard(context.Background(), opts)
	t.Cleanup(d.cancel)
	return d, c
}

// feedMinute sends a minute of snapshots, one a second, ending at t0 with
// final; the RTTs vary so the sparklines have a shape.
func feedMinute(d *Dashboard, c *clock, final *hapb.Snapshot) {
	var items []update
	for i := 60; i >= 1; i-- {
		s := proto.Clone(final).(*hapb.Snapshot)
		for j, l := range s.Links {
			l.Rtt = durationpb.New(time.Duration(300+((i*7+j*3)%11)*60) * time.Microsecond)
			if i > 40 && i < 44 {
				l.Connected = false
			}
		}
		items = append(items, update{snap: s, at: t0.Add(-time.Duration(i) * time.Second)})
	}
	items = append(items, update{snap: final, at: t0})
	c.t = t0
	d.Update(updatesMsg{items: items})
}

func press(d *Dashboard, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		var msg tea.KeyMsg
		switch k {
		case "esc":
			msg = tea.KeyMsg{Type: tea.KeyEsc}
		case "tab":
			msg = tea.KeyMsg{Type: tea.KeyTab}
		case "shift+tab":
			msg = tea.KeyMsg{Type: tea.KeyShiftTab}
		case "up":
			msg = tea.KeyMsg{Type: tea.KeyUp}
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		case "pgup":
			msg = tea.KeyMsg{Type: tea.KeyPgUp}
		case "pgdown":
			msg = tea.KeyMsg{Type: tea.KeyPgDown}
		case "home":
			msg = tea.KeyMsg{Type: tea.KeyHome}
		case "enter":
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case "ctrl+c":
			msg = tea.KeyMsg{Type: tea.KeyCtrlC}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		_, cmd = d.Update(msg)
	}
	return cmd
}

// checkFrame asserts the frame fits w x h.
func checkFrame(t *testing.T, frame string, w, h int) {
	t.Helper()
	lines := strings.Split(frame, "\n")
	if len(lines) > h {
		t.Errorf("frame has %d lines, terminal has %d", len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d columns wide, terminal has %d: %q", i+1, n, w, l)
		}
	}
}
