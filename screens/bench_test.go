package screens

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
)

// hubAgent serves Watch as the real agent does (hactl/hub.go): it keeps the
// latest snapshot and wakes every watcher, which sends it if newer than
// what it sent last. One publish reaches every dashboard.
type hubAgent struct {
	hapb.UnimplementedAgentServer
	mu      sync.Mutex
	latest  *hapb.Snapshot
	changed chan struct{}
}

func newHubAgent() *hubAgent {
	return &hubAgent{latest: &hapb.Snapshot{}, changed: make(chan struct{})}
}

func (h *hubAgent) publish(s *hapb.Snapshot) {
	h.mu.Lock()
	h.latest = s
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

func (h *hubAgent) Watch(_ *hapb.WatchRequest, stream hapb.Agent_WatchServer) error {
	var sent uint64
	for {
		h.mu.Lock()
		s, ch := h.latest, h.changed
		h.mu.Unlock()
		if s.GetSeq() > sent {
			if err := stream.Send(s); err != nil {
				return err
			}
			sent = s.GetSeq()
		}
		select {
		case <-ch:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// frameSpy is a program's output: it signals when a frame carries want.
type frameSpy struct {
	mu   sync.Mutex
	want []byte
	hit  chan struct{}
}

func (f *frameSpy) expect(want string) {
	f.mu.Lock()
	f.want = []byte(want)
	f.mu.Unlock()
}

func (f *frameSpy) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.want != nil && bytes.Contains(p, f.want) {
		f.want = nil
		f.hit <- struct{}{}
	}
	f.mu.Unlock()
	return len(p), nil
}

// host is what the console does with the dashboard: run it, quit on ExitMsg.
type host struct{ tea.Model }

func (h host) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(ExitMsg); ok {
		return h, tea.Quit
	}
	m, cmd := h.Model.Update(msg)
	return host{m}, cmd
}

// runDashboards starts n dashboards in real bubbletea programs, each
// watching agent through its own gRPC stream and writing to its own spy.
func runDashboards(b *testing.B, ctx context.Context, agent hapb.AgentClient, n int) []*frameSpy {
	b.Helper()
	spies := make([]*frameSpy, n)
	var wg sync.WaitGroup
	var progs []*tea.Program
	for i := range spies {
		spies[i] = &frameSpy{hit: make(chan struct{}, 1)}
		m := NewDashboard(ctx, Options{Agent: agent, Renderer: colourRenderer(), Width: 120, Height: 40})
		p := tea.NewProgram(host{m}, tea.WithInput(nil), tea.WithOutput(spies[i]), tea.WithoutSignalHandler(), tea.WithContext(ctx))
		progs = append(progs, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = p.Run()
		}()
	}
	b.Cleanup(func() {
		for _, p := range progs {
			p.Quit()
		}
		wg.Wait()
	})
	return spies
}

// change returns the base snapshot with a newest event that names i, the
// agent's stamps set to now.
func change(base *hapb.Snapshot, i int) (*hapb.Snapshot, string) {
	s := proto.Clone(base).(*hapb.Snapshot)
	marker := fmt.Sprintf("change-%06d", i)
	now := timestamppb.Now()
	s.Seq, s.SampledAt, s.ChangedAt = uint64(i+1), now, now
	s.RecentEvents = append([]*hapb.Event{{Seq: uint64(1000 + i), Time: now, Node: "primary-node", Kind: "bench", Detail: marker}}, s.RecentEvents...)
	return s, marker
}

func waitHit(b *testing.B, ctx context.Context, s *frameSpy, marker string) {
	select {
	case <-s.hit:
	case <-ctx.Done():
		b.Fatalf("no frame showed %s: %v", marker, ctx.Err())
	}
}

// BenchmarkChangeToFrame measures, per snapshot, the time from the agent's
// stamp (changed_at, set just before the Watch server sends it) to the
// program writing a frame that shows the change. It includes gRPC over a
// unix socket, the model's update and view, and bubbletea's renderer, which
// flushes at most 60 times a second (so about 8 ms of the figure is the
// wait for its next flush).
func BenchmarkChangeToFrame(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h := newHubAgent()
	agent := serve(b, h)
	spy := runDashboards(b, ctx, agent, 1)[0]
	base := healthy()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Publish at varied phases of the renderer's 60 Hz flush, as a
		// real change would arrive (a fixed pace would lock onto it).
		b.StopTimer()
		time.Sleep(time.Duration(i*7919%17) * time.Millisecond)
		b.StartTimer()
		s, marker := change(base, i)
		spy.expect(marker)
		h.publish(s)
		waitHit(b, ctx, spy, marker)
		lat = append(lat, time.Since(s.GetChangedAt().AsTime()))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)]) / 1e6
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
}

// BenchmarkTwentyDashboards feeds one stream of snapshots to 20 open
// dashboards (20 Watch streams, 20 programs) and reports the process CPU
// time per snapshot: for all 20, and per dashboard. The in-process gRPC
// server's cost of sending is included, so this is an upper bound.
func BenchmarkTwentyDashboards(b *testing.B) {
	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h := newHubAgent()
	agent := serve(b, h)
	spies := runDashboards(b, ctx, agent, n)
	base := healthy()
	// Warm up: every dashboard has drawn a first frame.
	s, marker := change(base, 0)
	for _, sp := range spies {
		sp.expect(marker)
	}
	h.publish(s)
	for _, sp := range spies {
		waitHit(b, ctx, sp, marker)
	}
	lat := make([]time.Duration, 0, b.N)
	before := cpuTime(b)
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		s, marker := change(base, i)
		for _, sp := range spies {
			sp.expect(marker)
		}
		h.publish(s)
		for _, sp := range spies {
			waitHit(b, ctx, sp, marker)
		}
		lat = append(lat, time.Since(s.GetChangedAt().AsTime()))
	}
	b.StopTimer()
	cpu := cpuTime(b) - before
	b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/update")
	b.ReportMetric(float64(cpu)/1e3/float64(b.N*n), "cpu-us/dashboard-update")
	reportLatency(b, lat)
}

// BenchmarkUpdateView is the model alone: fold one snapshot in and draw
// the 120x40 frame (what every dashboard does per change).
func BenchmarkUpdateView(b *testing.B) {
	for _, r := range []struct {
		name string
		opts Options
	}{{"ascii", Options{Renderer: asciiRenderer()}}, {"colour", Options{Renderer: colourRenderer()}}} {
		b.Run(r.name, func(b *testing.B) {
			r.opts.Width, r.opts.Height = 120, 40
			d, c := testDashboard(b, r.opts)
			feedMinute(d, c, healthy())
			base := healthy()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, _ := change(base, i)
				d.Update(updatesMsg{items: []update{{snap: s, at: t0}}})
				if d.View() == "" {
					b.Fatal("empty frame")
				}
			}
		})
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var _ io.Writer = (*frameSpy)(nil)
