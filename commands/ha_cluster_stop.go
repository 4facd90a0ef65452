package commands

import (
	"context"

	"google.golang.org/grpc"

	"github.com/hapair/hapair/hactl/hapb"
)

func haClusterStop() *Command {
	return &Command{
		Name:    "ha_cluster_stop",
		Summary: "Stop cluster services here (Active hands over)",
		Usage:   "ha_cluster_stop",
		Help: "Stops the cluster services of this node; the agent itself stays up. On the Active " +
			"node it first hands over with no acknowledged write lost: the database is stopped once " +
			"the Standby has received everything, the VIP is released, and the other node becomes " +
			"Active and takes the VIP. On the Standby it stops the database. Either way this node " +
			"then leaves the voters, so the other keeps the cluster running. ha_cluster_start " +
			"brings it back as Standby.\n\n" +
			"Every step is printed as the agent reports it. ^C stops following here; the agent " +
			"still finishes the operation.\n\n" +
			"Exit status: 0 done, 1 the agent refused or the operation failed, 2 the agent does not " +
			"answer, 130 interrupted.",
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			return runOperation(ctx, env, operation{
				what: "stopping cluster services",
				start: func(ctx context.Context, c hapb.AgentClient) (grpc.ServerStreamingClient[hapb.Progress], error) {
					return c.ClusterStop(ctx, &hapb.ClusterStopRequest{})
				},
			})
		},
	}
}
