package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hapair/hapair/hactl/hapb"
)

var doneIn = regexp.MustCompile(`(?m)^Done in ([0-9]+ms|[0-9]+(\.[0-9]{1,3})?s|[0-9]+m[0-9.]+s)\.$`)

// operatorCommands are the commands the operator role may run; every other
// one needs the admin role.
var operatorCommands = []string{"dashboard", "exit", "ha_events", "ha_status", "help", "passwd"}

func TestBuiltinRoles(t *testing.T) {
	r := Builtin()
	want := []string{"dashboard", "exit", "ha_cluster_start", "ha_cluster_stop", "ha_deploy", "ha_events",
		"ha_maintenance", "ha_pairing_token", "ha_status", "ha_switchover", "ha_teardown", "help", "passwd"}
	if got := r.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	var ops []string
	for _, n := range r.Names() {
		c, _ := r.Lookup(n)
		if c.Operator {
			ops = append(ops, n)
		}
	}
	if !reflect.DeepEqual(ops, operatorCommands) {
		t.Fatalf("operator commands %q, want %q", ops, operatorCommands)
	}
}

// TestOperatorRefused runs every admin command as an operator, with and
// without arguments: each is refused before anything reaches the agent.
func TestOperatorRefused(t *testing.T) {
	f := newFakeAgent()
	agent := serve(t, f)
	for _, n := range Builtin().Names() {
		c, _ := Builtin().Lookup(n)
		if c.Operator {
			continue
		}
		for _, line := range []string{n, n + " --yes --force on", n + " --help"} {
			s := newSession(RoleOperator, agent, answer{text: "yes"})
			if code := s.run(t, line); code != ExitPermission {
				t.Errorf("%q as operator: code %d, want %d", line, code, ExitPermission)
			}
			if want := "permission denied: " + n + " needs the admin role\n"; s.stderr.String() != want {
				t.Errorf("%q: stderr %q, want %q", line, s.stderr.String(), want)
			}
			if len(s.term.prompts) != 0 {
				t.Errorf("%q: asked %q", line, s.term.prompts)
			}
		}
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Fatalf("the agent was called: %q", calls)
	}
}

func TestHelpOfBuiltin(t *testing.T) {
	r := Builtin()
	var listing bytes.Buffer
	r.WriteHelp(&listing)
	flat := strings.Join(strings.Fields(listing.String()), " ")
	var all bytes.Buffer
	all.Write(listing.Bytes())
	for _, n := range r.Names() {
		c, _ := r.Lookup(n)
		summary := strings.Join(strings.Fields(c.Summary), " ")
		if !strings.Contains(flat, summary) {
			t.Fatalf("%s: summary %q not in the listing", n, summary)
		}
		if marked := strings.Contains(flat, summary+" (admin)"); marked == c.Operator {
			t.Errorf("%s: marked (admin) %v, operator %v", n, marked, c.Operator)
		}
		var one bytes.Buffer
		if err := r.WriteCommandHelp(&one, n); err != nil {
			t.Fatal(err)
		}
		if says := strings.Contains(one.String(), "needs the admin role"); says == c.Operator {
			t.Errorf("help %s: says admin %v, operator %v", n, says, c.Operator)
		}
		all.Write(one.Bytes())
	}
	for i, l := range strings.Split(all.String(), "\n") {
		if len(l) > HelpWidth {
			t.Errorf("help line %d is %d columns: %q", i+1, len(l), l)
		}
	}
}

func TestStatusCommand(t *testing.T) {
	tests := []struct {
		name string
		snap *hapb.Snapshot
		code int
	}{
		{"healthy", healthySnapshot(), ExitOK},
		{"degraded", degradedSnapshot(), ExitDegraded},
		{"stopped", stoppedSnapshot(), ExitNotRunning},
		{"stand-alone", standAloneSnapshot(), ExitNotEnabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAgent()
			f.snap = tt.snap
			agent := serve(t, f)

			s := newSession(RoleOperator, agent).exec()
			if code := s.run(t, "ha_status"); code != tt.code {
				t.Fatalf("code %d, want %d; stderr %q", code, tt.code, s.stderr.String())
			}
			var want bytes.Buffer
			if err := RenderStatus(&want, tt.snap, fixtureNow, false); err != nil {
				t.Fatal(err)
			}
			if s.stdout.String() != want.String() || s.stderr.String() != "" {
				t.Fatalf("stdout:\n%s\nwant:\n%s\nstderr %q", s.stdout.String(), want.String(), s.stderr.String())
			}

			s = newSession(RoleOperator, agent).exec()
			if code := s.run(t, "ha_st --json"); code != tt.code {
				t.Fatalf("--json: code %d, want %d", code, tt.code)
			}
			var v StatusJSON
			if err := json.Unmarshal([]byte(s.stdout.String()), &v); err != nil {
				t.Fatalf("--json output is not JSON: %v\n%s", err, s.stdout.String())
			}
			if v.Schema != StatusSchema || v.ExitCode != tt.code || v.Node != "primary-node" {
				t.Fatalf("--json: schema %q exit_code %d node %q", v.Schema, v.ExitCode, v.Node)
			}
		})
	}
}

func TestStatusColourOnlyWhenAsked(t *testing.T) {
	agent := serve(t, newFakeAgent())
	s := newSession(RoleOperator, agent)
	s.run(t, "ha_status")
	if strings.Contains(s.stdout.String(), "\x1b") {
		t.Fatal("colour without env.Color")
	}
	s = newSession(RoleOperator, agent)
	s.env.Color = true
	s.run(t, "ha_status")
	if !strings.Contains(s.stdout.String(), "\x1b[32mCluster prod: The cluster is healthy.\x1b[0m") {
		t.Fatalf("no colour with env.Color:\n%q", s.stdout.String())
	}
	s = newSession(RoleOperator, agent)
	s.env.Color = true
	s.run(t, "ha_status --json")
	if strings.Contains(s.stdout.String(), "\x1b") {
		t.Fatal("colour in JSON")
	}
}

// TestAgentDown runs every command that needs the agent against a socket
// nobody listens on, and with no client at all.
func TestAgentDown(t *testing.T) {
	lines := []string{
		"ha_status", "ha_status --json", "ha_events", "ha_cluster_stop", "ha_cluster_start",
		"ha_switchover", "ha_maintenance on", "ha_teardown --yes",
		"ha_deploy --peer-name secondary-node --peer 198.18.0.10:7443 --token T",
	}
	dead := deadAgent(t)
	for _, line := range lines {
		for _, agent := range []hapb.AgentClient{dead, nil} {
			s := newSession(RoleAdmin, agent)
			if code := s.run(t, line); code != ExitNotRunning {
				t.Errorf("%q (client %v): code %d, want %d; stderr %q", line, agent != nil, code, ExitNotRunning, s.stderr.String())
			}
			if !strings.HasPrefix(s.stderr.String(), "Error: the HA agent on this node does not answer: ") {
				t.Errorf("%q: stderr %q", line, s.stderr.String())
			}
			if strings.Contains(s.stdout.String(), "Done") {
				t.Errorf("%q: stdout %q", line, s.stdout.String())
			}
		}
	}
	// An agent that answers Unavailable itself (e.g. not sampled yet).
	f := newFakeAgent()
	f.statusErr = status.Error(codes.Unavailable, "the agent has not sampled its node yet; try again")
	s := newSession(RoleOperator, serve(t, f))
	if code := s.run(t, "ha_status"); code != ExitNotRunning ||
		s.stderr.String() != "Error: the HA agent on this node does not answer: the agent has not sampled its node yet; try again\n" {
		t.Fatalf("code %d, stderr %q", code, s.stderr.String())
	}
	// Any other refusal is the agent's message, exit 1.
	f.statusErr = status.Error(codes.Internal, "boom\x1b[2J")
	s = newSession(RoleOperator, serve(t, f))
	if code := s.run(t, "ha_status"); code != ExitFailure || s.stderr.String() != "Error: read the status: boom\\x1b[2J\n" {
		t.Fatalf("code %d, stderr %q", code, s.stderr.String())
	}
}

func TestOperations(t *testing.T) {
	tests := []struct {
		line    string
		rpc     string
		request proto.Message
	}{
		{"ha_cluster_stop", "ClusterStop", &hapb.ClusterStopRequest{}},
		{"ha_cluster_start", "ClusterStart", &hapb.ClusterStartRequest{}},
		{"ha_switchover", "Switchover", &hapb.SwitchoverRequest{}},
		{"ha_switchover --force", "Switchover", &hapb.SwitchoverRequest{Force: true}},
		{"ha_teardown --yes", "Teardown", &hapb.TeardownRequest{Confirm: true}},
		{"ha_deploy --peer-name secondary-node --peer 198.18.0.10:7443 --token tok --vip 198.18.0.12 " +
			"--cluster prod --replication sync --witness-name witness --witness 198.18.0.20:7443 --witness-token wtok",
			"Deploy", &hapb.DeployRequest{PeerName: "secondary-node", PeerAgentAddr: "198.18.0.10:7443",
				PairingToken: "tok", Vip: "198.18.0.12", ClusterName: "prod", ReplicationMode: "sync",
				WitnessName: "witness", WitnessAgentAddr: "198.18.0.20:7443", WitnessPairingToken: "wtok"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			f := newFakeAgent()
			f.steps = []*hapb.Progress{
				step("Stopping cluster services on primary-node...", false),
				{Node: "primary-node", Step: "VIP 198.18.0.12 released", Detail: "gratuitous ARP \x1b[31msent"},
				step("Handing over to secondary-node...", false),
				step("Cluster services stopped on primary-node in 1.2s.", true),
			}
			s := newSession(RoleAdmin, serve(t, f)).exec()
			if code := s.run(t, tt.line); code != ExitOK {
				t.Fatalf("code %d; stderr %q", code, s.stderr.String())
			}
			want := "Stopping cluster services on primary-node...\n" +
				"VIP 198.18.0.12 released: gratuitous ARP \\x1b[31msent\n" +
				"Handing over to secondary-node...\n" +
				"Cluster services stopped on primary-node in 1.2s.\n"
			out := s.stdout.String()
			out = strings.TrimPrefix(out, TeardownWarning+"\n")
			if !strings.HasPrefix(out, want) || !doneIn.MatchString(out) {
				t.Fatalf("stdout:\n%s\nwant the steps:\n%s", out, want)
			}
			if calls := f.Calls(); !reflect.DeepEqual(calls, []string{tt.rpc}) {
				t.Fatalf("calls %q, want %s", calls, tt.rpc)
			}
			if got := f.lastRequest(); !proto.Equal(got, tt.request) {
				t.Fatalf("request %v, want %v", got, tt.request)
			}
		})
	}
}

func TestOperationFails(t *testing.T) {
	f := newFakeAgent()
	f.steps = []*hapb.Progress{step("Stopping cluster services on primary-node...", false)}
	f.opErr = status.Error(codes.FailedPrecondition, "there is no running standby to hand over to; use ha_teardown to run stand-alone")
	s := newSession(RoleAdmin, serve(t, f))
	if code := s.run(t, "ha_cluster_stop"); code != ExitFailure {
		t.Fatalf("code %d, want %d", code, ExitFailure)
	}
	if s.stdout.String() != "Stopping cluster services on primary-node...\n" {
		t.Fatalf("stdout %q", s.stdout.String())
	}
	if want := "Error: stopping cluster services: there is no running standby to hand over to; use ha_teardown to run stand-alone\n"; s.stderr.String() != want {
		t.Fatalf("stderr %q, want %q", s.stderr.String(), want)
	}
}

// TestOperationInterrupted cancels the session's context (the console's ^C)
// while the agent is in the middle of an operation.
func TestOperationInterrupted(t *testing.T) {
	for _, tc := range []struct {
		line  string
		steps []*hapb.Progress
		say   string
	}{
		{"ha_cluster_stop", []*hapb.Progress{step("Stopping cluster services on primary-node...", false)}, "The agent carries on with it to the end"},
		{"ha_switchover", nil, "it may not have started"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			f := newFakeAgent()
			f.steps, f.block = tc.steps, true
			s := newSession(RoleAdmin, serve(t, f))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan int, 1)
			go func() { done <- Builtin().Dispatch(ctx, s.env, tc.line) }()
			if len(tc.steps) > 0 {
				<-s.stdout.when(tc.steps[0].GetStep())
			} else {
				<-f.called
			}
			cancel()
			if code := <-done; code != ExitAborted {
				t.Fatalf("code %d, want %d", code, ExitAborted)
			}
			<-f.cancelled // the agent saw the caller go away
			said := strings.Join(strings.Fields(s.stderr.String()), " ")
			if !strings.Contains(said, "Interrupted (") || !strings.Contains(said, "this session no longer follows it") || !strings.Contains(said, tc.say) {
				t.Fatalf("stderr %q", s.stderr.String())
			}
			if strings.Contains(s.stdout.String(), "Done in") {
				t.Fatalf("stdout %q", s.stdout.String())
			}
		})
	}
}

func TestTeardownConfirmation(t *testing.T) {
	tests := []struct {
		name     string
		answers  []answer
		exec     bool
		line     string
		code     int
		called   bool
		stderrRE string
	}{
		{"yes", []answer{{text: "yes"}}, false, "ha_teardown", ExitOK, true, `^$`},
		{"YES with spaces", []answer{{text: "  YES "}}, false, "ha_teardown", ExitOK, true, `^$`},
		{"y is not yes", []answer{{text: "y"}}, false, "ha_teardown", ExitAborted, false, `Aborted: nothing was changed`},
		{"no", []answer{{text: "no"}}, false, "ha_teardown", ExitAborted, false, `Aborted: nothing was changed`},
		{"empty", []answer{{text: ""}}, false, "ha_teardown", ExitAborted, false, `Aborted`},
		{"EOF", nil, false, "ha_teardown", ExitAborted, false, `No answer: aborted, nothing was changed`},
		{"^C", []answer{{err: ErrInterrupted}}, false, "ha_teardown", ExitAborted, false, `Interrupted: aborted, nothing was changed`},
		{"--yes does not ask", nil, false, "ha_teardown --yes", ExitOK, true, `^$`},
		{"exec without --yes", nil, true, "ha_teardown", ExitUsage, false, `add --yes`},
		{"exec with --yes", nil, true, "ha_teardown --yes", ExitOK, true, `^$`},
		{"stray argument", nil, true, "ha_teardown now", ExitUsage, false, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAgent()
			f.steps = []*hapb.Progress{
				step("Destroying the HA cluster configuration...", false),
				step(TeardownDone, true),
			}
			s := newSession(RoleAdmin, serve(t, f), tt.answers...)
			if tt.exec {
				s.exec()
			}
			if code := s.run(t, tt.line); code != tt.code {
				t.Fatalf("code %d, want %d; stderr %q", code, tt.code, s.stderr.String())
			}
			if called := len(f.Calls()) > 0; called != tt.called {
				t.Fatalf("agent called: %v, want %v", called, tt.called)
			}
			if !regexp.MustCompile(tt.stderrRE).MatchString(s.stderr.String()) {
				t.Fatalf("stderr %q, want %s", s.stderr.String(), tt.stderrRE)
			}
			out := s.stdout.String()
			if tt.line != "ha_teardown now" && !strings.HasPrefix(out, TeardownWarning+"\n") {
				t.Fatalf("no warning first: %q", out)
			}
			asked := !tt.exec && !strings.Contains(tt.line, "--yes")
			if got := len(s.term.prompts) == 1 && s.term.prompts[0] == "Type yes to continue: "; asked && !got {
				t.Fatalf("prompts %q", s.term.prompts)
			}
			if tt.called && strings.Count(out, TeardownDone) != 1 {
				t.Fatalf("the final sentence is not printed exactly once:\n%s", out)
			}
		})
	}
}

// TestTeardownSaysDone checks the final sentence is printed when the
// agent's last step says something else.
func TestTeardownSaysDone(t *testing.T) {
	f := newFakeAgent()
	f.steps = []*hapb.Progress{step("VIP 198.18.0.12 released", false)}
	s := newSession(RoleAdmin, serve(t, f)).exec()
	if code := s.run(t, "ha_teardown --yes"); code != ExitOK {
		t.Fatalf("code %d", code)
	}
	if !strings.Contains(s.stdout.String(), "VIP 198.18.0.12 released\n"+TeardownDone+"\nDone in ") {
		t.Fatalf("stdout:\n%s", s.stdout.String())
	}
}

func TestDeployAsks(t *testing.T) {
	f := newFakeAgent()
	s := newSession(RoleAdmin, serve(t, f),
		answer{text: "secondary-node"}, answer{text: ""}, answer{text: " 198.18.0.10:7443 "}, answer{text: "tok"})
	if code := s.run(t, "ha_deploy --vip 198.18.0.12"); code != ExitOK {
		t.Fatalf("code %d; stderr %q", code, s.stderr.String())
	}
	wantPrompts := []string{"Name of the other node: ", "Agent address of the other node (ip:port): ",
		"Agent address of the other node (ip:port): ", "Pairing token read on the other node: "}
	if !reflect.DeepEqual(s.term.prompts, wantPrompts) {
		t.Fatalf("prompts %q, want %q", s.term.prompts, wantPrompts)
	}
	want := &hapb.DeployRequest{PeerName: "secondary-node", PeerAgentAddr: "198.18.0.10:7443", PairingToken: "tok", Vip: "198.18.0.12"}
	if got := f.lastRequest(); !proto.Equal(got, want) {
		t.Fatalf("request %v, want %v", got, want)
	}

	// A witness address makes its name and token required.
	s = newSession(RoleAdmin, serve(t, f), answer{text: "witness"}, answer{text: "wtok"})
	if code := s.run(t, "ha_deploy --peer-name secondary-node --peer 198.18.0.10:7443 --token tok --witness 198.18.0.20:7443"); code != ExitOK {
		t.Fatalf("witness: code %d; stderr %q", code, s.stderr.String())
	}
	if r := f.lastRequest().(*hapb.DeployRequest); r.GetWitnessName() != "witness" || r.GetWitnessPairingToken() != "wtok" {
		t.Fatalf("witness request %v", r)
	}

	// ^D and ^C at a question abort; so do three empty answers.
	for _, answers := range [][]answer{nil, {{err: ErrInterrupted}}, {{}, {}, {}}} {
		f := newFakeAgent()
		s := newSession(RoleAdmin, serve(t, f), answers...)
		if code := s.run(t, "ha_deploy"); code != ExitAborted || len(f.Calls()) != 0 {
			t.Fatalf("answers %v: code %d, calls %q", answers, code, f.Calls())
		}
		if !strings.Contains(s.stderr.String(), "nothing was changed") {
			t.Fatalf("stderr %q", s.stderr.String())
		}
	}
}

func TestDeployExecMissing(t *testing.T) {
	tests := []struct{ line, missing string }{
		{"ha_deploy", "missing --peer-name, --peer, --token"},
		{"ha_deploy --peer-name secondary-node --peer 198.18.0.10:7443", "missing --token"},
		{"ha_deploy --peer-name a --peer b --token c --witness 198.18.0.20:7443", "missing --witness-name, --witness-token"},
	}
	for _, tt := range tests {
		f := newFakeAgent()
		s := newSession(RoleAdmin, serve(t, f)).exec()
		if code := s.run(t, tt.line); code != ExitUsage || len(f.Calls()) != 0 {
			t.Fatalf("%q: code %d, calls %q", tt.line, code, f.Calls())
		}
		if !strings.Contains(s.stderr.String(), tt.missing) {
			t.Fatalf("%q: stderr %q, want %q", tt.line, s.stderr.String(), tt.missing)
		}
	}
}

func TestMaintenance(t *testing.T) {
	tests := []struct {
		line   string
		code   int
		stdout string
		stderr string
	}{
		{"ha_maintenance on", ExitOK, "Maintenance mode is on: automatic failover is paused.\n", ""},
		{"ha_maintenance off", ExitOK, "Maintenance mode is off: automatic failover is active.\n", ""},
		{"ha_maintenance", ExitUsage, "", "ha_maintenance: want one argument, on or off, got 0\nusage: ha_maintenance on|off\n"},
		{"ha_maintenance maybe", ExitUsage, "", "ha_maintenance: \"maybe\": want on or off\nusage: ha_maintenance on|off\n"},
		{"ha_maintenance ON", ExitUsage, "", "ha_maintenance: \"ON\": want on or off\nusage: ha_maintenance on|off\n"},
		{"ha_maintenance on off", ExitUsage, "", "ha_maintenance: want one argument, on or off, got 2\nusage: ha_maintenance on|off\n"},
		{"ha_maintenance --on", ExitUsage, "", "ha_maintenance: flag provided but not defined: -on\nusage: ha_maintenance on|off\n"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			f := newFakeAgent()
			s := newSession(RoleAdmin, serve(t, f))
			if code := s.run(t, tt.line); code != tt.code {
				t.Fatalf("code %d, want %d", code, tt.code)
			}
			if s.stdout.String() != tt.stdout || s.stderr.String() != tt.stderr {
				t.Fatalf("stdout %q stderr %q", s.stdout.String(), s.stderr.String())
			}
			if (tt.code == ExitOK) != (len(f.Calls()) == 1) {
				t.Fatalf("calls %q", f.Calls())
			}
			if tt.code == ExitOK {
				want := &hapb.SetMaintenanceRequest{Enabled: strings.HasSuffix(tt.line, " on")}
				if !proto.Equal(f.lastRequest(), want) {
					t.Fatalf("request %v", f.lastRequest())
				}
			}
		})
	}
	f := newFakeAgent()
	f.opErr = status.Error(codes.FailedPrecondition, "HA is not enabled on this node")
	s := newSession(RoleAdmin, serve(t, f))
	if code := s.run(t, "ha_maintenance on"); code != ExitFailure || s.stderr.String() != "Error: set maintenance mode on: HA is not enabled on this node\n" {
		t.Fatalf("code %d stderr %q", code, s.stderr.String())
	}
}

func TestEvents(t *testing.T) {
	f := newFakeAgent()
	f.events = append(events(), &hapb.Event{Seq: 10, Node: "witness", Kind: "peer\x1b[2J",
		Detail: strings.Repeat("long detail ", 12)})
	agent := serve(t, f)
	tests := []struct {
		line   string
		code   int
		limit  int32 // sent to the agent; 0: no call
		stdout string
		stderr string
	}{
		{"ha_events", ExitOK, 20, "2026-12-01 11:59:50  primary-node  promoted: primary-node is Active (epoch 3)\n" +
			"2026-12-01 11:59:45  secondary-node  peer: primary-node is reachable\n" +
			"---------- --:--:--  witness  peer\\x1b[2J: long detail long detail long detail\n" +
			"                     long detail long detail long detail long detail long detail\n" +
			"                     long detail long detail long detail long detail\n", ""},
		{"ha_events -n 1", ExitOK, 1, "2026-12-01 11:59:50  primary-node  promoted: primary-node is Active (epoch 3)\n", ""},
		{"ha_events --n=1000", ExitOK, 1000, "", ""},
		{"ha_events -n 0", ExitUsage, 0, "", "ha_events: -n 0: want a number of events from 1 to 1000\nusage: ha_events [-n N]\n"},
		{"ha_events -n -5", ExitUsage, 0, "", "ha_events: -n -5: want a number of events from 1 to 1000\nusage: ha_events [-n N]\n"},
		{"ha_events -n 1001", ExitUsage, 0, "", "ha_events: -n 1001: want a number of events from 1 to 1000\nusage: ha_events [-n N]\n"},
		{"ha_events -n 99999999999999999999", ExitUsage, 0, "", "ha_events: invalid value \"99999999999999999999\" for flag -n: value out of range\nusage: ha_events [-n N]\n"},
		{"ha_events -n ten", ExitUsage, 0, "", "ha_events: invalid value \"ten\" for flag -n: parse error\nusage: ha_events [-n N]\n"},
		{"ha_events 5", ExitUsage, 0, "", "ha_events: unexpected argument \"5\"\nusage: ha_events [-n N]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			before := len(f.Calls())
			s := newSession(RoleOperator, agent).exec()
			if code := s.run(t, tt.line); code != tt.code {
				t.Fatalf("code %d, want %d; stderr %q", code, tt.code, s.stderr.String())
			}
			if tt.stdout != "" && s.stdout.String() != tt.stdout {
				t.Fatalf("stdout:\n%s\nwant:\n%s", s.stdout.String(), tt.stdout)
			}
			if s.stderr.String() != tt.stderr {
				t.Fatalf("stderr %q, want %q", s.stderr.String(), tt.stderr)
			}
			calls := f.Calls()[before:]
			if tt.limit == 0 {
				if len(calls) != 0 {
					t.Fatalf("agent called: %q", calls)
				}
				return
			}
			if len(calls) != 1 || f.lastRequest().(*hapb.EventsRequest).GetLimit() != tt.limit {
				t.Fatalf("calls %q, request %v", calls, f.lastRequest())
			}
			for _, l := range strings.Split(s.stdout.String(), "\n") {
				if len(l) > StatusWidth {
					t.Fatalf("line of %d columns: %q", len(l), l)
				}
			}
		})
	}
}

func TestDashboard(t *testing.T) {
	s := newSession(RoleOperator, nil).exec()
	if code := s.run(t, "dashboard"); code != ExitUsage ||
		s.stderr.String() != "The dashboard needs an interactive terminal: ssh -t host dashboard\n" {
		t.Fatalf("code %d, stderr %q", code, s.stderr.String())
	}
	opened := 0
	s = newSession(RoleOperator, nil)
	s.env.Dashboard = func(ctx context.Context) error { opened++; return nil }
	if code := s.run(t, "dash"); code != ExitOK || opened != 1 {
		t.Fatalf("code %d, opened %d", code, opened)
	}
	s.env.Dashboard = func(ctx context.Context) error { return errors.New("terminal too small") }
	if code := s.run(t, "dashboard"); code != ExitFailure || !strings.Contains(s.stderr.String(), "terminal too small") {
		t.Fatalf("code %d, stderr %q", code, s.stderr.String())
	}
}

func TestPasswd(t *testing.T) {
	const old, fresh = "old-password-1", "a-new-long-password"
	tests := []struct {
		name     string
		exec     bool
		answers  []answer
		code     int
		stderr   string
		changed  bool
		accounts bool
	}{
		{"changed", false, []answer{{text: old}, {text: fresh}, {text: fresh}}, ExitOK, "", true, true},
		{"wrong current", false, []answer{{text: "nope"}, {text: fresh}, {text: fresh}}, ExitFailure,
			"passwd: the current password is wrong; the password is unchanged.\n", false, true},
		{"different", false, []answer{{text: old}, {text: fresh}, {text: fresh + "x"}}, ExitFailure,
			"passwd: the two new passwords differ; the password is unchanged.\n", false, true},
		{"empty", false, []answer{{text: old}, {text: ""}, {text: ""}}, ExitFailure,
			"passwd: the new password is empty; the password is unchanged.\n", false, true},
		{"refused by the rules", false, []answer{{text: old}, {text: "short"}, {text: "short"}}, ExitFailure,
			"passwd: the new password is too short: at least 12 characters; the password is unchanged.\n", false, true},
		{"^D", false, []answer{{text: old}}, ExitAborted, "passwd: no answer; the password is unchanged.\n", false, true},
		{"^C", false, []answer{{err: ErrInterrupted}}, ExitAborted, "passwd: interrupted; the password is unchanged.\n", false, true},
		{"exec mode", true, nil, ExitUsage, "passwd: needs an interactive terminal, so that no password is on a command line: ssh -t host passwd\nusage: passwd\n", false, true},
		{"no accounts", false, nil, ExitFailure, "passwd: this session has no password account to change.\n", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := &fakeAccounts{passwords: map[string]string{"alice": old}}
			s := newSession(RoleOperator, nil, tt.answers...)
			if tt.accounts {
				s.env.Accounts = acc
			}
			if tt.exec {
				s.exec()
			}
			if code := s.run(t, "passwd"); code != tt.code {
				t.Fatalf("code %d, want %d; stderr %q", code, tt.code, s.stderr.String())
			}
			if s.stderr.String() != tt.stderr {
				t.Fatalf("stderr %q, want %q", s.stderr.String(), tt.stderr)
			}
			if changed := acc.passwords["alice"] == fresh; changed != tt.changed {
				t.Fatalf("changed %v, want %v", changed, tt.changed)
			}
			if len(s.term.prompts) != 0 {
				t.Fatalf("a password was read with echo: %q", s.term.prompts)
			}
			if strings.Contains(s.stdout.String()+s.stderr.String(), old) {
				t.Fatal("a password was printed")
			}
		})
	}
}

func TestExit(t *testing.T) {
	for _, line := range []string{"exit", "quit", "logout"} {
		out := 0
		s := newSession(RoleOperator, nil)
		s.env.Logout = func() { out++ }
		if code := s.run(t, line); code != ExitOK || out != 1 {
			t.Fatalf("%s: code %d, logouts %d", line, code, out)
		}
	}
	s := newSession(RoleOperator, nil).exec()
	if code := s.run(t, "exit"); code != ExitOK {
		t.Fatalf("exec: code %d", code)
	}
	if code := s.run(t, "exit now"); code != ExitUsage {
		t.Fatalf("exit now: code %d", code)
	}
}

// TestBadFlags: a bad flag or argument is a usage error for every command,
// and nothing reaches the agent.
func TestBadFlags(t *testing.T) {
	f := newFakeAgent()
	agent := serve(t, f)
	lines := []string{
		"ha_status --bogus", "ha_status extra", "ha_status --json=maybe",
		"ha_cluster_stop --now", "ha_cluster_stop x", "ha_cluster_start x",
		"ha_switchover --force=perhaps", "ha_switchover secondary-node",
		"ha_teardown --yes=sure", "ha_deploy --peer", "ha_deploy extra",
		"ha_events -n", "dashboard --big", "passwd alice",
	}
	for _, line := range lines {
		s := newSession(RoleAdmin, agent)
		if code := s.run(t, line); code != ExitUsage {
			t.Errorf("%q: code %d, want %d", line, code, ExitUsage)
		}
		if !strings.Contains(s.stderr.String(), "\nusage: ") {
			t.Errorf("%q: stderr %q", line, s.stderr.String())
		}
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Fatalf("agent called: %q", calls)
	}
}
