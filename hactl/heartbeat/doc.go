// Package heartbeat is the liveness heartbeat between the two hactl agents of
// a hapair pair. It exchanges authenticated UDP pings and pongs on every
// configured link (for example a private heartbeat cable and the public
// network) and keeps, per link, whether the peer is reachable, the last
// round-trip time, when the peer was last heard, and counters of sent,
// received, missed and rejected packets. The pair's heartbeat is "connected"
// while at least one link is.
//
// # Protocol
//
// Every Interval each link sends a ping to the peer's address on that link;
// the peer answers with a pong on the same link, always to its configured
// Peer address (never to the source address of the datagram, so a forged
// source cannot turn a node into a reflector). A pong echoes the ping's
// sequence number and send time, so the pinger measures the RTT on its own
// monotonic clock and the two clocks need not be synchronised.
//
// A link is connected from the moment a valid packet from the peer arrives on
// it until DeadAfter passes without another one. "Valid" means: it decodes,
// its HMAC verifies with the shared key, its sender is Config.PeerNode, and
// it is fresh:
//
//   - a pong is fresh when it echoes the sequence number and send time of a
//     ping this node sent on the same link less than DeadAfter ago and that
//     has not been answered yet. A pong arriving later counts the ping as
//     missed and is rejected;
//   - a ping is fresh when, on that link, its (session, seq) is newer than the
//     last ping accepted from that session (sequence numbers are allocated
//     from one counter shared by all links of a node, so they also order
//     pings across links).
//
// Sessions: each Run draws a random 64-bit session nonce that is carried in
// every packet, so a restart is visible to the peer. A node trusts the peer
// session of the fresh pong that answered its newest ping so far; because a
// pong must echo a ping at most DeadAfter old, a recorded packet can never
// establish a session. Pings from any other session (a peer that has just
// restarted, or a replay from an old session) pass the same per-link replay
// check and are answered with a pong, which lets the peer confirm this node,
// but they neither mark the link alive nor change PeerPayload until a pong
// from that session has arrived (about one Interval after a restart). The
// application payload is taken from trusted pings only, in sequence order,
// so PeerPayload never goes back to an older value within a peer session
// even when links reorder packets. Replays from a session older than the
// last few a link has seen can still be answered with (harmless) pongs: the
// peer rejects those pongs because they echo no ping of its own.
//
// Invalid datagrams (garbage, bad MAC, wrong node, replays, unexpected
// pongs) never cause a panic; they are counted in LinkStatus.Rejected and
// logged at most once per second per link, with the number of suppressed
// messages.
//
// # Wire format, version 1
//
// All integers are big-endian. A datagram is:
//
//	offset  size  field
//	0       4     magic "HAPB"
//	4       1     version, 1
//	5       1     type: 1 = ping, 2 = pong
//	6       1     n, length of the sender's node name, 1..63
//	7       n     sender's node name (bytes)
//	7+n     8     sequence number (uint64); a pong echoes the ping's
//	15+n    8     the ping's send time, Unix nanoseconds (int64) on the
//	              pinging node's clock; a pong echoes it unchanged
//	23+n    8     sender's session nonce (uint64), random per Run
//	31+n    2     m, payload length, 0..512
//	33+n    m     payload (opaque application data)
//	33+n+m  32    HMAC-SHA256, keyed with the shared key, of bytes [0, 33+n+m)
//
// so a datagram is 66 to 640 bytes long. Nothing may follow the MAC. A
// receiver rejects any other version; a future incompatible layout must
// change the version byte. Encode and Decode implement the format as pure
// functions.
//
// # Concurrency
//
// All methods of Heartbeat are safe for concurrent use. Run may be active at
// most once at a time (a second concurrent call returns ErrRunning); it may
// be called again after it has returned, which starts a new session. Every
// goroutine the package starts is started by Run and has stopped when Run
// returns.
package heartbeat
