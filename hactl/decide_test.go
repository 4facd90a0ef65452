package hactl

import (
	"strings"
	"testing"
	"time"

	"github.com/hapair/hapair/hactl/cluster"
)

func TestDecidePromotion(t *testing.T) {
	state := func(mut func(*cluster.State)) *cluster.State {
		s := &cluster.State{ID: "c", Epoch: 3, Active: "primary-node",
			Settings: cluster.Settings{ReplicationMode: cluster.ModeAsync, MaxLagBytes: 1000}}
		if mut != nil {
			mut(s)
		}
		return s
	}
	base := promotionInput{
		Self: "secondary-node", Received: 5000, SinceLeader: time.Second, FenceDelay: 500 * time.Millisecond,
		Policy: "auto", PeerRole: "stopped", PeerBeatAge: 10 * time.Second, HeartbeatDead: time.Second,
		Announced: 5500, AnnouncedKnown: true,
	}
	tests := []struct {
		name        string
		state       *cluster.State
		mutate      func(*promotionInput)
		wantPromote bool
		wantWait    time.Duration
		wantNeedLSN uint64
		wantReason  string
	}{
		{name: "unplanned takeover of a lost Active node", state: state(nil), wantPromote: true},
		{name: "planned handover with all WAL received", wantPromote: true,
			state: state(func(s *cluster.State) {
				s.Handover = &cluster.Handover{From: "primary-node", To: "secondary-node", FinalLSN: 4999, Epoch: 3}
			}),
			// A planned handover never waits out the fencing delay.
			mutate: func(in *promotionInput) { in.SinceLeader = 0; in.PeerRole, in.PeerBeatAge = "primary", 0 }},
		{name: "planned handover still receiving", wantNeedLSN: 6001, wantReason: "received up to",
			state: state(func(s *cluster.State) {
				s.Handover = &cluster.Handover{From: "primary-node", To: "secondary-node", FinalLSN: 6000, Epoch: 3}
			})},
		{name: "stale handover of an earlier epoch is unplanned", wantPromote: true,
			state: state(func(s *cluster.State) {
				s.Handover = &cluster.Handover{From: "primary-node", To: "secondary-node", FinalLSN: 9999, Epoch: 2}
			})},
		{name: "no Active node ever recorded", state: state(func(s *cluster.State) { s.Active = "" }), wantReason: "no Active node was ever recorded"},
		{name: "manual policy", state: state(nil), mutate: func(in *promotionInput) { in.Policy = "manual" }, wantReason: "manual"},
		{name: "the Active node still announces a primary: wait until that is stale", state: state(nil), wantWait: 700 * time.Millisecond,
			mutate: func(in *promotionInput) { in.PeerRole, in.PeerBeatAge = "primary", 300*time.Millisecond }, wantReason: "running primary"},
		{name: "an old heartbeat of a primary does not count", state: state(nil), wantPromote: true,
			mutate: func(in *promotionInput) { in.PeerRole, in.PeerBeatAge = "primary", 2*time.Second }},
		{name: "fencing delay not over", state: state(nil), wantWait: 400 * time.Millisecond, wantReason: "fencing delay",
			mutate: func(in *promotionInput) { in.SinceLeader = 100 * time.Millisecond }},
		{name: "too far behind", state: state(nil), wantReason: "bytes behind",
			mutate: func(in *promotionInput) { in.Announced = 7000 }},
		{name: "nothing announced yet: lag unknown, allowed", state: state(nil), wantPromote: true,
			mutate: func(in *promotionInput) { in.AnnouncedKnown, in.Announced = false, 1<<40 }},
		{name: "sync mode, was the synchronous standby", wantPromote: true,
			state:  state(func(s *cluster.State) { s.Settings.ReplicationMode = cluster.ModeSync }),
			mutate: func(in *promotionInput) { in.AnnouncedSync = "secondary-node" }},
		{name: "sync mode, was not the synchronous standby", wantReason: "may miss acknowledged commits",
			state: state(func(s *cluster.State) { s.Settings.ReplicationMode = cluster.ModeSyncStrict })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			in.State = tc.state
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			d := decidePromotion(in)
			if d.Promote != tc.wantPromote || d.Wait != tc.wantWait || d.NeedLSN != tc.wantNeedLSN || !strings.Contains(d.Reason, tc.wantReason) {
				t.Errorf("decidePromotion = %+v, want promote %v wait %v need %d reason %q", d, tc.wantPromote, tc.wantWait, tc.wantNeedLSN, tc.wantReason)
			}
		})
	}
}
