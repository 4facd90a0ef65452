package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// FSM applies the replicated log to a State. raft calls Apply, Snapshot and
// Restore from one goroutine; State and OnApply may be called from any.
type FSM struct {
	mu    sync.Mutex
	state *State
	// onApply, if set, is called after every applied entry (outside the lock).
	onApply func()
}

// NewFSM returns an empty state machine; onApply may be nil.
func NewFSM(onApply func()) *FSM {
	return &FSM{state: &State{}, onApply: onApply}
}

// State returns a copy of the current state.
func (f *FSM) State() *State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.Clone()
}

// Apply implements raft.FSM. It returns nil or the error that rejected the
// command (seen by the proposer through ApplyFuture.Response).
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := DecodeCommand(l.Data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	next := f.state.Clone()
	err = Apply(next, c)
	if err == nil {
		f.state = next
	}
	f.mu.Unlock()
	if f.onApply != nil {
		f.onApply()
	}
	return err
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(f.state)
	if err != nil {
		return nil, fmt.Errorf("snapshot cluster state: %w", err)
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	var s State
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("restore cluster state: %w", err)
	}
	f.mu.Lock()
	f.state = &s
	f.mu.Unlock()
	if f.onApply != nil {
		f.onApply()
	}
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist cluster state: %w", err)
	}
	return sink.Close()
}

func (s snapshot) Release() {}
