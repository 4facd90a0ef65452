package screens

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hapair/hapair/hactl/hapb"
)

func show(d *Dashboard, s *hapb.Snapshot, at time.Time) {
	d.Update(updatesMsg{items: []update{{snap: s, at: at}}})
}

// lineWith returns the first line of frame containing sub ("" if none).
func lineWith(frame, sub string) string {
	for _, l := range strings.Split(frame, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// firstEvent returns the first line under the events title.
func firstEvent(t *testing.T, frame string) string {
	t.Helper()
	lines := strings.Split(frame, "\n")
	for i, l := range lines {
		if strings.Contains(l, "Events") && i+1 < len(lines) {
			return lines[i+1]
		}
	}
	t.Fatalf("no events panel in:\n%s", frame)
	return ""
}

// TestReplicationShowsTheLinkUsed: the addresses on the replication line are
// those PostgreSQL uses, the standby's sender_host and the primary's
// client_addr, so replication over the heartbeat link reads as such.
func TestReplicationShowsTheLinkUsed(t *testing.T) {
	d, _ := testDashboard(t, Options{Renderer: asciiRenderer(), Width: 80, Height: 24})
	s := healthy()
	s.Local.Database.Replicas[0].ClientAddr = "169.254.0.2"
	s.Peer.Status.Database.WalReceiver.SenderHost = "169.254.0.1"
	show(d, s, t0)
	l := lineWith(d.View(), "==>")
	if !strings.Contains(l, "primary-node (169.254.0.1)  ==>  secondary-node (169.254.0.2)") {
		t.Fatalf("replication over the heartbeat link: got %q", l)
	}
}

func TestArrowReversesWithReplication(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        Options
		right, left string
	}{
		{"ascii", Options{Renderer: asciiRenderer()}, "==>", "<=="},
		{"colour", Options{Renderer: colourRenderer()}, "━━━━▶", "◀━━━━"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Width, tc.opts.Height = 80, 24
			d, _ := testDashboard(t, tc.opts)
			show(d, healthy(), t0)
			l := lineWith(d.View(), "198.18.0.10)")
			if !strings.Contains(l, tc.right) || strings.Contains(l, tc.left) || strings.Index(l, "primary-node") > strings.Index(l, "secondary-node") {
				t.Fatalf("primary -> secondary should read primary-node %s secondary-node, got %q", tc.right, l)
			}
			// The direction reverses (scenario A step 3): the pair stays in
			// place and the arrow turns around.
			show(d, reversed(), t0)
			l = lineWith(d.View(), "198.18.0.10)")
			if !strings.Contains(l, tc.left) || strings.Contains(l, tc.right) || strings.Index(l, "primary-node") > strings.Index(l, "secondary-node") {
				t.Fatalf("secondary -> primary should read primary-node %s secondary-node, got %q", tc.left, l)
			}
			if !strings.Contains(lineWith(d.View(), "lag 2.0 KiB"), "timeline 2") {
				t.Errorf("the reversed flow's lag and timeline are missing:\n%s", d.View())
			}
		})
	}
}

// The direction comes from pg_stat_replication, not from roles: a node whose
// role says Active but whose database reports no replica draws no arrow.
func TestReplicationFromPostgresNotBeliefs(t *testing.T) {
	d, _ := testDashboard(t, Options{Width: 80, Height: 24})
	s := healthy()
	s.Local.Database.Replicas = nil
	show(d, s, t0)
	f := d.View()
	if strings.Contains(f, "==>") || strings.Contains(f, "<==") || !strings.Contains(f, "no replication") {
		t.Fatalf("no replica rows must draw no arrow:\n%s", f)
	}
}

// Both nodes' dashboards draw the pair the same way round.
func TestPairOrderFollowsMembers(t *testing.T) {
	d, _ := testDashboard(t, Options{Width: 80, Height: 24})
	s := healthy()
	me := s.Local
	s.Local, s.Peer = s.Peer.Status, peer(me)
	show(d, s, t0)
	f := d.View()
	box := lineWith(f, "(this node)")
	if !strings.HasPrefix(strings.TrimSpace(box), "| primary-node (peer)") || !strings.Contains(box, "secondary-node (this node)") {
		t.Fatalf("primary-node should stay left on secondary-node's dashboard: %q", box)
	}
	if l := lineWith(f, "198.18.0.10)"); !strings.Contains(l, "primary-node (198.18.0.5)  ==>  secondary-node") {
		t.Fatalf("arrow seen from the standby: %q", l)
	}
}

func TestHelpOverlay(t *testing.T) {
	d, _ := testDashboard(t, Options{Width: 80, Height: 24})
	show(d, healthy(), t0)
	if cmd := press(d, "?"); cmd != nil {
		t.Fatalf("? returned a command")
	}
	f := d.View()
	if !strings.Contains(f, "Help") || !strings.Contains(f, "back to the prompt") || !strings.Contains(f, "need the admin role") {
		t.Fatalf("help overlay missing:\n%s", f)
	}
	checkFrame(t, f, 80, 24)
	// q closes the overlay, it does not leave.
	if cmd := press(d, "q"); cmd != nil {
		t.Fatalf("q on the help overlay must only close it")
	}
	if f := d.View(); strings.Contains(f, "back to the prompt") || !strings.Contains(f, "The cluster is healthy") {
		t.Fatalf("help overlay still shown:\n%s", f)
	}
}

func TestScrollEvents(t *testing.T) {
	d, _ := testDashboard(t, Options{Width: 80, Height: 24})
	show(d, healthy(), t0)
	if e := firstEvent(t, d.View()); !strings.Contains(e, "14:28:00") {
		t.Fatalf("newest event first, got %q", e)
	}
	press(d, "down")
	if e := firstEvent(t, d.View()); !strings.Contains(e, "14:25:00") {
		t.Fatalf("after Down: %q", e)
	}
	press(d, "pgdown")
	after := firstEvent(t, d.View())
	if strings.Contains(after, "14:25:00") || !strings.Contains(lineWith(d.View(), "Events"), "of 20") {
		t.Fatalf("PgDn did not scroll: %q", after)
	}
	press(d, "end")
	f := d.View()
	if !strings.Contains(f, "13:15:00") || strings.Contains(f, "14:28:00") {
		t.Fatalf("End should show the oldest event:\n%s", f)
	}
	press(d, "down", "down") // cannot scroll past the end
	if f2 := d.View(); f2 != f {
		t.Fatalf("scrolled past the end:\n%s", f2)
	}
	press(d, "pgup")
	if strings.Contains(d.View(), "13:15:00") {
		t.Fatalf("PgUp did not scroll back")
	}
	press(d, "home")
	if e := firstEvent(t, d.View()); !strings.Contains(e, "14:28:00") {
		t.Fatalf("Home: %q", e)
	}
	// An operator scrolled into the history keeps the same events in view
	// when new ones arrive.
	press(d, "down", "down")
	before := firstEvent(t, d.View())
	s := healthy()
	s.RecentEvents = append([]*hapb.Event{{Seq: 5, Time: ts(t0), Node: "primary-node", Kind: "maintenance", Detail: "on"}}, s.RecentEvents...)
	show(d, s, t0)
	if e := firstEvent(t, d.View()); e != before {
		t.Fatalf("view moved under the operator: %q, was %q", e, before)
	}
}

func TestFocusMovesScrollTarget(t *testing.T) {
	d, _ := testDashboard(t, Options{Width: 80, Height: 24})
	show(d, healthy(), t0)
	if !strings.Contains(d.View(), "[Events]") {
		t.Fatalf("events should have the focus first")
	}
	press(d, "tab")
	f := d.View()
	if !strings.Contains(f, "[Heartbeat]") || strings.Contains(f, "[Events]") {
		t.Fatalf("Tab should move the focus to the heartbeat:\n%s", f)
	}
	press(d, "down", "pgdown")
	if e := firstEvent(t, d.View()); !strings.Contains(e, "14:28:00") {
		t.Fatalf("keys scrolled the events while the heartbeat had the focus: %q", e)
	}
	press(d, "tab", "tab")
	if !strings.Contains(d.View(), "[System]") {
		t.Fatalf("focus after three Tabs:\n%s", d.View())
	}
	press(d, "shift+tab", "shift+tab", "shift+tab")
	if !strings.Contains(d.View(), "[Events]") {
		t.Fatalf("Shift+Tab should cycle back to the events:\n%s", d.View())
	}
}

func TestOperatorCannotStopOrStart(t *testing.T) {
	f := newFakeAgent()
	agent := serve(t, f)
	d, _ := testDashboard(t, Options{Width: 80, Height: 24, Agent: agent, Admin: false})
	show(d, healthy(), t0)
	for _, k := range []string{"s", "S", "t"} {
		if cmd := press(d, k); cmd != nil {
			t.Fatalf("%s by an operator returned a command", k)
		}
		fr := d.View()
		if d.ov != overlayNone || !strings.Contains(fr, "needs the admin role") || strings.Contains(fr, "[y/N]") {
			t.Fatalf("%s by an operator:\n%s", k, fr)
		}
		press(d, "y") // a stray yes confirms nothing
	}
	if strings.Contains(d.View(), " s stop") {
		t.Errorf("an operator's footer offers stop")
	}
	if _, stops, starts := f.counts(); stops != 0 || starts != 0 {
		t.Fatalf("the agent was asked: %d stops, %d starts", stops, starts)
	}
}

// drain runs cmd and feeds what it yields back until the operation ends.
func drainOp(t *testing.T, d *Dashboard, cmd tea.Cmd) {
	t.Helper()
	for i := 0; cmd != nil && i < 100; i++ {
		msg := cmd()
		if msg == nil {
			t.Fatalf("operation ended without an end message")
		}
		_, cmd = d.Update(msg)
		if _, end := msg.(opEndMsg); end {
			return
		}
	}
	t.Fatalf("operation did not end")
}

func TestStopConfirmAndProgress(t *testing.T) {
	f := newFakeAgent()
	f.steps = []*hapb.Progress{
		{Node: "primary-node", Step: "fast shutdown of the database", Elapsed: durationpb.New(100 * time.Millisecond)},
		{Node: "primary-node", Step: "VIP released", Detail: "198.18.0.12", Elapsed: durationpb.New(300 * time.Millisecond)},
		{Node: "primary-node", Step: "secondary-node is Active", Elapsed: durationpb.New(900 * time.Millisecond), Done: true},
	}
	f.gate = make(chan struct{})
	agent := serve(t, f)
	d, _ := testDashboard(t, Options{Width: 80, Height: 24, Agent: agent, Admin: true})
	show(d, healthy(), t0)

	// s, then anything but y, cancels.
	press(d, "s")
	fr := d.View()
	if !strings.Contains(fr, "Stop the cluster on primary-node?") || !strings.Contains(fr, "[y/N]") {
		t.Fatalf("no confirmation:\n%s", fr)
	}
	checkFrame(t, fr, 80, 24)
	if cmd := press(d, "n"); cmd != nil {
		t.Fatalf("n returned a command")
	}
	if fr := d.View(); strings.Contains(fr, "[y/N]") || !strings.Contains(fr, "cancelled") {
		t.Fatalf("cancel:\n%s", fr)
	}
	press(d, "s")
	press(d, "esc")
	if _, stops, _ := f.counts(); stops != 0 || d.left {
		t.Fatalf("cancelled stop reached the agent (%d) or Esc left the dashboard", stops)
	}

	// s, y: the steps show as they stream.
	press(d, "s")
	cmd := press(d, "y")
	if cmd == nil {
		t.Fatalf("y returned no command")
	}
	msg := cmd()
	_, cmd = d.Update(msg)
	fr = d.View()
	if !strings.Contains(fr, "Stopping the cluster on primary-node") || !strings.Contains(fr, "fast shutdown of the database") ||
		strings.Contains(fr, "VIP released") || !strings.Contains(fr, "in progress") {
		t.Fatalf("first step:\n%s", fr)
	}
	checkFrame(t, fr, 80, 24)
	press(d, "esc") // ignored while running
	if d.ov != overlayProgress {
		t.Fatalf("Esc closed a running operation's progress")
	}
	close(f.gate)
	drainOp(t, d, cmd)
	fr = d.View()
	if !strings.Contains(fr, "VIP released: 198.18.0.12") || !strings.Contains(fr, "secondary-node is Active") || !strings.Contains(fr, "done") {
		t.Fatalf("after the stream:\n%s", fr)
	}
	press(d, "enter")
	if d.ov != overlayNone {
		t.Fatalf("Enter did not close the finished progress")
	}
	if _, stops, starts := f.counts(); stops != 1 || starts != 0 {
		t.Fatalf("agent saw %d stops, %d starts; want 1, 0", stops, starts)
	}

	// S and t start, after a yes.
	for i, k := range []string{"S", "t"} {
		press(d, k)
		if !strings.Contains(d.View(), "Start the cluster on primary-node?") {
			t.Fatalf("%s: no confirmation:\n%s", k, d.View())
		}
		drainOp(t, d, press(d, "y"))
		if _, _, starts := f.counts(); starts != i+1 {
			t.Fatalf("%s: agent saw %d starts", k, starts)
		}
		press(d, "enter")
	}
}

func TestOperationFailureShown(t *testing.T) {
	f := newFakeAgent() // ClusterStop answers with no step; make it fail
	agent := serve(t, failingStop{f})
	d, _ := testDashboard(t, Options{Width: 80, Height: 24, Agent: agent, Admin: true})
	show(d, healthy(), t0)
	press(d, "s")
	drainOp(t, d, press(d, "y"))
	if fr := d.View(); !strings.Contains(fr, "failed: ") || !strings.Contains(fr, "the peer is not reachable") {
		t.Fatalf("failure not shown:\n%s", fr)
	}
}

type failingStop struct{ *fakeAgent }

func (failingStop) ClusterStop(*hapb.ClusterStopRequest, hapb.Agent_ClusterStopServer) error {
	return errFailedPrecondition("the peer is not reachable: no handover possible")
}

func TestLeaveYieldsExitAndEndsWatch(t *testing.T) {
	f := newFakeAgent()
	agent := serve(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := NewDashboard(ctx, Options{Agent: agent, Renderer: asciiRenderer(), Width: 80, Height: 24}).(*Dashboard)
	f.send(ctx, t, healthy())
	for _, k := range []string{"q", "esc", "ctrl+c"} {
		t.Run(k, func(t *testing.T) {
			d := d
			if k != "q" {
				d, _ = testDashboard(t, Options{Width: 80, Height: 24})
			}
			cmd := press(d, k)
			if cmd == nil {
				t.Fatalf("%s returned no command", k)
			}
			if _, ok := cmd().(ExitMsg); !ok {
				t.Fatalf("%s: command did not yield ExitMsg", k)
			}
			if d.ctx.Err() == nil {
				t.Fatalf("%s: the dashboard's context is still live", k)
			}
			if _, c := d.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("?")}); c != nil || d.View() != "" {
				t.Fatalf("a dashboard that left still answers")
			}
		})
	}
	select {
	case <-f.watchEnded:
	case <-ctx.Done():
		t.Fatalf("the Watch stream did not end when the operator left")
	}
}

func TestWatchFeedsSnapshots(t *testing.T) {
	f := newFakeAgent()
	agent := serve(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := NewDashboard(ctx, Options{Agent: agent, Renderer: asciiRenderer(), Width: 80, Height: 24}).(*Dashboard)
	if !strings.Contains(d.View(), "Waiting for the agent") {
		t.Fatalf("before any snapshot:\n%s", d.View())
	}
	wait := d.feed.wait(d.ctx)
	for _, tc := range []struct {
		snap *hapb.Snapshot
		want string
	}{
		{healthy(), "primary-node (198.18.0.5)  ==>  secondary-node"},
		{stopped(), "Cluster is not running on this node"},
		{reversed(), "primary-node (198.18.0.5)  <==  secondary-node"},
	} {
		f.send(ctx, t, tc.snap)
		var cmd tea.Cmd
		for !strings.Contains(d.View(), tc.want) {
			msg := wait()
			if msg == nil {
				t.Fatalf("feed ended before %q", tc.want)
			}
			_, cmd = d.Update(msg)
			if cmd == nil {
				t.Fatalf("no next read of the feed")
			}
			wait = cmd
		}
	}
	if w, _, _ := f.counts(); w != 1 {
		t.Fatalf("%d Watch calls, want 1", w)
	}
	// The subscription belongs to the context it was given.
	cancel()
	select {
	case <-f.watchEnded:
	case <-time.After(10 * time.Second):
		t.Fatalf("the Watch stream outlived the dashboard's context")
	}
	if msg := wait(); msg != nil {
		t.Fatalf("the feed still yields after the context ended: %T", msg)
	}
}

func TestWatchReconnects(t *testing.T) {
	f := newFakeAgent()
	agent := serve(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := NewDashboard(ctx, Options{Agent: agent, Renderer: asciiRenderer(), Width: 80, Height: 24}).(*Dashboard)
	wait := d.feed.wait(d.ctx)
	step := func(want string) {
		t.Helper()
		for !strings.Contains(d.View(), want) {
			msg := wait()
			if msg == nil {
				t.Fatalf("feed ended before %q:\n%s", want, d.View())
			}
			_, wait = d.Update(msg)
		}
	}
	f.send(ctx, t, healthy())
	step("The cluster is healthy")
	f.send(ctx, t, nil) // the stream fails
	step("Agent not answering")
	if fr := d.View(); !strings.Contains(fr, "the agent is shutting down") || !strings.Contains(fr, "primary-node  [Active]") {
		t.Fatalf("the last known state and the reason should stay on screen:\n%s", fr)
	}
	checkFrame(t, d.View(), 80, 24)
	f.send(ctx, t, degraded()) // taken by the new subscription
	step("The cluster is degraded: one of the cluster nodes is offline")
	if strings.Contains(d.View(), "not answering") {
		t.Fatalf("banner still says the agent is not answering")
	}
	if w, _, _ := f.counts(); w != 2 {
		t.Fatalf("%d Watch calls, want 2", w)
	}
}

func TestHostileStringsCannotMoveTheCursor(t *testing.T) {
	s := healthy()
	s.Local.Name = "evil\x1b[2J\x1b[H\r\nnode"
	s.Peer.Error = "x\x1b]0;title\x07"
	s.Cluster.Name = "\x1b[31mred"
	s.Links[0].Name = "hb\x1b[1A"
	s.Local.Database.Replicas[0].ApplicationName = "rep\x1b[10;10H"
	s.RecentEvents[0].Detail = "detail\x1b[?1049l\u202eabc"
	for _, tc := range []struct {
		name string
		r    Options
	}{{"ascii", Options{Renderer: asciiRenderer()}}, {"colour", Options{Renderer: colourRenderer()}}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Width, tc.r.Height = 120, 40
			d, _ := testDashboard(t, tc.r)
			show(d, s, t0)
			f := d.View()
			for _, bad := range []string{"\x1b[2J", "\x1b[H", "\x1b]0", "\x1b[1A", "\x1b[10;10H", "\x1b[?1049l", "\x1b[31m", "\r", "\u202e"} {
				if strings.Contains(f, bad) {
					t.Errorf("frame carries %q", bad)
				}
			}
			if !strings.Contains(f, `evil\x1b[2J\x1b[H  node`) {
				t.Errorf("the hostile name should show escaped:\n%s", f)
			}
			if tc.name == "ascii" && strings.Contains(f, "\x1b") {
				t.Errorf("an ASCII frame has an escape character")
			}
			checkFrame(t, f, 120, 40)
		})
	}
}

func TestColourProfileStyles(t *testing.T) {
	d, _ := testDashboard(t, Options{Width: 80, Height: 24, Renderer: colourRenderer()})
	show(d, healthy(), t0)
	f := d.View()
	for _, want := range []string{"\x1b[", "┌", "━━━━▶", " Active "} {
		if !strings.Contains(f, want) {
			t.Errorf("colour frame lacks %q", want)
		}
	}
	checkFrame(t, f, 80, 24)
}

func TestResizeRedraws(t *testing.T) {
	d, _ := testDashboard(t, Options{Width: 80, Height: 24})
	show(d, healthy(), t0)
	small := d.View()
	d.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	big := d.View()
	checkFrame(t, big, 120, 40)
	if len(strings.Split(big, "\n")) <= len(strings.Split(small, "\n")) {
		t.Fatalf("a taller terminal should show more lines")
	}
	if strings.Count(big, "heartbeat:") <= strings.Count(small, "heartbeat:") {
		t.Fatalf("a taller terminal should show more history")
	}
	d.Update(tea.WindowSizeMsg{Width: 40, Height: 10})
	tiny := d.View()
	checkFrame(t, tiny, 40, 10)
	if !strings.Contains(strings.ReplaceAll(tiny, "\n", " "), "too small") {
		t.Fatalf("tiny terminal:\n%s", tiny)
	}
	d.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	if d.View() != small {
		t.Fatalf("back at 80x24 the frame differs")
	}
}

func TestTickRefreshesAges(t *testing.T) {
	d, c := testDashboard(t, Options{Width: 80, Height: 24})
	show(d, healthy(), t0)
	if l := lineWith(d.View(), " last "); !strings.Contains(l, "last 0.1s ago") {
		t.Fatalf("%q", l)
	}
	c.t = t0.Add(3 * time.Second)
	if l := lineWith(d.View(), " last "); !strings.Contains(l, "last 0.1s ago") {
		t.Fatalf("the frame changed without a message: %q", l)
	}
	_, cmd := d.Update(tickMsg(c.t))
	if cmd == nil {
		t.Fatalf("the tick did not schedule the next")
	}
	if l := lineWith(d.View(), " last "); !strings.Contains(l, "last 3.1s ago") {
		t.Fatalf("after a tick: %q", l)
	}
}

func TestSparkline(t *testing.T) {
	var r ring
	now := t0
	levels := []rune("01234567")
	for _, s := range []sample{
		{at: now.Add(-55 * time.Second), rtt: time.Millisecond, connected: true},
		{at: now.Add(-45 * time.Second), rtt: 2 * time.Millisecond, connected: true},
		{at: now.Add(-35 * time.Second), connected: false},
		{at: now.Add(-5 * time.Second), rtt: 4 * time.Millisecond, connected: true},
		{at: now.Add(-70 * time.Second), rtt: 9 * time.Millisecond, connected: true}, // outside the minute
	} {
		r.add(s)
	}
	if got := r.spark(now, 6, levels, 'x'); got != "13x  7" {
		t.Fatalf("spark = %q, want %q", got, "13x  7")
	}
	for i := range 600 {
		r.add(sample{at: now.Add(time.Duration(i) * time.Millisecond), connected: true})
	}
	if r.n != maxSamples || r.at(0).at != now.Add(time.Duration(600-maxSamples)*time.Millisecond) {
		t.Fatalf("ring keeps %d, oldest %v", r.n, r.at(0).at)
	}
}
