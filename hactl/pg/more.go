package pg

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ControlData is what pg_controldata reads from a data directory.
type ControlData struct {
	// State is the cluster state, e.g. "shut down", "in production".
	State string
	// CheckpointLSN is the latest checkpoint's location: after a clean
	// shutdown, the end of the primary's WAL is just past it.
	CheckpointLSN LSN
	Timeline      uint32
}

// ControlData runs pg_controldata on the data directory.
func (c *Controller) ControlData(ctx context.Context) (ControlData, error) {
	out, err := c.tool(ctx, "pg_controldata", nil, "-D", c.l.data)
	if err != nil {
		return ControlData{}, fmt.Errorf("control data of %s: %w", c.cfg.NodeName, err)
	}
	return parseControlData(out)
}

func parseControlData(out string) (ControlData, error) {
	var cd ControlData
	var haveLSN bool
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Database cluster state":
			cd.State = v
		case "Latest checkpoint location":
			l, err := ParseLSN(v)
			if err != nil {
				return cd, fmt.Errorf("pg_controldata: %w", err)
			}
			cd.CheckpointLSN, haveLSN = l, true
		case "Latest checkpoint's TimeLineID":
			var tl uint32
			if _, err := fmt.Sscanf(v, "%d", &tl); err != nil {
				return cd, fmt.Errorf("pg_controldata timeline %q: %w", v, err)
			}
			cd.Timeline = tl
		}
	}
	if cd.State == "" || !haveLSN {
		return cd, fmt.Errorf("pg_controldata: no cluster state or checkpoint location in its output")
	}
	return cd, nil
}

// Fence stops a server at once (immediate shutdown): used when this node
// must stop writing now, because it lost the right to be primary. Not
// running is success.
func (c *Controller) Fence(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Close()
	running, err := c.running(ctx)
	if err != nil {
		return fmt.Errorf("fence %s: %w", c.cfg.NodeName, err)
	}
	if !running {
		return nil
	}
	c.log.Warn("fence: immediate stop")
	if _, err := c.tool(ctx, "pg_ctl", nil, "stop", "-D", c.l.data, "-m", "immediate", "-w", "-t", c.timeoutSecs(), "-s"); err != nil {
		return fmt.Errorf("fence %s: %w", c.cfg.NodeName, err)
	}
	return nil
}

// Upstream is the upstream this node streams from while it is a standby.
func (c *Controller) Upstream() (Upstream, bool) {
	up, err := c.readUpstream()
	if err != nil || !c.hasStandbySignal() {
		return Upstream{}, false
	}
	return up, true
}

// Initialized reports whether the data directory exists (and is PostgreSQL's).
func (c *Controller) Initialized() (bool, error) { return c.dataExists() }

// MoveAside renames the data directory out of the way (never deletes it),
// so a standby whose rewind failed can be cloned afresh without losing
// anything. The server must be stopped.
func (c *Controller) MoveAside(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stop(ctx); err != nil {
		return "", fmt.Errorf("move aside %s: %w", c.cfg.NodeName, err)
	}
	dst := fmt.Sprintf("%s.old-%s", c.l.data, time.Now().UTC().Format("20060102T150405"))
	if err := os.Rename(c.l.data, dst); err != nil {
		return "", fmt.Errorf("move aside %s: %w", c.cfg.NodeName, err)
	}
	_ = os.Remove(c.l.upstream)
	c.log.Warn("data directory moved aside", "to", dst)
	return dst, nil
}

// SetSynchronousStandbyNames sets synchronous_standby_names on a running
// primary (rendered into postgresql.conf, then reloaded).
func (c *Controller) SetSynchronousStandbyNames(ctx context.Context, names string) error {
	c.mu.Lock()
	c.syncNames = names
	err := c.renderConfig()
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("synchronous standby names: %w", err)
	}
	if err := c.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT pg_reload_conf()")
		return err
	}); err != nil {
		return fmt.Errorf("synchronous standby names: reload: %w", err)
	}
	return nil
}

// SyncStandbyName is the synchronous_standby_names value naming node.
func SyncStandbyName(node string) string { return `"` + strings.ReplaceAll(node, `"`, ``) + `"` }

// SettleTimeline makes the control file show the current timeline: a
// promoted server writes its end-of-recovery checkpoint lazily, and until
// then pg_rewind, which reads the source's timeline from its control file,
// would wrongly find nothing to rewind. It runs CHECKPOINT if needed.
func (c *Controller) SettleTimeline(ctx context.Context) error {
	return c.withConn(ctx, func(conn *pgx.Conn) error {
		var inRecovery bool
		var ctl int64
		var walfile string
		err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), (pg_control_checkpoint()).timeline_id,
			CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(pg_current_wal_lsn()) END`).Scan(&inRecovery, &ctl, &walfile)
		if err != nil {
			return fmt.Errorf("settle timeline of %s: %w", c.cfg.NodeName, err)
		}
		if inRecovery {
			return nil
		}
		cur, err := timelineOfWalfile(walfile)
		if err != nil {
			return err
		}
		if int64(cur) == ctl {
			return nil
		}
		c.log.Info("checkpoint to settle the timeline", "control_timeline", ctl, "timeline", cur)
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			return fmt.Errorf("settle timeline of %s: checkpoint: %w", c.cfg.NodeName, err)
		}
		return nil
	})
}

// Reconfigure rewrites the configuration files and, if the server runs,
// reloads them (pg_hba.conf and the replication settings take effect; the
// listen addresses need a restart). An agent calls it at start, since its
// membership may have changed while the server kept running.
func (c *Controller) Reconfigure(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	exists, err := c.dataExists()
	if err != nil || !exists {
		return err
	}
	running, err := c.running(ctx)
	if err != nil || !running {
		return err
	}
	if err := c.renderConfig(); err != nil {
		return fmt.Errorf("reconfigure %s: %w", c.cfg.NodeName, err)
	}
	if err := c.withConn(ctx, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT pg_reload_conf()")
		return err
	}); err != nil {
		return fmt.Errorf("reconfigure %s: reload: %w", c.cfg.NodeName, err)
	}
	return nil
}
