package cluster

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func formed() *State {
	s := &State{}
	err := Apply(s, Command{Type: CmdInit, Node: "primary-node", Time: t0, Init: &State{
		ID: "c1", Name: "appliance", VIP: "198.18.0.12",
		Members: []Member{
			{Name: "secondary-node", Kind: KindData, PublicAddr: "198.18.0.10"},
			{Name: "primary-node", Kind: KindData, PublicAddr: "198.18.0.5"},
			{Name: "witness", Kind: KindWitness, PublicAddr: "198.18.0.20"},
		},
		Settings: Settings{ReplicationMode: ModeAsync},
	}})
	if err != nil {
		panic(err)
	}
	return s
}

func active(s *State, node string) *State {
	if err := Apply(s, Command{Type: CmdPromoted, Node: node, Epoch: s.Epoch + 1, Time: t0}); err != nil {
		panic(err)
	}
	return s
}

func TestApply(t *testing.T) {
	tests := []struct {
		name       string
		state      func() *State
		cmd        Command
		wantErr    error
		check      func(*testing.T, *State)
		wantDetail string
	}{
		{
			name: "init sorts members and records formation", state: func() *State { return &State{} },
			cmd: Command{Type: CmdInit, Node: "primary-node", Time: t0, Init: &State{ID: "c1", Name: "x",
				Members: []Member{{Name: "b", Kind: KindData}, {Name: "a", Kind: KindData}}}},
			check: func(t *testing.T, s *State) {
				if s.Members[0].Name != "a" {
					t.Errorf("members not sorted: %v", s.Members)
				}
			},
			wantDetail: "cluster x formed with a, b",
		},
		{name: "init twice is refused", state: formed, cmd: Command{Type: CmdInit, Init: &State{ID: "c2"}}, wantErr: errAny},
		{name: "nothing before init", state: func() *State { return &State{} }, cmd: Command{Type: CmdMaintenance, On: true}, wantErr: ErrNotInit},
		{
			name: "first promotion", state: formed, cmd: Command{Type: CmdPromoted, Node: "primary-node", Epoch: 1, Time: t0},
			check: func(t *testing.T, s *State) {
				if s.Active != "primary-node" || s.Epoch != 1 {
					t.Errorf("active %q epoch %d", s.Active, s.Epoch)
				}
			},
			wantDetail: "primary-node is Active (epoch 1)",
		},
		{
			name: "failover names the previous active", state: func() *State { return active(formed(), "primary-node") },
			cmd:        Command{Type: CmdPromoted, Node: "secondary-node", Epoch: 2, Time: t0},
			wantDetail: "secondary-node is Active (epoch 2), was primary-node",
		},
		{name: "stale epoch refused", state: func() *State { return active(formed(), "primary-node") },
			cmd: Command{Type: CmdPromoted, Node: "secondary-node", Epoch: 1}, wantErr: ErrStaleEpoch},
		{name: "witness never active", state: formed, cmd: Command{Type: CmdPromoted, Node: "witness", Epoch: 1}, wantErr: ErrUnknownMember},
		{name: "stranger never active", state: formed, cmd: Command{Type: CmdPromoted, Node: "mallory", Epoch: 1}, wantErr: ErrUnknownMember},
		{
			name: "handover from the active", state: func() *State { return active(formed(), "primary-node") },
			cmd: Command{Type: CmdHandover, Node: "primary-node", Handover: &Handover{From: "primary-node", To: "secondary-node", FinalLSN: 0x3000148, Epoch: 1}},
			check: func(t *testing.T, s *State) {
				if s.Handover == nil || s.Handover.To != "secondary-node" {
					t.Errorf("handover %v", s.Handover)
				}
			},
			wantDetail: "primary-node hands over to secondary-node at LSN 0/3000148",
		},
		{name: "handover from a node that is not active", state: func() *State { return active(formed(), "primary-node") },
			cmd:     Command{Type: CmdHandover, Handover: &Handover{From: "secondary-node", To: "primary-node", Epoch: 1}},
			wantErr: ErrStaleEpoch},
		{
			name: "promotion clears the handover", state: func() *State {
				s := active(formed(), "primary-node")
				s.Handover = &Handover{From: "primary-node", To: "secondary-node", Epoch: 1}
				return s
			},
			cmd:   Command{Type: CmdPromoted, Node: "secondary-node", Epoch: 2},
			check: func(t *testing.T, s *State) { requireNil(t, s.Handover) },
		},
		{
			name: "operator stops a node", state: formed, cmd: Command{Type: CmdStopped, Node: "primary-node", On: true},
			check: func(t *testing.T, s *State) {
				if m, _ := s.Member("primary-node"); !m.Stopped {
					t.Error("not stopped")
				}
			},
			wantDetail: "cluster services stopped on primary-node",
		},
		{name: "maintenance on", state: formed, cmd: Command{Type: CmdMaintenance, On: true},
			wantDetail: "maintenance mode on: automatic failover paused"},
		{
			name: "teardown, then only events", state: formed, cmd: Command{Type: CmdTeardown, Node: "primary-node"},
			check: func(t *testing.T, s *State) {
				if err := Apply(s, Command{Type: CmdMaintenance, On: true}); !errors.Is(err, ErrTornDown) {
					t.Errorf("after teardown: %v, want ErrTornDown", err)
				}
			},
			wantDetail: "cluster destroyed by primary-node",
		},
		{name: "unknown command", state: formed, cmd: Command{Type: "reboot"}, wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.state()
			before := s.Clone()
			err := Apply(s, tc.cmd)
			switch {
			case tc.wantErr == errAny && err == nil, tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("Apply: %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Apply: %v", err)
			}
			if err != nil {
				if s.Epoch != before.Epoch || s.Active != before.Active || len(s.Events) != len(before.Events) {
					t.Errorf("a rejected command changed the state")
				}
				return
			}
			if tc.check != nil {
				tc.check(t, s)
			}
			if tc.wantDetail != "" {
				last := s.Events[len(s.Events)-1]
				if !strings.HasPrefix(last.Detail, tc.wantDetail) {
					t.Errorf("last event %q, want %q", last.Detail, tc.wantDetail)
				}
			}
		})
	}
}

var errAny = errors.New("any error")

func requireNil(t *testing.T, h *Handover) {
	t.Helper()
	if h != nil {
		t.Errorf("handover %v, want none", h)
	}
}

func TestEventsAreBounded(t *testing.T) {
	s := formed()
	for i := 0; i < MaxEvents+50; i++ {
		if err := Apply(s, Command{Type: CmdEvent, Kind: "k", Detail: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.Events) != MaxEvents || s.Events[len(s.Events)-1].Seq != uint64(MaxEvents+51) {
		t.Errorf("%d events, last seq %d", len(s.Events), s.Events[len(s.Events)-1].Seq)
	}
}

func TestFSMSnapshotRestore(t *testing.T) {
	f := NewFSM(nil)
	apply := func(c Command) {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Type: raft.LogCommand, Data: b}); r != nil {
			t.Fatalf("apply %s: %v", c.Type, r)
		}
	}
	apply(Command{Type: CmdInit, Node: "a", Time: t0, Init: &State{ID: "c1", Name: "x", Members: []Member{{Name: "a", Kind: KindData}}}})
	apply(Command{Type: CmdPromoted, Node: "a", Epoch: 1, Time: t0})
	if r := f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte("garbage")}); r == nil {
		t.Fatal("garbage log entry accepted")
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if s := g.State(); s.Active != "a" || s.Epoch != 1 || len(s.Events) != 2 {
		t.Errorf("restored %+v", s)
	}
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }
