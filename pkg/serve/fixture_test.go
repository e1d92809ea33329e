package serve

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// Fixed instants: tests never depend on today's date.
var (
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	exportA  = "20260301T120000Z"
	exportB  = "20260302T120000Z"
	testNow  = t0.Add(2 * time.Hour)
	validFor = 30 * 24 * time.Hour
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fxDomain describes one domain of a fixture export.
type fxDomain struct {
	id  string
	vex map[string][]byte // export key -> file bytes
	// bundleSize pads bundle.json to at least this many bytes.
	bundleSize int
}

// fxExport is what writeExport laid out.
type fxExport struct {
	id       string
	dir      string
	manifest bundle.Manifest
	files    map[string][]byte // relative path -> bytes, including the three top files
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// writeExport lays out ROOT/<id>/ as import leaves it: a bundle whose
// signatures are dummy bytes (serve does not verify them).
func writeExport(t testing.TB, root, id string, generated time.Time, domains ...fxDomain) *fxExport {
	t.Helper()
	fx := &fxExport{id: id, dir: filepath.Join(root, id), files: map[string][]byte{}}
	idx := bundle.Index{SchemaVersion: 1, ExportID: id, GeneratedAt: generated}
	var ids []string
	for _, d := range domains {
		ids = append(ids, d.id)
		base := "mirror/" + d.id + "/"
		var exports []bundle.VexExport
		var keys []string
		for k := range d.vex {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rel := "vex/" + k + ".json"
			fx.files[base+rel] = d.vex[k]
			exports = append(exports, bundle.VexExport{
				Key: k, Format: "openvex", CreatedAt: generated.Add(-time.Hour),
				ArtifactDigest: "sha256:" + sum(d.vex[k]), ArtifactSizeBytes: int64(len(d.vex[k])), Path: rel,
			})
		}
		db := bundle.DomainBundle{
			SchemaVersion: 1, DomainID: d.id, DisplayName: strings.ToUpper(d.id), GeneratedAt: generated,
			AdvisoryCount: 1, Exports: exports,
			Advisories: []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"id":"ADV-%s-%s"}`, d.id, id))},
		}
		bj := mustJSON(t, db)
		if pad := d.bundleSize - len(bj); pad > 0 {
			// Pad inside the advisory list so the document stays JSON.
			db.Advisories = append(db.Advisories, json.RawMessage(`{"id":"PAD","pad":"`+strings.Repeat("x", pad)+`"}`))
			bj = mustJSON(t, db)
		}
		fx.files[base+"bundle.json"] = bj
		fx.files[base+"bundle.json.jws"] = []byte("eyJhbGciOiJFUzI1NiJ9..dummy-" + id)
		fx.files[base+"bundle.json.sig"] = []byte("MEUCIQDdummy-" + id)
		dm := bundle.DomainManifest{
			SchemaVersion: 1, DomainID: d.id, DisplayName: strings.ToUpper(d.id), ExportID: id,
			GeneratedAt: generated, AdvisoryCount: 1,
			Bundle:    bundle.FileEntry{Path: "bundle.json", Size: int64(len(bj)), SHA256: sum(bj)},
			Signature: bundle.SignatureInfo{Alg: "ES256", Kid: "test"},
			JWSPath:   "bundle.json.jws", SigPath: "bundle.json.sig", Exports: exports,
		}
		fx.files[base+"manifest.json"] = mustJSON(t, dm)
		idx.Domains = append(idx.Domains, bundle.IndexDomain{
			ID: d.id, DisplayName: strings.ToUpper(d.id), AdvisoryCount: 1, ExportCount: len(exports),
			BundleSize: int64(len(bj)), BundleSha256: sum(bj), ExportFormats: []string{"openvex"},
			Signed: true, Signature: &bundle.SignatureInfo{Alg: "ES256", Kid: "test"}, LastGenerated: generated,
			ManifestPath: "mirror/" + d.id + "/manifest.json", BundlePath: "mirror/" + d.id + "/bundle.json",
			JWSPath: "mirror/" + d.id + "/bundle.json.jws", SigPath: "mirror/" + d.id + "/bundle.json.sig",
		})
	}
	fx.files[bundle.IndexPath] = mustJSON(t, idx)
	m := bundle.Manifest{
		SchemaVersion: 1, ExportID: id, Sequence: generated.Unix(), GeneratedAt: generated,
		ExpiresAt: generated.Add(validFor), Producer: "test", Domains: ids,
	}
	var rels []string
	for rel := range fx.files {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	var sums bytes.Buffer
	for _, rel := range rels {
		m.Files = append(m.Files, bundle.FileEntry{Path: rel, Size: int64(len(fx.files[rel])), SHA256: sum(fx.files[rel])})
		fmt.Fprintf(&sums, "%s  %s\n", sum(fx.files[rel]), rel)
	}
	fx.manifest = m
	mj := mustJSON(t, m)
	fx.files[bundle.ManifestFile] = mj
	fx.files[bundle.EnvelopeFile] = []byte(`{"payloadType":"` + bundle.PayloadType + `","payload":"","signatures":[]}` + "\n")
	fmt.Fprintf(&sums, "%s  %s\n", sum(mj), bundle.ManifestFile)
	fx.files[bundle.ChecksumsFile] = sums.Bytes()
	for rel, b := range fx.files {
		p := filepath.Join(fx.dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// setLatest points ROOT/latest at id atomically.
func setLatest(t testing.TB, root, id string) {
	t.Helper()
	tmp := filepath.Join(root, ".latest.tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(id, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
}

// defaultDomains is the domain set of most tests.
func defaultDomains() []fxDomain {
	return []fxDomain{
		{id: "primary", vex: map[string][]byte{
			"openvex/2026-03": []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}` + "\n"),
			"csaf/vex-1":      []byte(`{"document":{"category":"csaf_vex"}}` + "\n"),
		}},
		{id: "secure", vex: map[string][]byte{
			"openvex/secure": []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"x":1}]}` + "\n"),
		}},
	}
}

// env is a handler over a fixture export root.
type env struct {
	t     testing.TB
	root  string
	clock *fakeClock
	h     *Handler
	fx    *fxExport
	log   *syncBuffer
}

// syncBuffer is a goroutine-safe buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv writes export A (latest) and builds a handler; mutate adjusts the
// configuration and options first.
func newEnv(t testing.TB, mutate func(*Config, *Options)) *env {
	t.Helper()
	root := t.TempDir()
	fx := writeExport(t, root, exportA, t0, defaultDomains()...)
	setLatest(t, root, exportA)
	return newEnvAt(t, root, fx, mutate)
}

func newEnvAt(t testing.TB, root string, fx *fxExport, mutate func(*Config, *Options)) *env {
	t.Helper()
	clock := newClock(testNow)
	cfg := DefaultConfig()
	cfg.Mirror.ExportRoot = root
	log := &syncBuffer{}
	opts := Options{Now: clock.Now, AccessLog: log, BcryptConcurrency: 2}
	if mutate != nil {
		mutate(&cfg, &opts)
	}
	opts.Config = cfg
	h, err := NewHandler(opts)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	t.Cleanup(h.Close)
	return &env{t: t, root: root, clock: clock, h: h, fx: fx, log: log}
}

// do sends a request through the handler.
func (e *env) do(method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.doBody(method, target, hdr, nil)
}

func (e *env) doBody(method, target string, hdr map[string]string, body io.Reader) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = "192.0.2.10:40000"
	for k, v := range hdr {
		if k == "RemoteAddr" {
			r.RemoteAddr = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func etagOf(b []byte) string { return `"` + sum(b) + `"` }

// jsonError decodes a {"error": ...} body.
func jsonError(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Fatalf("want a JSON error body, got %q (%v)", w.Body.String(), err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type = %q", ct)
	}
	return body.Error
}
