package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/serve"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Fixed instants: tests never depend on today's date.
var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t1      = t0.Add(24 * time.Hour)
	t2      = t0.Add(48 * time.Hour)
	testNow = t0.Add(72 * time.Hour)
)

// bigPath is the large VEX file the download tests break.
const (
	bigKey  = "openvex/big"
	bigPath = "mirror/primary/vex/openvex/big.json"
	bigSize = 600 << 10
)

// fixture holds the TEST-ONLY signing key of testdata/keys and its roots.
type fixture struct {
	t         *testing.T
	signer    *sign.Signer
	roots     *trust.Roots
	rootsPath string
	keys      string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	keys, err := filepath.Abs(filepath.Join("..", "..", "testdata", "keys"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.LoadSigner(filepath.Join(keys, "es256.pem"), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	rootsPath := filepath.Join(keys, "es256.pub")
	roots, err := trust.LoadFile(rootsPath)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, signer: s, roots: roots, rootsPath: rootsPath, keys: keys}
}

// bigVEX returns an OpenVEX document of about n bytes whose padding
// depends on seed.
func bigVEX(seed string, n int) []byte {
	head := `{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://vex.example.invalid/` + seed + `","timestamp":"2026-03-01T00:00:00Z","statements":[],"pad":"`
	var pad strings.Builder
	sum := sha256.Sum256([]byte(seed))
	for pad.Len() < n-len(head)-3 {
		sum = sha256.Sum256(sum[:])
		pad.WriteString(hex.EncodeToString(sum[:]))
	}
	return []byte(head + pad.String()[:n-len(head)-3] + "\"}\n")
}

// bundles caches the exported bundles of this test binary: they are only
// read (import copies them), so tests share them.
var bundles = struct {
	gosync.Mutex
	dir  string
	made map[string]string
}{made: map[string]string{}}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sync-bundles-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bundles.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bundle exports the sample feed, plus a big VEX file with content seed,
// as of created, with sequence seq.
func (fx *fixture) bundle(created time.Time, seq int64, seed string) string {
	t := fx.t
	t.Helper()
	key := fmt.Sprintf("%s-%d-%s", exportID(created), seq, seed)
	bundles.Lock()
	defer bundles.Unlock()
	if out, ok := bundles.made[key]; ok {
		return out
	}
	src := t.TempDir()
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(src, "primary", "vex", filepath.FromSlash(bigKey)+".json")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bigVEX(seed, bigSize), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(bundles.dir, key)
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{
		Source: src, Out: out, Signer: fx.signer, Sequence: seq, Created: created, Expires: 30 * 24 * time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	bundles.made[key] = out
	return out
}

// importInto imports a bundle folder into root the way "mirror import" does.
func (fx *fixture) importInto(root, bundleDir string, allowDowngrade bool) {
	fx.t.Helper()
	_, err := importer.Import(context.Background(), importer.Options{
		BundlePath: bundleDir, Stage: importer.FolderStager(bundleDir), ExportRoot: root,
		TrustRoots: fx.roots, TrustRootsPath: fx.rootsPath, VerifyChecksums: true, VerifyDSSE: true,
		Now: testNow, Keep: 5, AllowDowngrade: allowDowngrade,
	})
	if err != nil {
		fx.t.Fatalf("import %s into %s: %v", bundleDir, root, err)
	}
}

// exportID is the export id of an export created at t.
func exportID(t time.Time) string { return t.UTC().Format(bundle.ExportIDLayout) }

// reqLog is one request seen by an upstream.
type reqLog struct {
	Path, Range, IfRange, IfNoneMatch, Auth string
}

// upstream is this project's serve over an export root, in process,
// behind an optional fault that may answer a request itself.
type upstream struct {
	t     *testing.T
	root  string
	h     *serve.Handler
	srv   *httptest.Server
	mu    gosync.Mutex
	reqs  []reqLog
	count map[string]int
	fault func(w http.ResponseWriter, r *http.Request, n int) bool
}

func newUpstream(t *testing.T, root string) *upstream {
	t.Helper()
	cfg := serve.DefaultConfig()
	cfg.Mirror.ExportRoot = root
	h, err := serve.NewHandler(serve.Options{Config: cfg, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{t: t, root: root, h: h, count: map[string]int{}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serveHTTP))
	t.Cleanup(func() {
		u.srv.Close()
		h.Close()
	})
	return u
}

func (u *upstream) serveHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	n := u.count[r.URL.Path]
	u.count[r.URL.Path]++
	u.reqs = append(u.reqs, reqLog{Path: r.URL.Path, Range: r.Header.Get("Range"), IfRange: r.Header.Get("If-Range"),
		IfNoneMatch: r.Header.Get("If-None-Match"), Auth: r.Header.Get("Authorization")})
	fault := u.fault
	u.mu.Unlock()
	if fault != nil && fault(w, r, n) {
		return
	}
	u.h.ServeHTTP(w, r)
}

// setFault installs f and forgets the requests seen so far.
func (u *upstream) setFault(f func(w http.ResponseWriter, r *http.Request, n int) bool) {
	u.mu.Lock()
	u.fault = f
	u.reqs = nil
	u.count = map[string]int{}
	u.mu.Unlock()
}

func (u *upstream) countOf(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.count[path]
}

func (u *upstream) requests() []reqLog {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]reqLog(nil), u.reqs...)
}

// publish imports bundleDir into the upstream's root and makes serve see it.
func (u *upstream) publish(fx *fixture, bundleDir string) {
	u.t.Helper()
	fx.importInto(u.root, bundleDir, true)
	if err := u.h.Reload(); err != nil {
		u.t.Fatal(err)
	}
}

// file returns the bytes of a file of an upstream export.
func (u *upstream) file(id, rel string) []byte {
	u.t.Helper()
	b, err := os.ReadFile(filepath.Join(u.root, id, filepath.FromSlash(rel)))
	if err != nil {
		u.t.Fatal(err)
	}
	return b
}

// fakeClock is a settable clock whose Sleep advances it and records the
// wait instead of waiting.
type fakeClock struct {
	mu     gosync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newClock() *fakeClock { return &fakeClock{now: testNow} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// options returns sync options against u into root, with the fake clock.
func (fx *fixture) options(u *upstream, root string, clk *fakeClock) Options {
	return Options{
		BaseURL: u.srv.URL, ExportRoot: root,
		TrustRoots: fx.roots, TrustRootsPath: fx.rootsPath,
		VerifyDSSE: true, VerifyChecksums: true, Now: testNow, Keep: 3,
		Timeout: 10 * time.Second, Attempts: 3, StallWindow: 5 * time.Second, MinThroughput: 1,
		Sleep: clk.Sleep, Clock: clk.Now, Rand: func() float64 { return 0.5 },
	}
}

func runSync(t *testing.T, opts Options) (*Result, error) {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.Sync(ctx)
}

// rootPrint is the export root's fingerprint without the partial
// downloads a failed run may leave for the next one.
func rootPrint(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	for _, l := range strings.SplitAfter(testutil.Fingerprint(t, root), "\n") {
		if strings.HasPrefix(l, `".stellaops/`+PartialDir) {
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

func latestOf(t *testing.T, root string) string {
	t.Helper()
	r, err := exportroot.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.Latest()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	if got := failure.Code(err); got != code {
		t.Fatalf("exit code %d, want %d (err: %v)", got, code, err)
	}
}

// pathsOf lists the request paths.
func pathsOf(reqs []reqLog) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Path
	}
	return out
}

// exportPath is the route of a file of an export.
func exportPath(id, rel string) string { return "/concelier/exports/" + id + "/" + rel }

// serveBytes answers with data as a file with a strong ETag.
func serveBytes(w http.ResponseWriter, data []byte) {
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.Header().Set("ETag", `"`+hex.EncodeToString(sha256Sum(data))+`"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// cut answers with the full Content-Length but only the first n bytes of
// data, then closes the connection.
func cut(w http.ResponseWriter, data []byte, n int) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: \"%s\"\r\nContent-Type: application/json\r\n\r\n",
		len(data), hex.EncodeToString(sha256Sum(data)))
	_, _ = buf.Write(data[:n])
	_ = buf.Flush()
}
