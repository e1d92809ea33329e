package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/serve"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	mirrorsync "github.com/stellaops/stellaops-cli/pkg/sync"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Fixed instants of the sync tests: the export is created at syncT0 and
// checked at syncNow.
var (
	syncT0   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	syncNow  = syncT0.Add(24 * time.Hour)
	syncID   = "20260301T120000Z"
	syncNowF = "2026-03-02T12:00:00Z"
)

// syncUpstream is serve over an export root holding one export of the
// sample feed, signed with the TEST-ONLY key testdata/keys/es256.pem.
type syncUpstream struct {
	url, root, keys, pub string
	h                    *serve.Handler
	mu                   gosync.Mutex
	paths                []string
	fail                 func(w http.ResponseWriter, r *http.Request) bool
}

func newSyncUpstream(t *testing.T) *syncUpstream {
	t.Helper()
	keys, err := filepath.Abs(filepath.Join("..", "..", "..", "testdata", "keys"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.LoadSigner(filepath.Join(keys, "es256.pem"), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bundle")
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{Source: src, Out: out, Signer: signer, Sequence: 7, Created: syncT0}); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(keys, "es256.pub")
	roots, err := trust.LoadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "upstream")
	if _, err := importer.Import(context.Background(), importer.Options{
		BundlePath: out, Stage: importer.FolderStager(out), ExportRoot: root, TrustRoots: roots,
		VerifyChecksums: true, VerifyDSSE: true, Now: syncNow,
	}); err != nil {
		t.Fatal(err)
	}
	cfg := serve.DefaultConfig()
	cfg.Mirror.ExportRoot = root
	h, err := serve.NewHandler(serve.Options{Config: cfg, Now: func() time.Time { return syncNow }})
	if err != nil {
		t.Fatal(err)
	}
	u := &syncUpstream{root: root, keys: keys, pub: pub, h: h}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.paths = append(u.paths, r.URL.Path)
		fail := u.fail
		u.mu.Unlock()
		if fail != nil && fail(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	u.url = srv.URL
	return u
}

func (u *syncUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.paths
	u.paths = nil
	return out
}

type syncRun struct {
	stdout, stderr string
	err            error
	code           int
}

// runSyncCmd runs "mirror sync" with env as the whole environment and a
// clock that never waits.
func runSyncCmd(t *testing.T, env map[string]string, args ...string) syncRun {
	t.Helper()
	return runSyncCmdCtx(t, context.Background(), env, nil, args...)
}

func runSyncCmdCtx(t *testing.T, ctx context.Context, env map[string]string, sleep func(context.Context, time.Duration) error, args ...string) syncRun {
	t.Helper()
	var out, errb bytes.Buffer
	io := iostreams.Test(strings.NewReader(""), &out, &errb)
	io.Getenv = func(k string) string { return env[k] }
	root := &cobra.Command{Use: "mirror"}
	cmd := newCmdSync(io, func(o *SyncOptions) {
		o.configure = func(so *mirrorsync.Options) {
			so.Clock = func() time.Time { return syncNow }
			so.Sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
			if sleep != nil {
				so.Sleep = sleep
			}
		}
	})
	root.AddCommand(cmd)
	root.PersistentFlags().StringVarP(&io.Format, "output", "o", iostreams.FormatText, "")
	root.PersistentFlags().BoolVarP(&io.Quiet, "quiet", "q", false, "")
	root.SetArgs(append([]string{"sync"}, args...))
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SilenceUsage, root.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return syncRun{stdout: out.String(), stderr: errb.String(), err: err, code: failure.Code(err)}
}

func TestSyncCommandSummaryAndNoChange(t *testing.T) {
	u := newSyncUpstream(t)
	dst := filepath.Join(t.TempDir(), "mirror")
	r := runSyncCmd(t, nil, "--from", u.url, "--export-root", dst, "--trust-roots", u.pub, "--now", syncNowF)
	if r.code != 0 {
		t.Fatalf("exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	want := "synced export " + syncID + " (sequence 7) from " + u.url + "/concelier/exports/index.json: 14 files, 36.5 KiB, 14 downloaded, 0 copied locally, 0 resumed\n"
	if r.stdout != want {
		t.Fatalf("stdout %q\nwant   %q", r.stdout, want)
	}
	if r.stderr != "" {
		t.Fatalf("stderr %q", r.stderr)
	}
	u.requests()

	// Unchanged: silent with -q, one request, nothing written.
	before := testutil.Fingerprint(t, dst)
	r = runSyncCmd(t, nil, "-q", "--from", u.url, "--export-root", dst, "--now", syncNowF)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("quiet no-change run: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if reqs := u.requests(); len(reqs) != 1 {
		t.Fatalf("requests %v", reqs)
	}
	testutil.AssertUnchanged(t, dst, before)

	r = runSyncCmd(t, nil, "--from", u.url, "--export-root", dst, "--now", syncNowF)
	if r.stdout != "up to date: export "+syncID+" from "+u.url+"/concelier/exports/index.json\n" {
		t.Fatalf("stdout %q", r.stdout)
	}

	r = runSyncCmd(t, nil, "-o", "json", "--from", u.url, "--export-root", dst, "--now", syncNowF)
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if got["schemaVersion"] != float64(1) || got["state"] != "up-to-date" || got["ok"] != true || got["requests"] != float64(1) || got["exitCode"] != float64(0) {
		t.Fatalf("json %v", got)
	}
}

func TestSyncCommandEnvironment(t *testing.T) {
	u := newSyncUpstream(t)
	dst := filepath.Join(t.TempDir(), "mirror")
	env := map[string]string{
		SyncEnvBaseAddress:  u.url,
		SyncEnvIndexPath:    "/wrong/index.json",
		SyncEnvDomainID:     "primary, community",
		SyncEnvHTTPTimeout:  "00:00:45",
		SyncEnvSigPublicKey: u.pub,
		SyncEnvSigProvider:  "gost",
	}
	// The flag beats the wrong index path of the environment.
	r := runSyncCmd(t, env, "-o", "json", "--index-path", "/concelier/exports/index.json", "--export-root", dst, "--now", syncNowF)
	if r.code != 0 {
		t.Fatalf("exit %d: %v", r.code, r.err)
	}
	var res mirrorsync.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.SignatureProvider != "gost" || res.State != "synced" {
		t.Fatalf("%+v %v", res, err)
	}
	st, err := mirrorsync.ReadState(dst)
	if err != nil || st.SignatureProvider != "gost" {
		t.Fatalf("state %+v %v", st, err)
	}

	// Without the flag the environment's index path is used: a 404, exit 1.
	r = runSyncCmd(t, env, "--export-root", filepath.Join(t.TempDir(), "other"), "--now", syncNowF)
	if r.code != 1 || !strings.Contains(r.err.Error(), "/wrong/index.json: HTTP 404") {
		t.Fatalf("exit %d: %v", r.code, r.err)
	}

	// A key id that did not sign: verification failure.
	env[SyncEnvIndexPath] = ""
	env[SyncEnvSigKeyID] = strings.Repeat("0", 64)
	r = runSyncCmd(t, env, "--export-root", filepath.Join(t.TempDir(), "other"), "--now", syncNowF)
	if r.code != 2 {
		t.Fatalf("exit %d: %v", r.code, r.err)
	}

	// Signature checks switched off by the environment warn; the key id
	// then cannot be enforced.
	env[SyncEnvSigKeyID] = ""
	env[SyncEnvSigEnabled] = "false"
	r = runSyncCmd(t, env, "--export-root", filepath.Join(t.TempDir(), "third"), "--now", syncNowF)
	if r.code != 0 || !strings.Contains(r.stderr, "--verify-dsse=false") {
		t.Fatalf("exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	env[SyncEnvSigEnabled] = "maybe"
	r = runSyncCmd(t, env, "--export-root", filepath.Join(t.TempDir(), "fourth"))
	if r.code != 4 {
		t.Fatalf("exit %d: %v", r.code, r.err)
	}
}

func TestSyncCommandUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--export-root", dir}, "--from is required"},
		{nil, []string{"--from", "http://127.0.0.1:9"}, "--export-root is required"},
		{nil, []string{"--from", "http://127.0.0.1:9", "--discover", "--test"}, "do not go together"},
		{nil, []string{"--from", "http://127.0.0.1:9", "--test", "--interval", "1m"}, "--interval does not go"},
		{nil, []string{"--from", "http://127.0.0.1:9", "--export-root", dir, "--timeout", "1s"}, "between 5s and 5m0s"},
		{map[string]string{SyncEnvHTTPTimeout: "soon"}, []string{"--from", "http://127.0.0.1:9", "--export-root", dir}, SyncEnvHTTPTimeout},
		{nil, []string{"--from", "http://127.0.0.1:9", "--export-root", dir, "--user", "u"}, "no password"},
		{map[string]string{SyncPasswordEnv: "p", SyncTokenEnv: "t"}, []string{"--from", "http://127.0.0.1:9", "--export-root", dir, "--user", "u"}, ""},
		{nil, []string{"--from", "ftp://x", "--export-root", dir}, "http:// or https://"},
		{nil, []string{"--from", "http://127.0.0.1:9", "--export-root", dir, "--trust-roots", filepath.Join(dir, "missing.pem")}, "missing.pem"},
		{nil, []string{"--from", "http://127.0.0.1:9", "--export-root", dir, "--ca-file", filepath.Join(dir, "missing.pem")}, "--ca-file"},
		{nil, []string{"--from", "http://127.0.0.1:9", "--export-root", dir, "--domain", "Bad"}, "domain"},
		{nil, []string{"--from", "http://127.0.0.1:9", "--export-root", dir, "--verify-dsse=false", "--key-id", "k"}, "DSSE"},
	} {
		r := runSyncCmd(t, tc.env, tc.args...)
		if tc.want == "" {
			// --user with a token in the environment: the user wins, the
			// token is not sent (nothing listens: exit 1).
			if r.code != 1 {
				t.Errorf("%v: exit %d: %v", tc.args, r.code, r.err)
			}
			continue
		}
		if r.code != 4 || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: exit %d: %v (want %q)", tc.args, r.code, r.err, tc.want)
		}
	}
}

func TestSyncCommandDiscoverAndTest(t *testing.T) {
	u := newSyncUpstream(t)
	r := runSyncCmd(t, nil, "--from", u.url, "--discover")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "DOMAIN\tDISPLAY NAME\tADVISORIES") {
		t.Fatalf("exit %d: %v\n%s", r.code, r.err, r.stdout)
	}
	cols := strings.Split(lines[2], "\t")
	if cols[0] != "primary" || cols[1] != "Primary" || cols[5] != "yes" || cols[6] != "ES256" || len(cols[7]) != 64 || cols[8] != "2026-03-01T12:00:00Z" {
		t.Fatalf("row %q", cols)
	}

	r = runSyncCmd(t, nil, "-o", "json", "--from", u.url, "--discover", "--domain", "community")
	var d mirrorsync.Discovery
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || len(d.Domains) != 1 || d.Domains[0].ID != "community" || d.SchemaVersion != 1 {
		t.Fatalf("%+v %v", d, err)
	}

	u.requests()
	r = runSyncCmd(t, nil, "--from", u.url, "--test")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "reachable: "+u.url+"/concelier/exports/index.json: HTTP 200 in ") ||
		!strings.HasSuffix(r.stdout, "export "+syncID+", 2 domain(s)\n") {
		t.Fatalf("exit %d: %v\n%q", r.code, r.err, r.stdout)
	}
	if reqs := u.requests(); len(reqs) != 1 {
		t.Fatalf("requests %v", reqs)
	}
	u.fail = func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return true
	}
	r = runSyncCmd(t, nil, "-o", "json", "--from", u.url, "--test")
	var p mirrorsync.Probe
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &p) != nil || p.Reachable || p.Status != 503 {
		t.Fatalf("exit %d: %q", r.code, r.stdout)
	}
}

func TestSyncCommandFailureLeavesRootAndPrintsJSON(t *testing.T) {
	u := newSyncUpstream(t)
	dst := filepath.Join(t.TempDir(), "mirror")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	u.fail = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/bundle.json") && strings.Contains(r.URL.Path, "/"+syncID+"/") {
			w.Header().Set("Retry-After", "7200")
			http.Error(w, "budget", http.StatusTooManyRequests)
			return true
		}
		return false
	}
	before := testutil.Fingerprint(t, dst)
	r := runSyncCmd(t, nil, "-o", "json", "--from", u.url, "--export-root", dst, "--trust-roots", u.pub, "--now", syncNowF)
	if r.code != 1 {
		t.Fatalf("exit %d: %v", r.code, r.err)
	}
	var out struct {
		State   string `json:"state"`
		OK      bool   `json:"ok"`
		Exit    int    `json:"exitCode"`
		RetryAt string `json:"retryAt"`
		Hint    string `json:"hint"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if out.State != "failed" || out.OK || out.Exit != 1 || out.RetryAt != "2026-03-02T14:00:00Z" || !strings.Contains(out.Hint, "2026-03-02T14:00:00Z") {
		t.Fatalf("%+v", out)
	}
	after := testutil.Fingerprint(t, dst)
	var kept []string
	for _, l := range strings.SplitAfter(after, "\n") {
		if !strings.HasPrefix(l, `".stellaops/sync-partial`) {
			kept = append(kept, l)
		}
	}
	if strings.Join(kept, "") != before {
		t.Fatalf("root changed:\n%s", testutil.Diff(before, strings.Join(kept, "")))
	}
}

func TestSyncCommandInterval(t *testing.T) {
	u := newSyncUpstream(t)
	dst := filepath.Join(t.TempDir(), "mirror")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		if len(waits) == 3 {
			cancel() // SIGTERM
			return ctx.Err()
		}
		return nil
	}
	calls := 0
	u.fail = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == mirrorsync.DefaultIndexPath {
			calls++
			if calls == 2 {
				http.Error(w, "hiccup", http.StatusNotFound)
				return true
			}
		}
		return false
	}
	r := runSyncCmdCtx(t, ctx, nil, sleep, "--from", u.url, "--export-root", dst, "--trust-roots", u.pub, "--now", syncNowF, "--interval", "10m")
	if r.code != 130 {
		t.Fatalf("exit %d: %v", r.code, r.err)
	}
	out := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(out) != 2 || !strings.HasPrefix(out[0], "synced export") || !strings.HasPrefix(out[1], "up to date") {
		t.Fatalf("stdout %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "stellaops-cli: error: GET "+u.url+"/concelier/exports/index.json: HTTP 404") {
		t.Fatalf("stderr %q", r.stderr)
	}
	for _, d := range waits {
		if d < 9*time.Minute || d > 11*time.Minute {
			t.Fatalf("waits %v", waits)
		}
	}
}

func TestParseSyncTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "45": 45 * time.Second, "00:01:30": 90 * time.Second, "5m": 5 * time.Minute} {
		if got, err := parseSyncTimeout("t", in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"4s", "301s", "00:10:00", "x", "1:2"} {
		if _, err := parseSyncTimeout("t", in); failure.Code(err) != 4 {
			t.Errorf("%q: %v", in, err)
		}
	}
}
