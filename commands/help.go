package commands

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hapair/hapair/hactl/view"
)

// HelpWidth is the width, in columns, help output is wrapped to.
const HelpWidth = 80

// maxNameColumn is the widest name column of the help listing.
const maxNameColumn = 24

func (r *Registry) newHelpCommand() *Command {
	return &Command{
		Name:     "help",
		Aliases:  []string{"?"},
		Operator: true,
		Summary:  "List the commands, or explain one (help <command>)",
		Usage:    "help [command]",
		Help: "Without an argument, lists every command with a one-line summary. " +
			"With a command name (or any unambiguous prefix of one), shows its usage, " +
			"description and flags. \"?\" is the same as help, and so is " +
			"--help after any command.",
		CompleteArg: func(prefix string) []string { return withPrefix(r.names, prefix) },
		Run: func(ctx context.Context, env *Env, args []string) int {
			switch len(args) {
			case 0:
				r.WriteHelp(env.Stdout)
				return ExitOK
			case 1:
				c, err := r.Lookup(args[0])
				if err != nil {
					fmt.Fprintln(env.Stderr, err)
					return ExitUnknown
				}
				r.writeCommandHelp(env.Stdout, c)
				return ExitOK
			default:
				return env.Usagef("expected at most one command name, got %d words", len(args))
			}
		},
	}
}

// WriteHelp writes the command listing shown by "help": every command,
// sorted, with its aliases, its summary wrapped to HelpWidth columns, and
// "(admin)" after commands that need the admin role.
func (r *Registry) WriteHelp(w io.Writer) {
	type row struct{ left, right string }
	rows := make([]row, 0, len(r.names))
	width := 0
	for _, n := range r.names {
		c := r.byName[n]
		left := strings.Join(append([]string{c.Name}, c.Aliases...), ", ")
		right := c.Summary
		if c.needsAdmin() {
			right = strings.TrimSpace(right + " (admin)")
		}
		rows = append(rows, row{left, right})
		// A very long name gets a line of its own instead of pushing the
		// summary column of every command to the right.
		if len(left) <= maxNameColumn {
			width = max(width, len(left))
		}
	}
	fmt.Fprintln(w, "Commands:")
	for _, rw := range rows {
		indent := 2 + width + 2
		lines := view.WrapWords(rw.right, HelpWidth-indent)
		first := ""
		if len(lines) > 0 {
			first = lines[0]
			lines = lines[1:]
		}
		if len(rw.left) > width {
			fmt.Fprintf(w, "  %s\n", rw.left)
			if first != "" {
				lines = append([]string{first}, lines...)
			}
		} else {
			fmt.Fprintf(w, "  %s\n", strings.TrimRight(fmt.Sprintf("%-*s  %s", width, rw.left, first), " "))
		}
		for _, l := range lines {
			fmt.Fprintf(w, "%s%s\n", strings.Repeat(" ", indent), l)
		}
	}
	fmt.Fprintln(w)
	for _, l := range view.WrapWords("Type help <command> for details. A command may be shortened to any prefix "+
		"that names only one command.", HelpWidth) {
		fmt.Fprintln(w, l)
	}
}

// WriteCommandHelp writes what "help <name>" shows for the command name (an
// exact name, alias or unambiguous prefix), or returns Lookup's error.
func (r *Registry) WriteCommandHelp(w io.Writer, name string) error {
	c, err := r.Lookup(name)
	if err != nil {
		return err
	}
	r.writeCommandHelp(w, c)
	return nil
}

func (r *Registry) writeCommandHelp(w io.Writer, c *Command) {
	fmt.Fprintf(w, "usage: %s\n", c.usageLine())
	if len(c.Aliases) > 0 {
		fmt.Fprintf(w, "alias: %s\n", strings.Join(c.Aliases, ", "))
	}
	text := c.Help
	if text == "" {
		text = c.Summary
	}
	if text != "" {
		fmt.Fprintln(w)
		for _, l := range wrapText(text, HelpWidth) {
			fmt.Fprintln(w, l)
		}
	}
	var flags []*flag.Flag
	c.flagSet().VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	if len(flags) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Flags:")
		for _, f := range flags {
			name, usage := flag.UnquoteUsage(f)
			left := "--" + f.Name
			if !isBoolFlag(f) {
				left += " " + name
				if f.DefValue != "" && f.DefValue != "0" {
					usage += fmt.Sprintf(" (default %s)", f.DefValue)
				}
			}
			fmt.Fprintf(w, "  %s\n", left)
			for _, l := range view.WrapWords(usage, HelpWidth-6) {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
	if c.needsAdmin() {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "This command changes the cluster and needs the admin role.")
	}
}

// wrapText wraps paragraphs (separated by blank lines) to width columns.
// Lines that start with a space or tab are kept as they are.
func wrapText(text string, width int) []string {
	var out, para []string
	flush := func() {
		if len(para) > 0 {
			out = append(out, view.WrapWords(strings.Join(para, " "), width)...)
			para = nil
		}
	}
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			flush()
			out = append(out, "")
		case line[0] == ' ' || line[0] == '\t':
			flush()
			out = append(out, strings.TrimRight(line, " \t"))
		default:
			para = append(para, strings.TrimSpace(line))
		}
	}
	flush()
	return out
}
