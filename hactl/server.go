package hactl

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hapair/hapair/hactl/cluster"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pki"
)

// agentServer is the Agent API on the unix socket. The cluster operations
// are not built yet: the embedded Unimplemented server answers them with
// codes.Unimplemented, never with a pretend success.
type agentServer struct {
	hapb.UnimplementedAgentServer
	a *Agent
}

// firstSampleWait bounds how long Status waits for the agent's first sample.
const firstSampleWait = 3 * time.Second

func (s *agentServer) Status(ctx context.Context, _ *hapb.StatusRequest) (*hapb.Snapshot, error) {
	t := time.NewTimer(firstSampleWait)
	defer t.Stop()
	for {
		snap, changed := s.a.hub.current()
		if snap.GetSeq() > 0 {
			return snap, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
			return nil, status.Error(codes.Unavailable, "the agent has not sampled its node yet; try again")
		}
	}
}

func (s *agentServer) Watch(_ *hapb.WatchRequest, stream hapb.Agent_WatchServer) error {
	var sent uint64
	for {
		snap, changed := s.a.hub.current()
		if snap.GetSeq() > sent {
			if err := stream.Send(snap); err != nil {
				return err
			}
			sent = snap.GetSeq()
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-s.a.done:
			return status.Error(codes.Unavailable, "the agent is shutting down")
		}
	}
}

// maxEvents bounds one Events answer.
const maxEvents = 1000

func (s *agentServer) Events(_ context.Context, req *hapb.EventsRequest) (*hapb.EventsResponse, error) {
	n := int(req.GetLimit())
	if n < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "limit %d: want 0 (default 50) or more", n)
	}
	if n == 0 {
		n = 50
	}
	if n > maxEvents {
		n = maxEvents
	}
	var st *cluster.State
	if node := s.a.raftNode(); node != nil {
		st = node.State()
	}
	return &hapb.EventsResponse{Events: s.a.recentEvents(st, n)}, nil
}

// peerServer is the Peer API on the cluster link. mTLS already proved the
// caller holds a certificate of this cluster's CA; each call also checks
// the caller is the configured peer.
type peerServer struct {
	hapb.UnimplementedPeerServer
	a *Agent
}

func (s *peerServer) caller(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "not a TLS connection")
	}
	name, err := pki.PeerName(info.State)
	if err != nil {
		return "", status.Errorf(codes.Unauthenticated, "peer certificate: %v", err)
	}
	if _, ok := s.a.cfg.Member(name); !ok || name == s.a.cfg.NodeName {
		return "", status.Errorf(codes.PermissionDenied, "%s is not a member of this cluster", name)
	}
	return name, nil
}

func (s *peerServer) leader() (*cluster.Node, error) {
	n := s.a.raftNode()
	if n == nil {
		return nil, status.Error(codes.FailedPrecondition, "this node is not in a cluster")
	}
	if !n.IsLeader() {
		l, _ := n.Leader()
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not the leader (leader: %q)", s.a.cfg.NodeName, l)
	}
	return n, nil
}

func (s *peerServer) Apply(ctx context.Context, req *hapb.ApplyRequest) (*hapb.ApplyResponse, error) {
	caller, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.leader()
	if err != nil {
		return nil, err
	}
	c, err := cluster.DecodeCommand(req.GetCommand())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	// A member speaks for itself only.
	if c.Node != caller || c.Type == cluster.CmdInit || c.Type == cluster.CmdPromoted {
		return nil, status.Errorf(codes.PermissionDenied, "%s may not apply a %s command for %q", caller, c.Type, c.Node)
	}
	idx, err := n.ApplyRaw(req.GetCommand(), 5*time.Second)
	if err != nil {
		return nil, status.Errorf(codes.Aborted, "%v", err)
	}
	return &hapb.ApplyResponse{Index: idx}, nil
}

// selfRequest checks a member's request about itself, sent to the leader.
func (s *peerServer) selfRequest(ctx context.Context, node string) (*cluster.Node, MemberConfig, error) {
	caller, err := s.caller(ctx)
	if err != nil {
		return nil, MemberConfig{}, err
	}
	n, err := s.leader()
	if err != nil {
		return nil, MemberConfig{}, err
	}
	if node != caller {
		return nil, MemberConfig{}, status.Errorf(codes.PermissionDenied, "%s may speak only for itself, not %q", caller, node)
	}
	m, _ := s.a.cfg.Member(caller)
	return n, m, nil
}

func (s *peerServer) Join(ctx context.Context, req *hapb.JoinRequest) (*hapb.JoinResponse, error) {
	n, m, err := s.selfRequest(ctx, req.GetNode())
	if err != nil {
		return nil, err
	}
	if err := n.AddVoter(m.Name, m.RaftAddr()); err != nil {
		return nil, status.Errorf(codes.Aborted, "%v", err)
	}
	s.a.log.Info("member joined the voters", "member", m.Name)
	return &hapb.JoinResponse{}, nil
}

func (s *peerServer) Leave(ctx context.Context, req *hapb.LeaveRequest) (*hapb.LeaveResponse, error) {
	n, m, err := s.selfRequest(ctx, req.GetNode())
	if err != nil {
		return nil, err
	}
	if err := n.RemoveServer(m.Name); err != nil {
		return nil, status.Errorf(codes.Aborted, "%v", err)
	}
	s.a.log.Info("member left the voters", "member", m.Name)
	return &hapb.LeaveResponse{}, nil
}

func (s *peerServer) GetNodeStatus(ctx context.Context, req *hapb.NodeStatusRequest) (*hapb.NodeStatus, error) {
	if _, err := s.caller(ctx); err != nil {
		return nil, err
	}
	if req.GetFresh() {
		s.a.sampleLocal(ctx)
	}
	n := s.a.localStatus()
	if n == nil {
		return nil, status.Error(codes.Unavailable, "not sampled yet")
	}
	return n, nil
}

func (s *peerServer) GetReplicationSource(ctx context.Context, _ *hapb.ReplicationSourceRequest) (*hapb.ReplicationSource, error) {
	name, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if s.a.pg == nil {
		return nil, status.Error(codes.FailedPrecondition, "the witness has no database")
	}
	if m, _ := s.a.cfg.Member(name); m.Kind != cluster.KindData {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not a data node", name)
	}
	// Asked live: right after a promotion the last sample may be stale.
	st, err := s.a.pg.Status(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	if st.Role != pg.RolePrimary {
		return nil, status.Errorf(codes.FailedPrecondition, "%s's database is %s, not primary", s.a.cfg.NodeName, st.Role)
	}
	if err := s.a.pg.SettleTimeline(ctx); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	slot := pg.SlotName(name)
	if err := s.a.pg.EnsureSlot(ctx, slot); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	cred, err := s.a.pg.Credential()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	s.a.log.Info("replication source handed to peer", "peer", name, "slot", slot)
	return &hapb.ReplicationSource{
		Host: s.a.pg.ListenAddr(), Port: int32(s.a.pg.Port()),
		User: cred.User, Password: cred.Password, SlotName: slot, Node: s.a.cfg.NodeName,
	}, nil
}
