package commands

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/hapair/hapair/hactl/hapb"
)

func haStatus() *Command {
	return &Command{
		Name:     "ha_status",
		Summary:  "Show health, nodes, heartbeat, replication, VIP",
		Usage:    "ha_status [--json]",
		Operator: true,
		Help: "Shows the cluster's health, both nodes (role, addresses, database role, timeline, " +
			"WAL position, lag), the heartbeat on every link, the direction of replication as " +
			"PostgreSQL reports it, the VIP and its holder, the witness, how split-brain is " +
			"prevented, maintenance mode and the last event. The agent answers from its last " +
			"sample, so this is quick.\n\n" +
			"With --json it prints the same facts as JSON for scripts, in the versioned schema " +
			StatusSchema + " (see docs/console-commands.md).\n\n" +
			"Exit status: 0 healthy, 1 degraded, 2 not running on this node (or the agent does " +
			"not answer), 3 HA not enabled, 64 usage, 130 interrupted.",
		Flags: func(fs *flag.FlagSet) { fs.Bool("json", false, "print JSON ("+StatusSchema+") for scripts") },
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			c, code := agentOr(env)
			if c == nil {
				return code
			}
			ctx, cancel := context.WithTimeout(ctx, quickCallTimeout)
			defer cancel()
			snap, err := c.Status(ctx, &hapb.StatusRequest{})
			if err != nil {
				return callFailed(ctx, env, "read the status", err)
			}
			code = StatusExitCode(snap)
			if env.Bool("json") {
				if err := WriteStatusJSON(env.Stdout, NewStatusJSON(snap)); err != nil {
					fmt.Fprintf(env.Stderr, "Error: %v\n", err)
					return ExitInternal
				}
				return code
			}
			var b strings.Builder
			if err := RenderStatus(&b, snap, env.Clock(), env.Color); err != nil {
				fmt.Fprintf(env.Stderr, "Error: %v\n", err)
				return ExitInternal
			}
			fmt.Fprint(env.Stdout, b.String())
			return code
		},
	}
}
