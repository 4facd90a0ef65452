package commands

import "context"

func exitCommand() *Command {
	return &Command{
		Name:     "exit",
		Aliases:  []string{"quit", "logout"},
		Summary:  "Log out (^D does the same)",
		Usage:    "exit",
		Operator: true,
		Help:     "Ends the console session. In exec mode it does nothing.",
		Run: func(ctx context.Context, env *Env, args []string) int {
			if code := noArgs(env, args); code != ExitOK {
				return code
			}
			if env.Logout != nil {
				env.Logout()
			}
			return ExitOK
		},
	}
}
