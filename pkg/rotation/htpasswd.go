package rotation

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"golang.org/x/crypto/bcrypt"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// bcrypt settings of rotate credentials.
const (
	// MinBcryptCost is the lowest cost written; DefaultBcryptCost the default.
	MinBcryptCost     = 12
	DefaultBcryptCost = 12
	// MaxPasswordBytes is bcrypt's limit: longer passwords are refused, not truncated.
	MaxPasswordBytes = 72
	// GeneratedPasswordBytes of randomness (192 bits) go into a generated password.
	GeneratedPasswordBytes = 24
	// MaxHtpasswdSize bounds the file read, as serve does.
	MaxHtpasswdSize = 4 << 20
)

// Credential actions.
const (
	ActionAdded   = "added"
	ActionUpdated = "updated"
	ActionRemoved = "removed"
)

// ErrUnknownUser: --remove names a user the file does not list (exit 4).
var ErrUnknownUser = failure.New(failure.ErrUsage, "user not in the htpasswd file")

// CredentialResult describes a change to an htpasswd file.
type CredentialResult struct {
	SchemaVersion int    `json:"schemaVersion"`
	Htpasswd      string `json:"htpasswd"`
	User          string `json:"user"`
	Action        string `json:"action"`
	Cost          int    `json:"cost,omitempty"`
	// Created is true when the file did not exist before.
	Created bool `json:"created"`
}

// GeneratePassword returns a random password of GeneratedPasswordBytes
// bytes, base64url-encoded without padding (32 characters).
func GeneratePassword() (string, error) {
	b := make([]byte, GeneratedPasswordBytes)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashPassword returns the bcrypt hash of password in the $2y$ form that
// Apache's htpasswd -B writes and verifies.
func HashPassword(password []byte, cost int) ([]byte, error) {
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	if cost < MinBcryptCost || cost > bcrypt.MaxCost {
		return nil, failure.Usagef("bcrypt cost %d: use %d to %d", cost, MinBcryptCost, bcrypt.MaxCost)
	}
	h, err := bcrypt.GenerateFromPassword(password, cost)
	if err != nil {
		return nil, fmt.Errorf("bcrypt: %w", err)
	}
	// $2a$ and $2y$ name the same algorithm in this implementation; $2y$ is
	// what htpasswd writes.
	if bytes.HasPrefix(h, []byte("$2a$")) {
		h[2] = 'y'
	}
	return h, nil
}

// CheckPassword refuses passwords bcrypt cannot hash faithfully.
func CheckPassword(password []byte) error {
	switch {
	case len(password) == 0:
		return failure.Usagef("empty password")
	case len(password) > MaxPasswordBytes:
		return failure.Usagef("password longer than %d bytes (bcrypt would ignore the rest)", MaxPasswordBytes)
	case bytes.ContainsAny(password, "\x00\r\n"):
		return failure.Usagef("password contains a NUL or line break")
	}
	return nil
}

// CheckUser refuses user names that cannot be an htpasswd entry.
func CheckUser(user string) error {
	if user == "" || len(user) > 255 || strings.HasPrefix(user, "#") {
		return failure.Usagef("user name %q: want 1-255 characters, not starting with '#'", user)
	}
	for _, r := range user {
		if r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return failure.Usagef("user name %q: no ':', spaces or control characters", user)
		}
	}
	return nil
}

// SetPassword stores the bcrypt hash of password for user in the htpasswd
// file at path: the user's line is replaced in place (further lines for the
// same user are dropped), or appended. Every other line stays byte for
// byte. The file is replaced atomically keeping its mode and owner, or
// created with mode 0600. A symlink is followed to the file it names.
func SetPassword(path, user string, password []byte, cost int) (*CredentialResult, error) {
	if err := CheckUser(user); err != nil {
		return nil, err
	}
	hash, err := HashPassword(password, cost)
	if err != nil {
		return nil, err
	}
	target, data, created, err := readHtpasswd(path)
	if err != nil {
		return nil, err
	}
	entry := user + ":" + string(hash)
	lines, found := editLines(data, user, &entry)
	res := &CredentialResult{SchemaVersion: 1, Htpasswd: path, User: user, Action: ActionUpdated, Cost: cost, Created: created}
	if !found {
		lines = append(lines, entry+"\n")
		res.Action = ActionAdded
	}
	if err := atomicfile.WriteFile(target, []byte(strings.Join(lines, "")), 0o600, atomicfile.KeepMode()); err != nil {
		return nil, err
	}
	return res, nil
}

// RemoveUser drops every line of user from the htpasswd file at path.
func RemoveUser(path, user string) (*CredentialResult, error) {
	if err := CheckUser(user); err != nil {
		return nil, err
	}
	target, data, created, err := readHtpasswd(path)
	if err != nil {
		return nil, err
	}
	lines, found := editLines(data, user, nil)
	if !found || created {
		return nil, fmt.Errorf("%w: %s does not list %q", ErrUnknownUser, path, user)
	}
	if err := atomicfile.WriteFile(target, []byte(strings.Join(lines, "")), 0o600, atomicfile.KeepMode()); err != nil {
		return nil, err
	}
	return &CredentialResult{SchemaVersion: 1, Htpasswd: path, User: user, Action: ActionRemoved}, nil
}

// readHtpasswd returns the file to write (symlinks resolved), its content,
// and whether it is missing.
func readHtpasswd(path string) (string, []byte, bool, error) {
	target := path
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		t, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "", nil, false, failure.Classify(failure.ErrUsage, fmt.Errorf("htpasswd %s: %w", path, err))
		}
		target = t
	}
	f, err := os.Open(target)
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(filepath.Dir(target)); derr != nil {
			return "", nil, false, failure.Classify(failure.ErrUsage, fmt.Errorf("htpasswd %s: %w", path, derr))
		}
		return target, nil, true, nil
	}
	if err != nil {
		return "", nil, false, failure.Classify(failure.ErrUsage, fmt.Errorf("read htpasswd %s: %w", path, err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return "", nil, false, failure.Usagef("htpasswd %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxHtpasswdSize+1))
	if err != nil {
		return "", nil, false, failure.Classify(failure.ErrUsage, fmt.Errorf("read htpasswd %s: %w", path, err))
	}
	if len(data) > MaxHtpasswdSize {
		return "", nil, false, failure.Usagef("htpasswd %s: larger than %d bytes", path, MaxHtpasswdSize)
	}
	return target, data, false, nil
}

// editLines splits data into lines (each keeping its line ending) and
// replaces the first line of user with *entry, dropping its other lines;
// with entry nil every line of user is dropped. A last line without a
// newline gets one.
func editLines(data []byte, user string, entry *string) ([]string, bool) {
	var out []string
	found := false
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line string
		if i < 0 {
			line, data = string(data)+"\n", nil
		} else {
			line, data = string(data[:i+1]), data[i+1:]
		}
		name, _, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if !ok || name != user {
			out = append(out, line)
			continue
		}
		if entry != nil && !found {
			eol := "\n"
			if strings.HasSuffix(line, "\r\n") {
				eol = "\r\n"
			}
			out = append(out, *entry+eol)
		}
		found = true
	}
	return out, found
}
