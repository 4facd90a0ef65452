package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

func TestInteractiveBannerPromptCommand(t *testing.T) {
	ts := newTestServer(t)
	tm := openTerm(t, ts.admin(t), 100, 30)
	banner := tm.expect(Prompt)
	for _, want := range []string{"primary-node", "Active", "cluster demo healthy", "admin (admin)"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	tm.send("t_whoami\r")
	tm.expect("user=admin role=admin")
	tm.expect(Prompt)
	tm.send("t_code 0\r")
	tm.expect("color=true interactive=true term=true")
	tm.expect(Prompt)
	tm.send("nope\r")
	tm.expect(`Unknown command "nope". Type help.`)
	tm.expect(Prompt)
	tm.send("ha_st\r") // an unambiguous abbreviation
	tm.expect("demo")
	tm.expect(Prompt)
	tm.send("exit\r")
	if code := tm.exitCode(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if len(ts.logs.lines("console command", "mode=interactive", "command=t_whoami", "exit_code=0")) != 1 {
		t.Fatalf("no audit line:\n%s", ts.logs)
	}
}

func TestInteractiveLineEditing(t *testing.T) {
	ts := newTestServer(t)
	tm := openTerm(t, ts.admin(t), 80, 24)
	tm.expect(Prompt)
	steps := []struct{ keys, want string }{
		{"t_cod 7\x1b[D\x1b[De\r", "out 7 "},           // left arrows, insert in the middle
		{" 1\x01t_code\x05\x7f2\r", "out 2 "},          // ^A, ^E, backspace
		{"garbage words here\x15t_code 3\r", "out 3 "}, // ^U
		{"t_code 9 junk more\x17\x17\r", "out 9 "},     // ^W twice
		{"t_code 4\x1b[H\x1b[3~t\r", "out 4 "},         // Home, Delete (CSI 3~), retype
		{"t_code 5x\x1bOD\x1bOC\x7f6\r", "out 56 "},    // SS3 arrows, backspace
		{"\x1b[A\r", "out 56 "},                        // history: up recalls the last line
		{"\x1b[A\x1b[A\x1b[B\r", "out 56 "},            // up, up, down
		{"t_co\t4\r", "out 4 "},                        // tab completes the command
	}
	for i, s := range steps {
		tm.send(s.keys)
		tm.expect(s.want)
		tm.expect(Prompt)
		_ = i
	}
	tm.send("\x04") // ^D on an empty line logs out
	if code := tm.exitCode(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	hist, err := os.ReadFile(filepath.Join(ts.dir, "users", "admin", "history"))
	must(t, err)
	if !strings.Contains(string(hist), "t_code 7\n") || strings.Contains(string(hist), "garbage") {
		t.Fatalf("history file:\n%s", hist)
	}
	// The history survives into the next session.
	tm2 := openTerm(t, ts.admin(t), 80, 24)
	tm2.expect(Prompt)
	tm2.send("\x1b[A\r")
	tm2.expect("out 4 ")
}

func TestInteractiveCtrlC(t *testing.T) {
	ts := newTestServer(t)
	tm := openTerm(t, ts.admin(t), 80, 24)
	tm.expect(Prompt)
	tm.send("t_whoami but not this\x03")
	tm.expect("^C")
	tm.expect(Prompt)
	tm.send("t_wait\r")
	tm.expect("waiting")
	tm.send("\x03")
	tm.expect("cancelled")
	tm.expect(Prompt)
	// Keys typed while a command runs are kept for the prompt.
	tm.send("t_wait\r")
	tm.expect("waiting")
	tm.send("t_who")
	tm.send("\x03")
	tm.expect("cancelled")
	tm.send("ami\r")
	tm.expect("user=admin")
	tm.expect(Prompt)
	// ^C during a question abandons it.
	tm.send("t_ask\r")
	tm.expect("name? ")
	tm.send("abc\x03")
	tm.expect("ask error: interrupted")
	tm.expect(Prompt)
	tm.send("t_ask\r")
	tm.expect("name? ")
	tm.send("bob\r")
	tm.expect("secret? ")
	tm.send("hunter22\r")
	out := tm.expect(`answer="bob" secret-len=8`)
	if strings.Contains(out, "hunter22") {
		t.Fatalf("the password was echoed: %q", out)
	}
	tm.expect(Prompt)
	if len(ts.logs.lines("console command", "command=t_wait", "exit_code=130")) != 2 {
		t.Fatalf("audit of cancelled commands:\n%s", ts.logs)
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config, d *Deps) { c.IdleTimeout = 300 * time.Millisecond })
	tm := openTerm(t, ts.admin(t), 80, 24)
	tm.expect(Prompt)
	tm.expect("idle timeout, logging out")
	if code := tm.exitCode(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if len(ts.logs.lines("console idle timeout", "user=admin")) != 1 {
		t.Fatalf("no log line:\n%s", ts.logs)
	}
}

// Escape attempts at the prompt give errors and the session stays healthy.
func TestInteractiveEscapeAttempts(t *testing.T) {
	ts := newTestServer(t)
	tm := openTerm(t, ts.admin(t), 80, 24)
	tm.expect(Prompt)
	for _, line := range []string{
		"t_whoami; t_code 0", "t_whoami | t_code 0", "t_whoami && t_code 0", "t_code $(t_whoami)",
		"t_code `t_whoami`", "t_code \xff\xfe", "t_code \x00\x1b]0;owned\x07 1", "t_code > /etc/passwd",
	} {
		tm.send(line + "\r")
		got := tm.expect(Prompt)
		if strings.Contains(got, "user=admin") || strings.Contains(got, "out ") {
			t.Fatalf("%q ran something:\n%q", line, got)
		}
	}
	// A 1 MB line: dropped beyond the limit and refused at Enter.
	big := strings.Repeat("x", 1<<20)
	for i := 0; i < len(big); i += 32 << 10 {
		tm.send(big[i : i+32<<10])
	}
	tm.send("\r")
	tm.expect("line too long")
	tm.expect(Prompt)
	tm.send("t_whoami\r")
	tm.expect("user=admin")
	tm.expect(Prompt)
}

// window-change requests are drained (gliderlabs blocks its request loop on
// an undrained channel) and the editor uses the new width.
func TestWindowChangeDrained(t *testing.T) {
	ts := newTestServer(t)
	c := ts.admin(t)
	tm := openTerm(t, c, 80, 24)
	tm.expect(Prompt)
	for i := 0; i < 50; i++ {
		if err := tm.s.WindowChange(24+i%10, 40+i); err != nil {
			t.Fatal(err)
		}
	}
	tm.send("t_whoami\r")
	tm.expect("user=admin")
	tm.expect(Prompt)
	_ = gossh.TerminalModes{}
}

// Stopping the server ends interactive sessions with a notice, cancels a
// running command, and Serve returns nil.
func TestShutdownEndsSessions(t *testing.T) {
	ts := newTestServer(t)
	tm := openTerm(t, ts.admin(t), 80, 24)
	tm.expect(Prompt)
	tm.send("t_wait\r")
	tm.expect("waiting")
	idle := openTerm(t, ts.admin(t), 80, 24)
	idle.expect(Prompt)
	if err := ts.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	tm.expect("cancelled")
	idle.expect("The console is shutting down.")
	if _, err := ts.dial("admin", gossh.PublicKeys(ts.adminKey)); err == nil {
		t.Fatal("a new connection after the stop")
	}
}
