package pg

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Controller drives one node's PostgreSQL server. Its operations are
// idempotent: each checks what is already done, so repeating one after a
// crash half-way finishes the job. Operations are serialised by the
// Controller; Status may run concurrently with them. Safe for concurrent use.
type Controller struct {
	cfg Config
	l   layout
	log *slog.Logger

	mu        sync.Mutex // serialises operations that change the server
	syncNames string     // synchronous_standby_names, guarded by mu

	connMu sync.Mutex // guards conn, the status connection
	conn   *pgx.Conn
}

// requiredPrograms are the server programs the controller runs.
var requiredPrograms = []string{"postgres", "initdb", "pg_ctl", "pg_basebackup", "pg_rewind"}

// New validates cfg and checks that PostgreSQL 15's programs are there.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Controller{cfg: cfg, l: newLayout(cfg.BaseDir), log: log.With("component", "pg")}
	for _, p := range requiredPrograms {
		path := filepath.Join(cfg.BinDir, p)
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w (install postgresql-15)", ErrBinaryMissing, path, err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("%w: %s is not an executable", ErrBinaryMissing, path)
		}
	}
	out, err := exec.Command(filepath.Join(cfg.BinDir, "postgres"), "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s --version: %w", ErrBinaryMissing, filepath.Join(cfg.BinDir, "postgres"), err)
	}
	if !strings.Contains(string(out), "PostgreSQL) 15.") {
		return nil, fmt.Errorf("%w: %s is %q, want PostgreSQL 15", ErrBinaryMissing, filepath.Join(cfg.BinDir, "postgres"), strings.TrimSpace(string(out)))
	}
	return c, nil
}

// DataDir is PGDATA.
func (c *Controller) DataDir() string { return c.l.data }

// SocketDir is the directory of the server's unix socket.
func (c *Controller) SocketDir() string { return c.l.run }

// LogFile is the server's log.
func (c *Controller) LogFile() string { return c.l.logFile }

// Port is the server's port.
func (c *Controller) Port() int { return c.cfg.Port }

// ListenAddr is the server's TCP address.
func (c *Controller) ListenAddr() string { return c.cfg.ListenAddr }

// Init makes this node a primary: initdb (with data checksums) if there is
// no data directory yet, a random replication password kept in a file only
// the agent reads, configuration rendered, server started, replication role
// created or brought up to date. A data directory that is a standby is left
// alone (promote it instead); one that is not PostgreSQL's is refused.
func (c *Controller) Init(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log.Info("init primary", "data_dir", c.l.data)
	if err := c.ensureDirs(); err != nil {
		return fmt.Errorf("init %s: %w", c.cfg.NodeName, err)
	}
	exists, err := c.dataExists()
	if err != nil {
		return fmt.Errorf("init %s: %w", c.cfg.NodeName, err)
	}
	if !exists {
		if err := c.initdb(ctx); err != nil {
			return fmt.Errorf("init %s: %w", c.cfg.NodeName, err)
		}
	} else if c.hasStandbySignal() {
		return fmt.Errorf("init %s: data directory %s is a standby's: %w", c.cfg.NodeName, c.l.data, ErrConfig)
	}
	cred, err := c.ensureCredential()
	if err != nil {
		return fmt.Errorf("init %s: %w", c.cfg.NodeName, err)
	}
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("init %s: %w", c.cfg.NodeName, err)
	}
	if err := c.ensureReplicationRole(ctx, cred); err != nil {
		return fmt.Errorf("init %s: %w", c.cfg.NodeName, err)
	}
	return nil
}

// Clone makes this node a standby of up: pg_basebackup from it into an
// empty data directory, through the physical slot the upstream keeps for
// this node, then start streaming. cred is the replication credential the
// upstream's agent handed over; it is stored like Init stores its own. A
// data directory that already is a standby is only re-pointed and started;
// one that holds a primary is never overwritten.
func (c *Controller) Clone(ctx context.Context, up Upstream, cred Credential) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := up.Validate(); err != nil {
		return fmt.Errorf("clone %s: %w", c.cfg.NodeName, err)
	}
	if cred.User == "" || cred.Password == "" {
		return fmt.Errorf("clone %s: %w: empty replication credential", c.cfg.NodeName, ErrConfig)
	}
	c.log.Info("clone standby", "upstream_host", up.Host, "upstream_port", up.Port, "slot", up.SlotName)
	if err := c.ensureDirs(); err != nil {
		return fmt.Errorf("clone %s: %w", c.cfg.NodeName, err)
	}
	if err := c.storeCredential(cred); err != nil {
		return fmt.Errorf("clone %s: %w", c.cfg.NodeName, err)
	}
	exists, err := c.dataExists()
	if err != nil {
		return fmt.Errorf("clone %s: %w", c.cfg.NodeName, err)
	}
	if exists && !c.hasStandbySignal() {
		return fmt.Errorf("clone %s: data directory %s already holds a primary; refusing to overwrite it", c.cfg.NodeName, c.l.data)
	}
	if !exists {
		if err := c.basebackup(ctx, up); err != nil {
			return fmt.Errorf("clone %s: %w", c.cfg.NodeName, err)
		}
	}
	if err := c.becomeStandby(up); err != nil {
		return fmt.Errorf("clone %s: %w", c.cfg.NodeName, err)
	}
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("clone %s: %w", c.cfg.NodeName, err)
	}
	return nil
}

// Start starts the server in the mode its data directory is in (primary,
// or standby of the stored upstream). Already running is success.
func (c *Controller) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("start %s: %w", c.cfg.NodeName, err)
	}
	return nil
}

// Stop stops the server with a fast shutdown and waits for it (immediate
// shutdown if the fast one does not finish). Not running is success.
func (c *Controller) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stop(ctx); err != nil {
		return fmt.Errorf("stop %s: %w", c.cfg.NodeName, err)
	}
	return nil
}

// Promote turns a running standby into a primary and waits until it accepts
// writes. A primary is left as it is.
func (c *Controller) Promote(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	running, err := c.running(ctx)
	if err != nil {
		return fmt.Errorf("promote %s: %w", c.cfg.NodeName, err)
	}
	if !running {
		return fmt.Errorf("promote %s: %w", c.cfg.NodeName, ErrNotRunning)
	}
	inRecovery, err := c.inRecovery(ctx)
	if err != nil {
		return fmt.Errorf("promote %s: %w", c.cfg.NodeName, err)
	}
	if inRecovery {
		c.log.Info("promote")
		// pg_promote without waiting, then a fine-grained poll: pg_ctl -w
		// and pg_promote(wait) both poll every 100 ms, which is write
		// unavailability during a handover.
		if err := c.withConn(ctx, func(conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "SELECT pg_promote(wait => false)")
			return err
		}); err != nil {
			return fmt.Errorf("promote %s: %w", c.cfg.NodeName, err)
		}
		deadline := time.Now().Add(c.cfg.StartTimeout)
		for {
			r, err := c.inRecovery(ctx)
			if err == nil && !r {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("promote %s: still in recovery after %s; server log: %s", c.cfg.NodeName, c.cfg.StartTimeout, c.logTail(6))
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("promote %s: %w", c.cfg.NodeName, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if err := os.Remove(c.l.upstream); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("promote %s: forget upstream: %w", c.cfg.NodeName, err)
	}
	return nil
}

// Follow re-points a standby at a new upstream. A running standby reloads
// its configuration (the WAL receiver reconnects); a stopped one is started.
// A primary, running or stopped, must be rewound instead: ErrIsPrimary.
func (c *Controller) Follow(ctx context.Context, up Upstream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := up.Validate(); err != nil {
		return fmt.Errorf("follow %s: %w", c.cfg.NodeName, err)
	}
	exists, err := c.dataExists()
	if err != nil {
		return fmt.Errorf("follow %s: %w", c.cfg.NodeName, err)
	}
	if !exists {
		return fmt.Errorf("follow %s: %w", c.cfg.NodeName, ErrNotInitialized)
	}
	running, err := c.running(ctx)
	if err != nil {
		return fmt.Errorf("follow %s: %w", c.cfg.NodeName, err)
	}
	if running {
		inRecovery, err := c.inRecovery(ctx)
		if err != nil {
			return fmt.Errorf("follow %s: %w", c.cfg.NodeName, err)
		}
		if !inRecovery {
			return fmt.Errorf("follow %s: %w: rewind it instead", c.cfg.NodeName, ErrIsPrimary)
		}
	} else if !c.hasStandbySignal() {
		return fmt.Errorf("follow %s: %w (stopped): rewind it instead", c.cfg.NodeName, ErrIsPrimary)
	}
	c.log.Info("follow", "upstream_host", up.Host, "upstream_port", up.Port, "slot", up.SlotName)
	if err := c.becomeStandby(up); err != nil {
		return fmt.Errorf("follow %s: %w", c.cfg.NodeName, err)
	}
	if !running {
		if err := c.start(ctx); err != nil {
			return fmt.Errorf("follow %s: %w", c.cfg.NodeName, err)
		}
		return nil
	}
	if err := c.renderConfig(); err != nil {
		return fmt.Errorf("follow %s: %w", c.cfg.NodeName, err)
	}
	if err := c.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT pg_reload_conf()")
		return err
	}); err != nil {
		return fmt.Errorf("follow %s: reload: %w", c.cfg.NodeName, err)
	}
	return nil
}

// Rewind makes a former primary (or a standby that went astray) a standby of
// up: stop it, pg_rewind it from up's server, then start it streaming from
// up. pg_rewind finds nothing to do on a node that has not diverged.
func (c *Controller) Rewind(ctx context.Context, up Upstream) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := up.Validate(); err != nil {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, err)
	}
	exists, err := c.dataExists()
	if err != nil {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, err)
	}
	if !exists {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, ErrNotInitialized)
	}
	if err := c.ensureDirs(); err != nil {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, err)
	}
	if _, err := c.Credential(); err != nil {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, err)
	}
	if err := c.stop(ctx); err != nil {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, err)
	}
	c.log.Info("rewind", "source_host", up.Host, "source_port", up.Port)
	source := conninfo([][2]string{
		{"host", up.Host},
		{"port", strconv.Itoa(up.Port)},
		{"user", ReplicationUser},
		{"dbname", "postgres"},
		{"passfile", c.l.pgpass},
		{"connect_timeout", "5"},
	})
	out, err := c.tool(ctx, "pg_rewind", nil, "--target-pgdata="+c.l.data, "--source-server="+source)
	if err != nil {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, err)
	}
	c.log.Info("rewind done", "output", tail(out, 3))
	if err := c.becomeStandby(up); err != nil {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, err)
	}
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("rewind %s: %w", c.cfg.NodeName, err)
	}
	return nil
}

// EnsureSlot makes sure this primary keeps a physical slot called name,
// reserving WAL from now on. Existing is success.
func (c *Controller) EnsureSlot(ctx context.Context, name string) error {
	if !slotRE.MatchString(name) {
		return fmt.Errorf("ensure slot %q: %w: want [a-z0-9_], at most 63", name, ErrConfig)
	}
	err := c.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)
			WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("ensure slot %s on %s: %w", name, c.cfg.NodeName, err)
	}
	return nil
}

// DropSlot drops the physical slot called name if it exists.
func (c *Controller) DropSlot(ctx context.Context, name string) error {
	err := c.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name)
			FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("drop slot %s on %s: %w", name, c.cfg.NodeName, err)
	}
	return nil
}

// Credential returns the replication credential this node keeps.
func (c *Controller) Credential() (Credential, error) {
	b, err := os.ReadFile(c.l.secretFile)
	if err != nil {
		return Credential{}, fmt.Errorf("read replication credential: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return Credential{}, fmt.Errorf("read replication credential: %s is empty", c.l.secretFile)
	}
	return Credential{User: ReplicationUser, Password: pw}, nil
}

// ConnConfig returns a pgx configuration that logs in as the superuser over
// the unix socket (peer authentication through the ident map).
func (c *Controller) ConnConfig() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(conninfo([][2]string{
		{"host", c.l.run},
		{"port", strconv.Itoa(c.cfg.Port)},
		{"user", Superuser},
		{"dbname", "postgres"},
		{"application_name", "hactl"},
		{"sslmode", "disable"},
		{"connect_timeout", "3"},
	}))
	if err != nil {
		return nil, fmt.Errorf("connection config: %w", err)
	}
	return cfg, nil
}

// Connect opens a new superuser connection; the caller closes it.
func (c *Controller) Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := c.ConnConfig()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s's postgresql: %w", c.cfg.NodeName, err)
	}
	return conn, nil
}

// Close releases the status connection.
func (c *Controller) Close() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.dropConnLocked()
}

// PostmasterPID returns the PID in postmaster.pid, or 0 when there is none.
func (c *Controller) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.l.data, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: bad pid %q: %w", line, err)
	}
	return pid, nil
}

// withConn runs fn on the shared connection, (re)connecting as needed; a
// failed call drops the connection so the next one starts afresh.
func (c *Controller) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.conn == nil || c.conn.IsClosed() {
		conn, err := c.Connect(ctx)
		if err != nil {
			return err
		}
		c.conn = conn
	}
	if err := fn(c.conn); err != nil {
		c.dropConnLocked()
		return err
	}
	return nil
}

func (c *Controller) dropConnLocked() {
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.conn.Close(ctx)
		cancel()
		c.conn = nil
	}
}

func (c *Controller) inRecovery(ctx context.Context) (bool, error) {
	var r bool
	err := c.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&r)
	})
	if err != nil {
		return false, fmt.Errorf("pg_is_in_recovery: %w", err)
	}
	return r, nil
}

// start: the unlocked body of Start.
func (c *Controller) start(ctx context.Context) error {
	running, err := c.running(ctx)
	if err != nil {
		return err
	}
	if running {
		return nil
	}
	exists, err := c.dataExists()
	if err != nil {
		return err
	}
	if !exists {
		return ErrNotInitialized
	}
	if err := c.ensureDirs(); err != nil {
		return err
	}
	if err := c.checkPortFree(); err != nil {
		return err
	}
	if err := c.renderConfig(); err != nil {
		return err
	}
	c.log.Info("start", "listen", c.cfg.ListenAddr, "port", c.cfg.Port, "standby", c.hasStandbySignal())
	if _, err := c.tool(ctx, "pg_ctl", nil, "start", "-D", c.l.data, "-l", c.l.logFile, "-w", "-t", c.timeoutSecs(), "-s"); err != nil {
		return fmt.Errorf("%w; server log: %s", err, c.logTail(8))
	}
	return nil
}

// stop: the unlocked body of Stop.
func (c *Controller) stop(ctx context.Context) error {
	c.Close()
	running, err := c.running(ctx)
	if err != nil {
		return err
	}
	if !running {
		return nil
	}
	c.log.Info("stop", "mode", "fast")
	if _, err := c.tool(ctx, "pg_ctl", nil, "stop", "-D", c.l.data, "-m", "fast", "-w", "-t", c.timeoutSecs(), "-s"); err != nil {
		c.log.Warn("fast stop failed; stopping immediately", "err", err)
		if _, err2 := c.tool(ctx, "pg_ctl", nil, "stop", "-D", c.l.data, "-m", "immediate", "-w", "-t", c.timeoutSecs(), "-s"); err2 != nil {
			return fmt.Errorf("%w; immediate stop: %w", err, err2)
		}
	}
	return nil
}

// running asks pg_ctl whether the server of the data directory is running.
func (c *Controller) running(ctx context.Context) (bool, error) {
	exists, err := c.dataExists()
	if err != nil || !exists {
		return false, err
	}
	_, err = c.tool(ctx, "pg_ctl", nil, "status", "-D", c.l.data)
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		return false, nil
	}
	return false, fmt.Errorf("server status: %w", err)
}

func (c *Controller) timeoutSecs() string {
	return strconv.Itoa(int(c.cfg.StartTimeout / time.Second))
}

// dataExists reports whether PGDATA holds a PostgreSQL 15 data directory.
// A missing or empty directory is "no"; anything else that is not
// PostgreSQL's is ErrNotPostgres, so nothing of it is ever overwritten.
func (c *Controller) dataExists() (bool, error) {
	entries, err := os.ReadDir(c.l.data)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read data directory %s: %w", c.l.data, err)
	}
	if len(entries) == 0 {
		return false, nil
	}
	v, err := os.ReadFile(filepath.Join(c.l.data, "PG_VERSION"))
	if err != nil {
		return false, fmt.Errorf("%w: %s has files but no PG_VERSION", ErrNotPostgres, c.l.data)
	}
	if strings.TrimSpace(string(v)) != "15" {
		return false, fmt.Errorf("%w: %s is PostgreSQL %s's, want 15", ErrNotPostgres, c.l.data, strings.TrimSpace(string(v)))
	}
	return true, nil
}

func (c *Controller) hasStandbySignal() bool {
	_, err := os.Stat(filepath.Join(c.l.data, "standby.signal"))
	return err == nil
}

// initdb creates the data directory beside its final place and renames it
// in, so a crash half-way leaves nothing that looks initialised.
func (c *Controller) initdb(ctx context.Context) error {
	tmp := c.l.data + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove leftover %s: %w", tmp, err)
	}
	if err := c.mkdirOwned(tmp, 0o700); err != nil {
		return err
	}
	c.log.Info("initdb", "data_dir", c.l.data)
	if _, err := c.tool(ctx, "initdb", nil, "-D", tmp, "-U", Superuser, "--data-checksums",
		"--encoding=UTF8", "--locale=C.UTF-8", "--auth-local=peer", "--auth-host=scram-sha-256", "--no-instructions"); err != nil {
		return err
	}
	if err := os.Remove(c.l.data); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove empty %s: %w", c.l.data, err)
	}
	if err := os.Rename(tmp, c.l.data); err != nil {
		return fmt.Errorf("move new data directory in place: %w", err)
	}
	return nil
}

// basebackup clones up's data directory through its slot, beside the final
// place, then renames it in.
func (c *Controller) basebackup(ctx context.Context, up Upstream) error {
	tmp := c.l.data + ".clone"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove leftover %s: %w", tmp, err)
	}
	if err := c.mkdirOwned(tmp, 0o700); err != nil {
		return err
	}
	c.log.Info("pg_basebackup", "upstream_host", up.Host, "upstream_port", up.Port, "slot", up.SlotName)
	env := []string{"PGPASSFILE=" + c.l.pgpass, "PGAPPNAME=" + c.cfg.NodeName, "PGCONNECT_TIMEOUT=5"}
	if _, err := c.tool(ctx, "pg_basebackup", env, "-D", tmp, "-h", up.Host, "-p", strconv.Itoa(up.Port),
		"-U", ReplicationUser, "-w", "-X", "stream", "-S", up.SlotName, "-c", "fast"); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Remove(c.l.data); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove empty %s: %w", c.l.data, err)
	}
	if err := os.Rename(tmp, c.l.data); err != nil {
		return fmt.Errorf("move cloned data directory in place: %w", err)
	}
	return nil
}

// becomeStandby records up and marks the data directory as a standby's.
func (c *Controller) becomeStandby(up Upstream) error {
	b, err := json.Marshal(up)
	if err != nil {
		return fmt.Errorf("encode upstream: %w", err)
	}
	if err := writeFileAtomic(c.l.upstream, b, 0o600, nil); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.l.data, "standby.signal"), nil, 0o600, c.cfg.RunAs)
}

func (c *Controller) readUpstream() (Upstream, error) {
	var up Upstream
	b, err := os.ReadFile(c.l.upstream)
	if err != nil {
		return up, fmt.Errorf("read upstream: %w", err)
	}
	if err := json.Unmarshal(b, &up); err != nil {
		return up, fmt.Errorf("decode %s: %w", c.l.upstream, err)
	}
	return up, up.Validate()
}

// renderConfig writes the server's configuration files for the mode the data
// directory is in.
func (c *Controller) renderConfig() error {
	sc := serverConf{
		NodeName:           c.cfg.NodeName,
		ListenAddr:         strings.Join(c.listenAddrs(), ","),
		Port:               c.cfg.Port,
		SocketDir:          c.l.run,
		MaxSlotWALKeepSize: c.cfg.MaxSlotWALKeepSize,
		WALKeepSize:        c.cfg.WALKeepSize,
		// Only a primary waits for synchronous standbys.
		SynchronousStandbyNames: c.syncNames,
	}
	if c.hasStandbySignal() {
		up, err := c.readUpstream()
		if err != nil {
			return fmt.Errorf("standby without a usable upstream: %w", err)
		}
		sc.Standby = &standbyConf{Upstream: up, PassFile: c.l.pgpass}
		sc.SynchronousStandbyNames = ""
	}
	me, err := user.Current()
	if err != nil {
		return fmt.Errorf("current OS user: %w", err)
	}
	osUsers := []string{me.Username}
	if c.cfg.RunAs != nil {
		osUsers = append(osUsers, c.cfg.RunAs.Name)
	}
	files := map[string]string{
		"postgresql.conf":      renderServerConf(sc),
		"pg_hba.conf":          renderHBA(c.cfg.PeerAddrs, c.cfg.ClientNets),
		"pg_ident.conf":        renderIdent(osUsers),
		"postgresql.auto.conf": "# Managed by hapair (hactl): settings live in postgresql.conf.\n",
	}
	for name, content := range files {
		if err := writeFileAtomic(filepath.Join(c.l.data, name), []byte(content), 0o600, c.cfg.RunAs); err != nil {
			return err
		}
	}
	return nil
}

// checkPortFree fails with ErrPortInUse when something already listens on
// the server's address and port.
func (c *Controller) checkPortFree() error {
	for _, a := range c.listenAddrs() {
		if a == "*" {
			a = "" // every address
		}
		addr := net.JoinHostPort(a, strconv.Itoa(c.cfg.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%w: %s: another process listens there", ErrPortInUse, addr)
			}
			return fmt.Errorf("listen address %s not usable on this host: %w", addr, err)
		}
		ln.Close()
	}
	return nil
}

func (c *Controller) listenAddrs() []string {
	if c.cfg.ListenAll {
		return []string{"*"}
	}
	out := []string{c.cfg.ListenAddr}
	for _, a := range c.cfg.ExtraListenAddrs {
		if a != c.cfg.ListenAddr {
			out = append(out, a)
		}
	}
	return out
}

// ensureCredential returns the stored replication credential, making a
// random one first if there is none.
func (c *Controller) ensureCredential() (Credential, error) {
	if cred, err := c.Credential(); err == nil {
		return cred, c.writePgpass(cred)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return Credential{}, fmt.Errorf("generate replication password: %w", err)
	}
	cred := Credential{User: ReplicationUser, Password: base64.RawURLEncoding.EncodeToString(buf)}
	return cred, c.storeCredential(cred)
}

// storeCredential keeps the credential for the agent (secrets/, 0600) and as
// the passfile that libpq programs of the database OS user read.
func (c *Controller) storeCredential(cred Credential) error {
	if err := writeFileAtomic(c.l.secretFile, []byte(cred.Password+"\n"), 0o600, nil); err != nil {
		return fmt.Errorf("store replication credential: %w", err)
	}
	return c.writePgpass(cred)
}

func (c *Controller) writePgpass(cred Credential) error {
	if err := writeFileAtomic(c.l.pgpass, []byte(renderPgpass(cred)), 0o600, c.cfg.RunAs); err != nil {
		return fmt.Errorf("write passfile: %w", err)
	}
	return nil
}

// ensureReplicationRole creates the replication role, sets its password
// from the stored credential and grants what pg_rewind needs.
func (c *Controller) ensureReplicationRole(ctx context.Context, cred Credential) error {
	role := quoteIdent(ReplicationUser)
	stmts := []string{
		fmt.Sprintf(`DO $$ BEGIN
			IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) THEN
				CREATE ROLE %s LOGIN REPLICATION;
			END IF; END $$`, quoteLiteral(ReplicationUser), role),
		fmt.Sprintf("ALTER ROLE %s WITH LOGIN REPLICATION PASSWORD %s", role, quoteLiteral(cred.Password)),
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO " + role,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO " + role,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO " + role,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO " + role,
	}
	return c.withConn(ctx, func(conn *pgx.Conn) error {
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("replication role: %w", err)
			}
		}
		return nil
	})
}

// ensureDirs creates the controller's directories with their owners and
// checks the database OS user can reach them.
func (c *Controller) ensureDirs() error {
	if err := os.MkdirAll(c.l.base, 0o711); err != nil {
		return fmt.Errorf("create %s: %w", c.l.base, err)
	}
	if c.dbUserDiffers() {
		// Others may traverse (not list) the base, so the database user
		// reaches its own directories below it.
		if err := os.Chmod(c.l.base, 0o711); err != nil {
			return fmt.Errorf("chmod %s: %w", c.l.base, err)
		}
		if err := checkReachable(c.l.base, c.cfg.RunAs); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.l.secrets, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", c.l.secrets, err)
	}
	for _, d := range []string{c.l.run, c.l.logDir} {
		if err := c.mkdirOwned(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) dbUserDiffers() bool {
	return c.cfg.RunAs != nil && c.cfg.RunAs.UID != uint32(os.Geteuid())
}

// mkdirOwned creates dir (if missing) owned by the database OS user.
func (c *Controller) mkdirOwned(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	if c.dbUserDiffers() {
		if err := os.Lchown(dir, int(c.cfg.RunAs.UID), int(c.cfg.RunAs.GID)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", dir, c.cfg.RunAs.Name, err)
		}
	}
	return nil
}

// checkReachable fails with ErrUnreachable when u cannot traverse every
// directory from / down to dir.
func checkReachable(dir string, u *OSUser) error {
	for p := dir; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		mode := st.Mode().Perm()
		can := mode&0o001 != 0 ||
			(sys.Uid == u.UID && mode&0o100 != 0) ||
			(sys.Gid == u.GID && mode&0o010 != 0)
		if !can {
			return fmt.Errorf("%w: OS user %s cannot enter %s (mode %v); make it searchable (chmod o+x) or choose another directory",
				ErrUnreachable, u.Name, p, mode)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// owned by owner when given (else by the current user).
func writeFileAtomic(path string, data []byte, mode os.FileMode, owner *OSUser) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if owner != nil && owner.UID != uint32(os.Geteuid()) {
		if err := f.Chown(int(owner.UID), int(owner.GID)); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
