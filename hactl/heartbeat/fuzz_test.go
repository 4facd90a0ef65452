package heartbeat

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzDecode(f *testing.F) {
	ping, err := Encode(samplePacket(), testKey)
	if err != nil {
		f.Fatal(err)
	}
	pong, err := Encode(Packet{Type: TypePong, Node: "n", Seq: 1, SentAt: -3, Session: 9}, testKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ping)
	f.Add(pong)
	f.Add([]byte{})
	f.Add([]byte(Magic))
	f.Add(ping[:len(ping)-1])
	f.Add(append(bytes.Clone(ping), 0))
	f.Add([]byte("HAPB\x01\x01\x3f"))
	f.Add(bytes.Repeat([]byte{0xFF}, MaxPacketSize+1))

	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		// Random bytes almost never carry a valid MAC; also decode them
		// re-signed, so the checks behind the MAC are fuzzed too.
		if len(b) >= MACLen {
			signed := bytes.Clone(b)
			body := signed[:len(signed)-MACLen]
			copy(signed[len(body):], mac(testKey, body))
			checkDecode(t, signed)
		}
	})
}

var sentinels = []error{ErrShort, ErrMagic, ErrVersion, ErrMAC, ErrTooLarge, ErrMalformed}

// checkDecode asserts that Decode leaves b alone, fails only with a
// sentinel error, and accepts only packets that re-encode to exactly b.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	in := bytes.Clone(b)
	p, err := Decode(b, testKey)
	if !bytes.Equal(in, b) {
		t.Fatal("Decode modified its input")
	}
	if err != nil {
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("Decode error %v wraps no sentinel", err)
	}
	again, err := Encode(p, testKey)
	if err != nil {
		t.Fatalf("decoded packet %+v does not re-encode: %v", p, err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("re-encoded packet differs:\n got %x\nwant %x", again, b)
	}
}

// FuzzRoundTrip checks Encode then Decode on arbitrary field values.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(1), "node-a", uint64(1), int64(2), uint64(3), []byte("payload"))
	f.Add(uint8(2), "", uint64(0), int64(-1), uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, typ uint8, node string, seq uint64, sentAt int64, session uint64, payload []byte) {
		p := Packet{Type: Type(typ), Node: node, Seq: seq, SentAt: sentAt, Session: session, Payload: payload}
		b, err := Encode(p, testKey)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Encode error %v", err)
			}
			return
		}
		got, err := Decode(b, testKey)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", p, err)
		}
		if got.Type != p.Type || got.Node != p.Node || got.Seq != p.Seq || got.SentAt != p.SentAt ||
			got.Session != p.Session || !bytes.Equal(got.Payload, p.Payload) {
			t.Fatalf("round trip %+v -> %+v", p, got)
		}
	})
}
