package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hapair/hapair/commands"
	"github.com/hapair/hapair/hactl/hapb"
)

// consoleCommands maps hactl's operator subcommands to the console commands
// they run: the host's CLI and `ssh node <command>` are one implementation
// (package commands), so they print the same steps and exit the same way.
var consoleCommands = map[string]string{
	"stop":          "ha_cluster_stop",
	"start":         "ha_cluster_start",
	"switchover":    "ha_switchover",
	"teardown":      "ha_teardown",
	"maintenance":   "ha_maintenance",
	"events":        "ha_events",
	"pairing-token": "ha_pairing_token",
	"deploy":        "ha_deploy",
}

// runConsoleCommand runs the console command behind hactl subcommand sub
// with args, as the admin of this host, against the agent found with
// --config or --socket (anywhere among args; --timeout bounds the whole
// command). As in exec mode over ssh there is no terminal to ask questions
// on: ha_teardown needs --yes and ha_deploy every required flag. ^C stops
// following an operation (the agent finishes it).
func runConsoleCommand(sub string, args []string, stdout, stderr io.Writer) int {
	config, socket, timeout, rest, err := agentFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "hactl %s: %v\n", sub, err)
		return ExitUsage
	}
	path, err := socketFrom(config, socket)
	if err != nil {
		fmt.Fprintf(stderr, "hactl %s: %v\n", sub, err)
		return ExitUsage
	}
	conn, err := hapb.DialAgent(path)
	if err != nil {
		fmt.Fprintf(stderr, "hactl %s: %v\n", sub, err)
		return ExitFailure
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := &commands.Env{Stdout: stdout, Stderr: stderr, Role: commands.RoleAdmin, User: "hactl",
		Agent: hapb.NewAgentClient(conn)}
	return commands.Builtin().DispatchWords(ctx, env, append([]string{consoleCommands[sub]}, rest...))
}

// agentFlags takes hactl's own flags out of args (--config FILE, --socket
// PATH, --timeout D, with one or two dashes, "=value" or a separate word),
// wherever they stand, and returns the rest for the console command.
func agentFlags(args []string) (config, socket string, timeout time.Duration, rest []string, err error) {
	timeout = 5 * time.Minute
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || (name != "config" && name != "socket" && name != "timeout") {
			rest = append(rest, args[i])
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return "", "", 0, nil, fmt.Errorf("flag needs an argument: --%s", name)
			}
			i++
			value = args[i]
		}
		switch name {
		case "config":
			config = value
		case "socket":
			socket = value
		case "timeout":
			if timeout, err = time.ParseDuration(value); err != nil || timeout <= 0 {
				return "", "", 0, nil, fmt.Errorf("--timeout %q: want a positive duration such as 30s", value)
			}
		}
	}
	return config, socket, timeout, rest, nil
}
