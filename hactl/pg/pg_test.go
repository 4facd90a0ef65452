package pg_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pg/pgtest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func exec(t *testing.T, c *pg.Controller, sql string, args ...any) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	conn, err := c.Connect(ctx)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// waitRow waits (bounded) until the standby has replayed the row with this id.
func waitRow(t *testing.T, c *pg.Controller, id int) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	conn, err := c.Connect(ctx)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var lastErr error
	for i := 0; i < 300; i++ {
		var n int
		lastErr = conn.QueryRow(ctx, "SELECT count(*) FROM accounts WHERE id = $1", id).Scan(&n)
		if lastErr == nil && n == 1 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("row %d never reached the standby (last error: %v)", id, lastErr)
}

func mustStatus(t *testing.T, c *pg.Controller) pg.Status {
	t.Helper()
	st, err := c.Status(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func upstreamOf(c *pg.Controller, forNode string) pg.Upstream {
	return pg.Upstream{Host: c.ListenAddr(), Port: c.Port(), SlotName: pg.SlotName(forNode)}
}

// waitStreaming waits until primary reports a streaming replica named name.
func waitStreaming(t *testing.T, primary *pg.Controller, name string) pg.Replica {
	t.Helper()
	for i := 0; i < 300; i++ {
		st := mustStatus(t, primary)
		for _, r := range st.Replicas {
			if r.ApplicationName == name && r.State == "streaming" {
				return r
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never streamed from the primary", name)
	return pg.Replica{}
}

// TestReplicationRoundTrip is the life of a pair: init, clone, replicate,
// promote the standby, rewind the old primary under it, replicate back.
func TestReplicationRoundTrip(t *testing.T) {
	a := pgtest.New(t, pgtest.Config(t, "primary-node"))
	b := pgtest.New(t, pgtest.Config(t, "secondary-node"))
	ctx := ctxT(t, 5*time.Minute)

	if err := a.Init(ctx); err != nil {
		t.Fatalf("init: %v", err)
	}
	if err := a.Init(ctx); err != nil {
		t.Fatalf("init again (idempotent): %v", err)
	}
	if st := mustStatus(t, a); st.Role != pg.RolePrimary || st.Timeline != 1 {
		t.Fatalf("after init: role %v timeline %d, want primary on timeline 1", st.Role, st.Timeline)
	}
	if err := a.EnsureSlot(ctx, pg.SlotName("secondary-node")); err != nil {
		t.Fatalf("ensure slot: %v", err)
	}
	cred, err := a.Credential()
	if err != nil {
		t.Fatalf("credential: %v", err)
	}
	if cred.User != pg.ReplicationUser || len(cred.Password) < 32 {
		t.Fatalf("credential %q with %d-char password: want %s and a long random password", cred.User, len(cred.Password), pg.ReplicationUser)
	}
	if err := b.Clone(ctx, upstreamOf(a, "secondary-node"), cred); err != nil {
		t.Fatalf("clone: %v", err)
	}
	if err := b.Clone(ctx, upstreamOf(a, "secondary-node"), cred); err != nil {
		t.Fatalf("clone again (idempotent): %v", err)
	}

	exec(t, a, "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL)")
	exec(t, a, "INSERT INTO accounts VALUES (1, 'ONE')")
	waitRow(t, b, 1)

	rep := waitStreaming(t, a, "secondary-node")
	if rep.ClientAddr != "127.0.0.1" || rep.SyncState != "async" {
		t.Errorf("replica row %+v: want client 127.0.0.1, async", rep)
	}
	sb := mustStatus(t, b)
	if sb.Role != pg.RoleStandby || sb.WalReceiver == nil || sb.WalReceiver.Status != "streaming" {
		t.Fatalf("standby status %+v: want standby with a streaming WAL receiver", sb)
	}
	if sb.WalReceiver.SenderPort != int32(a.Port()) || sb.WalReceiver.SlotName != pg.SlotName("secondary-node") {
		t.Errorf("wal receiver %+v: want sender port %d through slot %s", sb.WalReceiver, a.Port(), pg.SlotName("secondary-node"))
	}
	if sb.ReplayLSN == 0 || sb.ReceiveLSN < sb.ReplayLSN {
		t.Errorf("standby LSNs receive %v replay %v: want replay > 0 and receive >= replay", sb.ReceiveLSN, sb.ReplayLSN)
	}

	// Fail over: the old primary stops, the standby is promoted.
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("stop a: %v", err)
	}
	if st := mustStatus(t, a); st.Role != pg.RoleStopped {
		t.Fatalf("a after stop: %v, want stopped", st.Role)
	}
	if err := b.Promote(ctx); err != nil {
		t.Fatalf("promote b: %v", err)
	}
	if err := b.Promote(ctx); err != nil {
		t.Fatalf("promote b again (idempotent): %v", err)
	}
	sb = mustStatus(t, b)
	if sb.Role != pg.RolePrimary || sb.Timeline != 2 {
		t.Fatalf("b after promote: %v timeline %d, want primary on timeline 2", sb.Role, sb.Timeline)
	}
	exec(t, b, "INSERT INTO accounts VALUES (2, 'TEST')")

	// The old primary cannot simply follow: it was a primary.
	if err := a.Follow(ctx, upstreamOf(b, "primary-node")); !errors.Is(err, pg.ErrIsPrimary) {
		t.Fatalf("follow on a stopped primary: %v, want ErrIsPrimary", err)
	}
	if err := b.EnsureSlot(ctx, pg.SlotName("primary-node")); err != nil {
		t.Fatalf("ensure slot on b: %v", err)
	}
	if err := a.Rewind(ctx, upstreamOf(b, "primary-node")); err != nil {
		t.Fatalf("rewind a: %v", err)
	}
	waitRow(t, a, 2)
	exec(t, b, "INSERT INTO accounts VALUES (3, 'THREE')")
	waitRow(t, a, 3)
	waitStreaming(t, b, "primary-node")
	sa := mustStatus(t, a)
	if sa.Role != pg.RoleStandby || sa.Timeline != 2 || sa.WalReceiver == nil || sa.WalReceiver.SenderPort != int32(b.Port()) {
		t.Fatalf("a after rewind: %+v, want a standby of b on timeline 2", sa)
	}

	// Re-pointing a running standby at the same upstream is harmless.
	if err := a.Follow(ctx, upstreamOf(b, "primary-node")); err != nil {
		t.Fatalf("follow: %v", err)
	}
	exec(t, b, "INSERT INTO accounts VALUES (4, 'FOUR')")
	waitRow(t, a, 4)
	if err := b.Follow(ctx, upstreamOf(a, "secondary-node")); !errors.Is(err, pg.ErrIsPrimary) {
		t.Fatalf("follow on a running primary: %v, want ErrIsPrimary", err)
	}
}

func TestBadInput(t *testing.T) {
	pgtest.RequirePostgres(t)
	ctx := ctxT(t, 2*time.Minute)

	t.Run("foreign data directory", func(t *testing.T) {
		cfg := pgtest.Config(t, "primary-node")
		if err := os.MkdirAll(filepath.Join(cfg.BaseDir, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		precious := filepath.Join(cfg.BaseDir, "data", "precious.txt")
		if err := os.WriteFile(precious, []byte("do not lose me"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := pgtest.New(t, cfg)
		if err := c.Init(ctx); !errors.Is(err, pg.ErrNotPostgres) {
			t.Fatalf("init over a foreign directory: %v, want ErrNotPostgres", err)
		} else {
			t.Logf("the operator reads: %v", err)
		}
		if b, err := os.ReadFile(precious); err != nil || string(b) != "do not lose me" {
			t.Fatalf("the foreign file was touched: %q, %v", b, err)
		}
	})

	t.Run("port in use", func(t *testing.T) {
		cfg := pgtest.Config(t, "primary-node")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cfg.Port = ln.Addr().(*net.TCPAddr).Port
		c := pgtest.New(t, cfg)
		err = c.Init(ctx)
		if !errors.Is(err, pg.ErrPortInUse) {
			t.Fatalf("init on a busy port: %v, want ErrPortInUse", err)
		}
		if want := strconv.Itoa(cfg.Port); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name the port %s", err, want)
		}
		t.Logf("the operator reads: %v", err)
	})

	t.Run("missing binary", func(t *testing.T) {
		cfg := pgtest.Config(t, "primary-node")
		cfg.BinDir = t.TempDir()
		if _, err := pg.New(cfg); !errors.Is(err, pg.ErrBinaryMissing) || !strings.Contains(err.Error(), "postgres") {
			t.Fatalf("New with an empty bin dir: %v, want ErrBinaryMissing naming the program", err)
		}
	})

	t.Run("clone refuses to overwrite a primary", func(t *testing.T) {
		a := pgtest.New(t, pgtest.Config(t, "primary-node"))
		if err := a.Init(ctx); err != nil {
			t.Fatal(err)
		}
		cred, err := a.Credential()
		if err != nil {
			t.Fatal(err)
		}
		err = a.Clone(ctx, upstreamOf(a, "primary-node"), cred)
		if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
			t.Fatalf("clone over a primary: %v, want a refusal", err)
		}
		if st := mustStatus(t, a); st.Role != pg.RolePrimary {
			t.Fatalf("after refused clone: %v, want still primary", st.Role)
		}
	})

	t.Run("clone from a dead upstream", func(t *testing.T) {
		c := pgtest.New(t, pgtest.Config(t, "secondary-node"))
		up := pg.Upstream{Host: "127.0.0.1", Port: pgtest.FreePort(t), SlotName: pg.SlotName("secondary-node")}
		err := c.Clone(ctx, up, pg.Credential{User: pg.ReplicationUser, Password: "x"})
		if err == nil || !strings.Contains(err.Error(), "pg_basebackup") {
			t.Fatalf("clone from nowhere: %v, want a pg_basebackup error", err)
		}
		if st := mustStatus(t, c); st.Role != pg.RoleUninitialized {
			t.Fatalf("after failed clone: %v, want uninitialized (nothing half-made)", st.Role)
		}
	})
}
