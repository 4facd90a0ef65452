package console_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/hapair/hapair/console"
	"github.com/hapair/hapair/hactl/hactltest"
)

// The dashboard through the real OpenSSH client on a real local pty, in
// front of real agents and PostgreSQL: stopping the Active node's cluster
// from another session shows on the open dashboard (header, VIP holder),
// starting it again turns the replication arrow around, and q gives the
// ">>" prompt back with the next command working.
func TestDashboardEndToEnd(t *testing.T) {
	_, c := startPairConsole(t)
	const p, s = hactltest.Primary, hactltest.Secondary

	tm := openSSHPty(t, c, 120, 40)
	tm.waitFor(t, "the prompt", func(sc *vtScreen) bool { return strings.HasPrefix(sc.cursorLine(), console.Prompt) })
	tm.send(t, "dashboard\r")
	tm.waitFor(t, "the dashboard of a healthy pair", all(altScreen,
		onScreen(header(p, "Active")), onScreen(vipHeldBy(p)), onScreen(flows(p, s))))

	if _, errOut, code := c.ssh(t, "ha_cluster_stop"); code != 0 {
		t.Fatalf("ha_cluster_stop: exit %d: %s", code, errOut)
	}
	tm.waitFor(t, "the dashboard of the stopped node, the VIP on secondary-node", all(altScreen,
		onScreen(header(p, "Stopped")), onScreen(regexp.MustCompile(`(?m)^ Cluster is not running on this node`)),
		onScreen(vipHeldBy(s)), not(onScreen(flows(p, s)))))

	if _, errOut, code := c.ssh(t, "ha_cluster_start"); code != 0 {
		t.Fatalf("ha_cluster_start: exit %d: %s", code, errOut)
	}
	tm.waitFor(t, "the arrow turned around: secondary-node streams to primary-node", all(altScreen,
		onScreen(header(p, "Standby")), onScreen(vipHeldBy(s)), onScreen(flows(s, p)), not(onScreen(flows(p, s)))))

	// q leaves; what is typed right after it belongs to the prompt.
	tm.send(t, "q")
	tm.send(t, "ha_status\r")
	ran := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(console.Prompt) + `ha_status\n(?:.*\n)*.*Standby(?:.*\n)+` +
		regexp.QuoteMeta(strings.TrimSpace(console.Prompt)) + `$`)
	tm.waitFor(t, "the prompt back and ha_status run from it", all(not(altScreen), func(sc *vtScreen) bool {
		return ran.MatchString(sc.history())
	}))
}

// ---- screen checks ----------------------------------------------------------

type screenCheck func(*vtScreen) bool

func all(cs ...screenCheck) screenCheck {
	return func(sc *vtScreen) bool {
		for _, c := range cs {
			if !c(sc) {
				return false
			}
		}
		return true
	}
}

func not(c screenCheck) screenCheck { return func(sc *vtScreen) bool { return !c(sc) } }

func altScreen(sc *vtScreen) bool { return sc.altActive }

func onScreen(re *regexp.Regexp) screenCheck {
	return func(sc *vtScreen) bool { return re.MatchString(sc.text()) }
}

// header matches the dashboard's first line for node in role: a badge in
// colour, "[Role]" in plain ASCII.
func header(node, role string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^ ` + regexp.QuoteMeta(node) + ` +\[?` + role + `\]? +cluster `)
}

// vipHeldBy matches the VIP line naming its holder.
func vipHeldBy(holder string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^ VIP +\S+ +held by ` + regexp.QuoteMeta(holder) + `\b`)
}

// flows matches the replication line saying from streams to to, with the
// arrow either way round (the left node of the pair stays on the left), in
// ASCII or drawn.
func flows(from, to string) *regexp.Regexp {
	f, t := regexp.QuoteMeta(from), regexp.QuoteMeta(to)
	return regexp.MustCompile(`(?m)^ (?:` + f + ` \([^)]*\) +(?:==>|━+▶) +` + t + ` \(|` +
		t + ` \([^)]*\) +(?:<==|◀━+) +` + f + ` \()`)
}

// ---- the OpenSSH client on a pty ------------------------------------------

// sshTerm is the real OpenSSH client run interactively on a pty the test
// owns; what it prints goes through vtScreen.
type sshTerm struct {
	master *os.File
	screen *vtScreen
	change chan struct{} // a token after each read that changed the screen
}

// openSSHPty starts `ssh -tt` to the console on a new pty of cols x rows
// (ssh sends that size in its pty-req, and TERM=xterm-256color). The client
// is stopped by its PID and the pty closed when the test ends.
func openSSHPty(t *testing.T, c *consoleProc, cols, rows int) *sshTerm {
	t.Helper()
	master, slave, err := openPty(cols, rows)
	if err != nil {
		t.Fatal(err)
	}
	tm := &sshTerm{master: master, screen: newVTScreen(cols, rows), change: make(chan struct{}, 1)}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 32*1024)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				tm.screen.write(buf[:n])
				select {
				case tm.change <- struct{}{}:
				default:
				}
			}
			if err != nil { // EIO once the client is gone, ErrClosed after Close
				return
			}
		}
	}()
	t.Cleanup(func() { // after the client has stopped
		master.Close()
		<-readerDone
	})
	cmd := exec.Command("ssh", c.sshArgs([]string{"-tt"}, "")...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	defer slave.Close() // the client has its own copy
	startOwned(t, cmd, 10*time.Second)
	return tm
}

// openPty opens a new pty pair sized cols x rows.
func openPty(cols, rows int) (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	var n uint32
	rc, err := master.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err != nil {
				err = fmt.Errorf("unlock pty: %w", err)
				return
			}
			if n, err = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN); err != nil {
				err = fmt.Errorf("pty number: %w", err)
			}
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	slave, err = os.OpenFile(name, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	ws := &unix.Winsize{Col: uint16(cols), Row: uint16(rows)}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("size %s: %w", name, err)
	}
	return master, slave, nil
}

func (tm *sshTerm) send(t *testing.T, keys string) {
	t.Helper()
	if _, err := io.WriteString(tm.master, keys); err != nil {
		t.Fatalf("type %q: %v", keys, err)
	}
}

// dashboardWait bounds every wait for the screen.
const dashboardWait = 60 * time.Second

// waitFor waits (at most dashboardWait) until ok holds for the screen, and
// logs that screen; it fails with the last screen otherwise.
func (tm *sshTerm) waitFor(t *testing.T, what string, ok screenCheck) {
	t.Helper()
	deadline := time.NewTimer(dashboardWait)
	defer deadline.Stop()
	for {
		if tm.screen.check(ok) {
			t.Logf("%s:\n%s", what, tm.screen.dump())
			return
		}
		select {
		case <-tm.change:
		case <-deadline.C:
			t.Fatalf("%s: not on the screen after %v; the last screen:\n%s", what, dashboardWait, tm.screen.dump())
		}
	}
}

// ---- a minimal terminal ---------------------------------------------------

// vtScreen is the little of a VT100/xterm that bubbletea's renderer, lipgloss
// and the console's line editor use: printable text with auto-wrap, CR, LF
// (scrolling the main screen into a history), BS, TAB, the cursor moves
// (CUU CUD CUF CUB CNL CPL CHA VPA CUP), EL, ED, IL, DL, DECSC/DECRC and the
// alternate screen (?1049, ?1047, ?47). SGR and every other sequence are
// read and ignored; each rune takes one cell.
type vtScreen struct {
	mu         sync.Mutex
	w, h       int
	main, alt  [][]rune
	altActive  bool
	scrolled   []string // lines the main screen scrolled off
	row, col   int
	wrapNext   bool
	savedRow   int
	savedCol   int
	pending    []byte // an incomplete sequence or rune
	mainCursor [2]int // the main screen's cursor while the alternate one shows
}

func newVTScreen(w, h int) *vtScreen {
	return &vtScreen{w: w, h: h, main: blankGrid(w, h), alt: blankGrid(w, h)}
}

func blankGrid(w, h int) [][]rune {
	g := make([][]rune, h)
	for i := range g {
		g[i] = blankLine(w)
	}
	return g
}

func blankLine(w int) []rune { return []rune(strings.Repeat(" ", w)) }

func (s *vtScreen) grid() [][]rune {
	if s.altActive {
		return s.alt
	}
	return s.main
}

func (s *vtScreen) check(ok screenCheck) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ok(s)
}

// text is the visible screen, trailing blanks cut. Callers hold s.mu.
func (s *vtScreen) text() string {
	lines := make([]string, 0, s.h)
	for _, l := range s.grid() {
		lines = append(lines, strings.TrimRight(string(l), " "))
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// history is the main screen with what scrolled off it. Callers hold s.mu.
func (s *vtScreen) history() string {
	lines := append([]string(nil), s.scrolled...)
	for _, l := range s.main {
		lines = append(lines, strings.TrimRight(string(l), " "))
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// cursorLine is the line the cursor is on. Callers hold s.mu.
func (s *vtScreen) cursorLine() string { return string(s.grid()[s.row]) }

func (s *vtScreen) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	which := "main"
	if s.altActive {
		which = "alternate"
	}
	return fmt.Sprintf("(%s screen, cursor %d,%d)\n%s", which, s.row+1, s.col+1, s.text())
}

func (s *vtScreen) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := append(s.pending, p...)
	for len(b) > 0 {
		n := s.step(b)
		if n == 0 {
			break
		}
		b = b[n:]
	}
	s.pending = append([]byte(nil), b...)
}

// step interprets the start of b and returns how many bytes it took, 0 when
// b holds only the beginning of a sequence or rune.
func (s *vtScreen) step(b []byte) int {
	switch c := b[0]; {
	case c == 0x1b:
		return s.escape(b)
	case c < 0x20 || c == 0x7f:
		s.control(c)
		return 1
	}
	if !utf8.FullRune(b) {
		return 0
	}
	r, n := utf8.DecodeRune(b)
	s.put(r)
	return n
}

func (s *vtScreen) control(c byte) {
	switch c {
	case '\r':
		s.col, s.wrapNext = 0, false
	case '\n', '\v', '\f':
		s.lineFeed()
	case '\b':
		s.col, s.wrapNext = max(s.col-1, 0), false
	case '\t':
		s.col = min((s.col/8+1)*8, s.w-1)
	}
}

func (s *vtScreen) escape(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '[':
		for j := 2; j < len(b); j++ {
			if b[j] >= 0x40 && b[j] <= 0x7e {
				s.csi(string(b[2:j]), b[j])
				return j + 1
			}
		}
		return 0
	case ']', 'P', '_', '^': // OSC, DCS, APC, PM: up to BEL or ST
		for j := 2; j < len(b); j++ {
			if b[j] == 0x07 {
				return j + 1
			}
			if b[j] == 0x1b && j+1 < len(b) && b[j+1] == '\\' {
				return j + 2
			}
		}
		return 0
	case '(', ')', '*', '+', '#', '%':
		if len(b) < 3 {
			return 0
		}
		return 3
	case '7':
		s.savedRow, s.savedCol = s.row, s.col
	case '8':
		s.row, s.col, s.wrapNext = s.savedRow, s.savedCol, false
	case 'D':
		s.lineFeed()
	case 'E':
		s.col = 0
		s.lineFeed()
	case 'M':
		if s.row == 0 {
			s.insertLines(1)
		} else {
			s.row--
		}
	}
	return 2
}

func (s *vtScreen) csi(params string, final byte) {
	private := strings.HasPrefix(params, "?")
	var ns []int
	for f := range strings.SplitSeq(strings.TrimLeft(params, "?<=>"), ";") {
		n, _ := strconv.Atoi(f)
		ns = append(ns, n)
	}
	arg := func(i, def int) int {
		if i < len(ns) && ns[i] > 0 {
			return ns[i]
		}
		return def
	}
	if private {
		if final == 'h' || final == 'l' {
			for _, mode := range ns {
				if mode == 1049 || mode == 1047 || mode == 47 {
					s.setAlt(final == 'h')
				}
			}
		}
		return
	}
	s.wrapNext = false
	switch final {
	case 'A':
		s.row = max(s.row-arg(0, 1), 0)
	case 'B':
		s.row = min(s.row+arg(0, 1), s.h-1)
	case 'C':
		s.col = min(s.col+arg(0, 1), s.w-1)
	case 'D':
		s.col = max(s.col-arg(0, 1), 0)
	case 'E':
		s.row, s.col = min(s.row+arg(0, 1), s.h-1), 0
	case 'F':
		s.row, s.col = max(s.row-arg(0, 1), 0), 0
	case 'G', '`':
		s.col = min(arg(0, 1), s.w) - 1
	case 'd':
		s.row = min(arg(0, 1), s.h) - 1
	case 'H', 'f':
		s.row, s.col = min(arg(0, 1), s.h)-1, min(arg(1, 1), s.w)-1
	case 'J':
		s.eraseDisplay(arg(0, 0))
	case 'K':
		s.eraseLine(s.grid()[s.row], arg(0, 0))
	case 'L':
		s.insertLines(arg(0, 1))
	case 'M':
		g := s.grid()
		n := min(arg(0, 1), s.h-s.row)
		copy(g[s.row:], g[s.row+n:])
		for i := s.h - n; i < s.h; i++ {
			g[i] = blankLine(s.w)
		}
	}
}

func (s *vtScreen) eraseLine(l []rune, mode int) {
	from, to := s.col, s.w
	switch mode {
	case 1:
		from, to = 0, s.col+1
	case 2:
		from = 0
	}
	for i := from; i < to && i < s.w; i++ {
		l[i] = ' '
	}
}

func (s *vtScreen) eraseDisplay(mode int) {
	g := s.grid()
	switch mode {
	case 0:
		s.eraseLine(g[s.row], 0)
		for i := s.row + 1; i < s.h; i++ {
			g[i] = blankLine(s.w)
		}
	case 1:
		s.eraseLine(g[s.row], 1)
		for i := 0; i < s.row; i++ {
			g[i] = blankLine(s.w)
		}
	default:
		for i := range g {
			g[i] = blankLine(s.w)
		}
	}
}

func (s *vtScreen) insertLines(n int) {
	g := s.grid()
	n = min(n, s.h-s.row)
	copy(g[s.row+n:], g[s.row:s.h-n])
	for i := s.row; i < s.row+n; i++ {
		g[i] = blankLine(s.w)
	}
}

func (s *vtScreen) setAlt(on bool) {
	if on == s.altActive {
		return
	}
	if on {
		s.mainCursor = [2]int{s.row, s.col}
		s.alt = blankGrid(s.w, s.h)
	} else {
		s.row, s.col = s.mainCursor[0], s.mainCursor[1]
	}
	s.altActive, s.wrapNext = on, false
}

func (s *vtScreen) lineFeed() {
	s.wrapNext = false
	if s.row < s.h-1 {
		s.row++
		return
	}
	g := s.grid()
	if !s.altActive {
		s.scrolled = append(s.scrolled, strings.TrimRight(string(g[0]), " "))
	}
	copy(g, g[1:])
	g[s.h-1] = blankLine(s.w)
}

func (s *vtScreen) put(r rune) {
	if s.wrapNext {
		s.col = 0
		s.lineFeed()
	}
	s.grid()[s.row][s.col] = r
	if s.col == s.w-1 {
		s.wrapNext = true
	} else {
		s.col++
	}
}

// The screen model against what it must get right for bubbletea's renderer:
// a redraw that moves up and rewrites only one line, erase to the end of the
// line, the alternate screen and coming back to the main one with its
// cursor, scrolling into the history.
func TestVTScreenModel(t *testing.T) {
	s := newVTScreen(10, 3)
	s.write([]byte(">> a\r\nb"))
	s.write([]byte("\x1b[?1049h\x1b[H\x1b[2J\rline one\x1b[K\r\nline two\x1b[K\r\nthree\x1b[3;1H"))
	s.write([]byte("\x1b[2A\x1b[1;32mLINE\x1b[0m 1\x1b[K\n\n\x1b]0;title\x07"))
	if got, want := s.text(), "LINE 1\nline two\nthree"; got != want || !s.altActive {
		t.Fatalf("alternate screen %q, want %q (alt %v)", got, want, s.altActive)
	}
	s.write([]byte("\x1b[?1049"))
	if !s.altActive {
		t.Fatal("half a sequence took effect")
	}
	s.write([]byte("l" + strings.Repeat("x", 10) + "yz\r\n" + "\xe2\x94"))
	s.write([]byte("\x81q"))
	if got, want := s.history(), ">> a\nbxxxxxxxxx\nxyz\n━q"; got != want || s.altActive {
		t.Fatalf("main screen and history %q, want %q (alt %v)", got, want, s.altActive)
	}
	if got := s.cursorLine(); got != "━q        " {
		t.Fatalf("cursor line %q", s.cursorLine())
	}
}
