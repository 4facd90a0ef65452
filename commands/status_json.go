package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode"
	"unicode/utf16"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

// StatusSchema names the version of the JSON that "ha_status --json"
// prints. Fields may be added within a version; none is renamed, retyped or
// removed without a new version. docs/console-commands.md describes it.
const StatusSchema = "hapair.status/v1"

// StatusJSON is what "ha_status --json" prints: the facts of the text
// report, for scripts. Field names are snake_case and stable within
// Schema's version. Times are RFC 3339 in UTC; absent values are null (or
// omitted where marked omitempty).
type StatusJSON struct {
	// Schema is StatusSchema.
	Schema string `json:"schema"`
	// Node is the name of the node that answered.
	Node string `json:"node"`
	// SampledAt is when that node's agent last sampled.
	SampledAt *time.Time `json:"sampled_at"`
	// Cluster is the cluster's identity and Active node.
	Cluster ClusterJSON `json:"cluster"`
	// Health is the verdict.
	Health HealthJSON `json:"health"`
	// ExitCode is ha_status's exit code for this state: 0 healthy, 1
	// degraded, 2 not running on this node, 3 HA not enabled.
	ExitCode int `json:"exit_code"`
	// Nodes lists this node first, then its peer.
	Nodes []NodeJSON `json:"nodes"`
	// Links is the heartbeat per link.
	Links []LinkJSON `json:"links"`
	// Replication has one entry per row of pg_stat_replication on a
	// reachable primary: the direction of replication as PostgreSQL
	// reports it.
	Replication []ReplicationJSON `json:"replication"`
	// VIP is the virtual IP and who really holds it; null when none.
	VIP *VIPJSON `json:"vip"`
	// Witness is the witness's node name; "" when there is none.
	Witness string `json:"witness"`
	// Protection says how split-brain is prevented, in one sentence.
	Protection string `json:"protection"`
	// Maintenance is true while automatic failover is paused.
	Maintenance bool `json:"maintenance"`
	// Events are the newest events, newest first.
	Events []EventJSON `json:"events"`
}

// ClusterJSON is the cluster's identity.
type ClusterJSON struct {
	Name            string `json:"name"`
	ID              string `json:"id"`
	Epoch           uint64 `json:"epoch"`
	ActiveNode      string `json:"active_node"`
	ReplicationMode string `json:"replication_mode"`
}

// HealthJSON is the verdict: State is "healthy", "degraded",
// "not_running", "not_enabled" or "unknown" (the agent's own health), and
// Message is the sentence the text report prints.
type HealthJSON struct {
	State   string `json:"state"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// NodeJSON is one node.
type NodeJSON struct {
	Name string `json:"name"`
	// Local is true for the node that answered.
	Local bool `json:"local"`
	// Reachable is false when the peer's agent could not be asked; its
	// status fields are then empty (never stale values).
	Reachable bool `json:"reachable"`
	// Error says why the peer is unreachable.
	Error string `json:"error,omitempty"`
	// LastContact is when the peer last answered.
	LastContact *time.Time `json:"last_contact,omitempty"`
	// Role is "active", "standby", "stopped", "standalone", "witness",
	// "offline" (peer unreachable) or "unknown".
	Role          string        `json:"role"`
	PublicAddr    string        `json:"public_addr"`
	HeartbeatAddr string        `json:"heartbeat_addr"`
	HoldsVIP      bool          `json:"holds_vip"`
	Database      *DatabaseJSON `json:"database"`
}

// DatabaseJSON is what PostgreSQL says of itself on a node.
type DatabaseJSON struct {
	// Role is "primary", "standby", "stopped", "uninitialized" or
	// "unknown".
	Role     string `json:"role"`
	Timeline uint32 `json:"timeline"`
	// LSN is the current WAL position on a primary, the replayed one on a
	// standby, as PostgreSQL prints it ("0/3000148"); "" when none.
	LSN string `json:"lsn"`
	// LagBytes is a standby's lag behind its primary, from the primary's
	// pg_stat_replication; null when unknown.
	LagBytes *uint64 `json:"lag_bytes"`
	// Error says why the status could not be read.
	Error string `json:"error,omitempty"`
}

// LinkJSON is the heartbeat on one link.
type LinkJSON struct {
	Name      string     `json:"name"`
	LocalAddr string     `json:"local_addr"`
	PeerAddr  string     `json:"peer_addr"`
	Connected bool       `json:"connected"`
	RTTMs     *float64   `json:"rtt_ms"`
	LastSeen  *time.Time `json:"last_seen"`
	Missed    uint64     `json:"missed"`
}

// ReplicationJSON is one row of pg_stat_replication on a primary.
type ReplicationJSON struct {
	From      string `json:"from"`
	FromAddr  string `json:"from_addr"`
	To        string `json:"to"`
	ToAddr    string `json:"to_addr"`
	State     string `json:"state"`
	SyncState string `json:"sync_state"`
	LagBytes  uint64 `json:"lag_bytes"`
	// ReplayLagSeconds is null when PostgreSQL reports none (idle and
	// caught up).
	ReplayLagSeconds *float64 `json:"replay_lag_seconds"`
}

// VIPJSON is the virtual IP.
type VIPJSON struct {
	Address string `json:"address"`
	// Holder is the node that really has the address; "" when nobody.
	Holder string     `json:"holder"`
	Since  *time.Time `json:"since"`
}

// EventJSON is one event of the cluster's history.
type EventJSON struct {
	Seq    uint64     `json:"seq"`
	Time   *time.Time `json:"time"`
	Node   string     `json:"node"`
	Kind   string     `json:"kind"`
	Detail string     `json:"detail"`
}

// maxJSONEvents is how many events StatusJSON carries.
const maxJSONEvents = 5

// NewStatusJSON builds the JSON form of s. It is a pure function of s; the
// facts are those of RenderStatus. Strings are kept as the agent sent them
// (WriteStatusJSON makes them safe for a terminal).
func NewStatusJSON(s *hapb.Snapshot) *StatusJSON {
	c := s.GetCluster()
	out := &StatusJSON{
		Schema:    StatusSchema,
		Node:      s.GetLocal().GetName(),
		SampledAt: jsonTime(s.GetSampledAt()),
		Cluster: ClusterJSON{
			Name: c.GetName(), ID: c.GetId(), Epoch: c.GetEpoch(),
			ActiveNode: c.GetActiveNode(), ReplicationMode: c.GetReplicationMode(),
		},
		Health:      HealthJSON{State: healthState(c.GetHealth()), Reason: c.GetHealthReason(), Message: HealthSentence(s)},
		ExitCode:    StatusExitCode(s),
		Nodes:       []NodeJSON{},
		Links:       []LinkJSON{},
		Replication: []ReplicationJSON{},
		Witness:     c.GetWitness(),
		Protection:  c.GetProtection(),
		Maintenance: c.GetMaintenance(),
		Events:      []EventJSON{},
	}
	r := &statusRenderer{s: s}
	for _, n := range r.rows() {
		nj := NodeJSON{
			Name: n.name, Local: n.local, Reachable: n.reachable, Role: roleState(n),
			PublicAddr: n.public, HeartbeatAddr: n.heartbeat, HoldsVIP: n.st.GetHoldsVip(),
		}
		if !n.reachable {
			nj.Error = n.peer.GetError()
			nj.LastContact = jsonTime(n.peer.GetLastContact())
		}
		if db := n.st.GetDatabase(); n.reachable && db != nil {
			dj := &DatabaseJSON{Role: dbState(db.GetRole()), Timeline: db.GetTimeline(), Error: db.GetError()}
			switch db.GetRole() {
			case hapb.DatabaseRole_DATABASE_ROLE_PRIMARY:
				dj.LSN = lsnOrEmpty(db.GetCurrentLsn())
			case hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
				dj.LSN = lsnOrEmpty(db.GetReplayLsn())
				if b, ok := r.standbyLag(n.name); ok {
					dj.LagBytes = &b
				}
			}
			nj.Database = dj
		}
		out.Nodes = append(out.Nodes, nj)
	}
	for _, l := range s.GetLinks() {
		lj := LinkJSON{Name: l.GetName(), LocalAddr: l.GetLocalAddr(), PeerAddr: l.GetPeerAddr(),
			Connected: l.GetConnected(), LastSeen: jsonTime(l.GetLastSeen()), Missed: l.GetMissed()}
		if rtt := l.GetRtt(); rtt != nil {
			ms := float64(rtt.AsDuration().Microseconds()) / 1000
			lj.RTTMs = &ms
		}
		out.Links = append(out.Links, lj)
	}
	for _, p := range r.primaries() {
		db := p.st.GetDatabase()
		for _, row := range db.GetReplicas() {
			rj := ReplicationJSON{
				From: p.name, FromAddr: orDefault(view.SenderAddr(r.s, row.GetApplicationName()), orDefault(db.GetListenAddr(), p.public)),
				To: row.GetApplicationName(), ToAddr: row.GetClientAddr(),
				State: row.GetState(), SyncState: row.GetSyncState(), LagBytes: row.GetLagBytes(),
			}
			if d := row.GetReplayLag(); d != nil {
				sec := d.AsDuration().Seconds()
				rj.ReplayLagSeconds = &sec
			}
			out.Replication = append(out.Replication, rj)
		}
	}
	if v := c.GetVip(); v.GetAddress() != "" {
		out.VIP = &VIPJSON{Address: v.GetAddress(), Holder: v.GetHolder(), Since: jsonTime(v.GetSince())}
	}
	for i, e := range s.GetRecentEvents() {
		if i == maxJSONEvents {
			break
		}
		out.Events = append(out.Events, EventJSON{Seq: e.GetSeq(), Time: jsonTime(e.GetTime()),
			Node: e.GetNode(), Kind: e.GetKind(), Detail: e.GetDetail()})
	}
	return out
}

// WriteStatusJSON writes v as indented JSON and a newline. Characters that
// encoding/json leaves raw but a terminal may obey or that change how text
// reads (DEL, the C1 controls U+0080-U+009F, format characters such as
// U+202E RIGHT-TO-LEFT OVERRIDE) are written as \u escapes: the output
// decodes to the same values and is safe to show on a terminal.
func WriteStatusJSON(w io.Writer, v *StatusJSON) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	var out bytes.Buffer
	for _, r := range string(b) {
		switch {
		case r == 0x7f || (r >= 0x80 && r <= 0x9f) || (unicode.Is(unicode.Cf, r) && r <= 0xffff):
			fmt.Fprintf(&out, `\u%04x`, r)
			continue
		case unicode.Is(unicode.Cf, r):
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
			continue
		}
		out.WriteRune(r)
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

func jsonTime(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime().UTC()
	return &v
}

func lsnOrEmpty(v uint64) string {
	if v == 0 {
		return ""
	}
	return view.FormatLSN(v)
}

func healthState(h hapb.ClusterHealth) string {
	switch h {
	case hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY:
		return "healthy"
	case hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED:
		return "degraded"
	case hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING:
		return "not_running"
	case hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED:
		return "not_enabled"
	}
	return "unknown"
}

func roleState(n nodeRow) string {
	if !n.reachable {
		return "offline"
	}
	switch n.st.GetRole() {
	case hapb.NodeRole_NODE_ROLE_ACTIVE:
		return "active"
	case hapb.NodeRole_NODE_ROLE_STANDBY:
		return "standby"
	case hapb.NodeRole_NODE_ROLE_STOPPED:
		return "stopped"
	case hapb.NodeRole_NODE_ROLE_STANDALONE:
		return "standalone"
	case hapb.NodeRole_NODE_ROLE_WITNESS:
		return "witness"
	}
	return "unknown"
}

func dbState(r hapb.DatabaseRole) string {
	switch r {
	case hapb.DatabaseRole_DATABASE_ROLE_PRIMARY:
		return "primary"
	case hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
		return "standby"
	case hapb.DatabaseRole_DATABASE_ROLE_STOPPED:
		return "stopped"
	case hapb.DatabaseRole_DATABASE_ROLE_UNINITIALIZED:
		return "uninitialized"
	}
	return "unknown"
}
