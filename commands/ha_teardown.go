package commands

import (
	"context"
	"flag"
	"fmt"

	"google.golang.org/grpc"

	"github.com/hapair/hapair/hactl/hapb"
)

// TeardownWarning is printed before a teardown, word for word.
const TeardownWarning = "WARNING: You are about to destroy the HA cluster configuration and convert this server into stand-alone mode."

// TeardownDone is what a finished teardown says.
const TeardownDone = "The HA cluster has been destroyed. This server is now in stand-alone mode."

func haTeardown() *Command {
	return &Command{
		Name:    "ha_teardown",
		Summary: "Destroy the cluster; this server goes stand-alone",
		Usage:   "ha_teardown [--yes]",
		Help: "On the Active node: destroys the HA cluster configuration. This server keeps all its " +
			"data and runs stand-alone on its own address; the VIP is released. The other node " +
			"deactivates (its database stopped) as soon as it learns, and cannot rejoin without a " +
			"new deployment (ha_deploy).\n\n" +
			"It prints a warning and asks you to type yes. In exec mode (ssh host ha_teardown) " +
			"there is nobody to ask: it refuses unless --yes is given.\n\n" +
			"Exit status: 0 done, 1 the agent refused or the operation failed, 2 the agent does not " +
			"answer, 64 exec mode without --yes, 130 not confirmed or interrupted.",
		Flags: func(fs *flag.FlagSet) {
			fs.Bool("yes", false, "confirm without being asked (required in exec mode)")
		},
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			if _, code := agentOr(env); code != ExitOK {
				return code
			}
			fmt.Fprintln(env.Stdout, TeardownWarning)
			if !env.Bool("yes") {
				if env.Term == nil {
					return env.Usagef("there is nobody to confirm in exec mode: add --yes to destroy the cluster (ssh host ha_teardown --yes)")
				}
				if code := confirm(ctx, env, "Type yes to continue: "); code != ExitOK {
					return code
				}
			}
			return runOperation(ctx, env, operation{
				what: "tearing down the cluster",
				start: func(ctx context.Context, c hapb.AgentClient) (grpc.ServerStreamingClient[hapb.Progress], error) {
					return c.Teardown(ctx, &hapb.TeardownRequest{Confirm: true})
				},
				after: TeardownDone,
			})
		},
	}
}
