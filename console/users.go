package console

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	gossh "golang.org/x/crypto/ssh"

	"github.com/hapair/hapair/commands"
)

// Files of the console's state directory.
const (
	// HostKeyFile is the persistent ed25519 host key (0600).
	HostKeyFile = "ssh_host_ed25519_key"
	// UsersFile lists the console's users, their roles and password hashes.
	UsersFile = "users.json"
	// usersLockFile is flock(2)ed while the users file is rewritten.
	usersLockFile = "users.lock"
	// usersDir holds a folder per user: authorized_keys and history.
	usersDir = "users"
	// AuthorizedKeysFile is a user's public keys, in OpenSSH format.
	AuthorizedKeysFile = "authorized_keys"
	historyFile        = "history"
)

// Password rules.
const (
	// MinPasswordLen is the shortest password the store accepts.
	MinPasswordLen = 12
	// maxPasswordLen is bcrypt's limit (longer input would be cut silently).
	maxPasswordLen = 72
	// DefaultBcryptCost is the work factor of new password hashes.
	DefaultBcryptCost = 12
	// maxAuthorizedKeysBytes bounds what is read of an authorized_keys file.
	maxAuthorizedKeysBytes = 1 << 20
)

// Sentinel errors of the user store.
var (
	// ErrNoUser: no user by that name.
	ErrNoUser = errors.New("no such user")
	// ErrUserExists: add of a name already taken.
	ErrUserExists = errors.New("user already exists")
	// ErrBadPassword: the old password given to ChangePassword is wrong.
	ErrBadPassword = errors.New("the current password is not correct")
)

var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// User is one console account as kept in the users file.
type User struct {
	Name string `json:"name"`
	// Role is commands.RoleAdmin or commands.RoleOperator.
	Role string `json:"role"`
	// PasswordHash is a bcrypt hash; empty: no password login (keys only).
	PasswordHash string    `json:"password_hash,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	ChangedAt    time.Time `json:"changed_at"`
}

type usersFile struct {
	Version int    `json:"version"`
	Users   []User `json:"users"`
}

// Users is the console's user store in a state directory: users.json (roles,
// password hashes) and users/<name>/authorized_keys. Reads come from the
// files (cached while the users file is unchanged), so the `hactl
// console-user` tool takes effect without restarting the console. Writes
// take a flock on users.lock and replace the file by rename, so a reader
// never sees half a file and two writers never lose each other's change.
// A Users is safe for concurrent use.
type Users struct {
	dir string
	// Cost is the bcrypt work factor of new hashes (DefaultBcryptCost).
	Cost int

	mu       sync.Mutex
	cacheKey string
	cache    map[string]User
	dummy    []byte // a hash to compare against for unknown users
}

// OpenUsers returns the store in dir, creating dir (0700) if needed.
func OpenUsers(dir string) (*Users, error) {
	if err := os.MkdirAll(filepath.Join(dir, usersDir), 0o700); err != nil {
		return nil, fmt.Errorf("console state dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("console state dir %s: %w", dir, err)
	}
	return &Users{dir: dir, Cost: DefaultBcryptCost}, nil
}

// Dir is the store's directory.
func (u *Users) Dir() string { return u.dir }

func (u *Users) path() string { return filepath.Join(u.dir, UsersFile) }

// UserDir is where user's authorized_keys and history live.
func (u *Users) UserDir(name string) string { return filepath.Join(u.dir, usersDir, name) }

// List returns every user, sorted by name.
func (u *Users) List() ([]User, error) {
	m, err := u.load()
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(m))
	for _, x := range m {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns the user called name, or ErrNoUser.
func (u *Users) Get(name string) (User, error) {
	m, err := u.load()
	if err != nil {
		return User{}, err
	}
	x, ok := m[name]
	if !ok {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNoUser)
	}
	return x, nil
}

// load reads the users file, or returns the cached map when the file's
// identity (size, mtime, inode) is unchanged. A missing file is an empty store.
func (u *Users) load() (map[string]User, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	st, err := os.Stat(u.path())
	if errors.Is(err, os.ErrNotExist) {
		u.cache, u.cacheKey = map[string]User{}, ""
		return u.cache, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	key := fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		key += fmt.Sprintf("/%d", sys.Ino)
	}
	if u.cache != nil && key == u.cacheKey {
		return u.cache, nil
	}
	f, err := u.readFile()
	if err != nil {
		return nil, err
	}
	m := make(map[string]User, len(f.Users))
	for _, x := range f.Users {
		m[x.Name] = x
	}
	u.cache, u.cacheKey = m, key
	return m, nil
}

func (u *Users) readFile() (usersFile, error) {
	var f usersFile
	b, err := os.ReadFile(u.path())
	if errors.Is(err, os.ErrNotExist) {
		return usersFile{Version: 1}, nil
	}
	if err != nil {
		return f, fmt.Errorf("users file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("users file %s: %w", u.path(), err)
	}
	if f.Version != 1 {
		return f, fmt.Errorf("users file %s: version %d, want 1", u.path(), f.Version)
	}
	return f, nil
}

// update runs fn on the users file under the store's flock and writes the
// result atomically (temporary file, fsync, rename).
func (u *Users) update(fn func(f *usersFile) error) error {
	lock, err := os.OpenFile(filepath.Join(u.dir, usersLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("users lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("users lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	f, err := u.readFile()
	if err != nil {
		return err
	}
	if err := fn(&f); err != nil {
		return err
	}
	sort.Slice(f.Users, func(i, j int) bool { return f.Users[i].Name < f.Users[j].Name })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	tmp, err := os.CreateTemp(u.dir, UsersFile+".tmp*")
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("users file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("users file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("users file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if err := os.Rename(tmp.Name(), u.path()); err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	u.mu.Lock()
	u.cache = nil
	u.mu.Unlock()
	return nil
}

func validRole(role string) error {
	if role != commands.RoleAdmin && role != commands.RoleOperator {
		return fmt.Errorf("role %q: want %s or %s", role, commands.RoleAdmin, commands.RoleOperator)
	}
	return nil
}

// ValidUserName reports whether name may be a console user's name.
func ValidUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return fmt.Errorf("user name %q: want 1-32 lowercase letters, digits, '_', '.', '-', starting with a letter or '_'", name)
	}
	return nil
}

// CheckPasswordRules says why password is not acceptable for user, or nil.
func CheckPasswordRules(user, password string) error {
	switch {
	case len([]rune(password)) < MinPasswordLen:
		return fmt.Errorf("the password must have at least %d characters", MinPasswordLen)
	case len(password) > maxPasswordLen:
		return fmt.Errorf("the password must have at most %d bytes", maxPasswordLen)
	case strings.EqualFold(password, user):
		return errors.New("the password must not be the user name")
	}
	for _, r := range password {
		if r < 0x20 || r == 0x7f {
			return errors.New("the password must not contain control characters")
		}
	}
	return nil
}

func (u *Users) hash(password string) (string, error) {
	cost := u.Cost
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Add creates user name with role and, unless password is empty, a
// password (checked against the password rules).
func (u *Users) Add(name, role, password string, now time.Time) error {
	if err := ValidUserName(name); err != nil {
		return err
	}
	if err := validRole(role); err != nil {
		return err
	}
	h, err := u.hashIfSet(name, password)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(u.UserDir(name), 0o700); err != nil {
		return fmt.Errorf("user %s: %w", name, err)
	}
	return u.update(func(f *usersFile) error {
		for _, x := range f.Users {
			if x.Name == name {
				return fmt.Errorf("user %q: %w", name, ErrUserExists)
			}
		}
		f.Users = append(f.Users, User{Name: name, Role: role, PasswordHash: h, CreatedAt: now.UTC(), ChangedAt: now.UTC()})
		return nil
	})
}

// Delete removes user name, its keys and its history. It refuses to remove
// the last admin.
func (u *Users) Delete(name string) error {
	err := u.update(func(f *usersFile) error {
		i := indexOf(f.Users, name)
		if i < 0 {
			return fmt.Errorf("user %q: %w", name, ErrNoUser)
		}
		if f.Users[i].Role == commands.RoleAdmin && countAdmins(f.Users) == 1 {
			return fmt.Errorf("user %q is the last admin", name)
		}
		f.Users = append(f.Users[:i], f.Users[i+1:]...)
		return nil
	})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(u.UserDir(name)); err != nil {
		return fmt.Errorf("user %s: %w", name, err)
	}
	return nil
}

// SetRole changes user name's role. It refuses to demote the last admin.
func (u *Users) SetRole(name, role string, now time.Time) error {
	if err := validRole(role); err != nil {
		return err
	}
	return u.update(func(f *usersFile) error {
		i := indexOf(f.Users, name)
		if i < 0 {
			return fmt.Errorf("user %q: %w", name, ErrNoUser)
		}
		if f.Users[i].Role == commands.RoleAdmin && role != commands.RoleAdmin && countAdmins(f.Users) == 1 {
			return fmt.Errorf("user %q is the last admin", name)
		}
		f.Users[i].Role, f.Users[i].ChangedAt = role, now.UTC()
		return nil
	})
}

// hashIfSet checks password against the rules and hashes it; an empty
// password (password login disabled) gives an empty hash.
func (u *Users) hashIfSet(name, password string) (string, error) {
	if password == "" {
		return "", nil
	}
	if err := CheckPasswordRules(name, password); err != nil {
		return "", err
	}
	return u.hash(password)
}

// SetPassword sets user name's password (the host administrator's reset:
// no old password needed). An empty password disables password login.
func (u *Users) SetPassword(name, password string, now time.Time) error {
	h, err := u.hashIfSet(name, password)
	if err != nil {
		return err
	}
	return u.update(func(f *usersFile) error {
		i := indexOf(f.Users, name)
		if i < 0 {
			return fmt.Errorf("user %q: %w", name, ErrNoUser)
		}
		f.Users[i].PasswordHash, f.Users[i].ChangedAt = h, now.UTC()
		return nil
	})
}

// ChangePassword is passwd for a logged-in user: it checks oldPassword
// first. It implements commands.Accounts.
func (u *Users) ChangePassword(name, oldPassword, newPassword string) error {
	if ok, err := u.CheckPassword(name, oldPassword); err != nil || !ok {
		if err != nil {
			return err
		}
		return ErrBadPassword
	}
	if oldPassword == newPassword {
		return errors.New("the new password must differ from the current one")
	}
	return u.SetPassword(name, newPassword, time.Now())
}

// CheckPassword reports whether password is name's. For an unknown user, or
// one without a password, it still spends a bcrypt comparison so that
// timing does not tell which names exist.
func (u *Users) CheckPassword(name, password string) (bool, error) {
	x, err := u.Get(name)
	if err != nil && !errors.Is(err, ErrNoUser) {
		return false, err
	}
	if x.PasswordHash == "" || len(password) > maxPasswordLen {
		_ = bcrypt.CompareHashAndPassword(u.dummyHash(), []byte(password))
		return false, nil
	}
	return bcrypt.CompareHashAndPassword([]byte(x.PasswordHash), []byte(password)) == nil, nil
}

func (u *Users) dummyHash() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dummy == nil {
		h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), max(u.Cost, bcrypt.MinCost))
		if err != nil {
			panic(err) // only when crypto/rand fails
		}
		u.dummy = h
	}
	return u.dummy
}

// AddKey appends a public key (one authorized_keys line) to user name's
// authorized_keys, after checking it parses. Lines with options are refused:
// the console does not implement them.
func (u *Users) AddKey(name string, line []byte) (string, error) {
	if _, err := u.Get(name); err != nil {
		return "", err
	}
	key, _, opts, rest, err := gossh.ParseAuthorizedKey(line)
	if err != nil {
		return "", fmt.Errorf("public key: %w", err)
	}
	if len(opts) > 0 {
		return "", fmt.Errorf("public key: options (%s) are not supported", strings.Join(opts, ","))
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return "", errors.New("public key: give one key")
	}
	if err := os.MkdirAll(u.UserDir(name), 0o700); err != nil {
		return "", fmt.Errorf("user %s: %w", name, err)
	}
	p := filepath.Join(u.UserDir(name), AuthorizedKeysFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("authorized keys: %w", err)
	}
	if _, err := f.Write(append(bytes.TrimSpace(line), '\n')); err != nil {
		f.Close()
		return "", fmt.Errorf("authorized keys %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("authorized keys %s: %w", p, err)
	}
	return gossh.FingerprintSHA256(key), nil
}

// AuthorizedKey reports whether key is in user name's authorized_keys.
// Lines with options are skipped (not supported).
func (u *Users) AuthorizedKey(name string, key gossh.PublicKey) (bool, error) {
	if ValidUserName(name) != nil {
		return false, nil
	}
	f, err := os.Open(filepath.Join(u.UserDir(name), AuthorizedKeysFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("authorized keys of %s: %w", name, err)
	}
	defer f.Close()
	want := key.Marshal()
	sc := bufio.NewScanner(&limitedReader{r: f, n: maxAuthorizedKeysBytes})
	sc.Buffer(make([]byte, 0, 16<<10), 64<<10)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, _, opts, _, err := gossh.ParseAuthorizedKey(line)
		if err != nil || len(opts) > 0 {
			continue
		}
		if bytes.Equal(k.Marshal(), want) {
			return true, nil
		}
	}
	return false, nil
}

type limitedReader struct {
	r io.Reader
	n int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

func indexOf(us []User, name string) int {
	for i, x := range us {
		if x.Name == name {
			return i
		}
	}
	return -1
}

func countAdmins(us []User) int {
	n := 0
	for _, x := range us {
		if x.Role == commands.RoleAdmin {
			n++
		}
	}
	return n
}

// RandomPassword returns a fresh password of 24 characters from crypto/rand
// (about 120 bits), for the first admin.
func RandomPassword() string {
	return rand.Text()[:24]
}
