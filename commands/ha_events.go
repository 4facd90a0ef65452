package commands

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

// MaxEvents is the most events ha_events asks for (the agent's own bound).
const MaxEvents = 1000

// defaultEvents is how many events ha_events shows without -n.
const defaultEvents = 20

func haEvents() *Command {
	return &Command{
		Name:     "ha_events",
		Summary:  "Show the cluster's history, newest first",
		Usage:    "ha_events [-n N]",
		Operator: true,
		Help: "Shows the cluster's replicated history (promotions, handovers, stops and starts, " +
			"peers lost and found, maintenance, teardown) merged with this agent's own events, " +
			"newest first.\n\n" +
			"Exit status: 0 done, 1 the agent refused, 2 the agent does not answer, 64 usage.",
		Flags: func(fs *flag.FlagSet) {
			fs.Int("n", defaultEvents, "how many `events` to show, 1 to "+strconv.Itoa(MaxEvents))
		},
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			n, _ := env.flagValue("n").(int)
			if n < 1 || n > MaxEvents {
				return env.Usagef("-n %s: want a number of events from 1 to %d", env.String("n"), MaxEvents)
			}
			c, code := agentOr(env)
			if c == nil {
				return code
			}
			ctx, cancel := context.WithTimeout(ctx, quickCallTimeout)
			defer cancel()
			r, err := c.Events(ctx, &hapb.EventsRequest{Limit: int32(n)})
			if err != nil {
				return callFailed(ctx, env, "read the events", err)
			}
			evs := r.GetEvents()
			if len(evs) > n {
				evs = evs[:n]
			}
			if len(evs) == 0 {
				fmt.Fprintln(env.Stdout, "No events yet.")
				return ExitOK
			}
			loc := env.Clock().Location()
			for _, e := range evs {
				when := "---------- --:--:--"
				if e.GetTime() != nil {
					when = e.GetTime().AsTime().In(loc).Format("2006-01-02 15:04:05")
				}
				line := when + "  " + orQ(view.Clean(e.GetNode())) + "  " + orQ(view.Clean(e.GetKind())) + ":"
				if d := view.Clean(e.GetDetail()); d != "" {
					line += " " + d
				}
				writeWrapped(env.Stdout, line, 21)
			}
			return ExitOK
		},
	}
}
