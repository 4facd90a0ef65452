package commands

import (
	"context"

	"google.golang.org/grpc"

	"github.com/hapair/hapair/hactl/hapb"
)

func haClusterStart() *Command {
	return &Command{
		Name:    "ha_cluster_start",
		Summary: "Start cluster services here; rejoin as Standby",
		Usage:   "ha_cluster_start",
		Help: "Starts the cluster services of this node after ha_cluster_stop: it rejoins the " +
			"voters, its database is rewound from the Active node if it diverged (cloned afresh, " +
			"the old data kept aside, if that fails) and streams from it. Replication then runs " +
			"from the Active node to this one.\n\n" +
			"Every step is printed as the agent reports it. ^C stops following here; the agent " +
			"still finishes the operation.\n\n" +
			"Exit status: 0 done, 1 the agent refused or the operation failed, 2 the agent does not " +
			"answer, 130 interrupted.",
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			return runOperation(ctx, env, operation{
				what: "starting cluster services",
				start: func(ctx context.Context, c hapb.AgentClient) (grpc.ServerStreamingClient[hapb.Progress], error) {
					return c.ClusterStart(ctx, &hapb.ClusterStartRequest{})
				},
			})
		},
	}
}
