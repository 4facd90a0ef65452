package hactl

import (
	"fmt"
	"time"

	"github.com/hapair/hapair/hactl/cluster"
	"github.com/hapair/hapair/hactl/pg"
)

// promotionInput is everything the promotion decision looks at: the
// replicated state and what this node observed.
type promotionInput struct {
	Self  string
	State *cluster.State
	// Received is how far this standby's database has received WAL.
	Received uint64
	// SinceLeader is how long ago this node won leadership.
	SinceLeader time.Duration
	FenceDelay  time.Duration
	Policy      string
	// PeerRole is the database role the peer's latest heartbeat announced,
	// PeerBeatAge how old that heartbeat is, HeartbeatDead when it counts as
	// silence.
	PeerRole      string
	PeerBeatAge   time.Duration
	HeartbeatDead time.Duration
	// Announced is the last WAL position the Active node announced (with the
	// name of its synchronous standby); AnnouncedKnown whether there was one.
	Announced      uint64
	AnnouncedSync  string
	AnnouncedKnown bool
}

// promotionDecision says whether to promote now, wait, or refuse (Reason).
type promotionDecision struct {
	Promote bool
	// Wait: ask again after this long (the fencing delay).
	Wait time.Duration
	// NeedLSN: a planned handover waits until this much WAL has arrived.
	NeedLSN uint64
	Reason  string
}

// decidePromotion is the pure decision whether this node's standby database
// may become the primary. A planned handover to this node waits only for
// the old primary's final checkpoint; an unplanned one needs a recorded
// Active node, an automatic failover policy, the Active node's heartbeats
// not announcing a running primary, the fencing delay passed since winning
// leadership, a lag within the limit and, in sync modes, having been the
// synchronous standby.
func decidePromotion(in promotionInput) promotionDecision {
	st := in.State
	if h := st.Handover; h != nil && h.To == in.Self && h.Epoch == st.Epoch {
		if in.Received > h.FinalLSN {
			return promotionDecision{Promote: true, Reason: "planned handover, all WAL received"}
		}
		return promotionDecision{NeedLSN: h.FinalLSN + 1, Reason: fmt.Sprintf("received up to %v only, the old primary stopped at %v", pg.LSN(in.Received), pg.LSN(h.FinalLSN))}
	}
	switch {
	case st.Active == "":
		return promotionDecision{Reason: "no Active node was ever recorded; nothing to take over from"}
	case in.Policy == "manual":
		return promotionDecision{Reason: "the failover policy is manual: an operator decides"}
	case in.SinceLeader < in.FenceDelay:
		// The old leader's lease has run out, but it may still be fencing
		// itself: wait until it must have finished.
		return promotionDecision{Wait: in.FenceDelay - in.SinceLeader, Reason: "waiting out the fencing delay"}
	case in.PeerRole == "primary" && in.PeerBeatAge < in.HeartbeatDead:
		// Its last heartbeat may just predate its loss: wait until it is
		// stale; if heartbeats keep coming, the caller gives up.
		return promotionDecision{Wait: in.HeartbeatDead - in.PeerBeatAge, Reason: "the Active node's heartbeats say its database is a running primary"}
	case in.AnnouncedKnown && in.Announced > in.Received && in.Announced-in.Received > st.Settings.MaxLagBytes:
		return promotionDecision{Reason: fmt.Sprintf("%d bytes behind the last position the Active node announced (limit %d)", in.Announced-in.Received, st.Settings.MaxLagBytes)}
	case st.Settings.ReplicationMode != cluster.ModeAsync && in.AnnouncedSync != in.Self:
		return promotionDecision{Reason: fmt.Sprintf("replication is %s and this node was not the synchronous standby: it may miss acknowledged commits", st.Settings.ReplicationMode)}
	}
	return promotionDecision{Promote: true, Reason: "unplanned takeover"}
}
