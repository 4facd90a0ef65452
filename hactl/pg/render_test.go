package pg

import (
	"strings"
	"testing"
)

func TestRenderServerConf(t *testing.T) {
	base := serverConf{
		NodeName: "primary-node", ListenAddr: "198.18.0.5", Port: 5432, SocketDir: "/var/lib/hapair/pg/run",
		MaxSlotWALKeepSize: "1GB", WALKeepSize: "256MB",
	}
	standby := base
	standby.Standby = &standbyConf{
		Upstream: Upstream{Host: "198.18.0.10", Port: 5432, SlotName: "hapair_primary_node"},
		PassFile: "/var/lib/hapair/pg/pgpass",
	}
	quoted := base
	quoted.NodeName = "it's"
	tests := []struct {
		name    string
		in      serverConf
		want    []string
		wantNot []string
	}{
		{
			name: "primary replicates and is bounded",
			in:   base,
			want: []string{
				"listen_addresses = '198.18.0.5'\n", "port = 5432\n", "wal_level = replica\n",
				"hot_standby = on\n", "max_wal_senders = 10\n", "max_replication_slots = 10\n",
				"wal_log_hints = on\n", "max_slot_wal_keep_size = '1GB'\n",
				"unix_socket_directories = '/var/lib/hapair/pg/run'\n", "cluster_name = 'primary-node'\n",
			},
			wantNot: []string{"primary_conninfo", "primary_slot_name"},
		},
		{
			name: "standby streams through its slot with a passfile",
			in:   standby,
			want: []string{
				`primary_conninfo = 'host=''198.18.0.10'' port=''5432'' user=''hapair_replicator'' passfile=''/var/lib/hapair/pg/pgpass'' application_name=''primary-node''`,
				"primary_slot_name = 'hapair_primary_node'\n",
			},
			wantNot: []string{"password="},
		},
		{
			name: "quotes are doubled",
			in:   quoted,
			want: []string{"cluster_name = 'it''s'\n"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := renderServerConf(tc.in)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in:\n%s", w, got)
				}
			}
		})
	}
}

func TestRenderHBA(t *testing.T) {
	tests := []struct {
		name       string
		peers      []string
		clientNets []string
		want       []string
		wantNot    []string
	}{
		{
			name:  "peer only, no clients",
			peers: []string{"169.254.0.2", "198.18.0.10"},
			want: []string{
				"local   all          all   peer map=hapair\n",
				"host    replication  hapair_replicator  169.254.0.2/32  scram-sha-256\n",
				"host    replication  hapair_replicator  198.18.0.10/32  scram-sha-256\n",
				"host    postgres     hapair_replicator  198.18.0.10/32  scram-sha-256\n",
			},
			wantNot: []string{"trust", "0.0.0.0/0", "host    all          all"},
		},
		{
			name:       "clients by password, replication role rejected from them",
			clientNets: []string{"198.18.0.0/24"},
			want: []string{
				"host    all          hapair_replicator  198.18.0.0/24  reject\n",
				"host    all          all   198.18.0.0/24  scram-sha-256\n",
			},
			wantNot: []string{"replication  hapair_replicator"},
		},
		{
			name:  "IPv6 peer gets a /128",
			peers: []string{"fd00::2"},
			want:  []string{"fd00::2/128"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := renderHBA(tc.peers, tc.clientNets)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in:\n%s", w, got)
				}
			}
		})
	}
}

func TestRenderIdentAndPgpass(t *testing.T) {
	if got, want := renderIdent([]string{"root", "postgres", "root", ""}), "hapair  root  postgres\nhapair  postgres  postgres\n"; !strings.HasSuffix(got, want) {
		t.Errorf("ident map:\n%s\nwant it to end with:\n%s", got, want)
	}
	if got, want := renderPgpass(Credential{User: "u", Password: `a:b\c`}), "*:*:*:u:a\\:b\\\\c\n"; got != want {
		t.Errorf("pgpass %q, want %q", got, want)
	}
}

func TestConninfoQuoting(t *testing.T) {
	got := conninfo([][2]string{{"host", "h"}, {"passfile", `/x/it's\here`}})
	if want := `host='h' passfile='/x/it\'s\\here'`; got != want {
		t.Errorf("conninfo %q, want %q", got, want)
	}
}

func TestParseLSN(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    LSN
		wantErr bool
	}{
		{name: "zero", in: "0/0", want: 0},
		{name: "high and low", in: "16/B374D848", want: 0x16B374D848},
		{name: "max", in: "FFFFFFFF/FFFFFFFF", want: LSN(^uint64(0))},
		{name: "no slash", in: "16B374D848", wantErr: true},
		{name: "empty half", in: "16/", wantErr: true},
		{name: "not hex", in: "zz/00", wantErr: true},
		{name: "too long", in: "123456789/0", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLSN(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseLSN(%q) error %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("ParseLSN(%q) = %v, want %v", tc.in, got, tc.want)
			}
			if err == nil && got.String() != tc.in && tc.in != "0/0" {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestSlotNameAndValidate(t *testing.T) {
	if got := SlotName("Secondary-Node.1"); got != "hapair_secondary_node_1" {
		t.Errorf("SlotName = %q", got)
	}
	cfg := DefaultConfig()
	cfg.NodeName = "Bad Name"
	cfg.BaseDir = "relative"
	cfg.Port = 0
	cfg.PeerAddrs = []string{"not-an-ip"}
	cfg.MaxSlotWALKeepSize = "-1"
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, w := range []string{"node name", "base dir", "port 0", "peer address", "max_slot_wal_keep_size"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if err := (Upstream{Host: "h", Port: 1, SlotName: "bad-slot"}).Validate(); err == nil {
		t.Error("Upstream.Validate accepted a slot name with '-'")
	}
}

func TestTimelineOfWalfile(t *testing.T) {
	if tl, err := timelineOfWalfile("000000020000000000000003"); err != nil || tl != 2 {
		t.Errorf("timeline = %d, %v; want 2", tl, err)
	}
	if _, err := timelineOfWalfile("garbage"); err == nil {
		t.Error("timelineOfWalfile accepted garbage")
	}
}

func TestParseControlData(t *testing.T) {
	out := "pg_control version number:            1300\nDatabase cluster state:               shut down\nLatest checkpoint location:           0/3000148\nLatest checkpoint's TimeLineID:       2\n"
	cd, err := parseControlData(out)
	if err != nil || cd.State != "shut down" || cd.CheckpointLSN != 0x3000148 || cd.Timeline != 2 {
		t.Errorf("parseControlData = %+v, %v", cd, err)
	}
	if _, err := parseControlData("garbage"); err == nil {
		t.Error("parseControlData accepted garbage")
	}
}
