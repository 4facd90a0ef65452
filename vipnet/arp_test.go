package vipnet

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

var testMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x20, 0x30}

func TestGratuitousARP(t *testing.T) {
	tests := []struct {
		name    string
		mac     net.HardwareAddr
		ip      netip.Addr
		want    string // hex, spaces ignored
		wantErr string
	}{
		{
			name: "vip 198.18.0.12",
			mac:  testMAC,
			ip:   netip.MustParseAddr("198.18.0.12"),
			want: "ffffffffffff 02005e102030 0806" +
				" 0001 0800 06 04 0001" +
				" 02005e102030 c612000c" +
				" 000000000000 c612000c",
		},
		{
			name: "IPv4-mapped IPv6 is treated as IPv4",
			mac:  net.HardwareAddr{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff},
			ip:   netip.MustParseAddr("::ffff:198.18.0.255"),
			want: "ffffffffffff aabbccddeeff 0806" +
				" 0001 0800 06 04 0001" +
				" aabbccddeeff c61200ff" +
				" 000000000000 c61200ff",
		},
		{name: "IPv6", mac: testMAC, ip: netip.MustParseAddr("2001:db8::12"), wantErr: "not an IPv4 address"},
		{name: "invalid IP", mac: testMAC, ip: netip.Addr{}, wantErr: "invalid IP"},
		{name: "short MAC", mac: net.HardwareAddr{1, 2, 3}, ip: netip.MustParseAddr("198.18.0.12"), wantErr: "has 3 bytes"},
		{name: "nil MAC", mac: nil, ip: netip.MustParseAddr("198.18.0.12"), wantErr: "has 0 bytes"},
		{name: "InfiniBand-length MAC", mac: make(net.HardwareAddr, 20), ip: netip.MustParseAddr("198.18.0.12"), wantErr: "want 6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := GratuitousARP(tc.mac, tc.ip)
			checkFrame(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestARPProbe(t *testing.T) {
	tests := []struct {
		name    string
		mac     net.HardwareAddr
		ip      netip.Addr
		want    string
		wantErr string
	}{
		{
			name: "probe for 198.18.0.12",
			mac:  testMAC,
			ip:   netip.MustParseAddr("198.18.0.12"),
			want: "ffffffffffff 02005e102030 0806" +
				" 0001 0800 06 04 0001" +
				" 02005e102030 00000000" +
				" 000000000000 c612000c",
		},
		{name: "IPv6", mac: testMAC, ip: netip.MustParseAddr("2001:db8::12"), wantErr: "not an IPv4 address"},
		{name: "seven-byte MAC", mac: make(net.HardwareAddr, 7), ip: netip.MustParseAddr("198.18.0.12"), wantErr: "has 7 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ARPProbe(tc.mac, tc.ip)
			checkFrame(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func checkFrame(t *testing.T, got []byte, err error, want, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("err = %v, want one containing %q", err, wantErr)
		}
		if got != nil {
			t.Fatalf("frame = %x, want nil on error", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	w := mustHex(t, want)
	if len(w) != ARPFrameLen {
		t.Fatalf("test bug: want has %d bytes", len(w))
	}
	if !bytes.Equal(got, w) {
		t.Fatalf("frame mismatch\n got %x\nwant %x", got, w)
	}
}

func TestParseARPFrameAndConflict(t *testing.T) {
	vip := netip.MustParseAddr("198.18.0.12")
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	// A reply from other: "198.18.0.12 is at other", sent to our probe.
	reply := mustHex(t, "02005e102030 020000000099 0806 0001 0800 06 04 0002"+
		" 020000000099 c612000c 02005e102030 00000000")
	ownProbe, _ := ARPProbe(testMAC, vip)
	otherProbe, _ := ARPProbe(other, vip)
	otherAnnounce, _ := GratuitousARP(other, vip)
	unrelated, _ := GratuitousARP(other, netip.MustParseAddr("198.18.0.5"))

	tests := []struct {
		name         string
		frame        []byte
		wantOK       bool
		wantConflict bool
	}{
		{name: "reply from other host", frame: reply, wantOK: true, wantConflict: true},
		{name: "own probe echoed", frame: ownProbe, wantOK: true, wantConflict: false},
		{name: "other host probing too", frame: otherProbe, wantOK: true, wantConflict: true},
		{name: "other host announces", frame: otherAnnounce, wantOK: true, wantConflict: true},
		{name: "unrelated announcement", frame: unrelated, wantOK: true, wantConflict: false},
		{name: "truncated", frame: reply[:30], wantOK: false},
		{name: "not ARP", frame: append(append([]byte{}, reply[:12]...), append([]byte{0x08, 0x00}, reply[14:]...)...), wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := parseARPFrame(tc.frame)
			if ok != tc.wantOK {
				t.Fatalf("parse ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if got := conflictFrom(p, testMAC, vip); got != tc.wantConflict {
				t.Fatalf("conflict = %v, want %v (packet %+v)", got, tc.wantConflict, p)
			}
		})
	}
}
