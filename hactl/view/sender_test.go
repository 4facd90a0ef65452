package view

import (
	"testing"

	"github.com/hapair/hapair/hactl/hapb"
)

func TestSenderAddr(t *testing.T) {
	standby := func(name, sender string) *hapb.NodeStatus {
		return &hapb.NodeStatus{Name: name, Database: &hapb.DatabaseStatus{
			Role: hapb.DatabaseRole_DATABASE_ROLE_STANDBY, WalReceiver: &hapb.WalReceiver{SenderHost: sender}}}
	}
	primary := &hapb.NodeStatus{Name: "db1", Database: &hapb.DatabaseStatus{Role: hapb.DatabaseRole_DATABASE_ROLE_PRIMARY}}
	tests := []struct {
		name    string
		snap    *hapb.Snapshot
		standby string
		want    string
	}{
		{"the local node is the standby", &hapb.Snapshot{Local: standby("db2", "169.254.0.1")}, "db2", "169.254.0.1"},
		{"the reachable peer is the standby", &hapb.Snapshot{Local: primary,
			Peer: &hapb.PeerView{Name: "db2", Reachable: true, Status: standby("db2", "169.254.0.1")}}, "db2", "169.254.0.1"},
		{"an unreachable peer's last view is not used", &hapb.Snapshot{Local: primary,
			Peer: &hapb.PeerView{Name: "db2", Reachable: false, Status: standby("db2", "169.254.0.1")}}, "db2", ""},
		{"a standby that is neither node", &hapb.Snapshot{Local: primary,
			Peer: &hapb.PeerView{Name: "db2", Reachable: true, Status: standby("db2", "169.254.0.1")}}, "db3", ""},
		{"no receiver", &hapb.Snapshot{Local: primary}, "db1", ""},
		{"no name", &hapb.Snapshot{Local: standby("", "169.254.0.1")}, "", ""},
		{"nil snapshot", nil, "db2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SenderAddr(tt.snap, tt.standby); got != tt.want {
				t.Fatalf("SenderAddr(%q) = %q, want %q", tt.standby, got, tt.want)
			}
		})
	}
}
