package heartbeat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire-format constants. See the package documentation for the layout.
const (
	// Magic starts every packet.
	Magic = "HAPB"
	// Version is the only wire-format version this package speaks. Decode
	// rejects every other value with ErrVersion.
	Version = 1
	// MaxNodeLen is the longest node name, in bytes, a packet can carry.
	MaxNodeLen = 63
	// MaxPayload is the largest application payload, in bytes.
	MaxPayload = 512
	// MACLen is the length of the trailing HMAC-SHA256.
	MACLen = sha256.Size
	// MinKeyLen is the shortest accepted shared secret.
	MinKeyLen = 32
	// MaxPacketSize is the size of the largest valid packet (640 bytes).
	MaxPacketSize = headerLen + MaxNodeLen + fixedLen + MaxPayload + MACLen
	// MinPacketSize is the size of the smallest valid packet: a one-byte
	// node name and no payload (66 bytes).
	MinPacketSize = headerLen + 1 + fixedLen + MACLen

	headerLen = len(Magic) + 1 + 1 + 1 // magic, version, type, name length
	fixedLen  = 8 + 8 + 8 + 2          // seq, sent-at, session, payload length
)

// Type is a packet's type.
type Type uint8

// Packet types.
const (
	// TypePing is sent every Interval on every link.
	TypePing Type = 1
	// TypePong answers a ping; it echoes the ping's Seq and SentAt.
	TypePong Type = 2
)

// String returns "ping", "pong" or "type(N)".
func (t Type) String() string {
	switch t {
	case TypePing:
		return "ping"
	case TypePong:
		return "pong"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Sentinel errors returned (possibly wrapped) by Encode and Decode; test them
// with errors.Is.
var (
	// ErrShort: the packet ends before the fields it announces.
	ErrShort = errors.New("heartbeat: packet too short")
	// ErrMagic: the packet does not start with Magic.
	ErrMagic = errors.New("heartbeat: bad magic")
	// ErrVersion: the packet has a version other than Version.
	ErrVersion = errors.New("heartbeat: unsupported wire version")
	// ErrMAC: the HMAC does not match (corruption, forgery or wrong key).
	ErrMAC = errors.New("heartbeat: MAC mismatch")
	// ErrTooLarge: the node name, the payload or the packet exceeds its limit.
	ErrTooLarge = errors.New("heartbeat: too large")
	// ErrMalformed: an authenticated packet with an invalid field (unknown
	// type, empty node name) or with bytes after the MAC.
	ErrMalformed = errors.New("heartbeat: malformed packet")
	// ErrKey: the key is shorter than MinKeyLen.
	ErrKey = errors.New("heartbeat: key shorter than 32 bytes")
)

// Packet is one decoded heartbeat datagram.
type Packet struct {
	// Type is TypePing or TypePong.
	Type Type
	// Node is the sender's node name, 1 to MaxNodeLen bytes.
	Node string
	// Seq is the ping's sequence number; a pong echoes the ping's.
	Seq uint64
	// SentAt is the ping's send time in Unix nanoseconds on the pinging
	// node's clock; a pong echoes it unchanged, so the pinger can measure the
	// round trip without the two clocks being synchronised.
	SentAt int64
	// Session is the sender's random session nonce, new every time a
	// Heartbeat starts running, so that a restart is visible to the peer.
	Session uint64
	// Payload is application data, at most MaxPayload bytes.
	Payload []byte
}

func checkFields(p *Packet) error {
	if p.Type != TypePing && p.Type != TypePong {
		return fmt.Errorf("%w: unknown type %d", ErrMalformed, uint8(p.Type))
	}
	if p.Node == "" {
		return fmt.Errorf("%w: empty node name", ErrMalformed)
	}
	if len(p.Node) > MaxNodeLen {
		return fmt.Errorf("%w: node name is %d bytes, max %d", ErrTooLarge, len(p.Node), MaxNodeLen)
	}
	if len(p.Payload) > MaxPayload {
		return fmt.Errorf("%w: payload is %d bytes, max %d", ErrTooLarge, len(p.Payload), MaxPayload)
	}
	return nil
}

func mac(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Encode returns the wire form of p, authenticated with key. It fails with
// ErrKey if key is shorter than MinKeyLen, ErrTooLarge if the node name or
// payload is too long and ErrMalformed for an unknown type or an empty node
// name. Encode is a pure function, safe for concurrent use.
func Encode(p Packet, key []byte) ([]byte, error) {
	if len(key) < MinKeyLen {
		return nil, ErrKey
	}
	if err := checkFields(&p); err != nil {
		return nil, err
	}
	b := make([]byte, 0, headerLen+len(p.Node)+fixedLen+len(p.Payload)+MACLen)
	b = append(b, Magic...)
	b = append(b, Version, byte(p.Type), byte(len(p.Node)))
	b = append(b, p.Node...)
	b = binary.BigEndian.AppendUint64(b, p.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(p.SentAt))
	b = binary.BigEndian.AppendUint64(b, p.Session)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.Payload)))
	b = append(b, p.Payload...)
	return append(b, mac(key, b)...), nil
}

// Decode parses and authenticates one datagram. Structural checks come first
// (ErrTooLarge for a datagram longer than MaxPacketSize or an announced
// length over its limit, ErrShort, ErrMagic, ErrVersion), then the MAC
// (ErrMAC), then the field values (ErrMalformed). Decode never panics on
// arbitrary input, does not retain b (the payload is copied) and is safe
// for concurrent use. A packet it accepts re-encodes to exactly b.
func Decode(b []byte, key []byte) (Packet, error) {
	if len(key) < MinKeyLen {
		return Packet{}, ErrKey
	}
	if len(b) > MaxPacketSize {
		return Packet{}, fmt.Errorf("%w: datagram is %d bytes, max %d", ErrTooLarge, len(b), MaxPacketSize)
	}
	if len(b) < headerLen {
		return Packet{}, ErrShort
	}
	if !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		return Packet{}, ErrMagic
	}
	if v := b[4]; v != Version {
		return Packet{}, fmt.Errorf("%w: %d (want %d)", ErrVersion, v, Version)
	}
	n := int(b[6])
	if n > MaxNodeLen {
		return Packet{}, fmt.Errorf("%w: node name length %d, max %d", ErrTooLarge, n, MaxNodeLen)
	}
	off := headerLen + n
	if len(b) < off+fixedLen {
		return Packet{}, ErrShort
	}
	m := int(binary.BigEndian.Uint16(b[off+24:]))
	if m > MaxPayload {
		return Packet{}, fmt.Errorf("%w: payload length %d, max %d", ErrTooLarge, m, MaxPayload)
	}
	end := off + fixedLen + m
	switch {
	case len(b) < end+MACLen:
		return Packet{}, ErrShort
	case len(b) > end+MACLen:
		return Packet{}, fmt.Errorf("%w: %d bytes after the MAC", ErrMalformed, len(b)-end-MACLen)
	}
	if !hmac.Equal(b[end:], mac(key, b[:end])) {
		return Packet{}, ErrMAC
	}
	p := Packet{
		Type:    Type(b[5]),
		Node:    string(b[headerLen:off]),
		Seq:     binary.BigEndian.Uint64(b[off:]),
		SentAt:  int64(binary.BigEndian.Uint64(b[off+8:])),
		Session: binary.BigEndian.Uint64(b[off+16:]),
	}
	if m > 0 {
		p.Payload = bytes.Clone(b[off+fixedLen : end])
	}
	if err := checkFields(&p); err != nil {
		return Packet{}, err
	}
	return p, nil
}
