package commands

import (
	"context"
	"fmt"

	"github.com/hapair/hapair/hactl/hapb"
)

func haMaintenance() *Command {
	return &Command{
		Name:    "ha_maintenance",
		Summary: "Pause (on) or resume (off) automatic failover",
		Usage:   "ha_maintenance on|off",
		Help: "ha_maintenance on pauses every automatic decision of the cluster: no automatic " +
			"promotion while it is on (planned operations still work). ha_maintenance off " +
			"resumes them. ha_status shows it, and reports the cluster degraded while it is on.\n\n" +
			"Exit status: 0 done, 1 the agent refused, 2 the agent does not answer, 64 usage.",
		CompleteArg: func(prefix string) []string { return withPrefix([]string{"off", "on"}, prefix) },
		Run: func(ctx context.Context, env *Env, args []string) int {
			if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
				if len(args) == 1 {
					return env.Usagef("%q: want on or off", args[0])
				}
				return env.Usagef("want one argument, on or off, got %d", len(args))
			}
			c, code := agentOr(env)
			if c == nil {
				return code
			}
			ctx, cancel := context.WithTimeout(ctx, quickCallTimeout)
			defer cancel()
			r, err := c.SetMaintenance(ctx, &hapb.SetMaintenanceRequest{Enabled: args[0] == "on"})
			if err != nil {
				return callFailed(ctx, env, "set maintenance mode "+args[0], err)
			}
			if r.GetEnabled() {
				fmt.Fprintln(env.Stdout, "Maintenance mode is on: automatic failover is paused.")
			} else {
				fmt.Fprintln(env.Stdout, "Maintenance mode is off: automatic failover is active.")
			}
			return ExitOK
		},
	}
}
