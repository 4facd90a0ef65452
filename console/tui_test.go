package console

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/hapair/hapair/screens"
)

// tinyModel is a full-screen model for the handoff tests: it shows its size
// and the keys it got, and leaves on "q" with leaveCmd.
type tinyModel struct {
	mu       *sync.Mutex
	keys     *[]string
	leaveCmd tea.Cmd
	w, h     int
}

func (m *tinyModel) Init() tea.Cmd { return nil }

func (m *tinyModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch x := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = x.Width, x.Height
	case tea.KeyMsg:
		m.mu.Lock()
		*m.keys = append(*m.keys, x.String())
		m.mu.Unlock()
		if x.String() == "q" {
			return m, m.leaveCmd
		}
	}
	return m, nil
}

func (m *tinyModel) View() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("TINY size %dx%d keys %s", m.w, m.h, strings.Join(*m.keys, ","))
}

func withTiny(leave tea.Cmd, keys *[]string, mu *sync.Mutex) serverOpt {
	return func(c *Config, d *Deps) {
		d.Dashboard = func(ctx context.Context, s DashboardSession) tea.Model {
			if s.Renderer == nil || s.User != "admin" || s.Agent == nil {
				panic("incomplete DashboardSession")
			}
			return &tinyModel{mu: mu, keys: keys, leaveCmd: leave, w: -1, h: -1}
		}
	}
}

// Keys typed right after the leaving key reach the ">>" prompt, whatever way
// the model leaves.
func TestDashboardHandoffLosesNoKeystroke(t *testing.T) {
	for name, leave := range map[string]tea.Cmd{
		"LeaveMsg": func() tea.Msg { return LeaveMsg{} },
		"tea.Quit": tea.Quit,
		"sequence": tea.Sequence(func() tea.Msg { return nil }, func() tea.Msg { return LeaveMsg{} }),
	} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var keys []string
			ts := newTestServer(t, withTiny(leave, &keys, &mu))
			tm := openTerm(t, ts.admin(t), 90, 30)
			tm.expect(Prompt)
			for round := 0; round < 3; round++ {
				tm.send("dashboard\r")
				tm.expect("TINY size 90x30")
				tm.send("ab")
				tm.expect("keys a,b")
				// The leaving key and the next command in one write.
				tm.send("qt_whoami\r")
				tm.expect("user=admin")
				tm.expect(Prompt)
				mu.Lock()
				got := strings.Join(keys, ",")
				keys = nil
				mu.Unlock()
				if got != "a,b,q" {
					t.Fatalf("round %d: the model got %q, want a,b,q", round, got)
				}
			}
		})
	}
}

func TestDashboardResizeAndIdle(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	ts := newTestServer(t, withTiny(func() tea.Msg { return LeaveMsg{} }, &keys, &mu),
		func(c *Config, d *Deps) { c.IdleTimeout = 4 * time.Second })
	tm := openTerm(t, ts.admin(t), 80, 24)
	tm.expect(Prompt)
	tm.send("dashboard\r")
	tm.expect("TINY size 80x24")
	must(t, tm.s.WindowChange(33, 101))
	tm.expect("TINY size 101x33")
	tm.expect("idle timeout, logging out")
	if code := tm.exitCode(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// The real dashboard (package screens) leaves with screens.ExitMsg; the
// wiring maps it with Deps.IsLeave.
func TestScreensDashboardHandoff(t *testing.T) {
	ts := newTestServer(t, func(c *Config, d *Deps) {
		d.Dashboard = func(ctx context.Context, s DashboardSession) tea.Model {
			return screens.NewDashboard(ctx, screens.Options{Agent: s.Agent, Admin: s.Role == "admin",
				Renderer: s.Renderer, Width: s.Width, Height: s.Height, Now: s.Now})
		}
		d.IsLeave = func(m tea.Msg) bool { _, ok := m.(screens.ExitMsg); return ok }
	})
	tm := openTerm(t, ts.admin(t), 100, 30)
	tm.expect(Prompt)
	tm.send("dashboard\r")
	tm.expect("\x1b[?1049h") // the alternate screen
	tm.send("qt_whoami\r")
	tm.expect("\x1b[?1049l")
	tm.expect("user=admin")
	tm.expect(Prompt)
}
