package hactl

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/cluster"
	"github.com/hapair/hapair/hactl/hapb"
)

// systemEvery: host facts move slowly and would otherwise make every sample
// a "change" for the watchers.
const systemEvery = 5 * time.Second

// sampleLoop reads the local database, VIP and (less often) host every
// Sample interval or when kicked, and publishes the result.
func (a *Agent) sampleLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(a.cfg.Timers.Sample))
	defer t.Stop()
	var lastSys time.Time
	for {
		if time.Since(lastSys) >= systemEvery {
			a.sampleSystem()
			lastSys = time.Now()
		}
		a.sampleLocal(ctx)
		a.publish()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
		}
	}
}

func (a *Agent) sampleSystem() {
	info, err := a.sys.Read(a.cfg.StateDir)
	if err != nil {
		a.log.Debug("host facts incomplete", "err", err)
	}
	a.mu.Lock()
	a.system = systemStatus(info)
	a.mu.Unlock()
}

func (a *Agent) sampleLocal(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.Timers.PeerTimeout))
	defer cancel()
	self := a.cfg.Self()
	n := &hapb.NodeStatus{
		Name:           a.cfg.NodeName,
		PublicAddr:     self.PublicAddr,
		HeartbeatAddr:  self.HeartbeatAddr,
		AgentVersion:   Version,
		AgentStartedAt: timestamppb.New(a.started),
	}
	var db *hapb.DatabaseStatus
	if a.pg != nil {
		st, err := a.pg.Status(sctx)
		if ctx.Err() != nil {
			return
		}
		db = databaseStatus(st, err, a.pg.ListenAddr(), a.pg.Port())
		n.Database = db
	}
	if a.vip != nil {
		held, err := a.vip.Held(sctx)
		n.HoldsVip = err == nil && held
	}
	m := a.marker.get()
	n.TornDown, n.Deactivated, n.ClusterId = m.TornDown, m.Deactivated, m.ClusterID
	var st *cluster.State
	if node := a.raftNode(); node != nil {
		st = node.State()
		n.RaftState = node.RaftState()
		n.Leader, _ = node.Leader()
		n.ClusterId, n.Epoch = st.ID, st.Epoch
	}
	n.Role = a.roleOf(st, db)
	n.SampledAt = timestamppb.Now()
	a.mu.Lock()
	n.System = a.system
	prev := a.lastRole
	a.lastRole = db.GetRole()
	a.local = n
	a.mu.Unlock()
	if prev != db.GetRole() && prev != hapb.DatabaseRole_DATABASE_ROLE_UNSPECIFIED {
		a.events.add(a.cfg.NodeName, "database", fmt.Sprintf("PostgreSQL is now %s (was %s)", db.GetRole().Word(), prev.Word()))
	}
}

// roleOf is this node's role: Active is the leader that promoted its
// database and took the VIP; the rest follows from the cluster state and
// the database itself.
func (a *Agent) roleOf(st *cluster.State, db *hapb.DatabaseStatus) hapb.NodeRole {
	switch {
	case a.cfg.IsWitness():
		return hapb.NodeRole_NODE_ROLE_WITNESS
	case a.marker.standalone() || st == nil || st.ID == "" && len(a.cfg.Members) < 2:
		return hapb.NodeRole_NODE_ROLE_STANDALONE
	}
	if me, ok := st.Member(a.cfg.NodeName); ok && me.Stopped {
		return hapb.NodeRole_NODE_ROLE_STOPPED
	}
	switch {
	case (a.established.Load() || a.holding.Load()) && db.GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY:
		return hapb.NodeRole_NODE_ROLE_ACTIVE
	case db.GetRole() == hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
		return hapb.NodeRole_NODE_ROLE_STANDBY
	}
	return hapb.NodeRole_NODE_ROLE_STOPPED
}

// localStatus is the latest local sample (never modified after publication).
func (a *Agent) localStatus() *hapb.NodeStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.local
}

// peerLoop asks the peer agent for its status every Sample interval.
func (a *Agent) peerLoop(ctx context.Context) {
	peer, ok := a.cfg.PeerMember()
	if !ok {
		return
	}
	client, ok := a.clients[peer.Name]
	if !ok {
		return
	}
	t := time.NewTicker(time.Duration(a.cfg.Timers.Sample))
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.Timers.PeerTimeout))
		st, err := client.GetNodeStatus(cctx, &hapb.NodeStatusRequest{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		a.notePeer(peer.Name, st, err)
		a.publish()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) notePeer(name string, st *hapb.NodeStatus, err error) {
	a.mu.Lock()
	v := proto.Clone(a.peer).(*hapb.PeerView)
	wasUp := a.peerWasUp
	if err != nil {
		v.Reachable = false
		v.Error = err.Error()
	} else {
		v.Reachable, v.Error, v.Status, v.LastContact = true, "", st, timestamppb.Now()
	}
	a.peer = v
	a.peerWasUp = v.Reachable
	a.mu.Unlock()
	switch {
	case v.Reachable && !wasUp:
		a.events.add(a.cfg.NodeName, "peer", name+" is reachable")
	case !v.Reachable && wasUp:
		a.events.add(a.cfg.NodeName, "peer", name+" is unreachable: "+v.Error)
	}
	// A peer that tore our cluster down while we could not hear it: learn
	// it now (it cannot reach us through consensus any more).
	if err == nil && st.GetTornDown() {
		if n := a.raftNode(); n != nil && n.State().ID != "" && n.State().ID == st.GetClusterId() {
			// On the peer loop's own time: it has nothing better to do.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			a.opMu.Lock()
			if !a.marker.standalone() {
				a.deactivate(ctx, st.GetClusterId(), name)
			}
			a.opMu.Unlock()
			cancel()
		}
	}
}

// publish composes a snapshot from the latest pieces and hands it to the hub.
func (a *Agent) publish() {
	a.mu.Lock()
	local, peer := a.local, a.peer
	a.mu.Unlock()
	if local == nil {
		return
	}
	var st *cluster.State
	if n := a.raftNode(); n != nil {
		st = n.State()
	}
	_, hasPeer := a.cfg.PeerMember()
	s := &hapb.Snapshot{
		SampledAt: timestamppb.Now(),
		Local:     local,
		Cluster:   a.clusterView(st, local, peer),
	}
	if hasPeer {
		s.Peer = peer
	}
	if hb := a.heartbeats(); hb != nil {
		for _, l := range hb.Status() {
			ls := &hapb.LinkStatus{
				Name: l.Name, LocalAddr: l.Listen, PeerAddr: l.Peer, Connected: l.Connected,
				Missed: l.Missed, Sent: l.Sent, Received: l.Received,
			}
			if l.RTT > 0 {
				ls.Rtt = durationpb.New(l.RTT)
			}
			if !l.LastSeen.IsZero() {
				ls.LastSeen = timestamppb.New(l.LastSeen)
			}
			s.Links = append(s.Links, ls)
		}
	}
	s.RecentEvents = a.recentEvents(st, 20)
	a.hub.publish(s)
}

// recentEvents merges the replicated history with this agent's own events,
// newest first.
func (a *Agent) recentEvents(st *cluster.State, n int) []*hapb.Event {
	local := a.events.newest(n)
	if st == nil || len(st.Events) == 0 {
		return local
	}
	var out []*hapb.Event
	i, j := len(st.Events)-1, 0
	for len(out) < n && (i >= 0 || j < len(local)) {
		if i >= 0 && (j >= len(local) || !st.Events[i].Time.Before(local[j].GetTime().AsTime())) {
			e := st.Events[i]
			out = append(out, &hapb.Event{Seq: e.Seq, Time: timestamppb.New(e.Time), Node: e.Node, Kind: e.Kind, Detail: e.Detail})
			i--
		} else {
			out = append(out, local[j])
			j++
		}
	}
	return out
}

func (a *Agent) clusterView(st *cluster.State, local *hapb.NodeStatus, peer *hapb.PeerView) *hapb.ClusterView {
	cv := &hapb.ClusterView{Name: a.cfg.ClusterName}
	_, hasPeer := a.cfg.PeerMember()
	health, reason := clusterHealth(local, peer, hasPeer && !a.marker.standalone())
	if a.cfg.IsWitness() {
		health, reason = hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY, ""
		if local.GetLeader() == "" {
			health, reason = hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "no leader: the data nodes are not reachable"
		}
	}
	cv.Health, cv.HealthReason = health, reason
	if st == nil || st.ID == "" {
		return cv
	}
	cv.Name, cv.Id, cv.ActiveNode, cv.Epoch = st.Name, st.ID, st.Active, st.Epoch
	cv.Maintenance, cv.ReplicationMode = st.Maintenance, st.Settings.ReplicationMode
	if h := st.Handover; h != nil {
		cv.HandoverTo, cv.HandoverFrom = h.To, h.From
	}
	voters := map[string]bool{}
	if n := a.raftNode(); n != nil {
		if vs, err := n.Voters(); err == nil {
			for _, v := range vs {
				voters[v] = true
			}
		}
	}
	for _, m := range st.Members {
		cv.Members = append(cv.Members, &hapb.Member{
			Name: m.Name, Kind: m.Kind, PublicAddr: m.PublicAddr, HeartbeatAddr: m.HeartbeatAddr,
			AgentAddr: m.AgentAddr, RaftAddr: m.RaftAddr, PgAddr: m.PGAddr, Stopped: m.Stopped, Voter: voters[m.Name],
		})
		if m.Kind == cluster.KindWitness {
			cv.Witness = m.Name
		}
	}
	if st.VIP != "" {
		cv.Vip = &hapb.Vip{Address: st.VIP}
		switch {
		case local.GetHoldsVip():
			cv.Vip.Holder = local.GetName()
		case peer.GetReachable() && peer.GetStatus().GetHoldsVip():
			cv.Vip.Holder = peer.GetName()
		}
		if cv.Vip.Holder != "" && cv.Vip.Holder == st.Active && !st.ActiveSince.IsZero() {
			cv.Vip.Since = timestamppb.New(st.ActiveSince)
		}
	}
	if cv.Health == hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY && !a.cfg.IsWitness() {
		switch {
		case st.Active == "":
			cv.Health, cv.HealthReason = hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "no Active node yet"
		case cv.Vip != nil && cv.Vip.Holder != st.Active:
			cv.Health, cv.HealthReason = hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "the VIP is not held by the Active node"
		}
	}
	if cv.Witness != "" {
		cv.Protection = "three voters (witness " + cv.Witness + "): a node cut off from the majority stops writing and releases the VIP before the other may promote"
	} else if a.cfg.TieBreaker != "" && a.cfg.FailoverPolicy == "auto" {
		cv.Protection = "two nodes, no witness: split-brain protection relies on the tie-breaker " + a.cfg.TieBreaker
	} else {
		cv.Protection = "two nodes, no witness: a lost standby leaves the Active node serving; a lost Active node is not replaced automatically (no third vote to rule out split-brain); planned stop and switchover work"
	}
	if st.Maintenance {
		cv.Health, cv.HealthReason = hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "maintenance mode: automatic failover paused"
		if health != hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY {
			cv.Health, cv.HealthReason = health, reason
		}
	}
	return cv
}
