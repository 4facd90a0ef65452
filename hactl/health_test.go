package hactl

import (
	"testing"

	"github.com/hapair/hapair/hactl/hapb"
)

func node(role hapb.DatabaseRole, replicaStates ...string) *hapb.NodeStatus {
	d := &hapb.DatabaseStatus{Role: role}
	for _, s := range replicaStates {
		d.Replicas = append(d.Replicas, &hapb.ReplicationRow{State: s})
	}
	return &hapb.NodeStatus{Database: d}
}

func TestClusterHealth(t *testing.T) {
	const (
		primary = hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
		standby = hapb.DatabaseRole_DATABASE_ROLE_STANDBY
		stopped = hapb.DatabaseRole_DATABASE_ROLE_STOPPED
	)
	reach := func(n *hapb.NodeStatus) *hapb.PeerView { return &hapb.PeerView{Reachable: true, Status: n} }
	tests := []struct {
		name       string
		local      *hapb.NodeStatus
		peer       *hapb.PeerView
		noPeer     bool
		want       hapb.ClusterHealth
		wantReason string
	}{
		{name: "stand-alone node", local: node(primary), noPeer: true,
			want: hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED, wantReason: "HA is not enabled on this node"},
		{name: "local database stopped", local: node(stopped), peer: reach(node(primary)),
			want: hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING, wantReason: "cluster is not currently running on this node"},
		{name: "peer agent unreachable", local: node(primary, "streaming"), peer: &hapb.PeerView{Reachable: false},
			want: hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, wantReason: "one of the cluster nodes is offline"},
		{name: "peer database stopped", local: node(primary), peer: reach(node(stopped)),
			want: hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, wantReason: "one of the cluster nodes is offline"},
		{name: "two primaries", local: node(primary), peer: reach(node(primary)),
			want: hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, wantReason: "both databases are primaries"},
		{name: "two standbys", local: node(standby), peer: reach(node(standby)),
			want: hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, wantReason: "no database is primary"},
		{name: "standby still catching up", local: node(primary, "catchup"), peer: reach(node(standby)),
			want: hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, wantReason: "the standby is not streaming from the primary"},
		{name: "healthy seen from the primary", local: node(primary, "streaming"), peer: reach(node(standby)),
			want: hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY},
		{name: "healthy seen from the standby", local: node(standby), peer: reach(node(primary, "streaming")),
			want: hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := clusterHealth(tc.local, tc.peer, !tc.noPeer)
			if got != tc.want || reason != tc.wantReason {
				t.Errorf("clusterHealth = %v %q, want %v %q", got, reason, tc.want, tc.wantReason)
			}
		})
	}
}
