package hactl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pairing"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/pki"
)

// ErrRestart is returned by Run when the agent must be built again from its
// configuration (a deployment changed its membership). PostgreSQL is left
// running; the caller loads the configuration and runs a new agent.
var ErrRestart = errors.New("agent restart requested: membership changed")

// membership is what a deployment adds to an agent's configuration file,
// kept in <state>/membership.json and applied by LoadConfig.
type membershipOverlay struct {
	ClusterName     string         `json:"cluster_name"`
	Members         []MemberConfig `json:"members"`
	VIP             *VIPConfig     `json:"vip,omitempty"`
	ReplicationMode string         `json:"replication_mode,omitempty"`
	Bootstrap       Bootstrap      `json:"bootstrap"`
}

func overlayPath(stateDir string) string { return filepath.Join(stateDir, "membership.json") }

// applyOverlay applies a deployment's membership, if there is one.
func (c *Config) applyOverlay() error {
	b, err := os.ReadFile(overlayPath(c.StateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read deployed membership: %w", err)
	}
	var o membershipOverlay
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("deployed membership %s: %w", overlayPath(c.StateDir), err)
	}
	c.ClusterName, c.Members, c.Bootstrap = o.ClusterName, o.Members, o.Bootstrap
	if o.VIP != nil {
		c.VIP = o.VIP
	}
	if o.ReplicationMode != "" {
		c.ReplicationMode = o.ReplicationMode
	}
	return nil
}

func writeOverlay(stateDir string, o membershipOverlay) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	tmp := overlayPath(stateDir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write deployed membership: %w", err)
	}
	if err := os.Rename(tmp, overlayPath(stateDir)); err != nil {
		return fmt.Errorf("write deployed membership: %w", err)
	}
	return nil
}

// deployExtra is what the deploying node tells the joining one.
type deployExtra struct {
	Members         []MemberConfig `json:"members"`
	VIP             *VIPConfig     `json:"vip,omitempty"`
	ReplicationMode string         `json:"replication_mode"`
}

// standAlone reports whether this agent can take part in a deployment.
func (a *Agent) standAlone() error {
	switch {
	case len(a.cfg.Members) > 1 || a.raftNode() != nil:
		return status.Error(codes.FailedPrecondition, "this node is already in a cluster")
	case a.marker.deactivated():
		// A deactivated node may be deployed afresh: that is the way back.
	}
	return nil
}

// PairingToken opens the pairing listener on this stand-alone node and
// returns a one-time token for the deploying node's operator. The listener
// runs until the token is used, burnt or expired.
func (s *agentServer) PairingToken(ctx context.Context, _ *hapb.PairingTokenRequest) (*hapb.PairingTokenResponse, error) {
	a := s.a
	if err := a.standAlone(); err != nil {
		return nil, err
	}
	a.pairMu.Lock()
	defer a.pairMu.Unlock()
	if a.pairing != nil {
		a.pairing.Close()
		a.pairing = nil
	}
	tok, err := pairing.NewToken(pairing.DefaultTokenTTL, time.Now())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	self := a.cfg.Self()
	ln, err := pairing.Listen(self.AgentAddr(), tok, a.cfg.NodeName, a.log)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "open the pairing listener: %v", err)
	}
	a.pairing = ln
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		a.awaitPairing(ln, tok)
	}()
	a.events.add(a.cfg.NodeName, "deploy", "pairing token issued; waiting for the deploying node on "+self.AgentAddr())
	return &hapb.PairingTokenResponse{Token: tok.Value, ExpiresAt: timestamppb.New(tok.ExpiresAt)}, nil
}

// awaitPairing accepts the deploying node, installs the cluster identity and
// membership it sends, and restarts the agent into the cluster.
func (a *Agent) awaitPairing(ln *pairing.Listener, tok pairing.Token) {
	ctx, cancel := context.WithDeadline(context.Background(), tok.ExpiresAt)
	defer cancel()
	go func() {
		select {
		case <-a.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer ln.Close()
	var extra deployExtra
	offer, err := ln.Accept(ctx, func(o pairing.Offer) (pairing.Accept, error) {
		if err := a.standAlone(); err != nil {
			return pairing.Accept{}, err
		}
		if err := json.Unmarshal(o.Extra, &extra); err != nil || len(extra.Members) == 0 {
			return pairing.Accept{}, fmt.Errorf("the offer carries no membership")
		}
		for _, m := range extra.Members {
			if m.Name == a.cfg.NodeName {
				return pairing.Accept{}, fmt.Errorf("the deploying node is also called %s", m.Name)
			}
		}
		self, err := json.Marshal(a.cfg.Self())
		if err != nil {
			return pairing.Accept{}, err
		}
		return pairing.Accept{NodeName: a.cfg.NodeName, Extra: self}, nil
	})
	if err != nil {
		if ctx.Err() == nil {
			a.fail("pairing", err)
		}
		return
	}
	id, err := identityFromPEM(a.cfg.NodeName, offer.CACertPEM, offer.CertPEM, offer.KeyPEM)
	if err == nil {
		err = pki.SaveIdentity(a.cfg.PKIDir(), id)
	}
	if err == nil {
		err = writeOverlay(a.cfg.StateDir, membershipOverlay{
			ClusterName: offer.ClusterName, Members: append(extra.Members, a.cfg.Self()),
			VIP: extra.VIP, ReplicationMode: extra.ReplicationMode,
		})
	}
	if err != nil {
		a.fail("pairing", err)
		return
	}
	a.events.add(a.cfg.NodeName, "deploy", "paired with "+offer.DeployerName+" into cluster "+offer.ClusterName+"; joining")
	a.requestRestart()
}

// identityFromPEM checks and assembles an identity handed over in pairing.
func identityFromPEM(node string, caPEM, certPEM, keyPEM []byte) (*pki.Identity, error) {
	dir, err := os.MkdirTemp("", "hapair-identity-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, b := range map[string][]byte{"ca.crt": caPEM, "node.crt": certPEM, "node.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	id, err := pki.LoadIdentity(dir)
	if err != nil {
		return nil, fmt.Errorf("identity from the deploying node: %w", err)
	}
	if id.NodeName != node {
		return nil, fmt.Errorf("identity from the deploying node is %s's, not %s's", id.NodeName, node)
	}
	return id, nil
}

// Deploy forms a cluster from this stand-alone node (whose database becomes
// the primary) and a peer whose operator gave a pairing token: a cluster CA
// and both identities are made here, the peer's handed over through the
// token-authenticated channel, and both agents restart into the cluster. The
// peer's database is then cloned from this one (its old data kept aside).
func (s *agentServer) Deploy(req *hapb.DeployRequest, stream hapb.Agent_DeployServer) error {
	a := s.a
	if err := a.standAlone(); err != nil {
		return err
	}
	if !nameRE.MatchString(req.GetPeerName()) || req.GetPeerName() == a.cfg.NodeName {
		return status.Errorf(codes.InvalidArgument, "peer name %q: want the other node's name (shown with its token)", req.GetPeerName())
	}
	token, err := pairing.ParseToken(req.GetPairingToken())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	clusterName := req.GetClusterName()
	if clusterName == "" {
		clusterName = a.cfg.ClusterName
	}
	if !nameRE.MatchString(clusterName) {
		return status.Errorf(codes.InvalidArgument, "cluster name %q: want lowercase letters, digits and '-'", clusterName)
	}
	vip := a.cfg.VIP
	if req.GetVip() != "" {
		mode := req.GetVipMode()
		if mode == "" && vip != nil {
			mode = vip.Mode
		}
		vip = &VIPConfig{Address: req.GetVip(), Mode: mode}
	}
	mode := req.GetReplicationMode()
	if mode == "" {
		mode = a.cfg.ReplicationMode
	}
	test := a.cfg
	test.ClusterName, test.VIP, test.ReplicationMode = clusterName, vip, mode
	if err := test.Validate(); err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	db, err := a.pg.Status(stream.Context())
	if err != nil || db.Role != pg.RolePrimary {
		return status.Errorf(codes.FailedPrecondition, "this node's database must be a running primary to deploy from (it is %v)", db.Role)
	}
	ctx, p, end := a.beginOp(stream.Send)
	defer end()
	p.step("Making the certificate authority of cluster %s...", clusterName)
	now := time.Now()
	ca, err := pki.NewCA(clusterName, now)
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	var ips []net.IP
	for _, addr := range a.cfg.Self().Addrs() {
		ips = append(ips, net.ParseIP(addr))
	}
	mine, err := ca.Issue(a.cfg.NodeName, ips, now)
	if err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	if a.cfg.IsWitness() {
		return status.Error(codes.FailedPrecondition, "deploy from a data node; a witness is paired by it")
	}
	members := []MemberConfig{a.cfg.Self()}
	pair := func(name, addr, token string) (MemberConfig, error) {
		h, _, err := net.SplitHostPort(addr)
		if err != nil || net.ParseIP(h) == nil {
			return MemberConfig{}, status.Errorf(codes.InvalidArgument, "address of %s %q: want ip:port", name, addr)
		}
		id, err := ca.Issue(name, []net.IP{net.ParseIP(h)}, now)
		if err != nil {
			return MemberConfig{}, status.Errorf(codes.InvalidArgument, "%v", err)
		}
		extra, err := json.Marshal(deployExtra{Members: members, VIP: vip, ReplicationMode: mode})
		if err != nil {
			return MemberConfig{}, status.Errorf(codes.Internal, "%v", err)
		}
		p.step("Pairing with %s at %s...", name, addr)
		acc, err := pairing.Dial(ctx, addr, token, pairing.Offer{
			ClusterName: clusterName, DeployerName: a.cfg.NodeName,
			CACertPEM: ca.CertPEM, CertPEM: id.CertPEM, KeyPEM: id.KeyPEM, Extra: extra,
		})
		if err != nil {
			return MemberConfig{}, status.Errorf(codes.FailedPrecondition, "pairing with %s failed: %v; nothing was changed on this node", name, err)
		}
		var m MemberConfig
		if err := json.Unmarshal(acc.Extra, &m); err != nil || m.Name != name {
			return MemberConfig{}, status.Errorf(codes.Internal, "%s answered with an unusable membership (%v)", name, err)
		}
		p.step("%s accepted; both sides authenticated by the token", m.Name)
		return m, nil
	}
	peer, err := pair(req.GetPeerName(), req.GetPeerAgentAddr(), token)
	if err != nil {
		return err
	}
	if peer.Kind != "data" {
		return status.Errorf(codes.FailedPrecondition, "%s is a %s, not a data node", peer.Name, peer.Kind)
	}
	members = append(members, peer)
	if req.GetWitnessAgentAddr() != "" {
		wtok, err := pairing.ParseToken(req.GetWitnessPairingToken())
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "witness token: %v", err)
		}
		w, err := pair(req.GetWitnessName(), req.GetWitnessAgentAddr(), wtok)
		if err != nil {
			return status.Errorf(status.Code(err), "%s (%s is paired: it joins and learns of the witness failure)", status.Convert(err).Message(), peer.Name)
		}
		if w.Kind != "witness" {
			return status.Errorf(codes.FailedPrecondition, "%s is not configured as a witness", w.Name)
		}
		members = append(members, w)
	}
	if err := pki.SaveIdentity(a.cfg.PKIDir(), mine); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	if err := writeOverlay(a.cfg.StateDir, membershipOverlay{
		ClusterName: clusterName, Members: members, VIP: vip, ReplicationMode: mode, Bootstrap: BootstrapPrimary,
	}); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	a.events.add(a.cfg.NodeName, "deploy", "cluster "+clusterName+" deployed with "+peer.Name+"; joining")
	p.done("Cluster %s deployed: %s will be Active, %s is cloned from it as Standby. The agents restart into the cluster.", clusterName, a.cfg.NodeName, peer.Name)
	a.requestRestart()
	return nil
}

// requestRestart makes Run return ErrRestart (PostgreSQL left running).
func (a *Agent) requestRestart() {
	select {
	case a.restart <- struct{}{}:
	default:
	}
}
