package hactl

import "github.com/hapair/hapair/hactl/hapb"

// clusterHealth judges the pair from what the databases themselves report.
// It is pure: the sampler calls it on every snapshot.
func clusterHealth(local *hapb.NodeStatus, peer *hapb.PeerView, peerConfigured bool) (hapb.ClusterHealth, string) {
	if !peerConfigured {
		return hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED, "HA is not enabled on this node"
	}
	ldb := local.GetDatabase()
	switch ldb.GetRole() {
	case hapb.DatabaseRole_DATABASE_ROLE_PRIMARY, hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
	default:
		return hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING, "cluster is not currently running on this node"
	}
	if !peer.GetReachable() {
		return hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "one of the cluster nodes is offline"
	}
	pdb := peer.GetStatus().GetDatabase()
	primaries := 0
	var primary *hapb.DatabaseStatus
	for _, d := range []*hapb.DatabaseStatus{ldb, pdb} {
		if d.GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY {
			primaries++
			primary = d
		}
	}
	switch {
	case pdb.GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY && pdb.GetRole() != hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
		return hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "one of the cluster nodes is offline"
	case primaries == 2:
		return hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "both databases are primaries"
	case primaries == 0:
		return hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "no database is primary"
	}
	for _, r := range primary.GetReplicas() {
		if r.GetState() == "streaming" {
			return hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY, ""
		}
	}
	return hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, "the standby is not streaming from the primary"
}
