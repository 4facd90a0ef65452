package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/hapair/hapair/hactl/view"
)

func dashboardCommand() *Command {
	return &Command{
		Name:     "dashboard",
		Summary:  "Open the full-screen live dashboard",
		Usage:    "dashboard",
		Operator: true,
		Help: "Opens the full-screen live view of both nodes: roles, heartbeat per link, the " +
			"direction and lag of replication, the VIP holder and the newest events, updated as " +
			"they change. It needs an interactive terminal: from a script or a plain " +
			"\"ssh host dashboard\", use ssh -t.\n\n" +
			"Exit status: 0 done, 1 the dashboard failed, 64 no interactive terminal.",
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			if env.Dashboard == nil {
				fmt.Fprintln(env.Stderr, "The dashboard needs an interactive terminal: ssh -t host dashboard")
				return ExitUsage
			}
			if err := env.Dashboard(ctx); err != nil {
				if ctx.Err() != nil || errors.Is(err, context.Canceled) {
					return ExitAborted
				}
				fmt.Fprintf(env.Stderr, "Error: the dashboard failed: %s\n", view.Clean(err.Error()))
				return ExitFailure
			}
			return ExitOK
		},
	}
}
