package commands

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hapair/hapair/hactl/view"
)

func passwdCommand() *Command {
	return &Command{
		Name:     "passwd",
		Summary:  "Change your own password",
		Usage:    "passwd",
		Operator: true,
		Help: "Changes the password of the user logged in to this session: asks for the current " +
			"password, then the new one twice, without echo. Any role may change its own " +
			"password; nobody else's can be changed here. It needs an interactive terminal " +
			"(ssh -t host passwd), so that no password is ever on a command line.\n\n" +
			"Exit status: 0 changed, 1 refused (wrong current password, passwords that differ, " +
			"a password the rules refuse), 64 no interactive terminal, 130 interrupted.",
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			if env.Term == nil {
				return env.Usagef("needs an interactive terminal, so that no password is on a command line: ssh -t host passwd")
			}
			if env.Accounts == nil || env.User == "" {
				fmt.Fprintln(env.Stderr, "passwd: this session has no password account to change.")
				return ExitFailure
			}
			fmt.Fprintf(env.Stdout, "Changing the password of %s.\n", view.Clean(env.User))
			var answers [3]string
			prompts := [3]string{"Current password: ", "New password: ", "Repeat the new password: "}
			for i, p := range prompts {
				a, err := env.Term.ReadPassword(ctx, p)
				if err != nil {
					if errors.Is(err, io.EOF) {
						fmt.Fprintln(env.Stderr, "passwd: no answer; the password is unchanged.")
					} else {
						fmt.Fprintln(env.Stderr, "passwd: interrupted; the password is unchanged.")
					}
					return ExitAborted
				}
				answers[i] = a
			}
			switch {
			case answers[1] == "":
				fmt.Fprintln(env.Stderr, "passwd: the new password is empty; the password is unchanged.")
				return ExitFailure
			case answers[1] != answers[2]:
				fmt.Fprintln(env.Stderr, "passwd: the two new passwords differ; the password is unchanged.")
				return ExitFailure
			}
			if err := env.Accounts.ChangePassword(env.User, answers[0], answers[1]); err != nil {
				fmt.Fprintf(env.Stderr, "passwd: %s; the password is unchanged.\n", view.Clean(err.Error()))
				return ExitFailure
			}
			fmt.Fprintln(env.Stdout, "Password changed.")
			return ExitOK
		},
	}
}
