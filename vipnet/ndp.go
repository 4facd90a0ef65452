package vipnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Sizes and constants of an unsolicited neighbour advertisement in an
// Ethernet frame (RFC 4861 section 4.4, RFC 2464).
const (
	ipv6HeaderLen = 40
	naLen         = 24 // ICMPv6 header, flags, target address
	naOptionLen   = 8  // target link-layer address option for Ethernet
	// NAFrameLen is the length of the frame built by UnsolicitedNA: an
	// Ethernet header, an IPv6 header and the ICMPv6 neighbour advertisement
	// with its target link-layer address option.
	NAFrameLen = ethHeaderLen + ipv6HeaderLen + naLen + naOptionLen

	etherTypeIPv6        = 0x86dd
	protoICMPv6          = 58
	icmpv6NeighborAdvert = 136
	ndpOptTargetLLAddr   = 2
	naFlagOverride       = 0x20 // O; R (0x80) and S (0x40) stay clear
)

var (
	// allNodesIPv6 is ff02::1, where unsolicited advertisements go.
	allNodesIPv6 = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x01})
	// allNodesMAC is the Ethernet multicast address of ff02::1 (RFC 2464: 33:33 and the
	// address's last 32 bits).
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0x01}
)

// UnsolicitedNA builds the Ethernet frame of an unsolicited IPv6 neighbour
// advertisement for ip from srcMAC (RFC 4861 section 7.2.6): sent from ip
// to the all-nodes address ff02::1 (Ethernet 33:33:00:00:00:01), hop limit
// 255, ICMPv6 type 136 with the Override flag set and the Solicited and
// Router flags clear, target ip, and a target link-layer address option
// carrying srcMAC; the ICMPv6 checksum covers the IPv6 pseudo-header.
// Neighbours that have ip in their cache update it to srcMAC.
//
// It fails for an address that is not a unicast IPv6 address (IPv4-mapped
// included) or a hardware address that is not 6 bytes.
func UnsolicitedNA(srcMAC net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	if len(srcMAC) != 6 {
		return nil, fmt.Errorf("vipnet: neighbour advertisement: hardware address %q has %d bytes, want 6 (Ethernet)", srcMAC.String(), len(srcMAC))
	}
	switch {
	case !ip.IsValid():
		return nil, errors.New("vipnet: neighbour advertisement: invalid IP address")
	case !ip.Is6() || ip.Is4In6():
		return nil, fmt.Errorf("vipnet: neighbour advertisement: %s is not an IPv6 address", ip)
	case ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback():
		return nil, fmt.Errorf("vipnet: neighbour advertisement: %s is not a unicast address", ip)
	}
	ip = ip.WithZone("")
	b := make([]byte, NAFrameLen)
	copy(b[0:6], allNodesMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)

	h := b[ethHeaderLen : ethHeaderLen+ipv6HeaderLen]
	h[0] = 0x60 // version 6, traffic class 0, flow label 0
	binary.BigEndian.PutUint16(h[4:6], naLen+naOptionLen)
	h[6] = protoICMPv6
	h[7] = 255 // hop limit: receivers drop neighbour discovery with any other
	src, dst := ip.As16(), allNodesIPv6.As16()
	copy(h[8:24], src[:])
	copy(h[24:40], dst[:])

	m := b[ethHeaderLen+ipv6HeaderLen:]
	m[0] = icmpv6NeighborAdvert
	// m[1] code 0, m[2:4] checksum below.
	m[4] = naFlagOverride
	copy(m[8:24], src[:])
	m[24] = ndpOptTargetLLAddr
	m[25] = 1 // option length in units of 8 bytes
	copy(m[26:32], srcMAC)
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(src, dst, m))
	return b, nil
}

// icmpv6Checksum is the ICMPv6 checksum of msg (its checksum field zero)
// sent from src to dst (RFC 4443 section 2.3: the one's complement of the
// one's complement sum over the IPv6 pseudo-header and the message).
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var tail [8]byte // upper-layer length (32 bits), 3 zero bytes, next header
	binary.BigEndian.PutUint32(tail[0:4], uint32(len(msg)))
	tail[7] = protoICMPv6
	add(tail[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
