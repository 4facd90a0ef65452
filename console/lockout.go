package console

import (
	"sync"
	"time"
)

// lockout counts failed logins per source address and locks a source out for
// a while after too many. Its map is bounded: entries expire, and when it is
// full the stalest entry makes room. Safe for concurrent use.
type lockout struct {
	maxFailures int
	window      time.Duration // failures older than this are forgotten
	duration    time.Duration // how long a source stays locked out
	maxEntries  int
	now         func() time.Time

	mu      sync.Mutex
	sources map[string]*failures
}

type failures struct {
	count       int
	first, last time.Time
	lockedUntil time.Time
}

func newLockout(maxFailures int, window, duration time.Duration, maxEntries int, now func() time.Time) *lockout {
	return &lockout{maxFailures: maxFailures, window: window, duration: duration,
		maxEntries: maxEntries, now: now, sources: map[string]*failures{}}
}

// locked reports whether source is locked out now, and until when.
func (l *lockout) locked(source string) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.sources[source]
	if !ok {
		return false, time.Time{}
	}
	now := l.now()
	if now.Before(f.lockedUntil) {
		return true, f.lockedUntil
	}
	if l.expired(f, now) {
		delete(l.sources, source)
	}
	return false, time.Time{}
}

// fail records one failed attempt from source and reports whether this
// attempt locked it out.
func (l *lockout) fail(source string) (lockedNow bool, count int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f, ok := l.sources[source]
	if ok && l.expired(f, now) {
		delete(l.sources, source)
		ok = false
	}
	if !ok {
		l.makeRoom(now)
		f = &failures{first: now}
		l.sources[source] = f
	}
	f.count++
	f.last = now
	if f.count >= l.maxFailures && !now.Before(f.lockedUntil) {
		f.lockedUntil = now.Add(l.duration)
		f.count = 0
		f.first = now
		return true, l.maxFailures
	}
	return false, f.count
}

// succeed forgets source's failures (a successful login that was not locked out).
func (l *lockout) succeed(source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.sources[source]; ok && !l.now().Before(f.lockedUntil) {
		delete(l.sources, source)
	}
}

func (l *lockout) expired(f *failures, now time.Time) bool {
	return !now.Before(f.lockedUntil) && now.Sub(f.last) > l.window
}

// makeRoom drops expired entries when the map is full, and then the entry
// whose last failure is oldest, sparing locked-out sources while it can.
// Called with mu held.
func (l *lockout) makeRoom(now time.Time) {
	if len(l.sources) < l.maxEntries {
		return
	}
	for k, f := range l.sources {
		if l.expired(f, now) {
			delete(l.sources, k)
		}
	}
	for len(l.sources) >= l.maxEntries {
		// The stalest source that is not locked out goes first.
		var oldest string
		var at time.Time
		var oldestLocked bool
		for k, f := range l.sources {
			locked := now.Before(f.lockedUntil)
			if oldest == "" || (oldestLocked && !locked) || (locked == oldestLocked && f.last.Before(at)) {
				oldest, at, oldestLocked = k, f.last, locked
			}
		}
		delete(l.sources, oldest)
	}
}

// size is the number of sources tracked (tests).
func (l *lockout) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sources)
}
