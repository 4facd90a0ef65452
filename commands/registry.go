package commands

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hapair/hapair/hactl/hapb"
)

// Exit codes returned by Dispatch and by Command.Run. Scripts running
// "ssh host <command>" see them as the ssh exit status.
const (
	// ExitOK means the command succeeded (and, for status commands, the
	// pair is healthy).
	ExitOK = 0
	// ExitDegraded means the command ran but the pair is degraded.
	ExitDegraded = 1
	// ExitNotRunning means the HA agent is not running on this node.
	ExitNotRunning = 2
	// ExitNotEnabled means HA is not enabled (configured) on this node.
	ExitNotEnabled = 3
	// ExitUsage means the line could not be used: a syntax error, a bad
	// flag or bad arguments (EX_USAGE).
	ExitUsage = 64
	// ExitInternal means the command failed unexpectedly (it panicked);
	// this is a bug (EX_SOFTWARE).
	ExitInternal = 70
	// ExitPermission means the command needs the admin role and the
	// session does not have it (EX_NOPERM).
	ExitPermission = 77
	// ExitUnknown means no command matches the first word, or a prefix
	// matches several (as a shell's "command not found").
	ExitUnknown = 127
	// ExitAborted means the operator interrupted the command (Ctrl-C, as
	// 128+SIGINT).
	ExitAborted = 130
)

// Session roles.
const (
	// RoleAdmin may run every command, including destructive ones.
	RoleAdmin = "admin"
	// RoleOperator may run only the commands marked Operator: those that
	// read the cluster or concern only the session itself.
	RoleOperator = "operator"
)

// Env is what a command runs with: where it writes and who runs it.
type Env struct {
	// Stdout receives the command's normal output (for --json, only JSON).
	Stdout io.Writer
	// Stderr receives diagnostics and errors.
	Stderr io.Writer
	// Role is RoleAdmin or RoleOperator. Any other value, including "",
	// is treated as an operator.
	Role string
	// Interactive is true in the ">>" console and false for
	// "ssh host command" (scripts): commands may ask for confirmation or
	// draw live views only when it is true.
	Interactive bool
	// Flags holds the parsed flags of the current invocation. Dispatch sets
	// it on the copy of Env it passes to Run; it is nil otherwise.
	Flags *flag.FlagSet

	// User is the authenticated name of the session's user.
	User string
	// Agent is the node-local HA agent's API (its unix socket). Commands
	// never reach PostgreSQL or the network themselves: they ask it. Nil
	// when the console could not dial the agent; a command that needs it
	// says so and returns ExitNotRunning.
	Agent hapb.AgentClient
	// Term is the interactive session's terminal, for questions and
	// passwords; nil in exec mode ("ssh host command").
	Term Terminal
	// Accounts manages the console's users, for passwd; nil when the
	// console has none to manage.
	Accounts Accounts
	// Dashboard opens the full-screen live dashboard on the session's
	// terminal and returns when the operator leaves it; nil when the
	// session cannot show one (exec mode without a PTY).
	Dashboard func(ctx context.Context) error
	// Logout, when not nil, ends the interactive session once the current
	// command returns (exit).
	Logout func()
	// Color is true when Stdout is a terminal that takes ANSI colour.
	Color bool
	// Now is the clock used to render relative times; nil means time.Now.
	Now func() time.Time

	cmd *Command
}

// Terminal is the interactive side of a session, as commands see it.
// Implementations are owned by one session and used by one command at a time.
type Terminal interface {
	// ReadLine shows prompt and reads one line with echo, without its
	// line ending. It returns io.EOF on ^D at an empty line,
	// ErrInterrupted on ^C, and ctx.Err() when ctx ends first.
	ReadLine(ctx context.Context, prompt string) (string, error)
	// ReadPassword is ReadLine without echo.
	ReadPassword(ctx context.Context, prompt string) (string, error)
}

// ErrInterrupted is returned by Terminal reads when the operator presses ^C.
var ErrInterrupted = errors.New("interrupted")

// Accounts is the console's user store, as the passwd command needs it.
type Accounts interface {
	// ChangePassword sets user's password to newPassword after checking
	// oldPassword. It enforces the store's password rules and returns an
	// error an operator can read when it refuses.
	ChangePassword(user, oldPassword, newPassword string) error
}

// Clock returns the time to render with: env.Now() or time.Now().
func (e *Env) Clock() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// IsAdmin reports whether the session has the admin role.
func (e *Env) IsAdmin() bool { return e.Role == RoleAdmin }

// Bool returns the value of the invocation's boolean flag name, and false if
// there is no such flag.
func (e *Env) Bool(name string) bool {
	v, _ := e.flagValue(name).(bool)
	return v
}

// String returns the value of the invocation's flag name formatted as a
// string, and "" if there is no such flag.
func (e *Env) String(name string) string {
	if e.Flags == nil {
		return ""
	}
	f := e.Flags.Lookup(name)
	if f == nil {
		return ""
	}
	return f.Value.String()
}

func (e *Env) flagValue(name string) any {
	if e.Flags == nil {
		return nil
	}
	f := e.Flags.Lookup(name)
	if f == nil {
		return nil
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return nil
	}
	return g.Get()
}

// Usagef writes "<command>: <message>" and the command's usage line to
// Stderr and returns ExitUsage, for a Run function that rejects its
// arguments: return env.Usagef("expected one node name").
func (e *Env) Usagef(format string, args ...any) int {
	name := "command"
	usage := ""
	if e.cmd != nil {
		name = e.cmd.Name
		usage = e.cmd.usageLine()
	}
	fmt.Fprintf(e.Stderr, "%s: %s\n", name, fmt.Sprintf(format, args...))
	if usage != "" {
		fmt.Fprintf(e.Stderr, "usage: %s\n", usage)
	}
	return ExitUsage
}

// Command describes one console command.
type Command struct {
	// Name is what the operator types, e.g. "ha_status". It must itself be
	// a valid word for Split (letters, digits, - _ . : / = @ ,).
	Name string
	// Aliases are other exact names for the command (e.g. "?" for help).
	// They are not listed by Names and not used for prefix matching.
	Aliases []string
	// Summary is a one-line description shown in the help listing.
	Summary string
	// Usage is the synopsis shown by help and on usage errors, e.g.
	// "ha_status [--json]". When empty it is built from Name and Flags.
	Usage string
	// Help is the long description shown by "help <command>". Paragraphs
	// are separated by blank lines and wrapped to 80 columns; lines that
	// start with a space are kept as they are (for examples).
	Help string
	// Operator marks a command the operator role may run: one that only
	// reads the cluster (ha_status, ha_events, dashboard, help) or concerns
	// only the session and its own user (exit, passwd). Every other
	// command needs the admin role: Dispatch refuses it, before parsing
	// anything, unless the session has that role. The default is the safe
	// one, so a command added later is guarded unless someone decides
	// otherwise.
	Operator bool
	// Flags, when not nil, declares the command's flags on fs. It is
	// called on a fresh FlagSet for every invocation (and for help and
	// completion), so it must only declare flags. Run reads the values
	// through env.Flags, env.Bool or env.String.
	Flags func(fs *flag.FlagSet)
	// CompleteArg, when not nil, returns completions for a non-flag
	// argument word that starts with prefix.
	CompleteArg func(prefix string) []string
	// Run executes the command with the words that follow the flags and
	// returns an exit code (one of the Exit constants). It writes only to
	// env.Stdout and env.Stderr and should return ExitAborted promptly
	// when ctx is cancelled.
	Run func(ctx context.Context, env *Env, args []string) int
}

// needsAdmin reports whether only the admin role may run c.
func (c *Command) needsAdmin() bool { return !c.Operator }

// flagSet returns a fresh FlagSet with the command's flags declared, writing
// nothing on its own.
func (c *Command) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if c.Flags != nil {
		c.Flags(fs)
	}
	return fs
}

// usageLine returns Usage, or a synopsis built from the flags.
func (c *Command) usageLine() string {
	if c.Usage != "" {
		return c.Usage
	}
	var b strings.Builder
	b.WriteString(c.Name)
	c.flagSet().VisitAll(func(f *flag.Flag) {
		name, _ := flag.UnquoteUsage(f)
		if isBoolFlag(f) {
			fmt.Fprintf(&b, " [--%s]", f.Name)
		} else {
			fmt.Fprintf(&b, " [--%s %s]", f.Name, name)
		}
	})
	return b.String()
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// UnknownCommandError is returned by Lookup when no command matches.
type UnknownCommandError struct {
	// Name is the word the operator typed.
	Name string
}

// Error returns `Unknown command "x". Type help.`.
func (e *UnknownCommandError) Error() string {
	return fmt.Sprintf("Unknown command %q. Type help.", e.Name)
}

// AmbiguousCommandError is returned by Lookup when a prefix matches more
// than one command.
type AmbiguousCommandError struct {
	// Prefix is the word the operator typed.
	Prefix string
	// Candidates are the matching command names, sorted.
	Candidates []string
}

// Error names the prefix and lists the candidates.
func (e *AmbiguousCommandError) Error() string {
	return fmt.Sprintf("Ambiguous command %q: it could be %s. Type more of the name.",
		e.Prefix, strings.Join(e.Candidates, ", "))
}

// Registry is a set of commands. The zero value is not usable; call
// NewRegistry. Register is meant to be called during start-up; after that,
// a Registry may be used from many sessions at once.
type Registry struct {
	byName  map[string]*Command // names and aliases
	names   []string            // sorted, names only
	helpCmd *Command
}

// NewRegistry returns a registry that already holds the built-in help
// command (alias "?").
func NewRegistry() *Registry {
	r := &Registry{byName: map[string]*Command{}}
	r.helpCmd = r.newHelpCommand()
	r.Register(r.helpCmd)
	return r
}

// Register adds c. It panics if c is nil, has no Run function, has a name or
// alias that Split would not return as a single word, or reuses a name or
// alias already registered: these are programming errors.
func (r *Registry) Register(c *Command) {
	if c == nil || c.Run == nil {
		panic("commands: Register of a nil command or one without Run")
	}
	for i, n := range append([]string{c.Name}, c.Aliases...) {
		if i == 0 || n != "?" { // "?" is special-cased by Dispatch
			if w, err := Split(n); err != nil || len(w) != 1 || w[0] != n {
				panic(fmt.Sprintf("commands: invalid command name %q", n))
			}
		}
		if _, dup := r.byName[n]; dup {
			panic(fmt.Sprintf("commands: command %q registered twice", n))
		}
		r.byName[n] = c
	}
	r.names = append(r.names, c.Name)
	sort.Strings(r.names)
}

// Names returns the command names, sorted, without aliases.
func (r *Registry) Names() []string {
	return append([]string(nil), r.names...)
}

// Lookup finds a command by exact name or alias, or else by an unambiguous
// prefix of its name ("ha_st" finds "ha_status"). An exact name always wins
// over longer names it is a prefix of. The error is an
// *UnknownCommandError or an *AmbiguousCommandError.
func (r *Registry) Lookup(name string) (*Command, error) {
	if c, ok := r.byName[name]; ok {
		return c, nil
	}
	var matches []string
	if name != "" {
		for _, n := range r.names {
			if strings.HasPrefix(n, name) {
				matches = append(matches, n)
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, &UnknownCommandError{Name: name}
	case 1:
		return r.byName[matches[0]], nil
	default:
		return nil, &AmbiguousCommandError{Prefix: name, Candidates: matches}
	}
}

// Complete returns the candidates for the last word of line, the text typed
// so far (up to the cursor), for tab completion. For the first word they
// are command names; after a command name they are its flags ("--json")
// when the word is empty or starts with "-", and otherwise what the
// command's CompleteArg returns. Each candidate is a whole replacement for
// the last word; the result is sorted and nil when there is nothing to
// offer, including when the line does not split.
func (r *Registry) Complete(line string) []string {
	words, err := Split(line)
	if err != nil {
		return nil
	}
	if len(words) == 0 || strings.HasSuffix(line, " ") || strings.HasSuffix(line, "\t") {
		words = append(words, "")
	}
	last := words[len(words)-1]
	if len(words) == 1 {
		return withPrefix(r.names, last)
	}
	c, err := r.Lookup(words[0])
	if err != nil {
		return nil
	}
	if last == "" || strings.HasPrefix(last, "-") {
		var flags []string
		c.flagSet().VisitAll(func(f *flag.Flag) { flags = append(flags, "--"+f.Name) })
		if strings.HasPrefix(last, "-") && !strings.HasPrefix(last, "--") {
			last = "-" + last // "-j" completes like "--j"
		}
		if out := withPrefix(flags, last); len(out) > 0 || last != "" {
			return out
		}
	}
	if c.CompleteArg == nil {
		return nil
	}
	out := c.CompleteArg(last)
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	return out
}

func withPrefix(list []string, prefix string) []string {
	var out []string
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Dispatch runs one console line and returns its exit code. It is the only
// way commands are run, so that every rule below holds for every command:
//
//   - a line that is "?" or starts with "? " is read as "help ..." (Split
//     itself rejects "?");
//   - the line is split with Split; a syntax error is written to Stderr and
//     gives ExitUsage; a blank line does nothing and gives ExitOK;
//   - the first word is resolved with Lookup; failure is written to Stderr
//     and gives ExitUnknown;
//   - the role gate: a command without Operator set, run by a session whose
//     Role is not RoleAdmin, writes "permission denied: <name> needs the
//     admin role" to Stderr and gives ExitPermission, before its flags are
//     even parsed. A new command is guarded unless it sets Operator;
//   - flags are parsed on a fresh FlagSet; "--help" or "-h" prints the
//     command's help to Stdout and gives ExitOK; a bad flag writes the
//     error and the usage to Stderr and gives ExitUsage;
//   - Run is called with a copy of env whose Flags holds the parsed flags
//     and with the remaining words; a panic in Run is written to Stderr and
//     gives ExitInternal rather than ending the session.
//
// As with the standard flag package, flags must come before other
// arguments; both "-json" and "--json" are accepted.
func (r *Registry) Dispatch(ctx context.Context, env *Env, line string) (code int) {
	if t := strings.TrimLeft(line, " \t"); t == "?" || strings.HasPrefix(t, "? ") || strings.HasPrefix(t, "?\t") {
		line = "help" + t[1:]
	}
	words, err := Split(line)
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return ExitUsage
	}
	return r.DispatchWords(ctx, env, words)
}

// DispatchWords is Dispatch for a line already split into words (the hactl
// command line, whose arguments the shell split): every rule of Dispatch
// after the split holds, the role gate first.
func (r *Registry) DispatchWords(ctx context.Context, env *Env, words []string) (code int) {
	if len(words) == 0 {
		return ExitOK
	}
	c, err := r.Lookup(words[0])
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return ExitUnknown
	}
	if c.needsAdmin() && !env.IsAdmin() {
		fmt.Fprintf(env.Stderr, "permission denied: %s needs the admin role\n", c.Name)
		return ExitPermission
	}
	fs := c.flagSet()
	if err := fs.Parse(words[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			r.writeCommandHelp(env.Stdout, c)
			return ExitOK
		}
		fmt.Fprintf(env.Stderr, "%s: %s\nusage: %s\n", c.Name, err, c.usageLine())
		return ExitUsage
	}
	e := *env
	e.Flags = fs
	e.cmd = c
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(env.Stderr, "%s: internal error: %v\n", c.Name, p)
			code = ExitInternal
		}
	}()
	return c.Run(ctx, &e, fs.Args())
}
