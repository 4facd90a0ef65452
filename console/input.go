package console

import (
	"context"
	"io"
	"sync"
	"time"
)

// maxQueued bounds the bytes typed ahead of whoever reads the session.
const maxQueued = 256 << 10

// inputQueue holds the bytes a session's input pump read from the SSH
// channel. The pump is the only reader of the channel; the line editor, the
// commands' Terminal and the full-screen program all take their bytes from
// here, one at a time, so handing the terminal from one to the other loses
// nothing. Safe for concurrent use.
type inputQueue struct {
	mu        sync.Mutex
	buf       []byte
	eof       bool          // the channel's input ended
	wake      chan struct{} // closed and replaced at every change
	interrupt func()        // when set, ^C calls it instead of being queued
	lastInput time.Time
	now       func() time.Time
}

func newInputQueue(now func() time.Time) *inputQueue {
	return &inputQueue{wake: make(chan struct{}), now: now, lastInput: now()}
}

// changed wakes every waiter; called with mu held.
func (q *inputQueue) changed() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// push queues p (the pump). While a command runs (interrupt set), ^C bytes
// call interrupt instead, and what does not fit is dropped; otherwise push
// waits for room, so the client is slowed by SSH flow control.
func (q *inputQueue) push(ctx context.Context, p []byte) {
	q.mu.Lock()
	q.lastInput = q.now()
	q.mu.Unlock()
	for len(p) > 0 {
		q.mu.Lock()
		if q.interrupt != nil {
			kept := p[:0:0]
			for _, b := range p {
				if b == 0x03 {
					q.interrupt()
					continue
				}
				kept = append(kept, b)
			}
			room := maxQueued - len(q.buf)
			if len(kept) > room {
				kept = kept[:max(room, 0)]
			}
			q.buf = append(q.buf, kept...)
			q.changed()
			q.mu.Unlock()
			return
		}
		room := maxQueued - len(q.buf)
		if room > 0 {
			n := min(room, len(p))
			q.buf = append(q.buf, p[:n]...)
			p = p[n:]
			q.changed()
			q.mu.Unlock()
			continue
		}
		w := q.wake
		q.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return
		}
	}
}

// closeInput records the end of the channel's input.
func (q *inputQueue) closeInput() {
	q.mu.Lock()
	q.eof = true
	q.changed()
	q.mu.Unlock()
}

// setInterrupt sets (or, with nil, clears) what ^C does while nobody reads.
// Bytes of ^C already queued while it is set are also handed to it.
func (q *inputQueue) setInterrupt(f func()) {
	q.mu.Lock()
	q.interrupt = f
	if f != nil {
		kept := q.buf[:0]
		for _, b := range q.buf {
			if b == 0x03 {
				f()
				continue
			}
			kept = append(kept, b)
		}
		q.buf = kept
	}
	q.mu.Unlock()
}

// idleSince is when input last arrived.
func (q *inputQueue) idleSince() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.lastInput
}

// wait blocks until the queue has bytes, the input ended, ctx ended or stop
// is closed. It returns with mu held when bytes are there (ok true).
func (q *inputQueue) wait(ctx context.Context, stop <-chan struct{}) (bool, error) {
	for {
		q.mu.Lock()
		if len(q.buf) > 0 {
			return true, nil
		}
		if q.eof {
			q.mu.Unlock()
			return false, io.EOF
		}
		w := q.wake
		q.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return false, ctx.Err()
		case <-stop:
			return false, io.EOF
		}
	}
}

// take removes and returns up to n bytes; called with mu held, which it releases.
func (q *inputQueue) take(n int) []byte {
	n = min(n, len(q.buf))
	out := append([]byte(nil), q.buf[:n]...)
	q.buf = q.buf[n:]
	if len(q.buf) == 0 {
		q.buf = nil
	}
	q.changed()
	q.mu.Unlock()
	return out
}

// ReadByte takes one byte, waiting for it.
func (q *inputQueue) readByte(ctx context.Context) (byte, error) {
	if ok, err := q.wait(ctx, nil); !ok {
		return 0, err
	}
	return q.take(1)[0], nil
}

// tryByte takes one byte if one is queued now.
func (q *inputQueue) tryByte() (byte, bool) {
	q.mu.Lock()
	if len(q.buf) == 0 {
		q.mu.Unlock()
		return 0, false
	}
	return q.take(1)[0], true
}

// nextToken takes one keystroke: an escape sequence whole (as far as it is
// queued), else one UTF-8 character (or one byte that is not one). Called
// with mu held, which it releases.
func (q *inputQueue) nextToken() []byte {
	b := q.buf
	n := 1
	switch {
	case b[0] == 0x1b && len(b) > 1 && (b[1] == '[' || b[1] == 'O'):
		n = 2
		if b[1] == '[' {
			for n < len(b) && b[n] >= 0x20 && b[n] <= 0x3f { // parameters and intermediates
				n++
			}
		}
		if n < len(b) && b[n] >= 0x40 && b[n] <= 0x7e {
			n++
		}
	case b[0] == 0x1b && len(b) > 1 && b[1] != 0x1b && b[1] >= 0x20:
		n = 2 // alt+key
	case b[0] >= 0xc0:
		n = utf8Len(b)
	}
	return q.take(n)
}

func utf8Len(b []byte) int {
	want := 0
	switch {
	case b[0]&0xe0 == 0xc0:
		want = 2
	case b[0]&0xf0 == 0xe0:
		want = 3
	case b[0]&0xf8 == 0xf0:
		want = 4
	default:
		return 1
	}
	if len(b) < want {
		return 1
	}
	for i := 1; i < want; i++ {
		if b[i]&0xc0 != 0x80 {
			return 1
		}
	}
	return want
}
