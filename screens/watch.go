package screens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/hapair/hapair/hactl/hapb"
)

// Backoff bounds between two Watch attempts after the stream failed.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 3 * time.Second
)

// maxPending bounds how many unread snapshots the feed keeps for a slow
// program; older ones are dropped (the newest always stays).
const maxPending = 32

// update is one thing the watcher learned: a snapshot, or that the agent
// does not answer (err set, snap nil).
type update struct {
	snap *hapb.Snapshot
	err  error
	at   time.Time // when the dashboard received it (Options.Now)
}

// updatesMsg carries every update that arrived since the program last read
// the feed, oldest first.
type updatesMsg struct{ items []update }

// feed is the mailbox between the watcher goroutine and the program: the
// watcher never blocks on a slow program, and the program reads everything
// pending at once (bounded by maxPending). Safe for concurrent use.
type feed struct {
	mu      sync.Mutex
	pending []update
	notify  chan struct{} // capacity 1: "something is pending"
}

func newFeed() *feed { return &feed{notify: make(chan struct{}, 1)} }

func (f *feed) put(u update) {
	f.mu.Lock()
	f.pending = append(f.pending, u)
	if len(f.pending) > maxPending {
		f.pending = append(f.pending[:0], f.pending[len(f.pending)-maxPending:]...)
	}
	f.mu.Unlock()
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

func (f *feed) take() []update {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.pending
	f.pending = nil
	return out
}

// wait returns a Cmd that blocks until updates are pending (or ctx ends, in
// which case it yields nil and the chain stops).
func (f *feed) wait(ctx context.Context) tea.Cmd {
	return func() tea.Msg {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-f.notify:
				if items := f.take(); len(items) > 0 {
					return updatesMsg{items: items}
				}
			}
		}
	}
}

// watch follows the agent's Watch stream until ctx ends, putting every
// snapshot into f. When the stream fails it reports the error, waits a
// backoff that doubles from minBackoff up to maxBackoff, and subscribes
// again; a snapshot received resets the backoff.
func watch(ctx context.Context, agent hapb.AgentClient, f *feed, now func() time.Time) {
	backoff := minBackoff
	for ctx.Err() == nil {
		err := watchOnce(ctx, agent, f, now, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			return
		}
		f.put(update{err: err, at: now()})
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// watchOnce runs one subscription and returns why it ended.
func watchOnce(ctx context.Context, agent hapb.AgentClient, f *feed, now func() time.Time, got func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agent.Watch(sctx, &hapb.WatchRequest{})
	if err != nil {
		return fmt.Errorf("watch the agent: %w", err)
	}
	for {
		s, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("watch the agent: the stream ended")
			}
			return fmt.Errorf("watch the agent: %w", err)
		}
		got()
		f.put(update{snap: s, at: now()})
	}
}
