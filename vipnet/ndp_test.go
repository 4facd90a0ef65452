package vipnet

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestUnsolicitedNA(t *testing.T) {
	// The expected frames and checksums were computed by a separate
	// implementation (a few lines of Python following RFC 4861 and RFC 4443),
	// not by this package.
	tests := []struct {
		name    string
		mac     net.HardwareAddr
		ip      netip.Addr
		want    string // hex, spaces ignored
		wantErr string
	}{
		{
			name: "link-local vip",
			mac:  net.HardwareAddr{0x02, 0, 0, 0, 0, 0x05},
			ip:   netip.MustParseAddr("fe80::12"),
			want: "333300000001 020000000005 86dd" + // Ethernet: all-nodes multicast, IPv6
				" 60000000 0020 3a ff" + // IPv6: payload 32, ICMPv6, hop limit 255
				" fe800000000000000000000000000012 ff020000000000000000000000000001" +
				" 88 00 5775 20000000" + // NA, code 0, checksum, flags O
				" fe800000000000000000000000000012" + // target
				" 02 01 020000000005", // target link-layer address option
		},
		{
			name: "documentation vip, zone dropped",
			mac:  testMAC,
			ip:   netip.MustParseAddr("2001:db8::12%eth0"),
			want: "333300000001 02005e102030 86dd 60000000 0020 3a ff" +
				" 20010db8000000000000000000000012 ff020000000000000000000000000001" +
				" 88 00 7ac9 20000000 20010db8000000000000000000000012 02 01 02005e102030",
		},
		{name: "IPv4", mac: testMAC, ip: netip.MustParseAddr("198.18.0.12"), wantErr: "not an IPv6 address"},
		{name: "IPv4-mapped", mac: testMAC, ip: netip.MustParseAddr("::ffff:198.18.0.12"), wantErr: "not an IPv6 address"},
		{name: "multicast", mac: testMAC, ip: netip.MustParseAddr("ff02::1"), wantErr: "not a unicast address"},
		{name: "unspecified", mac: testMAC, ip: netip.IPv6Unspecified(), wantErr: "not a unicast address"},
		{name: "loopback", mac: testMAC, ip: netip.IPv6Loopback(), wantErr: "not a unicast address"},
		{name: "invalid address", mac: testMAC, ip: netip.Addr{}, wantErr: "invalid IP address"},
		{name: "short MAC", mac: net.HardwareAddr{1, 2, 3}, ip: netip.MustParseAddr("fe80::12"), wantErr: "has 3 bytes, want 6"},
		{name: "InfiniBand MAC", mac: make(net.HardwareAddr, 20), ip: netip.MustParseAddr("fe80::12"), wantErr: "want 6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UnsolicitedNA(tc.mac, tc.ip)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || got != nil {
					t.Fatalf("UnsolicitedNA = %x, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnsolicitedNA: %v", err)
			}
			if want := mustHex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("frame\n got %x\nwant %x", got, want)
			}
			if len(got) != NAFrameLen {
				t.Fatalf("len = %d, want NAFrameLen %d", len(got), NAFrameLen)
			}
		})
	}
}

// TestUnsolicitedNAFields checks, for many addresses, what a receiving
// kernel checks (RFC 4861 section 7.1.2): hop limit 255, code 0, a valid
// checksum, the Solicited flag clear for a multicast destination, the
// target neither multicast nor different from the sender's address, and the
// option lengths.
func TestUnsolicitedNAFields(t *testing.T) {
	for _, s := range []string{"fe80::12", "fe80::1:2:3:4", "2001:db8::12", "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe", "fd00::12"} {
		ip := netip.MustParseAddr(s)
		f, err := UnsolicitedNA(testMAC, ip)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		ip6 := f[ethHeaderLen:]
		msg := ip6[ipv6HeaderLen:]
		if binary.BigEndian.Uint16(f[12:14]) != 0x86dd || ip6[0]>>4 != 6 || ip6[6] != 58 || ip6[7] != 255 {
			t.Errorf("%s: IPv6 header %x", s, ip6[:8])
		}
		if int(binary.BigEndian.Uint16(ip6[4:6])) != len(msg) {
			t.Errorf("%s: payload length %d, message %d bytes", s, binary.BigEndian.Uint16(ip6[4:6]), len(msg))
		}
		if !bytes.Equal(ip6[8:24], ip.AsSlice()) || !bytes.Equal(msg[8:24], ip.AsSlice()) {
			t.Errorf("%s: source %x, target %x", s, ip6[8:24], msg[8:24])
		}
		if msg[0] != 136 || msg[1] != 0 || msg[4]&0x40 != 0 || msg[4]&0x80 != 0 || msg[4]&0x20 == 0 {
			t.Errorf("%s: type %d code %d flags %#x: want 136, 0, O only", s, msg[0], msg[1], msg[4])
		}
		if msg[24] != 2 || int(msg[25])*8 != len(msg)-24 || !bytes.Equal(msg[26:32], testMAC) {
			t.Errorf("%s: option %x", s, msg[24:])
		}
		// Independent check: the 16-bit one's complement sum over the
		// pseudo-header and the message, checksum included, is 0xffff.
		var sum uint32
		words := append(append(append([]byte{}, ip6[8:40]...), 0, 0, 0, byte(len(msg)), 0, 0, 0, 58), msg...)
		for i := 0; i < len(words); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(words[i:]))
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		if sum != 0xffff {
			t.Errorf("%s: checksum %#04x does not verify (sum %#x)", s, binary.BigEndian.Uint16(msg[2:4]), sum)
		}
	}
}
