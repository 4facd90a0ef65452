// Package view turns agent snapshots into what an operator reads: the status
// report of `hactl status` and the formatting shared by the console and the
// dashboard (LSNs, sizes, durations, role words). It is pure: no I/O but the
// writer it is given.
package view

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hapair/hapair/hactl/hapb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Width is the number of columns RenderStatus keeps every line within.
const Width = 80

// maxEvents is how many of Snapshot.RecentEvents RenderStatus prints.
const maxEvents = 5

// maxTextLines bounds how many lines one free-text value (an error, a health
// reason, an event detail) may take; the rest is cut and marked with "...".
const maxTextLines = 6

// RenderStatus writes the operator's view of s, as `hactl status` prints it:
// the cluster's health, this node, the peer, the direction of replication
// as PostgreSQL reports it, host figures and the newest events.
//
// The text is plain ASCII and no line is wider than Width columns: strings
// from the snapshot have control and non-ASCII characters escaped, and long
// lines wrap. Relative times are measured from now, and clock times are
// shown in now's location, so equal input gives equal output.
func RenderStatus(w io.Writer, s *hapb.Snapshot, now time.Time) error {
	if s == nil {
		return errors.New("render status: no snapshot")
	}
	r := &renderer{now: now}
	r.header(s.GetCluster())
	r.cluster(s)
	r.Blank()
	r.localBlock(s.GetLocal())
	r.Blank()
	r.peerBlock(s.GetPeer())
	r.Blank()
	r.replication(s)
	r.system(s)
	r.events(s.GetRecentEvents())
	_, err := io.WriteString(w, r.String())
	return err
}

// FormatLSN formats a WAL position as PostgreSQL does: the high and low 32
// bits in upper-case hexadecimal, separated by a slash (e.g. "0/3000148").
func FormatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn))
}

// FormatBytes formats n in binary units with one decimal ("1.5 KiB",
// "3.0 GiB"); below 1 KiB it gives whole bytes ("512 B"). Units beyond GiB
// (TiB, PiB, EiB) are used when a value needs them.
func FormatBytes(n uint64) string {
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n) / 1024
	i := 0
	// Move up a unit while the value would print as 1024.0 or more.
	for v >= 1023.95 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

// FormatDuration formats d compactly for an operator, truncating rather than
// rounding: "0.4s" and "9.9s" below ten seconds, then "42s", "3m05s",
// "5h03m" and "12d03h". A negative d gets a leading "-".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		if d == time.Duration(-1<<63) {
			d++ // -d would overflow
		}
		return "-" + FormatDuration(-d)
	}
	switch {
	case d < 10*time.Second:
		tenths := int64(d / (100 * time.Millisecond))
		return fmt.Sprintf("%d.%ds", tenths/10, tenths%10)
	case d < time.Minute:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int64(d/time.Minute), int64(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int64(d/time.Hour), int64(d%time.Hour/time.Minute))
	default:
		day := 24 * time.Hour
		return fmt.Sprintf("%dd%02dh", int64(d/day), int64(d%day/time.Hour))
	}
}

// FormatAgo says how long ago something happened, given the time elapsed
// since: "0.4s ago", "3m12s ago". A negative d, which only a clock step or
// skew between hosts produces, reads "2.0s in the future" so the skew shows.
func FormatAgo(d time.Duration) string {
	if d < 0 {
		if d == time.Duration(-1<<63) {
			d++
		}
		return FormatDuration(-d) + " in the future"
	}
	return FormatDuration(d) + " ago"
}

// RoleWord names a node's cluster role for an operator: "Active",
// "Standby", "Stopped", "Stand-alone", "Witness", or "Unknown" for an
// unspecified or unrecognised role.
func RoleWord(r hapb.NodeRole) string {
	switch r {
	case hapb.NodeRole_NODE_ROLE_ACTIVE:
		return "Active"
	case hapb.NodeRole_NODE_ROLE_STANDBY:
		return "Standby"
	case hapb.NodeRole_NODE_ROLE_STOPPED:
		return "Stopped"
	case hapb.NodeRole_NODE_ROLE_STANDALONE:
		return "Stand-alone"
	case hapb.NodeRole_NODE_ROLE_WITNESS:
		return "Witness"
	default:
		return "Unknown"
	}
}

// DatabaseRoleWord names what PostgreSQL says it is: "primary", "standby",
// "stopped", "not initialised", or "unknown".
func DatabaseRoleWord(r hapb.DatabaseRole) string { return r.Word() }

// HealthWord describes the cluster's health in words: "healthy",
// "degraded", "not running", "not enabled", or "" when unspecified. The
// reason for a degraded cluster is not included.
func HealthWord(h hapb.ClusterHealth) string {
	switch h {
	case hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY:
		return "healthy"
	case hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED:
		return "degraded"
	case hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING:
		return "not running"
	case hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED:
		return "not enabled"
	default:
		return ""
	}
}

// renderer accumulates the lines of one status report.
type renderer struct {
	Text
	now time.Time
}

func (r *renderer) header(c *hapb.ClusterView) {
	name := Clean(c.GetName())
	health := HealthWord(c.GetHealth())
	if c.GetHealth() != hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY && c.GetHealthReason() != "" {
		health += ": " + Clean(c.GetHealthReason())
	}
	switch {
	case name != "" && health != "":
		r.text(0, 2, "cluster "+name+": "+health)
	case name != "":
		r.text(0, 2, "cluster "+name)
	case health != "":
		r.text(0, 2, "cluster: "+health)
	default:
		r.text(0, 2, "cluster: unknown")
	}
}

// cluster prints the replicated facts: Active node, VIP holder, protection,
// maintenance, and the heartbeat per link.
func (r *renderer) cluster(s *hapb.Snapshot) {
	c := s.GetCluster()
	if a := Clean(c.GetActiveNode()); a != "" {
		r.text(2, 4, fmt.Sprintf("active: %s (epoch %d)", a, c.GetEpoch()))
	}
	if v := c.GetVip(); v.GetAddress() != "" {
		holder := "held by nobody"
		if h := Clean(v.GetHolder()); h != "" {
			holder = "held by " + h
			if v.GetSince() != nil {
				holder += " since " + r.clock(v.GetSince())
			}
		}
		r.text(2, 4, "vip: "+Clean(v.GetAddress())+" "+holder)
	}
	if c.GetMaintenance() {
		r.text(2, 4, "maintenance: on (automatic failover paused)")
	}
	if p := Clean(c.GetProtection()); p != "" {
		r.text(2, 4, "protection: "+p)
	}
	for _, l := range s.GetLinks() {
		state := "disconnected"
		if l.GetConnected() {
			state = "connected"
		}
		seg := []string{"heartbeat " + Clean(l.GetName()) + ": " + state}
		if l.GetRtt() != nil {
			seg = append(seg, fmt.Sprintf(", rtt %.1f ms", float64(l.GetRtt().AsDuration().Microseconds())/1000))
		}
		if l.GetLastSeen() != nil {
			seg = append(seg, ", last beat "+r.ago(l.GetLastSeen()))
		}
		seg = append(seg, fmt.Sprintf(", %d missed", l.GetMissed()))
		r.Fields(2, 4, seg...)
	}
}

func (r *renderer) localBlock(n *hapb.NodeStatus) {
	name := Clean(n.GetName())
	if name == "" {
		name = "unnamed"
	}
	if n == nil {
		r.Fields(0, 2, name+" (this node): no status")
		return
	}
	r.Fields(0, 2, name+" (this node): "+RoleWord(n.GetRole()))
	r.nodeBody(n)
}

func (r *renderer) peerBlock(p *hapb.PeerView) {
	if p.GetName() == "" {
		r.Fields(0, 2, "peer: none configured")
		return
	}
	title := Clean(p.GetName()) + " (peer"
	if p.GetAgentAddr() != "" {
		title += ", via " + Clean(p.GetAgentAddr())
	}
	title += ")"
	if !p.GetReachable() {
		r.Fields(0, 2, title)
		reason := Clean(p.GetError())
		if reason == "" {
			reason = "(no reason given)"
		}
		r.text(2, 4, "unreachable: "+reason)
		if p.GetLastContact() != nil {
			r.Fields(2, 4, "last contact "+r.ago(p.GetLastContact()))
		}
		return
	}
	if p.GetStatus() == nil {
		r.Fields(0, 2, title+": no status received")
		return
	}
	r.Fields(0, 2, title+": "+RoleWord(p.GetStatus().GetRole()))
	r.nodeBody(p.GetStatus())
}

// nodeBody writes a node's addresses, agent and database, indented by two.
func (r *renderer) nodeBody(n *hapb.NodeStatus) {
	var addrs []string
	if a := Clean(n.GetPublicAddr()); a != "" {
		addrs = append(addrs, "public "+a)
	}
	if a := Clean(n.GetHeartbeatAddr()); a != "" {
		addrs = append(addrs, "heartbeat "+a)
	}
	if len(addrs) > 0 {
		r.Fields(2, 4, List(addrs, ", ")...)
	}

	var agent []string
	if v := Clean(n.GetAgentVersion()); v != "" {
		agent = append(agent, "agent "+v)
	}
	if t := n.GetAgentStartedAt(); t != nil {
		up := "up " + FormatDuration(r.now.Sub(t.AsTime()))
		if len(agent) == 0 {
			up = "agent " + up
		}
		agent = append(agent, up)
	}
	if len(agent) > 0 {
		r.Fields(2, 4, List(agent, ", ")...)
	}

	r.database(n)
}

func (r *renderer) database(n *hapb.NodeStatus) {
	db := n.GetDatabase()
	if db == nil {
		if n.GetRole() == hapb.NodeRole_NODE_ROLE_WITNESS {
			r.Fields(2, 4, "database: none")
		} else {
			r.Fields(2, 4, "database: no status")
		}
		return
	}
	segs := []string{"database: " + DatabaseRoleWord(db.GetRole())}
	if db.GetTimeline() != 0 {
		segs = append(segs, "timeline "+strconv.FormatUint(uint64(db.GetTimeline()), 10))
	}
	if v := Clean(db.GetServerVersion()); v != "" {
		segs = append(segs, "PostgreSQL "+v)
	}
	if a := listenAddr(db); a != "" {
		segs = append(segs, "listen "+a)
	}
	r.Fields(2, 4, List(segs, ", ")...)

	switch db.GetRole() {
	case hapb.DatabaseRole_DATABASE_ROLE_PRIMARY:
		r.Fields(2, 4, "wal: current "+LSNOrDash(db.GetCurrentLsn()))
	case hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
		last := "never"
		if t := db.GetLastReplayAt(); t != nil {
			last = r.clock(t) + " (" + r.ago(t) + ")"
		}
		r.Fields(2, 4,
			"wal: received "+LSNOrDash(db.GetReceiveLsn()),
			"  replayed "+LSNOrDash(db.GetReplayLsn()),
			"  last replay "+last)
	}

	if wr := db.GetWalReceiver(); wr != nil {
		status := Clean(wr.GetStatus())
		if status == "" {
			status = "?"
		}
		from := net.JoinHostPort(orQ(Clean(wr.GetSenderHost())), strconv.Itoa(int(wr.GetSenderPort())))
		r.Fields(2, 4,
			"receiver: "+status+" from "+from,
			" slot "+orQ(Clean(wr.GetSlotName())),
			" timeline "+strconv.FormatUint(uint64(wr.GetReceivedTli()), 10),
			" flushed "+LSNOrDash(wr.GetFlushedLsn()))
	}

	for _, row := range db.GetReplicas() {
		head := "replica " + orQ(Clean(row.GetApplicationName()))
		if a := Clean(row.GetClientAddr()); a != "" {
			head += " (" + a + ")"
		}
		segs := []string{head + ": " + orQ(Clean(row.GetState()))}
		if s := Clean(row.GetSyncState()); s != "" {
			segs = append(segs, s)
		}
		segs = append(segs, "lag "+FormatBytes(row.GetLagBytes()), "replay lag "+seconds(row.GetReplayLag()))
		r.Fields(2, 6, List(segs, ", ")...)
		r.Fields(4, 6,
			"sent "+LSNOrDash(row.GetSentLsn()),
			"  write "+LSNOrDash(row.GetWriteLsn()),
			"  flush "+LSNOrDash(row.GetFlushLsn()),
			"  replay "+LSNOrDash(row.GetReplayLsn()))
	}

	if e := Clean(db.GetError()); e != "" {
		r.text(2, 4, "database: error: "+e)
	}
}

// replication writes one line per row of pg_stat_replication on a node
// whose database is primary: who streams to whom, as PostgreSQL sees it.
// The peer's rows count only while it is reachable; older ones may be stale.
func (r *renderer) replication(s *hapb.Snapshot) {
	type node struct {
		name string
		st   *hapb.NodeStatus
	}
	nodes := []node{{name: s.GetLocal().GetName(), st: s.GetLocal()}}
	if p := s.GetPeer(); p.GetReachable() && p.GetStatus() != nil {
		name := p.GetStatus().GetName()
		if name == "" {
			name = p.GetName()
		}
		nodes = append(nodes, node{name: name, st: p.GetStatus()})
	}
	found := false
	for _, n := range nodes {
		db := n.st.GetDatabase()
		if db.GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY {
			continue
		}
		src := orQ(Clean(n.name))
		addr := n.st.GetPublicAddr()
		if addr == "" {
			addr = db.GetListenAddr()
		}
		if a := Clean(addr); a != "" {
			src += " (" + a + ")"
		}
		for _, row := range db.GetReplicas() {
			dst := "==> " + orQ(Clean(row.GetApplicationName()))
			if a := Clean(row.GetClientAddr()); a != "" {
				dst += " (" + a + ")"
			}
			segs := []string{"replication: " + src, " " + dst,
				"  " + orQ(Clean(row.GetState())), "  lag " + FormatBytes(row.GetLagBytes())}
			if ss := Clean(row.GetSyncState()); ss != "" {
				segs = append(segs, "  "+ss)
			}
			r.Fields(0, 4, segs...)
			found = true
		}
	}
	if !found {
		r.Fields(0, 2, "replication: none")
	}
}

// system writes a line of host figures for each node that reported them.
func (r *renderer) system(s *hapb.Snapshot) {
	if s.GetLocal().GetSystem() != nil || s.GetPeer().GetReachable() && s.GetPeer().GetStatus().GetSystem() != nil {
		r.Blank()
	}
	r.systemLine(s.GetLocal().GetName(), s.GetLocal().GetSystem())
	if p := s.GetPeer(); p.GetReachable() {
		name := p.GetStatus().GetName()
		if name == "" {
			name = p.GetName()
		}
		r.systemLine(name, p.GetStatus().GetSystem())
	}
}

func (r *renderer) systemLine(name string, sys *hapb.SystemStatus) {
	if sys == nil {
		return
	}
	segs := []string{"system " + orQ(Clean(name)) + ":"}
	var parts []string
	if sys.GetMemTotalBytes() != 0 {
		parts = append(parts, "mem "+FormatBytes(sys.GetMemAvailableBytes())+"/"+
			FormatBytes(sys.GetMemTotalBytes())+" free")
	}
	if sys.GetDiskTotalBytes() != 0 {
		disk := "disk " + FormatBytes(sys.GetDiskFreeBytes()) + "/" +
			FormatBytes(sys.GetDiskTotalBytes()) + " free"
		if p := Clean(sys.GetDiskPath()); p != "" {
			disk += " on " + p
		}
		parts = append(parts, disk)
	}
	parts = append(parts, "load "+strconv.FormatFloat(sys.GetLoad1(), 'f', 2, 64))
	if u := sys.GetHostUptime(); u != nil {
		parts = append(parts, "host up "+FormatDuration(u.AsDuration()))
	}
	for i, p := range parts {
		// "on <path>" may move to the next line on its own.
		sep := ", "
		if i == 0 {
			sep = " "
		}
		if j := strings.Index(p, " on "); j >= 0 {
			segs = append(segs, sep+p[:j], p[j:])
		} else {
			segs = append(segs, sep+p)
		}
	}
	r.Fields(0, 4, segs...)
}

func (r *renderer) events(evs []*hapb.Event) {
	if len(evs) == 0 {
		return
	}
	if len(evs) > maxEvents {
		evs = evs[:maxEvents]
	}
	r.Blank()
	r.Fields(0, 2, "recent events:")
	for _, e := range evs {
		t := "--:--:--"
		if e.GetTime() != nil {
			t = r.clock(e.GetTime())
		}
		line := t + " " + orQ(Clean(e.GetNode())) + " " + orQ(Clean(e.GetKind())) + ":"
		if d := Clean(e.GetDetail()); d != "" {
			line += " " + d
		}
		r.text(2, 11, line)
	}
}

func (r *renderer) ago(t *timestamppb.Timestamp) string {
	return FormatAgo(r.now.Sub(t.AsTime()))
}

// clock gives t's time of day in now's location.
func (r *renderer) clock(t *timestamppb.Timestamp) string {
	return t.AsTime().In(r.now.Location()).Format("15:04:05")
}

// text writes free text (which may be long, e.g. an error) word-wrapped at
// Width, the first line indented by indent and the others by hang. After
// maxTextLines lines the rest is cut and marked with "...".
func (r *renderer) text(indent, hang int, s string) {
	lines := WrapLine(strings.Repeat(" ", indent)+s, hang)
	if len(lines) > maxTextLines {
		lines = lines[:maxTextLines]
		last := lines[maxTextLines-1]
		if len(last) > Width-3 {
			last = last[:Width-3]
		}
		lines[maxTextLines-1] = last + "..."
	}
	r.lines(lines)
}

// Clean makes a string from the snapshot safe and plain to print: tabs and
// line breaks become spaces, other control characters and every non-ASCII
// character are escaped (\x1b, \u00e9), and invalid UTF-8 bytes become \xNN.
// The snapshot's strings may come from the peer over the network; none can
// move the cursor or change the terminal.
func Clean(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case c == '\t' || c == '\n' || c == '\r':
			b.WriteByte(' ')
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c < 0x7f:
			b.WriteRune(c)
		case c <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			fmt.Fprintf(&b, `\U%08x`, c)
		}
		i += size
	}
	return b.String()
}

// List gives items as segments for a line that wraps between them, each
// after the first led by sep.
func List(items []string, sep string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		if i > 0 {
			it = sep + it
		}
		out[i] = it
	}
	return out
}

// LSNOrDash formats a WAL position, or "-" for zero, which PostgreSQL never
// reports for a real position (the agent stores NULL as zero).
func LSNOrDash(v uint64) string {
	if v == 0 {
		return "-"
	}
	return FormatLSN(v)
}

// seconds formats a lag in seconds with three decimals, or "-" when
// PostgreSQL reported none (NULL once a standby is idle and caught up).
func seconds(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return strconv.FormatFloat(d.AsDuration().Seconds(), 'f', 3, 64) + "s"
}

func listenAddr(db *hapb.DatabaseStatus) string {
	host := Clean(db.GetListenAddr())
	switch {
	case db.GetPort() == 0:
		return host
	case host == "":
		return "port " + strconv.Itoa(int(db.GetPort()))
	default:
		return net.JoinHostPort(host, strconv.Itoa(int(db.GetPort())))
	}
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// WrapWords breaks plain text at spaces into lines of at most width columns
// (runes); a single word longer than width gets a line of its own.
func WrapWords(s string, width int) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		switch {
		case cur == "":
			cur = word
		case utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(word) <= width:
			cur += " " + word
		default:
			lines = append(lines, cur)
			cur = word
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// SenderAddr is the address of the primary that the named standby really
// streams from, as its own WAL receiver reports it (pg_stat_wal_receiver's
// sender_host): the heartbeat link's address when replication runs over it.
// It looks at this node and at the peer (only while the peer answers), and
// returns "" when neither is that standby or it has no receiver.
func SenderAddr(s *hapb.Snapshot, standby string) string {
	if standby == "" {
		return ""
	}
	if l := s.GetLocal(); l.GetName() == standby {
		return l.GetDatabase().GetWalReceiver().GetSenderHost()
	}
	if p := s.GetPeer(); p.GetReachable() && (p.GetName() == standby || p.GetStatus().GetName() == standby) {
		return p.GetStatus().GetDatabase().GetWalReceiver().GetSenderHost()
	}
	return ""
}
