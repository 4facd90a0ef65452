package commands

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hapair/hapair/hactl/hapb"
)

// fakeAgent is an Agent server with canned answers, served by a real gRPC
// server so that commands go through real streams, status codes and
// cancellation.
type fakeAgent struct {
	hapb.UnimplementedAgentServer

	mu sync.Mutex
	// snap is what Status answers; statusErr, when set, is returned instead.
	snap      *hapb.Snapshot
	statusErr error
	// events is what Events answers (it honours the limit as the agent does).
	events []*hapb.Event
	// steps are streamed by every operation, then opErr is returned.
	steps []*hapb.Progress
	opErr error
	// block makes operations wait, after their steps, until the caller
	// goes away; cancelled is closed when it does.
	block     bool
	cancelled chan struct{}
	// calls records each RPC by name; requests keeps their requests;
	// called is closed at the first call.
	calls    []string
	requests []proto.Message
	called   chan struct{}
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{snap: healthySnapshot(), cancelled: make(chan struct{}), called: make(chan struct{})}
}

func (f *fakeAgent) record(name string, req proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		close(f.called)
	}
	f.calls = append(f.calls, name)
	f.requests = append(f.requests, req)
}

// Calls returns the RPCs received so far.
func (f *fakeAgent) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// lastRequest returns the last request received.
func (f *fakeAgent) lastRequest() proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return nil
	}
	return f.requests[len(f.requests)-1]
}

func (f *fakeAgent) Status(ctx context.Context, req *hapb.StatusRequest) (*hapb.Snapshot, error) {
	f.record("Status", req)
	if f.statusErr != nil {
		return nil, f.statusErr
	}
	return f.snap, nil
}

func (f *fakeAgent) Events(ctx context.Context, req *hapb.EventsRequest) (*hapb.EventsResponse, error) {
	f.record("Events", req)
	evs := f.events
	if n := int(req.GetLimit()); n < len(evs) {
		evs = evs[:n]
	}
	return &hapb.EventsResponse{Events: evs}, nil
}

func (f *fakeAgent) SetMaintenance(ctx context.Context, req *hapb.SetMaintenanceRequest) (*hapb.SetMaintenanceResponse, error) {
	f.record("SetMaintenance", req)
	if f.opErr != nil {
		return nil, f.opErr
	}
	return &hapb.SetMaintenanceResponse{Enabled: req.GetEnabled()}, nil
}

// operate streams the canned steps, then blocks or ends as configured.
func (f *fakeAgent) operate(ctx context.Context, send func(*hapb.Progress) error) error {
	for _, p := range f.steps {
		if err := send(p); err != nil {
			return err
		}
	}
	if f.block {
		<-ctx.Done()
		close(f.cancelled)
		return status.FromContextError(ctx.Err()).Err()
	}
	return f.opErr
}

func (f *fakeAgent) ClusterStop(req *hapb.ClusterStopRequest, st hapb.Agent_ClusterStopServer) error {
	f.record("ClusterStop", req)
	return f.operate(st.Context(), st.Send)
}

func (f *fakeAgent) ClusterStart(req *hapb.ClusterStartRequest, st hapb.Agent_ClusterStartServer) error {
	f.record("ClusterStart", req)
	return f.operate(st.Context(), st.Send)
}

func (f *fakeAgent) Switchover(req *hapb.SwitchoverRequest, st hapb.Agent_SwitchoverServer) error {
	f.record("Switchover", req)
	return f.operate(st.Context(), st.Send)
}

func (f *fakeAgent) Teardown(req *hapb.TeardownRequest, st hapb.Agent_TeardownServer) error {
	f.record("Teardown", req)
	if !req.GetConfirm() {
		return status.Error(codes.InvalidArgument, "teardown destroys the HA cluster configuration: confirm it")
	}
	return f.operate(st.Context(), st.Send)
}

func (f *fakeAgent) Deploy(req *hapb.DeployRequest, st hapb.Agent_DeployServer) error {
	f.record("Deploy", req)
	return f.operate(st.Context(), st.Send)
}

// serve starts a gRPC server for f on an in-memory listener and returns a
// client; both are stopped when the test ends.
func serve(t testing.TB, f *fakeAgent) hapb.AgentClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	hapb.RegisterAgentServer(srv, f)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///agent",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return hapb.NewAgentClient(conn)
}

// deadAgent returns a client of a unix socket nobody listens on: a real
// "agent down".
func deadAgent(t *testing.T) hapb.AgentClient {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hactl.sock")
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return hapb.NewAgentClient(conn)
}

func step(text string, done bool) *hapb.Progress {
	return &hapb.Progress{Node: "primary-node", Step: text, Elapsed: durationpb.New(150 * time.Millisecond), Done: done}
}

// answer is one scripted reply of fakeTerm.
type answer struct {
	text string
	err  error
}

// fakeTerm answers ReadLine and ReadPassword from a script; with no answer
// left it returns io.EOF (^D).
type fakeTerm struct {
	mu        sync.Mutex
	answers   []answer
	prompts   []string
	passwords []string // prompts of ReadPassword
}

func (f *fakeTerm) next(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if len(f.answers) == 0 {
		return "", io.EOF
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	return a.text, a.err
}

func (f *fakeTerm) ReadLine(ctx context.Context, prompt string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prompts = append(f.prompts, prompt)
	return f.next(ctx)
}

func (f *fakeTerm) ReadPassword(ctx context.Context, prompt string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords = append(f.passwords, prompt)
	return f.next(ctx)
}

// fakeAccounts is a user store with one rule: at least 12 characters.
type fakeAccounts struct {
	mu        sync.Mutex
	passwords map[string]string
}

func (a *fakeAccounts) ChangePassword(user, oldPassword, newPassword string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, ok := a.passwords[user]
	if !ok || cur != oldPassword {
		return errors.New("the current password is wrong")
	}
	if len(newPassword) < 12 {
		return errors.New("the new password is too short: at least 12 characters")
	}
	a.passwords[user] = newPassword
	return nil
}

// syncBuffer is a goroutine-safe output that can wait for a text.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	waitFor string
	seen    chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	if s.seen != nil && s.waitFor != "" && strings.Contains(s.b.String(), s.waitFor) {
		close(s.seen)
		s.seen = nil
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// when returns a channel closed once text has been written.
func (s *syncBuffer) when(text string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(s.b.String(), text) {
		close(ch)
		return ch
	}
	s.waitFor, s.seen = text, ch
	return ch
}

// session is one console session for a test: its Env and its outputs.
type session struct {
	env            *Env
	stdout, stderr *syncBuffer
	term           *fakeTerm
}

// newSession makes an interactive session (with a terminal) of role on
// agent; exec mode is newSession(...) then s.exec().
func newSession(role string, agent hapb.AgentClient, answers ...answer) *session {
	s := &session{stdout: &syncBuffer{}, stderr: &syncBuffer{}, term: &fakeTerm{answers: answers}}
	s.env = &Env{Stdout: s.stdout, Stderr: s.stderr, Role: role, Interactive: true, User: "alice",
		Agent: agent, Term: s.term, Now: func() time.Time { return fixtureNow }}
	return s
}

// exec turns s into an exec-mode session: no terminal, no dashboard.
func (s *session) exec() *session {
	s.env.Interactive, s.env.Term, s.env.Dashboard = false, nil, nil
	return s
}

func (s *session) run(t *testing.T, line string) int {
	t.Helper()
	return Builtin().Dispatch(context.Background(), s.env, line)
}

// PairingToken answers token, or opErr.
func (f *fakeAgent) PairingToken(ctx context.Context, req *hapb.PairingTokenRequest) (*hapb.PairingTokenResponse, error) {
	f.record("PairingToken", req)
	if f.opErr != nil {
		return nil, f.opErr
	}
	return &hapb.PairingTokenResponse{Token: "K7QF-M2XD-9WRT-B4NC-HPZE", ExpiresAt: timestamppb.New(fixtureNow.Add(15 * time.Minute))}, nil
}
