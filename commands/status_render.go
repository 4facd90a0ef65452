package commands

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

// StatusWidth is the widest line RenderStatus writes, in columns.
const StatusWidth = view.Width

// labelWidth is the width of the "Label:" column of the status report.
const labelWidth = 14

// maxNodeColumn bounds the node-name column of the nodes table; a longer
// name gets a line of its own.
const maxNodeColumn = 20

// Sentences of ha_status, word for word.
const (
	healthySentence    = "The cluster is healthy."
	notRunningSentence = "Error: cluster is not currently running on this node"
	notEnabledSentence = "HA is not enabled on this node."
)

// ANSI colours, used only when asked for.
const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

// StatusExitCode is ha_status's exit code for s: ExitNotEnabled when HA is
// not enabled on this node (health NOT_ENABLED, or the node is
// stand-alone), ExitNotRunning when its cluster services are stopped
// (health NOT_RUNNING, or the node is Stopped), ExitOK when the cluster is
// healthy and ExitDegraded otherwise (including an unknown health).
func StatusExitCode(s *hapb.Snapshot) int {
	h := s.GetCluster().GetHealth()
	role := s.GetLocal().GetRole()
	switch {
	case h == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED || role == hapb.NodeRole_NODE_ROLE_STANDALONE:
		return ExitNotEnabled
	case h == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING || role == hapb.NodeRole_NODE_ROLE_STOPPED:
		return ExitNotRunning
	case h == hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY:
		return ExitOK
	}
	return ExitDegraded
}

// HealthSentence is the one-line verdict of ha_status for s: "The cluster
// is healthy.", "The cluster is degraded: <reason>", the not-running error
// or "HA is not enabled on this node.". Strings from s are cleaned.
func HealthSentence(s *hapb.Snapshot) string {
	switch StatusExitCode(s) {
	case ExitOK:
		return healthySentence
	case ExitNotRunning:
		return notRunningSentence
	case ExitNotEnabled:
		return notEnabledSentence
	}
	reason := view.Clean(s.GetCluster().GetHealthReason())
	if reason == "" {
		reason = "no reason given"
		if s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_UNSPECIFIED {
			reason = "the agent reported no health"
		}
	}
	return "The cluster is degraded: " + reason
}

// RenderStatus writes ha_status's report of s: the verdict, then for a
// running cluster the nodes table, heartbeat per link, the direction of
// replication as PostgreSQL reports it (rows of pg_stat_replication), the
// VIP and its holder, witness, protection, maintenance and the last event;
// for a stopped node what it knows of its peer; for a stand-alone node
// only that.
//
// It is a pure function of s and now (relative times are measured from
// now, clock times shown in now's location). No line is wider than
// StatusWidth columns; every string from s goes through view.Clean, so
// nothing from the network can move the cursor or change the terminal.
// With color, the verdict and link states are coloured with ANSI escapes.
func RenderStatus(w io.Writer, s *hapb.Snapshot, now time.Time, color bool) error {
	if s == nil {
		return errors.New("render status: no snapshot")
	}
	r := &statusRenderer{s: s, now: now, color: color}
	switch StatusExitCode(s) {
	case ExitNotEnabled:
		r.standAlone()
	case ExitNotRunning:
		r.stopped()
	default:
		r.running()
	}
	_, err := io.WriteString(w, r.String())
	return err
}

type statusRenderer struct {
	view.Text
	s     *hapb.Snapshot
	now   time.Time
	color bool
}

// nodeRow is one node as the report shows it.
type nodeRow struct {
	name      string
	local     bool
	reachable bool
	st        *hapb.NodeStatus // nil when unreachable or unknown
	public    string
	heartbeat string
	role      string
	peer      *hapb.PeerView
}

func (r *statusRenderer) running() {
	c := r.s.GetCluster()
	r.verdict()
	if a := view.Clean(c.GetActiveNode()); a != "" {
		r.label("Active node", fmt.Sprintf("%s (epoch %d)", a, c.GetEpoch()))
	}
	r.Blank()
	r.nodesTable()
	r.Blank()
	r.links()
	r.Blank()
	r.replication()
	r.Blank()
	r.vip()
	r.label("Witness", orDefault(view.Clean(c.GetWitness()), "none"))
	if p := view.Clean(c.GetProtection()); p != "" {
		r.label("Protection", p)
	}
	r.maintenance()
	r.lastEvent()
}

func (r *statusRenderer) stopped() {
	c := r.s.GetCluster()
	r.paint(ansiRed, func() { r.Wrapped(0, 2, notRunningSentence) })
	if n := view.Clean(c.GetName()); n != "" {
		r.label("Cluster", n)
	}
	l := r.s.GetLocal()
	this := orDefault(view.Clean(l.GetName()), "?") + ", " + view.RoleWord(l.GetRole())
	if db := l.GetDatabase(); db != nil {
		this += ", database " + view.DatabaseRoleWord(db.GetRole())
		if e := view.Clean(db.GetError()); e != "" {
			this += " (" + e + ")"
		}
	}
	r.label("This node", this)
	r.label("Peer", r.peerSummary())
	r.vip()
	r.lastEvent()
	r.Blank()
	r.Wrapped(0, 0, "Start the cluster services on this node with ha_cluster_start.")
}

func (r *statusRenderer) standAlone() {
	r.paint(ansiYellow, func() { r.Wrapped(0, 2, notEnabledSentence) })
	l := r.s.GetLocal()
	this := orDefault(view.Clean(l.GetName()), "?")
	if db := l.GetDatabase(); db != nil {
		this += ", database " + view.DatabaseRoleWord(db.GetRole())
	}
	r.label("This node", this)
	switch {
	case l.GetDeactivated():
		r.label("", "This node was deactivated when its cluster was torn down; a new deployment (ha_deploy) is needed to rejoin one.")
	case l.GetTornDown():
		r.label("", "The cluster was torn down on this node; it runs stand-alone with all its data.")
	}
	r.lastEvent()
}

// verdict writes the health sentence, coloured by health.
func (r *statusRenderer) verdict() {
	c := r.s.GetCluster()
	line := HealthSentence(r.s)
	if n := view.Clean(c.GetName()); n != "" {
		line = "Cluster " + n + ": " + line
	}
	colour := ansiYellow
	if StatusExitCode(r.s) == ExitOK {
		colour = ansiGreen
	}
	r.paint(colour, func() { r.Wrapped(0, 2, line) })
}

// peerSummary is one sentence on the peer: name, role, reachability.
func (r *statusRenderer) peerSummary() string {
	p := r.s.GetPeer()
	if p.GetName() == "" && p.GetStatus() == nil {
		return "none configured"
	}
	name := view.Clean(p.GetName())
	if name == "" {
		name = view.Clean(p.GetStatus().GetName())
	}
	if !p.GetReachable() {
		out := orDefault(name, "?") + ", unreachable: " + orDefault(view.Clean(p.GetError()), "no reason given")
		if t := p.GetLastContact(); t != nil {
			out += " (last contact " + r.ago(t) + ")"
		}
		return out
	}
	st := p.GetStatus()
	out := orDefault(name, "?") + ", " + view.RoleWord(st.GetRole())
	if db := st.GetDatabase(); db != nil {
		out += ", database " + view.DatabaseRoleWord(db.GetRole())
	}
	return out + ", reachable"
}

// rows returns this node then its peer.
func (r *statusRenderer) rows() []nodeRow {
	members := map[string]*hapb.Member{}
	for _, m := range r.s.GetCluster().GetMembers() {
		members[m.GetName()] = m
	}
	addrs := func(row *nodeRow, st *hapb.NodeStatus) {
		m := members[row.name]
		row.public = orDefault(st.GetPublicAddr(), m.GetPublicAddr())
		row.heartbeat = orDefault(st.GetHeartbeatAddr(), m.GetHeartbeatAddr())
	}
	l := r.s.GetLocal()
	out := []nodeRow{{name: l.GetName(), local: true, reachable: true, st: l, role: view.RoleWord(l.GetRole())}}
	addrs(&out[0], l)
	p := r.s.GetPeer()
	if p.GetName() == "" && p.GetStatus() == nil {
		return out
	}
	row := nodeRow{name: orDefault(p.GetName(), p.GetStatus().GetName()), peer: p}
	if p.GetReachable() && p.GetStatus() != nil {
		row.reachable, row.st, row.role = true, p.GetStatus(), view.RoleWord(p.GetStatus().GetRole())
		addrs(&row, p.GetStatus())
	} else {
		row.role = "Offline"
		addrs(&row, nil)
	}
	return append(out, row)
}

// primaries returns the reachable nodes whose database says it is primary.
func (r *statusRenderer) primaries() []nodeRow {
	var out []nodeRow
	for _, n := range r.rows() {
		if n.st.GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY {
			out = append(out, n)
		}
	}
	return out
}

// standbyLag finds the lag of the standby name in a primary's
// pg_stat_replication rows.
func (r *statusRenderer) standbyLag(name string) (uint64, bool) {
	for _, p := range r.primaries() {
		for _, row := range p.st.GetDatabase().GetReplicas() {
			if row.GetApplicationName() == name {
				return row.GetLagBytes(), true
			}
		}
	}
	return 0, false
}

func (r *statusRenderer) nodesTable() {
	rows := r.rows()
	head := []string{"NODE", "ROLE", "DATABASE", "TL", "LSN", "LAG"}
	cells := [][]string{head}
	for _, n := range rows {
		db := n.st.GetDatabase()
		dbWord, tl, pos, lag := "-", "-", "-", "-"
		if n.reachable && db != nil {
			dbWord = view.DatabaseRoleWord(db.GetRole())
			if db.GetTimeline() != 0 {
				tl = strconv.FormatUint(uint64(db.GetTimeline()), 10)
			}
			switch db.GetRole() {
			case hapb.DatabaseRole_DATABASE_ROLE_PRIMARY:
				pos = view.LSNOrDash(db.GetCurrentLsn())
			case hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
				pos = view.LSNOrDash(db.GetReplayLsn())
				if b, ok := r.standbyLag(n.name); ok {
					lag = view.FormatBytes(b)
				}
			}
		}
		cells = append(cells, []string{orDefault(view.Clean(n.name), "?"), n.role, dbWord, tl, pos, lag})
	}
	widths := make([]int, len(head))
	for _, row := range cells {
		for i, c := range row {
			if i == 0 && len(c) > maxNodeColumn {
				continue
			}
			widths[i] = max(widths[i], len(c))
		}
	}
	format := func(row []string) []string {
		segs := make([]string, 0, len(row))
		for i, c := range row {
			switch {
			case i == 0:
				segs = append(segs, fmt.Sprintf("%-*s", widths[0], c))
			case i == 3: // the timeline is a number: right-aligned
				segs = append(segs, fmt.Sprintf("  %*s", widths[i], c))
			default:
				segs = append(segs, fmt.Sprintf("  %-*s", widths[i], c))
			}
		}
		return segs
	}
	r.Fields(2, 4+widths[0], format(head)...)
	for i, n := range rows {
		row := cells[i+1]
		if len(row[0]) > widths[0] {
			r.Wrapped(2, 4, row[0])
			row = append([]string{""}, row[1:]...)
		}
		segs := format(row)
		if n.role == "Offline" || n.role == "Stopped" {
			r.paint(ansiYellow, func() { r.Fields(2, 4+widths[0], segs...) })
		} else {
			r.Fields(2, 4+widths[0], segs...)
		}
		r.nodeDetails(n)
	}
}

// nodeDetails writes the line under a node's row: this node or not, its
// addresses, whether it holds the VIP, or why it cannot be reached.
func (r *statusRenderer) nodeDetails(n nodeRow) {
	var parts []string
	if n.local {
		parts = append(parts, "this node")
	}
	if a := view.Clean(n.public); a != "" {
		parts = append(parts, "public "+a)
	}
	if a := view.Clean(n.heartbeat); a != "" {
		parts = append(parts, "heartbeat "+a)
	}
	if n.st.GetHoldsVip() {
		parts = append(parts, "holds the VIP")
	}
	if len(parts) > 0 {
		r.Fields(4, 6, view.List(parts, ", ")...)
	}
	if !n.reachable {
		reason := "peer unreachable: " + orDefault(view.Clean(n.peer.GetError()), "no reason given")
		if t := n.peer.GetLastContact(); t != nil {
			reason += " (last contact " + r.ago(t) + ")"
		}
		r.Wrapped(4, 6, reason)
	}
	if e := view.Clean(n.st.GetDatabase().GetError()); n.reachable && e != "" {
		r.Wrapped(4, 6, "database error: "+e)
	}
}

func (r *statusRenderer) links() {
	ls := r.s.GetLinks()
	if len(ls) == 0 {
		r.label("Heartbeat", "no links")
		return
	}
	r.Wrapped(0, 2, "Heartbeat:")
	width := 0
	for _, l := range ls {
		width = max(width, min(len(view.Clean(l.GetName())), 12))
	}
	for _, l := range ls {
		segs := []string{fmt.Sprintf("%-*s", width, orDefault(view.Clean(l.GetName()), "?"))}
		if a, b := view.Clean(l.GetLocalAddr()), view.Clean(l.GetPeerAddr()); a != "" || b != "" {
			segs = append(segs, "  "+orDefault(a, "?")+" -> "+orDefault(b, "?"))
		}
		colour := ansiGreen
		if l.GetConnected() {
			segs = append(segs, "  connected")
			if rtt := l.GetRtt(); rtt != nil {
				segs = append(segs, fmt.Sprintf("  rtt %.1f ms", float64(rtt.AsDuration().Microseconds())/1000))
			}
			if l.GetMissed() > 0 {
				segs = append(segs, fmt.Sprintf(", %d missed", l.GetMissed()))
			}
		} else {
			colour = ansiYellow
			if t := l.GetLastSeen(); t != nil {
				segs = append(segs, "  disconnected for "+view.FormatDuration(r.now.Sub(t.AsTime())))
			} else {
				segs = append(segs, "  disconnected (never heard)")
			}
		}
		r.paint(colour, func() { r.Fields(2, 4, segs...) })
	}
}

// replication writes one line per row of pg_stat_replication on a
// reachable primary: who streams to whom, as PostgreSQL sees it.
func (r *statusRenderer) replication() {
	r.Wrapped(0, 2, "Replication:")
	found := false
	for _, p := range r.primaries() {
		db := p.st.GetDatabase()
		for _, row := range db.GetReplicas() {
			// The address the standby really streams from (its own
			// receiver's sender_host: the heartbeat link when replication
			// runs over it), else the primary's listen or public address.
			src := orDefault(view.Clean(p.name), "?")
			if a := view.Clean(orDefault(view.SenderAddr(r.s, row.GetApplicationName()), orDefault(db.GetListenAddr(), p.public))); a != "" {
				src += " (" + a + ")"
			}
			dst := "==> " + orDefault(view.Clean(row.GetApplicationName()), "?")
			if a := view.Clean(row.GetClientAddr()); a != "" {
				dst += " (" + a + ")"
			}
			state := "  " + orDefault(view.Clean(row.GetState()), "?") + "  lag " + view.FormatBytes(row.GetLagBytes())
			if ss := view.Clean(row.GetSyncState()); ss != "" {
				state += "  " + ss
			}
			r.Fields(2, 6, src, " "+dst, state)
			found = true
		}
	}
	if found {
		return
	}
	r.Wrapped(2, 4, "none: no primary reports a standby streaming from it")
	if wr := r.s.GetLocal().GetDatabase().GetWalReceiver(); wr != nil {
		from := orDefault(view.Clean(wr.GetSenderHost()), "?")
		r.Wrapped(2, 4, "this node's WAL receiver: "+orDefault(view.Clean(wr.GetStatus()), "?")+" from "+from)
	}
}

func (r *statusRenderer) vip() {
	v := r.s.GetCluster().GetVip()
	if v.GetAddress() == "" {
		r.label("VIP", "none")
		return
	}
	holder := "held by nobody"
	if h := view.Clean(v.GetHolder()); h != "" {
		holder = "held by " + h
		if v.GetSince() != nil {
			holder += " since " + r.clock(v.GetSince())
		}
	}
	r.label("VIP", view.Clean(v.GetAddress())+" "+holder)
}

func (r *statusRenderer) maintenance() {
	if r.s.GetCluster().GetMaintenance() {
		r.paint(ansiYellow, func() { r.label("Maintenance", "on: automatic failover is paused") })
		return
	}
	r.label("Maintenance", "off")
}

func (r *statusRenderer) lastEvent() {
	evs := r.s.GetRecentEvents()
	if len(evs) == 0 {
		r.label("Last event", "none")
		return
	}
	e := evs[0]
	t := "--:--:--"
	if e.GetTime() != nil {
		t = r.clock(e.GetTime())
	}
	line := t + " " + orDefault(view.Clean(e.GetNode()), "?") + " " + orDefault(view.Clean(e.GetKind()), "?") + ":"
	if d := view.Clean(e.GetDetail()); d != "" {
		line += " " + d
	}
	r.label("Last event", line)
}

func (r *statusRenderer) ago(t *timestamppb.Timestamp) string {
	return view.FormatAgo(r.now.Sub(t.AsTime()))
}

// clock gives t's time of day in now's location.
func (r *statusRenderer) clock(t *timestamppb.Timestamp) string {
	return t.AsTime().In(r.now.Location()).Format("15:04:05")
}

// paint runs write and colours the lines it wrote, when colour is on.
func (r *statusRenderer) paint(colour string, write func()) {
	start := r.Len()
	write()
	if r.color {
		r.Recolour(start, func(l string) string { return colour + l + ansiReset })
	}
}

// label writes "Label:" padded to labelWidth, then value wrapped under it.
func (r *statusRenderer) label(name, value string) {
	head := ""
	if name != "" {
		head = name + ":"
	}
	r.Wrapped(0, labelWidth, fmt.Sprintf("%-*s%s", labelWidth, head, value))
}

// writeWrapped writes an ASCII line to w wrapped at StatusWidth.
func writeWrapped(w io.Writer, line string, hang int) {
	for _, l := range view.WrapLine(line, hang) {
		fmt.Fprintln(w, l)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orQ(s string) string { return orDefault(s, "?") }
