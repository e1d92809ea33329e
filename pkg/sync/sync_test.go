package sync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/rotation"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// world is an upstream root A served in process, with exports at t0 and
// (after publish) t1, and a downstream root B.
type world struct {
	fx  *fixture
	up  *upstream
	b   string
	clk *fakeClock
	b0  string // bundle of the export at t0
	b1  string // bundle of the export at t1: only the big file differs
}

func newWorld(t *testing.T) *world {
	t.Helper()
	fx := newFixture(t)
	w := &world{fx: fx, b: filepath.Join(t.TempDir(), "downstream"), clk: newClock()}
	w.b0 = fx.bundle(t0, 1, "one")
	w.b1 = fx.bundle(t1, 2, "two")
	w.up = newUpstream(t, filepath.Join(t.TempDir(), "upstream"))
	w.up.publish(fx, w.b0)
	return w
}

func (w *world) opts() Options { return w.fx.options(w.up, w.b, w.clk) }

func TestSyncThenNoChange(t *testing.T) {
	w := newWorld(t)
	res, err := runSync(t, w.opts())
	if err != nil {
		t.Fatalf("first sync: %v", err)
	}
	id := exportID(t0)
	if res.State != StateSynced || res.ExportID != id || res.Sequence != 1 {
		t.Fatalf("result %+v", res)
	}
	if latestOf(t, w.b) != id {
		t.Fatalf("latest is %q, want %s", latestOf(t, w.b), id)
	}
	if res.Copied != 0 || res.Downloaded != res.Files || res.Files == 0 {
		t.Fatalf("downloaded %d, copied %d of %d files", res.Downloaded, res.Copied, res.Files)
	}
	// index.json, mirror.json and mirror.dsse.json, then every listed file
	// except index.json (reused from the index response).
	if want := int64(2 + res.Files); res.Requests != want {
		t.Fatalf("%d requests, want %d: %v", res.Requests, want, pathsOf(w.up.requests()))
	}
	if _, err := os.Stat(filepath.Join(w.b, ".stellaops", PartialDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial folder left after success: %v", err)
	}
	st, err := ReadState(w.b)
	if err != nil || st == nil || st.ExportID != id || st.ETag == "" || len(st.Domains) != 2 {
		t.Fatalf("state %+v, %v", st, err)
	}
	// Same bytes as upstream.
	for _, rel := range []string{bundle.ManifestFile, bundle.EnvelopeFile, bundle.ChecksumsFile, bigPath} {
		got, _ := os.ReadFile(filepath.Join(w.b, id, filepath.FromSlash(rel)))
		if string(got) != string(w.up.file(id, rel)) {
			t.Errorf("%s differs from upstream", rel)
		}
	}

	// Unchanged upstream: one conditional request, nothing written.
	before := rootPrint(t, w.b)
	w.up.setFault(nil)
	res, err = runSync(t, w.opts())
	if err != nil || res.State != StateUpToDate || !res.NotModified || res.ExportID != id {
		t.Fatalf("second sync: %+v, %v", res, err)
	}
	reqs := w.up.requests()
	if len(reqs) != 1 || reqs[0].Path != DefaultIndexPath || reqs[0].IfNoneMatch != st.ETag {
		t.Fatalf("requests %+v, want one conditional index request", reqs)
	}
	testutilUnchanged(t, w.b, before)

	// An upstream that ignores If-None-Match: the fingerprint decides, still one request.
	w.up.setFault(func(rw http.ResponseWriter, r *http.Request, n int) bool {
		r.Header.Del("If-None-Match")
		return false
	})
	res, err = runSync(t, w.opts())
	if err != nil || res.State != StateUpToDate || res.NotModified || res.Requests != 1 {
		t.Fatalf("third sync: %+v, %v", res, err)
	}
	testutilUnchanged(t, w.b, before)
}

func testutilUnchanged(t *testing.T, root, before string) {
	t.Helper()
	if after := rootPrint(t, root); after != before {
		t.Fatalf("export root changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

func TestSyncCopiesUnchangedFilesLocally(t *testing.T) {
	w := newWorld(t)
	if _, err := runSync(t, w.opts()); err != nil {
		t.Fatal(err)
	}
	w.up.publish(w.fx, w.b1)
	w.up.setFault(nil)
	res, err := runSync(t, w.opts())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	id1 := exportID(t1)
	if res.State != StateSynced || res.ExportID != id1 || res.Previous != exportID(t0) {
		t.Fatalf("result %+v", res)
	}
	if res.Copied == 0 || res.CopiedBytes == 0 {
		t.Fatalf("nothing copied locally: %+v", res)
	}
	// The VEX files that did not change are not downloaded again.
	for _, p := range pathsOf(w.up.requests()) {
		if strings.Contains(p, "/vex/") && !strings.HasSuffix(p, bigPath) {
			t.Errorf("downloaded unchanged file %s", p)
		}
	}
	if !slices.Contains(pathsOf(w.up.requests()), exportPath(id1, bigPath)) {
		t.Errorf("changed file %s not downloaded", bigPath)
	}
}

// TestMisbehavingUpstream runs a sync against an upstream that publishes
// a new export and then misbehaves in one way; the downstream holds the
// previous export, which must stay active and untouched on failure.
func TestMisbehavingUpstream(t *testing.T) {
	id1 := exportID(t1)
	big := exportPath(id1, bigPath)
	type fault func(w *world) func(rw http.ResponseWriter, r *http.Request, n int) bool
	on := func(path string, f func(w *world, rw http.ResponseWriter, r *http.Request, n int)) fault {
		return func(w *world) func(rw http.ResponseWriter, r *http.Request, n int) bool {
			return func(rw http.ResponseWriter, r *http.Request, n int) bool {
				if r.URL.Path != path {
					return false
				}
				f(w, rw, r, n)
				return true
			}
		}
	}
	data := func(w *world) []byte { return w.up.file(id1, bigPath) }
	tests := []struct {
		name  string
		fault fault
		code  int
		// check inspects the result and the requests.
		check func(t *testing.T, w *world, res *Result, err error)
	}{
		{"truncated body", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			cut(rw, data(w), bigSize/3)
		}), 1, func(t *testing.T, w *world, res *Result, err error) {
			if got := w.up.countOf(big); got != 3 {
				t.Errorf("%d requests for the file, want 3 attempts", got)
			}
			if !strings.Contains(err.Error(), "gave up after 3 attempts") {
				t.Errorf("error %q", err)
			}
		}},
		{"content-length shorter than listed", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			serveBytes(rw, data(w)[:bigSize-1])
		}), 2, func(t *testing.T, w *world, res *Result, err error) {
			if len(data(w)) != bigSize {
				t.Fatalf("fixture file has %d bytes", len(data(w)))
			}
			if !errors.Is(err, bundle.ErrSizeMismatch) || w.up.countOf(big) != 1 {
				t.Errorf("err %v after %d requests", err, w.up.countOf(big))
			}
		}},
		{"content-length longer than listed", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			serveBytes(rw, append(data(w), "tail"...))
		}), 2, func(t *testing.T, w *world, res *Result, err error) {
			// The other files together are far smaller than the big one.
			if !errors.Is(err, bundle.ErrSizeMismatch) || res.DownloadedBytes >= bigSize/2 {
				t.Errorf("err %v; read %d bytes with a wrong Content-Length", err, res.DownloadedBytes)
			}
		}},
		{"chunked body longer than listed", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			rw.WriteHeader(http.StatusOK)
			rw.(http.Flusher).Flush()
			_, _ = rw.Write(append(data(w), strings.Repeat("x", 1<<20)...))
		}), 2, func(t *testing.T, w *world, res *Result, err error) {
			if !errors.Is(err, bundle.ErrSizeMismatch) {
				t.Errorf("err %v", err)
			}
			if res.DownloadedBytes > bigSize+bigSize/2 {
				t.Errorf("read %d bytes; the file lists %d and the body carries 1 MiB more", res.DownloadedBytes, bigSize)
			}
		}},
		{"tampered file", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			b := append([]byte(nil), data(w)...)
			b[len(b)/2] ^= 0xff
			serveBytes(rw, b)
		}), 2, func(t *testing.T, w *world, res *Result, err error) {
			if !errors.Is(err, bundle.ErrDigestMismatch) {
				t.Errorf("err %v", err)
			}
		}},
		{"500 then success", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			if n == 0 {
				http.Error(rw, "upstream hiccup", http.StatusInternalServerError)
				return
			}
			w.up.h.ServeHTTP(rw, r)
		}), 0, func(t *testing.T, w *world, res *Result, err error) {
			if res.Retries != 1 || len(w.clk.Sleeps()) != 1 {
				t.Errorf("retries %d, sleeps %v", res.Retries, w.clk.Sleeps())
			}
			if d := w.clk.Sleeps()[0]; d < 500*time.Millisecond || d > time.Second {
				t.Errorf("backoff %s, want between 0.5s and 1s", d)
			}
		}},
		{"429 with a short Retry-After", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			if n == 0 {
				rw.Header().Set("Retry-After", "7")
				http.Error(rw, "slow down", http.StatusTooManyRequests)
				return
			}
			w.up.h.ServeHTTP(rw, r)
		}), 0, func(t *testing.T, w *world, res *Result, err error) {
			if !slices.Contains(w.clk.Sleeps(), 7*time.Second) {
				t.Errorf("sleeps %v, want a 7s wait", w.clk.Sleeps())
			}
		}},
		{"429 with a long Retry-After", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			rw.Header().Set("Retry-After", "3600")
			http.Error(rw, "budget exhausted", http.StatusTooManyRequests)
		}), 1, func(t *testing.T, w *world, res *Result, err error) {
			var rl *RateLimitError
			if !errors.As(err, &rl) || res.RetryAt == nil || !res.RetryAt.Equal(testNow.Add(time.Hour)) {
				t.Fatalf("err %v, retryAt %v", err, res.RetryAt)
			}
			if !strings.Contains(err.Error(), "retry after 1h0m0s (at 2026-03-04T13:00:00Z)") || failure.HintOf(err) == "" {
				t.Errorf("error %q, hint %q", err, failure.HintOf(err))
			}
			if len(w.clk.Sleeps()) != 0 {
				t.Errorf("waited %v", w.clk.Sleeps())
			}
		}},
		{"manifest of another export", func(w *world) func(rw http.ResponseWriter, r *http.Request, n int) bool {
			id0 := exportID(t0)
			return func(rw http.ResponseWriter, r *http.Request, n int) bool {
				for _, name := range []string{bundle.ManifestFile, bundle.EnvelopeFile} {
					if r.URL.Path == exportPath(id1, name) {
						serveBytes(rw, w.up.file(id0, name))
						return true
					}
				}
				return false
			}
		}, 2, func(t *testing.T, w *world, res *Result, err error) {
			if !errors.Is(err, ErrMixedExport) {
				t.Errorf("err %v", err)
			}
			for _, p := range pathsOf(w.up.requests()) {
				if strings.Contains(p, "/mirror/primary/") {
					t.Errorf("fetched %s before refusing the manifest", p)
				}
			}
		}},
		{"envelope of another export", func(w *world) func(rw http.ResponseWriter, r *http.Request, n int) bool {
			return func(rw http.ResponseWriter, r *http.Request, n int) bool {
				if r.URL.Path == exportPath(id1, bundle.EnvelopeFile) {
					serveBytes(rw, w.up.file(exportID(t0), bundle.EnvelopeFile))
					return true
				}
				return false
			}
		}, 2, func(t *testing.T, w *world, res *Result, err error) {
			if !errors.Is(err, bundle.ErrMalformed) {
				t.Errorf("err %v", err)
			}
		}},
		{"404 for a listed file", on(big, func(w *world, rw http.ResponseWriter, r *http.Request, n int) {
			http.NotFound(rw, r)
		}), 1, func(t *testing.T, w *world, res *Result, err error) {
			if w.up.countOf(big) != 1 {
				t.Errorf("%d requests for a 404", w.up.countOf(big))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if _, err := runSync(t, w.opts()); err != nil {
				t.Fatal(err)
			}
			w.up.publish(w.fx, w.b1)
			before := rootPrint(t, w.b)
			w.up.setFault(tc.fault(w))
			res, err := runSync(t, w.opts())
			wantCode(t, err, tc.code)
			if res == nil {
				t.Fatal("nil result")
			}
			if tc.code != 0 {
				testutilUnchanged(t, w.b, before)
				if latestOf(t, w.b) != exportID(t0) {
					t.Errorf("latest moved to %s", latestOf(t, w.b))
				}
				if res.State != StateFailed {
					t.Errorf("state %q", res.State)
				}
			} else if latestOf(t, w.b) != id1 {
				t.Errorf("latest is %s, want %s", latestOf(t, w.b), id1)
			}
			tc.check(t, w, res, err)
		})
	}
}

func TestSlowDripTripsWatchdog(t *testing.T) {
	w := newWorld(t)
	if _, err := runSync(t, w.opts()); err != nil {
		t.Fatal(err)
	}
	w.up.publish(w.fx, w.b1)
	id1 := exportID(t1)
	big := exportPath(id1, bigPath)
	data := w.up.file(id1, bigPath)
	w.up.setFault(func(rw http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path != big {
			return false
		}
		rw.Header().Set("Content-Length", fmt.Sprint(len(data)))
		rw.WriteHeader(http.StatusOK)
		_, _ = rw.Write(data[:10])
		rw.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	})
	before := rootPrint(t, w.b)
	opts := w.opts()
	opts.StallWindow = 50 * time.Millisecond
	opts.MinThroughput = 1 << 20
	opts.Attempts = 2
	start := time.Now()
	_, err := runSync(t, opts)
	wantCode(t, err, 1)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("err %v, want a stall", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the watchdog took %s", d)
	}
	testutilUnchanged(t, w.b, before)
}

func TestResumeOnNextRun(t *testing.T) {
	w := newWorld(t)
	id := exportID(t0)
	big := exportPath(id, bigPath)
	data := w.up.file(id, bigPath)
	w.up.setFault(func(rw http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path == big {
			cut(rw, data, len(data)/2)
			return true
		}
		return false
	})
	opts := w.opts()
	opts.Attempts = 1
	_, err := runSync(t, opts)
	wantCode(t, err, 1)
	if got := latestOf(t, w.b); got != "" {
		t.Fatalf("latest %q after a failed first sync", got)
	}
	partial := filepath.Join(w.b, ".stellaops", PartialDir, id, filepath.FromSlash(bigPath)+PartialSuffix)
	fi, err := os.Stat(partial)
	if err != nil || fi.Size() != int64(len(data)/2) {
		t.Fatalf("partial %s: %v, %v", partial, fi, err)
	}

	w.up.setFault(nil)
	res, err := runSync(t, w.opts())
	if err != nil {
		t.Fatalf("second sync: %v", err)
	}
	if res.Resumed < 1 {
		t.Errorf("resumed %d files, want at least the cut one", res.Resumed)
	}
	var got *reqLog
	for _, r := range w.up.requests() {
		if r.Path == big {
			got = &r
		}
	}
	wantETag := `"` + fmt.Sprintf("%x", sha256Sum(data)) + `"`
	if got == nil || got.Range != fmt.Sprintf("bytes=%d-", len(data)/2) || got.IfRange != wantETag {
		t.Fatalf("request for the big file: %+v", got)
	}
	if res.DownloadedBytes >= int64(len(data)) {
		t.Errorf("downloaded %d bytes; the resumed file alone is %d", res.DownloadedBytes, len(data))
	}
	if latestOf(t, w.b) != id {
		t.Fatalf("latest %q", latestOf(t, w.b))
	}
	if _, err := os.Stat(filepath.Join(w.b, ".stellaops", PartialDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial folder left: %v", err)
	}
}

func TestResumeWithinRun(t *testing.T) {
	w := newWorld(t)
	id := exportID(t0)
	big := exportPath(id, bigPath)
	data := w.up.file(id, bigPath)
	w.up.setFault(func(rw http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path == big && n == 0 {
			cut(rw, data, len(data)/2)
			return true
		}
		return false
	})
	res, err := runSync(t, w.opts())
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 1 || res.Retries != 1 {
		t.Fatalf("resumed %d, retries %d", res.Resumed, res.Retries)
	}
	reqs := w.up.requests()
	var ranges []string
	for _, r := range reqs {
		if r.Path == big {
			ranges = append(ranges, r.Range)
		}
	}
	if !slices.Equal(ranges, []string{"", fmt.Sprintf("bytes=%d-", len(data)/2)}) {
		t.Fatalf("ranges %q", ranges)
	}
}

func TestResumeMismatchRestartsFromZero(t *testing.T) {
	w := newWorld(t)
	id := exportID(t0)
	// A partial whose bytes are wrong: the resumed file does not verify, so
	// it is fetched again from zero.
	partial := filepath.Join(w.b, ".stellaops", PartialDir, id, filepath.FromSlash(bigPath)+PartialSuffix)
	if err := os.MkdirAll(filepath.Dir(partial), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(partial, []byte(strings.Repeat("z", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := runSync(t, w.opts())
	if err != nil {
		t.Fatal(err)
	}
	var ranges []string
	for _, r := range w.up.requests() {
		if r.Path == exportPath(id, bigPath) {
			ranges = append(ranges, r.Range)
		}
	}
	if !slices.Equal(ranges, []string{"bytes=1000-", ""}) {
		t.Fatalf("ranges %q", ranges)
	}
	if res.Resumed != 0 {
		t.Errorf("resumed %d", res.Resumed)
	}
	got, _ := os.ReadFile(filepath.Join(w.b, id, filepath.FromSlash(bigPath)))
	if string(got) != string(w.up.file(id, bigPath)) {
		t.Fatal("file differs from upstream")
	}
}

func TestRollbackRefused(t *testing.T) {
	t.Run("export seen before", func(t *testing.T) {
		w := newWorld(t)
		if _, err := runSync(t, w.opts()); err != nil {
			t.Fatal(err)
		}
		w.up.publish(w.fx, w.b1)
		if _, err := runSync(t, w.opts()); err != nil {
			t.Fatal(err)
		}
		setUpstreamLatest(t, w, exportID(t0))
		before := rootPrint(t, w.b)
		_, err := runSync(t, w.opts())
		wantCode(t, err, 3)
		testutilUnchanged(t, w.b, before)
	})
	t.Run("older export never seen", func(t *testing.T) {
		fx := newFixture(t)
		w := &world{fx: fx, b: filepath.Join(t.TempDir(), "downstream"), clk: newClock()}
		w.b0 = fx.bundle(t0, 1, "one")
		w.b1 = fx.bundle(t1, 2, "two")
		w.up = newUpstream(t, filepath.Join(t.TempDir(), "upstream"))
		w.up.publish(fx, w.b1)
		if _, err := runSync(t, w.opts()); err != nil {
			t.Fatal(err)
		}
		w.up.publish(fx, w.b0) // an older sequence becomes the upstream's latest
		w.up.setFault(nil)
		before := rootPrint(t, w.b)
		_, err := runSync(t, w.opts())
		wantCode(t, err, 3)
		testutilUnchanged(t, w.b, before)
		if n := len(w.up.requests()); n != 3 {
			t.Fatalf("%d requests (%v), want index, manifest and envelope only", n, pathsOf(w.up.requests()))
		}
		// With --allow-downgrade it goes through.
		opts := w.opts()
		opts.AllowDowngrade = true
		res, err := runSync(t, opts)
		if err != nil || !res.Downgrade || latestOf(t, w.b) != exportID(t0) {
			t.Fatalf("downgrade: %+v, %v", res, err)
		}
	})
}

func setUpstreamLatest(t *testing.T, w *world, id string) {
	t.Helper()
	r, err := exportroot.Open(w.up.root)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetLatest(id); err != nil {
		t.Fatal(err)
	}
	if err := w.up.h.Reload(); err != nil {
		t.Fatal(err)
	}
	w.up.setFault(nil)
}

func TestLockHeld(t *testing.T) {
	w := newWorld(t)
	r, err := exportroot.Open(w.b)
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(context.Background(), 0, exportroot.LockInfo{Command: "mirror import"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	before := rootPrint(t, w.b)
	_, err = runSync(t, w.opts())
	wantCode(t, err, 5)
	testutilUnchanged(t, w.b, before)
	if n := len(w.up.requests()); n != 1 {
		t.Errorf("%d requests while the lock was held, want only the index", n)
	}
}

func TestSignatureChecks(t *testing.T) {
	t.Run("untrusted key", func(t *testing.T) {
		w := newWorld(t)
		other, err := trust.LoadFile(filepath.Join(w.fx.keys, "other-es256.pub"))
		if err != nil {
			t.Fatal(err)
		}
		opts := w.opts()
		opts.TrustRoots = other
		if err := os.MkdirAll(w.b, 0o755); err != nil {
			t.Fatal(err)
		}
		before := rootPrint(t, w.b)
		_, err = runSync(t, opts)
		wantCode(t, err, 2)
		testutilUnchanged(t, w.b, before)
		if n := len(w.up.requests()); n != 3 {
			t.Fatalf("%d requests, want 3 (nothing listed is fetched before the signature verifies)", n)
		}
	})
	t.Run("required key id", func(t *testing.T) {
		w := newWorld(t)
		opts := w.opts()
		opts.KeyID = strings.Repeat("ab", 32)
		_, err := runSync(t, opts)
		wantCode(t, err, 2)
		opts.KeyID = w.fx.signer.KeyID()
		res, err := runSync(t, opts)
		if err != nil || !slices.Contains(res.SignerKeyIDs, w.fx.signer.KeyID()) {
			t.Fatalf("%+v, %v", res, err)
		}
	})
	t.Run("trust store of the root", func(t *testing.T) {
		w := newWorld(t)
		opts := w.opts()
		opts.TrustRoots, opts.TrustRootsPath = nil, ""
		_, err := runSync(t, opts)
		wantCode(t, err, 4) // no store yet
		if _, err := runSync(t, w.opts()); err != nil {
			t.Fatal(err)
		}
		w.up.publish(w.fx, w.b1)
		if _, err := runSync(t, opts); err != nil {
			t.Fatalf("sync with the stored roots: %v", err)
		}
	})
}

func TestExpiredExportRefusedBeforeDownload(t *testing.T) {
	w := newWorld(t)
	opts := w.opts()
	opts.Now = t0.Add(31 * 24 * time.Hour)
	_, err := runSync(t, opts)
	wantCode(t, err, 3)
	if n := len(w.up.requests()); n != 3 {
		t.Fatalf("%d requests", n)
	}
}

func TestUnknownDomain(t *testing.T) {
	w := newWorld(t)
	opts := w.opts()
	opts.Domains = []string{"primary", "missing"}
	_, err := runSync(t, opts)
	if !errors.Is(err, ErrUnknownDomain) || failure.Code(err) != 1 {
		t.Fatalf("err %v", err)
	}
	opts.Domains = []string{"primary"}
	if _, err := runSync(t, opts); err != nil {
		t.Fatal(err)
	}
}

// TestChainedMirror syncs B from serve over A, then C from serve over B.
func TestChainedMirror(t *testing.T) {
	w := newWorld(t)
	if _, err := runSync(t, w.opts()); err != nil {
		t.Fatal(err)
	}
	down := newUpstream(t, w.b)
	c := filepath.Join(t.TempDir(), "c")
	opts := w.fx.options(down, c, newClock())
	res, err := runSync(t, opts)
	if err != nil {
		t.Fatalf("sync C from B: %v", err)
	}
	id := exportID(t0)
	if res.ExportID != id || latestOf(t, c) != id {
		t.Fatalf("%+v", res)
	}
	for _, rel := range []string{bundle.ManifestFile, bundle.EnvelopeFile, bundle.ChecksumsFile, bundle.IndexPath, bigPath} {
		got, err := os.ReadFile(filepath.Join(c, id, filepath.FromSlash(rel)))
		if err != nil || string(got) != string(w.up.file(id, rel)) {
			t.Errorf("%s in C differs from A: %v", rel, err)
		}
	}
	// A new export flows A -> B -> C.
	w.up.publish(w.fx, w.b1)
	if _, err := runSync(t, w.opts()); err != nil {
		t.Fatal(err)
	}
	if err := down.h.Reload(); err != nil {
		t.Fatal(err)
	}
	res, err = runSync(t, opts)
	if err != nil || res.ExportID != exportID(t1) || res.Copied == 0 {
		t.Fatalf("second hop: %+v, %v", res, err)
	}
}

func TestDiscoverAndTest(t *testing.T) {
	w := newWorld(t)
	s, err := New(w.opts())
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.ExportID != exportID(t0) || len(d.Domains) != 2 {
		t.Fatalf("%+v", d)
	}
	p := d.Domains[1]
	if p.ID != "primary" || p.DisplayName != "Primary" || p.Alg != "ES256" || p.Kid != w.fx.signer.KeyID() || !p.Signed ||
		p.AdvisoryCount == 0 || p.BundleSize == 0 || len(p.ExportFormats) == 0 || !p.LastGenerated.Equal(t0) {
		t.Fatalf("%+v", p)
	}
	if d.Requests != 3 {
		t.Errorf("%d requests", d.Requests)
	}

	w.up.setFault(nil)
	probe, err := s.Test(context.Background())
	if err != nil || !probe.Reachable || probe.Status != 200 || probe.ExportID != exportID(t0) || probe.Domains != 2 {
		t.Fatalf("%+v, %v", probe, err)
	}
	if n := len(w.up.requests()); n != 1 {
		t.Fatalf("--test made %d requests", n)
	}
	if _, err := os.Stat(w.b); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("discover/test wrote %s", w.b)
	}

	w.up.setFault(func(rw http.ResponseWriter, r *http.Request, n int) bool {
		http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	probe, err = s.Test(context.Background())
	if err == nil || probe.Reachable || probe.Status != 503 || len(w.up.requests()) != 1 {
		t.Fatalf("%+v, %v", probe, err)
	}
}

func TestCredentials(t *testing.T) {
	w := newWorld(t)
	w.up.setFault(func(rw http.ResponseWriter, r *http.Request, n int) bool {
		if r.Header.Get("Authorization") != "Bearer tok" {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="stellaops-mirror", scope="concelier.mirror.read"`)
			http.Error(rw, "unauthorized", http.StatusUnauthorized)
			return true
		}
		return false
	})
	_, err := runSync(t, w.opts())
	wantCode(t, err, 1)
	if failure.HintOf(err) == "" || !strings.Contains(err.Error(), "WWW-Authenticate") {
		t.Fatalf("err %v", err)
	}
	opts := w.opts()
	opts.Token = "tok"
	if _, err := runSync(t, opts); err != nil {
		t.Fatal(err)
	}
	opts.Token, opts.User, opts.Password = "", "u", "p"
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	w.up.setFault(nil)
	if _, err := s.Test(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := w.up.requests()[0].Auth; a != "Basic dTpw" {
		t.Fatalf("Authorization %q", a)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{BaseURL: "ftp://x"},
		{BaseURL: "https://user:pw@x"},
		{BaseURL: "https://x", Timeout: time.Second},
		{BaseURL: "https://x", Timeout: time.Hour},
		{BaseURL: "https://x", Token: "t", User: "u", Password: "p"},
		{BaseURL: "https://x", User: "u"},
		{BaseURL: "https://x", IndexPath: "/a/../b"},
		{BaseURL: "https://x", Domains: []string{"Bad_ID"}},
		{BaseURL: "https://x", KeyID: "k"},
	} {
		if _, err := New(o); failure.Code(err) != 4 {
			t.Errorf("New(%+v): %v, want a usage error", o, err)
		}
	}
	s, err := New(Options{BaseURL: "https://mirror.example/prefix/", IndexPath: "concelier/exports/index.json"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.IndexURL(); got != "https://mirror.example/prefix/concelier/exports/index.json" {
		t.Fatalf("index URL %s", got)
	}
	if got := s.fileURL("20260301T120000Z", "mirror/a b/x.json").String(); got != "https://mirror.example/prefix/concelier/exports/20260301T120000Z/mirror/a%20b/x.json" {
		t.Fatalf("file URL %s", got)
	}
}

func TestLoop(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := w.opts()
	var waits []time.Duration
	opts.Sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		if len(waits) == 3 {
			cancel()
			return ctx.Err()
		}
		return nil
	}
	calls := 0
	w.up.setFault(func(rw http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path == DefaultIndexPath {
			calls++
			if calls == 2 {
				http.Error(rw, "down", http.StatusNotFound)
				return true
			}
		}
		return false
	})
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	err = s.Loop(ctx, time.Minute, func(res *Result, err error) {
		states = append(states, res.State)
	})
	wantCode(t, err, 130)
	if !slices.Equal(states, []string{StateSynced, StateFailed, StateUpToDate}) {
		t.Fatalf("states %v", states)
	}
	for _, d := range waits {
		if d != time.Minute {
			t.Fatalf("waits %v (Rand is 0.5: no jitter)", waits)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 10-19/20", 10, 19, 20, true},
		{"bytes 0-0/*", 0, 0, -1, true},
		{"bytes 10-9/20", 0, 0, 0, false},
		{"bytes 10-19/19", 0, 0, 0, false},
		{"items 1-2/3", 0, 0, 0, false},
		{"bytes -5/20", 0, 0, 0, false},
	} {
		s, e, tot, ok := parseContentRange(tc.in)
		if ok != tc.ok || ok && (s != tc.start || e != tc.end || tot != tc.total) {
			t.Errorf("%q: %d %d %d %v", tc.in, s, e, tot, ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := testNow
	if d, ok := parseRetryAfter("120", now); !ok || d != 2*time.Minute {
		t.Fatal(d, ok)
	}
	if d, ok := parseRetryAfter(now.Add(time.Hour).Format(http.TimeFormat), now); !ok || d != time.Hour {
		t.Fatal(d, ok)
	}
	if _, ok := parseRetryAfter("soon", now); ok {
		t.Fatal("parsed soon")
	}
}

// TestRotatedKey syncs an export signed by a new key that a rotation
// statement in the export vouches for; the downstream trusts only the old
// key until then.
func TestRotatedKey(t *testing.T) {
	w := newWorld(t)
	if _, err := runSync(t, w.opts()); err != nil {
		t.Fatal(err)
	}
	cur, err := sign.LoadPrivateKey(filepath.Join(w.fx.keys, "es256.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	next, err := sign.LoadPrivateKey(filepath.Join(w.fx.keys, "other-es256.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := rotation.RotateKey(context.Background(), rotation.KeyOptions{Current: cur, New: next, Roots: w.fx.roots, Now: t1})
	if err != nil {
		t.Fatal(err)
	}
	stmt := filepath.Join(t.TempDir(), kr.FileName)
	if err := os.WriteFile(stmt, kr.Statement, 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := sign.LoadSigner(filepath.Join(w.fx.keys, "other-es256.pem"), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rotated")
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{
		Source: src, Out: out, Signer: signer, Sequence: 2, Created: t1, Expires: 30 * 24 * time.Hour, Rotations: []string{stmt},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := importer.Import(context.Background(), importer.Options{
		BundlePath: out, Stage: importer.FolderStager(out), ExportRoot: w.up.root, VerifyChecksums: true, VerifyDSSE: true,
		Now: testNow, Rotate: rotation.Apply,
	}); err != nil {
		t.Fatalf("upstream import: %v", err)
	}
	if err := w.up.h.Reload(); err != nil {
		t.Fatal(err)
	}
	opts := w.opts()
	opts.TrustRoots, opts.TrustRootsPath = nil, ""
	before := rootPrint(t, w.b)
	_, err = runSync(t, opts)
	wantCode(t, err, 2) // without the rotation hook the new key is unknown
	testutilUnchanged(t, w.b, before)

	opts.Rotate = rotation.Apply
	res, err := runSync(t, opts)
	if err != nil {
		t.Fatalf("sync with rotation: %v", err)
	}
	if !res.TrustStoreUpdated || !slices.Contains(res.SignerKeyIDs, signer.KeyID()) {
		t.Fatalf("%+v", res)
	}
}
