package hactl

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hapair/hapair/hactl/cluster"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg"
)

// progress streams the steps of one operation.
type progress struct {
	node  string
	start time.Time
	send  func(*hapb.Progress) error
}

func newProgress(node string, send func(*hapb.Progress) error) *progress {
	return &progress{node: node, start: time.Now(), send: send}
}

// step reports one step; a client that went away does not stop the
// operation (it must finish or it would leave the cluster half-moved).
func (p *progress) step(format string, args ...any) {
	_ = p.send(&hapb.Progress{Node: p.node, Step: fmt.Sprintf(format, args...), Elapsed: durationpb.New(time.Since(p.start))})
}

func (p *progress) done(format string, args ...any) {
	_ = p.send(&hapb.Progress{Node: p.node, Step: fmt.Sprintf(format, args...), Elapsed: durationpb.New(time.Since(p.start)), Done: true})
}

// beginOp starts an operation: one at a time on this agent (the
// reconciler and the leader loop stand aside), detached from its caller (a
// dropped console must not abandon a handover half-way) but bounded, its
// steps streamed through send. end releases it.
func (a *Agent) beginOp(send func(*hapb.Progress) error) (ctx context.Context, p *progress, end func()) {
	a.opMu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	return ctx, newProgress(a.cfg.NodeName, send), func() { cancel(); a.opMu.Unlock() }
}

func (a *Agent) clusterOrErr() (*cluster.Node, *cluster.State, error) {
	if a.marker.standalone() {
		m := a.marker.get()
		if m.Deactivated {
			return nil, nil, status.Errorf(codes.FailedPrecondition, "this node was deactivated when %s tore the cluster down; a new deployment is needed", m.By)
		}
		return nil, nil, status.Error(codes.FailedPrecondition, "HA is not enabled on this node")
	}
	n := a.raftNode()
	if n == nil || a.pg == nil {
		return nil, nil, status.Error(codes.FailedPrecondition, "HA is not enabled on this node")
	}
	st := n.State()
	if st.ID == "" {
		return nil, nil, status.Error(codes.FailedPrecondition, "the cluster is not formed yet")
	}
	return n, st, nil
}

// ClusterStop stops cluster services on this node. On the Active node it
// first hands over with zero loss: stop the database (a fast shutdown ends
// the clients' sessions and waits until the standby has confirmed all WAL),
// release the VIP, check the
// standby has everything up to the final checkpoint, record the handover,
// transfer leadership; the peer promotes and takes the VIP. Then this node
// leaves the voters so the others keep a quorum. The agent stays up.
func (s *agentServer) ClusterStop(_ *hapb.ClusterStopRequest, stream hapb.Agent_ClusterStopServer) error {
	a := s.a
	n, st, err := a.clusterOrErr()
	if err != nil {
		return err
	}
	ctx, p, end := a.beginOp(stream.Send)
	defer end()
	me, _ := st.Member(a.cfg.NodeName)
	if me.Stopped {
		p.done("Cluster services are already stopped on %s.", a.cfg.NodeName)
		return nil
	}
	p.step("Stopping cluster services on %s...", a.cfg.NodeName)
	if n.IsLeader() && a.established.Load() {
		if _, err := a.handoverTo(ctx, p, n, st, true); err != nil {
			return err
		}
	} else {
		if err := a.apply(ctx, cluster.Command{Type: cluster.CmdStopped, On: true}); err != nil {
			return status.Errorf(codes.Unavailable, "record the stop: %v", err)
		}
		if err := a.pg.Stop(ctx); err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		p.step("Database stopped on %s", a.cfg.NodeName)
	}
	if err := a.viaLeader(ctx, func(ctx context.Context, pc hapb.PeerClient) error {
		_, err := pc.Leave(ctx, &hapb.LeaveRequest{Node: a.cfg.NodeName})
		return err
	}); err != nil {
		p.step("Could not leave the voters (%v); the others keep the cluster running", err)
	} else {
		p.step("%s left the voters", a.cfg.NodeName)
	}
	p.done("Cluster services stopped on %s in %s.", a.cfg.NodeName, time.Since(p.start).Round(time.Millisecond))
	return nil
}

// handoverTo moves the Active role from this node to its peer with no
// acknowledged write lost. It returns the new Active node's name. With
// stopSelf the node records its own stop too (ClusterStop).
func (a *Agent) handoverTo(ctx context.Context, p *progress, n *cluster.Node, st *cluster.State, stopSelf bool) (string, error) {
	peer, ok := st.Peer(a.cfg.NodeName)
	if !ok || peer.Stopped || !a.isVoter(peer.Name) {
		return "", status.Errorf(codes.FailedPrecondition, "there is no running standby to hand over to; use ha_teardown to run stand-alone")
	}
	db, err := a.pg.Status(ctx)
	if err != nil {
		return "", status.Errorf(codes.Unavailable, "%v", err)
	}
	streaming := false
	for _, r := range db.Replicas {
		if r.ApplicationName == peer.Name && r.State == "streaming" {
			streaming = true
		}
	}
	if !streaming {
		return "", status.Errorf(codes.FailedPrecondition, "%s is not streaming from this node: handing over now could lose writes; nothing was changed", peer.Name)
	}
	p.step("Handing over to %s...", peer.Name)
	a.planned.Store(true)
	defer a.planned.Store(false)
	// Stop the database first and release the VIP only just before the
	// peer takes it: the fast shutdown ends the clients' sessions while
	// their address still exists (they see the error at once), and clients
	// retrying meanwhile are refused at once by this node instead of losing
	// their connection attempts to an address nobody holds.
	if err := a.pg.Stop(ctx); err != nil {
		return "", a.abortHandover(ctx, p, fmt.Errorf("stop the database: %w", err))
	}
	cd, err := a.pg.ControlData(ctx)
	if err != nil {
		return "", a.abortHandover(ctx, p, err)
	}
	if cd.State != "shut down" {
		return "", a.abortHandover(ctx, p, fmt.Errorf("the database did not shut down cleanly (%s)", cd.State))
	}
	p.step("Database stopped on %s at LSN %v", a.cfg.NodeName, cd.CheckpointLSN)
	if err := a.waitPeerReceived(ctx, peer.Name, uint64(cd.CheckpointLSN)); err != nil {
		return "", a.abortHandover(ctx, p, err)
	}
	p.step("%s has received all WAL up to %v", peer.Name, cd.CheckpointLSN)
	if err := n.Apply(cluster.Command{Type: cluster.CmdHandover, Node: a.cfg.NodeName, Time: time.Now(),
		Handover: &cluster.Handover{From: a.cfg.NodeName, To: peer.Name, FinalLSN: uint64(cd.CheckpointLSN), Epoch: st.Epoch}}, 5*time.Second); err != nil {
		return "", a.abortHandover(ctx, p, err)
	}
	if stopSelf {
		if err := n.Apply(cluster.Command{Type: cluster.CmdStopped, Node: a.cfg.NodeName, Time: time.Now(), On: true}, 5*time.Second); err != nil {
			return "", a.abortHandover(ctx, p, err)
		}
	}
	if err := a.releaseVIP(ctx); err != nil {
		return "", a.abortHandover(ctx, p, fmt.Errorf("release the VIP: %w", err))
	}
	if a.vip != nil {
		p.step("VIP %s released", a.vip.Address())
	}
	a.established.Store(false)
	if err := n.TransferLeadership(peer.Name, peer.RaftAddr); err != nil {
		return "", a.abortHandover(ctx, p, err)
	}
	if err := a.waitState(ctx, 20*time.Second, func(s *cluster.State) bool { return s.Active == peer.Name && s.Epoch > st.Epoch }); err != nil {
		return "", status.Errorf(codes.DeadlineExceeded, "%s did not become Active: %v", peer.Name, err)
	}
	if err := a.waitPeer(ctx, peer.Name, 20*time.Second, func(ns *hapb.NodeStatus) bool {
		return ns.GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY && (a.vip == nil || ns.GetHoldsVip())
	}); err != nil {
		return "", status.Errorf(codes.DeadlineExceeded, "%s did not promote and take the VIP: %v", peer.Name, err)
	}
	p.step("%s is Active (epoch %d) and holds the VIP", peer.Name, n.State().Epoch)
	return peer.Name, nil
}

// abortHandover puts this node back as it was when a handover fails before
// leadership moved: it stays Active.
func (a *Agent) abortHandover(ctx context.Context, p *progress, cause error) error {
	p.step("Handover failed: %v; %s stays Active", cause, a.cfg.NodeName)
	a.planned.Store(false)
	a.established.Store(false)
	if err := a.pg.Start(ctx); err != nil {
		a.fail("restart after a failed handover", err)
	}
	a.establish(ctx)
	return status.Errorf(codes.Aborted, "handover failed: %v", cause)
}

// waitPeerReceived waits (bounded) until the peer's database has received
// WAL past lsn, asking its agent for a fresh sample.
func (a *Agent) waitPeerReceived(ctx context.Context, peer string, lsn uint64) error {
	var last uint64
	err := a.waitPeer(ctx, peer, 5*time.Second, func(ns *hapb.NodeStatus) bool {
		last = ns.GetDatabase().GetReceiveLsn()
		return last > lsn
	})
	if err != nil {
		return fmt.Errorf("%s received only up to %v, the final checkpoint is at %v: %w", peer, pg.LSN(last), pg.LSN(lsn), err)
	}
	return nil
}

// waitPeer waits (bounded) until member's agent reports (freshly sampled)
// a status ok accepts.
func (a *Agent) waitPeer(ctx context.Context, member string, limit time.Duration, ok func(*hapb.NodeStatus) bool) error {
	pc := a.clients[member]
	return poll(ctx, limit, 20*time.Millisecond, func() (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		ns, err := pc.GetNodeStatus(cctx, &hapb.NodeStatusRequest{Fresh: true})
		return err == nil && ok(ns), err
	})
}

// poll calls ok every interval until it reports true, ctx ends or limit
// passes (then the last error, if any, says why).
func poll(ctx context.Context, limit, every time.Duration, ok func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var lastErr error
	for {
		done, err := ok()
		if done {
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			if lastErr != nil {
				return fmt.Errorf("not within %s: %w", limit, lastErr)
			}
			return fmt.Errorf("not within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// waitState waits (bounded) until the state applied on this node satisfies ok.
func (a *Agent) waitState(ctx context.Context, limit time.Duration, ok func(*cluster.State) bool) error {
	return poll(ctx, limit, 20*time.Millisecond, func() (bool, error) {
		n := a.raftNode()
		return n != nil && ok(n.State()), nil
	})
}

// ClusterStart rejoins this node as Standby of the Active node: back into
// the voters, then its database rewound if it diverged (re-cloned if the
// rewind fails) and streaming from the Active node.
func (s *agentServer) ClusterStart(_ *hapb.ClusterStartRequest, stream hapb.Agent_ClusterStartServer) error {
	a := s.a
	n, st, err := a.clusterOrErr()
	if err != nil {
		return err
	}
	ctx, p, end := a.beginOp(stream.Send)
	defer end()
	me, _ := st.Member(a.cfg.NodeName)
	if !me.Stopped && a.isVoter(a.cfg.NodeName) {
		p.done("Cluster services are already running on %s.", a.cfg.NodeName)
		return nil
	}
	p.step("Starting cluster services on %s...", a.cfg.NodeName)
	if err := a.viaLeader(ctx, func(ctx context.Context, pc hapb.PeerClient) error {
		if _, err := pc.Join(ctx, &hapb.JoinRequest{Node: a.cfg.NodeName, RaftAddr: a.cfg.Self().RaftAddr()}); err != nil {
			return err
		}
		b, err := cluster.Command{Type: cluster.CmdStopped, Node: a.cfg.NodeName, Time: time.Now(), On: false}.Encode()
		if err != nil {
			return err
		}
		_, err = pc.Apply(ctx, &hapb.ApplyRequest{Command: b})
		return err
	}); err != nil {
		return status.Errorf(codes.Unavailable, "rejoin the cluster: %v", err)
	}
	if err := a.waitState(ctx, 20*time.Second, func(s *cluster.State) bool {
		m, _ := s.Member(a.cfg.NodeName)
		return !m.Stopped && s.Active != ""
	}); err != nil {
		return status.Errorf(codes.DeadlineExceeded, "the cluster state did not reach this node: %v", err)
	}
	st = n.State()
	p.step("Joined the cluster; %s is Active (epoch %d)", st.Active, st.Epoch)
	db, err := a.pg.Status(ctx)
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	switch db.Role {
	case pg.RoleStopped:
		p.step("Rewinding the database from %s if it diverged (pg_rewind)...", st.Active)
	case pg.RoleUninitialized:
		p.step("Cloning the database from %s (pg_basebackup)...", st.Active)
	case pg.RolePrimary:
		return status.Errorf(codes.FailedPrecondition, "this node's database runs as a primary outside the cluster; stop it first")
	}
	if err := a.followActive(ctx, st.Active, db); err != nil {
		return status.Errorf(codes.Internal, "follow %s: %v", st.Active, err)
	}
	if err := a.waitStreamingTo(ctx, st.Active); err != nil {
		return err
	}
	p.step("Replication %s ==> %s streaming", st.Active, a.cfg.NodeName)
	p.done("Cluster services started on %s in %s: Standby of %s.", a.cfg.NodeName, time.Since(p.start).Round(time.Millisecond), st.Active)
	return nil
}

// waitStreaming waits (bounded) until this standby's WAL receiver streams.
func (a *Agent) waitStreaming(ctx context.Context, limit time.Duration) error {
	err := poll(ctx, limit, 100*time.Millisecond, func() (bool, error) {
		db, err := a.pg.Status(ctx)
		return err == nil && db.Role == pg.RoleStandby && db.WalReceiver != nil && db.WalReceiver.Status == "streaming", err
	})
	if err != nil {
		return fmt.Errorf("the database is not streaming: %w", err)
	}
	return nil
}

// waitStreamingTo waits (bounded) until this standby streams from active as
// both ends see it: its WAL receiver streams, and active's
// pg_stat_replication lists it streaming (the receiver says so a moment
// before the sender does). Only then is the pair whole again: a start or a
// switchover that reports done allows the next handover at once.
func (a *Agent) waitStreamingTo(ctx context.Context, active string) error {
	if err := a.waitStreaming(ctx, 60*time.Second); err != nil {
		return status.Errorf(codes.DeadlineExceeded, "%v", err)
	}
	err := a.waitPeer(ctx, active, 20*time.Second, func(ns *hapb.NodeStatus) bool {
		for _, r := range ns.GetDatabase().GetReplicas() {
			if r.GetApplicationName() == a.cfg.NodeName && r.GetState() == "streaming" {
				return true
			}
		}
		return false
	})
	if err != nil {
		return status.Errorf(codes.DeadlineExceeded, "%s does not list %s as streaming: %v", active, a.cfg.NodeName, err)
	}
	return nil
}

// Switchover moves the Active role to the other node without stopping this
// one: the same zero-loss handover as a planned stop, then this node
// follows the new Active node.
func (s *agentServer) Switchover(req *hapb.SwitchoverRequest, stream hapb.Agent_SwitchoverServer) error {
	a := s.a
	n, st, err := a.clusterOrErr()
	if err != nil {
		return err
	}
	if req.GetForce() {
		return a.forceTakeover(st, stream.Send)
	}
	if !n.IsLeader() || !a.established.Load() {
		return status.Errorf(codes.FailedPrecondition, "run the switchover on the Active node (%s)", st.Active)
	}
	if peer, _ := st.Peer(a.cfg.NodeName); req.GetTarget() != "" && req.GetTarget() != peer.Name {
		return status.Errorf(codes.InvalidArgument, "target %q: the only possible target is %s", req.GetTarget(), peer.Name)
	}
	ctx, p, end := a.beginOp(stream.Send)
	defer end()
	p.step("Switching the Active role over from %s...", a.cfg.NodeName)
	target, err := a.handoverTo(ctx, p, n, st, false)
	if err != nil {
		return err
	}
	db, err := a.pg.Status(ctx)
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	p.step("%s follows %s...", a.cfg.NodeName, target)
	if err := a.followActive(ctx, target, db); err != nil {
		return status.Errorf(codes.Internal, "follow %s: %v", target, err)
	}
	if err := a.waitStreamingTo(ctx, target); err != nil {
		return err
	}
	p.done("Switchover done in %s: %s is Active, %s is Standby.", time.Since(p.start).Round(time.Millisecond), target, a.cfg.NodeName)
	return nil
}

// Teardown destroys the cluster from the Active node: it keeps its data and
// runs stand-alone, the VIP released, its cluster state set aside; the
// other node deactivates when it learns (through the log, or from this
// node's status if it was away).
func (s *agentServer) Teardown(req *hapb.TeardownRequest, stream hapb.Agent_TeardownServer) error {
	a := s.a
	if !req.GetConfirm() {
		return status.Error(codes.InvalidArgument, "teardown destroys the HA cluster configuration: confirm it")
	}
	n, st, err := a.clusterOrErr()
	if err != nil {
		return err
	}
	// The Active node: the established leader, or (two voters, peer away)
	// the recorded Active node serving without quorum.
	if !(n.IsLeader() && a.established.Load()) && !(a.holding.Load() && st.Active == a.cfg.NodeName) {
		return status.Errorf(codes.FailedPrecondition, "run the teardown on the Active node (%s)", st.Active)
	}
	ctx, p, end := a.beginOp(stream.Send)
	defer end()
	p.step("Destroying the HA cluster configuration...")
	if err := n.Apply(cluster.Command{Type: cluster.CmdTeardown, Node: a.cfg.NodeName, Time: time.Now()}, 5*time.Second); err != nil {
		p.step("The other members could not be told now (%v); they will deactivate when they learn", err)
	} else {
		p.step("The other members are told to deactivate")
	}
	a.planned.Store(true)
	defer a.planned.Store(false)
	a.established.Store(false)
	a.holding.Store(false)
	if err := a.releaseVIP(ctx); err != nil {
		return status.Errorf(codes.Internal, "release the VIP: %v", err)
	}
	if a.vip != nil {
		p.step("VIP %s released", a.vip.Address())
	}
	if peer, ok := st.Peer(a.cfg.NodeName); ok {
		if err := a.pg.DropSlot(ctx, pg.SlotName(peer.Name)); err != nil {
			a.log.Warn("drop the peer's slot", "err", err)
		}
	}
	if err := a.marker.set(membership{ClusterID: st.ID, TornDown: true, Since: time.Now(), By: a.cfg.NodeName}); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	a.stopRaft()
	a.events.add(a.cfg.NodeName, "teardown", "cluster destroyed; this node runs stand-alone with all its data")
	p.done("The HA cluster has been destroyed. This server is now in stand-alone mode.")
	a.kickSampler()
	return nil
}

// SetMaintenance pauses or resumes automatic decisions, cluster-wide.
func (s *agentServer) SetMaintenance(ctx context.Context, req *hapb.SetMaintenanceRequest) (*hapb.SetMaintenanceResponse, error) {
	a := s.a
	if _, _, err := a.clusterOrErr(); err != nil {
		return nil, err
	}
	if err := a.apply(ctx, cluster.Command{Type: cluster.CmdMaintenance, On: req.GetEnabled()}); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &hapb.SetMaintenanceResponse{Enabled: req.GetEnabled()}, nil
}

// forceTakeover makes this standby the Active node when the Active node is
// lost and no majority can form without it (two voters, no witness): raft is
// recovered with this node as the only voter, then the leader loop promotes
// it. It refuses while the Active node's heartbeats are seen on any link.
func (a *Agent) forceTakeover(st *cluster.State, send func(*hapb.Progress) error) error {
	if st.Active == a.cfg.NodeName {
		return status.Error(codes.FailedPrecondition, "this node is already the Active node")
	}
	if hb := a.heartbeats(); hb == nil || hb.Connected() {
		return status.Errorf(codes.FailedPrecondition, "%s still answers heartbeats: it is not lost; use a switchover on it instead", st.Active)
	}
	if a.othersMayElect() {
		return status.Error(codes.FailedPrecondition, "a majority can still elect a new Active node (witness present): wait for the automatic failover")
	}
	db, err := a.pg.Status(context.Background())
	if err != nil || db.Role != pg.RoleStandby {
		return status.Errorf(codes.FailedPrecondition, "this node's database is %v, not a standby: it cannot take over", db.Role)
	}
	ctx, p, end := a.beginOp(send)
	defer end()
	p.step("%s is lost (no heartbeat on any link); taking over on the operator's word...", st.Active)
	a.nodeMu.Lock()
	old := a.node
	a.node = nil
	a.nodeMu.Unlock()
	if old != nil {
		if err := old.Shutdown(); err != nil {
			a.log.Warn("raft shutdown", "err", err)
		}
	}
	if err := cluster.RecoverSoleVoter(a.nodeConfig()); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	if err := a.startRaft(); err != nil {
		return status.Errorf(codes.Internal, "restart consensus: %v", err)
	}
	p.step("%s is now the only voter", a.cfg.NodeName)
	a.opMu.Unlock()
	err = a.waitState(ctx, 30*time.Second, func(s *cluster.State) bool { return s.Active == a.cfg.NodeName && s.Epoch > st.Epoch })
	a.opMu.Lock()
	if err != nil {
		return status.Errorf(codes.DeadlineExceeded, "this node did not become Active: %v", err)
	}
	p.done("%s is Active (epoch %d). When %s comes back it rejoins as Standby.", a.cfg.NodeName, a.raftNode().State().Epoch, st.Active)
	return nil
}
