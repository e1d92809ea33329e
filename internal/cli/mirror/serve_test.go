package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/serve"
)

const serveExportID = "20260301T120000Z"

var serveNow = time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)

// notifyBuffer is a goroutine-safe buffer that signals when a line
// containing want is written.
type notifyBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	want string
	hit  chan struct{}
}

func newNotifyBuffer(want string) *notifyBuffer {
	return &notifyBuffer{want: want, hit: make(chan struct{})}
}

func (n *notifyBuffer) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.b.Write(p)
	if n.want != "" && strings.Contains(n.b.String(), n.want) {
		n.want = ""
		close(n.hit)
	}
	return len(p), nil
}

func (n *notifyBuffer) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.b.String()
}

// writeServeRoot lays out ROOT/<id>/ with one domain and ROOT/latest.
func writeServeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, serveExportID)
	gen := serveNow.Add(-time.Hour)
	files := map[string][]byte{}
	bj, _ := json.Marshal(bundle.DomainBundle{SchemaVersion: 1, DomainID: "primary", GeneratedAt: gen, Exports: []bundle.VexExport{}})
	files["mirror/primary/bundle.json"] = bj
	files["mirror/primary/bundle.json.jws"] = []byte("dummy..sig")
	files["mirror/primary/bundle.json.sig"] = []byte("dummy")
	dm, _ := json.Marshal(bundle.DomainManifest{SchemaVersion: 1, DomainID: "primary", ExportID: serveExportID, GeneratedAt: gen})
	files["mirror/primary/manifest.json"] = dm
	idx, _ := json.Marshal(bundle.Index{SchemaVersion: 1, ExportID: serveExportID, GeneratedAt: gen, Domains: []bundle.IndexDomain{{ID: "primary"}}})
	files[bundle.IndexPath] = idx
	m := bundle.Manifest{SchemaVersion: 1, ExportID: serveExportID, GeneratedAt: gen, ExpiresAt: gen.Add(720 * time.Hour), Domains: []string{"primary"}}
	for _, rel := range []string{bundle.IndexPath, "mirror/primary/bundle.json", "mirror/primary/bundle.json.jws", "mirror/primary/bundle.json.sig", "mirror/primary/manifest.json"} {
		s := sha256.Sum256(files[rel])
		m.Files = append(m.Files, bundle.FileEntry{Path: rel, Size: int64(len(files[rel])), SHA256: hex.EncodeToString(s[:])})
	}
	files[bundle.ManifestFile], _ = json.Marshal(m)
	for rel, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(serveExportID, filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
	return root
}

type serveRun struct {
	stdout, stderr string
	err            error
	code           int
}

// runServeCmd runs "mirror serve" with args; env replaces the environment.
func runServeCmd(t *testing.T, env map[string]string, jsonOut bool, configure func(*ServeOptions), stderr io.Writer, ctx context.Context, args ...string) serveRun {
	t.Helper()
	var out bytes.Buffer
	errb := &notifyBuffer{}
	var errw io.Writer = errb
	if stderr != nil {
		errw = stderr
	}
	s := iostreams.Test(strings.NewReader(""), &out, errw)
	s.Getenv = func(k string) string { return env[k] }
	if jsonOut {
		s.Format = iostreams.FormatJSON
	}
	cmd := newCmdServe(s, func(o *ServeOptions) {
		o.now = func() time.Time { return serveNow }
		if configure != nil {
			configure(o)
		}
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(errw)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if ctx == nil {
		ctx = context.Background()
	}
	err := cmd.ExecuteContext(ctx)
	r := serveRun{stdout: out.String(), err: err, code: failure.Code(err)}
	if sb, ok := errw.(interface{ String() string }); ok {
		r.stderr = sb.String()
	}
	return r
}

func TestServePrintConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfgFile, []byte(`
mirror:
  exportRoot: /from/file
  maxIndexRequestsPerHour: 10
  maxDownloadRequestsPerHour: 11
server:
  listen: 127.0.0.1:7001
  adminUsers: [file-admin]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CONCELIER__MIRROR__EXPORTROOT":              "/from/env",
		"CONCELIER__MIRROR__MAXINDEXREQUESTSPERHOUR": "20",
		"CONCELIER__AUTHORITY__BYPASSNETWORKS__0":    "10.0.0.0/8",
	}
	r := runServeCmd(t, env, true, nil, nil, nil, "--config", cfgFile, "--print-config", "--export-root", "/from/flag")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.stderr)
	}
	var out struct {
		SchemaVersion int          `json:"schemaVersion"`
		Config        serve.Config `json:"config"`
		Settings      []serve.Setting
		Valid         bool `json:"valid"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	c := out.Config
	if out.SchemaVersion != 1 || !out.Valid {
		t.Fatalf("%s", r.stdout)
	}
	if c.Mirror.ExportRoot != "/from/flag" {
		t.Errorf("exportRoot %q: the flag should beat env and file", c.Mirror.ExportRoot)
	}
	if c.Mirror.MaxIndexRequestsPerHour != 20 {
		t.Errorf("maxIndexRequestsPerHour %d: env should beat file", c.Mirror.MaxIndexRequestsPerHour)
	}
	if c.Mirror.MaxDownloadRequestsPerHour != 11 || c.Server.Listen != "127.0.0.1:7001" {
		t.Errorf("file values lost: %+v", c)
	}
	if strings.Join(c.Authority.BypassNetworks, ",") != "10.0.0.0/8" {
		t.Errorf("bypass %v", c.Authority.BypassNetworks)
	}
	src := map[string]string{}
	for _, s := range out.Settings {
		src[s.Key] = s.Source
	}
	if src["mirror.exportRoot"] != "flag" || src["mirror.maxIndexRequestsPerHour"] != "env" || src["server.listen"] != "file" || src["server.tlsCert"] != "default" {
		t.Errorf("sources %v", src)
	}

	// Text form: one row per setting with its source; a flag beats env.
	r = runServeCmd(t, env, false, nil, nil, nil, "--print-config", "--max-index-requests-per-hour", "30")
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{
		"SETTING\tVALUE\tSOURCE",
		"mirror.exportRoot\t/from/env\tenv",
		"mirror.maxIndexRequestsPerHour\t30\tflag",
		"server.listen\t127.0.0.1:8443\tdefault",
	} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("print-config lacks %q:\n%s", want, r.stdout)
		}
	}

	// An invalid result is printed, then refused with exit 4.
	r = runServeCmd(t, nil, false, nil, nil, nil, "--print-config")
	if r.code != failure.ExitUsage || !strings.Contains(r.stdout, "mirror.exportRoot") {
		t.Fatalf("invalid config: %d %v\n%s", r.code, r.err, r.stdout)
	}
}

func TestServeRefusesBadSetup(t *testing.T) {
	root := writeServeRoot(t)
	dir := t.TempDir()
	md5 := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(md5, []byte("alice:$apr1$abc$def\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"missing root":       {[]string{"--export-root", filepath.Join(dir, "nope")}, nil, "not a folder"},
		"md5 htpasswd":       {[]string{"--export-root", root, "--htpasswd", md5}, nil, "line 1"},
		"auth without creds": {[]string{"--export-root", root, "--require-authentication"}, nil, "neither --htpasswd"},
		"bad env":            {[]string{"--export-root", root}, map[string]string{"CONCELIER__MIRROR__REQUIREAUTHENTICATION": "sometimes"}, "CONCELIER__MIRROR__REQUIREAUTHENTICATION"},
		"disabled":           {[]string{"--export-root", root}, map[string]string{"CONCELIER__MIRROR__ENABLED": "false"}, "disabled"},
		"negative budget":    {[]string{"--export-root", root, "--max-download-requests-per-hour", "-1"}, nil, ">= 0"},
		"bad listen":         {[]string{"--export-root", root, "--listen", "nonsense"}, nil, "listen"},
	} {
		r := runServeCmd(t, tt.env, false, nil, nil, nil, tt.args...)
		if r.code != failure.ExitUsage || r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
			t.Errorf("%s: exit %d, %v; want 4 and %q", name, r.code, r.err, tt.want)
		}
	}
}

func TestServeListensReloadsAndStops(t *testing.T) {
	root := writeServeRoot(t)
	dir := t.TempDir()
	hp := filepath.Join(dir, "htpasswd")
	writeBcrypt := func(user, pass string) {
		h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp, []byte(user+":"+string(h)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeBcrypt("alice", "one")
	stderr := newNotifyBuffer("reloaded")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvCh := make(chan *serve.Server, 1)
	done := make(chan serveRun, 1)
	go func() {
		done <- runServeCmd(t, nil, true, func(o *ServeOptions) { o.started = func(s *serve.Server) { srvCh <- s } }, stderr, ctx,
			"--export-root", root, "--listen", "127.0.0.1:0", "--htpasswd", hp, "--require-authentication")
	}()
	var srv *serve.Server
	select {
	case srv = <-srvCh:
	case r := <-done:
		t.Fatalf("serve ended early: %v\n%s", r.err, r.stderr)
	}
	base := srv.URL()
	if strings.HasSuffix(base, ":0") {
		t.Fatalf("URL %s does not carry the real port", base)
	}
	if !strings.Contains(stderr.String(), "serving export "+serveExportID+" on "+base+"\n") {
		t.Fatalf("stderr lacks the listen line:\n%s", stderr.String())
	}
	get := func(user, pass string) int {
		req, _ := http.NewRequest("GET", base+"/concelier/exports/index.json", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("alice", "one"); c != 200 {
		t.Fatalf("alice: %d", c)
	}
	if c := get("", ""); c != 401 {
		t.Fatalf("anonymous: %d", c)
	}

	// SIGHUP re-reads the htpasswd file.
	writeBcrypt("bob", "two")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	<-stderr.hit
	if c := get("bob", "two"); c != 200 {
		t.Fatalf("bob after SIGHUP: %d", c)
	}
	if c := get("alice", "one"); c != 401 {
		t.Fatalf("alice after SIGHUP: %d", c)
	}

	cancel() // SIGTERM
	r := <-done
	if r.err != nil || r.code != 0 {
		t.Fatalf("stop: %d %v", r.code, r.err)
	}
	var line struct {
		URL      string `json:"url"`
		ExportID string `json:"exportId"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &line); err != nil || line.URL != base || line.ExportID != serveExportID {
		t.Fatalf("stdout %q", r.stdout)
	}
	// Access log lines are JSON with the principal, never the password.
	log := stderr.String()
	if !strings.Contains(log, `"principal":"alice"`) || strings.Contains(log, `"one"`) {
		t.Fatalf("access log:\n%s", log)
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "{") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("access log line %q: %v", l, err)
			}
		}
	}
}
