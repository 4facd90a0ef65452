package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/hapair/hapair/commands"
	"github.com/hapair/hapair/console"
	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/screens"
)

// consoleDir is where the console keeps its host key and users: --dir, else
// the configuration's console.dir, else <state_dir>/console.
func consoleDir(cfg hactl.Config, flagDir string) string {
	switch {
	case flagDir != "":
		return flagDir
	case cfg.Console.Dir != "":
		return cfg.Console.Dir
	}
	return filepath.Join(cfg.StateDir, "console")
}

// runConsole is `hactl console`: the node's SSH console, next to its agent.
func runConsole(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("console", stderr)
	config := fs.String("config", "", "the agent's configuration file (node name, state dir, socket)")
	listen := fs.String("listen", "", "TCP address to serve (default: the configuration's console.listen)")
	dir := fs.String("dir", "", "state directory: host key, users (default: console.dir or <state_dir>/console)")
	keyFile := fs.String("authorized-key", "", "on first start: authorise this public key file for admin instead of making a password")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if !parse(fs, args, stderr) {
		return ExitUsage
	}
	if *config == "" {
		fmt.Fprintln(stderr, "hactl console: --config is required")
		return ExitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "hactl console: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return ExitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := hactl.LoadConfig(*config)
	if err != nil {
		log.Error("cannot start the console", "err", err)
		return ExitFailure
	}
	addr := *listen
	if addr == "" {
		addr = cfg.Console.Listen
	}
	if addr == "" {
		fmt.Fprintln(stderr, "hactl console: give --listen or console.listen in the configuration")
		return ExitUsage
	}
	var key []byte
	if *keyFile != "" {
		if key, err = os.ReadFile(*keyFile); err != nil {
			log.Error("cannot start the console", "err", fmt.Errorf("authorized key: %w", err))
			return ExitFailure
		}
	}
	srv, err := console.New(console.Config{
		Listen:      addr,
		Dir:         consoleDir(cfg, *dir),
		AgentSocket: cfg.SocketPath(),
		NodeName:    cfg.NodeName,
		IdleTimeout: time.Duration(cfg.Console.IdleTimeout),
	}, console.Deps{
		Logger:    log,
		Registry:  commands.Builtin(),
		Dashboard: dashboard,
		IsLeave:   func(m tea.Msg) bool { _, ok := m.(screens.ExitMsg); return ok },
	})
	if err != nil {
		log.Error("cannot start the console", "err", err)
		return ExitFailure
	}
	if _, err := console.EnsureAdmin(srv.Users(), key, stdout, time.Now()); err != nil {
		log.Error("cannot start the console", "err", err)
		return ExitFailure
	}
	// First SIGINT/SIGTERM: stop accepting, end the sessions, drain; Serve
	// then closes what is left.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx); err != nil {
		log.Error("console failed", "err", err)
		return ExitFailure
	}
	return 0
}

// dashboard plugs the screens package's dashboard into the console.
func dashboard(ctx context.Context, s console.DashboardSession) tea.Model {
	return screens.NewDashboard(ctx, screens.Options{
		Agent:    s.Agent,
		Admin:    s.Role == commands.RoleAdmin,
		Renderer: s.Renderer,
		Width:    s.Width,
		Height:   s.Height,
		Now:      s.Now,
	})
}

const consoleUserUsage = `usage: hactl console-user [--config FILE | --dir DIR] COMMAND
  list                                  users, roles, password set, keys
  add NAME [--role admin|operator] [--password-stdin] [--key FILE]
                                        a new user; without --password-stdin
                                        or --key a random password is printed
  del NAME                              remove a user (never the last admin)
  passwd NAME [--password-stdin | --none]
                                        set a password (random and printed
                                        unless read from stdin; --none: keys only)
  role NAME admin|operator              change a user's role
  key-add NAME FILE|-                   authorise a public key (OpenSSH format)
`

// runConsoleUser is `hactl console-user`: the host administrator's tool for
// the console's users (the files are replaced atomically under a lock, and
// a running console reads them again).
func runConsoleUser(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("console-user", stderr)
	config := fs.String("config", "", "the agent's configuration file (to find the console's directory)")
	dir := fs.String("dir", "", "the console's state directory")
	fs.Usage = func() { fmt.Fprint(stderr, consoleUserUsage) }
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	d := *dir
	if d == "" {
		if *config == "" {
			fmt.Fprint(stderr, "hactl console-user: give --config or --dir\n"+consoleUserUsage)
			return ExitUsage
		}
		cfg, err := hactl.LoadConfig(*config)
		if err != nil {
			fmt.Fprintf(stderr, "hactl console-user: %v\n", err)
			return ExitFailure
		}
		d = consoleDir(cfg, "")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, consoleUserUsage)
		return ExitUsage
	}
	users, err := console.OpenUsers(d)
	if err != nil {
		fmt.Fprintf(stderr, "hactl console-user: %v\n", err)
		return ExitFailure
	}
	if err := consoleUserCommand(users, rest[0], rest[1:], stdin, stdout, stderr); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "hactl console-user %s: %v\n%s", rest[0], err, consoleUserUsage)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "hactl console-user %s: %v\n", rest[0], err)
		return ExitFailure
	}
	return 0
}

var errUsage = errors.New("bad usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errUsage)
}

func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func readKey(arg string, stdin io.Reader) ([]byte, error) {
	if arg == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
		if err != nil {
			return nil, fmt.Errorf("read the key from stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return nil, fmt.Errorf("read the key: %w", err)
	}
	return b, nil
}

func consoleUserCommand(u *console.Users, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	now := time.Now()
	switch cmd {
	case "list":
		if len(args) != 0 {
			return usageErr("no arguments")
		}
		list, err := u.List()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-20s %-9s %-8s %s\n", "USER", "ROLE", "PASSWORD", "KEYS")
		for _, x := range list {
			pw := "no"
			if x.PasswordHash != "" {
				pw = "yes"
			}
			fmt.Fprintf(stdout, "%-20s %-9s %-8s %d\n", x.Name, x.Role, pw, countKeys(u, x.Name))
		}
		return nil
	case "add":
		fs := newFlags("console-user add", stderr)
		role := fs.String("role", commands.RoleOperator, "admin or operator")
		fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
		keyFile := fs.String("key", "", "a public key file to authorise (then no password unless --password-stdin)")
		name, err := nameThenFlags(fs, args)
		if err != nil {
			return err
		}
		var pw string
		made := false
		switch {
		case *fromStdin:
			if pw, err = readPassword(stdin); err != nil {
				return err
			}
		case *keyFile == "":
			pw, made = console.RandomPassword(), true
		}
		if err := u.Add(name, *role, pw, now); err != nil {
			return err
		}
		if *keyFile != "" {
			key, err := readKey(*keyFile, stdin)
			if err != nil {
				return err
			}
			fp, err := u.AddKey(name, key)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "key %s authorised for %s\n", fp, name)
		}
		fmt.Fprintf(stdout, "user %s added (role %s)\n", name, *role)
		if made {
			fmt.Fprintf(stdout, "password (shown once): %s\n", pw)
		}
		return nil
	case "del":
		if len(args) != 1 {
			return usageErr("give one user name")
		}
		if err := u.Delete(args[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s deleted\n", args[0])
		return nil
	case "passwd":
		fs := newFlags("console-user passwd", stderr)
		fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
		none := fs.Bool("none", false, "remove the password (public keys only)")
		name, err := nameThenFlags(fs, args)
		if err != nil {
			return err
		}
		pw, made := "", false
		switch {
		case *none:
		case *fromStdin:
			if pw, err = readPassword(stdin); err != nil {
				return err
			}
		default:
			pw, made = console.RandomPassword(), true
		}
		if err := u.SetPassword(name, pw, now); err != nil {
			return err
		}
		if made {
			fmt.Fprintf(stdout, "new password of %s (shown once): %s\n", name, pw)
		} else {
			fmt.Fprintf(stdout, "password of %s changed\n", name)
		}
		return nil
	case "role":
		if len(args) != 2 {
			return usageErr("give a user name and a role")
		}
		if err := u.SetRole(args[0], args[1], now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s is now %s\n", args[0], args[1])
		return nil
	case "key-add":
		if len(args) != 2 {
			return usageErr("give a user name and a public key file (or - for stdin)")
		}
		key, err := readKey(args[1], stdin)
		if err != nil {
			return err
		}
		fp, err := u.AddKey(args[0], key)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key %s authorised for %s\n", fp, args[0])
		return nil
	}
	return usageErr("unknown command %q", cmd)
}

// nameThenFlags accepts "NAME --flags" and "--flags NAME".
func nameThenFlags(fs *flagSet, args []string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", usageErr("%v", err)
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() != 0 {
		return "", usageErr("unexpected argument %q", fs.Arg(0))
	}
	if name == "" {
		return "", usageErr("give a user name")
	}
	return name, nil
}

func countKeys(u *console.Users, name string) int {
	b, err := os.ReadFile(filepath.Join(u.UserDir(name), console.AuthorizedKeysFile))
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}
