package hactltest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/pg/pgtest"
)

// The namespace lab's address plan (LAB.md): public network, heartbeat
// link, VIP.
var (
	netIP   = map[string]string{Primary: "198.18.0.5", Secondary: "198.18.0.10", Witness: "198.18.0.20"}
	netHB   = map[string]string{Primary: "169.254.0.1", Secondary: "169.254.0.2"}
	netHost = map[string]string{Primary: "primary", Secondary: "secondary", Witness: "witness"}
)

const (
	netVIP = "198.18.0.12"
	// ClientIP is the client host's address in a namespace lab.
	ClientIP = "198.18.0.100"
)

// NetOptions chooses the lab NewNet builds.
type NetOptions struct {
	// Prefix starts every namespace, link and bridge name of the lab; empty
	// means $HAPAIR_LAB_PREFIX, or "hapt" when that is unset.
	Prefix string
	// Script is scripts/lab.sh; empty means the one of this module.
	Script string
}

// NewNet builds scripts/lab.sh's network namespaces (tearing down leftovers
// of an earlier run first) and a pair with a witness in them: each member's
// agent runs inside its host (Namespace), on the addresses of LAB.md
// (198.18.0.5, .10, .20; heartbeat link 169.254.0.1-2 on eth1), the VIP
// 198.18.0.12/24 is held on eth0 with netlink and ARP, and a client host at
// ClientIP (ClientNamespace) reaches it. The namespaces are torn down when
// the test ends, after the agents stop. It skips, saying so, when not root.
//
// From NewNet until the agents have stopped, a sampler checks every
// SampleInterval that no two hosts hold the VIP and no two databases accept
// writes; any overlap fails the test (SamplerStats tells what it saw). Only
// one lab per prefix runs on a machine at a time: NewNet waits (bounded) for
// another test binary's.
func NewNet(tb testing.TB, o NetOptions) *Lab {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: needs root (builds network namespaces with scripts/lab.sh)")
	}
	pgtest.RequirePostgres(tb)
	if o.Prefix == "" {
		o.Prefix = os.Getenv("HAPAIR_LAB_PREFIX")
	}
	if o.Prefix == "" {
		o.Prefix = "hapt"
	}
	if o.Script == "" {
		root, err := moduleRoot()
		if err != nil {
			tb.Fatal(err)
		}
		o.Script = filepath.Join(root, "scripts", "lab.sh")
	}
	run := func(arg string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, o.Script, arg)
		cmd.Env = append(os.Environ(), "HAPAIR_LAB_PREFIX="+o.Prefix)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("lab.sh %s: %w: %s", arg, err, out)
		}
		return nil
	}
	// One lab per prefix on the machine at a time: lab.sh up removes a
	// running lab's namespaces as leftovers. Released when the test ends,
	// after the namespaces are gone (cleanups run last-registered first).
	tb.Cleanup(lockLab(tb, o.Prefix))
	if err := run("up"); err != nil {
		tb.Fatal(err)
	}
	// Registered first, so it runs last: after the agents are stopped.
	tb.Cleanup(func() {
		if err := run("down"); err != nil {
			tb.Error(err)
		}
	})
	names := []string{Primary, Secondary, Witness}
	l := newLab(tb, names, netVIP)
	l.pgPort = 5432
	l.ns = map[string]string{}
	l.clientNS = o.Prefix + "-client"
	var members []hactl.MemberConfig
	for _, n := range names {
		l.ips[n] = netIP[n]
		m := hactl.MemberConfig{Name: n, Kind: "data", PublicAddr: netIP[n], HeartbeatAddr: netHB[n],
			AgentPort: 7400, RaftPort: 7401, HeartbeatPort: 7402, PGPort: 5432}
		if n == Witness {
			m.Kind, m.PGPort = "witness", 0
		}
		members = append(members, m)
		l.ns[n] = o.Prefix + "-" + netHost[n]
	}
	for _, n := range names {
		c := l.baseConfig(n, members)
		if n != Witness {
			c.VIP = &hactl.VIPConfig{Address: netVIP, Mode: "linux", Interface: "eth0", PrefixLen: 24}
			c.Postgres.ClientNets = []string{"198.18.0.0/24"}
		}
		ips := []string{netIP[n]}
		if hb := netHB[n]; hb != "" {
			ips = append(ips, hb)
		}
		l.member(c, ips...)
	}
	l.startSampler()
	// Registered before the agents' cleanup, so it runs after it: the
	// sampler watches the agents stop too.
	tb.Cleanup(func() { l.checkSampler(tb) })
	tb.Cleanup(l.cleanup)
	return l
}

// ClientNamespace is the client host's namespace in a namespace lab.
func (l *Lab) ClientNamespace() string { return l.clientNS }

// InNamespace runs a program in a network namespace (10 s at most) and
// returns its trimmed combined output.
func InNamespace(ns, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, prog}, args...)...).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)), fmt.Errorf("in %s: %s %s: %w", ns, prog, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// HoldsVIP reports whether name's host has the VIP on eth0 (read with
// `ip addr` in its namespace; false on error).
func (l *Lab) HoldsVIP(name string) bool {
	out, err := InNamespace(l.ns[name], "ip", "-4", "addr", "show", "dev", "eth0")
	return err == nil && strings.Contains(out, " "+l.vip+"/")
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find the module root: not inside a module")
	}
	return filepath.Dir(mod), nil
}

// SetLink sets the network interface dev ("eth0": the public network;
// "eth1": the heartbeat link) of name's host up or down with netlink, as a
// cable plugged in or pulled out; it returns when the kernel has done it.
func (l *Lab) SetLink(name, dev string, up bool) {
	l.t.Helper()
	if err := setLink(l.ns[name], dev, up); err != nil {
		l.t.Fatalf("%s: %v", name, err)
	}
}

func setLink(ns, dev string, up bool) error {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", ns, err)
	}
	defer nl.Close()
	link, err := nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("link %s in %s: %w", dev, ns, err)
	}
	if up {
		err = nl.LinkSetUp(link)
	} else {
		err = nl.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("set link %s in %s up=%v: %w", dev, ns, up, err)
	}
	return nil
}

// lockLab takes an exclusive lock on the lab prefix, shared by every process
// on the machine (a file lock in the temporary directory), waiting at most
// 10 minutes for another test binary's lab; it returns the unlock.
func lockLab(tb testing.TB, prefix string) func() {
	tb.Helper()
	path := filepath.Join(os.TempDir(), "hapair-netlab-"+prefix+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		tb.Fatalf("lab lock: %v", err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for logged := false; ; {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			tb.Fatalf("lab lock %s: %v", path, err)
		}
		if !logged {
			tb.Logf("waiting for another test's lab %q (lock %s)", prefix, path)
			logged = true
		}
		time.Sleep(200 * time.Millisecond)
	}
}
