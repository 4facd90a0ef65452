package console

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/hapair/hapair/commands"
)

func TestAuthPasswordAndKey(t *testing.T) {
	ts := newTestServer(t)
	cases := []struct {
		name   string
		user   string
		auth   []gossh.AuthMethod
		ok     bool
		whoami string
	}{
		{"admin password", "admin", []gossh.AuthMethod{gossh.Password(ts.adminPW)}, true, "user=admin role=admin"},
		{"admin key", "admin", []gossh.AuthMethod{gossh.PublicKeys(ts.adminKey)}, true, "user=admin role=admin"},
		{"operator password", "oper", []gossh.AuthMethod{gossh.Password(ts.operPW)}, true, "user=oper role=operator"},
		{"wrong password", "admin", []gossh.AuthMethod{gossh.Password("not-the-password")}, false, ""},
		{"another user's password", "oper", []gossh.AuthMethod{gossh.Password(ts.adminPW)}, false, ""},
		{"unknown user", "mallory", []gossh.AuthMethod{gossh.Password(ts.adminPW)}, false, ""},
		{"unknown key", "admin", []gossh.AuthMethod{gossh.PublicKeys(newSigner(t))}, false, ""},
		{"admin's key for another user", "oper", []gossh.AuthMethod{gossh.PublicKeys(ts.adminKey)}, false, ""},
		{"key-only user has no password", "keyonly", []gossh.AuthMethod{gossh.Password("")}, false, ""},
		{"no method at all (none)", "admin", nil, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, err := ts.dial(c.user, c.auth...)
			if !c.ok {
				if err == nil {
					cl.Close()
					t.Fatal("login accepted")
				}
				if !strings.Contains(err.Error(), "unable to authenticate") {
					t.Fatalf("want an authentication failure, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			r := runExec(cl, "t_whoami")
			if r.code != 0 || !strings.Contains(r.stdout, c.whoami) {
				t.Fatalf("t_whoami: %+v, want %q", r, c.whoami)
			}
		})
	}
	if n := len(ts.logs.lines("auth failed", "source=127.0.0.1")); n == 0 {
		t.Errorf("failed logins were not logged:\n%s", ts.logs)
	}
}

// The user store is read again when the file changes: a user added on the
// host (hactl console-user) can log in without restarting the console, and a
// deleted one cannot.
func TestUsersFileChangesApply(t *testing.T) {
	ts := newTestServer(t)
	other, err := OpenUsers(ts.dir) // another process's view of the same files
	must(t, err)
	other.Cost = 4
	must(t, other.Add("late", commands.RoleOperator, "late-password-1", time.Now()))
	c, err := ts.dial("late", gossh.Password("late-password-1"))
	if err != nil {
		t.Fatalf("new user: %v", err)
	}
	c.Close()
	must(t, other.Delete("late"))
	if c, err := ts.dial("late", gossh.Password("late-password-1")); err == nil {
		c.Close()
		t.Fatal("deleted user logged in")
	}
}

func TestLockoutAndRecovery(t *testing.T) {
	ts := newTestServer(t, func(c *Config, d *Deps) {
		c.MaxAuthFailures = 3
		c.LockoutDuration = time.Minute
	})
	for i := 0; i < 3; i++ {
		if c, err := ts.dial("admin", gossh.Password("wrong-password-x")); err == nil {
			c.Close()
			t.Fatal("wrong password accepted")
		}
	}
	// Locked out: even the right password and the right key are refused.
	if c, err := ts.dial("admin", gossh.Password(ts.adminPW)); err == nil {
		c.Close()
		t.Fatal("locked-out source logged in with a password")
	}
	if c, err := ts.dial("admin", gossh.PublicKeys(ts.adminKey)); err == nil {
		c.Close()
		t.Fatal("locked-out source logged in with a key")
	}
	if len(ts.logs.lines(`msg="source locked out"`, "source=127.0.0.1")) != 1 {
		t.Fatalf("want one lockout line:\n%s", ts.logs)
	}
	if len(ts.logs.lines("auth refused: source locked out")) < 2 {
		t.Fatalf("refusals while locked out not logged:\n%s", ts.logs)
	}
	ts.clock.add(time.Minute + time.Second)
	c, err := ts.dial("admin", gossh.Password(ts.adminPW))
	if err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	c.Close()
}

// Refused public keys count once per connection (a client may try several).
func TestLockoutCountsRefusedKeysPerConnection(t *testing.T) {
	ts := newTestServer(t, func(c *Config, d *Deps) { c.MaxAuthFailures = 2 })
	keys := gossh.PublicKeys(newSigner(t), newSigner(t), newSigner(t))
	if c, err := ts.dial("admin", keys); err == nil {
		c.Close()
		t.Fatal("unknown keys accepted")
	}
	waitFor(t, func() bool { return len(ts.logs.lines("auth failed", "method=publickey")) == 1 })
	c, err := ts.dial("admin", gossh.PublicKeys(ts.adminKey))
	if err != nil {
		t.Fatalf("one connection with three refused keys locked the source out: %v", err)
	}
	c.Close()
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLockoutMapIsBounded(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLockout(3, time.Minute, time.Minute, 10, func() time.Time { return now })
	for i := 0; i < 100; i++ {
		l.fail("198.18.0." + string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	if l.size() > 10 {
		t.Fatalf("%d entries, want at most 10", l.size())
	}
	l.fail("x")
	l.fail("x")
	if locked, _ := l.locked("x"); locked {
		t.Fatal("locked after 2 of 3")
	}
	if lockedNow, _ := l.fail("x"); !lockedNow {
		t.Fatal("not locked after 3")
	}
	now = now.Add(2 * time.Minute)
	if locked, _ := l.locked("x"); locked {
		t.Fatal("still locked after the lockout")
	}
	// A flood of new sources does not free a locked-out one.
	l.fail("y")
	l.fail("y")
	l.fail("y")
	for i := 0; i < 100; i++ {
		l.fail("flood-" + itoa(i))
	}
	if locked, _ := l.locked("y"); !locked {
		t.Fatal("a flood of sources evicted a lockout")
	}
}

func TestRoleGate(t *testing.T) {
	ts := newTestServer(t)
	oper, err := ts.dial("oper", gossh.Password(ts.operPW))
	must(t, err)
	defer oper.Close()
	r := runExec(oper, "ha_cluster_stop")
	if r.code != commands.ExitPermission || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("operator ha_cluster_stop: %+v", r)
	}
	r = runExec(oper, "ha_status")
	if r.code != 0 {
		t.Fatalf("operator ha_status: %+v", r)
	}
	if len(ts.logs.lines("console command", "user=oper", "command=ha_cluster_stop", "exit_code=77")) != 1 {
		t.Fatalf("no audit line for the refused command:\n%s", ts.logs)
	}
}

// The server must never be built without auth handlers: gliderlabs would
// then admit everyone. And if a connection somehow got in without the
// console's own authentication, its session is refused.
func TestNoAuthHandlerTrap(t *testing.T) {
	ts := newTestServer(t)
	if err := checkAuthConfigured(&ssh.Server{}); err == nil {
		t.Fatal("a server without auth handlers passed the check")
	}
	// Build the trap on purpose: the console's server without its handlers.
	trap := ts.srv.newSSHServer()
	trap.PasswordHandler, trap.PublicKeyHandler = nil, nil
	if err := checkAuthConfigured(trap); err == nil {
		t.Fatal("the trap passed the check")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = trap.Serve(ln) }()
	defer func() { trap.Close(); <-done }()
	c, err := gossh.Dial("tcp", ln.Addr().String(), &gossh.ClientConfig{User: "admin",
		HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatalf("gliderlabs without handlers should let the client in (the trap): %v", err)
	}
	defer c.Close()
	r := runExec(c, "t_whoami")
	if r.code == 0 || strings.Contains(r.stdout, "user=") || !strings.Contains(r.stderr, "session refused") {
		t.Fatalf("an unauthenticated session ran a command: %+v", r)
	}
}

// CVE-2024-45337: the public key callback sees keys the client never signs
// with. A key offered (and acceptable) but not used must not be taken for
// the session's credential: with the real OpenSSH client, offer key A
// (public half only, so it cannot sign), then log in with key B (or a
// password): the session's key is B's (or none).
func TestKeyOfferedButNotUsed(t *testing.T) {
	sshBin := lookSSH(t)
	ts := newTestServer(t)
	dir := t.TempDir()
	a := writeKeyPair(t, dir, "a")
	b := writeKeyPair(t, dir, "b")
	aPub, err := os.ReadFile(a + ".pub")
	must(t, err)
	bPub, err := os.ReadFile(b + ".pub")
	must(t, err)
	_, err = ts.srv.Users().AddKey("keyonly", aPub)
	must(t, err)
	_, err = ts.srv.Users().AddKey("keyonly", bPub)
	must(t, err)
	must(t, os.Remove(a)) // only A's public half is left
	fpA, fpB := fingerprintFile(t, a+".pub"), fingerprintFile(t, b+".pub")

	out, code := runSSH(t, sshBin, ts, dir, "keyonly", []string{"-i", a + ".pub", "-i", b}, "t_whoami")
	if code != 0 || !strings.Contains(out, "user=keyonly") {
		t.Fatalf("login with B: code %d, %s", code, out)
	}
	if len(ts.logs.lines("console command", "user=keyonly", "key_fp="+fpB)) != 1 ||
		len(ts.logs.lines("console command", "key_fp="+fpA)) != 0 {
		t.Fatalf("the session's key is not B's (A=%s B=%s):\n%s", fpA, fpB, ts.logs)
	}

	// A offered, then a password: the session is a password session.
	_, err = ts.srv.Users().AddKey("admin", aPub)
	must(t, err)
	askpass := filepath.Join(dir, "askpass")
	must(t, os.WriteFile(askpass, []byte("#!/bin/sh\necho '"+ts.adminPW+"'\n"), 0o700))
	out, code = runSSHEnv(t, sshBin, ts, dir, "admin",
		[]string{"-i", a + ".pub", "-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1",
			"-o", "PreferredAuthentications=publickey,password"},
		[]string{"SSH_ASKPASS=" + askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0"}, "t_whoami")
	if code != 0 || !strings.Contains(out, "user=admin") {
		t.Fatalf("password login after offering A: code %d, %s", code, out)
	}
	lines := ts.logs.lines("console command", "user=admin", "auth=password")
	if len(lines) != 1 || strings.Contains(lines[0], "key_fp") {
		t.Fatalf("want one password session without a key:\n%s", ts.logs)
	}
}

// ctx.User() in gliderlabs keeps the first user name a client tried; the
// console reads the name again for every attempt and takes the session's
// user from the authenticated connection.
func TestIdentityComesFromTheConnection(t *testing.T) {
	ts := newTestServer(t)
	// A password session of oper must not become admin, whatever the
	// context says: identify compares the recorded user with the conn's.
	c, err := ts.dial("oper", gossh.Password(ts.operPW))
	must(t, err)
	defer c.Close()
	r := runExec(c, "t_whoami")
	if !strings.Contains(r.stdout, "user=oper role=operator") {
		t.Fatalf("%+v", r)
	}
	// freshPerms makes gliderlabs re-read the connection's metadata before
	// the next callback.
	ctx, cancel := newGliderContext(t)
	defer cancel()
	ctx.SetValue(ssh.ContextKeySessionID, "x")
	freshPerms(ctx, map[string]string{extUser: "a"})
	if ctx.Value(ssh.ContextKeySessionID) != nil {
		t.Fatal("session id not cleared: gliderlabs would keep the first user name")
	}
	if p := ctx.Permissions(); p.Extensions[extUser] != "a" {
		t.Fatalf("permissions not replaced: %v", p.Extensions)
	}
}

// newGliderContext makes a gliderlabs context through a real connection's
// ConnCallback (the package offers no constructor).
func newGliderContext(t *testing.T) (ssh.Context, context.CancelFunc) {
	got := make(chan ssh.Context, 1)
	srv := &ssh.Server{ConnCallback: func(ctx ssh.Context, conn net.Conn) net.Conn {
		got <- ctx
		return nil
	}}
	a, b := net.Pipe()
	go srv.HandleConn(a)
	ctx := <-got
	b.Close()
	return ctx, func() {}
}

func TestHostKeyPersists(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, HostKeyFile)
	k1, err := LoadOrCreateHostKey(p)
	must(t, err)
	st, err := os.Stat(p)
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %v", st.Mode().Perm())
	}
	k2, err := LoadOrCreateHostKey(p)
	must(t, err)
	if string(k1.PublicKey().Marshal()) != string(k2.PublicKey().Marshal()) {
		t.Fatal("a new host key at the second start")
	}
	if k1.PublicKey().Type() != gossh.KeyAlgoED25519 {
		t.Fatalf("host key type %s", k1.PublicKey().Type())
	}
	must(t, os.Chmod(p, 0o644))
	if _, err := LoadOrCreateHostKey(p); err == nil {
		t.Fatal("a world-readable host key was used")
	}
}

func TestEnsureAdmin(t *testing.T) {
	u, err := OpenUsers(t.TempDir())
	must(t, err)
	u.Cost = 4
	var out strings.Builder
	pw, err := EnsureAdmin(u, nil, &out, time.Now())
	must(t, err)
	if len(pw) < MinPasswordLen || !strings.Contains(out.String(), pw) {
		t.Fatalf("password %q, output %q", pw, out.String())
	}
	if ok, _ := u.CheckPassword("admin", pw); !ok {
		t.Fatal("the printed password does not log in")
	}
	out.Reset()
	pw2, err := EnsureAdmin(u, nil, &out, time.Now())
	must(t, err)
	if pw2 != "" || out.Len() != 0 {
		t.Fatal("a second start made another password")
	}
	// With a key: no password at all.
	u2, err := OpenUsers(t.TempDir())
	must(t, err)
	key := newSigner(t)
	pw, err = EnsureAdmin(u2, gossh.MarshalAuthorizedKey(key.PublicKey()), &out, time.Now())
	must(t, err)
	if pw != "" {
		t.Fatal("a password was made next to the key")
	}
	if ok, _ := u2.AuthorizedKey("admin", key.PublicKey()); !ok {
		t.Fatal("the key is not authorised")
	}
	if a, _ := u2.Get("admin"); a.PasswordHash != "" {
		t.Fatal("admin has a password")
	}
}

func TestUserStoreRules(t *testing.T) {
	u, err := OpenUsers(t.TempDir())
	must(t, err)
	u.Cost = 4
	now := time.Now()
	must(t, u.Add("admin", commands.RoleAdmin, "a-long-password", now))
	for name, err := range map[string]error{
		"short password":     u.Add("bob", commands.RoleOperator, "short", now),
		"bad role":           u.Add("bob", "root", "a-long-password", now),
		"bad name":           u.Add("../etc", commands.RoleOperator, "a-long-password", now),
		"duplicate":          u.Add("admin", commands.RoleAdmin, "a-long-password", now),
		"last admin delete":  u.Delete("admin"),
		"last admin demote":  u.SetRole("admin", commands.RoleOperator, now),
		"key with options":   addKeyErr(u, "admin", "restrict "+strings.TrimSpace(string(gossh.MarshalAuthorizedKey(newSigner(t).PublicKey())))),
		"wrong old password": u.ChangePassword("admin", "not-it-at-all", "another-long-one"),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	must(t, u.ChangePassword("admin", "a-long-password", "another-long-one"))
	if ok, _ := u.CheckPassword("admin", "another-long-one"); !ok {
		t.Fatal("passwd did not take")
	}
	st, err := os.Stat(filepath.Join(u.Dir(), UsersFile))
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v", st.Mode().Perm())
	}
}

func addKeyErr(u *Users, name, line string) error {
	_, err := u.AddKey(name, []byte(line))
	return err
}

var _ = slog.Default
