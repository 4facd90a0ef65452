//go:build linux

package vipnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestNewLinuxValidation(t *testing.T) {
	good := netip.MustParsePrefix("198.18.0.12/24")
	tests := []struct {
		name    string
		cfg     LinuxConfig
		wantErr string
	}{
		{name: "no address", cfg: LinuxConfig{Interface: "eth0"}, wantErr: "Address is not set"},
		{name: "no interface", cfg: LinuxConfig{Address: good}, wantErr: "Interface is not set"},
		{name: "interface too long", cfg: LinuxConfig{Address: good, Interface: "abcdefghijklmnop"}, wantErr: "not a valid interface name"},
		{name: "default label too long", cfg: LinuxConfig{Address: good, Interface: "abcdefghijklm"}, wantErr: "set LinuxConfig.Label"},
		{name: "label without interface prefix", cfg: LinuxConfig{Address: good, Interface: "eth0", Label: "vip"}, wantErr: "must start with the interface name"},
		{name: "label too long", cfg: LinuxConfig{Address: good, Interface: "eth0", Label: "eth0:verylongvip"}, wantErr: "longer than 15"},
		{name: "unspecified", cfg: LinuxConfig{Address: netip.MustParsePrefix("0.0.0.0/0"), Interface: "eth0"}, wantErr: "not a usable unicast"},
		{name: "multicast", cfg: LinuxConfig{Address: netip.MustParsePrefix("224.0.0.18/32"), Interface: "eth0"}, wantErr: "not a usable unicast"},
		{name: "negative count", cfg: LinuxConfig{Address: good, Interface: "eth0", GratuitousCount: -1}, wantErr: "GratuitousCount -1 is negative"},
		{name: "negative probe timeout", cfg: LinuxConfig{Address: good, Interface: "eth0", ProbeTimeout: -time.Second}, wantErr: "ProbeTimeout -1s is negative"},
		{name: "ok defaults", cfg: LinuxConfig{Address: good, Interface: "eth0"}},
		{name: "ok IPv6", cfg: LinuxConfig{Address: netip.MustParsePrefix("2001:db8::12/64"), Interface: "eth0", Label: "ignored"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLinux(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewLinux: %v", err)
			}
			defer l.Close()
			if tc.cfg.Address.Addr().Is4() {
				if l.cfg.Label != "eth0:vip" || l.cfg.GratuitousCount != 3 || l.cfg.GratuitousInterval != 200*time.Millisecond ||
					l.cfg.RefreshInterval != 10*time.Second || l.cfg.ProbeTimeout != 300*time.Millisecond {
					t.Fatalf("defaults not applied: %+v", l.cfg)
				}
				if l.Address() != "198.18.0.12" {
					t.Fatalf("Address() = %q", l.Address())
				}
			} else if l.cfg.Label != "" {
				t.Fatalf("IPv6 label = %q, want empty", l.cfg.Label)
			}
		})
	}
}

// lab is two network namespaces joined by a veth pair, on 198.18.0.0/24.
type lab struct {
	nsA, nsB string // namespace names
	ifA, ifB string // veth ends, ifA in nsA and ifB in nsB
	hA, hB   netns.NsHandle
	macA     string
}

var labPrefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

func run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func runQuiet(args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, args[0], args[1:]...).Run()
}

// lockLab serializes lab tests of all processes using the same prefix, so
// that removing leftovers never removes a running test's namespaces.
func lockLab(t *testing.T, prefix string) func() {
	t.Helper()
	f, err := os.OpenFile(fmt.Sprintf("%s/hapair-lab-%s.lock", os.TempDir(), prefix), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("lab lock: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("lab lock %s: %v", f.Name(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func removeLeftovers(t *testing.T, prefix string) {
	t.Helper()
	nsRE := regexp.MustCompile(`^(` + prefix + `[0-9a-f]{4}-[ab])\b`)
	for _, line := range strings.Split(run(t, "ip", "netns", "list"), "\n") {
		if m := nsRE.FindStringSubmatch(line); m != nil {
			t.Logf("removing leftover namespace %s", m[1])
			runQuiet("ip", "netns", "delete", m[1])
		}
	}
	linkRE := regexp.MustCompile(`^\d+: (` + prefix + `[0-9a-f]{4}[ab])[@:]`)
	for _, line := range strings.Split(run(t, "ip", "-o", "link", "show"), "\n") {
		if m := linkRE.FindStringSubmatch(line); m != nil {
			t.Logf("removing leftover link %s", m[1])
			runQuiet("ip", "link", "delete", m[1])
		}
	}
}

func newLab(t *testing.T) *lab {
	t.Helper()
	prefix := os.Getenv("HAPAIR_LAB_PREFIX")
	if prefix == "" {
		prefix = "hap"
	}
	if !labPrefixRE.MatchString(prefix) {
		t.Fatalf("HAPAIR_LAB_PREFIX %q: want 1-8 lower-case letters and digits starting with a letter", prefix)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("needs ip from iproute2: %v", err)
	}
	unlock := lockLab(t, prefix)
	t.Cleanup(unlock)
	removeLeftovers(t, prefix)

	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	base := prefix + hex.EncodeToString(rnd[:])
	lb := &lab{nsA: base + "-a", nsB: base + "-b", ifA: base + "a", ifB: base + "b"}
	t.Cleanup(func() {
		for _, h := range []netns.NsHandle{lb.hA, lb.hB} {
			if h.IsOpen() {
				h.Close()
			}
		}
		runQuiet("ip", "netns", "delete", lb.nsA)
		runQuiet("ip", "netns", "delete", lb.nsB)
		runQuiet("ip", "link", "delete", lb.ifA) // only if it stayed in this namespace
		runQuiet("ip", "link", "delete", lb.ifB)
	})
	run(t, "ip", "netns", "add", lb.nsA)
	run(t, "ip", "netns", "add", lb.nsB)
	run(t, "ip", "link", "add", lb.ifA, "netns", lb.nsA, "type", "veth", "peer", "name", lb.ifB, "netns", lb.nsB)
	run(t, "ip", "-n", lb.nsA, "addr", "add", "198.18.0.5/24", "dev", lb.ifA)
	run(t, "ip", "-n", lb.nsB, "addr", "add", "198.18.0.10/24", "dev", lb.ifB)
	for _, c := range [][2]string{{lb.nsA, lb.ifA}, {lb.nsB, lb.ifB}, {lb.nsA, "lo"}, {lb.nsB, "lo"}} {
		run(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	var err error
	if lb.hA, err = netns.GetFromName(lb.nsA); err != nil {
		t.Fatalf("open namespace %s: %v", lb.nsA, err)
	}
	if lb.hB, err = netns.GetFromName(lb.nsB); err != nil {
		t.Fatalf("open namespace %s: %v", lb.nsB, err)
	}
	// Let neighbours in B learn addresses from gratuitous ARP alone.
	inNS(t, lb.hB, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/"+lb.ifB+"/arp_accept", []byte("1\n"), 0o644)
	})
	out := run(t, "ip", "-n", lb.nsA, "-o", "link", "show", lb.ifA)
	m := regexp.MustCompile(`link/ether ([0-9a-f:]{17})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MAC in %q", out)
	}
	lb.macA = m[1]
	return lb
}

// inNS runs fn on an OS thread switched to ns and restores the thread's
// namespace afterwards (the thread is discarded if that fails).
func inNS(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return // thread stays locked and is discarded
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr == nil {
			runtime.UnlockOSThread()
		} else if err == nil {
			err = fmt.Errorf("restore namespace: %w", rerr)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in namespace: %v", err)
	}
}

func newLinuxIn(t *testing.T, ns netns.NsHandle, iface string) *Linux {
	t.Helper()
	var l *Linux
	inNS(t, ns, func() error {
		var err error
		l, err = NewLinux(LinuxConfig{
			Address:            netip.MustParsePrefix("198.18.0.12/24"),
			Interface:          iface,
			GratuitousInterval: 50 * time.Millisecond,
			RefreshInterval:    500 * time.Millisecond,
			ProbeTimeout:       300 * time.Millisecond,
		})
		return err
	})
	t.Cleanup(func() { l.Close() })
	return l
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantHeld(t *testing.T, name string, l *Linux, want bool) {
	t.Helper()
	got, err := l.Held(bounded(t))
	if err != nil {
		t.Fatalf("%s: Held: %v", name, err)
	}
	if got != want {
		t.Fatalf("%s: Held = %v, want %v", name, got, want)
	}
}

func addrShow(t *testing.T, ns, iface string) string {
	t.Helper()
	return run(t, "ip", "-n", ns, "-o", "-4", "addr", "show", "dev", iface)
}

// waitNeigh reports whether B's neighbour table maps 198.18.0.12 to A's MAC
// within d.
func waitNeigh(t *testing.T, lb *lab, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); ; {
		neigh := run(t, "ip", "-n", lb.nsB, "neigh", "show", "198.18.0.12", "dev", lb.ifB)
		if strings.Contains(neigh, lb.macA) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLinuxNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	lb := newLab(t)
	a := newLinuxIn(t, lb.hA, lb.ifA)
	b := newLinuxIn(t, lb.hB, lb.ifB)

	wantHeld(t, "A before acquire", a, false)

	// A takes the VIP; calls come from this goroutine's thread, outside the
	// namespaces: the holder acts in the namespace it was created in.
	if err := a.Acquire(bounded(t)); err != nil {
		t.Fatalf("A Acquire: %v", err)
	}
	wantHeld(t, "A after acquire", a, true)
	out := addrShow(t, lb.nsA, lb.ifA)
	if !regexp.MustCompile(`inet 198\.18\.0\.12/24 .*\b` + regexp.QuoteMeta(lb.ifA+":vip") + `\b`).MatchString(out) {
		t.Fatalf("ip addr in A lacks the labelled VIP:\n%s", out)
	}
	if err := a.Acquire(bounded(t)); err != nil {
		t.Fatalf("A Acquire again (idempotent): %v", err)
	}

	// B learns 198.18.0.12 -> A's MAC from the gratuitous ARPs alone.
	if !waitNeigh(t, lb, 3*time.Second) {
		t.Fatalf("ip neigh in B: no 198.18.0.12 at A's MAC %s", lb.macA)
	}

	// While held, A re-announces every RefreshInterval (500ms here): B
	// learns the entry again after it was deleted.
	run(t, "ip", "-n", lb.nsB, "neigh", "del", "198.18.0.12", "dev", lb.ifB)
	if !waitNeigh(t, lb, 3*time.Second) {
		t.Fatalf("B did not relearn 198.18.0.12 from A's refresh announcements")
	}

	// B cannot take it: A answers ARP for it.
	err := b.Acquire(bounded(t))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("B Acquire while A holds: err = %v, want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), lb.macA) {
		t.Fatalf("conflict error %q does not name A's MAC %s", err, lb.macA)
	}
	wantHeld(t, "B after conflict", b, false)
	if out := addrShow(t, lb.nsB, lb.ifB); strings.Contains(out, "198.18.0.12") {
		t.Fatalf("B has the VIP after a conflict:\n%s", out)
	}

	// A releases (twice), then B can take it.
	if err := a.Release(bounded(t)); err != nil {
		t.Fatalf("A Release: %v", err)
	}
	wantHeld(t, "A after release", a, false)
	if out := addrShow(t, lb.nsA, lb.ifA); strings.Contains(out, "198.18.0.12") {
		t.Fatalf("A still has the VIP after Release:\n%s", out)
	}
	if err := a.Release(bounded(t)); err != nil {
		t.Fatalf("A Release again: %v", err)
	}
	// Announcements stop with Release.
	run(t, "ip", "-n", lb.nsB, "neigh", "flush", "dev", lb.ifB)
	if waitNeigh(t, lb, 1200*time.Millisecond) {
		t.Fatalf("A still announces 198.18.0.12 after Release")
	}
	if err := b.Acquire(bounded(t)); err != nil {
		t.Fatalf("B Acquire after A released: %v", err)
	}
	wantHeld(t, "B after acquire", b, true)

	// Now A sees the conflict the other way round.
	if err := a.Acquire(bounded(t)); !errors.Is(err, ErrConflict) {
		t.Fatalf("A Acquire while B holds: err = %v, want ErrConflict", err)
	}

	// Held reads the system: an address removed behind B's back is not held,
	// and Acquire puts it back.
	run(t, "ip", "-n", lb.nsB, "addr", "del", "198.18.0.12/24", "dev", lb.ifB)
	wantHeld(t, "B after external removal", b, false)
	if err := b.Acquire(bounded(t)); err != nil {
		t.Fatalf("B re-Acquire: %v", err)
	}
	wantHeld(t, "B after re-acquire", b, true)

	// RemoveStale removes it; a second call is a no-op.
	if err := b.RemoveStale(bounded(t)); err != nil {
		t.Fatalf("B RemoveStale: %v", err)
	}
	wantHeld(t, "B after RemoveStale", b, false)
	if err := b.RemoveStale(bounded(t)); err != nil {
		t.Fatalf("B RemoveStale again: %v", err)
	}

	// Close releases; afterwards Acquire fails with ErrClosed.
	if err := a.Acquire(bounded(t)); err != nil {
		t.Fatalf("A Acquire before Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("A Close: %v", err)
	}
	if out := addrShow(t, lb.nsA, lb.ifA); strings.Contains(out, "198.18.0.12") {
		t.Fatalf("A still has the VIP after Close:\n%s", out)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("A Close again: %v", err)
	}
	if err := a.Acquire(bounded(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close: err = %v, want ErrClosed", err)
	}
	wantHeld(t, "A after Close", a, false)
	if err := a.Release(bounded(t)); err != nil {
		t.Fatalf("Release after Close: %v", err)
	}
}

func TestLinuxMissingInterface(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	lb := newLab(t)
	l := newLinuxIn(t, lb.hA, "nosuchif0")
	wantHeld(t, "missing interface", l, false)
	err := l.Acquire(bounded(t))
	if err == nil || !strings.Contains(err.Error(), `interface "nosuchif0" not found`) {
		t.Fatalf("Acquire on missing interface: err = %v", err)
	}
	if err := l.Release(bounded(t)); err != nil {
		t.Fatalf("Release on missing interface: %v", err)
	}
}

// neighMAC is the link-layer address in ns's neighbour entry for ip on
// iface ("" if there is none).
func neighMAC(t *testing.T, ns, iface, ip string) string {
	t.Helper()
	m := regexp.MustCompile(`lladdr ([0-9a-f:]{17})`).FindStringSubmatch(run(t, "ip", "-n", ns, "neigh", "show", ip, "dev", iface))
	if m == nil {
		return ""
	}
	return m[1]
}

// waitNeighMAC reports whether ns's entry for ip turns to mac within d.
func waitNeighMAC(t *testing.T, ns, iface, ip, mac string, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); ; {
		if neighMAC(t, ns, iface, ip) == mac {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLinuxNetnsIPv6 moves an IPv6 VIP between the two namespaces and
// checks that each holder's unsolicited neighbour advertisements reach the
// other side: the other kernel, which validates them (hop limit,
// checksum, flags), updates its neighbour entry for the VIP to the new
// holder's MAC. The VIP is a link-local address (fe80::12): the lab's
// address plan (LAB.md) has no IPv6 range, and link-local addresses are
// the ones the kernel already gives every lab interface.
func TestLinuxNetnsIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	lb := newLab(t)
	const vip = "fe80::12"
	const bogus = "02:00:5e:00:00:99" // a neighbour entry to overwrite
	macB := regexp.MustCompile(`link/ether ([0-9a-f:]{17})`).FindStringSubmatch(run(t, "ip", "-n", lb.nsB, "-o", "link", "show", lb.ifB))
	if macB == nil {
		t.Fatal("no MAC on B's interface")
	}
	newV6 := func(ns netns.NsHandle, iface string) *Linux {
		var l *Linux
		inNS(t, ns, func() error {
			var err error
			l, err = NewLinux(LinuxConfig{
				Address:            netip.MustParsePrefix(vip + "/64"),
				Interface:          iface,
				GratuitousInterval: 50 * time.Millisecond,
				RefreshInterval:    500 * time.Millisecond,
			})
			return err
		})
		t.Cleanup(func() { l.Close() })
		return l
	}
	a, b := newV6(lb.hA, lb.ifA), newV6(lb.hB, lb.ifB)
	// Linux learns from an unsolicited advertisement only for an entry it
	// has (RFC 4861 7.2.5): B has a stale one with another MAC.
	run(t, "ip", "-n", lb.nsB, "neigh", "replace", vip, "lladdr", bogus, "dev", lb.ifB, "nud", "stale")

	if err := a.Acquire(bounded(t)); err != nil {
		t.Fatalf("A Acquire: %v", err)
	}
	wantHeld(t, "A after acquire", a, true)
	if out := run(t, "ip", "-n", lb.nsA, "-o", "-6", "addr", "show", "dev", lb.ifA); !strings.Contains(out, "inet6 "+vip+"/64") {
		t.Fatalf("ip -6 addr in A lacks the VIP:\n%s", out)
	}
	// Duplicate address detection first (about 1 s), then the advertisements.
	if !waitNeighMAC(t, lb.nsB, lb.ifB, vip, lb.macA, 5*time.Second) {
		t.Fatalf("B's neighbour entry for %s is %q, want A's MAC %s: no valid advertisement arrived", vip, neighMAC(t, lb.nsB, lb.ifB, vip), lb.macA)
	}
	// Refreshed while held.
	run(t, "ip", "-n", lb.nsB, "neigh", "replace", vip, "lladdr", bogus, "dev", lb.ifB, "nud", "stale")
	if !waitNeighMAC(t, lb.nsB, lb.ifB, vip, lb.macA, 3*time.Second) {
		t.Fatalf("B did not relearn %s from A's refresh advertisements", vip)
	}

	// Released: no more advertisements from A.
	if err := a.Release(bounded(t)); err != nil {
		t.Fatalf("A Release: %v", err)
	}
	wantHeld(t, "A after release", a, false)
	run(t, "ip", "-n", lb.nsB, "neigh", "replace", vip, "lladdr", bogus, "dev", lb.ifB, "nud", "stale")
	if waitNeighMAC(t, lb.nsB, lb.ifB, vip, lb.macA, 1200*time.Millisecond) {
		t.Fatalf("A still advertises %s after Release", vip)
	}

	// B takes it: A's entry moves to B's MAC.
	run(t, "ip", "-n", lb.nsA, "neigh", "replace", vip, "lladdr", bogus, "dev", lb.ifA, "nud", "stale")
	if err := b.Acquire(bounded(t)); err != nil {
		t.Fatalf("B Acquire: %v", err)
	}
	if !waitNeighMAC(t, lb.nsA, lb.ifA, vip, macB[1], 5*time.Second) {
		t.Fatalf("A's neighbour entry for %s is %q, want B's MAC %s", vip, neighMAC(t, lb.nsA, lb.ifA, vip), macB[1])
	}
	if err := b.Close(); err != nil {
		t.Fatalf("B Close: %v", err)
	}
	if out := run(t, "ip", "-n", lb.nsB, "-o", "-6", "addr", "show", "dev", lb.ifB); strings.Contains(out, vip+"/") {
		t.Fatalf("B still has the VIP after Close:\n%s", out)
	}
}
