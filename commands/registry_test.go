package commands

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// call records one Run invocation.
type call struct {
	json bool
	node string
	args []string
}

// testRegistry returns a registry with a few commands shaped like the real
// ones, and the list their Run functions append to.
func testRegistry() (*Registry, *[]call) {
	calls := &[]call{}
	record := func(ctx context.Context, env *Env, args []string) int {
		*calls = append(*calls, call{json: env.Bool("json"), node: env.String("node"), args: args})
		fmt.Fprintln(env.Stdout, "ran", env.cmd.Name)
		return ExitOK
	}
	r := NewRegistry()
	r.Register(&Command{
		Name:     "ha_status",
		Summary:  "Show the state of both nodes",
		Help:     "Shows the role, database and VIP state of both nodes.\n\nExit status: 0 healthy, 1 degraded, 2 not running, 3 HA not enabled.",
		Flags:    func(fs *flag.FlagSet) { fs.Bool("json", false, "print JSON for scripts") },
		Operator: true,
		Run:      record,
	})
	r.Register(&Command{
		Name:    "ha_cluster_stop",
		Summary: "Stop HA on both nodes",
		Flags: func(fs *flag.FlagSet) {
			fs.Bool("json", false, "print JSON for scripts")
			fs.String("node", "", "stop only this `name`")
		},
		Run: record,
	})
	r.Register(&Command{Name: "ha_cluster_start", Summary: "Start HA on both nodes", Run: record})
	r.Register(&Command{Name: "ha_teardown", Summary: "Dissolve the pair", Run: record})
	r.Register(&Command{Name: "ha", Summary: "Short name that prefixes others", Operator: true, Run: record})
	r.Register(&Command{
		Name:     "ha_args",
		Summary:  "Needs exactly one argument",
		Operator: true,
		Run: func(ctx context.Context, env *Env, args []string) int {
			if len(args) != 1 {
				return env.Usagef("expected one node name, got %d", len(args))
			}
			return ExitOK
		},
	})
	r.Register(&Command{Name: "ha_panic", Summary: "Panics", Operator: true, Run: func(context.Context, *Env, []string) int { panic("boom") }})
	r.Register(&Command{Name: "ha_degraded", Summary: "Returns degraded", Operator: true, Run: func(context.Context, *Env, []string) int { return ExitDegraded }})
	return r, calls
}

func TestNames(t *testing.T) {
	r, _ := testRegistry()
	want := []string{"ha", "ha_args", "ha_cluster_start", "ha_cluster_stop", "ha_degraded", "ha_panic", "ha_status", "ha_teardown", "help"}
	if got := r.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	r.Names()[0] = "changed"
	if r.Names()[0] != "ha" {
		t.Fatal("Names() exposes the registry's slice")
	}
}

func TestLookup(t *testing.T) {
	r, _ := testRegistry()
	tests := []struct {
		name    string
		in      string
		want    string // command name, "" on error
		wantErr string
	}{
		{"exact", "ha_status", "ha_status", ""},
		{"unique prefix", "ha_st", "ha_status", ""},
		{"unique prefix one letter short", "ha_statu", "ha_status", ""},
		{"exact wins over longer names", "ha", "ha", ""},
		{"alias", "?", "help", ""},
		{"help prefix", "he", "help", ""},
		{"ambiguous", "ha_cluster_st", "", `Ambiguous command "ha_cluster_st": it could be ha_cluster_start, ha_cluster_stop. Type more of the name.`},
		{"ambiguous short", "ha_c", "", `Ambiguous command "ha_c": it could be ha_cluster_start, ha_cluster_stop. Type more of the name.`},
		{"unknown", "x", "", `Unknown command "x". Type help.`},
		{"unknown longer than a name", "ha_statusx", "", `Unknown command "ha_statusx". Type help.`},
		{"empty", "", "", `Unknown command "". Type help.`},
		{"case matters", "HA_STATUS", "", `Unknown command "HA_STATUS". Type help.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := r.Lookup(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Lookup(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				if c != nil {
					t.Fatalf("Lookup(%q) returned a command with an error", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup(%q): %v", tt.in, err)
			}
			if c.Name != tt.want {
				t.Fatalf("Lookup(%q) = %s, want %s", tt.in, c.Name, tt.want)
			}
		})
	}
}

func TestLookupErrorTypes(t *testing.T) {
	r, _ := testRegistry()
	_, err := r.Lookup("nope")
	var u *UnknownCommandError
	if !errors.As(err, &u) || u.Name != "nope" {
		t.Fatalf("unknown: got %T %v", err, err)
	}
	_, err = r.Lookup("ha_cl")
	var a *AmbiguousCommandError
	if !errors.As(err, &a) || !reflect.DeepEqual(a.Candidates, []string{"ha_cluster_start", "ha_cluster_stop"}) {
		t.Fatalf("ambiguous: got %T %v", err, err)
	}
}

func TestRegisterPanics(t *testing.T) {
	run := func(context.Context, *Env, []string) int { return 0 }
	tests := []struct {
		name string
		cmd  *Command
	}{
		{"nil", nil},
		{"no Run", &Command{Name: "x"}},
		{"empty name", &Command{Name: "", Run: run}},
		{"name with space", &Command{Name: "a b", Run: run}},
		{"name with shell char", &Command{Name: "a;b", Run: run}},
		{"duplicate", &Command{Name: "ha_status", Run: run}},
		{"duplicate alias", &Command{Name: "fresh", Aliases: []string{"?"}, Run: run}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := testRegistry()
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			r.Register(tt.cmd)
		})
	}
}

func TestComplete(t *testing.T) {
	r, _ := testRegistry()
	tests := []struct {
		name string
		line string
		want []string
	}{
		{"empty line lists all", "", r.Names()},
		{"command prefix", "ha_cl", []string{"ha_cluster_start", "ha_cluster_stop"}},
		{"unique command prefix", "ha_st", []string{"ha_status"}},
		{"exact name is also a prefix", "ha_status", []string{"ha_status"}},
		{"leading blanks", "  he", []string{"help"}},
		{"no match", "zz", nil},
		{"flags after space", "ha_status ", []string{"--json"}},
		{"flags after dash dash", "ha_status --", []string{"--json"}},
		{"flag prefix", "ha_status --j", []string{"--json"}},
		{"single dash flag prefix", "ha_status -j", []string{"--json"}},
		{"several flags", "ha_cluster_stop ", []string{"--json", "--node"}},
		{"flag prefix several", "ha_cluster_stop --n", []string{"--node"}},
		{"flags of a prefixed command", "ha_st --", []string{"--json"}},
		{"unknown flag prefix", "ha_status --x", nil},
		{"command without flags", "ha_teardown ", nil},
		{"unknown command", "nope ", nil},
		{"ambiguous command", "ha_cl ", nil},
		{"help completes command names", "help ha_cl", []string{"ha_cluster_start", "ha_cluster_stop"}},
		{"help after space", "help ", r.Names()},
		{"rejected line", "ha_status;", nil},
		{"open quote", `help "ha`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Complete(tt.line); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Complete(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name       string
		line       string
		role       string
		wantCode   int
		wantCall   *call  // nil: Run must not be called (for recording commands)
		wantStdout string // substring; "" means Stdout must be empty
		wantStderr string // exact, "" means Stderr must be empty
	}{
		{"blank line", "   ", RoleOperator, ExitOK, nil, "", ""},
		{"plain", "ha_status", RoleOperator, ExitOK, &call{args: []string{}}, "ran ha_status", ""},
		{"double-dash flag", "ha_status --json", RoleOperator, ExitOK, &call{json: true, args: []string{}}, "ran ha_status", ""},
		{"single-dash flag", "ha_status -json", RoleOperator, ExitOK, &call{json: true, args: []string{}}, "ran ha_status", ""},
		{"explicit false", "ha_status --json=false", RoleOperator, ExitOK, &call{args: []string{}}, "ran ha_status", ""},
		{"positional args after flags", "ha_status --json a 'b c'", RoleOperator, ExitOK, &call{json: true, args: []string{"a", "b c"}}, "ran ha_status", ""},
		{"prefix runs the command", "ha_st --json", RoleOperator, ExitOK, &call{json: true, args: []string{}}, "ran ha_status", ""},
		{"unknown flag is a usage error", "ha_status --jsn", RoleOperator, ExitUsage, nil, "",
			"ha_status: flag provided but not defined: -jsn\nusage: ha_status [--json]\n"},
		{"flag missing value", "ha_cluster_stop --node", RoleAdmin, ExitUsage, nil, "",
			"ha_cluster_stop: flag needs an argument: -node\nusage: ha_cluster_stop [--json] [--node name]\n"},
		{"bad bool value", "ha_status --json=maybe", RoleOperator, ExitUsage, nil, "",
			"ha_status: invalid boolean value \"maybe\" for -json: parse error\nusage: ha_status [--json]\n"},
		{"Run usage error", "ha_args", RoleOperator, ExitUsage, nil, "",
			"ha_args: expected one node name, got 0\nusage: ha_args\n"},
		{"Run exit code passes through", "ha_degraded", RoleOperator, ExitDegraded, nil, "", ""},
		{"unknown command", "reboot", RoleAdmin, ExitUnknown, nil, "", "Unknown command \"reboot\". Type help.\n"},
		{"ambiguous command", "ha_cluster_st", RoleAdmin, ExitUnknown, nil, "",
			"Ambiguous command \"ha_cluster_st\": it could be ha_cluster_start, ha_cluster_stop. Type more of the name.\n"},
		{"syntax error", "ha_status; reboot", RoleAdmin, ExitUsage, nil, "",
			"character \";\" at column 10 is not allowed: the console runs one command at a time, nothing reaches a shell\n"},
		{"admin command as operator", "ha_cluster_stop", RoleOperator, ExitPermission, nil, "",
			"permission denied: ha_cluster_stop needs the admin role\n"},
		{"admin command by prefix as operator", "ha_te", RoleOperator, ExitPermission, nil, "",
			"permission denied: ha_teardown needs the admin role\n"},
		{"gate comes before flag parsing", "ha_cluster_stop --bogus", RoleOperator, ExitPermission, nil, "",
			"permission denied: ha_cluster_stop needs the admin role\n"},
		{"gate comes before --help", "ha_cluster_stop --help", RoleOperator, ExitPermission, nil, "",
			"permission denied: ha_cluster_stop needs the admin role\n"},
		{"empty role is not admin", "ha_teardown", "", ExitPermission, nil, "",
			"permission denied: ha_teardown needs the admin role\n"},
		{"other role is not admin", "ha_teardown", "Admin", ExitPermission, nil, "",
			"permission denied: ha_teardown needs the admin role\n"},
		{"admin command as admin", "ha_cluster_stop --node db-2 --json", RoleAdmin, ExitOK,
			&call{json: true, node: "db-2", args: []string{}}, "ran ha_cluster_stop", ""},
		{"--help prints help", "ha_status --help", RoleOperator, ExitOK, nil, "usage: ha_status [--json]", ""},
		{"-h prints help", "ha_status -h", RoleOperator, ExitOK, nil, "usage: ha_status [--json]", ""},
		{"question mark is help", "?", RoleOperator, ExitOK, nil, "Commands:", ""},
		{"question mark with command", " ? ha_status", RoleOperator, ExitOK, nil, "usage: ha_status [--json]", ""},
		{"question mark glued is rejected", "?ha_status", RoleOperator, ExitUsage, nil, "",
			"character \"?\" at column 1 is not allowed: there are no wildcards: write names out in full (type help for help)\n"},
		{"help of unknown", "help nope", RoleOperator, ExitUnknown, nil, "", "Unknown command \"nope\". Type help.\n"},
		{"help with two words", "help a b", RoleOperator, ExitUsage, nil, "",
			"help: expected at most one command name, got 2 words\nusage: help [command]\n"},
		{"help of admin command as operator", "help ha_teardown", RoleOperator, ExitOK, nil, "needs the admin role", ""},
		{"panic is contained", "ha_panic", RoleAdmin, ExitInternal, nil, "", "ha_panic: internal error: boom\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, calls := testRegistry()
			var stdout, stderr bytes.Buffer
			env := &Env{Stdout: &stdout, Stderr: &stderr, Role: tt.role}
			code := r.Dispatch(context.Background(), env, tt.line)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			switch {
			case tt.wantCall == nil && len(*calls) != 0:
				t.Errorf("Run was called: %+v", *calls)
			case tt.wantCall != nil && (len(*calls) != 1 || !reflect.DeepEqual((*calls)[0], *tt.wantCall)):
				t.Errorf("calls = %+v, want one %+v", *calls, *tt.wantCall)
			}
			if tt.wantStdout == "" && stdout.Len() != 0 {
				t.Errorf("stdout = %q, want empty", stdout.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.wantStdout)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
			if env.Flags != nil {
				t.Error("Dispatch modified the caller's Env")
			}
		})
	}
}

// TestDispatchFreshFlags checks that flag values never leak from one call
// to the next.
func TestDispatchFreshFlags(t *testing.T) {
	r, calls := testRegistry()
	env := &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Role: RoleOperator}
	r.Dispatch(context.Background(), env, "ha_status --json")
	r.Dispatch(context.Background(), env, "ha_status")
	if len(*calls) != 2 || !(*calls)[0].json || (*calls)[1].json {
		t.Fatalf("calls = %+v, want json then no json", *calls)
	}
}

// TestDispatchContext checks that Run gets the caller's context, so that a
// Ctrl-C handler can cancel it, and can report ExitAborted.
func TestDispatchContext(t *testing.T) {
	r := NewRegistry()
	r.Register(&Command{Name: "wait", Operator: true, Run: func(ctx context.Context, env *Env, args []string) int {
		<-ctx.Done()
		return ExitAborted
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env := &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	if code := r.Dispatch(ctx, env, "wait"); code != ExitAborted {
		t.Fatalf("code = %d, want %d", code, ExitAborted)
	}
}

func TestExitCodes(t *testing.T) {
	got := []int{ExitOK, ExitDegraded, ExitNotRunning, ExitNotEnabled, ExitUsage, ExitInternal, ExitPermission, ExitUnknown, ExitAborted}
	want := []int{0, 1, 2, 3, 64, 70, 77, 127, 130}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("exit codes %v, want %v (scripts depend on them)", got, want)
	}
}

// TestGateDefaultDeny checks that a command registered without saying who
// may run it is refused to operators: the gate guards by default.
func TestGateDefaultDeny(t *testing.T) {
	r := NewRegistry()
	ran := 0
	r.Register(&Command{Name: "ha_new", Summary: "A command added later", Run: func(context.Context, *Env, []string) int {
		ran++
		return ExitOK
	}})
	for _, role := range []string{RoleOperator, "", "root"} {
		var stdout, stderr bytes.Buffer
		code := r.Dispatch(context.Background(), &Env{Stdout: &stdout, Stderr: &stderr, Role: role}, "ha_new")
		if code != ExitPermission || stderr.String() != "permission denied: ha_new needs the admin role\n" {
			t.Fatalf("role %q: code %d, stderr %q", role, code, stderr.String())
		}
	}
	var out bytes.Buffer
	r.WriteHelp(&out)
	if !strings.Contains(out.String(), "A command added later (admin)") {
		t.Fatalf("help does not mark the new command (admin):\n%s", out.String())
	}
	if code := r.Dispatch(context.Background(), &Env{Stdout: &out, Stderr: &out, Role: RoleAdmin}, "ha_new"); code != ExitOK || ran != 1 {
		t.Fatalf("admin: code %d, ran %d", code, ran)
	}
}
