// Package cli is the hactl command line: the agent itself, and the
// operator's local tools that talk to it over its unix socket.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/pki"
	"github.com/hapair/hapair/hactl/view"
)

// Exit codes, shared with the console's commands.
const (
	ExitHealthy    = 0
	ExitDegraded   = 1
	ExitNotRunning = 2
	ExitNotEnabled = 3
	ExitFailure    = 4
	ExitUsage      = 64
)

const usage = `hactl: the hapair node agent and its local tools.

Usage:
  hactl agent --config FILE [--witness]
                                     run the agent (the witness with --witness)
  hactl status [--json] [--config FILE | --socket PATH]
                                     this node and its peer, from the agent
  hactl pairing-token                on a stand-alone node: a one-time token
  hactl deploy --peer-name N --peer IP:PORT --token T [--vip IP] [--cluster C]
         [--witness-name W --witness IP:PORT --witness-token T]
                                     on the other stand-alone node: form the
                                     cluster (this node Active, the peer cloned)
  hactl pki init --dir DIR --cluster NAME
                                     make a cluster CA (deploy time)
  hactl pki issue --ca DIR --node NAME --ip IP[,IP...] --out DIR
                                     issue a node identity from the CA
  hactl stop | start | switchover [--config FILE | --socket PATH]
                                     cluster services on this node: hand over
                                     and stop, rejoin as Standby, move Active
  hactl switchover --force           on the Standby, when the Active node is lost
                                     and there is no witness: take over
  hactl teardown --yes               destroy the cluster; this node stand-alone
  hactl maintenance on|off           pause / resume automatic failover
  hactl events [-n N]                the cluster's history, newest first
  (stop, start, switchover, teardown, maintenance, events, pairing-token and
  deploy run the console's ha_* commands: same flags, output and exit codes;
  they take --config FILE or --socket PATH, and --timeout D, anywhere)
  hactl console --config FILE [--listen ADDR] [--dir DIR] [--authorized-key FILE]
                                     the node's SSH console (the >> prompt),
                                     next to its agent
  hactl console-user [--config FILE | --dir DIR] list | add | del | passwd | role | key-add
                                     manage the console's users on the host
  hactl version

Exit codes of status: 0 healthy, 1 degraded, 2 not running on this node,
3 HA not enabled, 4 the agent could not be asked, 64 usage error.
`

// Main runs hactl with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case "agent":
		return runAgent(args[1:], stderr)
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "pki":
		return runPKI(args[1:], stdout, stderr)
	case "stop", "start", "switchover", "teardown", "maintenance", "events", "pairing-token", "deploy":
		return runConsoleCommand(args[0], args[1:], stdout, stderr)
	case "console":
		return runConsole(args[1:], stdout, stderr)
	case "console-user":
		return runConsoleUser(args[1:], os.Stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "hactl", hactl.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "hactl: unknown command %q\n\n%s", args[0], usage)
	return ExitUsage
}

type flagSet = flag.FlagSet

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hactl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false
	}
	return true
}

func runAgent(args []string, stderr io.Writer) int {
	fs := newFlags("agent", stderr)
	config := fs.String("config", "", "agent configuration file (JSON)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	witness := fs.Bool("witness", false, "run as the witness (a voter with no database and no VIP); the configuration must declare this node a witness")
	if !parse(fs, args, stderr) {
		return ExitUsage
	}
	if *config == "" {
		fmt.Fprintln(stderr, "hactl agent: --config is required")
		return ExitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "hactl agent: --log-level %q: want debug, info, warn or error\n", *logLevel)
		return ExitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A deployment changes the membership: the agent returns ErrRestart and
	// is built again from its configuration (PostgreSQL keeps running).
	for restarts := 0; restarts < 100; restarts++ {
		cfg, err := hactl.LoadConfig(*config)
		if err != nil {
			log.Error("cannot start", "err", err)
			return ExitFailure
		}
		if *witness != cfg.IsWitness() {
			log.Error("cannot start", "err", fmt.Sprintf("--witness=%v but the configuration declares %s a %s node", *witness, cfg.NodeName, cfg.Self().Kind))
			return ExitUsage
		}
		a, err := hactl.New(cfg, hactl.Deps{Logger: log})
		if err != nil {
			log.Error("cannot start", "err", err)
			return ExitFailure
		}
		err = a.Run(ctx)
		switch {
		case errors.Is(err, hactl.ErrRestart):
			log.Info("restarting the agent with its new membership")
			continue
		case err != nil:
			log.Error("agent failed", "err", err)
			return ExitFailure
		}
		return 0
	}
	log.Error("too many restarts")
	return ExitFailure
}

func socketFrom(config, socket string) (string, error) {
	switch {
	case socket != "" && config != "":
		return "", errors.New("give --config or --socket, not both")
	case socket != "":
		return socket, nil
	case config != "":
		cfg, err := hactl.LoadConfig(config)
		if err != nil {
			return "", err
		}
		return cfg.SocketPath(), nil
	}
	return "/var/lib/hapair/hactl.sock", nil
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print JSON (the Snapshot message of hactl.proto)")
	config := fs.String("config", "", "agent configuration file, to find its socket")
	socket := fs.String("socket", "", "the agent's unix socket")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the agent")
	if !parse(fs, args, stderr) {
		return ExitUsage
	}
	path, err := socketFrom(*config, *socket)
	if err != nil {
		fmt.Fprintln(stderr, "hactl status:", err)
		return ExitUsage
	}
	conn, err := hapb.DialAgent(path)
	if err != nil {
		fmt.Fprintln(stderr, "hactl status:", err)
		return ExitFailure
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	snap, err := hapb.NewAgentClient(conn).Status(ctx, &hapb.StatusRequest{})
	if err != nil {
		fmt.Fprintf(stderr, "hactl status: ask the agent at %s: %v\n", path, err)
		return ExitFailure
	}
	if *asJSON {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(snap)
		if err != nil {
			fmt.Fprintln(stderr, "hactl status: encode:", err)
			return ExitFailure
		}
		fmt.Fprintln(stdout, string(b))
	} else if err := view.RenderStatus(stdout, snap, time.Now()); err != nil {
		fmt.Fprintln(stderr, "hactl status:", err)
		return ExitFailure
	}
	return exitCodeOf(snap.GetCluster().GetHealth())
}

func exitCodeOf(h hapb.ClusterHealth) int {
	switch h {
	case hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY:
		return ExitHealthy
	case hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING:
		return ExitNotRunning
	case hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED:
		return ExitNotEnabled
	}
	return ExitDegraded
}

func runPKI(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "hactl pki: want init or issue\n\n"+usage)
		return ExitUsage
	}
	switch args[0] {
	case "init":
		fs := newFlags("pki init", stderr)
		dir := fs.String("dir", "", "directory for ca.crt and ca.key")
		cluster := fs.String("cluster", "", "cluster name")
		if !parse(fs, args[1:], stderr) {
			return ExitUsage
		}
		if *dir == "" || *cluster == "" {
			fmt.Fprintln(stderr, "hactl pki init: --dir and --cluster are required")
			return ExitUsage
		}
		if _, err := pki.LoadCA(*dir); err == nil {
			fmt.Fprintf(stderr, "hactl pki init: %s already holds a CA; refusing to replace it\n", *dir)
			return ExitFailure
		}
		ca, err := pki.NewCA(*cluster, time.Now())
		if err == nil {
			err = pki.SaveCA(*dir, ca)
		}
		if err != nil {
			fmt.Fprintln(stderr, "hactl pki init:", err)
			return ExitFailure
		}
		fmt.Fprintf(stdout, "cluster CA for %s written to %s\n", *cluster, *dir)
		return 0
	case "issue":
		fs := newFlags("pki issue", stderr)
		caDir := fs.String("ca", "", "directory of the cluster CA")
		node := fs.String("node", "", "node name")
		ips := fs.String("ip", "", "comma-separated IP addresses of the node")
		out := fs.String("out", "", "directory for the node's identity")
		if !parse(fs, args[1:], stderr) {
			return ExitUsage
		}
		if *caDir == "" || *node == "" || *out == "" {
			fmt.Fprintln(stderr, "hactl pki issue: --ca, --node and --out are required")
			return ExitUsage
		}
		var addrs []net.IP
		for _, s := range strings.Split(*ips, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			ip := net.ParseIP(s)
			if ip == nil {
				fmt.Fprintf(stderr, "hactl pki issue: --ip %q is not an IP address\n", s)
				return ExitUsage
			}
			addrs = append(addrs, ip)
		}
		ca, err := pki.LoadCA(*caDir)
		if err != nil {
			fmt.Fprintln(stderr, "hactl pki issue:", err)
			return ExitFailure
		}
		id, err := ca.Issue(*node, addrs, time.Now())
		if err == nil {
			err = pki.SaveIdentity(*out, id)
		}
		if err != nil {
			fmt.Fprintln(stderr, "hactl pki issue:", err)
			return ExitFailure
		}
		fmt.Fprintf(stdout, "identity of %s written to %s\n", *node, *out)
		return 0
	}
	fmt.Fprintf(stderr, "hactl pki: unknown subcommand %q: want init or issue\n", args[0])
	return ExitUsage
}
