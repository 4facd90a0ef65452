package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestMainUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no.sock")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "no command", args: nil, wantCode: ExitUsage, wantErr: "Usage:"},
		{name: "unknown command", args: []string{"reboot"}, wantCode: ExitUsage, wantErr: `unknown command "reboot"`},
		{name: "unknown flag", args: []string{"status", "--colour"}, wantCode: ExitUsage, wantErr: "flag provided but not defined"},
		{name: "stray argument", args: []string{"stop", "now"}, wantCode: ExitUsage, wantErr: `unexpected argument "now"`},
		{name: "both config and socket", args: []string{"status", "--config", "a", "--socket", "b"}, wantCode: ExitUsage, wantErr: "not both"},
		{name: "maintenance without on or off", args: []string{"maintenance", "maybe"}, wantCode: ExitUsage, wantErr: "want on or off"},
		{name: "pki without subcommand", args: []string{"pki"}, wantCode: ExitUsage, wantErr: "want init or issue"},
		{name: "pki issue with a bad address", args: []string{"pki", "issue", "--ca", "x", "--node", "n", "--out", "o", "--ip", "nowhere"}, wantCode: ExitUsage, wantErr: "not an IP address"},
		{name: "agent without config", args: []string{"agent"}, wantCode: ExitUsage, wantErr: "--config is required"},
		{name: "dead agent", args: []string{"status", "--socket", missing, "--timeout", "1s"}, wantCode: ExitFailure, wantErr: "ask the agent"},
		// The operator subcommands are the console's commands: a script
		// must say --yes, a usage error (before the agent is asked).
		{name: "teardown without --yes", args: []string{"teardown", "--socket", missing}, wantCode: ExitUsage, wantErr: "add --yes"},
		{name: "operation with a dead agent", args: []string{"stop", "--socket=" + missing}, wantCode: 2, wantErr: "does not answer"},
		{name: "socket flag without its value", args: []string{"events", "--socket"}, wantCode: ExitUsage, wantErr: "flag needs an argument: --socket"},
		{name: "bad timeout", args: []string{"events", "--timeout", "soon"}, wantCode: ExitUsage, wantErr: "want a positive duration"},
		{name: "console command flag", args: []string{"events", "-n", "0", "--socket", missing}, wantCode: ExitUsage, wantErr: "-n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(tc.args, &out, &errb)
			if code != tc.wantCode || !strings.Contains(errb.String(), tc.wantErr) {
				t.Fatalf("Main(%q) = %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.wantCode, tc.wantErr)
			}
		})
	}
}
