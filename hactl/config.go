// Package hactl is the node-local HA agent: it owns this node's PostgreSQL
// (through package pg), samples its state for the console and the
// dashboard, and talks to its peer agent over the cluster link with mutual
// TLS.
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
	"time"

	"github.com/hapair/hapair/hactl/pg"
)

// Version is the agent's version, shown in status.
const Version = "0.1.0-dev"

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
	// BootstrapNone leaves a node without a database alone.
	BootstrapNone Bootstrap = ""
	// BootstrapPrimary initialises a new primary.
	BootstrapPrimary Bootstrap = "primary"
	// BootstrapStandby clones a standby from the peer.
	BootstrapStandby Bootstrap = "standby"
)

// PeerConfig names the other data node of the pair.
type PeerConfig struct {
	Name string `json:"name"`
	// AgentAddr is host:port of the peer agent's cluster-link endpoint.
	AgentAddr string `json:"agent_addr"`
	// PublicAddr is the peer's public address.
	PublicAddr    string `json:"public_addr"`
	HeartbeatAddr string `json:"heartbeat_addr,omitempty"`
}

// PostgresConfig is this node's PostgreSQL.
type PostgresConfig struct {
	BinDir string `json:"bin_dir,omitempty"`
	Port   int    `json:"port"`
	// ReplicationFrom are the addresses the peer connects from to
	// replicate; default: the peer's public and heartbeat addresses.
	ReplicationFrom    []string `json:"replication_from,omitempty"`
	ClientNets         []string `json:"client_nets,omitempty"`
	MaxSlotWALKeepSize string   `json:"max_slot_wal_keep_size,omitempty"`
	// OSUser runs PostgreSQL when the agent is root (default "postgres").
	OSUser string `json:"os_user,omitempty"`
}

// Config is one agent's configuration, read from a JSON file.
type Config struct {
	ClusterName string `json:"cluster_name"`
	NodeName    string `json:"node_name"`
	// StateDir holds everything the agent keeps: pki/, pg/, the socket.
	StateDir string `json:"state_dir"`
	// Socket is the unix socket of the Agent API (default <state>/hactl.sock).
	Socket        string `json:"socket,omitempty"`
	PublicAddr    string `json:"public_addr"`
	HeartbeatAddr string `json:"heartbeat_addr,omitempty"`
	// ListenPeer is host:port of this agent's cluster-link endpoint (mTLS).
	ListenPeer string         `json:"listen_peer"`
	Peer       *PeerConfig    `json:"peer,omitempty"`
	Postgres   PostgresConfig `json:"postgres"`
	Bootstrap  Bootstrap      `json:"bootstrap,omitempty"`
	// SampleInterval is how often the agent reads its database and host.
	SampleInterval Duration `json:"sample_interval,omitempty"`
	// PeerTimeout bounds one call to the peer.
	PeerTimeout Duration `json:"peer_timeout,omitempty"`
	// BootstrapTimeout bounds waiting for the peer to clone from it.
	BootstrapTimeout Duration `json:"bootstrap_timeout,omitempty"`
	// KeepPostgresOnExit leaves PostgreSQL running when the agent stops.
	KeepPostgresOnExit bool `json:"keep_postgres_on_exit,omitempty"`
	// EventLimit bounds the event history kept.
	EventLimit int `json:"event_limit,omitempty"`
}

// DefaultConfig returns a Config with every optional field set.
func DefaultConfig() Config {
	return Config{
		Postgres: PostgresConfig{
			BinDir:             pg.DefaultBinDir,
			Port:               5432,
			MaxSlotWALKeepSize: "1GB",
			OSUser:             "postgres",
		},
		SampleInterval:   Duration(200 * time.Millisecond),
		PeerTimeout:      Duration(time.Second),
		BootstrapTimeout: Duration(5 * time.Minute),
		EventLimit:       500,
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
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

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
	if net.ParseIP(c.PublicAddr) == nil {
		errs = append(errs, fmt.Errorf("public_addr %q: want an IP address", c.PublicAddr))
	}
	if c.HeartbeatAddr != "" && net.ParseIP(c.HeartbeatAddr) == nil {
		errs = append(errs, fmt.Errorf("heartbeat_addr %q: want an IP address", c.HeartbeatAddr))
	}
	if _, _, err := net.SplitHostPort(c.ListenPeer); err != nil {
		errs = append(errs, fmt.Errorf("listen_peer %q: want host:port: %w", c.ListenPeer, err))
	}
	if p := c.Peer; p != nil {
		if !nameRE.MatchString(p.Name) || p.Name == c.NodeName {
			errs = append(errs, fmt.Errorf("peer.name %q: want another node's name", p.Name))
		}
		if _, _, err := net.SplitHostPort(p.AgentAddr); err != nil {
			errs = append(errs, fmt.Errorf("peer.agent_addr %q: want host:port: %w", p.AgentAddr, err))
		}
		if net.ParseIP(p.PublicAddr) == nil {
			errs = append(errs, fmt.Errorf("peer.public_addr %q: want an IP address", p.PublicAddr))
		}
	}
	switch c.Bootstrap {
	case BootstrapNone, BootstrapPrimary:
	case BootstrapStandby:
		if c.Peer == nil {
			errs = append(errs, errors.New("bootstrap \"standby\" needs a peer to clone from"))
		}
	default:
		errs = append(errs, fmt.Errorf("bootstrap %q: want \"primary\", \"standby\" or nothing", c.Bootstrap))
	}
	if c.SampleInterval <= 0 || c.PeerTimeout <= 0 || c.BootstrapTimeout <= 0 {
		errs = append(errs, errors.New("sample_interval, peer_timeout and bootstrap_timeout must be positive"))
	}
	if c.EventLimit <= 0 {
		errs = append(errs, errors.New("event_limit must be positive"))
	}
	if _, err := c.pgConfig(nil); err != nil {
		errs = append(errs, err)
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

// pgConfig derives the PostgreSQL controller's configuration.
func (c Config) pgConfig(runAs *pg.OSUser) (pg.Config, error) {
	p := pg.DefaultConfig()
	p.NodeName = c.NodeName
	if c.Postgres.BinDir != "" {
		p.BinDir = c.Postgres.BinDir
	}
	p.BaseDir = filepath.Join(c.StateDir, "pg")
	p.ListenAddr = c.PublicAddr
	p.Port = c.Postgres.Port
	p.PeerAddrs = c.Postgres.ReplicationFrom
	if len(p.PeerAddrs) == 0 && c.Peer != nil {
		p.PeerAddrs = []string{c.Peer.PublicAddr}
		if c.Peer.HeartbeatAddr != "" {
			p.PeerAddrs = append(p.PeerAddrs, c.Peer.HeartbeatAddr)
		}
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
