package commands

import (
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
)

// The snapshots the status tests render, shaped like the agent's (see
// hactl/sampler.go), on the lab's address plan.

var fixtureNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(fixtureNow.Add(d)) }

const (
	lsnCurrent = 0x3000748
	lsnReplay  = 0x3000148
)

func primaryDB(replicas ...*hapb.ReplicationRow) *hapb.DatabaseStatus {
	return &hapb.DatabaseStatus{Role: hapb.DatabaseRole_DATABASE_ROLE_PRIMARY, Timeline: 3,
		CurrentLsn: lsnCurrent, ServerVersion: "15.6", Port: 5432, Replicas: replicas}
}

func standbyDB(sender string) *hapb.DatabaseStatus {
	return &hapb.DatabaseStatus{Role: hapb.DatabaseRole_DATABASE_ROLE_STANDBY, Timeline: 3,
		ReceiveLsn: lsnCurrent, ReplayLsn: lsnReplay, ServerVersion: "15.6", Port: 5432,
		WalReceiver: &hapb.WalReceiver{Status: "streaming", SenderHost: sender, SenderPort: 5432, ReceivedTli: 3}}
}

func replicaRow(name, addr string, lag uint64) *hapb.ReplicationRow {
	return &hapb.ReplicationRow{ApplicationName: name, ClientAddr: addr, State: "streaming",
		SyncState: "async", SentLsn: lsnCurrent, ReplayLsn: lsnCurrent - lag, LagBytes: lag,
		ReplayLag: durationpb.New(12 * time.Millisecond)}
}

func node(name, public, hb string, role hapb.NodeRole, db *hapb.DatabaseStatus) *hapb.NodeStatus {
	return &hapb.NodeStatus{Name: name, PublicAddr: public, HeartbeatAddr: hb, Role: role, Database: db,
		AgentVersion: "0.9.0", ClusterId: "c-7f3a", Epoch: 3}
}

func members() []*hapb.Member {
	return []*hapb.Member{
		{Name: "primary-node", Kind: "data", PublicAddr: "198.18.0.5", HeartbeatAddr: "169.254.0.1", Voter: true},
		{Name: "secondary-node", Kind: "data", PublicAddr: "198.18.0.10", HeartbeatAddr: "169.254.0.2", Voter: true},
		{Name: "witness", Kind: "witness", PublicAddr: "198.18.0.20", Voter: true},
	}
}

const protection = "three voters (witness witness): a node cut off from the majority stops writing and releases the VIP before the other may promote"

func links(publicUp bool) []*hapb.LinkStatus {
	pub := &hapb.LinkStatus{Name: "public", LocalAddr: "198.18.0.5", PeerAddr: "198.18.0.10",
		Connected: true, Rtt: durationpb.New(310 * time.Microsecond), LastSeen: at(-100 * time.Millisecond)}
	if !publicUp {
		pub.Connected, pub.Rtt, pub.Missed, pub.LastSeen = false, nil, 14, at(-12*time.Second)
	}
	return []*hapb.LinkStatus{
		{Name: "heartbeat", LocalAddr: "169.254.0.1", PeerAddr: "169.254.0.2", Connected: true,
			Rtt: durationpb.New(210 * time.Microsecond), LastSeen: at(-100 * time.Millisecond)},
		pub,
	}
}

func events() []*hapb.Event {
	return []*hapb.Event{
		{Seq: 12, Time: at(-10 * time.Second), Node: "primary-node", Kind: "promoted", Detail: "primary-node is Active (epoch 3)"},
		{Seq: 11, Time: at(-15 * time.Second), Node: "secondary-node", Kind: "peer", Detail: "primary-node is reachable"},
	}
}

// healthySnapshot: primary-node Active, secondary-node streaming from it.
func healthySnapshot() *hapb.Snapshot {
	local := node("primary-node", "198.18.0.5", "169.254.0.1", hapb.NodeRole_NODE_ROLE_ACTIVE,
		primaryDB(replicaRow("secondary-node", "198.18.0.10", 0)))
	local.HoldsVip = true
	return &hapb.Snapshot{
		Seq: 40, SampledAt: at(-200 * time.Millisecond), Local: local,
		Peer: &hapb.PeerView{Name: "secondary-node", AgentAddr: "198.18.0.10:7443", Reachable: true,
			LastContact: at(-300 * time.Millisecond),
			Status:      node("secondary-node", "198.18.0.10", "169.254.0.2", hapb.NodeRole_NODE_ROLE_STANDBY, standbyDB("198.18.0.5"))},
		Cluster: &hapb.ClusterView{Name: "prod", Id: "c-7f3a", Health: hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY,
			ActiveNode: "primary-node", Epoch: 3, Witness: "witness", Protection: protection,
			ReplicationMode: "async", Members: members(),
			Vip: &hapb.Vip{Address: "198.18.0.12", Holder: "primary-node", Since: at(-time.Hour)}},
		Links:        links(true),
		RecentEvents: events(),
	}
}

// degradedSnapshot: the peer's host is down; primary-node serves alone.
func degradedSnapshot() *hapb.Snapshot {
	s := healthySnapshot()
	s.Local.Database.Replicas = nil
	s.Peer = &hapb.PeerView{Name: "secondary-node", AgentAddr: "198.18.0.10:7443", Reachable: false,
		Error:       "rpc error: code = Unavailable desc = connection error: dial tcp 198.18.0.10:7443: connect: no route to host",
		LastContact: at(-3*time.Minute - 12*time.Second),
		// What the agent last heard: stale, never to be shown as fact.
		Status: node("secondary-node", "198.18.0.10", "169.254.0.2", hapb.NodeRole_NODE_ROLE_STANDBY, standbyDB("198.18.0.5"))}
	s.Cluster.Health = hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED
	s.Cluster.HealthReason = "one of the cluster nodes is offline"
	for _, l := range s.Links {
		l.Connected, l.Rtt, l.Missed, l.LastSeen = false, nil, 380, at(-3*time.Minute-12*time.Second)
	}
	s.RecentEvents = append([]*hapb.Event{{Seq: 13, Time: at(-3 * time.Minute), Node: "primary-node", Kind: "peer",
		Detail: "secondary-node is unreachable"}}, s.RecentEvents...)
	return s
}

// stoppedSnapshot: ha_cluster_stop ran on primary-node; secondary-node
// took over.
func stoppedSnapshot() *hapb.Snapshot {
	s := healthySnapshot()
	s.Local = node("primary-node", "198.18.0.5", "169.254.0.1", hapb.NodeRole_NODE_ROLE_STOPPED,
		&hapb.DatabaseStatus{Role: hapb.DatabaseRole_DATABASE_ROLE_STOPPED, Port: 5432})
	peer := node("secondary-node", "198.18.0.10", "169.254.0.2", hapb.NodeRole_NODE_ROLE_ACTIVE, primaryDB())
	peer.Database.Timeline = 4
	peer.HoldsVip = true
	s.Peer.Status = peer
	s.Cluster.Health = hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING
	s.Cluster.HealthReason = "cluster is not currently running on this node"
	s.Cluster.ActiveNode, s.Cluster.Epoch = "secondary-node", 4
	s.Cluster.Vip = &hapb.Vip{Address: "198.18.0.12", Holder: "secondary-node", Since: at(-20 * time.Second)}
	s.Links = links(false)
	s.Links[0].Connected, s.Links[0].Rtt = false, nil
	s.RecentEvents = append([]*hapb.Event{{Seq: 14, Time: at(-20 * time.Second), Node: "primary-node", Kind: "stopped",
		Detail: "cluster services stopped on primary-node"}}, s.RecentEvents...)
	return s
}

// standAloneSnapshot: after ha_teardown on this node.
func standAloneSnapshot() *hapb.Snapshot {
	local := node("primary-node", "198.18.0.5", "169.254.0.1", hapb.NodeRole_NODE_ROLE_STANDALONE, primaryDB())
	local.TornDown = true
	return &hapb.Snapshot{
		Seq: 3, SampledAt: at(-time.Second), Local: local,
		Cluster: &hapb.ClusterView{Name: "prod", Health: hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED,
			HealthReason: "HA is not enabled on this node"},
		RecentEvents: []*hapb.Event{{Seq: 1, Time: at(-5 * time.Second), Node: "primary-node", Kind: "teardown",
			Detail: "cluster destroyed; this node runs stand-alone with all its data"}},
	}
}

// handoverSnapshot: after a handover, seen from primary-node, now Standby
// of secondary-node; the public link is down. Replication runs
// secondary ==> primary, as secondary-node's pg_stat_replication says.
func handoverSnapshot() *hapb.Snapshot {
	s := healthySnapshot()
	s.Local = node("primary-node", "198.18.0.5", "169.254.0.1", hapb.NodeRole_NODE_ROLE_STANDBY, standbyDB("198.18.0.10"))
	s.Local.Database.Timeline = 4
	peer := node("secondary-node", "198.18.0.10", "169.254.0.2", hapb.NodeRole_NODE_ROLE_ACTIVE,
		primaryDB(replicaRow("primary-node", "198.18.0.5", 1536)))
	peer.Database.Timeline = 4
	peer.Database.Replicas[0].SyncState = "sync"
	peer.HoldsVip = true
	s.Peer.Status = peer
	s.Cluster.ActiveNode, s.Cluster.Epoch = "secondary-node", 4
	s.Cluster.Vip = &hapb.Vip{Address: "198.18.0.12", Holder: "secondary-node", Since: at(-40 * time.Second)}
	s.Cluster.ReplicationMode = "sync"
	s.Cluster.Maintenance = true
	s.Cluster.Health = hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED
	s.Cluster.HealthReason = "maintenance mode: automatic failover paused"
	s.Links = links(false)
	s.RecentEvents = append([]*hapb.Event{{Seq: 15, Time: at(-40 * time.Second), Node: "secondary-node", Kind: "handover",
		Detail: "primary-node handed over to secondary-node (epoch 4)"}}, s.RecentEvents...)
	return s
}

// hostileSnapshot: every string the peer or a misconfiguration could fill
// is hostile: escape sequences, line breaks, C1 controls, invalid UTF-8,
// non-ASCII and absurd lengths.
func hostileSnapshot() *hapb.Snapshot {
	s := proto.Clone(handoverSnapshot()).(*hapb.Snapshot)
	long := strings.Repeat("x", 150)
	esc := "\x1b[2J\x1b]0;pwned\x07"
	s.Cluster.Name = "prod" + esc + "\r\nFAKE: healthy"
	s.Cluster.HealthReason = "reason with \u009b31m C1 CSI, \x9b31m a lone byte and \xff\xfe bytes " + long
	s.Cluster.Protection = "caf\u00e9 \u202e reversed " + long
	s.Cluster.Witness = "w\x00itness"
	s.Peer.Name = "secondary-node-" + long
	s.Peer.Status.Name = s.Peer.Name
	s.Peer.Status.PublicAddr = "198.18.0.10\x1b[31m"
	s.Peer.Status.Database.Replicas[0].ApplicationName = "primary-node\n==> evil"
	s.Peer.Status.Database.Replicas[0].State = "streaming\x1b[5m"
	s.Local.HeartbeatAddr = long
	s.Links[0].Name = "hb\x1b[8m" + long
	s.RecentEvents[0].Detail = "detail\twith\ttabs \x1b]8;;http://evil\x07link\x1b]8;;\x07 " + long
	s.Cluster.Vip.Address = "198.18.0.12\u0085"
	return s
}
