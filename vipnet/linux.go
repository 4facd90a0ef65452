//go:build linux

package vipnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Defaults of LinuxConfig.
const (
	DefaultGratuitousCount    = 3
	DefaultGratuitousInterval = 200 * time.Millisecond
	DefaultRefreshInterval    = 10 * time.Second
	DefaultProbeTimeout       = 300 * time.Millisecond

	// maxIfNameLen is IFNAMSIZ-1, the longest interface name or address
	// label the kernel accepts.
	maxIfNameLen = 15
)

// LinuxConfig configures a [Linux] holder.
type LinuxConfig struct {
	// Address is the VIP with the prefix length it gets on the interface,
	// e.g. 198.18.0.12/24. Required.
	Address netip.Prefix

	// Interface is the name of the network interface that gets the VIP,
	// e.g. "eth0". Required.
	Interface string

	// Label is the IPv4 address label (what ifconfig shows as an alias
	// interface). The kernel requires it to start with the interface name
	// and to be at most 15 bytes long. Default "<Interface>:vip"; set it
	// explicitly when the interface name is too long for that. Ignored for
	// IPv6, which has no address labels.
	Label string

	// GratuitousCount is how many gratuitous ARPs announce the VIP right
	// after it was added, GratuitousInterval apart. Default 3.
	GratuitousCount int
	// GratuitousInterval spaces the first GratuitousCount announcements.
	// Default 200ms.
	GratuitousInterval time.Duration
	// RefreshInterval is how often the VIP is announced again while it is
	// held, so that neighbours that missed the first announcements (or
	// flushed their cache) learn it. Default 10s.
	RefreshInterval time.Duration
	// ProbeTimeout is how long Acquire waits for another host to answer an
	// ARP probe for the VIP before it takes it. Default 300ms.
	ProbeTimeout time.Duration

	// Logger receives announcements failures and state changes. Default: discard.
	Logger *slog.Logger
}

// Linux is the [Holder] for a real node: it adds the VIP to a network
// interface with netlink and announces it with gratuitous ARP.
//
// Acquire first checks the interface: if the VIP is already there it only
// makes sure the announcements run. Otherwise, for IPv4, it sends RFC 5227
// ARP probes for the VIP and waits ProbeTimeout; if another MAC answers, it
// fails with an error wrapping [ErrConflict] that names that MAC. Then it
// adds the address (netlink AddrReplace, with the label) and starts a
// goroutine that sends GratuitousCount gratuitous ARPs GratuitousInterval
// apart and then one every RefreshInterval for as long as the address is
// on the interface. The goroutine checks the interface before every
// announcement and stops by itself when the address was removed behind its
// back (so it never advertises an address this node no longer has); Release
// and Close stop it too. Failing to send an announcement is logged, not
// returned: the address is held and the next announcement retries.
//
// Held lists the interface's addresses with netlink and looks for the exact
// prefix (address and prefix length). Release deletes the address if it is
// there.
//
// IPv6: the address is added and removed the same way, without an ARP
// probe: the kernel's own duplicate address detection (DAD) runs instead.
// The announcements are unsolicited neighbour advertisements
// ([UnsolicitedNA]) to ff02::1, on the same schedule, starting once DAD
// is over (the address is no longer tentative; RFC 4862 forbids
// advertising a tentative address). If DAD fails (another host has the
// address) the failure is logged as an error and nothing is announced;
// Held still reports the address, which the kernel keeps, unusable, on
// the interface. On interfaces without an Ethernet hardware address (tun,
// WireGuard, ...) nothing is announced.
//
// Network namespace: a Linux works in the network namespace that was
// current for the goroutine calling [NewLinux]; every later call, and the
// announcing goroutine, acts there whatever thread it runs on. Switching
// namespace (only done when the calling thread is in another one, as in
// tests) needs CAP_SYS_ADMIN; normal operation needs CAP_NET_ADMIN and
// CAP_NET_RAW.
type Linux struct {
	cfg    LinuxConfig
	prefix netip.Prefix // normalized: address unmapped
	ipnet  *net.IPNet
	family int
	log    *slog.Logger

	ns netns.NsHandle // namespace of NewLinux's caller, or netns.None()

	hmu sync.RWMutex // guards h against Close
	h   *netlink.Handle

	closed atomic.Bool

	mu        sync.Mutex // serializes Acquire, Release and Close
	annCancel context.CancelFunc
	annDone   chan struct{} // closed when the announcer goroutine ended
}

var _ Holder = (*Linux)(nil)

// NewLinux checks cfg and returns a holder for it. It does not touch the
// interface; the interface need not exist yet.
func NewLinux(cfg LinuxConfig) (*Linux, error) {
	if !cfg.Address.IsValid() {
		return nil, errors.New("vipnet: LinuxConfig.Address is not set: want the VIP with its prefix length, e.g. 198.18.0.12/24")
	}
	addr := cfg.Address.Addr()
	if addr.Zone() != "" {
		return nil, fmt.Errorf("vipnet: LinuxConfig.Address %s has a zone: want a plain address such as 198.18.0.12/24", cfg.Address)
	}
	bits := cfg.Address.Bits()
	if addr.Is4In6() {
		if bits < 96 {
			return nil, fmt.Errorf("vipnet: LinuxConfig.Address %s: IPv4-mapped address with prefix length below 96", cfg.Address)
		}
		addr, bits = addr.Unmap(), bits-96
	}
	if addr.IsUnspecified() || addr.IsMulticast() || addr.IsLoopback() || (addr.Is4() && addr == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return nil, fmt.Errorf("vipnet: LinuxConfig.Address %s is not a usable unicast address for a VIP", cfg.Address)
	}
	prefix := netip.PrefixFrom(addr, bits)

	if cfg.Interface == "" {
		return nil, errors.New("vipnet: LinuxConfig.Interface is not set: want the interface that gets the VIP, e.g. eth0")
	}
	if len(cfg.Interface) > maxIfNameLen || strings.ContainsAny(cfg.Interface, "/ \t\n:") {
		return nil, fmt.Errorf("vipnet: LinuxConfig.Interface %q is not a valid interface name (at most %d bytes, no '/', ':' or spaces)", cfg.Interface, maxIfNameLen)
	}
	if addr.Is4() {
		if cfg.Label == "" {
			cfg.Label = cfg.Interface + ":vip"
			if len(cfg.Label) > maxIfNameLen {
				return nil, fmt.Errorf("vipnet: default address label %q is longer than %d bytes: set LinuxConfig.Label to a shorter label starting with %q", cfg.Label, maxIfNameLen, cfg.Interface)
			}
		}
		if !strings.HasPrefix(cfg.Label, cfg.Interface) {
			return nil, fmt.Errorf("vipnet: LinuxConfig.Label %q must start with the interface name %q (kernel rule)", cfg.Label, cfg.Interface)
		}
		if len(cfg.Label) > maxIfNameLen {
			return nil, fmt.Errorf("vipnet: LinuxConfig.Label %q is longer than %d bytes (kernel limit)", cfg.Label, maxIfNameLen)
		}
	} else {
		cfg.Label = "" // IPv6 has no labels.
	}

	if cfg.GratuitousCount < 0 {
		return nil, fmt.Errorf("vipnet: LinuxConfig.GratuitousCount %d is negative", cfg.GratuitousCount)
	}
	if cfg.GratuitousCount == 0 {
		cfg.GratuitousCount = DefaultGratuitousCount
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"GratuitousInterval", &cfg.GratuitousInterval, DefaultGratuitousInterval},
		{"RefreshInterval", &cfg.RefreshInterval, DefaultRefreshInterval},
		{"ProbeTimeout", &cfg.ProbeTimeout, DefaultProbeTimeout},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("vipnet: LinuxConfig.%s %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Address = prefix

	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	ns, err := netns.Get()
	if err != nil {
		ns = netns.None() // no /proc: act in whatever namespace the thread is in
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		if ns.IsOpen() {
			ns.Close()
		}
		return nil, fmt.Errorf("vipnet: open netlink: %w", err)
	}
	return &Linux{
		cfg:    cfg,
		prefix: prefix,
		ipnet:  &net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(bits, addr.BitLen())},
		family: family,
		log:    log.With("vip", prefix.String(), "interface", cfg.Interface),
		ns:     ns,
		h:      h,
	}, nil
}

// Address returns the VIP without prefix length, e.g. "198.18.0.12".
func (l *Linux) Address() string { return l.prefix.Addr().String() }

// Acquire adds the VIP to the interface unless it is there already; see
// [Linux] for the probe and the announcements.
func (l *Linux) Acquire(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vipnet: acquire %s: %w", l.prefix, err)
	}
	link, err := l.link()
	if err != nil {
		return fmt.Errorf("vipnet: acquire %s: %w", l.prefix, err)
	}
	present, err := l.present(link)
	if err != nil {
		return fmt.Errorf("vipnet: acquire %s: %w", l.prefix, err)
	}
	if present {
		l.startAnnouncer()
		return nil
	}

	if mac := link.Attrs().HardwareAddr; l.family == netlink.FAMILY_V4 && len(mac) == 6 {
		ifi := &net.Interface{Index: link.Attrs().Index, Name: link.Attrs().Name, HardwareAddr: mac, MTU: link.Attrs().MTU}
		var other net.HardwareAddr
		err := l.inNetNS(func() error {
			var err error
			other, err = l.probe(ctx, ifi)
			return err
		})
		if err != nil {
			return fmt.Errorf("vipnet: acquire %s on %s: ARP probe: %w", l.prefix, l.cfg.Interface, err)
		}
		if other != nil {
			return fmt.Errorf("vipnet: acquire %s on %s: %w: host with MAC %s answers ARP for %s",
				l.prefix, l.cfg.Interface, ErrConflict, other, l.Address())
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vipnet: acquire %s: %w", l.prefix, err)
	}
	a := &netlink.Addr{IPNet: l.ipnet, Label: l.cfg.Label}
	if err := l.h.AddrReplace(link, a); err != nil {
		return fmt.Errorf("vipnet: acquire %s: add address to %s: %w", l.prefix, l.cfg.Interface, err)
	}
	l.log.Info("VIP added", "label", l.cfg.Label)
	l.startAnnouncer()
	return nil
}

// Release stops the announcements and deletes the VIP from the interface
// if it is there.
func (l *Linux) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil
	}
	return l.release(ctx, "VIP released")
}

// RemoveStale deletes the VIP from the interface if it is there, for
// example left over from before a restart, when this node is not Active.
// It is Release under another name, with a warning log when something was
// removed.
func (l *Linux) RemoveStale(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil
	}
	return l.release(ctx, "stale VIP removed")
}

// release does the work of Release; l.mu is held.
func (l *Linux) release(ctx context.Context, msg string) error {
	// ctx is not consulted: the netlink calls below do not block for long,
	// and the Holder contract wants the VIP gone even when ctx has ended.
	_ = ctx
	l.stopAnnouncer()
	link, err := l.link()
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil // no interface, no address
	}
	if err != nil {
		return fmt.Errorf("vipnet: release %s: %w", l.prefix, err)
	}
	present, err := l.present(link)
	if err != nil {
		return fmt.Errorf("vipnet: release %s: %w", l.prefix, err)
	}
	if !present {
		return nil
	}
	err = l.h.AddrDel(link, &netlink.Addr{IPNet: l.ipnet, Label: l.cfg.Label})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("vipnet: release %s: delete address from %s: %w", l.prefix, l.cfg.Interface, err)
	}
	if msg == "stale VIP removed" {
		l.log.Warn(msg)
	} else {
		l.log.Info(msg)
	}
	return nil
}

// Held reports whether the VIP (address and prefix length) is on the
// interface now, as listed by netlink. A missing interface holds nothing.
func (l *Linux) Held(ctx context.Context) (bool, error) {
	if l.closed.Load() {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("vipnet: held %s: %w", l.prefix, err)
	}
	l.hmu.RLock()
	defer l.hmu.RUnlock()
	if l.h == nil {
		return false, nil
	}
	link, err := l.link()
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("vipnet: held %s: %w", l.prefix, err)
	}
	ok, err := l.present(link)
	if err != nil {
		return false, fmt.Errorf("vipnet: held %s: %w", l.prefix, err)
	}
	return ok, nil
}

// Close releases the VIP (waiting at most 5s for that), stops the announcer
// and closes the netlink handle. Calling it again returns nil.
func (l *Linux) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.release(ctx, "VIP released on close")
	l.closed.Store(true)
	l.hmu.Lock()
	l.h.Close()
	l.h = nil
	if l.ns.IsOpen() {
		l.ns.Close()
	}
	l.hmu.Unlock()
	return err
}

// link looks the interface up by name (it may have been re-created).
func (l *Linux) link() (netlink.Link, error) {
	link, err := l.h.LinkByName(l.cfg.Interface)
	if err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil, fmt.Errorf("interface %q not found: %w", l.cfg.Interface, err)
		}
		return nil, fmt.Errorf("look up interface %q: %w", l.cfg.Interface, err)
	}
	return link, nil
}

// present reports whether the VIP prefix is among link's addresses.
func (l *Linux) present(link netlink.Link) (bool, error) {
	ok, _, err := l.lookup(link)
	return ok, err
}

// lookup reports whether the VIP prefix is among link's addresses, and its
// flags (IFA_F_TENTATIVE, IFA_F_DADFAILED, ...) if it is.
func (l *Linux) lookup(link netlink.Link) (bool, int, error) {
	var addrs []netlink.Addr
	var err error
	for range 3 {
		addrs, err = l.h.AddrList(link, l.family)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return false, 0, fmt.Errorf("list addresses of %s: %w", l.cfg.Interface, err)
	}
	wantOnes, _ := l.ipnet.Mask.Size()
	for _, a := range addrs {
		if a.IPNet == nil || !a.IP.Equal(l.ipnet.IP) {
			continue
		}
		if ones, _ := a.Mask.Size(); ones == wantOnes {
			return true, a.Flags, nil
		}
	}
	return false, 0, nil
}

// enterNS moves the calling, locked, OS thread into l.ns if it is in
// another network namespace. switched reports whether it did, in which case
// the thread must not be unlocked (the runtime then discards it when the
// goroutine ends).
func (l *Linux) enterNS() (switched bool, err error) {
	if !l.ns.IsOpen() {
		return false, nil
	}
	cur, err := netns.Get()
	if err != nil {
		return false, fmt.Errorf("get current network namespace: %w", err)
	}
	defer cur.Close()
	if cur.Equal(l.ns) {
		return false, nil
	}
	if err := netns.Set(l.ns); err != nil {
		return true, fmt.Errorf("enter network namespace: %w", err)
	}
	return true, nil
}

// inNetNS runs fn on an OS thread in l.ns (packet sockets are created in
// the namespace of the creating thread) and returns its error.
func (l *Linux) inNetNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		switched, err := l.enterNS()
		if !switched {
			defer runtime.UnlockOSThread()
		}
		if err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// probe sends ARP probes for the VIP on ifi (one at once, one after half of
// ProbeTimeout) and waits ProbeTimeout for an answer from another host. It
// returns that host's MAC, or nil if nobody answered.
func (l *Linux) probe(ctx context.Context, ifi *net.Interface) (net.HardwareAddr, error) {
	c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, fmt.Errorf("open packet socket on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	vip := l.prefix.Addr()
	frame, err := ARPProbe(ifi.HardwareAddr, vip)
	if err != nil {
		return nil, err
	}
	dst := &packet.Addr{HardwareAddr: broadcastMAC}
	start := time.Now()
	end := start.Add(l.cfg.ProbeTimeout)
	sends := []time.Time{start, start.Add(l.cfg.ProbeTimeout / 2)}
	buf := make([]byte, 1514)
	for {
		now := time.Now()
		for len(sends) > 0 && !now.Before(sends[0]) {
			if _, err := c.WriteTo(frame, dst); err != nil {
				return nil, fmt.Errorf("send on %s: %w", ifi.Name, err)
			}
			sends = sends[1:]
		}
		if !now.Before(end) {
			return nil, nil
		}
		wake := end
		if len(sends) > 0 && sends[0].Before(wake) {
			wake = sends[0]
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.SetReadDeadline(wake); err != nil {
			return nil, err
		}
		if ctx.Err() != nil { // AfterFunc may have fired before our SetReadDeadline
			return nil, ctx.Err()
		}
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				continue
			}
			return nil, fmt.Errorf("receive on %s: %w", ifi.Name, err)
		}
		if p, ok := parseARPFrame(buf[:n]); ok && conflictFrom(p, ifi.HardwareAddr, vip) {
			return p.senderHW, nil
		}
	}
}

// startAnnouncer starts the announcing goroutine unless it runs; l.mu is
// held.
func (l *Linux) startAnnouncer() {
	if l.annDone != nil {
		select {
		case <-l.annDone:
			// Ended by itself (address vanished); start a new one.
		default:
			return
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	l.annCancel, l.annDone = cancel, done
	go l.announce(ctx, done)
}

// stopAnnouncer stops the announcing goroutine and waits for it; l.mu is
// held.
func (l *Linux) stopAnnouncer() {
	if l.annDone == nil {
		return
	}
	l.annCancel()
	<-l.annDone
	l.annCancel, l.annDone = nil, nil
}

// announce sends GratuitousCount gratuitous ARPs (IPv6: unsolicited
// neighbour advertisements) GratuitousInterval apart, then one every
// RefreshInterval, as long as the VIP is on the interface and ctx lasts.
// An IPv6 address is announced once it is no longer tentative.
func (l *Linux) announce(ctx context.Context, done chan struct{}) {
	defer close(done)
	runtime.LockOSThread()
	switched, err := l.enterNS()
	if !switched {
		defer runtime.UnlockOSThread()
	}
	if err != nil {
		l.log.Error("VIP announcements not started", "err", err)
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	what := "gratuitous ARP"
	if l.family == netlink.FAMILY_V6 {
		what = "unsolicited neighbour advertisement"
	}
	// waits bounds the polls of a tentative address: DAD takes about a
	// second (dad_transmits x retrans_time); after that many, announce anyway.
	const maxDADWaits = 100
	for sent, waits := 0, 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		link, err := l.link()
		var present bool
		var flags int
		if err == nil {
			present, flags, err = l.lookup(link)
		}
		switch {
		case err != nil:
			l.log.Warn("VIP announcement skipped: cannot read interface", "err", err)
		case !present:
			l.log.Warn("VIP no longer on the interface: announcements stopped")
			return
		case flags&unix.IFA_F_DADFAILED != 0:
			l.log.Error("duplicate address detection failed: another host has the VIP; not announcing it")
			return
		case flags&unix.IFA_F_TENTATIVE != 0 && waits < maxDADWaits:
			waits++
			t.Reset(dadPoll)
			continue
		default:
			if err := l.sendAnnouncement(link); err != nil {
				l.log.Warn(what+" not sent", "err", err)
			} else {
				l.log.Debug(what + " sent")
			}
		}
		sent++
		if sent < l.cfg.GratuitousCount {
			t.Reset(l.cfg.GratuitousInterval)
		} else {
			t.Reset(l.cfg.RefreshInterval)
		}
	}
}

// dadPoll is how often the announcer looks whether a tentative IPv6 VIP
// passed duplicate address detection.
const dadPoll = 100 * time.Millisecond

// sendAnnouncement sends one gratuitous ARP (IPv4) or unsolicited neighbour
// advertisement (IPv6) for the VIP on link, from the current thread's
// namespace.
func (l *Linux) sendAnnouncement(link netlink.Link) error {
	attrs := link.Attrs()
	if len(attrs.HardwareAddr) != 6 {
		return nil // no Ethernet: nothing to announce
	}
	frame, err := GratuitousARP(attrs.HardwareAddr, l.prefix.Addr())
	etherType, dst := etherTypeARP, broadcastMAC
	if l.family == netlink.FAMILY_V6 {
		frame, err = UnsolicitedNA(attrs.HardwareAddr, l.prefix.Addr())
		etherType, dst = etherTypeIPv6, allNodesMAC
	}
	if err != nil {
		return err
	}
	ifi := &net.Interface{Index: attrs.Index, Name: attrs.Name, HardwareAddr: attrs.HardwareAddr, MTU: attrs.MTU}
	c, err := packet.Listen(ifi, packet.Raw, etherType, nil)
	if err != nil {
		return fmt.Errorf("open packet socket on %s: %w", attrs.Name, err)
	}
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: dst}); err != nil {
		return fmt.Errorf("send on %s: %w", attrs.Name, err)
	}
	return nil
}
