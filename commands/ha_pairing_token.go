package commands

import (
	"context"
	"fmt"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

func haPairingToken() *Command {
	return &Command{
		Name:    "ha_pairing_token",
		Summary: "Make a one-time token for ha_deploy on the other node",
		Usage:   "ha_pairing_token",
		Help: "Makes a one-time pairing token on this stand-alone node (or witness). Read it " +
			"to the operator of the other node, who passes it to ha_deploy there: the two " +
			"agents then prove the token to each other over a TLS channel bound to it, and " +
			"the deploying node hands this one its cluster identity. A token is good for one " +
			"deployment and expires after 15 minutes; a new one replaces the old.\n\n" +
			"Exit status: 0 done, 1 the agent refused (e.g. this node is already in a cluster), " +
			"2 the agent does not answer, 64 usage.",
		Run: func(ctx context.Context, env *Env, args []string) int {
			if len(args) != 0 {
				return env.Usagef("takes no arguments, got %d", len(args))
			}
			c, code := agentOr(env)
			if c == nil {
				return code
			}
			ctx, cancel := context.WithTimeout(ctx, quickCallTimeout)
			defer cancel()
			r, err := c.PairingToken(ctx, &hapb.PairingTokenRequest{})
			if err != nil {
				return callFailed(ctx, env, "make a pairing token", err)
			}
			fmt.Fprintf(env.Stdout, "Pairing token: %s\n", view.Clean(r.GetToken()))
			fmt.Fprintf(env.Stdout, "Valid until %s, for one deployment. Give it to the operator of the deploying node (ha_deploy --token).\n",
				r.GetExpiresAt().AsTime().In(env.Clock().Location()).Format("15:04:05 MST"))
			return ExitOK
		},
	}
}
