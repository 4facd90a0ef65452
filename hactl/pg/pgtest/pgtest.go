// Package pgtest gives tests real PostgreSQL servers: each in its own
// temporary directory, on a free loopback port, stopped (by PID if need be)
// when the test ends.
package pgtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hapair/hapair/hactl/pg"
)

// RequirePostgres fails the test when PostgreSQL 15's programs are missing
// (`make test` installs them), and skips it, saying so, under -short.
func RequirePostgres(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: needs a real PostgreSQL server and -short was given")
	}
	if _, err := os.Stat(filepath.Join(pg.DefaultBinDir, "pg_ctl")); err != nil {
		t.Fatalf("PostgreSQL 15 is not installed at %s (run `make deps`): %v", pg.DefaultBinDir, err)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Dir returns a temporary directory that the database OS user can traverse.
func Dir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	// t.TempDir makes 0700 directories; when root runs the tests,
	// PostgreSQL runs as "postgres" and must be able to enter them.
	for p := d; p != os.TempDir() && p != filepath.Dir(p); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatalf("chmod %s: %v", p, err)
		}
	}
	return d
}

// Logger returns a logger that writes into the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// Config returns a controller configuration for node name, in its own
// directory on a free loopback port, admitting peers from loopback.
func Config(t testing.TB, name string) pg.Config {
	t.Helper()
	RequirePostgres(t)
	runAs, err := pg.DatabaseOSUser()
	if err != nil {
		t.Fatalf("database OS user: %v", err)
	}
	cfg := pg.DefaultConfig()
	cfg.NodeName = name
	cfg.BaseDir = filepath.Join(Dir(t), name)
	cfg.Port = FreePort(t)
	cfg.PeerAddrs = []string{"127.0.0.1"}
	cfg.ClientNets = []string{"127.0.0.1/32"}
	cfg.RunAs = runAs
	cfg.StartTimeout = 30 * time.Second
	cfg.Logger = Logger(t)
	return cfg
}

// New returns a controller for cfg whose server is stopped when the test ends.
func New(t testing.TB, cfg pg.Config) *pg.Controller {
	t.Helper()
	c, err := pg.New(cfg)
	if err != nil {
		t.Fatalf("pg.New(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() { Stop(t, c) })
	return c
}

// Stop stops c's server: pg_ctl's fast stop, then SIGKILL to the postmaster
// PID if it is still there.
func Stop(t testing.TB, c *pg.Controller) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	pid, _ := c.PostmasterPID()
	if err := c.Stop(ctx); err != nil {
		t.Logf("stop postgresql: %v", err)
	}
	c.Close()
	if pid > 0 && syscall.Kill(pid, 0) == nil {
		if err := killWait(pid); err != nil {
			t.Errorf("postmaster %d: %v", pid, err)
		}
	}
}

func killWait(pid int) error {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("still alive 5s after SIGKILL")
}
