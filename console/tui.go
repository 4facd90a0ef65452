package console

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// ackFallback bounds how long the full-screen program's input waits for the
// model to have handled the previous keystroke.
const ackFallback = time.Second

// teaInput is the full-screen program's view of the session's input queue.
// It hands out one keystroke per Read and the next one only once the model
// has handled the previous (and the command its Update returned for it has
// run), so when the model leaves, the keystrokes typed after the leaving
// key are still queued for the ">>" prompt. Once closed, Read returns io.EOF
// at once and without taking anything: bubbletea v1 reads a custom input
// through a cancelreader that cannot interrupt a Read, so a Read that
// blocked past the end must not consume the next bytes.
type teaInput struct {
	q *inputQueue

	closed   chan struct{}
	once     sync.Once
	isClosed bool // guarded by q.mu

	mu      sync.Mutex
	pending bool
	acked   chan struct{}
}

func newTeaInput(q *inputQueue) *teaInput {
	return &teaInput{q: q, closed: make(chan struct{}), acked: make(chan struct{}, 1)}
}

func (t *teaInput) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !t.waitAck() {
		return 0, io.EOF
	}
	ok, _ := t.q.wait(context.Background(), t.closed)
	if !ok {
		return 0, io.EOF
	}
	// q.mu is held: close cannot slip in between the check and the take.
	if t.isClosed {
		t.q.mu.Unlock()
		return 0, io.EOF
	}
	tok := t.q.nextToken()
	n := copy(p, tok)
	t.mu.Lock()
	t.pending = true
	t.mu.Unlock()
	return n, nil
}

// waitAck waits until the previous keystroke was handled (or ackFallback
// passed); false when the input was closed meanwhile.
func (t *teaInput) waitAck() bool {
	t.mu.Lock()
	pending := t.pending
	t.mu.Unlock()
	if !pending {
		return true
	}
	timer := time.NewTimer(ackFallback)
	defer timer.Stop()
	select {
	case <-t.acked:
	case <-timer.C:
	case <-t.closed:
		return false
	}
	t.mu.Lock()
	t.pending = false
	t.mu.Unlock()
	return true
}

func (t *teaInput) ack() {
	select {
	case t.acked <- struct{}{}:
	default:
	}
}

// close ends the input: pending and future Reads return io.EOF.
func (t *teaInput) close() {
	t.once.Do(func() {
		t.q.mu.Lock()
		t.isClosed = true
		t.q.mu.Unlock()
		close(t.closed)
	})
}

// keyResult carries the message of a command that a keystroke's Update
// returned; group counts the commands of that keystroke still running.
type keyResult struct {
	msg   tea.Msg
	group *keyGroup
}

// keyGroup is only touched from the program's event loop (Update).
type keyGroup struct{ left int }

func (g *keyGroup) wrap(cmd tea.Cmd) tea.Cmd {
	if cmd == nil {
		return nil
	}
	g.left++
	return func() tea.Msg { return keyResult{msg: cmd(), group: g} }
}

// leaveModel wraps the dashboard model: it sizes it, acknowledges each
// keystroke to teaInput once handled (with the commands its Update returned,
// batches and sequences included), and on the leave message (or tea.Quit)
// closes the input first and then quits.
type leaveModel struct {
	inner   tea.Model
	in      *teaInput
	isLeave func(tea.Msg) bool
	size    tea.WindowSizeMsg
	left    bool
}

func (m *leaveModel) Init() tea.Cmd {
	size := m.size
	return tea.Batch(m.inner.Init(), func() tea.Msg { return size })
}

func (m *leaveModel) leave() (tea.Model, tea.Cmd) {
	m.left = true
	m.in.close()
	return m, tea.Quit
}

func isTeaInternal(msg tea.Msg) bool {
	t := reflect.TypeOf(msg)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t != nil && t.PkgPath() == "github.com/charmbracelet/bubbletea"
}

// cmdList returns the commands of a tea.BatchMsg or of tea.Sequence's
// (unexported) message, and whether msg is a sequence.
func cmdList(msg tea.Msg) (cmds []tea.Cmd, seq, ok bool) {
	if b, isBatch := msg.(tea.BatchMsg); isBatch {
		return b, false, true
	}
	v := reflect.ValueOf(msg)
	if !isTeaInternal(msg) || v.Kind() != reflect.Slice || v.Type().Elem() != reflect.TypeOf(tea.Cmd(nil)) {
		return nil, false, false
	}
	cmds = make([]tea.Cmd, v.Len())
	for i := range cmds {
		cmds[i], _ = v.Index(i).Interface().(tea.Cmd)
	}
	return cmds, true, true
}

func (m *leaveModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if m.left {
		return m, nil
	}
	switch x := msg.(type) {
	case keyResult:
		return m.keyResult(x)
	case tea.KeyMsg, tea.MouseMsg:
		if m.isLeave(msg) {
			return m.leave()
		}
		var cmd tea.Cmd
		m.inner, cmd = m.inner.Update(msg)
		g := &keyGroup{}
		if cmd = g.wrap(cmd); cmd == nil {
			m.in.ack()
		}
		return m, cmd
	}
	if m.isLeave(msg) {
		return m.leave()
	}
	var cmd tea.Cmd
	m.inner, cmd = m.inner.Update(msg)
	if fromInputNotKey(msg) {
		m.in.ack()
	}
	return m, cmd
}

// fromInputNotKey reports whether msg is what bubbletea makes of input
// bytes that are not a key or a mouse event (focus, unknown sequences).
func fromInputNotKey(msg tea.Msg) bool {
	switch msg.(type) {
	case tea.FocusMsg, tea.BlurMsg:
		return true
	}
	t := reflect.TypeOf(msg)
	return isTeaInternal(msg) && t != nil && strings.HasPrefix(t.Name(), "unknown")
}

// keyResult handles what a keystroke's command gave: leaving, more commands
// (followed too), or a message for the model. The keystroke is acknowledged
// once all its commands have given their message.
func (m *leaveModel) keyResult(r keyResult) (tea.Model, tea.Cmd) {
	g := r.group
	g.left--
	msg := r.msg
	var out tea.Cmd
	switch {
	case msg == nil:
	case m.isLeave(msg):
		return m.leave()
	default:
		if _, quit := msg.(tea.QuitMsg); quit {
			return m.leave()
		}
		if cmds, seq, ok := cmdList(msg); ok {
			wrapped := make([]tea.Cmd, 0, len(cmds))
			for _, c := range cmds {
				if w := g.wrap(c); w != nil {
					wrapped = append(wrapped, w)
				}
			}
			if seq {
				out = tea.Sequence(wrapped...)
			} else {
				out = tea.Batch(wrapped...)
			}
		} else if isTeaInternal(msg) { // screen commands and the like: back to the loop
			out = func() tea.Msg { return msg }
		} else {
			m.inner, out = m.inner.Update(msg)
		}
	}
	if g.left <= 0 {
		m.in.ack()
	}
	return m, out
}

func (m *leaveModel) View() string {
	if m.left {
		return ""
	}
	return m.inner.View()
}

// termEnviron is the session's terminal as termenv sees it.
type termEnviron struct{ term string }

func (e termEnviron) Environ() []string { return []string{"TERM=" + e.term} }
func (e termEnviron) Getenv(k string) string {
	if k == "TERM" {
		return e.term
	}
	return ""
}

// errNoDashboard: the console was built without a dashboard.
var errNoDashboard = errors.New("the dashboard is not available")

// dashboard runs the full-screen dashboard on the session until the
// operator leaves it, the session ends or the idle timeout. It is the
// session's commands.Env.Dashboard.
func (st *sessionState) dashboard(ctx context.Context) error {
	return st.runFullScreen(ctx, func(ds DashboardSession) tea.Model {
		if st.srv.dash == nil {
			return nil
		}
		return st.srv.dash(ctx, ds)
	})
}

// runFullScreen runs the model build makes on the session's terminal.
func (st *sessionState) runFullScreen(ctx context.Context, build func(DashboardSession) tea.Model) error {
	q := st.q
	q.mu.Lock()
	prev := q.interrupt
	q.mu.Unlock()
	q.setInterrupt(nil) // ^C belongs to the full-screen model
	defer q.setInterrupt(prev)

	term := st.termName()
	w, h := st.size()
	renderer := lipgloss.NewRenderer(st.out, termenv.WithEnvironment(termEnviron{term: term}), termenv.WithTTY(true))
	model := build(DashboardSession{Agent: st.srv.agent, Renderer: renderer, Width: w, Height: h,
		User: st.id.User, Role: st.id.Role, NodeName: st.srv.cfg.NodeName, Now: st.srv.now})
	if model == nil {
		return errNoDashboard
	}
	in := newTeaInput(q)
	defer in.close()
	wrapped := &leaveModel{inner: model, in: in, isLeave: st.srv.isLeave, size: tea.WindowSizeMsg{Width: w, Height: h}}
	p := tea.NewProgram(wrapped, tea.WithInput(in), tea.WithOutput(st.out), tea.WithAltScreen(),
		tea.WithoutSignalHandler(), tea.WithoutBracketedPaste(), tea.WithContext(ctx),
		tea.WithEnvironment([]string{"TERM=" + term}))
	st.mu.Lock()
	st.program = p
	st.mu.Unlock()
	_, err := p.Run()
	st.mu.Lock()
	st.program = nil
	st.mu.Unlock()
	in.close()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}
