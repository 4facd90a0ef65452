package hactl

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pki"
)

// systemEvery: host facts move slowly and would otherwise make every sample
// a "change" for the watchers.
const systemEvery = 5 * time.Second

// sampleLoop reads the local database (and, less often, the host) every
// SampleInterval or when kicked, and publishes the result.
func (a *Agent) sampleLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(a.cfg.SampleInterval))
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
	sctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.PeerTimeout))
	st, err := a.pg.Status(sctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	db := databaseStatus(st, err, a.pg.ListenAddr(), a.pg.Port())
	role := nodeRoleOf(db)
	if a.cfg.Peer == nil {
		role = hapb.NodeRole_NODE_ROLE_STANDALONE
	}
	n := &hapb.NodeStatus{
		Name:           a.cfg.NodeName,
		PublicAddr:     a.cfg.PublicAddr,
		HeartbeatAddr:  a.cfg.HeartbeatAddr,
		Role:           role,
		Database:       db,
		AgentVersion:   Version,
		AgentStartedAt: timestamppb.New(a.started),
		SampledAt:      timestamppb.Now(),
	}
	a.mu.Lock()
	n.System = a.system
	prev := a.lastRole
	a.lastRole = db.GetRole()
	a.local = n
	a.mu.Unlock()
	if prev != db.GetRole() && prev != hapb.DatabaseRole_DATABASE_ROLE_UNSPECIFIED {
		a.events.add(a.cfg.NodeName, "database", fmt.Sprintf("PostgreSQL is now %s (was %s)", dbRoleWord(db.GetRole()), dbRoleWord(prev)))
	}
}

func dbRoleWord(r hapb.DatabaseRole) string {
	switch r {
	case hapb.DatabaseRole_DATABASE_ROLE_PRIMARY:
		return "primary"
	case hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
		return "standby"
	case hapb.DatabaseRole_DATABASE_ROLE_STOPPED:
		return "stopped"
	case hapb.DatabaseRole_DATABASE_ROLE_UNINITIALIZED:
		return "not initialised"
	}
	return "unknown"
}

// localStatus is the latest local sample (never modified after publication).
func (a *Agent) localStatus() *hapb.NodeStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.local
}

// dialPeer prepares the mTLS client to the peer agent. It reconnects fast:
// grpc's default backoff (up to two minutes) would hide a peer that is back.
func (a *Agent) dialPeer() error {
	conn, err := grpc.NewClient(a.cfg.Peer.AgentAddr,
		grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientTLS(a.id, a.cfg.Peer.Name))),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return fmt.Errorf("peer client for %s: %w", a.cfg.Peer.AgentAddr, err)
	}
	a.peerConn = conn
	a.peerClient = hapb.NewPeerClient(conn)
	return nil
}

// peerLoop asks the peer agent for its status every SampleInterval.
func (a *Agent) peerLoop(ctx context.Context) {
	if a.peerClient == nil {
		return
	}
	t := time.NewTicker(time.Duration(a.cfg.SampleInterval))
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Duration(a.cfg.PeerTimeout))
		st, err := a.peerClient.GetNodeStatus(cctx, &hapb.NodeStatusRequest{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		a.notePeer(st, err)
		a.publish()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) notePeer(st *hapb.NodeStatus, err error) {
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
		a.events.add(a.cfg.NodeName, "peer", a.cfg.Peer.Name+" is reachable")
	case !v.Reachable && wasUp:
		a.events.add(a.cfg.NodeName, "peer", a.cfg.Peer.Name+" is unreachable: "+v.Error)
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
	health, reason := clusterHealth(local, peer, a.cfg.Peer != nil)
	cluster := &hapb.ClusterView{
		Name:         a.cfg.ClusterName,
		Health:       health,
		HealthReason: reason,
		Members: []*hapb.Member{{
			Name: a.cfg.NodeName, PublicAddr: a.cfg.PublicAddr, HeartbeatAddr: a.cfg.HeartbeatAddr,
			AgentAddr: a.cfg.ListenPeer, Kind: "data",
		}},
	}
	if p := a.cfg.Peer; p != nil {
		cluster.Members = append(cluster.Members, &hapb.Member{
			Name: p.Name, PublicAddr: p.PublicAddr, HeartbeatAddr: p.HeartbeatAddr, AgentAddr: p.AgentAddr, Kind: "data",
		})
		for _, n := range []*hapb.NodeStatus{local, peer.GetStatus()} {
			if n.GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY {
				cluster.ActiveNode = n.GetName()
			}
		}
	}
	s := &hapb.Snapshot{
		SampledAt:    timestamppb.Now(),
		Local:        local,
		Cluster:      cluster,
		RecentEvents: a.events.newest(20),
	}
	if a.cfg.Peer != nil {
		s.Peer = peer
	}
	a.hub.publish(s)
}
