package screens

import (
	"context"
	"errors"
	"fmt"
	"io"

	tea "github.com/charmbracelet/bubbletea"
	"google.golang.org/grpc"

	"github.com/hapair/hapair/hactl/hapb"
)

// opKind is an operation an admin may start from the dashboard.
type opKind int

const (
	opStop opKind = iota + 1
	opStart
)

func (k opKind) verb() string {
	if k == opStop {
		return "Stopping"
	}
	return "Starting"
}

// opRun is one operation streaming its steps from the agent.
type opRun struct {
	id    int
	kind  opKind
	steps []*hapb.Progress
	done  bool  // the stream ended
	err   error // why it failed (nil on success)
	ch    chan tea.Msg
}

// progressMsg is one step of operation id; opEndMsg its end.
type (
	progressMsg struct {
		id int
		p  *hapb.Progress
	}
	opEndMsg struct {
		id  int
		err error
	}
)

// runOp calls the agent and forwards each step to ch until the stream ends
// or ctx does. The agent carries the operation on even if the dashboard
// leaves (its operations are detached from the caller); only the viewing
// stops.
func runOp(ctx context.Context, agent hapb.AgentClient, op *opRun) {
	send := func(m tea.Msg) bool {
		select {
		case op.ch <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var (
		stream grpc.ServerStreamingClient[hapb.Progress]
		err    error
	)
	switch op.kind {
	case opStop:
		stream, err = agent.ClusterStop(ctx, &hapb.ClusterStopRequest{})
	default:
		stream, err = agent.ClusterStart(ctx, &hapb.ClusterStartRequest{})
	}
	if err != nil {
		send(opEndMsg{id: op.id, err: fmt.Errorf("ask the agent: %w", err)})
		return
	}
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			send(opEndMsg{id: op.id})
			return
		}
		if err != nil {
			send(opEndMsg{id: op.id, err: err})
			return
		}
		if !send(progressMsg{id: op.id, p: p}) {
			return
		}
	}
}

// waitOp reads the next message of op (nil once ctx ended).
func waitOp(ctx context.Context, op *opRun) tea.Cmd {
	return func() tea.Msg {
		select {
		case m := <-op.ch:
			return m
		case <-ctx.Done():
			return nil
		}
	}
}
