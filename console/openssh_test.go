package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/hapair/hapair/commands"
	"github.com/hapair/hapair/hactl/hapb"
)

// lookSSH finds the OpenSSH client (scripts/ensure-deps.sh ssh installs it).
func lookSSH(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath(*sshBinary)
	if err != nil {
		t.Fatalf("the OpenSSH client is needed (scripts/ensure-deps.sh ssh installs it): %v", err)
	}
	return p
}

// writeKeyPair makes an ed25519 key pair with ssh-keygen in dir and returns
// the private key's path.
func writeKeyPair(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return p
}

func fingerprintFile(t testing.TB, pub string) string {
	t.Helper()
	b, err := os.ReadFile(pub)
	must(t, err)
	k, _, _, _, err := gossh.ParseAuthorizedKey(b)
	must(t, err)
	return gossh.FingerprintSHA256(k)
}

// knownHosts writes the console's host key as OpenSSH expects it.
func knownHosts(t testing.TB, ts *testServer, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "known_hosts")
	_, port, _ := strings.Cut(ts.addr, ":")
	line := fmt.Sprintf("[127.0.0.1]:%s %s", port, gossh.MarshalAuthorizedKey(ts.srv.HostKey()))
	must(t, os.WriteFile(p, []byte(line), 0o600))
	return p
}

func sshArgs(ts *testServer, kh, user string, extra []string, line string) []string {
	_, port, _ := strings.Cut(ts.addr, ":")
	args := []string{"-F", "/dev/null", "-p", port, "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + kh,
		"-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"}
	hasBatch := false
	for _, e := range extra {
		hasBatch = hasBatch || strings.HasPrefix(e, "BatchMode")
	}
	if !hasBatch {
		args = append(args, "-o", "BatchMode=yes")
	}
	args = append(args, extra...)
	args = append(args, user+"@127.0.0.1")
	if line != "" {
		args = append(args, line)
	}
	return args
}

func runSSH(t testing.TB, bin string, ts *testServer, dir, user string, extra []string, line string) (string, int) {
	return runSSHEnv(t, bin, ts, dir, user, extra, nil, line)
}

// runSSHEnv runs the OpenSSH client once and returns its stdout+stderr and
// exit status.
func runSSHEnv(t testing.TB, bin string, ts *testServer, dir, user string, extra, env []string, line string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), bin, sshArgs(ts, knownHosts(t, ts, dir), user, extra, line)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("ssh: %v", err)
	return "", -1
}

// The real OpenSSH client, exec mode with a key file: data on stdout,
// errors on stderr, the command's exit status.
func TestOpenSSHExec(t *testing.T) {
	bin := lookSSH(t)
	ts := newTestServer(t)
	dir := t.TempDir()
	key := writeKeyPair(t, dir, "id")
	pub, err := os.ReadFile(key + ".pub")
	must(t, err)
	_, err = ts.srv.Users().AddKey("admin", pub)
	must(t, err)

	out, code := runSSH(t, bin, ts, dir, "admin", []string{"-i", key}, "ha_status")
	if code != 0 || !strings.Contains(out, "demo") {
		t.Fatalf("ha_status: exit %d\n%s", code, out)
	}
	ts.agent.set(snapshot(hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED, hapb.NodeRole_NODE_ROLE_ACTIVE))
	if _, code := runSSH(t, bin, ts, dir, "admin", []string{"-i", key}, "ha_status"); code != commands.ExitDegraded {
		t.Fatalf("degraded ha_status: exit %d", code)
	}
	// stdout and stderr apart.
	cmd := exec.Command(bin, sshArgs(ts, knownHosts(t, ts, dir), "admin", []string{"-i", key}, "t_code 5")...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Fatalf("t_code 5: %v", err)
	}
	if !strings.Contains(so.String(), "out 5 color=false interactive=false term=false") || strings.Contains(so.String(), "err 5") ||
		!strings.Contains(se.String(), "err 5") {
		t.Fatalf("stdout %q stderr %q", so.String(), se.String())
	}
	if _, code := runSSH(t, bin, ts, dir, "admin", []string{"-i", key}, "no_such_command"); code != commands.ExitUnknown {
		t.Fatalf("unknown command: exit %d", code)
	}
	// A wrong key is refused by the real client too (ssh exits 255).
	other := writeKeyPair(t, dir, "other")
	if out, code := runSSH(t, bin, ts, dir, "admin", []string{"-i", other}, "ha_status"); code != 255 {
		t.Fatalf("wrong key: exit %d\n%s", code, out)
	}
	// Forwarding is refused: ssh -N -L would need direct-tcpip; -W asks for
	// it at once and fails.
	if out, code := runSSH(t, bin, ts, dir, "admin", []string{"-i", key, "-W", "127.0.0.1:22"}, ""); code == 0 {
		t.Fatalf("ssh -W (direct-tcpip) worked:\n%s", out)
	}
}

// The real OpenSSH client in interactive mode (-tt forces the pty-req): the
// banner, the prompt, a command, exit.
func TestOpenSSHInteractive(t *testing.T) {
	bin := lookSSH(t)
	ts := newTestServer(t)
	dir := t.TempDir()
	key := writeKeyPair(t, dir, "id")
	pub, err := os.ReadFile(key + ".pub")
	must(t, err)
	_, err = ts.srv.Users().AddKey("oper", pub)
	must(t, err)
	cmd := exec.Command(bin, sshArgs(ts, knownHosts(t, ts, dir), "oper", []string{"-tt", "-i", key}, "")...)
	cmd.Stdin = strings.NewReader("t_whoami\rha_cluster_stop\rexit\r")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh -tt: %v\n%s", err, out.String())
	}
	for _, want := range []string{"primary-node", "logged in as oper (operator)", Prompt, "user=oper role=operator",
		"permission denied: ha_cluster_stop needs the admin role"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}
