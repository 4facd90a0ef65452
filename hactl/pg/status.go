package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Role is PostgreSQL's own view of itself.
type Role int

// The roles a server can be in, as read from the server.
const (
	RoleUnknown Role = iota
	RolePrimary
	RoleStandby
	RoleStopped
	RoleUninitialized
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleStandby:
		return "standby"
	case RoleStopped:
		return "stopped"
	case RoleUninitialized:
		return "uninitialized"
	}
	return "unknown"
}

// LSN is a WAL position.
type LSN uint64

// ParseLSN parses PostgreSQL's text form "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("parse lsn %q: want X/Y in hex", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xffffffff) }

// Status is one reading of the server.
type Status struct {
	Role                    Role
	Timeline                uint32
	CurrentLSN              LSN // primary
	ReceiveLSN, ReplayLSN   LSN // standby
	LastReplayAt            time.Time
	Replicas                []Replica
	WalReceiver             *WalReceiver
	ServerVersion           string
	SystemIdentifier        uint64
	SynchronousStandbyNames string
	StartedAt               time.Time
}

// Replica is one row of pg_stat_replication.
type Replica struct {
	PID                           int32
	ApplicationName, ClientAddr   string
	State, SyncState              string
	SentLSN, WriteLSN, FlushLSN   LSN
	ReplayLSN                     LSN
	WriteLag, FlushLag, ReplayLag time.Duration
	LagBytes                      uint64
	ReplyTime                     time.Time
}

// WalReceiver is the row of pg_stat_wal_receiver.
type WalReceiver struct {
	PID                              int32
	Status                           string
	ReceivedTLI                      uint32
	WrittenLSN, FlushedLSN           LSN
	LatestEndLSN                     LSN
	LastMsgSendTime, LastMsgReceived time.Time
	SlotName, SenderHost             string
	SenderPort                       int32
}

// Status reads the server's state with SQL over the controller's connection.
// A server that does not answer is RoleStopped (RoleUninitialized with no
// data directory) with the connection error; other errors are returned.
func (c *Controller) Status(ctx context.Context) (Status, error) {
	exists, err := c.dataExists()
	if err != nil {
		return Status{Role: RoleUnknown}, err
	}
	if !exists {
		return Status{Role: RoleUninitialized}, nil
	}
	var st Status
	err = c.withConn(ctx, func(conn *pgx.Conn) error {
		var e error
		st, e = readStatus(ctx, conn)
		return e
	})
	if err != nil {
		if isConnectError(err) {
			return Status{Role: RoleStopped}, nil
		}
		return Status{Role: RoleUnknown}, fmt.Errorf("status of %s: %w", c.cfg.NodeName, err)
	}
	return st, nil
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

func readStatus(ctx context.Context, conn *pgx.Conn) (Status, error) {
	var st Status
	var inRecovery bool
	var sysid string
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_setting('server_version'),
			(SELECT system_identifier::text FROM pg_control_system()), pg_postmaster_start_time(),
			current_setting('synchronous_standby_names')`).
		Scan(&inRecovery, &st.ServerVersion, &sysid, &st.StartedAt, &st.SynchronousStandbyNames); err != nil {
		return st, fmt.Errorf("read server: %w", err)
	}
	st.SystemIdentifier, _ = strconv.ParseUint(sysid, 10, 64)
	if inRecovery {
		st.Role = RoleStandby
		var recv, replay *string
		var replayAt *time.Time
		var tli int64
		if err := conn.QueryRow(ctx, `SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
				pg_last_xact_replay_timestamp(), (pg_control_checkpoint()).timeline_id`).
			Scan(&recv, &replay, &replayAt, &tli); err != nil {
			return st, fmt.Errorf("read standby positions: %w", err)
		}
		var err error
		if st.ReceiveLSN, err = parseOptLSN(recv); err != nil {
			return st, err
		}
		if st.ReplayLSN, err = parseOptLSN(replay); err != nil {
			return st, err
		}
		if replayAt != nil {
			st.LastReplayAt = *replayAt
		}
		st.Timeline = uint32(tli)
		wr, err := readWalReceiver(ctx, conn)
		if err != nil {
			return st, err
		}
		st.WalReceiver = wr
		if wr != nil && wr.ReceivedTLI > st.Timeline {
			st.Timeline = wr.ReceivedTLI
		}
	} else {
		st.Role = RolePrimary
		var cur, walfile string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())`).
			Scan(&cur, &walfile); err != nil {
			return st, fmt.Errorf("read primary position: %w", err)
		}
		var err error
		if st.CurrentLSN, err = ParseLSN(cur); err != nil {
			return st, err
		}
		if st.Timeline, err = timelineOfWalfile(walfile); err != nil {
			return st, err
		}
	}
	reps, err := readReplicas(ctx, conn)
	if err != nil {
		return st, err
	}
	st.Replicas = reps
	return st, nil
}

// timelineOfWalfile reads the timeline from a WAL file name (its first 8
// hex digits).
func timelineOfWalfile(name string) (uint32, error) {
	if len(name) != 24 {
		return 0, fmt.Errorf("wal file name %q: want 24 hex digits", name)
	}
	t, err := strconv.ParseUint(name[:8], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("wal file name %q: %w", name, err)
	}
	return uint32(t), nil
}

func parseOptLSN(s *string) (LSN, error) {
	if s == nil {
		return 0, nil
	}
	return ParseLSN(*s)
}

func durOf(secs *float64) time.Duration {
	if secs == nil {
		return 0
	}
	return time.Duration(*secs * float64(time.Second))
}

func readReplicas(ctx context.Context, conn *pgx.Conn) ([]Replica, error) {
	rows, err := conn.Query(ctx, `SELECT pid, coalesce(application_name, ''), coalesce(host(client_addr), ''),
			coalesce(state, ''), coalesce(sync_state, ''),
			sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
			extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8, extract(epoch FROM replay_lag)::float8,
			coalesce(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, replay_lsn), 0)::float8,
			reply_time
		FROM pg_stat_replication ORDER BY application_name, pid`)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_replication: %w", err)
	}
	defer rows.Close()
	var out []Replica
	for rows.Next() {
		var r Replica
		var sent, write, flush, replay *string
		var wl, fl, rl *float64
		var lag float64
		var reply *time.Time
		if err := rows.Scan(&r.PID, &r.ApplicationName, &r.ClientAddr, &r.State, &r.SyncState,
			&sent, &write, &flush, &replay, &wl, &fl, &rl, &lag, &reply); err != nil {
			return nil, fmt.Errorf("scan pg_stat_replication: %w", err)
		}
		for _, p := range []struct {
			dst *LSN
			src *string
		}{{&r.SentLSN, sent}, {&r.WriteLSN, write}, {&r.FlushLSN, flush}, {&r.ReplayLSN, replay}} {
			if *p.dst, err = parseOptLSN(p.src); err != nil {
				return nil, err
			}
		}
		r.WriteLag, r.FlushLag, r.ReplayLag = durOf(wl), durOf(fl), durOf(rl)
		if lag > 0 {
			r.LagBytes = uint64(lag)
		}
		if reply != nil {
			r.ReplyTime = *reply
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pg_stat_replication: %w", err)
	}
	return out, nil
}

func readWalReceiver(ctx context.Context, conn *pgx.Conn) (*WalReceiver, error) {
	var w WalReceiver
	var written, flushed, latest *string
	var send, recv *time.Time
	var tli *int32
	err := conn.QueryRow(ctx, `SELECT pid, coalesce(status, ''), received_tli,
			written_lsn::text, flushed_lsn::text, latest_end_lsn::text,
			last_msg_send_time, last_msg_receipt_time,
			coalesce(slot_name, ''), coalesce(sender_host, ''), coalesce(sender_port, 0)
		FROM pg_stat_wal_receiver`).
		Scan(&w.PID, &w.Status, &tli, &written, &flushed, &latest, &send, &recv, &w.SlotName, &w.SenderHost, &w.SenderPort)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_wal_receiver: %w", err)
	}
	if tli != nil {
		w.ReceivedTLI = uint32(*tli)
	}
	for _, p := range []struct {
		dst *LSN
		src *string
	}{{&w.WrittenLSN, written}, {&w.FlushedLSN, flushed}, {&w.LatestEndLSN, latest}} {
		if *p.dst, err = parseOptLSN(p.src); err != nil {
			return nil, err
		}
	}
	if send != nil {
		w.LastMsgSendTime = *send
	}
	if recv != nil {
		w.LastMsgReceived = *recv
	}
	return &w, nil
}
