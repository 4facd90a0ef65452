// Package pg controls one node's local PostgreSQL 15 server with the server's
// own tools (initdb, pg_ctl, pg_basebackup, pg_rewind) and reads its state
// with SQL through pgx.
//
// Everything the controller owns lives under one base directory:
//
//	<base>/data             PGDATA, owned by the database OS user, 0700
//	<base>/run              the server's unix socket directory, 0700
//	<base>/log/postgresql.log
//	<base>/pgpass           the replication credential as a libpq passfile,
//	                        readable by the database OS user only (0600)
//	<base>/secrets/         the agent's own copy of the credential, 0700
//	<base>/upstream.json    where this node streams from, while it is a standby
//
// The configuration files inside PGDATA (postgresql.conf, pg_hba.conf,
// pg_ident.conf, postgresql.auto.conf) belong to the controller: it rewrites
// them before every start, because pg_basebackup and pg_rewind copy the
// other node's files over them.
package pg

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// DefaultBinDir is where Debian installs PostgreSQL 15's server programs.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// ReplicationUser is the role that standbys and pg_rewind connect as. Its
// password is random, made at initialisation; there is no default.
const ReplicationUser = "hapair_replicator"

// Superuser is the database superuser that initdb creates. Only the agent's
// OS user (and the database OS user) may log in as it, over the unix socket.
const Superuser = "postgres"

// OSUser is the operating-system account PostgreSQL runs as.
type OSUser struct {
	Name     string
	UID, GID uint32
	Home     string
}

// Config describes one node's PostgreSQL server.
type Config struct {
	// NodeName names this node: cluster_name, application_name and the
	// replication slot the primary keeps for it are derived from it.
	NodeName string
	// BinDir holds postgres, initdb, pg_ctl, pg_basebackup and pg_rewind.
	BinDir string
	// BaseDir is the controller's directory (see the package comment).
	BaseDir string
	// ListenAddr is the address PostgreSQL listens on for TCP (the node's
	// public address; applications and the peer reach it there).
	ListenAddr string
	// ExtraListenAddrs are more addresses to listen on (the heartbeat link,
	// which replication prefers).
	ExtraListenAddrs []string
	// ListenAll makes the server listen on every address (listen_addresses
	// '*'): a VIP that comes and goes on an interface must be served too;
	// pg_hba.conf still admits only the peers and the client networks.
	ListenAll bool
	// Port is the TCP port (and the unix socket's number).
	Port int
	// PeerAddrs are the addresses the peer may replicate (and pg_rewind)
	// from. pg_hba.conf admits the replication role from these only.
	PeerAddrs []string
	// ClientNets are the networks (CIDR) from which applications may log in
	// with a password. Empty: none.
	ClientNets []string
	// MaxSlotWALKeepSize bounds the WAL a replication slot may hold back, so
	// a dead standby can never fill the disk.
	MaxSlotWALKeepSize string
	// WALKeepSize keeps extra WAL for a standby or a rewound node to catch up.
	WALKeepSize string
	// RunAs is the OS user the server runs as; nil runs it as the current
	// user. PostgreSQL refuses to run as root: see DatabaseOSUser.
	RunAs *OSUser
	// StartTimeout bounds pg_ctl start/stop/promote waits.
	StartTimeout time.Duration
	// Logger receives one structured line per operation.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every optional field set.
func DefaultConfig() Config {
	return Config{
		BinDir:             DefaultBinDir,
		ListenAddr:         "127.0.0.1",
		Port:               5432,
		MaxSlotWALKeepSize: "1GB",
		WALKeepSize:        "256MB",
		StartTimeout:       60 * time.Second,
	}
}

var nodeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
var sizeRE = regexp.MustCompile(`^[0-9]+(kB|MB|GB|TB)$`)

// Validate checks the configuration without touching the system.
func (c Config) Validate() error {
	var errs []error
	if !nodeNameRE.MatchString(c.NodeName) {
		errs = append(errs, fmt.Errorf("node name %q: want lowercase letters, digits and '-', at most 63", c.NodeName))
	}
	if c.BinDir == "" {
		errs = append(errs, errors.New("bin dir is empty"))
	}
	if c.BaseDir == "" || !filepath.IsAbs(c.BaseDir) {
		errs = append(errs, fmt.Errorf("base dir %q: want an absolute path", c.BaseDir))
	}
	for _, a := range append([]string{c.ListenAddr}, c.ExtraListenAddrs...) {
		if net.ParseIP(a) == nil {
			errs = append(errs, fmt.Errorf("listen address %q: want an IP address", a))
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1-65535", c.Port))
	}
	for _, a := range c.PeerAddrs {
		if net.ParseIP(a) == nil {
			errs = append(errs, fmt.Errorf("peer address %q: want an IP address", a))
		}
	}
	for _, n := range c.ClientNets {
		if _, _, err := net.ParseCIDR(n); err != nil {
			errs = append(errs, fmt.Errorf("client network %q: want CIDR: %w", n, err))
		}
	}
	for name, v := range map[string]string{"max_slot_wal_keep_size": c.MaxSlotWALKeepSize, "wal_keep_size": c.WALKeepSize} {
		if !sizeRE.MatchString(v) {
			errs = append(errs, fmt.Errorf("%s %q: want a size such as 1GB", name, v))
		}
	}
	if c.StartTimeout <= 0 {
		errs = append(errs, errors.New("start timeout must be positive"))
	}
	if c.RunAs == nil && os.Geteuid() == 0 {
		errs = append(errs, errors.New("running as root: set RunAs (PostgreSQL refuses to run as root)"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// DatabaseOSUser returns the OS user PostgreSQL must run as when the agent
// runs as this process's user: nil (the current user) unless we are root, in
// which case the system's "postgres" user.
func DatabaseOSUser() (*OSUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	return LookupOSUser("postgres")
}

// LookupOSUser resolves an OS account by name.
func LookupOSUser(name string) (*OSUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up OS user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS user %q gid %q: %w", name, u.Gid, err)
	}
	return &OSUser{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}, nil
}

// Upstream is the primary a standby streams from.
type Upstream struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// SlotName is the physical slot the upstream keeps for this node.
	SlotName string `json:"slot_name"`
}

// Validate checks an upstream before it is written anywhere.
func (u Upstream) Validate() error {
	if u.Host == "" {
		return fmt.Errorf("%w: upstream host is empty", ErrConfig)
	}
	if u.Port < 1 || u.Port > 65535 {
		return fmt.Errorf("%w: upstream port %d: want 1-65535", ErrConfig, u.Port)
	}
	if !slotRE.MatchString(u.SlotName) {
		return fmt.Errorf("%w: slot name %q: want [a-z0-9_], at most 63", ErrConfig, u.SlotName)
	}
	return nil
}

// Credential is the replication role's name and password.
type Credential struct {
	User     string
	Password string
}

var slotRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// SlotName is the name of the physical replication slot a primary keeps for
// the node called node.
func SlotName(node string) string {
	b := []byte("hapair_")
	for _, r := range node {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b = append(b, byte(r))
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r-'A'+'a'))
		default:
			b = append(b, '_')
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return string(b)
}

// layout holds the paths under BaseDir.
type layout struct {
	base, data, run, logDir, logFile, pgpass, secrets, secretFile, upstream string
}

func newLayout(base string) layout {
	return layout{
		base:       base,
		data:       filepath.Join(base, "data"),
		run:        filepath.Join(base, "run"),
		logDir:     filepath.Join(base, "log"),
		logFile:    filepath.Join(base, "log", "postgresql.log"),
		pgpass:     filepath.Join(base, "pgpass"),
		secrets:    filepath.Join(base, "secrets"),
		secretFile: filepath.Join(base, "secrets", "replication.pass"),
		upstream:   filepath.Join(base, "upstream.json"),
	}
}
