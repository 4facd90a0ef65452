package hactl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/cli"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pg/pgtest"
	"github.com/hapair/hapair/hactl/pki"
)

// hactlBin is the hactl binary built once for the package's tests.
var hactlBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hactl-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	hactlBin = filepath.Join(dir, "hactl")
	out, err := exec.Command("go", "build", "-o", hactlBin, "github.com/hapair/hapair/cmd/hactl").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build hactl: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// Loopback addresses of the lab's nodes: the reference deployment's last
// octets (198.18.0.5, .10, .12, .20) on 127.0.0.0/8.
var labIP = map[string]string{"primary-node": "127.0.0.5", "secondary-node": "127.0.0.10", "witness": "127.0.0.20"}

const labVIP = "127.0.0.12"

// lab is a cluster of real hactl agent processes on loopback, each data
// node with its own PostgreSQL.
type lab struct {
	t      testing.TB
	dir    string
	ca     *pki.CA
	cfgs   map[string]hactl.Config
	procs  map[string]*exec.Cmd
	pgPort int
	// ns, when set, is the network namespace each member runs in.
	ns map[string]string
}

// freePortOn finds a TCP port free on every given address.
func freePortOn(t testing.TB, addrs ...string) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := pgtest.FreePort(t)
		ok := true
		for _, a := range addrs {
			ln, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
			u, err := net.ListenPacket("udp", net.JoinHostPort(a, strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			u.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatalf("no port free on %v", addrs)
	return 0
}

func newLab(t testing.TB, withWitness bool) *lab {
	t.Helper()
	pgtest.RequirePostgres(t)
	ca, err := pki.NewCA("lab", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: pgtest.Dir(t), ca: ca, cfgs: map[string]hactl.Config{}, procs: map[string]*exec.Cmd{}}
	names := []string{"primary-node", "secondary-node"}
	if withWitness {
		names = append(names, "witness")
	}
	all := []string{labVIP}
	for _, n := range names {
		all = append(all, labIP[n])
	}
	l.pgPort = freePortOn(t, all...)
	var members []hactl.MemberConfig
	for _, n := range names {
		m := hactl.MemberConfig{Name: n, Kind: "data", PublicAddr: labIP[n],
			AgentPort: freePortOn(t, labIP[n]), RaftPort: freePortOn(t, labIP[n]), HeartbeatPort: freePortOn(t, labIP[n]), PGPort: l.pgPort}
		if n == "witness" {
			m.Kind, m.PGPort = "witness", 0
		}
		members = append(members, m)
	}
	for _, n := range names {
		c := hactl.DefaultConfig()
		c.ClusterName = "lab"
		c.NodeName = n
		c.StateDir = filepath.Join(l.dir, n)
		c.Members = members
		if n != "witness" {
			c.VIP = &hactl.VIPConfig{Address: labVIP, Mode: "userspace"}
			c.Postgres.ReplicationFrom = []string{"127.0.0.1"}
			c.Postgres.ClientNets = []string{"127.0.0.0/8"}
		}
		switch n {
		case "primary-node":
			c.Bootstrap = hactl.BootstrapPrimary
		case "secondary-node":
			c.Bootstrap = hactl.BootstrapStandby
		}
		l.member(c, labIP[n])
	}
	t.Cleanup(l.cleanup)
	return l
}

func (l *lab) configPath(name string) string { return filepath.Join(l.dir, name+".json") }
func (l *lab) logPath(name string) string    { return filepath.Join(l.dir, name+".log") }

// start runs name's agent as a process.
func (l *lab) start(name string) {
	l.t.Helper()
	b, err := json.MarshalIndent(l.cfgs[name], "", "  ")
	if err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(l.configPath(name), b, 0o600); err != nil {
		l.t.Fatal(err)
	}
	logf, err := os.OpenFile(l.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.t.Fatal(err)
	}
	args := []string{"agent", "--config", l.configPath(name), "--log-level", "debug"}
	if l.cfgs[name].IsWitness() {
		args = append(args, "--witness")
	}
	var cmd *exec.Cmd
	if ns := l.ns[name]; ns != "" {
		// ip netns exec execs the agent: the PID is the agent's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, hactlBin}, args...)...)
	} else {
		cmd = exec.Command(hactlBin, args...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	logf.Close()
	l.procs[name] = cmd
}

// stop ends name's agent gracefully (it stops its PostgreSQL).
func (l *lab) stop(name string) {
	cmd := l.procs[name]
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		l.t.Errorf("agent %s did not stop on SIGTERM; killing it", name)
		_ = cmd.Process.Kill()
		<-done
	}
	delete(l.procs, name)
}

// crash kills name's agent and its PostgreSQL with SIGKILL: a lost host.
func (l *lab) crash(name string) {
	l.t.Helper()
	if cmd := l.procs[name]; cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		delete(l.procs, name)
	}
	if pid := l.postmasterPID(name); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// signal sends sig to name's agent process (SIGSTOP freezes it: to its
// peers it is as if its host were cut off).
func (l *lab) signal(name string, sig syscall.Signal) {
	l.t.Helper()
	if cmd := l.procs[name]; cmd != nil {
		if err := cmd.Process.Signal(sig); err != nil {
			l.t.Fatalf("signal %s: %v", name, err)
		}
	}
}

// freeze stops names' agents (SIGSTOP: to their peers as if their hosts
// were cut off) and returns resume, which is also run when the test ends.
func (l *lab) freeze(names ...string) (resume func()) {
	l.t.Helper()
	for _, n := range names {
		l.signal(n, syscall.SIGSTOP)
	}
	done := false
	resume = func() {
		if !done {
			done = true
			for _, n := range names {
				l.signal(n, syscall.SIGCONT)
			}
		}
	}
	l.t.Cleanup(resume)
	return resume
}

// member finishes a member's configuration: the lab's sampling interval, an
// identity from the lab's CA for its addresses.
func (l *lab) member(c hactl.Config, ips ...string) {
	l.t.Helper()
	c.Timers.Sample = hactl.Duration(100 * time.Millisecond)
	var addrs []net.IP
	for _, ip := range ips {
		addrs = append(addrs, net.ParseIP(ip))
	}
	id, err := l.ca.Issue(c.NodeName, addrs, time.Now())
	if err != nil {
		l.t.Fatal(err)
	}
	if err := pki.SaveIdentity(c.PKIDir(), id); err != nil {
		l.t.Fatal(err)
	}
	l.cfgs[c.NodeName] = c
}

func (l *lab) postmasterPID(name string) int {
	b, err := os.ReadFile(filepath.Join(l.cfgs[name].StateDir, "pg", "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

func (l *lab) cleanup() {
	for name := range l.procs {
		l.stop(name)
	}
	for name := range l.cfgs {
		if pid := l.postmasterPID(name); pid > 0 && syscall.Kill(pid, 0) == nil {
			l.t.Errorf("PostgreSQL of %s (%d) left running; killing it", name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if l.t.Failed() {
		for name := range l.cfgs {
			b, _ := os.ReadFile(l.logPath(name))
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			l.t.Logf("---- last lines of %s's agent log ----\n%s", name, strings.Join(lines, "\n"))
			b, _ = os.ReadFile(filepath.Join(l.cfgs[name].StateDir, "pg", "log", "postgresql.log"))
			lines = strings.Split(string(b), "\n")
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			l.t.Logf("---- last lines of %s's PostgreSQL log ----\n%s", name, strings.Join(lines, "\n"))
		}
	}
}

func (l *lab) client(name string) hapb.AgentClient {
	l.t.Helper()
	conn, err := cli.Dial(l.cfgs[name].SocketPath())
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { conn.Close() })
	return hapb.NewAgentClient(conn)
}

// waitFor polls name's Status (bounded) until ok accepts a snapshot.
func (l *lab) waitFor(name, what string, ok func(*hapb.Snapshot) bool) *hapb.Snapshot {
	l.t.Helper()
	c := l.client(name)
	var last *hapb.Snapshot
	var lastErr error
	start := time.Now()
	for i := 0; i < 1200; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last, lastErr = c.Status(ctx, &hapb.StatusRequest{})
		cancel()
		if lastErr == nil && ok(last) {
			l.t.Logf("%s: %s (after %v)", name, what, time.Since(start).Round(time.Millisecond))
			return last
		}
		if i > 0 && i%100 == 0 {
			l.t.Logf("%s: still waiting for %s: role %v, database %v, health %v %q, error %v", name, what,
				last.GetLocal().GetRole(), last.GetLocal().GetDatabase().GetRole(), last.GetCluster().GetHealth(), last.GetCluster().GetHealthReason(), lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("timed out waiting for %s on %s; last status %v (error %v)", what, name, last, lastErr)
	return nil
}

// runOp runs a streaming operation and returns its progress lines.
func runOp[T interface {
	Recv() (*hapb.Progress, error)
}](t testing.TB, open func(context.Context) (T, error)) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := open(ctx)
	if err != nil {
		return nil, err
	}
	var lines []string
	for {
		p, err := st.Recv()
		if err != nil {
			if strings.Contains(err.Error(), "EOF") {
				return lines, nil
			}
			return lines, err
		}
		lines = append(lines, p.GetStep())
		t.Logf("  %s: [%5.3fs] %s", p.GetNode(), p.GetElapsed().AsDuration().Seconds(), p.GetStep())
	}
}

// controller opens name's PostgreSQL controller for direct checks.
func (l *lab) controller(name string) *pg.Controller {
	l.t.Helper()
	c := l.cfgs[name]
	pc := pg.DefaultConfig()
	pc.NodeName, pc.BaseDir, pc.Port, pc.ListenAddr = name, filepath.Join(c.StateDir, "pg"), l.pgPort, labIP[name]
	runAs, err := pg.DatabaseOSUser()
	if err != nil {
		l.t.Fatal(err)
	}
	pc.RunAs = runAs
	ctl, err := pg.New(pc)
	if err != nil {
		l.t.Fatal(err)
	}
	return ctl
}

func role(s *hapb.Snapshot) hapb.NodeRole { return s.GetLocal().GetRole() }
