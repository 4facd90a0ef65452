package vipnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Sizes and constants of an ARP-over-Ethernet frame (RFC 826).
const (
	ethHeaderLen  = 14
	arpPayloadLen = 28
	// ARPFrameLen is the length of the frames built by GratuitousARP and
	// ARPProbe: an Ethernet header and an IPv4-over-Ethernet ARP packet, without
	// padding (the kernel or the NIC pads to the 60-byte minimum).
	ARPFrameLen = ethHeaderLen + arpPayloadLen

	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	arpHTypeEther = 1
	arpOpRequest  = 1
	arpOpReply    = 2
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// GratuitousARP builds the Ethernet frame of a gratuitous ARP announcement
// for ip from srcMAC: destination ff:ff:ff:ff:ff:ff, EtherType 0x0806 and an
// ARP request whose sender and target protocol addresses are both ip and
// whose target hardware address is zero (RFC 5227 section 3 "ARP
// Announcement"). Neighbours that have ip in their cache update it to srcMAC.
//
// It fails for a non-IPv4 address or a hardware address that is not 6 bytes.
func GratuitousARP(srcMAC net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	if err := checkARPArgs(srcMAC, ip); err != nil {
		return nil, fmt.Errorf("vipnet: gratuitous ARP: %w", err)
	}
	return arpFrame(srcMAC, ip, ip), nil
}

// ARPProbe builds the Ethernet frame of an RFC 5227 ARP probe for ip from
// srcMAC: a broadcast ARP request with sender protocol address 0.0.0.0,
// target protocol address ip and a zero target hardware address. A host that
// has ip answers it, which reveals a conflict, and the probe does not change
// anybody's ARP cache.
//
// It fails for a non-IPv4 address or a hardware address that is not 6 bytes.
func ARPProbe(srcMAC net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	if err := checkARPArgs(srcMAC, ip); err != nil {
		return nil, fmt.Errorf("vipnet: ARP probe: %w", err)
	}
	return arpFrame(srcMAC, netip.IPv4Unspecified(), ip), nil
}

func checkARPArgs(srcMAC net.HardwareAddr, ip netip.Addr) error {
	if len(srcMAC) != 6 {
		return fmt.Errorf("hardware address %q has %d bytes, want 6 (Ethernet)", srcMAC.String(), len(srcMAC))
	}
	if !ip.IsValid() {
		return errors.New("invalid IP address")
	}
	if !ip.Unmap().Is4() {
		return fmt.Errorf("%s is not an IPv4 address (ARP is IPv4 only)", ip)
	}
	return nil
}

// arpFrame builds a broadcast ARP request frame. Arguments are checked.
func arpFrame(srcMAC net.HardwareAddr, senderIP, targetIP netip.Addr) []byte {
	b := make([]byte, ARPFrameLen)
	copy(b[0:6], broadcastMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)

	p := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(p[0:2], arpHTypeEther)
	binary.BigEndian.PutUint16(p[2:4], etherTypeIPv4)
	p[4] = 6 // hardware address length
	p[5] = 4 // protocol address length
	binary.BigEndian.PutUint16(p[6:8], arpOpRequest)
	copy(p[8:14], srcMAC)
	s4 := senderIP.Unmap().As4()
	copy(p[14:18], s4[:])
	// p[18:24]: target hardware address, zero.
	t4 := targetIP.Unmap().As4()
	copy(p[24:28], t4[:])
	return b
}

// arpPacket is the part of a received IPv4-over-Ethernet ARP packet that
// conflict detection needs.
type arpPacket struct {
	op       uint16
	senderHW net.HardwareAddr
	senderIP netip.Addr
	targetIP netip.Addr
}

// parseARPFrame parses an Ethernet frame carrying an IPv4-over-Ethernet ARP
// packet. ok is false for anything else.
func parseARPFrame(b []byte) (p arpPacket, ok bool) {
	if len(b) < ARPFrameLen || binary.BigEndian.Uint16(b[12:14]) != etherTypeARP {
		return arpPacket{}, false
	}
	a := b[ethHeaderLen:]
	if binary.BigEndian.Uint16(a[0:2]) != arpHTypeEther ||
		binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 || a[4] != 6 || a[5] != 4 {
		return arpPacket{}, false
	}
	p.op = binary.BigEndian.Uint16(a[6:8])
	p.senderHW = net.HardwareAddr(append([]byte(nil), a[8:14]...))
	p.senderIP = netip.AddrFrom4([4]byte(a[14:18]))
	p.targetIP = netip.AddrFrom4([4]byte(a[24:28]))
	return p, true
}

// conflictFrom reports whether p, received while probing for vip from ownMAC,
// shows that another host uses vip: it claims vip as its sender address
// (a reply to the probe, an announcement or any request from a host that has
// vip), or it is another host's RFC 5227 probe for vip.
func conflictFrom(p arpPacket, ownMAC net.HardwareAddr, vip netip.Addr) bool {
	if string(p.senderHW) == string(ownMAC) {
		return false
	}
	if p.op != arpOpRequest && p.op != arpOpReply {
		return false
	}
	if p.senderIP == vip {
		return true
	}
	return p.op == arpOpRequest && p.senderIP.IsUnspecified() && p.targetIP == vip
}
