package commands

import (
	"context"
	"flag"

	"google.golang.org/grpc"

	"github.com/hapair/hapair/hactl/hapb"
)

func haSwitchover() *Command {
	return &Command{
		Name:    "ha_switchover",
		Summary: "Move the Active role to the other node",
		Usage:   "ha_switchover [--force]",
		Help: "On the Active node: hands the Active role and the VIP over to the Standby with no " +
			"acknowledged write lost, then this node follows the new Active node as Standby.\n\n" +
			"With --force, on the Standby of a pair without a witness whose Active node is lost: " +
			"you confirm that the Active node is really down, and this node takes over as the " +
			"only voter. The agent refuses while the Active node still answers heartbeats on any " +
			"link.\n\n" +
			"Every step is printed as the agent reports it. ^C stops following here; the agent " +
			"still finishes the operation.\n\n" +
			"Exit status: 0 done, 1 the agent refused or the operation failed, 2 the agent does not " +
			"answer, 130 interrupted.",
		Flags: func(fs *flag.FlagSet) {
			fs.Bool("force", false, "on the Standby, when the Active node is lost and there is no witness: take over")
		},
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			force := env.Bool("force")
			return runOperation(ctx, env, operation{
				what: "switching over",
				start: func(ctx context.Context, c hapb.AgentClient) (grpc.ServerStreamingClient[hapb.Progress], error) {
					return c.Switchover(ctx, &hapb.SwitchoverRequest{Force: force})
				},
			})
		},
	}
}
