package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hapair/hapair/commands"
)

// maxLineRunes bounds a typed line; what is typed beyond it is dropped and
// the line refused at Enter.
const maxLineRunes = 4096

// errLineTooLong is returned for a line longer than maxLineRunes.
var errLineTooLong = fmt.Errorf("line too long (more than %d characters); it was discarded", maxLineRunes)

// editor is the ">>" line editor: it reads keystrokes from the session's
// input queue and echoes to the session's terminal. Keys: printable
// characters insert; Left/Right, Home/End, ^A/^E move; Backspace, Delete,
// ^D (on a non-empty line) delete; ^U deletes to the start, ^K to the end,
// ^W the word before the cursor; Up/Down walk the history; Tab completes;
// ^L redraws; Enter submits; ^C abandons the line (ErrInterrupted); ^D on an
// empty line is the end (io.EOF). Other control bytes are ignored and never
// enter a line.
type editor struct {
	q        *inputQueue
	w        io.Writer
	width    func() int
	hist     *history // nil: no history
	complete func(line string) []string

	line      []rune
	pos       int
	cursorRow int // rows the terminal cursor is below the prompt's first row
	prompt    string
	echo      bool
	tooLong   bool
}

func (e *editor) readLine(ctx context.Context, prompt string, echo bool) (string, error) {
	e.line, e.pos, e.cursorRow, e.prompt, e.echo, e.tooLong = nil, 0, 0, prompt, echo, false
	histIdx, draft := 0, ""
	if e.hist != nil {
		histIdx = e.hist.len()
	}
	e.write(prompt)
	lastCR := false
	for {
		b, err := e.q.readByte(ctx)
		if err != nil {
			e.write("\r\n")
			return "", err
		}
		if lastCR && b == '\n' {
			lastCR = false
			continue
		}
		lastCR = b == '\r'
		switch b {
		case '\r', '\n':
			e.moveEnd()
			e.write("\r\n")
			if e.tooLong {
				return "", errLineTooLong
			}
			return string(e.line), nil
		case 0x03: // ^C
			e.moveEnd()
			e.write("^C\r\n")
			return "", commands.ErrInterrupted
		case 0x04: // ^D
			if len(e.line) == 0 {
				e.write("\r\n")
				return "", io.EOF
			}
			e.deleteAt(e.pos)
		case 0x01: // ^A
			e.pos = 0
		case 0x05: // ^E
			e.pos = len(e.line)
		case 0x02: // ^B
			e.pos = max(e.pos-1, 0)
		case 0x06: // ^F
			e.pos = min(e.pos+1, len(e.line))
		case 0x7f, 0x08: // Backspace
			if e.pos > 0 {
				e.pos--
				e.deleteAt(e.pos)
			}
		case 0x15: // ^U
			e.line = append([]rune(nil), e.line[e.pos:]...)
			e.pos = 0
		case 0x0b: // ^K
			e.line = e.line[:e.pos]
		case 0x17: // ^W
			start := e.pos
			for start > 0 && e.line[start-1] == ' ' {
				start--
			}
			for start > 0 && e.line[start-1] != ' ' {
				start--
			}
			e.line = append(e.line[:start], e.line[e.pos:]...)
			e.pos = start
		case 0x0c: // ^L
			e.write("\x1b[H\x1b[2J")
			e.cursorRow = 0
		case '\t':
			if e.complete != nil && e.echo {
				e.tab()
			}
		case 0x1b:
			switch e.escape() {
			case keyUp:
				if e.hist != nil && histIdx > 0 {
					if histIdx == e.hist.len() {
						draft = string(e.line)
					}
					histIdx--
					e.setLine(e.hist.at(histIdx))
				}
			case keyDown:
				if e.hist != nil && histIdx < e.hist.len() {
					histIdx++
					if histIdx == e.hist.len() {
						e.setLine(draft)
					} else {
						e.setLine(e.hist.at(histIdx))
					}
				}
			case keyLeft:
				e.pos = max(e.pos-1, 0)
			case keyRight:
				e.pos = min(e.pos+1, len(e.line))
			case keyHome:
				e.pos = 0
			case keyEnd:
				e.pos = len(e.line)
			case keyDelete:
				e.deleteAt(e.pos)
			}
		default:
			if b < 0x20 {
				continue // other control bytes never enter a line
			}
			r := rune(b)
			if b >= 0x80 {
				r = e.readRune(b)
			}
			if len(e.line) >= maxLineRunes {
				e.tooLong = true
				continue
			}
			e.line = append(e.line, 0)
			copy(e.line[e.pos+1:], e.line[e.pos:])
			e.line[e.pos] = r
			e.pos++
			if !e.echo {
				continue
			}
			if e.pos == len(e.line) && !e.wraps() {
				e.write(string(r)) // the common case: no redraw
				continue
			}
		}
		e.refresh()
	}
}

// readRune completes a UTF-8 sequence that starts with b from what is
// queued; invalid input becomes U+FFFD.
func (e *editor) readRune(b byte) rune {
	buf := []byte{b}
	for i := 1; i < utf8Len([]byte{b, 0x80, 0x80, 0x80}); i++ {
		c, ok := e.q.tryByte()
		if !ok {
			break
		}
		buf = append(buf, c)
		if c&0xc0 != 0x80 {
			break
		}
	}
	r, n := utf8.DecodeRune(buf)
	if n != len(buf) {
		return utf8.RuneError
	}
	return r
}

type key int

const (
	keyNone key = iota
	keyUp
	keyDown
	keyLeft
	keyRight
	keyHome
	keyEnd
	keyDelete
)

// escape reads the rest of an escape sequence that is already queued (a
// terminal sends it whole) and names the key. A lone Esc is ignored.
func (e *editor) escape() key {
	b, ok := e.q.tryByte()
	if !ok {
		return keyNone
	}
	switch b {
	case 'O':
		c, ok := e.q.tryByte()
		if !ok {
			return keyNone
		}
		return finalKey(c, "")
	case '[':
		var params []byte
		for i := 0; i < 16; i++ {
			c, ok := e.q.tryByte()
			if !ok {
				return keyNone
			}
			if c >= 0x40 && c <= 0x7e {
				return finalKey(c, string(params))
			}
			params = append(params, c)
		}
	}
	return keyNone
}

func finalKey(c byte, params string) key {
	switch c {
	case 'A':
		return keyUp
	case 'B':
		return keyDown
	case 'C':
		return keyRight
	case 'D':
		return keyLeft
	case 'H':
		return keyHome
	case 'F':
		return keyEnd
	case '~':
		switch params {
		case "1", "7":
			return keyHome
		case "4", "8":
			return keyEnd
		case "3":
			return keyDelete
		}
	}
	return keyNone
}

func (e *editor) deleteAt(i int) {
	if i < len(e.line) {
		e.line = append(e.line[:i], e.line[i+1:]...)
	}
}

func (e *editor) setLine(s string) {
	e.line = []rune(s)
	e.pos = len(e.line)
}

func (e *editor) write(s string) {
	_, _ = io.WriteString(e.w, s)
}

func (e *editor) cols() int {
	if e.width != nil {
		if w := e.width(); w > 0 {
			return w
		}
	}
	return 80
}

// wraps reports whether the end of the line reaches the terminal's width.
func (e *editor) wraps() bool {
	return (utf8.RuneCountInString(e.prompt)+len(e.line))%e.cols() == 0
}

func (e *editor) shown() string {
	if e.echo {
		return string(e.line)
	}
	return ""
}

// refresh redraws the prompt and the line from the prompt's first row and
// puts the cursor at pos.
func (e *editor) refresh() {
	w := e.cols()
	var b strings.Builder
	if e.cursorRow > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", e.cursorRow)
	}
	b.WriteString("\r\x1b[J")
	b.WriteString(e.prompt)
	shown := e.shown()
	b.WriteString(shown)
	plen := utf8.RuneCountInString(e.prompt)
	total := plen + utf8.RuneCountInString(shown)
	endRow := total / w
	if total > 0 && total%w == 0 {
		b.WriteString("\r\n") // leave the pending wrap for a real new row
	}
	target := plen
	if e.echo {
		target += e.pos
	}
	tRow, tCol := target/w, target%w
	if up := endRow - tRow; up > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", up)
	}
	b.WriteString("\r")
	if tCol > 0 {
		fmt.Fprintf(&b, "\x1b[%dC", tCol)
	}
	e.cursorRow = tRow
	e.write(b.String())
}

// moveEnd puts the cursor after the line's end, ready for a new line.
func (e *editor) moveEnd() {
	if e.pos != len(e.line) && e.echo {
		e.pos = len(e.line)
		e.refresh()
	}
}

// tab completes the word before the cursor: one candidate replaces it (and
// a space follows), several extend it to their common prefix or, when that
// adds nothing, are listed under the line.
func (e *editor) tab() {
	before := string(e.line[:e.pos])
	cands := e.complete(before)
	if len(cands) == 0 {
		return
	}
	start := strings.LastIndexAny(before, " \t") + 1
	word := before[start:]
	repl := cands[0]
	if len(cands) > 1 {
		repl = commonPrefix(cands)
		if len(repl) <= len(word) {
			e.moveEnd()
			e.write("\r\n" + strings.Join(cands, "  ") + "\r\n")
			e.cursorRow = 0
			return
		}
	} else {
		repl += " "
	}
	newBefore := []rune(before[:start] + repl)
	e.line = append(newBefore, e.line[e.pos:]...)
	e.pos = len(newBefore)
	if len(e.line) > maxLineRunes {
		e.line = e.line[:maxLineRunes]
		e.pos = min(e.pos, len(e.line))
	}
}

func commonPrefix(s []string) string {
	p := s[0]
	for _, x := range s[1:] {
		for !strings.HasPrefix(x, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

// history is one user's command history: kept in memory for the session and
// appended to the user's history file, bounded to maxHistory entries.
type history struct {
	mu      sync.Mutex
	path    string
	entries []string
}

const maxHistory = 500

// loadHistory reads path (missing: empty), keeping the newest maxHistory
// lines, and rewrites the file when it grew well beyond that.
func loadHistory(path string) *history {
	h := &history{path: path}
	f, err := os.Open(path)
	if err != nil {
		return h
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 4<<20))
	sc.Buffer(make([]byte, 0, 8192), maxLineRunes*4+16)
	n := 0
	for sc.Scan() {
		n++
		if line := sc.Text(); historyWorthy(line) {
			h.entries = append(h.entries, line)
		}
	}
	if len(h.entries) > maxHistory {
		h.entries = append([]string(nil), h.entries[len(h.entries)-maxHistory:]...)
	}
	if n > 2*maxHistory {
		_ = h.rewrite()
	}
	return h
}

func historyWorthy(line string) bool {
	if strings.TrimSpace(line) == "" || !utf8.ValidString(line) || utf8.RuneCountInString(line) > maxLineRunes {
		return false
	}
	for _, r := range line {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func (h *history) rewrite() error {
	tmp := h.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(h.entries, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

func (h *history) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}

func (h *history) at(i int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.entries[i]
}

// add appends line (unless it repeats the last one) and writes it to the file.
func (h *history) add(line string) error {
	if !historyWorthy(line) {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.entries); n > 0 && h.entries[n-1] == line {
		return nil
	}
	h.entries = append(h.entries, line)
	if len(h.entries) > maxHistory {
		h.entries = h.entries[len(h.entries)-maxHistory:]
	}
	if h.path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	_, werr := f.WriteString(line + "\n")
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("history: %w", werr)
	}
	if cerr != nil {
		return fmt.Errorf("history: %w", cerr)
	}
	return nil
}
