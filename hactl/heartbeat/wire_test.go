package heartbeat

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef-test-key")

func samplePacket() Packet {
	return Packet{
		Type:    TypePing,
		Node:    "node-b",
		Seq:     42,
		SentAt:  1_700_000_000_123_456_789,
		Session: 0xdeadbeefcafef00d,
		Payload: []byte("role=standby"),
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    Packet
	}{
		{"ping", samplePacket()},
		{"pong", Packet{Type: TypePong, Node: "a", Seq: 1, SentAt: 5, Session: 7, Payload: []byte{0}}},
		{"empty payload", Packet{Type: TypePing, Node: "n", Seq: 0, SentAt: 0, Session: 0}},
		{"negative sent-at", Packet{Type: TypePong, Node: "n", Seq: ^uint64(0), SentAt: -1, Session: ^uint64(0)}},
		{"max name and payload", Packet{Type: TypePing, Node: strings.Repeat("x", MaxNodeLen), Seq: 9,
			Payload: bytes.Repeat([]byte{0xAB}, MaxPayload)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.p, testKey)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(b) < MinPacketSize || len(b) > MaxPacketSize {
				t.Fatalf("len %d outside [%d, %d]", len(b), MinPacketSize, MaxPacketSize)
			}
			got, err := Decode(b, testKey)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got.Type != tt.p.Type || got.Node != tt.p.Node || got.Seq != tt.p.Seq ||
				got.SentAt != tt.p.SentAt || got.Session != tt.p.Session || !bytes.Equal(got.Payload, tt.p.Payload) {
				t.Fatalf("Decode = %+v, want %+v", got, tt.p)
			}
			again, err := Encode(got, testKey)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encode differs (err %v)", err)
			}
		})
	}
}

func TestEncodeDecodeSizes(t *testing.T) {
	if MaxPacketSize != 640 || MinPacketSize != 66 {
		t.Fatalf("MaxPacketSize %d MinPacketSize %d, documented as 640 and 66", MaxPacketSize, MinPacketSize)
	}
}

func TestDecodeDoesNotRetainInput(t *testing.T) {
	b, err := Encode(samplePacket(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(b, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(p.Payload) != "role=standby" {
		t.Fatalf("payload aliases the input buffer: %q", p.Payload)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		p    Packet
		key  []byte
		want error
	}{
		{"oversize payload", Packet{Type: TypePing, Node: "n", Payload: make([]byte, MaxPayload+1)}, testKey, ErrTooLarge},
		{"long node name", Packet{Type: TypePing, Node: strings.Repeat("n", MaxNodeLen+1)}, testKey, ErrTooLarge},
		{"empty node name", Packet{Type: TypePing}, testKey, ErrMalformed},
		{"type zero", Packet{Node: "n"}, testKey, ErrMalformed},
		{"type three", Packet{Type: 3, Node: "n"}, testKey, ErrMalformed},
		{"short key", samplePacket(), testKey[:MinKeyLen-1], ErrKey},
		{"nil key", samplePacket(), nil, ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.p, tt.key)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Encode error = %v, want %v", err, tt.want)
			}
			if b != nil {
				t.Fatalf("Encode returned bytes with an error")
			}
		})
	}
}

// Offsets of the sample packet's regions ("node-b" is 6 bytes, payload 12).
const (
	offName     = 7
	offSeq      = offName + 6
	offSentAt   = offSeq + 8
	offSession  = offSentAt + 8
	offPayLen   = offSession + 8
	offPayload  = offPayLen + 2
	offMAC      = offPayload + 12
	sampleTotal = offMAC + MACLen
)

func TestDecodeCorruption(t *testing.T) {
	valid, err := Encode(samplePacket(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(valid) != sampleTotal {
		t.Fatalf("sample packet is %d bytes, test offsets assume %d", len(valid), sampleTotal)
	}
	flip := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b[i] ^= 0xFF; return b }
	}
	set := func(i int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[i] = v; return b }
	}
	// Corrupted packets with a valid MAC (bad field values) need re-signing.
	resign := func(mut func([]byte)) func([]byte) []byte {
		return func(b []byte) []byte {
			mut(b)
			body := b[:len(b)-MACLen]
			return append(body, mac(testKey, body)...)
		}
	}
	otherKey := bytes.Repeat([]byte{'k'}, MinKeyLen)
	tests := []struct {
		name string
		mut  func([]byte) []byte
		key  []byte
		want error
	}{
		{"magic byte 0", flip(0), testKey, ErrMagic},
		{"magic byte 3", flip(3), testKey, ErrMagic},
		{"wrong magic", func(b []byte) []byte { copy(b, "HAPX"); return b }, testKey, ErrMagic},
		{"version flipped", flip(4), testKey, ErrVersion},
		{"version 2", set(4, 2), testKey, ErrVersion},
		{"version 0", set(4, 0), testKey, ErrVersion},
		{"type flipped", flip(5), testKey, ErrMAC},
		{"type ping->pong", set(5, byte(TypePong)), testKey, ErrMAC},
		{"name length flipped (over 63)", flip(6), testKey, ErrTooLarge},
		{"name length 64", set(6, 64), testKey, ErrTooLarge},
		{"name byte", flip(offName + 2), testKey, ErrMAC},
		{"seq byte", flip(offSeq + 7), testKey, ErrMAC},
		{"sent-at byte", flip(offSentAt), testKey, ErrMAC},
		{"session byte", flip(offSession + 3), testKey, ErrMAC},
		{"payload length high byte (over 512)", flip(offPayLen), testKey, ErrTooLarge},
		{"payload length low byte (beyond end)", flip(offPayLen + 1), testKey, ErrShort},
		{"payload byte", flip(offPayload), testKey, ErrMAC},
		{"mac first byte", flip(offMAC), testKey, ErrMAC},
		{"mac last byte", flip(sampleTotal - 1), testKey, ErrMAC},
		{"wrong key", func(b []byte) []byte { return b }, otherKey, ErrMAC},
		{"short key", func(b []byte) []byte { return b }, testKey[:8], ErrKey},
		{"empty", func(b []byte) []byte { return b[:0] }, testKey, ErrShort},
		{"magic only", func(b []byte) []byte { return b[:4] }, testKey, ErrShort},
		{"truncated in name", func(b []byte) []byte { return b[:offName+3] }, testKey, ErrShort},
		{"truncated in payload", func(b []byte) []byte { return b[:offPayload+1] }, testKey, ErrShort},
		{"truncated mac", func(b []byte) []byte { return b[:len(b)-1] }, testKey, ErrShort},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, testKey, ErrMalformed},
		{"oversize datagram", func(b []byte) []byte { return append(b, make([]byte, MaxPacketSize)...) }, testKey, ErrTooLarge},
		{"oversize payload length 513", func(b []byte) []byte {
			b[offPayLen], b[offPayLen+1] = 0x02, 0x01
			return b
		}, testKey, ErrTooLarge},
		{"signed unknown type", resign(func(b []byte) { b[5] = 9 }), testKey, ErrMalformed},
		{"signed empty name", func([]byte) []byte {
			b := []byte(Magic)
			b = append(b, Version, byte(TypePing), 0)
			b = append(b, make([]byte, fixedLen)...)
			return append(b, mac(testKey, b)...)
		}, testKey, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mut(bytes.Clone(valid))
			p, err := Decode(b, tt.key)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode error = %v, want %v", err, tt.want)
			}
			if p.Node != "" || p.Payload != nil {
				t.Fatalf("Decode returned a packet with an error: %+v", p)
			}
		})
	}
}

// Every single-byte corruption and every truncation of a valid packet must be
// detected.
func TestDecodeEveryCorruptionDetected(t *testing.T) {
	valid, err := Encode(samplePacket(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := range valid {
		for _, x := range []byte{0x01, 0x80, 0xFF} {
			b := bytes.Clone(valid)
			b[i] ^= x
			if _, err := Decode(b, testKey); err == nil {
				t.Errorf("byte %d ^ %#x: accepted", i, x)
			}
		}
	}
	for n := range len(valid) {
		if _, err := Decode(valid[:n], testKey); !errors.Is(err, ErrShort) {
			t.Errorf("truncated to %d bytes: error %v, want ErrShort", n, err)
		}
	}
}

func TestTypeString(t *testing.T) {
	for _, tt := range []struct {
		t    Type
		want string
	}{{TypePing, "ping"}, {TypePong, "pong"}, {7, "type(7)"}} {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
		}
	}
}
