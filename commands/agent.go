package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/view"
)

// ExitFailure means the command ran but what it asked for failed: the
// agent refused or the operation went wrong. It shares the value 1 with
// ExitDegraded (as a status, degraded; as an operation, failed).
const ExitFailure = 1

// quickCallTimeout bounds a call that the agent answers at once (Status,
// Events, SetMaintenance): a hung agent must not hang the session.
const quickCallTimeout = 10 * time.Second

// operationTimeout bounds how long a long operation is followed. The agent
// bounds every operation it runs to 3 minutes; this leaves it a margin, so
// only an agent that stopped answering mid-way (frozen, not crashed) meets
// it.
const operationTimeout = 4 * time.Minute

// errNoAgent is the reason given when the console has no agent client.
var errNoAgent = errors.New("the console could not connect to its unix socket")

// agentOr returns env.Agent, or reports that the agent does not answer and
// returns nil with ExitNotRunning.
func agentOr(env *Env) (hapb.AgentClient, int) {
	if env.Agent == nil {
		return nil, agentDown(env, errNoAgent.Error())
	}
	return env.Agent, ExitOK
}

// agentDown writes the error for an agent that cannot be reached.
func agentDown(env *Env, reason string) int {
	fmt.Fprintf(env.Stderr, "Error: the HA agent on this node does not answer: %s\n", view.Clean(reason))
	return ExitNotRunning
}

// callFailed reports a failed agent call (what says what was asked, e.g.
// "stop cluster services") and returns its exit code: ExitAborted when ctx
// was cancelled (the operator pressed ^C), ExitNotRunning when the agent
// does not answer, ExitFailure with the agent's own message otherwise.
func callFailed(ctx context.Context, env *Env, what string, err error) int {
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Fprintf(env.Stderr, "Interrupted: %s.\n", what)
		return ExitAborted
	}
	st, ok := status.FromError(err)
	if !ok {
		fmt.Fprintf(env.Stderr, "Error: %s: %s\n", what, view.Clean(err.Error()))
		return ExitFailure
	}
	switch st.Code() {
	case codes.Unavailable:
		return agentDown(env, st.Message())
	case codes.DeadlineExceeded:
		if ctx.Err() != nil {
			return agentDown(env, "no answer within "+quickCallTimeout.String())
		}
	case codes.Canceled:
		fmt.Fprintf(env.Stderr, "Interrupted: %s.\n", what)
		return ExitAborted
	}
	fmt.Fprintf(env.Stderr, "Error: %s: %s\n", what, view.Clean(st.Message()))
	return ExitFailure
}

// operation describes one long agent operation for runOperation.
type operation struct {
	// what names it for messages: "stop cluster services".
	what string
	// start opens the agent's progress stream.
	start func(ctx context.Context, c hapb.AgentClient) (grpc.ServerStreamingClient[hapb.Progress], error)
	// after, when not "", is printed after a successful operation unless a
	// step already said it.
	after string
}

// runOperation runs op against the agent and prints every step as it
// arrives, then the total time. ^C (ctx cancelled) stops following at once
// and says what the agent is still doing: the agent runs an operation it
// has begun detached from its caller, to its end (a half-done handover
// would leave the cluster worse off than either end), so cancelling the
// stream does not undo or stop it.
func runOperation(ctx context.Context, env *Env, op operation) int {
	c, code := agentOr(env)
	if c == nil {
		return code
	}
	start := time.Now()
	octx, cancel := context.WithTimeout(ctx, operationTimeout)
	defer cancel()
	pp := ProgressPrinter{W: env.Stdout}
	var res ProgressResult
	st, err := op.start(octx, c)
	if err == nil {
		res, err = pp.Follow(st)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return interrupted(env, op.what, res)
		case octx.Err() != nil:
			fmt.Fprintf(env.Stderr, "Error: %s: the agent reported no end within %s. It may still be "+
				"working: check with ha_status or ha_events.\n", op.what, operationTimeout)
			return ExitFailure
		}
		return callFailed(octx, env, op.what, err)
	}
	if op.after != "" && !sawStep(res, op.after) {
		fmt.Fprintln(env.Stdout, op.after)
	}
	// Milliseconds, as the agent gives its own times ("in 471ms"): the
	// operator compares the two.
	fmt.Fprintf(env.Stdout, "Done in %s.\n", time.Since(start).Round(time.Millisecond))
	return ExitOK
}

// interrupted explains a ^C during an operation and returns ExitAborted.
func interrupted(env *Env, what string, res ProgressResult) int {
	msg := "Interrupted (" + what + "): this session no longer follows it. "
	if res.Steps > 0 {
		msg += "The agent carries on with it to the end: an operation it has begun is never " +
			"abandoned half-way. Watch it with ha_status or ha_events."
	} else {
		msg += "The agent had reported no step yet: it may not have started; if it had, it " +
			"carries on to the end. Check with ha_status or ha_events."
	}
	writeWrapped(env.Stderr, msg, 0)
	return ExitAborted
}

func sawStep(res ProgressResult, text string) bool {
	return res.Last != nil && strings.Contains(res.Last.GetStep(), text)
}

// confirm asks the operator to type yes. It returns ExitOK on yes, or the
// exit code to return: ExitAborted when the answer is anything else, on ^C,
// ^D or a cancelled context (nothing done).
func confirm(ctx context.Context, env *Env, prompt string) int {
	answer, err := env.Term.ReadLine(ctx, prompt)
	switch {
	case errors.Is(err, io.EOF):
		fmt.Fprintln(env.Stderr, "No answer: aborted, nothing was changed.")
		return ExitAborted
	case err != nil:
		fmt.Fprintln(env.Stderr, "Interrupted: aborted, nothing was changed.")
		return ExitAborted
	case strings.EqualFold(strings.TrimSpace(answer), "yes"):
		return ExitOK
	}
	fmt.Fprintln(env.Stderr, "Aborted: nothing was changed (type yes to confirm).")
	return ExitAborted
}

// noArgs rejects positional arguments for commands that take none.
func noArgs(env *Env, args []string) int {
	if len(args) > 0 {
		return env.Usagef("unexpected argument %q", args[0])
	}
	return ExitOK
}
