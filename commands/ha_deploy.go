package commands

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"

	"github.com/hapair/hapair/hactl/hapb"
)

// deployField is one value of a deployment: its flag, where it goes in the
// request, and the question asked when it is required and missing.
type deployField struct {
	flag, usage, question string
	required              func(req *hapb.DeployRequest) bool
	value                 func(req *hapb.DeployRequest) *string
}

func always(*hapb.DeployRequest) bool { return true }

// withWitness: the witness's name and token are required once its address
// is given.
func withWitness(req *hapb.DeployRequest) bool { return req.GetWitnessAgentAddr() != "" }

var deployFields = []deployField{
	{"peer-name", "the other node's `name` (shown with its pairing token)", "Name of the other node: ",
		always, func(r *hapb.DeployRequest) *string { return &r.PeerName }},
	{"peer", "the other node's agent `ip:port`", "Agent address of the other node (ip:port): ",
		always, func(r *hapb.DeployRequest) *string { return &r.PeerAgentAddr }},
	{"token", "the pairing `token` read on the other node", "Pairing token read on the other node: ",
		always, func(r *hapb.DeployRequest) *string { return &r.PairingToken }},
	{"vip", "the virtual `ip` of the pair (default: this node's configured one)", "",
		nil, func(r *hapb.DeployRequest) *string { return &r.Vip }},
	{"vip-mode", "userspace or linux (default: this node's configured one)", "",
		nil, func(r *hapb.DeployRequest) *string { return &r.VipMode }},
	{"cluster", "the cluster `name` (default: this node's configured one)", "",
		nil, func(r *hapb.DeployRequest) *string { return &r.ClusterName }},
	{"replication", "async, sync or sync-strict (default: this node's configured one)", "",
		nil, func(r *hapb.DeployRequest) *string { return &r.ReplicationMode }},
	{"witness", "the witness's agent `ip:port` (optional)", "",
		nil, func(r *hapb.DeployRequest) *string { return &r.WitnessAgentAddr }},
	{"witness-name", "the witness's node `name`", "Name of the witness: ",
		withWitness, func(r *hapb.DeployRequest) *string { return &r.WitnessName }},
	{"witness-token", "the pairing `token` read on the witness", "Pairing token read on the witness: ",
		withWitness, func(r *hapb.DeployRequest) *string { return &r.WitnessPairingToken }},
}

func haDeploy() *Command {
	return &Command{
		Name:    "ha_deploy",
		Summary: "Form a cluster with another stand-alone node",
		Usage:   "ha_deploy [--peer-name N --peer IP:PORT --token T] [--vip IP] [flags]",
		Help: "Run on the stand-alone node whose database is to be kept: it becomes the Active " +
			"node and the other node is cloned from it as Standby (its old data kept aside). " +
			"First get a one-time pairing token on the other node (ha_pairing_token in that node's console, or hactl pairing-token there), " +
			"and on the witness if there is one; then give the tokens here. Missing required " +
			"values are asked for in the interactive console; in exec mode they must be flags.\n\n" +
			"Every step is printed as the agent reports it. ^C stops following here; once the " +
			"agent has begun it still finishes the deployment.\n\n" +
			"Exit status: 0 done, 1 the agent refused or the deployment failed, 2 the agent does " +
			"not answer, 64 missing values in exec mode, 130 interrupted.",
		Flags: func(fs *flag.FlagSet) {
			for _, f := range deployFields {
				fs.String(f.flag, "", f.usage)
			}
		},
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			if _, code := agentOr(env); code != ExitOK {
				return code
			}
			req := &hapb.DeployRequest{}
			for _, f := range deployFields {
				*f.value(req) = strings.TrimSpace(env.String(f.flag))
			}
			if code := askMissing(ctx, env, req); code != ExitOK {
				return code
			}
			return runOperation(ctx, env, operation{
				what: "deploying the cluster",
				start: func(ctx context.Context, c hapb.AgentClient) (grpc.ServerStreamingClient[hapb.Progress], error) {
					return c.Deploy(ctx, req)
				},
			})
		},
	}
}

// askMissing fills the required values that are empty by asking on the
// terminal, or, without one, refuses with the list of missing flags.
func askMissing(ctx context.Context, env *Env, req *hapb.DeployRequest) int {
	var missing []string
	for _, f := range deployFields {
		if f.required != nil && f.required(req) && *f.value(req) == "" {
			missing = append(missing, "--"+f.flag)
		}
	}
	if len(missing) == 0 {
		return ExitOK
	}
	if env.Term == nil {
		return env.Usagef("missing %s (exec mode cannot ask for them)", strings.Join(missing, ", "))
	}
	for _, f := range deployFields {
		if f.required == nil || !f.required(req) || *f.value(req) != "" {
			continue
		}
		// A bounded number of tries: an empty answer asks again.
		for try := 0; *f.value(req) == ""; try++ {
			if try == 3 {
				fmt.Fprintf(env.Stderr, "No value for --%s: aborted, nothing was changed.\n", f.flag)
				return ExitAborted
			}
			answer, err := env.Term.ReadLine(ctx, f.question)
			if err != nil {
				if errors.Is(err, io.EOF) {
					fmt.Fprintln(env.Stderr, "No answer: aborted, nothing was changed.")
				} else {
					fmt.Fprintln(env.Stderr, "Interrupted: aborted, nothing was changed.")
				}
				return ExitAborted
			}
			*f.value(req) = strings.TrimSpace(answer)
		}
	}
	return ExitOK
}
