// Package cluster is the replicated state of a hapair cluster and the
// state machine that applies commands to it. Everything here is pure and
// deterministic: the same commands in the same order give the same state on
// every node. hashicorp/raft carries the commands (see FSM).
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Member kinds.
const (
	KindData    = "data"
	KindWitness = "witness"
)

// Replication modes.
const (
	ModeAsync      = "async"
	ModeSync       = "sync"
	ModeSyncStrict = "sync-strict"
)

// Member is one node of the cluster.
type Member struct {
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	PublicAddr    string `json:"public_addr"`
	HeartbeatAddr string `json:"heartbeat_addr,omitempty"`
	AgentAddr     string `json:"agent_addr"`
	RaftAddr      string `json:"raft_addr"`
	PGAddr        string `json:"pg_addr,omitempty"`
	// Ports, so every member can be configured from the replicated state.
	AgentPort     int `json:"agent_port,omitempty"`
	RaftPort      int `json:"raft_port,omitempty"`
	HeartbeatPort int `json:"heartbeat_port,omitempty"`
	PGPort        int `json:"pg_port,omitempty"`
	// Stopped: an operator stopped cluster services on this member.
	Stopped bool `json:"stopped,omitempty"`
}

// Settings are the cluster's tunables, replicated so both nodes agree.
type Settings struct {
	ReplicationMode string `json:"replication_mode"`
	// MaxLagBytes: a standby further behind than this is not promoted
	// automatically after an unplanned failure.
	MaxLagBytes uint64 `json:"max_lag_bytes"`
}

// Event is one entry of the replicated history.
type Event struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
}

// Handover records a planned move of the Active role: the old primary
// stopped at FinalLSN, so the target may promote as soon as it has received
// that much, without waiting out the fencing delay.
type Handover struct {
	From     string `json:"from"`
	To       string `json:"to"`
	FinalLSN uint64 `json:"final_lsn"`
	Epoch    uint64 `json:"epoch"`
}

// State is the whole replicated state.
type State struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Members  []Member `json:"members"`
	VIP      string   `json:"vip,omitempty"`
	Settings Settings `json:"settings"`
	// Epoch grows by one at every promotion.
	Epoch uint64 `json:"epoch"`
	// Active is the node whose database is the primary of Epoch.
	Active      string    `json:"active,omitempty"`
	ActiveSince time.Time `json:"active_since,omitzero"`
	Handover    *Handover `json:"handover,omitempty"`
	Maintenance bool      `json:"maintenance,omitempty"`
	// TornDown: the cluster was destroyed by TornDownBy; every other node
	// deactivates when it learns of it.
	TornDown   bool   `json:"torn_down,omitempty"`
	TornDownBy string `json:"torn_down_by,omitempty"`
	// HeartbeatKey authenticates the heartbeat packets between the nodes.
	// It is made at formation and never shown.
	HeartbeatKey []byte  `json:"heartbeat_key,omitempty"`
	Events       []Event `json:"events,omitempty"`
	NextEvent    uint64  `json:"next_event"`
}

// MaxEvents bounds the replicated history.
const MaxEvents = 500

// Member returns the member called name.
func (s *State) Member(name string) (Member, bool) {
	for _, m := range s.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// Peer returns the other data node of name.
func (s *State) Peer(name string) (Member, bool) {
	for _, m := range s.Members {
		if m.Name != name && m.Kind == KindData {
			return m, true
		}
	}
	return Member{}, false
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := *s
	c.Members = append([]Member(nil), s.Members...)
	c.Events = append([]Event(nil), s.Events...)
	c.HeartbeatKey = append([]byte(nil), s.HeartbeatKey...)
	if s.Handover != nil {
		h := *s.Handover
		c.Handover = &h
	}
	return &c
}

// Command types.
const (
	CmdInit        = "init"
	CmdPromoted    = "promoted"
	CmdHandover    = "handover"
	CmdStopped     = "stopped"
	CmdMaintenance = "maintenance"
	CmdEvent       = "event"
	CmdTeardown    = "teardown"
)

// Command is one entry of the replicated log. Time is the proposer's
// clock, so applying it is deterministic.
type Command struct {
	Type string    `json:"type"`
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	// Init
	Init *State `json:"init,omitempty"`
	// Promoted: Node became Active in Epoch.
	Epoch uint64 `json:"epoch,omitempty"`
	// Handover
	Handover *Handover `json:"handover,omitempty"`
	// Stopped, Maintenance: the flag's new value.
	On bool `json:"on,omitempty"`
	// Event
	Kind   string `json:"kind,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Encode serialises a command for the log.
func (c Command) Encode() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", c.Type, err)
	}
	return b, nil
}

// DecodeCommand parses a log entry.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode command: %w", err)
	}
	if c.Type == "" {
		return c, errors.New("decode command: no type")
	}
	return c, nil
}

// Errors returned by Apply (as the log entry's response).
var (
	ErrStaleEpoch    = errors.New("stale epoch")
	ErrUnknownMember = errors.New("unknown member")
	ErrNotInit       = errors.New("cluster not initialised")
	ErrTornDown      = errors.New("cluster torn down")
)

// Apply applies c to s in place. A rejected command leaves s unchanged and
// returns why.
func Apply(s *State, c Command) error {
	if c.Type != CmdInit && s.ID == "" {
		return fmt.Errorf("%s: %w", c.Type, ErrNotInit)
	}
	if s.TornDown && c.Type != CmdEvent {
		return fmt.Errorf("%s: %w", c.Type, ErrTornDown)
	}
	switch c.Type {
	case CmdInit:
		if s.ID != "" {
			return fmt.Errorf("init: already initialised as %s", s.ID)
		}
		if c.Init == nil || c.Init.ID == "" {
			return errors.New("init: no state")
		}
		*s = *c.Init.Clone()
		sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].Name < s.Members[j].Name })
		s.addEvent(c.Time, c.Node, "cluster", fmt.Sprintf("cluster %s formed with %s", s.Name, memberNames(s.Members)))
	case CmdPromoted:
		m, ok := s.Member(c.Node)
		if !ok || m.Kind != KindData {
			return fmt.Errorf("promoted %s: %w", c.Node, ErrUnknownMember)
		}
		if c.Epoch != s.Epoch+1 {
			return fmt.Errorf("promoted %s in epoch %d, current %d: %w", c.Node, c.Epoch, s.Epoch, ErrStaleEpoch)
		}
		prev := s.Active
		s.Epoch, s.Active, s.ActiveSince, s.Handover = c.Epoch, c.Node, c.Time, nil
		detail := fmt.Sprintf("%s is Active (epoch %d)", c.Node, c.Epoch)
		if prev != "" && prev != c.Node {
			detail += ", was " + prev
		}
		s.addEvent(c.Time, c.Node, "active", detail)
	case CmdHandover:
		h := c.Handover
		if h == nil {
			return errors.New("handover: empty")
		}
		if _, ok := s.Member(h.To); !ok {
			return fmt.Errorf("handover to %s: %w", h.To, ErrUnknownMember)
		}
		if h.Epoch != s.Epoch || h.From != s.Active {
			return fmt.Errorf("handover from %s in epoch %d, active %s in %d: %w", h.From, h.Epoch, s.Active, s.Epoch, ErrStaleEpoch)
		}
		hh := *h
		s.Handover = &hh
		s.addEvent(c.Time, c.Node, "handover", fmt.Sprintf("%s hands over to %s at LSN %s", h.From, h.To, formatLSN(h.FinalLSN)))
	case CmdStopped:
		i := s.index(c.Node)
		if i < 0 {
			return fmt.Errorf("stopped %s: %w", c.Node, ErrUnknownMember)
		}
		s.Members[i].Stopped = c.On
		word := "started"
		if c.On {
			word = "stopped"
		}
		s.addEvent(c.Time, c.Node, "cluster", "cluster services "+word+" on "+c.Node)
	case CmdMaintenance:
		s.Maintenance = c.On
		word := "off: automatic decisions resumed"
		if c.On {
			word = "on: automatic failover paused"
		}
		s.addEvent(c.Time, c.Node, "maintenance", "maintenance mode "+word)
	case CmdEvent:
		s.addEvent(c.Time, c.Node, c.Kind, c.Detail)
	case CmdTeardown:
		s.TornDown, s.TornDownBy = true, c.Node
		s.addEvent(c.Time, c.Node, "teardown", "cluster destroyed by "+c.Node+"; it runs stand-alone, the others are deactivated")
	default:
		return fmt.Errorf("unknown command type %q", c.Type)
	}
	return nil
}

func (s *State) index(name string) int {
	for i, m := range s.Members {
		if m.Name == name {
			return i
		}
	}
	return -1
}

func (s *State) addEvent(t time.Time, node, kind, detail string) {
	s.NextEvent++
	s.Events = append(s.Events, Event{Seq: s.NextEvent, Time: t, Node: node, Kind: kind, Detail: detail})
	if over := len(s.Events) - MaxEvents; over > 0 {
		s.Events = append([]Event(nil), s.Events[over:]...)
	}
}

func memberNames(ms []Member) string {
	out := ""
	for i, m := range ms {
		if i > 0 {
			out += ", "
		}
		out += m.Name
		if m.Kind == KindWitness {
			out += " (witness)"
		}
	}
	return out
}

func formatLSN(l uint64) string { return fmt.Sprintf("%X/%X", l>>32, l&0xffffffff) }
