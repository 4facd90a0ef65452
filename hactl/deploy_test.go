package hactl_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/hactltest"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pairing"
)

// TestDeployWithPairingToken forms a cluster from two stand-alone nodes,
// each with its own database: the joining node's operator asks for a token,
// the deploying node's operator deploys with it. Nothing is configured by
// hand: the CA, identities and membership come from the deployment.
func TestDeployWithPairingToken(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{})
	for _, n := range []string{"primary-node", "secondary-node"} {
		c := l.Config(n)
		c.Members = []hactl.MemberConfig{c.Self()}
		c.Bootstrap = hactl.BootstrapPrimary
		c.VIP = nil
		if err := os.RemoveAll(c.PKIDir()); err != nil {
			t.Fatal(err)
		}
		l.SetConfig(n, c)
		l.Start(n)
	}
	standAlone := func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_STANDALONE &&
			s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED &&
			s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
	}
	l.WaitFor("primary-node", "primary-node stand-alone", standAlone)
	l.WaitFor("secondary-node", "secondary-node stand-alone", standAlone)
	pc, sc := l.Client("primary-node"), l.Client("secondary-node")

	tok, err := sc.PairingToken(context.Background(), &hapb.PairingTokenRequest{})
	if err != nil {
		t.Fatalf("PairingToken: %v", err)
	}
	if _, err := pairing.ParseToken(tok.GetToken()); err != nil || tok.GetExpiresAt().AsTime().Before(time.Now()) {
		t.Fatalf("token %q expiring %v: %v", tok.GetToken(), tok.GetExpiresAt().AsTime(), err)
	}
	deploy := func(token string) ([]string, error) {
		return hactltest.RunOp(t, func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
			return pc.Deploy(ctx, &hapb.DeployRequest{
				ClusterName: "lab", PeerAgentAddr: l.Config("secondary-node").Self().AgentAddr(), PairingToken: token,
				PeerName: "secondary-node", Vip: l.VIP(), VipMode: "userspace",
			})
		})
	}
	wrong, err := pairing.NewToken(time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deploy(wrong.Value); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("deploy with a wrong token: %v, want a refusal that changed nothing", err)
	}
	l.WaitFor("primary-node", "still stand-alone after the wrong token", standAlone)

	lines, err := deploy(tok.GetToken())
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if !hasLine(lines, "Cluster lab deployed") {
		t.Errorf("deploy progress %q", lines)
	}
	l.WaitFor("primary-node", "primary-node Active after the deployment", hactltest.ActiveIs("primary-node"))
	l.WaitFor("secondary-node", "secondary-node cloned and streaming", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_STANDBY && s.GetLocal().GetDatabase().GetWalReceiver().GetStatus() == "streaming"
	})
	old, _ := filepath.Glob(filepath.Join(l.Config("secondary-node").StateDir, "pg", "data.old-*"))
	if len(old) != 1 {
		t.Errorf("the joining node's own database was not kept aside: %v", old)
	}
	if _, err := sc.PairingToken(context.Background(), &hapb.PairingTokenRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("PairingToken on a member: %v, want FailedPrecondition", err)
	}
}

// TestDeployWithWitness deploys a pair and a witness from three stand-alone
// agents, then loses the Active node: the witness's vote lets the standby
// take over, which proves every member learned every other.
func TestDeployWithWitness(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{Witness: true})
	for _, n := range []string{"witness", "primary-node", "secondary-node"} {
		c := l.Config(n)
		c.Members = []hactl.MemberConfig{c.Self()}
		c.VIP = nil
		if n != "witness" {
			c.Bootstrap = hactl.BootstrapPrimary
		}
		if err := os.RemoveAll(c.PKIDir()); err != nil {
			t.Fatal(err)
		}
		l.SetConfig(n, c)
		l.Start(n)
	}
	l.WaitFor("primary-node", "primary-node stand-alone", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
	})
	pc := l.Client("primary-node")
	tokens := map[string]string{}
	for _, n := range []string{"secondary-node", "witness"} {
		tok, err := l.Client(n).PairingToken(context.Background(), &hapb.PairingTokenRequest{})
		if err != nil {
			t.Fatalf("PairingToken on %s: %v", n, err)
		}
		tokens[n] = tok.GetToken()
	}
	if _, err := hactltest.RunOp(t, func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
		return pc.Deploy(ctx, &hapb.DeployRequest{
			ClusterName: "lab", PeerName: "secondary-node", PeerAgentAddr: l.Config("secondary-node").Self().AgentAddr(), PairingToken: tokens["secondary-node"],
			WitnessName: "witness", WitnessAgentAddr: l.Config("witness").Self().AgentAddr(), WitnessPairingToken: tokens["witness"],
			Vip: l.VIP(), VipMode: "userspace",
		})
	}); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	s := l.WaitFor("primary-node", "primary-node Active with a witness", func(s *hapb.Snapshot) bool {
		return hactltest.ActiveIs("primary-node")(s) && s.GetCluster().GetWitness() == "witness"
	})
	for _, m := range s.GetCluster().GetMembers() {
		if !m.GetVoter() {
			t.Errorf("member %s is not a voter", m.GetName())
		}
	}
	l.WaitFor("secondary-node", "secondary-node streaming", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetDatabase().GetWalReceiver().GetStatus() == "streaming"
	})
	l.Crash("primary-node")
	l.WaitFor("secondary-node", "secondary-node takes over with the witness's vote", func(s *hapb.Snapshot) bool {
		return s.GetCluster().GetActiveNode() == "secondary-node" && s.GetLocal().GetHoldsVip()
	})
}
