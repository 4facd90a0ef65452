package commands

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

// ProgressPrinter prints the steps of a long agent operation (stop, start,
// switchover, teardown, deploy) as they arrive. The console's commands and
// the hactl CLI share it.
type ProgressPrinter struct {
	// W receives one line per step.
	W io.Writer
}

// ProgressResult is what Follow saw of an operation.
type ProgressResult struct {
	// Steps is how many steps arrived.
	Steps int
	// Last is the last step received, nil when none did.
	Last *hapb.Progress
	// Done is true when the agent sent its final step (Progress.done).
	Done bool
}

// Follow reads st until it ends and writes every step to W the moment it
// arrives: its text, then ": detail" when the agent gave one, cleaned of
// control and non-ASCII characters (view.Clean). It returns what it saw and
// nil when the stream ended normally (io.EOF), or the stream's error (a gRPC
// status error; a cancelled context gives codes.Canceled).
func (p ProgressPrinter) Follow(st grpc.ServerStreamingClient[hapb.Progress]) (ProgressResult, error) {
	var res ProgressResult
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.Steps++
		res.Last = m
		res.Done = res.Done || m.GetDone()
		fmt.Fprintln(p.W, p.line(m))
	}
}

// line formats one step.
func (p ProgressPrinter) line(m *hapb.Progress) string {
	var b strings.Builder
	b.WriteString(view.Clean(m.GetStep()))
	if d := view.Clean(m.GetDetail()); d != "" {
		b.WriteString(": " + d)
	}
	return b.String()
}
