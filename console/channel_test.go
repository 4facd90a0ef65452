package console

import (
	"encoding/binary"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/hapair/hapair/commands"
)

func TestExecExitCodes(t *testing.T) {
	ts := newTestServer(t)
	c := ts.admin(t)
	for _, code := range []int{0, 1, 2, 3, 64, 130} {
		r := runExec(c, "t_code "+itoa(code))
		if r.err != nil || r.code != code {
			t.Fatalf("t_code %d: %+v", code, r)
		}
		if !strings.Contains(r.stdout, "out "+itoa(code)+" color=false interactive=false term=false") ||
			strings.Contains(r.stdout, "err ") || !strings.Contains(r.stderr, "err "+itoa(code)) {
			t.Fatalf("t_code %d: stdout %q stderr %q", code, r.stdout, r.stderr)
		}
	}
	r := runExec(c, "nope")
	if r.code != commands.ExitUnknown || !strings.Contains(r.stderr, `Unknown command "nope". Type help.`) || r.stdout != "" {
		t.Fatalf("unknown: %+v", r)
	}
	// An exec with a PTY gets colour and a terminal, still not interactive.
	s, err := c.NewSession()
	must(t, err)
	defer s.Close()
	must(t, s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}))
	out, err := s.Output("t_code 0")
	if err != nil || !strings.Contains(string(out), "color=true interactive=false term=true") {
		t.Fatalf("exec with pty: %v %q", err, out)
	}
	if len(ts.logs.lines("console command", "user=admin", "auth=publickey", "key_fp=SHA256:", "mode=exec", `command="t_code 64"`, "exit_code=64", "duration_ms=")) != 1 {
		t.Fatalf("audit line missing:\n%s", ts.logs)
	}
}

func itoa(i int) string {
	b := []byte{}
	if i == 0 {
		return "0"
	}
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}

func TestForbiddenChannelsAndRequests(t *testing.T) {
	ts := newTestServer(t)
	c := ts.admin(t)
	// Channels other than session.
	for _, typ := range []string{"direct-tcpip", "x11", "auth-agent@openssh.com", "forwarded-tcpip", "direct-streamlocal@openssh.com"} {
		payload := gossh.Marshal(struct {
			Host  string
			Port  uint32
			OHost string
			OPort uint32
		}{"127.0.0.1", 22, "127.0.0.1", 5000})
		if ch, _, err := c.OpenChannel(typ, payload); err == nil {
			ch.Close()
			t.Errorf("channel %s accepted", typ)
		}
	}
	// Global requests: remote forwarding.
	for _, typ := range []string{"tcpip-forward", "streamlocal-forward@openssh.com"} {
		ok, _, err := c.SendRequest(typ, true, gossh.Marshal(struct {
			Addr string
			Port uint32
		}{"127.0.0.1", 0}))
		if err != nil || ok {
			t.Errorf("global request %s: ok=%v err=%v", typ, ok, err)
		}
	}
	// Session requests.
	s, err := c.NewSession()
	must(t, err)
	defer s.Close()
	if err := s.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem accepted")
	}
	for _, typ := range []string{"x11-req", "auth-agent-req@openssh.com", "signal", "break", "xon-xoff", "eow@openssh.com"} {
		ok, err := s.SendRequest(typ, true, nil)
		if err != nil || ok {
			t.Errorf("session request %s: ok=%v err=%v", typ, ok, err)
		}
	}
	// env is ignored: refused, and it changes nothing.
	if err := s.Setenv("LD_PRELOAD", "/tmp/x.so"); err == nil {
		t.Error("env request accepted")
	}
	out, err := s.Output("t_whoami")
	if err != nil || !strings.Contains(string(out), "user=admin") {
		t.Fatalf("the session after refused requests: %v %q", err, out)
	}
}

func ptyPayload(term string, cols, rows uint32, modes string) []byte {
	return gossh.Marshal(struct {
		Term          string
		Cols, Rows    uint32
		Width, Height uint32
		Modes         string
	}{term, cols, rows, 0, 0, modes})
}

// A malformed pty-req is refused and kills neither the session nor the
// server (gliderlabs' own parser panics on a string length that overflows).
func TestMalformedPtyReq(t *testing.T) {
	ts := newTestServer(t)
	c := ts.admin(t)
	overflow := make([]byte, 4)
	binary.BigEndian.PutUint32(overflow, 0xffffffff)
	overflow = append(overflow, "xterm"...)
	bad := map[string][]byte{
		"empty":            nil,
		"length overflow":  overflow,
		"truncated":        ptyPayload("xterm", 80, 24, "")[:10],
		"huge window":      ptyPayload("xterm", 1<<30, 1<<30, ""),
		"control in TERM":  ptyPayload("xterm\x1b]0;x\a", 80, 24, ""),
		"trailing garbage": append(ptyPayload("xterm", 80, 24, ""), 1, 2, 3),
	}
	for name, p := range bad {
		s, err := c.NewSession()
		must(t, err)
		ok, err := s.SendRequest("pty-req", true, p)
		if err != nil || ok {
			t.Errorf("%s: ok=%v err=%v", name, ok, err)
		}
		out, err := s.Output("t_whoami")
		if err != nil || !strings.Contains(string(out), "user=admin") {
			t.Fatalf("%s: session after the bad pty-req: %v %q", name, err, out)
		}
		s.Close()
	}
	// The server still serves new connections.
	c2 := ts.admin(t)
	if r := runExec(c2, "t_whoami"); r.code != 0 {
		t.Fatalf("after malformed pty-reqs: %+v", r)
	}
	// window-change before any pty, and a flood of them with one, are fine.
	s, err := c.NewSession()
	must(t, err)
	defer s.Close()
	if ok, _ := s.SendRequest("window-change", true, gossh.Marshal(struct{ C, R, W, H uint32 }{100, 40, 0, 0})); ok {
		t.Error("window-change without a pty accepted")
	}
}

// Shell metacharacters, huge lines, control bytes and invalid UTF-8 in exec
// mode give errors; nothing reaches a shell and the connection stays usable.
func TestExecEscapeAttempts(t *testing.T) {
	ts := newTestServer(t)
	c := ts.admin(t)
	for _, line := range []string{
		"ha_status; t_whoami", "ha_status | t_whoami", "ha_status && t_whoami", "t_code $(t_whoami)",
		"t_code `t_whoami`", "ha_status > /tmp/x", "t_code 0\nt_whoami", "t_code\x00 0", "t_code \x1b[31m",
		"t_code \xff\xfe", strings.Repeat("a", 200<<10), "../../bin/sh", "/bin/sh -c id",
	} {
		r := runExec(c, line)
		if r.err != nil {
			t.Fatalf("%.40q: %v", line, r.err)
		}
		if r.code == 0 || strings.Contains(r.stdout, "user=") {
			t.Errorf("%.40q: exit %d, stdout %.200q", line, r.code, r.stdout)
		}
		if r.stderr == "" {
			t.Errorf("%.40q: no error message", line)
		}
	}
	if r := runExec(c, "t_whoami"); r.code != 0 {
		t.Fatalf("connection after the attempts: %+v", r)
	}
}
