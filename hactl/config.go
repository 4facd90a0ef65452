// Package hactl is the node-local HA agent: it owns this node's PostgreSQL
// (through package pg) and VIP (through package vipnet), takes part in the
// cluster's consensus (package cluster, hashicorp/raft), exchanges
// heartbeats with its peer on every link (package heartbeat), samples its
// state for the console and the dashboard, and runs the cluster operations.
//
// Thin main -> New(cfg, deps) -> Run(ctx): every goroutine the agent starts
// is owned by Run and has stopped when Run returns.
package hactl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hapair/hapair/hactl/cluster"
	"github.com/hapair/hapair/hactl/pg"
)

// Version is the agent's version, shown in status.
const Version = "0.2.0-dev"

// Duration is a time.Duration that reads and writes as "200ms" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a string such as "200ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"200ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Bootstrap says what an agent does with a node that has no database yet.
type Bootstrap string

// The bootstrap modes.
const (
	// BootstrapNone: a data node without a database waits to be cloned
	// from the Active node once it is a member.
	BootstrapNone Bootstrap = ""
	// BootstrapPrimary initialises a new primary and forms the cluster.
	BootstrapPrimary Bootstrap = "primary"
	// BootstrapStandby clones a standby from the peer.
	BootstrapStandby Bootstrap = "standby"
)

// MemberConfig is one node of the cluster: data nodes and the witness.
// Every node's configuration lists every member, itself included.
type MemberConfig struct {
	Name string `json:"name"`
	// Kind is "data" (database and VIP) or "witness" (a vote only).
	Kind          string `json:"kind"`
	PublicAddr    string `json:"public_addr"`
	HeartbeatAddr string `json:"heartbeat_addr,omitempty"`
	// AgentPort: the Peer API (gRPC, mutual TLS), on every address.
	AgentPort int `json:"agent_port"`
	// RaftPort: the consensus transport (mutual TLS), on every address.
	RaftPort int `json:"raft_port"`
	// HeartbeatPort: UDP heartbeats, on every address.
	HeartbeatPort int `json:"heartbeat_port"`
	// PGPort: PostgreSQL (data nodes), on the public address.
	PGPort int `json:"pg_port,omitempty"`
}

// Addrs are the member's addresses: the heartbeat link first (preferred),
// then the public network.
func (m MemberConfig) Addrs() []string {
	if m.HeartbeatAddr != "" {
		return []string{m.HeartbeatAddr, m.PublicAddr}
	}
	return []string{m.PublicAddr}
}

// AgentAddr is where the member's Peer API answers on the public network.
func (m MemberConfig) AgentAddr() string {
	return net.JoinHostPort(m.PublicAddr, strconv.Itoa(m.AgentPort))
}

// RaftAddr lists the member's raft endpoints, comma-separated, preferred first.
func (m MemberConfig) RaftAddr() string {
	var out []string
	for _, a := range m.Addrs() {
		out = append(out, net.JoinHostPort(a, strconv.Itoa(m.RaftPort)))
	}
	return strings.Join(out, ",")
}

// PGAddr is host:port of the member's PostgreSQL.
func (m MemberConfig) PGAddr() string {
	if m.Kind != cluster.KindData {
		return ""
	}
	return net.JoinHostPort(m.PublicAddr, strconv.Itoa(m.PGPort))
}

// VIPConfig is the virtual IP the Active node holds.
type VIPConfig struct {
	Address string `json:"address"`
	// Mode is "userspace" (a loopback address served by forwarding
	// listeners: the unprivileged demo) or "linux" (netlink, gratuitous ARP).
	Mode string `json:"mode"`
	// Interface carries the VIP in linux mode.
	Interface string `json:"interface,omitempty"`
	// PrefixLen is the VIP's prefix length on the interface in linux mode
	// (default 32; the public network's, e.g. 24, makes it a usual source).
	PrefixLen int `json:"prefix_len,omitempty"`
	// Ports are forwarded to this node's services in userspace mode
	// (default: the PostgreSQL port).
	Ports []int `json:"ports,omitempty"`
}

// PostgresConfig is this node's PostgreSQL.
type PostgresConfig struct {
	BinDir string `json:"bin_dir,omitempty"`
	// ReplicationFrom are the addresses the peer connects from to
	// replicate; default: the peer's public and heartbeat addresses.
	ReplicationFrom    []string `json:"replication_from,omitempty"`
	ClientNets         []string `json:"client_nets,omitempty"`
	MaxSlotWALKeepSize string   `json:"max_slot_wal_keep_size,omitempty"`
	// OSUser runs PostgreSQL when the agent is root (default "postgres").
	OSUser string `json:"os_user,omitempty"`
}

// Timers are the agent's clocks. The defaults order them so that a leader
// cut off from the quorum has released the VIP and stopped writing before
// any other node may promote: LeaderLease < RaftHeartbeat, and a new leader
// waits FenceDelay (> LeaderLease + the time to fence) before an unplanned
// promotion.
type Timers struct {
	Sample          Duration `json:"sample"`
	PeerTimeout     Duration `json:"peer_timeout"`
	Bootstrap       Duration `json:"bootstrap"`
	RaftHeartbeat   Duration `json:"raft_heartbeat"`
	RaftElection    Duration `json:"raft_election"`
	LeaderLease     Duration `json:"leader_lease"`
	FenceDelay      Duration `json:"fence_delay"`
	Heartbeat       Duration `json:"heartbeat"`
	HeartbeatDead   Duration `json:"heartbeat_dead"`
	SyncDegradeWait Duration `json:"sync_degrade_wait"`
	// FailoverTimeout: how long the peer must be silent on every link
	// before a standby takes over through the tie-breaker (the Active node
	// gives up after half of it).
	FailoverTimeout Duration `json:"failover_timeout"`
	Reconcile       Duration `json:"reconcile"`
}

// Config is one agent's configuration, read from a JSON file.
type Config struct {
	ClusterName string `json:"cluster_name"`
	NodeName    string `json:"node_name"`
	// StateDir holds everything the agent keeps: pki/, pg/, raft/, the socket.
	StateDir string `json:"state_dir"`
	// Socket is the unix socket of the Agent API (default <state>/hactl.sock).
	Socket string `json:"socket,omitempty"`
	// Members lists every node of the cluster, this one included.
	Members   []MemberConfig `json:"members"`
	VIP       *VIPConfig     `json:"vip,omitempty"`
	Postgres  PostgresConfig `json:"postgres"`
	Bootstrap Bootstrap      `json:"bootstrap,omitempty"`
	// ReplicationMode is "async" (default), "sync" or "sync-strict".
	ReplicationMode string `json:"replication_mode,omitempty"`
	// TieBreaker is host:port of something both data nodes can reach on the
	// public network and that accepts TCP connections (e.g. the gateway's
	// SSH port). Without a witness it decides an automatic failover: the
	// standby promotes only when its peer is silent on every link and the
	// tie-breaker answers; an Active node that loses its peer on every link
	// and cannot reach the tie-breaker stops writing first.
	TieBreaker string `json:"tie_breaker,omitempty"`
	// FailoverPolicy is "auto" (default) or "manual" (never promote without
	// an operator, even with a witness or a tie-breaker).
	FailoverPolicy string `json:"failover_policy,omitempty"`
	// MaxLagBytes: a standby further behind is not promoted automatically.
	MaxLagBytes uint64 `json:"max_lag_bytes,omitempty"`
	Timers      Timers `json:"timers"`
	// KeepPostgresOnExit leaves PostgreSQL running when the agent stops.
	KeepPostgresOnExit bool `json:"keep_postgres_on_exit,omitempty"`
	// EventLimit bounds the local event history kept.
	EventLimit int `json:"event_limit,omitempty"`
	// Console configures the SSH console (`hactl console`) of this node.
	Console ConsoleConfig `json:"console"`
}

// ConsoleConfig is the SSH console that runs next to the agent.
type ConsoleConfig struct {
	// Listen is the console's TCP address, e.g. "198.18.0.5:22".
	Listen string `json:"listen,omitempty"`
	// Dir holds the console's host key and users (default <state_dir>/console).
	Dir string `json:"dir,omitempty"`
	// IdleTimeout logs an idle interactive session out (default 15m).
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
}

// DefaultConfig returns a Config with every optional field set.
func DefaultConfig() Config {
	return Config{
		Postgres: PostgresConfig{
			BinDir:             pg.DefaultBinDir,
			MaxSlotWALKeepSize: "1GB",
			OSUser:             "postgres",
		},
		ReplicationMode: cluster.ModeAsync,
		FailoverPolicy:  "auto",
		MaxLagBytes:     16 << 20,
		Timers: Timers{
			Sample:          Duration(200 * time.Millisecond),
			PeerTimeout:     Duration(time.Second),
			Bootstrap:       Duration(5 * time.Minute),
			RaftHeartbeat:   Duration(500 * time.Millisecond),
			RaftElection:    Duration(500 * time.Millisecond),
			LeaderLease:     Duration(250 * time.Millisecond),
			FenceDelay:      Duration(500 * time.Millisecond),
			Heartbeat:       Duration(200 * time.Millisecond),
			HeartbeatDead:   Duration(time.Second),
			SyncDegradeWait: Duration(5 * time.Second),
			FailoverTimeout: Duration(3 * time.Second),
			Reconcile:       Duration(time.Second),
		},
		EventLimit: 500,
	}
}

// LoadConfig reads a JSON configuration over DefaultConfig and validates it.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.applyOverlay(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Self is this node's member entry.
func (c Config) Self() MemberConfig {
	for _, m := range c.Members {
		if m.Name == c.NodeName {
			return m
		}
	}
	return MemberConfig{}
}

// IsWitness reports whether this agent is the witness.
func (c Config) IsWitness() bool { return c.Self().Kind == cluster.KindWitness }

// PeerMember is the other data node, if any.
func (c Config) PeerMember() (MemberConfig, bool) {
	for _, m := range c.Members {
		if m.Name != c.NodeName && m.Kind == cluster.KindData {
			return m, true
		}
	}
	return MemberConfig{}, false
}

// Member returns the member called name.
func (c Config) Member(name string) (MemberConfig, bool) {
	for _, m := range c.Members {
		if m.Name == name {
			return m, true
		}
	}
	return MemberConfig{}, false
}

// Validate checks the configuration without touching the system.
func (c Config) Validate() error {
	var errs []error
	if !nameRE.MatchString(c.NodeName) {
		errs = append(errs, fmt.Errorf("node_name %q: want lowercase letters, digits and '-'", c.NodeName))
	}
	if c.ClusterName != "" && !nameRE.MatchString(c.ClusterName) {
		errs = append(errs, fmt.Errorf("cluster_name %q: want lowercase letters, digits and '-'", c.ClusterName))
	}
	if !filepath.IsAbs(c.StateDir) {
		errs = append(errs, fmt.Errorf("state_dir %q: want an absolute path", c.StateDir))
	}
	seen := map[string]bool{}
	data, witnesses := 0, 0
	for i, m := range c.Members {
		where := fmt.Sprintf("members[%d] (%s)", i, m.Name)
		if !nameRE.MatchString(m.Name) || seen[m.Name] {
			errs = append(errs, fmt.Errorf("%s: want a unique name of lowercase letters, digits and '-'", where))
		}
		seen[m.Name] = true
		switch m.Kind {
		case cluster.KindData:
			data++
			if m.PGPort < 1 || m.PGPort > 65535 {
				errs = append(errs, fmt.Errorf("%s: pg_port %d: want 1-65535", where, m.PGPort))
			}
		case cluster.KindWitness:
			witnesses++
		default:
			errs = append(errs, fmt.Errorf("%s: kind %q: want \"data\" or \"witness\"", where, m.Kind))
		}
		if net.ParseIP(m.PublicAddr) == nil {
			errs = append(errs, fmt.Errorf("%s: public_addr %q: want an IP address", where, m.PublicAddr))
		}
		if m.HeartbeatAddr != "" && net.ParseIP(m.HeartbeatAddr) == nil {
			errs = append(errs, fmt.Errorf("%s: heartbeat_addr %q: want an IP address", where, m.HeartbeatAddr))
		}
		for name, p := range map[string]int{"agent_port": m.AgentPort, "raft_port": m.RaftPort, "heartbeat_port": m.HeartbeatPort} {
			if p < 1 || p > 65535 {
				errs = append(errs, fmt.Errorf("%s: %s %d: want 1-65535", where, name, p))
			}
		}
	}
	if !seen[c.NodeName] {
		errs = append(errs, fmt.Errorf("members: this node %q is not listed", c.NodeName))
	}
	if data > 2 || witnesses > 1 {
		errs = append(errs, fmt.Errorf("members: %d data nodes and %d witnesses: want at most 2 and 1", data, witnesses))
	}
	switch c.Bootstrap {
	case BootstrapNone, BootstrapPrimary:
	case BootstrapStandby:
		if _, ok := c.PeerMember(); !ok {
			errs = append(errs, errors.New("bootstrap \"standby\" needs a peer to clone from"))
		}
	default:
		errs = append(errs, fmt.Errorf("bootstrap %q: want \"primary\", \"standby\" or nothing", c.Bootstrap))
	}
	if c.IsWitness() && c.Bootstrap != BootstrapNone {
		errs = append(errs, errors.New("a witness has no database to bootstrap"))
	}
	switch c.ReplicationMode {
	case cluster.ModeAsync, cluster.ModeSync, cluster.ModeSyncStrict:
	default:
		errs = append(errs, fmt.Errorf("replication_mode %q: want async, sync or sync-strict", c.ReplicationMode))
	}
	if c.FailoverPolicy != "auto" && c.FailoverPolicy != "manual" {
		errs = append(errs, fmt.Errorf("failover_policy %q: want auto or manual", c.FailoverPolicy))
	}
	if c.TieBreaker != "" {
		if h, _, err := net.SplitHostPort(c.TieBreaker); err != nil || net.ParseIP(h) == nil {
			errs = append(errs, fmt.Errorf("tie_breaker %q: want ip:port", c.TieBreaker))
		}
	}
	if v := c.VIP; v != nil {
		if net.ParseIP(v.Address) == nil {
			errs = append(errs, fmt.Errorf("vip.address %q: want an IP address", v.Address))
		}
		switch v.Mode {
		case "userspace":
		case "linux":
			if v.Interface == "" {
				errs = append(errs, errors.New("vip.interface: required in linux mode"))
			}
			if v.PrefixLen < 0 || v.PrefixLen > 128 {
				errs = append(errs, fmt.Errorf("vip.prefix_len %d: want 1-32 (IPv4) or 1-128 (IPv6)", v.PrefixLen))
			}
		default:
			errs = append(errs, fmt.Errorf("vip.mode %q: want userspace or linux", v.Mode))
		}
	}
	t := c.Timers
	for name, d := range map[string]Duration{"sample": t.Sample, "peer_timeout": t.PeerTimeout, "bootstrap": t.Bootstrap,
		"raft_heartbeat": t.RaftHeartbeat, "raft_election": t.RaftElection, "leader_lease": t.LeaderLease,
		"fence_delay": t.FenceDelay, "heartbeat": t.Heartbeat, "heartbeat_dead": t.HeartbeatDead,
		"sync_degrade_wait": t.SyncDegradeWait, "reconcile": t.Reconcile, "failover_timeout": t.FailoverTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("timers.%s must be positive", name))
		}
	}
	if t.LeaderLease >= t.RaftHeartbeat {
		errs = append(errs, errors.New("timers.leader_lease must be shorter than timers.raft_heartbeat"))
	}
	if t.FailoverTimeout < 2*t.HeartbeatDead {
		errs = append(errs, errors.New("timers.failover_timeout must be at least twice timers.heartbeat_dead"))
	}
	if t.FenceDelay <= t.LeaderLease {
		errs = append(errs, errors.New("timers.fence_delay must be longer than timers.leader_lease"))
	}
	if c.EventLimit <= 0 {
		errs = append(errs, errors.New("event_limit must be positive"))
	}
	if !c.IsWitness() && seen[c.NodeName] {
		if _, err := c.pgConfig(nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SocketPath is the Agent API's unix socket.
func (c Config) SocketPath() string {
	if c.Socket != "" {
		return c.Socket
	}
	return filepath.Join(c.StateDir, "hactl.sock")
}

// PKIDir holds this node's cluster identity (pki package files).
func (c Config) PKIDir() string { return filepath.Join(c.StateDir, "pki") }

// RaftDir holds the consensus log and snapshots.
func (c Config) RaftDir() string { return filepath.Join(c.StateDir, "raft") }

// pgConfig derives the PostgreSQL controller's configuration.
func (c Config) pgConfig(runAs *pg.OSUser) (pg.Config, error) {
	self := c.Self()
	p := pg.DefaultConfig()
	p.NodeName = c.NodeName
	if c.Postgres.BinDir != "" {
		p.BinDir = c.Postgres.BinDir
	}
	p.BaseDir = filepath.Join(c.StateDir, "pg")
	p.ListenAddr = self.PublicAddr
	p.Port = self.PGPort
	p.PeerAddrs = c.Postgres.ReplicationFrom
	if peer, ok := c.PeerMember(); ok && len(p.PeerAddrs) == 0 {
		p.PeerAddrs = peer.Addrs()
	}
	p.ClientNets = c.Postgres.ClientNets
	if c.Postgres.MaxSlotWALKeepSize != "" {
		p.MaxSlotWALKeepSize = c.Postgres.MaxSlotWALKeepSize
	}
	p.RunAs = runAs
	if runAs == nil && os.Geteuid() == 0 {
		// Validation only: the real user is resolved in New.
		p.RunAs = &pg.OSUser{Name: c.Postgres.OSUser}
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("postgres: %w", err)
	}
	return p, nil
}
