package view

import "strings"

// Text accumulates the lines of a plain-ASCII report no wider than Width:
// the layout that `hactl status` and the console's ha_status share. Its zero
// value is ready to use.
type Text struct {
	b strings.Builder
}

// String returns what was written.
func (t *Text) String() string { return t.b.String() }

// Len is how many bytes were written so far (for Recolour).
func (t *Text) Len() int { return t.b.Len() }

// Blank writes an empty line.
func (t *Text) Blank() { t.b.WriteByte('\n') }

// Wrapped writes s, the first line indented by indent, wrapped at Width with
// continuation lines indented by hang.
func (t *Text) Wrapped(indent, hang int, s string) {
	t.lines(WrapLine(strings.Repeat(" ", indent)+s, hang))
}

func (t *Text) lines(ls []string) {
	for _, l := range ls {
		t.b.WriteString(l)
		t.b.WriteByte('\n')
	}
}

// Fields writes one logical line made of segments, indented by indent. Each
// segment after the first carries its own leading separator. Segments fill
// the line up to Width; one that does not fit starts a new line indented by
// hang, without its leading spaces (a leading comma stays on the line
// before). A segment too wide even for a fresh line is broken at spaces, or
// anywhere if it has none.
func (t *Text) Fields(indent, hang int, segs ...string) {
	if len(segs) == 0 {
		return
	}
	cur := strings.Repeat(" ", indent) + segs[0]
	for _, seg := range segs[1:] {
		if len(cur)+len(strings.TrimRight(seg, " ")) <= Width {
			cur += seg
			continue
		}
		if strings.HasPrefix(seg, ",") && len(cur) < Width {
			cur += ","
			seg = seg[1:]
		}
		t.Wrapped(0, hang, cur)
		cur = strings.Repeat(" ", hang) + strings.TrimLeft(seg, " ")
	}
	t.Wrapped(0, hang, cur)
}

// Recolour rewrites every non-empty line written since byte offset start
// (a Len reading) as f(line), for a caller that colours a block.
func (t *Text) Recolour(start int, f func(line string) string) {
	all := t.b.String()
	t.b.Reset()
	t.b.WriteString(all[:start])
	for _, l := range strings.SplitAfter(all[start:], "\n") {
		if body := strings.TrimSuffix(l, "\n"); body != "" {
			t.b.WriteString(f(body) + l[len(body):])
		} else {
			t.b.WriteString(l)
		}
	}
}

// WrapLine breaks an ASCII line into lines no wider than Width. It breaks at
// the last space that fits, or mid-word when a word alone is too wide;
// continuation lines are indented by hang (at most Width/2). Trailing spaces
// are dropped; an empty line stays one empty line.
func WrapLine(line string, hang int) []string {
	line = strings.TrimRight(line, " ")
	hang = min(hang, Width/2)
	pad := strings.Repeat(" ", hang)
	var out []string
	for len(line) > Width {
		// Leading indentation is not a place to break.
		start := len(line) - len(strings.TrimLeft(line, " "))
		cut := strings.LastIndexByte(line[:Width+1], ' ')
		rest := cut + 1
		if cut <= start {
			cut, rest = Width, Width // no space that fits: break the word
		}
		out = append(out, strings.TrimRight(line[:cut], " "))
		line = pad + strings.TrimLeft(line[rest:], " ")
	}
	if strings.TrimSpace(line) != "" || len(out) == 0 {
		out = append(out, line)
	}
	return out
}
