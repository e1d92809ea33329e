package mirror

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/rotation"
	"github.com/stellaops/stellaops-cli/pkg/serve"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// rotT0 is the fixed time of these tests: nothing depends on today's date.
var rotT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func rotKey(name string) string { return filepath.Join("..", "..", "..", "testdata", "keys", name) }

type rotRun struct {
	stdout, stderr string
	code           int
}

// runMirror runs "mirror ARGS..." with stdin and returns its output and exit code.
func runMirror(t *testing.T, stdin string, args ...string) rotRun {
	t.Helper()
	var out, errb bytes.Buffer
	s := iostreams.Test(strings.NewReader(stdin), &out, &errb)
	s.Getenv = func(string) string { return "" }
	cmd := NewCmdMirror(s)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		errb.WriteString(err.Error() + "\n")
	}
	return rotRun{stdout: out.String(), stderr: errb.String(), code: failure.Code(err)}
}

func mustRun(t *testing.T, stdin string, args ...string) rotRun {
	t.Helper()
	r := runMirror(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("mirror %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

func TestRotateKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "new.pem")
	out := filepath.Join(dir, "out.pem")
	stmt := filepath.Join(dir, "s.json")
	mustRun(t, "", "rotate", "key", "--current-key", rotKey("es256.pem"), "--generate", "ES384", "--new-key-out", priv,
		"--trust-roots", rotKey("es256.pub"), "--trust-roots-out", out, "--statement-out", stmt, "--now", "2026-03-01T00:00:00Z")
	for p, want := range map[string]os.FileMode{priv: 0o600, filepath.Join(dir, "new.pub"): 0o644, out: 0o644, stmt: 0o644} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(p), fi.Mode().Perm(), want)
		}
	}
	s, err := sign.LoadSigner(priv, "", "", nil)
	if err != nil || s.Alg() != sign.ES384 {
		t.Fatalf("generated key: %v", err)
	}
	roots, err := trust.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := roots.Find(s.Public()); !ok || !k.NotBefore.Equal(rotT0) {
		t.Fatalf("new key not in %s with Not-Before %s", out, rotT0)
	}
	// Refused runs leave no file behind and keep the key.
	before := testutil.Fingerprint(t, dir)
	r := runMirror(t, "", "rotate", "key", "--current-key", rotKey("es256.pem"), "--generate", "ES256", "--new-key-out", priv,
		"--trust-roots", rotKey("es256.pub"), "--trust-roots-out", filepath.Join(dir, "o2.pem"), "--statement-out", filepath.Join(dir, "s2.json"))
	if r.code != failure.ExitUsage || !strings.Contains(r.stderr, "never overwritten") {
		t.Fatalf("overwrite: exit %d\n%s", r.code, r.stderr)
	}
	r = runMirror(t, "", "rotate", "key", "--current-key", rotKey("es256.pem"), "--generate", "ES256", "--new-key-out", filepath.Join(dir, "k3.pem"),
		"--trust-roots", rotKey("es384.pub"), "--trust-roots-out", filepath.Join(dir, "o3.pem"), "--statement-out", filepath.Join(dir, "s3.json"))
	if r.code != failure.ExitUsage {
		t.Fatalf("untrusted current key: exit %d\n%s", r.code, r.stderr)
	}
	testutil.AssertUnchanged(t, dir, before)
}

// TestImportRefusesSingleSignatureStatements imports bundles carrying a
// K1 -> K2 statement signed by only one of the two keys: exit 2, and the
// export root does not change.
func TestImportRefusesSingleSignatureStatements(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	mustRun(t, "", "export", "--source", src, "--out", filepath.Join(dir, "b0"), "--key", rotKey("es256.pem"), "--created", "2026-02-28T00:00:00Z", "--sequence", "1")
	mustRun(t, "", "import", "--bundle-path", filepath.Join(dir, "b0"), "--export-root", root, "--trust-roots", rotKey("es256.pub"), "--now", "2026-02-28T01:00:00Z")

	k1, err := sign.LoadPrivateKey(rotKey("es256.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := sign.LoadPrivateKey(rotKey("other-es256.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	k1roots, err := trust.LoadFile(rotKey("es256.pub"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := rotation.RotateKey(context.Background(), rotation.KeyOptions{Current: k1, New: k2, Roots: k1roots, Now: rotT0})
	if err != nil {
		t.Fatal(err)
	}
	k1id := res.OldKey.DerivedID
	for _, tt := range []struct {
		name, keep, signer, want string
	}{
		{"only-k1", k1id, "es256.pem", "not signed by the new key"},
		{"only-k2", res.NewKey.ID, "other-es256.pem", "not signed by the old key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env, err := sign.ParseEnvelope(res.Statement)
			if err != nil {
				t.Fatal(err)
			}
			kept := env.Signatures[:0]
			for _, s := range env.Signatures {
				if s.KeyID == tt.keep {
					kept = append(kept, s)
				}
			}
			env.Signatures = kept
			data, err := sign.MarshalEnvelope(env)
			if err != nil {
				t.Fatal(err)
			}
			stmt := filepath.Join(dir, tt.name+".json")
			if err := os.WriteFile(stmt, data, 0o644); err != nil {
				t.Fatal(err)
			}
			b := filepath.Join(dir, "b-"+tt.name)
			mustRun(t, "", "export", "--source", src, "--out", b, "--key", rotKey(tt.signer), "--created", "2026-03-01T01:00:00Z", "--sequence", "2", "--rotation", stmt)
			before := testutil.Fingerprint(t, root)
			for _, args := range [][]string{
				{"import", "--bundle-path", b, "--export-root", root, "--now", "2026-03-01T02:00:00Z"},
				{"verify", "--bundle-path", b, "--trust-roots", rotKey("es256.pub"), "--now", "2026-03-01T02:00:00Z"},
			} {
				r := runMirror(t, "", args...)
				if r.code != failure.ExitVerification || !strings.Contains(r.stdout+r.stderr, "keys/"+tt.name+".json: "+tt.want) {
					t.Fatalf("%s: exit %d, want 2 naming the statement\n%s%s", args[0], r.code, r.stdout, r.stderr)
				}
			}
			testutil.AssertUnchanged(t, root, before)
		})
	}
}

// TestRotateCredentialsServe rotates a password under a running "mirror
// serve": after SIGHUP the new password is accepted and the old one refused;
// Apache's htpasswd accepts the entry too.
func TestRotateCredentialsServe(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	mustRun(t, "", "export", "--source", src, "--out", filepath.Join(dir, "b"), "--key", rotKey("es256.pem"), "--created", "2026-03-01T00:00:00Z")
	mustRun(t, "", "import", "--bundle-path", filepath.Join(dir, "b"), "--export-root", root, "--trust-roots", rotKey("es256.pub"), "--now", "2026-03-01T01:00:00Z")
	hp := filepath.Join(dir, "mirror.htpasswd")
	mustRun(t, "first password for alice\n", "rotate", "credentials", "--htpasswd", hp, "--user", "alice", "--password-stdin")
	mustRun(t, "bobs password\n", "rotate", "credentials", "--htpasswd", hp, "--user", "bob", "--password-stdin")

	reloaded := &rotNotify{want: "reloaded", hit: make(chan struct{})}
	var out bytes.Buffer
	s := iostreams.Test(strings.NewReader(""), &out, reloaded)
	s.Getenv = func(string) string { return "" }
	srvCh := make(chan *serve.Server, 1)
	cmd := newCmdServe(s, func(o *ServeOptions) {
		o.now = func() time.Time { return rotT0.Add(2 * time.Hour) }
		o.started = func(srv *serve.Server) { srvCh <- srv }
	})
	cmd.SetArgs([]string{"--export-root", root, "--listen", "127.0.0.1:0", "--htpasswd", hp, "--require-authentication"})
	cmd.SetOut(&out)
	cmd.SetErr(reloaded)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	var srv *serve.Server
	select {
	case srv = <-srvCh:
	case err := <-done:
		t.Fatalf("serve ended early: %v\n%s", err, reloaded.String())
	}
	get := func(user, pass string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL()+"/concelier/exports/index.json", nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("alice", "first password for alice"); c != http.StatusOK {
		t.Fatalf("alice before rotation: %d\n%s", c, reloaded.String())
	}

	r := mustRun(t, "", "rotate", "credentials", "--htpasswd", hp, "--user", "alice")
	pw := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`).MatchString(pw) {
		t.Fatalf("generated password %q", r.stdout)
	}
	if bin, err := exec.LookPath("htpasswd"); err == nil {
		if out, err := exec.Command(bin, "-vb", hp, "alice", pw).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd -vb refused the new password: %v\n%s", err, out)
		}
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded.hit:
	case err := <-done:
		t.Fatalf("serve ended: %v\n%s", err, reloaded.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no reload after SIGHUP:\n%s", reloaded.String())
	}
	if c := get("alice", pw); c != http.StatusOK {
		t.Fatalf("new password after SIGHUP: %d", c)
	}
	if c := get("alice", "first password for alice"); c != http.StatusUnauthorized {
		t.Fatalf("old password after SIGHUP: %d", c)
	}
	if c := get("bob", "bobs password"); c != http.StatusOK {
		t.Fatalf("other user after SIGHUP: %d", c)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve stop: %v", err)
	}
}

// rotNotify collects stderr and signals once a line containing want appears.
type rotNotify struct {
	mu   sync.Mutex
	b    bytes.Buffer
	want string
	hit  chan struct{}
}

func (n *rotNotify) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.b.Write(p)
	if n.want != "" && strings.Contains(n.b.String(), n.want) {
		n.want = ""
		close(n.hit)
	}
	return len(p), nil
}

func (n *rotNotify) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.b.String()
}
