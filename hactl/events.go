package hactl

import (
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
)

// eventLog is this node's bounded event history. Safe for concurrent use.
// (The replicated, cluster-wide history arrives with the coordination layer;
// until then every node keeps what it saw itself.)
type eventLog struct {
	mu     sync.Mutex
	limit  int
	seq    uint64
	events []*hapb.Event // oldest first
	notify func()
}

func newEventLog(limit int, notify func()) *eventLog {
	return &eventLog{limit: limit, notify: notify}
}

// add records an event and tells the sampler something changed.
func (l *eventLog) add(node, kind, detail string) {
	l.mu.Lock()
	l.seq++
	l.events = append(l.events, &hapb.Event{Seq: l.seq, Time: timestamppb.New(time.Now()), Node: node, Kind: kind, Detail: detail})
	if over := len(l.events) - l.limit; over > 0 {
		l.events = append(l.events[:0:0], l.events[over:]...)
	}
	l.mu.Unlock()
	if l.notify != nil {
		l.notify()
	}
}

// newest returns up to n events, newest first (n <= 0: all).
func (l *eventLog) newest(n int) []*hapb.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= 0 || n > len(l.events) {
		n = len(l.events)
	}
	out := make([]*hapb.Event, 0, n)
	for i := len(l.events) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, l.events[i])
	}
	return out
}
