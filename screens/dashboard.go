// Package screens holds the console's full-screen views. The dashboard shows
// one node's live view of its HA pair (header and health, the two nodes and
// the VIP, heartbeat per link, the direction of replication, host figures,
// events) from the local agent's Watch stream; it never asks PostgreSQL
// anything itself.
//
// The models are hosted by the SSH console: they never quit the program
// (they yield ExitMsg when the operator leaves), and every goroutine they
// start is owned by the context they are given.
package screens

import (
	"context"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/hapair/hapair/hactl/hapb"
)

// Options configure a dashboard.
type Options struct {
	// Agent is the local agent: Watch is the only data source;
	// ClusterStop and ClusterStart are called for admins.
	Agent hapb.AgentClient
	// Admin may stop and start the cluster on this node (always after a
	// confirmation).
	Admin bool
	// Renderer is bound to the session's output: its colour profile decides
	// colours, and the Ascii profile gives plain ASCII (no box drawing,
	// arrows drawn as ==> and <==).
	Renderer *lipgloss.Renderer
	// Width and Height are the initial size; a tea.WindowSizeMsg follows on
	// every resize.
	Width, Height int
	// Now gives the time (nil: time.Now).
	Now func() time.Time
}

// ExitMsg is what the dashboard's Cmd yields when the operator leaves (q or
// Esc). The host closes the input and quits the program; the dashboard
// never calls tea.Quit itself.
type ExitMsg struct{}

// tickEvery is how often times like "last beat 0.4s ago" are refreshed.
// Everything else is redrawn only when it changes.
const tickEvery = time.Second

// maxEventsKept bounds the history the dashboard accumulates from the
// snapshots' recent events.
const maxEventsKept = 500

// panel is a scrollable section of the dashboard below the nodes.
type panel int

const (
	panelHeartbeat panel = iota
	panelReplication
	panelSystem
	panelEvents
	numPanels
)

var panelTitles = [numPanels]string{"Heartbeat", "Replication", "System", "Events"}

// overlay is what covers the middle of the screen, if anything.
type overlay int

const (
	overlayNone overlay = iota
	overlayHelp
	overlayConfirm
	overlayProgress
)

type tickMsg time.Time

// Dashboard is the live dashboard model. Its methods are called from the
// program's event loop only.
type Dashboard struct {
	ctx    context.Context
	cancel context.CancelFunc
	agent  hapb.AgentClient
	admin  bool
	now    func() time.Time
	st     styles
	feed   *feed

	width, height int

	snap      *hapb.Snapshot
	agentErr  error     // the last Watch failure; nil while snapshots flow
	errSince  time.Time // when the agent stopped answering
	links     map[string]*ring
	events    []*hapb.Event // newest first, bounded by maxEventsKept
	eventSeen map[eventKey]bool

	focus   panel
	scroll  [numPanels]int
	lens    [numPanels]int // content lines per panel at the last render
	rows    [numPanels]int // rows each panel got at the last render
	ov      overlay
	confirm opKind
	op      *opRun
	opSeq   int
	notice  string
	left    bool

	frame string
	dirty bool
}

type eventKey struct {
	seq        uint64
	unix       int64
	node, kind string
	detail     string
}

// NewDashboard returns the dashboard model. It subscribes to the agent's
// Watch stream at once, in a goroutine that ends with ctx or when the
// operator leaves, re-subscribing with a bounded backoff while the agent
// does not answer.
func NewDashboard(ctx context.Context, opts Options) tea.Model {
	d := newDashboard(ctx, opts)
	if opts.Agent != nil {
		go watch(d.ctx, opts.Agent, d.feed, d.now)
	}
	return d
}

func newDashboard(ctx context.Context, opts Options) *Dashboard {
	cctx, cancel := context.WithCancel(ctx)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	r := opts.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	return &Dashboard{
		ctx: cctx, cancel: cancel, agent: opts.Agent, admin: opts.Admin, now: now,
		st: newStyles(r), feed: newFeed(),
		width: opts.Width, height: opts.Height,
		links: map[string]*ring{}, eventSeen: map[eventKey]bool{},
		focus: panelEvents, dirty: true,
	}
}

// Init starts reading the feed and the one-second tick.
func (d *Dashboard) Init() tea.Cmd {
	return tea.Batch(d.feed.wait(d.ctx), d.tick())
}

func (d *Dashboard) tick() tea.Cmd {
	return tea.Tick(tickEvery, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Update handles one message.
func (d *Dashboard) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if d.left {
		return d, nil
	}
	switch msg := msg.(type) {
	case updatesMsg:
		for _, u := range msg.items {
			d.apply(u)
		}
		d.dirty = true
		return d, d.feed.wait(d.ctx)
	case tickMsg:
		d.dirty = true
		return d, d.tick()
	case tea.WindowSizeMsg:
		if msg.Width != d.width || msg.Height != d.height {
			d.width, d.height = msg.Width, msg.Height
			d.dirty = true
		}
		return d, nil
	case progressMsg:
		if d.op == nil || msg.id != d.op.id {
			return d, nil
		}
		d.op.steps = append(d.op.steps, msg.p)
		d.dirty = true
		return d, waitOp(d.ctx, d.op)
	case opEndMsg:
		if d.op == nil || msg.id != d.op.id {
			return d, nil
		}
		d.op.done, d.op.err = true, msg.err
		d.dirty = true
		return d, nil
	case tea.KeyMsg:
		cmd := d.key(msg)
		d.dirty = true
		return d, cmd
	}
	return d, nil
}

// apply folds one update into the model: the snapshot, the RTT rings and
// the event history; or the agent's silence.
func (d *Dashboard) apply(u update) {
	if u.err != nil {
		if d.agentErr == nil {
			d.errSince = u.at
		}
		d.agentErr = u.err
		return
	}
	d.agentErr = nil
	d.snap = u.snap
	for _, l := range u.snap.GetLinks() {
		r := d.links[l.GetName()]
		if r == nil {
			if len(d.links) >= 16 { // a bound against a peer inventing links
				continue
			}
			r = &ring{}
			d.links[l.GetName()] = r
		}
		r.add(sample{at: u.at, rtt: l.GetRtt().AsDuration(), connected: l.GetConnected()})
	}
	d.mergeEvents(u.snap.GetRecentEvents())
}

// mergeEvents adds the events not seen yet, keeping the history newest
// first and bounded. An operator scrolled into the history keeps looking at
// the same events.
func (d *Dashboard) mergeEvents(evs []*hapb.Event) {
	var fresh []*hapb.Event
	for _, e := range evs {
		k := eventKey{seq: e.GetSeq(), unix: e.GetTime().AsTime().UnixNano(), node: e.GetNode(), kind: e.GetKind(), detail: e.GetDetail()}
		if d.eventSeen[k] {
			continue
		}
		d.eventSeen[k] = true
		fresh = append(fresh, e)
	}
	if len(fresh) == 0 {
		return
	}
	all := append(fresh, d.events...)
	// Newest first by time; stable, so the agent's order breaks ties.
	sortEvents(all)
	if len(all) > maxEventsKept {
		for _, e := range all[maxEventsKept:] {
			delete(d.eventSeen, eventKey{seq: e.GetSeq(), unix: e.GetTime().AsTime().UnixNano(), node: e.GetNode(), kind: e.GetKind(), detail: e.GetDetail()})
		}
		all = all[:maxEventsKept]
	}
	if d.scroll[panelEvents] > 0 {
		d.scroll[panelEvents] += len(all) - len(d.events)
	}
	d.events = all
}

// key handles a key press; overlays take the keys first.
func (d *Dashboard) key(k tea.KeyMsg) tea.Cmd {
	s := k.String()
	if s == "ctrl+c" {
		return d.leave()
	}
	d.notice = ""
	switch d.ov {
	case overlayHelp:
		d.ov = overlayNone
		return nil
	case overlayConfirm:
		d.ov = overlayNone
		if s == "y" || s == "Y" {
			return d.startOp(d.confirm)
		}
		d.notice = "cancelled: nothing was changed"
		return nil
	case overlayProgress:
		if d.op != nil && !d.op.done {
			if s == "q" {
				return d.leave()
			}
			return nil
		}
		switch s {
		case "enter", "esc", "q", " ":
			d.ov = overlayNone
		}
		return nil
	}
	switch s {
	case "q", "esc":
		return d.leave()
	case "?":
		d.ov = overlayHelp
	case "tab":
		d.focus = (d.focus + 1) % numPanels
	case "shift+tab":
		d.focus = (d.focus + numPanels - 1) % numPanels
	case "up", "k":
		d.scrollBy(-1)
	case "down", "j":
		d.scrollBy(1)
	case "pgup":
		d.scrollBy(-d.page())
	case "pgdown", " ":
		d.scrollBy(d.page())
	case "home", "g":
		d.scroll[d.focus] = 0
	case "end", "G":
		d.scrollBy(1 << 20)
	case "s":
		return d.ask(opStop)
	case "S", "t":
		return d.ask(opStart)
	}
	return nil
}

func (d *Dashboard) ask(k opKind) tea.Cmd {
	if !d.admin {
		d.notice = "stopping or starting the cluster needs the admin role"
		return nil
	}
	if d.op != nil && !d.op.done {
		d.ov = overlayProgress
		return nil
	}
	d.confirm, d.ov = k, overlayConfirm
	return nil
}

func (d *Dashboard) startOp(k opKind) tea.Cmd {
	if d.agent == nil {
		d.notice = "no agent to ask"
		return nil
	}
	d.opSeq++
	d.op = &opRun{id: d.opSeq, kind: k, ch: make(chan tea.Msg, 16)}
	d.ov = overlayProgress
	go runOp(d.ctx, d.agent, d.op)
	return waitOp(d.ctx, d.op)
}

// leave ends the watch and any viewing of an operation, and tells the host.
func (d *Dashboard) leave() tea.Cmd {
	d.left = true
	d.cancel()
	return func() tea.Msg { return ExitMsg{} }
}

// scrollBy moves the focused panel; render clamps it to its content.
func (d *Dashboard) scrollBy(n int) {
	v := d.scroll[d.focus] + n
	if lim := d.scrollLimit(d.focus); v > lim {
		v = lim
	}
	d.scroll[d.focus] = max(v, 0)
}

func (d *Dashboard) page() int { return max(d.height/3, 1) }

// View returns the frame, rebuilt only after something changed.
func (d *Dashboard) View() string {
	if d.left {
		return ""
	}
	if d.dirty {
		d.frame = d.render()
		d.dirty = false
	}
	return d.frame
}
