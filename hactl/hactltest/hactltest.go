// Package hactltest is hactl's test kit: a lab of real hactl agent processes,
// each data node with its own real PostgreSQL, that tests start, stop, crash,
// freeze and query through the agents' own API.
//
// A test builds a lab with New (agents on loopback addresses) or NewNet
// (agents inside the network namespaces of scripts/lab.sh), starts its
// members and waits for the state it needs:
//
//	l := hactltest.New(t, hactltest.Options{Witness: true})
//	l.Start(l.Names()...)
//	l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
//
// Every process a lab starts is stopped by its PID when the test ends, and
// on failure the lab logs the tail of each member's agent and PostgreSQL
// logs; with HAPAIR_LAB_LOGS=dir it copies the agents' whole logs there. The hactl binary is built once per test binary (see BuildHactl and
// Main).
//
// A Lab is driven by its test's goroutine: its methods are not safe for
// concurrent use, except Client, Controller, Config, SocketPath and the
// other read-only accessors once every member is configured.
package hactltest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pg/pgtest"
	"github.com/hapair/hapair/hactl/pki"
)

// The members of every lab, in the reference deployment's names.
const (
	Primary   = "primary-node"
	Secondary = "secondary-node"
	Witness   = "witness"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// BuildHactl returns the path of the hactl binary, built from this module's
// cmd/hactl the first time any test of the test binary asks (later calls
// return the same path). It fails tb if the build fails. The binary lives in
// a temporary directory that Main removes; call Main from TestMain.
func BuildHactl(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "hactltest-bin-")
		if build.err != nil {
			build.err = fmt.Errorf("build hactl: %w", build.err)
			return
		}
		build.bin = filepath.Join(build.dir, "hactl")
		out, err := exec.Command("go", "build", "-o", build.bin, "github.com/hapair/hapair/cmd/hactl").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("build hactl: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		tb.Fatal(build.err)
	}
	return build.bin
}

// Main runs m's tests and then removes the hactl binary BuildHactl built,
// if any; it returns the exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(hactltest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}

// Options chooses the lab New builds.
type Options struct {
	// Witness adds a third, witness member named "witness".
	Witness bool
}

// Lab is a cluster of real hactl agent processes. Members are named
// Primary, Secondary and (with a witness) Witness; Primary bootstraps the
// database, Secondary clones it.
type Lab struct {
	t      testing.TB
	bin    string
	dir    string
	ca     *pki.CA
	names  []string
	cfgs   map[string]hactl.Config
	ips    map[string]string
	vip    string
	procs  map[string]*exec.Cmd
	pgPort int
	// ns, when set, is the network namespace each member runs in.
	ns       map[string]string
	clientNS string
	sampler  *sampler // namespace labs only
}

// Loopback addresses of New's members: the reference deployment's last
// octets (198.18.0.5, .10, .12, .20) on 127.0.0.0/8.
var loopIP = map[string]string{Primary: "127.0.0.5", Secondary: "127.0.0.10", Witness: "127.0.0.20"}

const loopVIP = "127.0.0.12"

// freePortOn finds a TCP and UDP port free on every given address.
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

// New builds a lab on loopback: each member on its own 127.0.0.x address
// (IP), the VIP on 127.0.0.12 in userspace mode, PostgreSQL on one free
// port (PGPort) on every data node. It configures the members (Config,
// SetConfig) but starts none. It needs PostgreSQL 15 and skips under -short.
func New(tb testing.TB, o Options) *Lab {
	tb.Helper()
	pgtest.RequirePostgres(tb)
	names := []string{Primary, Secondary}
	if o.Witness {
		names = append(names, Witness)
	}
	l := newLab(tb, names, loopVIP)
	for _, n := range names {
		l.ips[n] = loopIP[n]
	}
	all := []string{l.vip}
	for _, n := range names {
		all = append(all, l.ips[n])
	}
	l.pgPort = freePortOn(tb, all...)
	var members []hactl.MemberConfig
	for _, n := range names {
		m := hactl.MemberConfig{Name: n, Kind: "data", PublicAddr: l.ips[n],
			AgentPort: freePortOn(tb, l.ips[n]), RaftPort: freePortOn(tb, l.ips[n]), HeartbeatPort: freePortOn(tb, l.ips[n]), PGPort: l.pgPort}
		if n == Witness {
			m.Kind, m.PGPort = "witness", 0
		}
		members = append(members, m)
	}
	for _, n := range names {
		c := l.baseConfig(n, members)
		if n != Witness {
			c.VIP = &hactl.VIPConfig{Address: l.vip, Mode: "userspace"}
			c.Postgres.ReplicationFrom = []string{"127.0.0.1"}
			c.Postgres.ClientNets = []string{"127.0.0.0/8"}
		}
		l.member(c, l.ips[n])
	}
	tb.Cleanup(l.cleanup)
	return l
}

func newLab(tb testing.TB, names []string, vip string) *Lab {
	tb.Helper()
	ca, err := pki.NewCA("lab", time.Now())
	if err != nil {
		tb.Fatalf("lab CA: %v", err)
	}
	return &Lab{t: tb, bin: BuildHactl(tb), dir: pgtest.Dir(tb), ca: ca, names: names, vip: vip,
		cfgs: map[string]hactl.Config{}, ips: map[string]string{}, procs: map[string]*exec.Cmd{}}
}

// baseConfig is a member's configuration before its network details.
func (l *Lab) baseConfig(name string, members []hactl.MemberConfig) hactl.Config {
	c := hactl.DefaultConfig()
	c.ClusterName, c.NodeName, c.StateDir, c.Members = "lab", name, filepath.Join(l.dir, name), members
	switch name {
	case Primary:
		c.Bootstrap = hactl.BootstrapPrimary
	case Secondary:
		c.Bootstrap = hactl.BootstrapStandby
	}
	return c
}

// member finishes a member's configuration: the lab's sampling interval, an
// identity from the lab's CA for its addresses.
func (l *Lab) member(c hactl.Config, ips ...string) {
	l.t.Helper()
	c.Timers.Sample = hactl.Duration(100 * time.Millisecond)
	var addrs []net.IP
	for _, ip := range ips {
		addrs = append(addrs, net.ParseIP(ip))
	}
	id, err := l.ca.Issue(c.NodeName, addrs, time.Now())
	if err != nil {
		l.t.Fatalf("identity of %s: %v", c.NodeName, err)
	}
	if err := pki.SaveIdentity(c.PKIDir(), id); err != nil {
		l.t.Fatalf("identity of %s: %v", c.NodeName, err)
	}
	l.cfgs[c.NodeName] = c
}

// Names returns the lab's members: Primary, Secondary and, with a witness,
// Witness.
func (l *Lab) Names() []string { return slices.Clone(l.names) }

// Dir is the lab's temporary directory: each member's state directory,
// configuration file and log are in it.
func (l *Lab) Dir() string { return l.dir }

// CA is the lab's certificate authority, which issued every member's
// identity.
func (l *Lab) CA() *pki.CA { return l.ca }

// VIP is the virtual IP address the Active node holds.
func (l *Lab) VIP() string { return l.vip }

// IP is name's public address.
func (l *Lab) IP(name string) string { return l.ips[name] }

// PGPort is the TCP port of every data node's PostgreSQL (and so of the VIP).
func (l *Lab) PGPort() int { return l.pgPort }

// Config returns name's configuration, as Start will write it.
func (l *Lab) Config(name string) hactl.Config { return l.cfgs[name] }

// SetConfig replaces name's configuration; it applies from the next Start.
func (l *Lab) SetConfig(name string, c hactl.Config) { l.cfgs[name] = c }

// ConfigPath is the file Start writes name's configuration to.
func (l *Lab) ConfigPath(name string) string { return filepath.Join(l.dir, name+".json") }

// LogPath is the file name's agent logs to (debug level).
func (l *Lab) LogPath(name string) string { return filepath.Join(l.dir, name+".log") }

// SocketPath is name's agent API unix socket.
func (l *Lab) SocketPath(name string) string { return l.cfgs[name].SocketPath() }

// Namespace is the network namespace name runs in ("" in a loopback lab).
func (l *Lab) Namespace(name string) string { return l.ns[name] }

// Start runs names' agents as processes (writing their configurations
// first). A member already running is left alone.
func (l *Lab) Start(names ...string) {
	l.t.Helper()
	for _, n := range names {
		if l.procs[n] == nil {
			l.start(n)
		}
	}
}

func (l *Lab) start(name string) {
	l.t.Helper()
	c, ok := l.cfgs[name]
	if !ok {
		l.t.Fatalf("lab: no member %q", name)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		l.t.Fatalf("config of %s: %v", name, err)
	}
	if err := os.WriteFile(l.ConfigPath(name), b, 0o600); err != nil {
		l.t.Fatalf("config of %s: %v", name, err)
	}
	logf, err := os.OpenFile(l.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.t.Fatalf("log of %s: %v", name, err)
	}
	defer logf.Close()
	args := []string{"agent", "--config", l.ConfigPath(name), "--log-level", "debug"}
	if c.IsWitness() {
		args = append(args, "--witness")
	}
	var cmd *exec.Cmd
	if ns := l.ns[name]; ns != "" {
		// ip netns exec execs the agent: the PID is the agent's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, l.bin}, args...)...)
	} else {
		cmd = exec.Command(l.bin, args...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", name, err)
	}
	l.procs[name] = cmd
}

// Running reports whether name's agent process was started and not
// stopped or crashed since.
func (l *Lab) Running(name string) bool { return l.procs[name] != nil }

// PID is name's agent process ID (0 when not running).
func (l *Lab) PID(name string) int {
	if cmd := l.procs[name]; cmd != nil {
		return cmd.Process.Pid
	}
	return 0
}

// Stop ends names' agents gracefully (SIGTERM: each stops its PostgreSQL;
// a frozen agent gets SIGCONT first), killing one that has not exited after
// 90 s (and failing the test).
func (l *Lab) Stop(names ...string) {
	for _, n := range names {
		l.stop(n)
	}
}

func (l *Lab) stop(name string) {
	cmd := l.procs[name]
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a frozen agent must see its SIGTERM
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

// Crash kills names' agents and their PostgreSQL servers with SIGKILL: lost
// hosts. It returns once the processes are gone (bounded: 5 s per server).
func (l *Lab) Crash(names ...string) {
	l.t.Helper()
	for _, name := range names {
		if cmd := l.procs[name]; cmd != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			delete(l.procs, name)
		}
		if pid := l.PostmasterPID(name); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// Signal sends sig to name's agent process, if it runs.
func (l *Lab) Signal(name string, sig syscall.Signal) {
	l.t.Helper()
	if cmd := l.procs[name]; cmd != nil {
		if err := cmd.Process.Signal(sig); err != nil {
			l.t.Fatalf("signal %s: %v", name, err)
		}
	}
}

// Freeze stops names' agents with SIGSTOP (to their peers as if their hosts
// were cut off; their PostgreSQL servers go on) and returns resume, which
// sends SIGCONT; resume also runs when the test ends.
func (l *Lab) Freeze(names ...string) (resume func()) {
	l.t.Helper()
	for _, n := range names {
		l.Signal(n, syscall.SIGSTOP)
	}
	done := false
	resume = func() {
		if !done {
			done = true
			for _, n := range names {
				l.Signal(n, syscall.SIGCONT)
			}
		}
	}
	l.t.Cleanup(resume)
	return resume
}

// PostmasterPID is the PID in name's postmaster.pid (0 when there is none).
func (l *Lab) PostmasterPID(name string) int {
	b, err := os.ReadFile(filepath.Join(l.cfgs[name].StateDir, "pg", "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

func (l *Lab) cleanup() {
	for _, name := range l.names {
		l.stop(name)
	}
	for _, name := range l.names {
		if pid := l.PostmasterPID(name); pid > 0 && syscall.Kill(pid, 0) == nil {
			l.t.Errorf("PostgreSQL of %s (%d) left running; killing it", name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if dir := os.Getenv("HAPAIR_LAB_LOGS"); dir != "" {
		l.keepLogs(dir)
	}
	if l.t.Failed() {
		for _, name := range l.names {
			l.t.Logf("---- last lines of %s's agent log ----\n%s", name, tail(l.LogPath(name), 60))
			l.t.Logf("---- last lines of %s's PostgreSQL log ----\n%s", name,
				tail(filepath.Join(l.cfgs[name].StateDir, "pg", "log", "postgresql.log"), 30))
		}
	}
}

// keepLogs copies every member's agent log into dir, as
// <test>-<member>.log, for a look after the test (HAPAIR_LAB_LOGS=dir).
func (l *Lab) keepLogs(dir string) {
	test := strings.NewReplacer("/", "_", " ", "_").Replace(l.t.Name())
	for _, name := range l.names {
		b, err := os.ReadFile(l.LogPath(name))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, test+"-"+name+".log"), b, 0o600)
		}
		if err != nil {
			l.t.Logf("keep %s's log: %v", name, err)
		}
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Client returns a client of name's agent API over its unix socket, closed
// when the test ends.
func (l *Lab) Client(name string) hapb.AgentClient {
	l.t.Helper()
	conn, err := hapb.DialAgent(l.SocketPath(name))
	if err != nil {
		l.t.Fatalf("dial agent %s: %v", name, err)
	}
	l.t.Cleanup(func() { conn.Close() })
	return hapb.NewAgentClient(conn)
}

// WaitFor polls name's Status every 100 ms until ok accepts a snapshot, and
// returns it; what names the awaited state in the test's log. It fails the
// test after 1200 tries (2 min or more) with the last status.
func (l *Lab) WaitFor(name, what string, ok func(*hapb.Snapshot) bool) *hapb.Snapshot {
	l.t.Helper()
	c := l.Client(name)
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

// RunOp runs a streaming operation (ClusterStop, Switchover, Deploy...),
// logs each progress line and returns them, with the stream's error (nil
// when it ended normally). The operation has 3 minutes.
func RunOp[T interface {
	Recv() (*hapb.Progress, error)
}](tb testing.TB, open func(context.Context) (T, error)) ([]string, error) {
	tb.Helper()
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
		tb.Logf("  %s: [%5.3fs] %s", p.GetNode(), p.GetElapsed().AsDuration().Seconds(), p.GetStep())
	}
}

// Controller opens name's PostgreSQL controller for direct checks; its
// Connect logs in as the superuser over the server's unix socket, which
// also works across network namespaces.
func (l *Lab) Controller(name string) *pg.Controller {
	l.t.Helper()
	c := l.cfgs[name]
	pc := pg.DefaultConfig()
	pc.NodeName, pc.BaseDir, pc.Port, pc.ListenAddr = name, filepath.Join(c.StateDir, "pg"), l.pgPort, l.ips[name]
	runAs, err := pg.DatabaseOSUser()
	if err != nil {
		l.t.Fatalf("database OS user: %v", err)
	}
	pc.RunAs = runAs
	ctl, err := pg.New(pc)
	if err != nil {
		l.t.Fatalf("controller of %s: %v", name, err)
	}
	return ctl
}

// ActiveIs accepts a snapshot in which name is the Active node, holds the
// VIP and the cluster is healthy.
func ActiveIs(name string) func(*hapb.Snapshot) bool {
	return func(s *hapb.Snapshot) bool {
		return s.GetCluster().GetActiveNode() == name && s.GetCluster().GetVip().GetHolder() == name &&
			s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY
	}
}

// Replicates accepts a snapshot in which from is a primary database that
// streams to to, and the cluster is healthy.
func Replicates(from, to string) func(*hapb.Snapshot) bool {
	return func(s *hapb.Snapshot) bool {
		for _, n := range []*hapb.NodeStatus{s.GetLocal(), s.GetPeer().GetStatus()} {
			if n.GetName() != from || n.GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY {
				continue
			}
			for _, r := range n.GetDatabase().GetReplicas() {
				if r.GetApplicationName() == to && r.GetState() == "streaming" {
					return s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY
				}
			}
		}
		return false
	}
}
