// Package vipnet holds and releases the virtual IP (VIP) of a hapair node.
//
// The Active node of a pair holds the VIP; clients of the appliance (and of
// its PostgreSQL) always connect to the VIP, so moving the VIP from one node
// to the other is what moves the clients.
//
// # Level-triggered reconciliation
//
// A [Holder] is driven level-triggered, not edge-triggered: the caller (the
// node agent's reconcile loop) periodically compares the desired state ("this
// node is Active, so it should hold the VIP") with the actual state reported by
// [Holder.Held] and calls [Holder.Acquire] or [Holder.Release] to close the
// gap. Both are idempotent, so calling them again after a partial failure, a
// missed event or a restart is always safe, and the loop converges without
// remembering what it did before. For that to work, Held reads the truth from
// the system (the kernel's addresses, or a real connection to the VIP) rather
// than from a flag set by Acquire, and Acquire never leaves the VIP half taken:
// it either holds everything or, on error, nothing.
//
// When the VIP is bound by someone else, Acquire fails with an error that
// wraps [ErrConflict] and names the address; the caller must not retry
// blindly but let the cluster decide who should be Active.
//
// # Implementations
//
// The user-space implementation, [Userspace], serves the VIP on a loopback
// address (such as 127.0.0.12) for the unprivileged single-machine demo and
// for tests: holding the VIP means listening on VIP:port for each configured
// [Forward] and relaying every accepted connection to the local service
// (PostgreSQL, the console, ...). The kernel lets only one process bind an
// address and port, which gives exclusive ownership, and Release cuts the
// relayed connections so clients reconnect to the new Active node.
//
// The Linux implementation (linux.go, [NewLinux]) adds and removes the
// address on a network interface with netlink (AddrReplace, a label operators
// see in `ip addr`), probes for a conflict with RFC 5227 ARP probes before
// taking it, and announces it with gratuitous ARP, several spaced at once and
// then periodically while held; [Holder.Held] reads the interface's addresses
// back. The frames are built by pure functions ([GratuitousARP],
// [ARPProbe]); an IPv6 VIP is announced with unsolicited neighbour
// advertisements ([UnsolicitedNA]) once the kernel's duplicate address
// detection passed. The agent uses it with `vip.mode: linux`.
//
// Documentation uses 198.18.0.12 as the example VIP of a real pair.
package vipnet
