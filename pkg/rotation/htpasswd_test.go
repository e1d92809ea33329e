package rotation

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// other lines that every edit must keep byte for byte: a comment, a CRLF
// line, an entry of another hash kind, a line without a final newline.
const otherLines = "# mirror users\r\nalice:$2y$05$abcdefghijklmnopqrstuu5Dmtf2H7o.0WZ2p3mvb3gXvMqvpsFQa\r\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\nzed:plain"

func userLine(t *testing.T, data, user string) string {
	t.Helper()
	var found []string
	for _, l := range strings.Split(data, "\n") {
		if strings.HasPrefix(l, user+":") {
			found = append(found, strings.TrimSuffix(l, "\r"))
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d lines for %s in:\n%s", len(found), user, data)
	}
	return strings.TrimPrefix(found[0], user+":")
}

func TestSetPassword(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(p, []byte(otherLines), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o640)

	res, err := SetPassword(p, "carol", []byte("first password"), DefaultBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != ActionAdded || res.Created {
		t.Fatalf("result %+v", res)
	}
	data, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(data), otherLines+"\n") {
		t.Fatalf("other lines changed:\n%q", data)
	}
	hash := userLine(t, string(data), "carol")
	if !strings.HasPrefix(hash, "$2y$12$") || bcrypt.CompareHashAndPassword([]byte(hash), []byte("first password")) != nil {
		t.Fatalf("hash %q", hash)
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost < MinBcryptCost {
		t.Fatalf("cost %d", cost)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640 kept", fi.Mode().Perm())
	}

	// Replacing alice's CRLF line keeps its line ending and everything else.
	if res, err = SetPassword(p, "alice", []byte("second password"), DefaultBcryptCost); err != nil || res.Action != ActionUpdated {
		t.Fatalf("%v %+v", err, res)
	}
	data, _ = os.ReadFile(p)
	alice := userLine(t, string(data), "alice")
	if bcrypt.CompareHashAndPassword([]byte(alice), []byte("second password")) != nil || !strings.Contains(string(data), alice+"\r\n") {
		t.Fatalf("alice not replaced in place:\n%q", data)
	}
	if want := strings.Replace(otherLines, "$2y$05$abcdefghijklmnopqrstuu5Dmtf2H7o.0WZ2p3mvb3gXvMqvpsFQa", alice, 1); !strings.HasPrefix(string(data), want) {
		t.Fatalf("other lines changed:\n%q", data)
	}

	// Removing carol leaves the rest.
	if _, err := RemoveUser(p, "carol"); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(p)
	if strings.Contains(string(data), "carol") || !strings.Contains(string(data), "bob:{SHA}") {
		t.Fatalf("after remove:\n%q", data)
	}
	if _, err := RemoveUser(p, "carol"); !errors.Is(err, ErrUnknownUser) || failure.Code(err) != failure.ExitUsage {
		t.Fatalf("removing a missing user: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left-overs: %v", entries)
	}
}

func TestSetPasswordDuplicatesAndCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "new.htpasswd")
	if res, err := SetPassword(p, "ops", []byte("pw-one-two-three"), DefaultBcryptCost); err != nil || !res.Created {
		t.Fatalf("%v %+v", err, res)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file mode %v, want 0600", fi.Mode().Perm())
	}
	// A duplicate entry for the user is folded into one.
	data, _ := os.ReadFile(p)
	os.WriteFile(p, append(data, data...), 0o600)
	if _, err := SetPassword(p, "ops", []byte("pw-four"), DefaultBcryptCost); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(p)
	userLine(t, string(data), "ops")

	// The folder must exist.
	if _, err := SetPassword(filepath.Join(dir, "missing", "h"), "ops", []byte("x"), DefaultBcryptCost); failure.Code(err) != failure.ExitUsage {
		t.Fatalf("missing folder: %v", err)
	}
	// A symlink is followed, not replaced.
	link := filepath.Join(dir, "link")
	os.Symlink(p, link)
	if _, err := SetPassword(link, "ops", []byte("pw-five"), DefaultBcryptCost); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("symlink replaced")
	}
	data, _ = os.ReadFile(p)
	if bcrypt.CompareHashAndPassword([]byte(userLine(t, string(data), "ops")), []byte("pw-five")) != nil {
		t.Fatal("target not updated")
	}
}

func TestCredentialInputs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "h")
	for _, tt := range []struct {
		user, password string
		cost           int
	}{
		{"", "pw", 12}, {"a:b", "pw", 12}, {"a b", "pw", 12}, {"#x", "pw", 12},
		{"ok", "", 12}, {"ok", strings.Repeat("x", 73), 12}, {"ok", "a\nb", 12}, {"ok", "pw", 11}, {"ok", "pw", 32},
	} {
		if _, err := SetPassword(p, tt.user, []byte(tt.password), tt.cost); failure.Code(err) != failure.ExitUsage {
			t.Errorf("user %q password %q cost %d: %v, want exit 4", tt.user, tt.password, tt.cost, err)
		}
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("a refused change created the file")
	}
	pw, err := GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(pw)
	if err != nil || len(raw)*8 < 128 || len(pw) != 32 {
		t.Fatalf("password %q: %d bits", pw, len(raw)*8)
	}
	if other, _ := GeneratePassword(); other == pw {
		t.Fatal("two generated passwords are equal")
	}
}

// TestApacheHtpasswdAccepts checks the entry with Apache's htpasswd
// (apache2-utils), when it is installed.
func TestApacheHtpasswdAccepts(t *testing.T) {
	bin, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Skip("htpasswd (apache2-utils) is not installed")
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(p, []byte(otherLines), 0o600)
	pw, err := GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SetPassword(p, "carol", []byte(pw), DefaultBcryptCost); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-vb", p, "carol", pw).CombinedOutput(); err != nil {
		t.Fatalf("htpasswd -vb refused the new password: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "-vb", p, "carol", pw+"x").CombinedOutput(); err == nil {
		t.Fatalf("htpasswd -vb accepted a wrong password:\n%s", out)
	}
}
