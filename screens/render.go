package screens

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

// The smallest terminal the dashboard draws itself in; below it says so.
const (
	minWidth  = 60
	minHeight = 16
)

// Fixed rows: the header (name, banner, VIP), the node boxes and the footer.
const (
	headerRows = 3
	boxRows    = 6
	footerRows = 1
)

// maxSpark bounds a sparkline's width on very wide terminals.
const maxSpark = 60

// render draws the whole frame at the current size. No line is wider than
// the terminal and there are never more lines than its height.
func (d *Dashboard) render() string {
	W, H := d.width, d.height
	if W < minWidth || H < minHeight {
		msg := fmt.Sprintf("The terminal (%dx%d) is too small for the dashboard: it needs %dx%d. Press q to leave.", W, H, minWidth, minHeight)
		return strings.Join(fit(view.WrapWords(msg, max(W, 1)), W, H), "\n")
	}
	lines := d.header(W)
	lines = append(lines, d.nodes(W)...)

	// The events are drawn only where they show: the history may be long.
	contents := [numPanels][]string{d.heartbeat(W), d.replication(W), d.system(W), nil}
	var wants [numPanels]int
	for p := range contents {
		wants[p] = len(contents[p])
	}
	wants[panelEvents] = max(len(d.events), 1)
	rows := allocate(wants, H-len(lines)-footerRows-int(numPanels))
	for p := panel(0); p < numPanels; p++ {
		n := wants[p]
		d.lens[p], d.rows[p] = n, rows[p]
		off := min(d.scroll[p], max(n-rows[p], 0))
		d.scroll[p] = off
		lines = append(lines, d.panelTitle(p, W, off, rows[p], n))
		if p == panelEvents {
			lines = append(lines, d.eventLines(off, rows[p])...)
		} else {
			lines = append(lines, contents[p][off:off+rows[p]]...)
		}
	}
	lines = append(lines, d.footer(W))

	switch d.ov {
	case overlayHelp:
		lines = d.place(lines, W, d.helpBox(W))
	case overlayConfirm:
		lines = d.place(lines, W, d.confirmBox(W))
	case overlayProgress:
		lines = d.place(lines, W, d.progressBox(W, H))
	}
	return strings.Join(fit(lines, W, H), "\n")
}

// scrollLimit is how far panel p can scroll at the last drawn size.
func (d *Dashboard) scrollLimit(p panel) int { return max(d.lens[p]-d.rows[p], 0) }

// allocate shares avail rows between the panels' contents: a row each
// first, then up to three for the events, then everything the heartbeat,
// replication and system panels want, then the rest to the events.
func allocate(wants [numPanels]int, avail int) [numPanels]int {
	var rows [numPanels]int
	give := func(p panel, upTo int) {
		n := min(upTo-rows[p], avail)
		if n > 0 {
			rows[p] += n
			avail -= n
		}
	}
	for p := panel(0); p < numPanels; p++ {
		give(p, min(wants[p], 1))
	}
	give(panelEvents, min(wants[panelEvents], 3))
	for p := panel(0); p < panelEvents; p++ {
		give(p, wants[p])
	}
	give(panelEvents, wants[panelEvents])
	return rows
}

// fit cuts every line to w columns and keeps at most h lines.
func fit(lines []string, w, h int) []string {
	if len(lines) > h {
		lines = lines[:max(h, 0)]
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > w {
			lines[i] = ansi.Truncate(l, w, "")
		}
	}
	return lines
}

// pad cuts or pads s (which may carry styles) to exactly w columns.
func pad(s string, w int) string {
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "")
	}
	return s + strings.Repeat(" ", w-n)
}

// ---- header -----------------------------------------------------------

func (d *Dashboard) header(W int) []string {
	s := d.snap
	name := view.Clean(s.GetLocal().GetName())
	if name == "" {
		name = "this node"
	}
	top := " " + d.st.bold.Render(name)
	if s != nil {
		top += "  " + d.st.roleBadge(view.RoleWord(s.GetLocal().GetRole()))
	}
	if c := view.Clean(s.GetCluster().GetName()); c != "" {
		top += "  cluster " + d.st.bold.Render(c)
	}
	if e := s.GetCluster().GetEpoch(); e > 0 {
		top += d.st.dim.Render(fmt.Sprintf("  epoch %d", e))
	}
	text, st := d.banner()
	return []string{top, " " + st.Render(text), " " + d.vipLine()}
}

// banner is the health sentence under the title and its style.
func (d *Dashboard) banner() (string, lipgloss.Style) {
	if d.agentErr != nil {
		since := view.FormatDuration(d.now().Sub(d.errSince))
		return "Agent not answering (" + since + ", retrying): " + view.Clean(errText(d.agentErr)), d.st.bad
	}
	if d.snap == nil {
		return "Waiting for the agent's first snapshot...", d.st.dim
	}
	c := d.snap.GetCluster()
	if to := view.Clean(c.GetHandoverTo()); to != "" {
		from := view.Clean(c.GetHandoverFrom())
		if from == "" {
			from = "the Active node"
		}
		return "Handover in progress: " + from + " hands the Active role to " + to, d.st.warn
	}
	switch c.GetHealth() {
	case hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED:
		return "Stand-alone: HA is not enabled on this node", d.st.warn
	case hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING:
		return "Cluster is not running on this node", d.st.bad
	}
	if c.GetMaintenance() {
		return "Maintenance mode: automatic failover paused", d.st.warn
	}
	switch c.GetHealth() {
	case hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY:
		return "The cluster is healthy", d.st.ok
	case hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED:
		reason := view.Clean(c.GetHealthReason())
		if reason == "" {
			reason = "no reason given"
		}
		return "The cluster is degraded: " + reason, d.st.bad
	}
	return "Cluster health unknown", d.st.dim
}

func (d *Dashboard) vipLine() string {
	if d.snap == nil {
		return ""
	}
	c := d.snap.GetCluster()
	v := c.GetVip()
	if v.GetAddress() == "" {
		if c.GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED {
			return "VIP  none: this node serves on its own address"
		}
		return "VIP  none configured"
	}
	line := "VIP  " + d.st.bold.Render(view.Clean(v.GetAddress())) + "  "
	h := view.Clean(v.GetHolder())
	if h == "" {
		return line + d.st.bad.Render("held by nobody")
	}
	line += "held by " + d.st.ok.Render(h)
	if t := v.GetSince(); t != nil {
		line += " since " + d.clock(t) + " (" + view.FormatDuration(d.now().Sub(t.AsTime())) + ")"
	}
	return line
}

// ---- nodes ------------------------------------------------------------

// side is one of the two data nodes as the dashboard draws it.
type side struct {
	name      string
	local     bool
	st        *hapb.NodeStatus // nil when nothing is known of it
	reachable bool
	err       string
	member    *hapb.Member
	none      string // set when there is no such node (stand-alone)
}

func (s side) publicAddr() string {
	if a := s.st.GetPublicAddr(); a != "" {
		return a
	}
	return s.member.GetPublicAddr()
}

func (s side) heartbeatAddr() string {
	if a := s.st.GetHeartbeatAddr(); a != "" {
		return a
	}
	return s.member.GetHeartbeatAddr()
}

// live says whether the side's status is current (this node, or a peer that
// answers); a peer's old status is never drawn as a fact.
func (s side) live() bool { return s.st != nil && (s.local || s.reachable) }

// sides gives the two data nodes in the order of the cluster's members, so
// both nodes' dashboards draw the pair the same way round; this node is on
// the left when the order is unknown.
func (d *Dashboard) sides() (side, side) {
	s := d.snap
	members := map[string]*hapb.Member{}
	order := map[string]int{}
	for i, m := range s.GetCluster().GetMembers() {
		members[m.GetName()] = m
		order[m.GetName()] = i
	}
	loc := side{name: s.GetLocal().GetName(), local: true, st: s.GetLocal(), reachable: true}
	loc.member = members[loc.name]
	p := s.GetPeer()
	if p == nil {
		return loc, side{none: "HA is not enabled on this node"}
	}
	peer := side{name: p.GetName(), reachable: p.GetReachable(), err: p.GetError(), st: p.GetStatus()}
	if peer.name == "" {
		peer.name = p.GetStatus().GetName()
	}
	peer.member = members[peer.name]
	li, lok := order[loc.name]
	pi, pok := order[peer.name]
	if lok && pok && pi < li {
		return peer, loc
	}
	return loc, peer
}

func roleTitle(s side) string {
	switch {
	case s.none != "":
		return "No peer"
	case !s.live():
		return "Offline"
	}
	switch s.st.GetRole() {
	case hapb.NodeRole_NODE_ROLE_ACTIVE:
		return "Active Server"
	case hapb.NodeRole_NODE_ROLE_STANDBY:
		return "Standby Server"
	case hapb.NodeRole_NODE_ROLE_STOPPED:
		return "Stopped Server"
	case hapb.NodeRole_NODE_ROLE_STANDALONE:
		return "Stand-alone Server"
	case hapb.NodeRole_NODE_ROLE_WITNESS:
		return "Witness"
	}
	return "Server"
}

func (d *Dashboard) titleStyle(s side) lipgloss.Style {
	switch {
	case s.none != "":
		return d.st.dim
	case !s.live():
		return d.st.bad
	}
	switch s.st.GetRole() {
	case hapb.NodeRole_NODE_ROLE_ACTIVE:
		return d.st.ok
	case hapb.NodeRole_NODE_ROLE_STANDBY:
		return d.st.focus
	case hapb.NodeRole_NODE_ROLE_STOPPED:
		return d.st.bad
	}
	return d.st.warn
}

// nodes draws the two boxes side by side.
func (d *Dashboard) nodes(W int) []string {
	if d.snap == nil {
		out := make([]string, boxRows)
		out[2] = d.st.dim.Render("   (no data yet)")
		return out
	}
	l, r := d.sides()
	lw := W / 2
	lb, rb := d.box(l, lw), d.box(r, W-lw)
	out := make([]string, boxRows)
	for i := range out {
		out[i] = lb[i] + rb[i]
	}
	return out
}

func (d *Dashboard) box(s side, w int) []string {
	inner := w - 4
	var body []string
	switch {
	case s.none != "":
		body = []string{d.st.dim.Render(s.none)}
	default:
		who := " (peer)"
		if s.local {
			who = " (this node)"
		}
		head := d.st.bold.Render(orQ(view.Clean(s.name))) + who
		if s.live() && s.st.GetHoldsVip() {
			head += " " + d.st.ok.Render("VIP")
		}
		body = append(body, head,
			"public    "+orDash(view.Clean(s.publicAddr())),
			"heartbeat "+orDash(view.Clean(s.heartbeatAddr())))
		body = append(body, d.dbLine(s))
	}
	title := roleTitle(s)
	fill := max(w-2-len(title)-4, 0)
	out := []string{d.st.tl + d.st.h + " " + d.titleStyle(s).Render(title) + " " + strings.Repeat(d.st.h, fill+1) + d.st.tr}
	for i := 0; i < boxRows-2; i++ {
		line := ""
		if i < len(body) {
			line = body[i]
		}
		out = append(out, d.st.v+" "+pad(line, inner)+" "+d.st.v)
	}
	out = append(out, d.st.bl+strings.Repeat(d.st.h, max(w-2, 0))+d.st.br)
	return out
}

func (d *Dashboard) dbLine(s side) string {
	if !s.live() {
		e := view.Clean(s.err)
		if e == "" {
			e = "no answer"
		}
		return d.st.bad.Render("unreachable: ") + e
	}
	db := s.st.GetDatabase()
	if db == nil {
		if s.st.GetRole() == hapb.NodeRole_NODE_ROLE_WITNESS {
			return "database  none"
		}
		return "database  no status"
	}
	if e := view.Clean(db.GetError()); e != "" && db.GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY && db.GetRole() != hapb.DatabaseRole_DATABASE_ROLE_STANDBY {
		return "database  " + d.st.bad.Render(db.GetRole().Word()) + ": " + e
	}
	line := "database  " + db.GetRole().Word()
	if tl := db.GetTimeline(); tl > 0 {
		line += ", timeline " + strconv.FormatUint(uint64(tl), 10)
	}
	return line
}

// ---- panels -----------------------------------------------------------

func (d *Dashboard) panelTitle(p panel, W, off, rows, n int) string {
	info := ""
	if n > rows && rows > 0 {
		info = fmt.Sprintf(" %d-%d of %d ", off+1, off+rows, n)
	}
	if p == d.focus {
		head := d.st.hFocus + d.st.hFocus + " [" + panelTitles[p] + "]" + info + " "
		return d.st.focus.Render(head + strings.Repeat(d.st.hFocus, max(W-ansi.StringWidth(head), 0)))
	}
	head := d.st.h + d.st.h + " " + panelTitles[p] + " " + info
	return d.st.dim.Render(head + strings.Repeat(d.st.h, max(W-ansi.StringWidth(head), 0)))
}

// heartbeat: one line per link, with the RTT sparkline of the last minute.
func (d *Dashboard) heartbeat(W int) []string {
	links := d.snap.GetLinks()
	if len(links) == 0 {
		if d.snap.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED {
			return []string{" no heartbeat: HA is not enabled on this node"}
		}
		return []string{" no heartbeat links reported"}
	}
	now := d.now()
	var out []string
	for _, l := range links {
		state := d.st.ok.Render(pad("connected", 12))
		if !l.GetConnected() {
			state = d.st.bad.Render(pad("disconnected", 12))
		}
		rtt := "-"
		if l.GetRtt() != nil {
			rtt = fmt.Sprintf("%.1f ms", float64(l.GetRtt().AsDuration().Microseconds())/1000)
		}
		last := "no beat yet"
		if t := l.GetLastSeen(); t != nil {
			last = "last " + view.FormatAgo(now.Sub(t.AsTime()))
		}
		head := " " + pad(view.Clean(l.GetName()), 10) + " " + state + " " + pad(rtt, 9) + " "
		tail := fmt.Sprintf("  missed %d  %s", l.GetMissed(), last)
		width := min(W-ansi.StringWidth(head)-len(tail), maxSpark)
		spark := ""
		if r := d.links[l.GetName()]; r != nil && width > 0 {
			spark = d.st.focus.Render(r.spark(now, width, d.st.levels, d.st.broken))
		} else if width > 0 {
			spark = strings.Repeat(" ", width)
		}
		out = append(out, head+spark+tail)
	}
	return out
}

// replication draws who streams to whom, from pg_stat_replication of the
// node whose database is primary (never from what an agent believes): the
// left node of the pair stays on the left, so the arrow turns around when
// the direction does.
func (d *Dashboard) replication(W int) []string {
	if d.snap == nil {
		return nil
	}
	l, r := d.sides()
	var out []string
	for i, src := range []side{l, r} {
		if !src.live() || src.st.GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY {
			continue
		}
		db := src.st.GetDatabase()
		for _, row := range db.GetReplicas() {
			// The address the standby really streams from, as its WAL
			// receiver reports it (the heartbeat link when replication
			// runs over it), else the primary's public address.
			a := nameAddr(src.name, cmp.Or(view.SenderAddr(d.snap, row.GetApplicationName()), src.publicAddr()))
			b := nameAddr(row.GetApplicationName(), row.GetClientAddr())
			state := replState(row.GetState())
			arrowStyle := d.st.ok
			if state != "streaming" {
				arrowStyle = d.st.warn
			}
			var line string
			if i == 0 {
				line = " " + d.st.bold.Render(a) + "  " + arrowStyle.Render(d.st.arrowR) + "  " + d.st.bold.Render(b)
			} else {
				line = " " + d.st.bold.Render(b) + "  " + arrowStyle.Render(d.st.arrowL) + "  " + d.st.bold.Render(a)
			}
			detail := []string{state}
			if ss := view.Clean(row.GetSyncState()); ss != "" {
				detail = append(detail, ss)
			}
			detail = append(detail, "lag "+view.FormatBytes(row.GetLagBytes())+" / "+seconds(row.GetReplayLag()))
			if tl := db.GetTimeline(); tl > 0 {
				detail = append(detail, "timeline "+strconv.FormatUint(uint64(tl), 10))
			}
			if rl := row.GetReplayLsn(); rl > 0 {
				detail = append(detail, "replayed "+view.FormatLSN(rl))
			}
			out = append(out, line, "   "+strings.Join(detail, ", "))
		}
	}
	if len(out) > 0 {
		return out
	}
	if d.snap.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED {
		return []string{" none: HA is not enabled on this node"}
	}
	out = append(out, " "+d.st.bad.Render("no replication")+": no primary reports a standby (pg_stat_replication is empty)")
	for _, s := range []side{l, r} {
		if !s.live() || s.st.GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_STANDBY {
			continue
		}
		line := "   " + orQ(view.Clean(s.name)) + ": standby"
		if wr := s.st.GetDatabase().GetWalReceiver(); wr != nil {
			line += ", WAL receiver " + orQ(view.Clean(wr.GetStatus())) + " from " +
				net.JoinHostPort(orQ(view.Clean(wr.GetSenderHost())), strconv.Itoa(int(wr.GetSenderPort())))
		} else {
			line += ", no WAL receiver"
		}
		out = append(out, line)
	}
	return out
}

func nameAddr(name, addr string) string {
	s := orQ(view.Clean(name))
	if a := view.Clean(addr); a != "" {
		s += " (" + a + ")"
	}
	return s
}

func replState(s string) string {
	switch s {
	case "catchup":
		return "catch-up"
	case "":
		return "stopped"
	}
	return view.Clean(s)
}

// system: one line per node with memory, disk, versions and uptime; the
// fields that do not fit the width are left out from the right.
func (d *Dashboard) system(W int) []string {
	if d.snap == nil {
		return nil
	}
	l, r := d.sides()
	var out []string
	for _, s := range []side{l, r} {
		if s.none != "" {
			continue
		}
		head := " " + pad(orQ(view.Clean(s.name)), 16)
		if !s.live() {
			out = append(out, head+d.st.dim.Render("no figures: unreachable"))
			continue
		}
		var fields []string
		if sys := s.st.GetSystem(); sys != nil {
			if sys.GetMemTotalBytes() > 0 {
				fields = append(fields, "mem "+view.FormatBytes(sys.GetMemAvailableBytes())+" free of "+view.FormatBytes(sys.GetMemTotalBytes()))
			}
			if sys.GetDiskTotalBytes() > 0 {
				fields = append(fields, "disk "+view.FormatBytes(sys.GetDiskFreeBytes())+" free of "+view.FormatBytes(sys.GetDiskTotalBytes()))
			}
		}
		if v := view.Clean(s.st.GetDatabase().GetServerVersion()); v != "" {
			fields = append(fields, "PostgreSQL "+v)
		}
		if u := s.st.GetSystem().GetHostUptime(); u != nil {
			fields = append(fields, "up "+view.FormatDuration(u.AsDuration()))
		}
		if v := view.Clean(s.st.GetAgentVersion()); v != "" {
			fields = append(fields, "hactl "+v)
		}
		if sys := s.st.GetSystem(); sys != nil {
			fields = append(fields, "load "+strconv.FormatFloat(sys.GetLoad1(), 'f', 2, 64))
		}
		line := head
		for i, f := range fields {
			sep := ", "
			if i == 0 {
				sep = ""
			}
			if ansi.StringWidth(line)+len(sep)+len(f) > W {
				break
			}
			line += sep + f
		}
		if len(fields) == 0 {
			line += d.st.dim.Render("no figures yet")
		}
		out = append(out, line)
	}
	return out
}

// eventLines draws n events of the accumulated history from off, newest
// first.
func (d *Dashboard) eventLines(off, n int) []string {
	if len(d.events) == 0 {
		return []string{d.st.dim.Render(" no events yet")}[:min(n, 1)]
	}
	evs := d.events[min(off, len(d.events)):min(off+n, len(d.events))]
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		t := "--:--:--"
		if e.GetTime() != nil {
			t = d.clock(e.GetTime())
		}
		line := " " + d.st.dim.Render(t) + " " + orQ(view.Clean(e.GetNode())) + " " + d.st.bold.Render(orQ(view.Clean(e.GetKind()))) + ":"
		if det := view.Clean(e.GetDetail()); det != "" {
			line += " " + det
		}
		out = append(out, line)
	}
	return out
}

func (d *Dashboard) footer(W int) string {
	if d.notice != "" {
		return " " + d.st.warn.Render(d.notice)
	}
	scroll := "Up/Down PgUp/PgDn scroll"
	if !d.st.ascii {
		scroll = "↑↓ PgUp/PgDn scroll"
	}
	k := d.st.key.Render
	line := " " + k("q") + " leave  " + k("?") + " help  " + k("Tab") + " focus  " + scroll
	if d.admin {
		line += "  " + k("s") + " stop  " + k("S") + " start"
	}
	if d.op != nil && !d.op.done && d.ov != overlayProgress {
		line += "  " + d.st.warn.Render(d.op.kind.verb()+"...")
	}
	return line
}

// ---- overlays ---------------------------------------------------------

// place draws box over the middle of lines, whole lines at a time.
func (d *Dashboard) place(lines []string, W int, box []string) []string {
	y := max((len(lines)-len(box))/2, 0)
	x := 0
	if len(box) > 0 {
		x = max((W-ansi.StringWidth(box[0]))/2, 0)
	}
	for i, b := range box {
		if y+i >= len(lines) {
			break
		}
		lines[y+i] = strings.Repeat(" ", x) + b
	}
	return lines
}

// frameBox draws body in a box of width w with title in its top border.
func (d *Dashboard) frameBox(title string, body []string, w int) []string {
	inner := w - 4
	fill := max(w-4-ansi.StringWidth(title)-1, 0)
	out := []string{d.st.tl + d.st.h + " " + d.st.bold.Render(title) + " " + strings.Repeat(d.st.h, fill) + d.st.tr}
	for _, l := range body {
		out = append(out, d.st.v+" "+pad(l, inner)+" "+d.st.v)
	}
	return append(out, d.st.bl+strings.Repeat(d.st.h, w-2)+d.st.br)
}

func overlayWidth(W int) int { return min(W-4, 72) }

func (d *Dashboard) helpBox(W int) []string {
	body := []string{
		"q, Esc       back to the prompt",
		"?            this help",
		"Tab          move the focus to the next panel (Shift+Tab back)",
		"Up, Down     scroll the focused panel (the events at first)",
		"PgUp, PgDn   scroll a page; Home, End: newest, oldest",
	}
	if d.admin {
		body = append(body,
			"s            stop the cluster on this node (asks first)",
			"S, t         start the cluster on this node (asks first)")
	} else {
		body = append(body, "             (stop and start need the admin role)")
	}
	body = append(body, "", "The view follows the agent's Watch stream; it redraws on change.", "Press any key to close.")
	return d.frameBox("Help", body, overlayWidth(W))
}

func (d *Dashboard) confirmBox(W int) []string {
	node := orQ(view.Clean(d.snap.GetLocal().GetName()))
	var title string
	var body []string
	if d.confirm == opStop {
		title = "Stop the cluster on " + node + "?"
		body = []string{
			"If this node is Active it first hands over to the other node",
			"(VIP and database move there), then its cluster services and",
			"its database stop. The agent stays up.",
			"",
			"Stop now? [y/N]",
		}
	} else {
		title = "Start the cluster on " + node + "?"
		body = []string{
			"This node rejoins the pair as Standby of the Active node and",
			"its database follows the Active node's.",
			"",
			"Start now? [y/N]",
		}
	}
	return d.frameBox(title, body, overlayWidth(W))
}

func (d *Dashboard) progressBox(W, H int) []string {
	op := d.op
	if op == nil {
		return nil
	}
	title := op.kind.verb() + " the cluster on " + orQ(view.Clean(d.snap.GetLocal().GetName()))
	var body []string
	for _, p := range op.steps {
		line := fmt.Sprintf("[%6.1fs] ", p.GetElapsed().AsDuration().Seconds()) + view.Clean(p.GetStep())
		if det := view.Clean(p.GetDetail()); det != "" {
			line += ": " + det
		}
		body = append(body, line)
	}
	if len(body) == 0 {
		body = append(body, "asking the agent...")
	}
	// Keep the newest steps when they do not all fit.
	if room := max(H-6, 3); len(body) > room {
		body = body[len(body)-room:]
	}
	body = append(body, "")
	switch {
	case !op.done:
		body = append(body, d.st.warn.Render("in progress")+"  (q leaves; the agent carries on)")
	case op.err != nil:
		msg := view.WrapWords("failed: "+view.Clean(errText(op.err)), overlayWidth(W)-4)
		msg[0] = d.st.bad.Render("failed:") + strings.TrimPrefix(msg[0], "failed:")
		body = append(body, msg...)
		body = append(body, "Enter closes.")
	default:
		body = append(body, d.st.ok.Render("done"), "Enter closes.")
	}
	return d.frameBox(title, body, overlayWidth(W))
}

// ---- helpers ----------------------------------------------------------

func (d *Dashboard) clock(t *timestamppb.Timestamp) string {
	return t.AsTime().In(d.now().Location()).Format("15:04:05")
}

func seconds(v *durationpb.Duration) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(v.AsDuration().Seconds(), 'f', 3, 64) + "s"
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortEvents(evs []*hapb.Event) {
	sort.SliceStable(evs, func(i, j int) bool {
		return evs[i].GetTime().AsTime().After(evs[j].GetTime().AsTime())
	})
}

// errText is what an operator reads of err: a gRPC status's own message
// (without the "rpc error: code = ..." prefix), else the error's text.
func errText(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Message()
	}
	return err.Error()
}
