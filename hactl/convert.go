package hactl

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pg"
	"github.com/hapair/hapair/hactl/sysinfo"
)

func tsOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func dbRoleOf(r pg.Role) hapb.DatabaseRole {
	switch r {
	case pg.RolePrimary:
		return hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
	case pg.RoleStandby:
		return hapb.DatabaseRole_DATABASE_ROLE_STANDBY
	case pg.RoleStopped:
		return hapb.DatabaseRole_DATABASE_ROLE_STOPPED
	case pg.RoleUninitialized:
		return hapb.DatabaseRole_DATABASE_ROLE_UNINITIALIZED
	}
	return hapb.DatabaseRole_DATABASE_ROLE_UNSPECIFIED
}

// databaseStatus converts what the controller read; err is a failed read.
func databaseStatus(st pg.Status, err error, listen string, port int) *hapb.DatabaseStatus {
	d := &hapb.DatabaseStatus{
		Role:                    dbRoleOf(st.Role),
		Timeline:                st.Timeline,
		CurrentLsn:              uint64(st.CurrentLSN),
		ReceiveLsn:              uint64(st.ReceiveLSN),
		ReplayLsn:               uint64(st.ReplayLSN),
		LastReplayAt:            tsOrNil(st.LastReplayAt),
		ServerVersion:           st.ServerVersion,
		SystemIdentifier:        st.SystemIdentifier,
		Port:                    int32(port),
		ListenAddr:              listen,
		SynchronousStandbyNames: st.SynchronousStandbyNames,
		StartedAt:               tsOrNil(st.StartedAt),
	}
	if err != nil {
		d.Error = err.Error()
	}
	for _, r := range st.Replicas {
		d.Replicas = append(d.Replicas, &hapb.ReplicationRow{
			Pid:             r.PID,
			ApplicationName: r.ApplicationName,
			ClientAddr:      r.ClientAddr,
			State:           r.State,
			SentLsn:         uint64(r.SentLSN),
			WriteLsn:        uint64(r.WriteLSN),
			FlushLsn:        uint64(r.FlushLSN),
			ReplayLsn:       uint64(r.ReplayLSN),
			WriteLag:        durationpb.New(r.WriteLag),
			FlushLag:        durationpb.New(r.FlushLag),
			ReplayLag:       durationpb.New(r.ReplayLag),
			SyncState:       r.SyncState,
			LagBytes:        r.LagBytes,
			ReplyTime:       tsOrNil(r.ReplyTime),
		})
	}
	if w := st.WalReceiver; w != nil {
		d.WalReceiver = &hapb.WalReceiver{
			Pid:                w.PID,
			Status:             w.Status,
			ReceivedTli:        w.ReceivedTLI,
			WrittenLsn:         uint64(w.WrittenLSN),
			FlushedLsn:         uint64(w.FlushedLSN),
			LatestEndLsn:       uint64(w.LatestEndLSN),
			LastMsgSendTime:    tsOrNil(w.LastMsgSendTime),
			LastMsgReceiptTime: tsOrNil(w.LastMsgReceived),
			SlotName:           w.SlotName,
			SenderHost:         w.SenderHost,
			SenderPort:         w.SenderPort,
		}
	}
	return d
}

func systemStatus(i sysinfo.Info) *hapb.SystemStatus {
	return &hapb.SystemStatus{
		Hostname:          i.Hostname,
		MemTotalBytes:     i.MemTotalBytes,
		MemAvailableBytes: i.MemAvailableBytes,
		DiskPath:          i.DiskPath,
		DiskTotalBytes:    i.DiskTotalBytes,
		DiskFreeBytes:     i.DiskFreeBytes,
		HostUptime:        durationpb.New(i.HostUptime),
		Load1:             i.Load1,
	}
}

// nodeRoleOf is the node's role as this stage of the product knows it: from
// the database alone. (The coordination layer will decide Active by
// consensus; then this becomes its view.)
func nodeRoleOf(d *hapb.DatabaseStatus) hapb.NodeRole {
	switch d.GetRole() {
	case hapb.DatabaseRole_DATABASE_ROLE_PRIMARY:
		return hapb.NodeRole_NODE_ROLE_ACTIVE
	case hapb.DatabaseRole_DATABASE_ROLE_STANDBY:
		return hapb.NodeRole_NODE_ROLE_STANDBY
	case hapb.DatabaseRole_DATABASE_ROLE_UNINITIALIZED:
		return hapb.NodeRole_NODE_ROLE_STANDALONE
	}
	return hapb.NodeRole_NODE_ROLE_STOPPED
}
