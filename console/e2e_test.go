package console_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/hapair/hapair/console"
	"github.com/hapair/hapair/hactl/hactltest"
	"github.com/hapair/hapair/hactl/hapb"
)

func TestMain(m *testing.M) { os.Exit(hactltest.Main(m)) }

// consoleProc is a `hactl console` process a test started.
type consoleProc struct {
	port  string
	dir   string
	known string
	key   string
}

// startConsole runs `hactl console` for name of lab l, with a fresh key
// authorised for admin at first start, and waits until it accepts
// connections. The process is stopped (SIGTERM, then SIGKILL) by its PID
// when the test ends.
func startConsole(t testing.TB, l *hactltest.Lab, name string) *consoleProc {
	t.Helper()
	bin := hactltest.BuildHactl(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	state := filepath.Join(dir, "console")
	var out bytes.Buffer
	cmd := exec.Command(bin, "console", "--config", l.ConfigPath(name), "--listen", addr, "--dir", state,
		"--authorized-key", key+".pub")
	logf, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = &out, logf
	t.Cleanup(func() { // after the process has stopped
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("console log:\n%s", b)
		}
	})
	exited := startOwned(t, cmd, 20*time.Second)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("hactl console exited: %s", b)
		default:
		}
		if i > 200 {
			t.Fatalf("hactl console does not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	hk, err := os.ReadFile(filepath.Join(state, console.HostKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(hk)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	known := filepath.Join(dir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%s %s", port, gossh.MarshalAuthorizedKey(signer.PublicKey()))
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "created user admin") {
		t.Fatalf("first start did not create admin: %q", out.String())
	}
	return &consoleProc{port: port, dir: dir, known: known, key: key}
}

// startOwned starts cmd and stops it by its PID when the test ends (SIGTERM,
// then SIGKILL after grace), before the cleanups registered earlier run. The
// channel closes once the process has exited.
func startOwned(t testing.TB, cmd *exec.Cmd, grace time.Duration) <-chan struct{} {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	return exited
}

// sshArgs are the OpenSSH client's arguments to log in to the console as
// admin with the test's key and known host key, with more options opts and
// the command line (none when empty).
func (c *consoleProc) sshArgs(opts []string, line string) []string {
	args := append([]string{"-F", "/dev/null", "-p", c.port, "-i", c.key, "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + c.known,
		"-o", "LogLevel=ERROR"}, opts...)
	args = append(args, "admin@127.0.0.1")
	if line != "" {
		args = append(args, line)
	}
	return args
}

// startPairConsole starts a lab pair and witness (real agents, real
// PostgreSQL), waits until primary-node is Active and streams to
// secondary-node, and starts `hactl console` on primary-node. It skips
// under -short.
func startPairConsole(t testing.TB) (*hactltest.Lab, *consoleProc) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL and real agents")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatalf("the OpenSSH client is needed (scripts/ensure-deps.sh ssh): %v", err)
	}
	l := hactltest.New(t, hactltest.Options{Witness: true})
	l.Start(l.Names()...)
	l.WaitFor(hactltest.Primary, "primary-node Active, streaming to secondary-node",
		hactltest.Replicates(hactltest.Primary, hactltest.Secondary))
	return l, startConsole(t, l, hactltest.Primary)
}

// ssh runs the real OpenSSH client against the console; it returns stdout,
// stderr and the exit status.
func (c *consoleProc) ssh(t testing.TB, line string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("ssh", c.sshArgs(nil, line)...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("ssh %s: %v", line, err)
	}
	if _, bench := t.(*testing.B); !bench {
		t.Logf("ssh %s: exit %d\n%s%s", line, code, so.String(), se.String())
	}
	return so.String(), se.String(), code
}

// The console in front of real agents and PostgreSQL: a pair and a witness,
// scenario A's first half through `ssh admin@primary <command>`.
func TestConsoleEndToEnd(t *testing.T) {
	l, c := startPairConsole(t)

	out, _, code := c.ssh(t, "ha_status")
	if code != 0 || !strings.Contains(out, "primary-node") {
		t.Fatalf("ha_status on a healthy pair: exit %d", code)
	}
	out, _, code = c.ssh(t, "ha_status --json")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Fatalf("ha_status --json: exit %d", code)
	}

	out, errOut, code := c.ssh(t, "ha_cluster_stop")
	if code != 0 {
		t.Fatalf("ha_cluster_stop: exit %d: %s", code, errOut)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n < 3 || !strings.Contains(out, "secondary-node") {
		t.Fatalf("ha_cluster_stop printed %d lines; want its steps naming the new Active node", n)
	}
	l.WaitFor(hactltest.Secondary, "secondary-node Active", func(s *hapb.Snapshot) bool {
		return s.GetCluster().GetActiveNode() == hactltest.Secondary && s.GetCluster().GetVip().GetHolder() == hactltest.Secondary
	})

	out, errOut, code = c.ssh(t, "ha_status")
	if code != 2 || !strings.Contains(out+errOut, "Error: cluster is not currently running on this node") {
		t.Fatalf("ha_status on the stopped node: exit %d", code)
	}

	if _, errOut, code = c.ssh(t, "ha_cluster_start"); code != 0 {
		t.Fatalf("ha_cluster_start: exit %d: %s", code, errOut)
	}
	l.WaitFor(hactltest.Primary, "primary-node Standby of secondary-node", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_STANDBY &&
			hactltest.Replicates(hactltest.Secondary, hactltest.Primary)(s)
	})
	if out, _, code = c.ssh(t, "ha_status"); code != 0 || !strings.Contains(out, "Standby") {
		t.Fatalf("ha_status after the restart: exit %d", code)
	}
}

// BenchmarkExecStatusRealAgent: `ssh -i key admin@127.0.0.1 -p PORT
// ha_status` with the real OpenSSH client against `hactl console` in front of
// a real agent (pair and witness, PostgreSQL running), as an operator's
// script sees it.
func BenchmarkExecStatusRealAgent(b *testing.B) {
	_, c := startPairConsole(b)
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, errOut, code := c.ssh(b, "ha_status"); code != 0 {
			b.Fatalf("ha_status: exit %d: %s", code, errOut)
		}
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(ds[len(ds)/2]), "ms-median/op")
	b.ReportMetric(ms(ds[len(ds)*95/100]), "ms-p95/op")
}

// Scenario C through the consoles of both nodes, with real agents and
// PostgreSQL: a script cannot tear down without --yes, the Standby refuses,
// the Active node's teardown warns, destroys the cluster and leaves this
// server stand-alone with its database, and the other node is deactivated.
func TestConsoleScenarioC(t *testing.T) {
	l, primary := startPairConsole(t)
	secondary := startConsole(t, l, hactltest.Secondary)

	out, errOut, code := primary.ssh(t, "ha_teardown")
	if code != 64 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("ha_teardown in exec mode without --yes: exit %d, stderr %q", code, errOut)
	}
	if _, _, code := primary.ssh(t, "ha_status"); code != 0 {
		t.Fatalf("the refused teardown changed something: ha_status exit %d", code)
	}
	if _, errOut, code = secondary.ssh(t, "ha_teardown --yes"); code != 1 || !strings.Contains(errOut, "Active node") {
		t.Fatalf("ha_teardown on the Standby: exit %d, stderr %q", code, errOut)
	}

	out, errOut, code = primary.ssh(t, "ha_teardown --yes")
	if code != 0 {
		t.Fatalf("ha_teardown --yes: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"WARNING: You are about to destroy the HA cluster configuration and convert this server into stand-alone mode.",
		"The HA cluster has been destroyed. This server is now in stand-alone mode.",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("ha_teardown output lacks %q:\n%s", want, out)
		}
	}

	out, _, code = primary.ssh(t, "ha_status")
	if code != 3 || !strings.Contains(out, "HA is not enabled on this node.") {
		t.Fatalf("ha_status after the teardown: exit %d:\n%s", code, out)
	}
	l.WaitFor(hactltest.Primary, "primary-node stand-alone with its database, VIP gone", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_STANDALONE && !s.GetLocal().GetHoldsVip() &&
			s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
	})
	l.WaitFor(hactltest.Secondary, "secondary-node deactivated, its database stopped", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetDeactivated() && s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_STOPPED
	})
	if _, errOut, code = secondary.ssh(t, "ha_cluster_start"); code == 0 {
		t.Fatalf("the deactivated node rejoined without a new deployment: %s", errOut)
	}
}
