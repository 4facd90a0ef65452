package screens

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hapair/hapair/hactl/hapb"
)

// fakeAgent serves the Agent API's Watch, ClusterStop and ClusterStart
// with canned answers, over a real gRPC server on a unix socket. It is a
// fake for the dashboard's logic tests only.
type fakeAgent struct {
	hapb.UnimplementedAgentServer

	// snaps feeds every Watch stream; a nil snapshot makes the stream that
	// reads it fail (as an agent restarting would).
	snaps chan *hapb.Snapshot
	// steps are the Progress messages of ClusterStop and ClusterStart; when
	// gate is set, each step after the first waits for a value on it.
	steps []*hapb.Progress
	gate  chan struct{}

	mu           sync.Mutex
	watches      int
	stops        int
	starts       int
	watchEnded   chan struct{} // one value each time a Watch stream ends
	stopFinished chan struct{}
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{
		snaps: make(chan *hapb.Snapshot), watchEnded: make(chan struct{}, 16),
		stopFinished: make(chan struct{}, 4),
	}
}

func (f *fakeAgent) Watch(_ *hapb.WatchRequest, stream hapb.Agent_WatchServer) error {
	f.mu.Lock()
	f.watches++
	f.mu.Unlock()
	defer func() { f.watchEnded <- struct{}{} }()
	for {
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case s := <-f.snaps:
			if s == nil {
				return status.Error(codes.Unavailable, "the agent is shutting down")
			}
			if err := stream.Send(s); err != nil {
				return err
			}
		}
	}
}

func (f *fakeAgent) progress(stream grpc.ServerStreamingServer[hapb.Progress]) error {
	for i, p := range f.steps {
		if i > 0 && f.gate != nil {
			select {
			case <-f.gate:
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		if err := stream.Send(p); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeAgent) ClusterStop(_ *hapb.ClusterStopRequest, stream hapb.Agent_ClusterStopServer) error {
	f.mu.Lock()
	f.stops++
	f.mu.Unlock()
	defer func() { f.stopFinished <- struct{}{} }()
	return f.progress(stream)
}

func (f *fakeAgent) ClusterStart(_ *hapb.ClusterStartRequest, stream hapb.Agent_ClusterStartServer) error {
	f.mu.Lock()
	f.starts++
	f.mu.Unlock()
	return f.progress(stream)
}

func (f *fakeAgent) counts() (watches, stops, starts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watches, f.stops, f.starts
}

// serve starts f on a unix socket in a temporary directory and returns a
// client of it; both stop when the test ends.
func serve(t testing.TB, f hapb.AgentServer) hapb.AgentClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	srv := grpc.NewServer()
	hapb.RegisterAgentServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		<-done
	})
	return hapb.NewAgentClient(conn)
}

// send hands s to the next Watch stream that reads, or fails the test when
// the context ends first.
func (f *fakeAgent) send(ctx context.Context, t testing.TB, s *hapb.Snapshot) {
	t.Helper()
	select {
	case f.snaps <- s:
	case <-ctx.Done():
		t.Fatalf("no Watch stream took the snapshot: %v", ctx.Err())
	}
}

func errFailedPrecondition(msg string) error { return status.Error(codes.FailedPrecondition, msg) }
