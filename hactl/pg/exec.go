package pg

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// tool runs one of PostgreSQL's programs as the database OS user. It returns
// the program's output; on failure the error carries the output's tail.
func (c *Controller) tool(ctx context.Context, name string, env []string, args ...string) (string, error) {
	path := filepath.Join(c.cfg.BinDir, name)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = c.l.base
	cmd.Env = append(c.baseEnv(), env...)
	// A process group of its own: a Ctrl-C for the agent's terminal must
	// not reach the postmaster that pg_ctl leaves running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if u := c.cfg.RunAs; u != nil && uint32(os.Geteuid()) != u.UID {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID}
	}
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	c.log.Debug("pg tool", "tool", name, "args", strings.Join(args, " "), "duration_ms", time.Since(start).Milliseconds(), "err", err)
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, firstArg(args), err, tail(out.String(), 8))
	}
	return out.String(), nil
}

func (c *Controller) baseEnv() []string {
	home := c.l.base
	if u := c.cfg.RunAs; u != nil && u.Home != "" {
		home = u.Home
	}
	env := []string{
		"PATH=" + c.cfg.BinDir + ":/usr/bin:/bin",
		"HOME=" + home,
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"TZ=UTC",
	}
	if u := c.cfg.RunAs; u != nil {
		env = append(env, "USER="+u.Name, "LOGNAME="+u.Name)
	}
	return env
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// tail returns the last n non-empty lines of s, joined by " | ".
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// logTail returns the last lines of the server log, for error messages.
func (c *Controller) logTail(n int) string {
	f, err := os.Open(c.l.logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	const max = 8192
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	return tail(string(buf), n)
}
