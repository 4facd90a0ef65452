package hactl

import (
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/hapair/hapair/hactl/hapb"
)

// hub holds the latest snapshot and wakes every watcher when it changes.
// One sampler publishes; any number of watchers read. A slow watcher never
// blocks the sampler: it skips to the latest snapshot. Safe for concurrent use.
type hub struct {
	mu      sync.Mutex
	latest  *hapb.Snapshot
	changed chan struct{} // closed and replaced at every change
}

func newHub() *hub {
	return &hub{latest: &hapb.Snapshot{}, changed: make(chan struct{})}
}

// current returns the latest snapshot (never to be modified) and a channel
// that is closed when a newer one is published.
func (h *hub) current() (*hapb.Snapshot, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.latest, h.changed
}

// publish stores s as the latest snapshot. When its content differs from the
// previous one (timestamps aside) it gets the next seq and changed_at, and
// watchers are woken; otherwise only sampled_at moves on. It reports whether
// the content changed.
func (h *hub) publish(s *hapb.Snapshot) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.latest
	changed := prev.GetSeq() == 0 || !sameContent(prev, s)
	if changed {
		s.Seq = prev.GetSeq() + 1
		s.ChangedAt = s.GetSampledAt()
	} else {
		s.Seq = prev.GetSeq()
		s.ChangedAt = prev.GetChangedAt()
	}
	h.latest = s
	if changed {
		close(h.changed)
		h.changed = make(chan struct{})
	}
	return changed
}

// sameContent compares two snapshots without their sampling timestamps.
func sameContent(a, b *hapb.Snapshot) bool {
	strip := func(s *hapb.Snapshot) *hapb.Snapshot {
		c := proto.Clone(s).(*hapb.Snapshot)
		c.Seq, c.SampledAt, c.ChangedAt = 0, nil, nil
		if c.Local != nil {
			c.Local.SampledAt = nil
		}
		if c.Peer != nil {
			c.Peer.LastContact = nil
			if c.Peer.Status != nil {
				c.Peer.Status.SampledAt = nil
			}
		}
		return c
	}
	return proto.Equal(strip(a), strip(b))
}
