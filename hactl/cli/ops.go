package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/hapair/hapair/commands"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

// agentCall parses the common flags (--config/--socket) of an operation
// and runs fn against the local agent.
func agentCall(name string, args []string, stderr io.Writer, extra func(fs *flagSet), fn func(context.Context, hapb.AgentClient) error) int {
	fs := newFlags(name, stderr)
	config := fs.String("config", "", "agent configuration file, to find its socket")
	socket := fs.String("socket", "", "the agent's unix socket")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait for the operation")
	if extra != nil {
		extra(fs)
	}
	if !parse(fs, args, stderr) {
		return ExitUsage
	}
	path, err := socketFrom(*config, *socket)
	if err != nil {
		fmt.Fprintf(stderr, "hactl %s: %v\n", name, err)
		return ExitUsage
	}
	conn, err := hapb.DialAgent(path)
	if err != nil {
		fmt.Fprintf(stderr, "hactl %s: %v\n", name, err)
		return ExitFailure
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := fn(ctx, hapb.NewAgentClient(conn)); err != nil {
		if st, ok := status.FromError(err); ok {
			err = errors.New(st.Message())
		}
		fmt.Fprintf(stderr, "hactl %s: %v\n", name, err)
		return ExitFailure
	}
	return 0
}

// printProgress prints every step of a streamed operation with its time,
// with the console's progress printer.
func printProgress(stdout io.Writer, st grpc.ServerStreamingClient[hapb.Progress], err error) error {
	if err != nil {
		return err
	}
	_, err = commands.ProgressPrinter{W: stdout, Elapsed: true}.Follow(st)
	return err
}

func runStop(args []string, stdout, stderr io.Writer) int {
	return agentCall("stop", args, stderr, nil, func(ctx context.Context, c hapb.AgentClient) error {
		st, err := c.ClusterStop(ctx, &hapb.ClusterStopRequest{})
		return printProgress(stdout, st, err)
	})
}

func runStart(args []string, stdout, stderr io.Writer) int {
	return agentCall("start", args, stderr, nil, func(ctx context.Context, c hapb.AgentClient) error {
		st, err := c.ClusterStart(ctx, &hapb.ClusterStartRequest{})
		return printProgress(stdout, st, err)
	})
}

func runSwitchover(args []string, stdout, stderr io.Writer) int {
	var force *bool
	return agentCall("switchover", args, stderr, func(fs *flagSet) {
		force = fs.Bool("force", false, "on the Standby of a pair without a witness whose Active node is lost: take over")
	}, func(ctx context.Context, c hapb.AgentClient) error {
		st, err := c.Switchover(ctx, &hapb.SwitchoverRequest{Force: *force})
		return printProgress(stdout, st, err)
	})
}

func runTeardown(args []string, stdout, stderr io.Writer) int {
	var yes *bool
	return agentCall("teardown", args, stderr, func(fs *flagSet) {
		yes = fs.Bool("yes", false, "confirm: destroy the HA cluster configuration")
	}, func(ctx context.Context, c hapb.AgentClient) error {
		fmt.Fprintln(stdout, "WARNING: You are about to destroy the HA cluster configuration and convert this server into stand-alone mode.")
		if !*yes {
			return errors.New("refusing without --yes")
		}
		st, err := c.Teardown(ctx, &hapb.TeardownRequest{Confirm: true})
		return printProgress(stdout, st, err)
	})
}

func runMaintenance(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "on" && args[0] != "off") {
		fmt.Fprintln(stderr, "hactl maintenance: want on or off")
		return ExitUsage
	}
	on := args[0] == "on"
	return agentCall("maintenance", args[1:], stderr, nil, func(ctx context.Context, c hapb.AgentClient) error {
		r, err := c.SetMaintenance(ctx, &hapb.SetMaintenanceRequest{Enabled: on})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "maintenance mode %s\n", map[bool]string{true: "on: automatic failover paused", false: "off"}[r.GetEnabled()])
		return nil
	})
}

func runEvents(args []string, stdout, stderr io.Writer) int {
	var n *int
	return agentCall("events", args, stderr, func(fs *flagSet) {
		n = fs.Int("n", 20, "how many events, newest first")
	}, func(ctx context.Context, c hapb.AgentClient) error {
		r, err := c.Events(ctx, &hapb.EventsRequest{Limit: int32(*n)})
		if err != nil {
			return err
		}
		for _, e := range r.GetEvents() {
			fmt.Fprintf(stdout, "%s  %-16s %-12s %s\n", e.GetTime().AsTime().Local().Format("2006-01-02 15:04:05"), view.Clean(e.GetNode()), view.Clean(e.GetKind()), view.Clean(e.GetDetail()))
		}
		return nil
	})
}

func runPairingToken(args []string, stdout, stderr io.Writer) int {
	return agentCall("pairing-token", args, stderr, nil, func(ctx context.Context, c hapb.AgentClient) error {
		r, err := c.PairingToken(ctx, &hapb.PairingTokenRequest{})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pairing token: %s\nvalid until %s; give it to the operator of the deploying node.\n",
			r.GetToken(), r.GetExpiresAt().AsTime().Local().Format("15:04:05"))
		return nil
	})
}

func runDeploy(args []string, stdout, stderr io.Writer) int {
	var req hapb.DeployRequest
	return agentCall("deploy", args, stderr, func(fs *flagSet) {
		fs.StringVar(&req.ClusterName, "cluster", "", "cluster name (default: this node's configured one)")
		fs.StringVar(&req.PeerName, "peer-name", "", "the other node's name (shown with its token)")
		fs.StringVar(&req.PeerAgentAddr, "peer", "", "the other node's ip:agent_port")
		fs.StringVar(&req.PairingToken, "token", "", "the pairing token read on the other node")
		fs.StringVar(&req.Vip, "vip", "", "the virtual IP of the pair")
		fs.StringVar(&req.VipMode, "vip-mode", "", "userspace or linux (default: this node's configured one)")
		fs.StringVar(&req.ReplicationMode, "replication", "", "async, sync or sync-strict")
		fs.StringVar(&req.WitnessName, "witness-name", "", "the witness's node name (optional)")
		fs.StringVar(&req.WitnessAgentAddr, "witness", "", "the witness's ip:agent_port")
		fs.StringVar(&req.WitnessPairingToken, "witness-token", "", "the pairing token read on the witness")
	}, func(ctx context.Context, c hapb.AgentClient) error {
		st, err := c.Deploy(ctx, &req)
		return printProgress(stdout, st, err)
	})
}
