package commands

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHelpListing(t *testing.T) {
	r, _ := testRegistry()
	var out bytes.Buffer
	r.WriteHelp(&out)
	want := `Commands:
  ha                Short name that prefixes others
  ha_args           Needs exactly one argument
  ha_cluster_start  Start HA on both nodes (admin)
  ha_cluster_stop   Stop HA on both nodes (admin)
  ha_degraded       Returns degraded
  ha_panic          Panics
  ha_status         Show the state of both nodes
  ha_teardown       Dissolve the pair (admin)
  help, ?           List the commands, or explain one (help <command>)

Type help <command> for details. A command may be shortened to any prefix that
names only one command.
`
	if out.String() != want {
		t.Fatalf("help listing:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestHelpCommand(t *testing.T) {
	r, _ := testRegistry()
	long := strings.Repeat("word ", 40)
	r.Register(&Command{
		Name:    "ha_a_really_long_command_name_here",
		Summary: "A summary long enough that it has to be wrapped onto a second line of the help listing",
		Help:    long + "\n\n  example: ha_a_really_long_command_name_here --count 3\n",
		Flags: func(fs *flag.FlagSet) {
			fs.Int("count", 1, "how many `times` to do it, a usage string long enough to need wrapping at eighty columns")
		},
		Run: func(context.Context, *Env, []string) int { return 0 },
	})
	tests := []struct {
		name string
		line string
		want string
	}{
		{"help command", "help ha_status", `usage: ha_status [--json]

Shows the role, database and VIP state of both nodes.

Exit status: 0 healthy, 1 degraded, 2 not running, 3 HA not enabled.

Flags:
  --json
      print JSON for scripts
`},
		{"help by prefix", "help ha_sta", "usage: ha_status [--json]\n"},
		{"help of help", "help help", "usage: help [command]\nalias: ?\n"},
		{"summary used without Help", "help ha_teardown", "usage: ha_teardown\n\nDissolve the pair\n\nThis command changes the cluster and needs the admin role.\n"},
		{"long text wrapped, example kept", "help ha_a_really", "\n  example: ha_a_really_long_command_name_here --count 3\n"},
		{"non-bool flag with default", "help ha_a_really", "  --count times\n      how many times to do it,"},
		{"listing wraps a long summary", "help", "  ha_a_really_long_command_name_here\n                    A summary long enough"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := r.Dispatch(context.Background(), &Env{Stdout: &stdout, Stderr: &stderr, Role: RoleAdmin}, tt.line)
			if code != ExitOK || stderr.Len() != 0 {
				t.Fatalf("code %d, stderr %q", code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Fatalf("output:\n%s\nwant it to contain:\n%s", stdout.String(), tt.want)
			}
			for i, l := range strings.Split(stdout.String(), "\n") {
				if n := utf8.RuneCountInString(l); n > HelpWidth {
					t.Errorf("line %d is %d columns wide: %q", i+1, n, l)
				}
				if strings.HasSuffix(l, " ") {
					t.Errorf("line %d has trailing spaces: %q", i+1, l)
				}
			}
		})
	}
	var out bytes.Buffer
	if err := r.WriteCommandHelp(&out, "ha_a_"); err != nil || !strings.Contains(out.String(), "(default 1)") {
		t.Fatalf("WriteCommandHelp: %v\n%s", err, out.String())
	}
	if err := r.WriteCommandHelp(&out, "nope"); err == nil || err.Error() != `Unknown command "nope". Type help.` {
		t.Fatalf("WriteCommandHelp(nope) = %v", err)
	}
}
