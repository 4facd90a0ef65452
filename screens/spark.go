package screens

import (
	"strings"
	"time"
)

// sparkWindow is the span a heartbeat sparkline covers.
const sparkWindow = time.Minute

// maxSamples bounds each link's ring of RTT samples (snapshots arrive about
// five times a second, so a minute fits with room to spare).
const maxSamples = 512

// sample is one link's state as one snapshot reported it.
type sample struct {
	at        time.Time
	rtt       time.Duration
	connected bool
}

// ring keeps the newest maxSamples samples of one link, oldest first.
type ring struct {
	buf   [maxSamples]sample
	start int
	n     int
}

func (r *ring) add(s sample) {
	if r.n < maxSamples {
		r.buf[(r.start+r.n)%maxSamples] = s
		r.n++
		return
	}
	r.buf[r.start] = s
	r.start = (r.start + 1) % maxSamples
}

func (r *ring) at(i int) sample { return r.buf[(r.start+i)%maxSamples] }

// spark draws the samples of the last sparkWindow before now in width
// columns, oldest on the left. Each column shows the highest RTT of its
// slice of time on a scale of the window's highest RTT; a slice with a
// disconnected sample shows broken, one without samples is blank.
func (r *ring) spark(now time.Time, width int, levels []rune, broken rune) string {
	if width <= 0 {
		return ""
	}
	type col struct {
		max    time.Duration
		any    bool
		broken bool
	}
	cols := make([]col, width)
	from := now.Add(-sparkWindow)
	var top time.Duration
	for i := 0; i < r.n; i++ {
		s := r.at(i)
		if s.at.Before(from) || s.at.After(now) {
			continue
		}
		c := int(int64(s.at.Sub(from)) * int64(width) / int64(sparkWindow))
		if c >= width {
			c = width - 1
		}
		cols[c].any = true
		if !s.connected {
			cols[c].broken = true
			continue
		}
		cols[c].max = max(cols[c].max, s.rtt)
		top = max(top, s.rtt)
	}
	var b strings.Builder
	for _, c := range cols {
		switch {
		case !c.any:
			b.WriteByte(' ')
		case c.broken:
			b.WriteRune(broken)
		case top <= 0:
			b.WriteRune(levels[0])
		default:
			l := int(int64(c.max) * int64(len(levels)-1) / int64(top))
			b.WriteRune(levels[l])
		}
	}
	return b.String()
}
