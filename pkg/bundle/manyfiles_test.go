package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/sign"
)

// manyFilesEnv names the folder TestWriteManyFilesBundle exports into, and
// manyFilesCountEnv, when set, how many VEX files it holds.
const (
	manyFilesEnv      = "STELLAOPS_MANYFILES_OUT"
	manyFilesCountEnv = "STELLAOPS_MANYFILES_COUNT"
)

// manyFilesCount is the file count of the 8 GiB data set of bench/run.
const manyFilesCount = 65536

// manyVEXDomain is the domain of the many-files bundles, and manyVEXKey the
// export key of their i-th VEX file (the layout of bench/run's small
// documents).
const manyVEXDomain = "vex"

func manyVEXKey(i int) string { return fmt.Sprintf("openvex/small/product-%06d", i) }

// appendManyVEXDoc appends the i-th small OpenVEX document (about 400 bytes).
func appendManyVEXDoc(buf []byte, i int) []byte {
	return fmt.Appendf(buf, `{
  "@context": "https://openvex.dev/ns/v0.2.0",
  "@id": "https://vex.stellaops.example/docs/small-%06d",
  "author": "StellaOps Excititor",
  "timestamp": "2026-01-02T03:04:05Z",
  "version": 1,
  "statements": [
    {"vulnerability": {"name": "CVE-2025-%05d"}, "products": [{"@id": "pkg:golang/example.com/m%d@v1.%d.0"}],
     "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}
  ]
}
`, i, i%100000, i, i%97)
}

// writeManyVEXSource writes a source tree of one domain holding n small
// OpenVEX documents and returns its root.
func writeManyVEXSource(t testing.TB, root string, n int) string {
	t.Helper()
	base := filepath.Join(root, manyVEXDomain)
	small := filepath.Join(base, "vex", "openvex", "small")
	for _, d := range []string{filepath.Join(base, "advisories"), small} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(base, "domain.json"), []byte(`{"displayName": "VEX statements (generated)"}`+"\n"))
	var buf []byte
	for i := range n {
		buf = appendManyVEXDoc(buf[:0], i)
		if err := os.WriteFile(filepath.Join(base, "vex", filepath.FromSlash(manyVEXKey(i))+".json"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestWriteManyFilesBundle writes the 65,536-file bundle used to measure
// the peak RSS of verify and import with the real CLI, when
// STELLAOPS_MANYFILES_OUT names a folder that does not exist yet
// (STELLAOPS_MANYFILES_COUNT=N writes N files instead). It runs mirror
// export's code on a generated source tree:
//
//	STELLAOPS_MANYFILES_OUT=/tmp/many go test -run TestWriteManyFilesBundle ./pkg/bundle
//	go build -o /tmp/sc2 ./cmd/stellaops-cli
//	/usr/bin/time -v /tmp/sc2 mirror verify --bundle-path /tmp/many \
//	    --trust-roots testdata/keys/es256.pub --now 2026-03-01T13:00:00Z
//	/usr/bin/time -v /tmp/sc2 mirror import --bundle-path /tmp/many --export-root /tmp/root \
//	    --trust-roots testdata/keys/es256.pub --now 2026-03-01T13:00:00Z
func TestWriteManyFilesBundle(t *testing.T) {
	out := os.Getenv(manyFilesEnv)
	if out == "" {
		t.Skip(manyFilesEnv + " is not set")
	}
	n := manyFilesCount
	if s := os.Getenv(manyFilesCountEnv); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", manyFilesCountEnv, s)
		}
	}
	src := writeManyVEXSource(t, filepath.Join(t.TempDir(), "src"), n)
	if _, err := Export(t.Context(), ExportOptions{Source: src, Out: out, Signer: testSigner(t, "es256", ""), Created: testCreated, Sequence: 1}); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d VEX files to %s; verify with --now %s", n, out, testNow.Format(time.RFC3339))
}

// writeManyFilesBundle writes a bundle of n small VEX files into a new
// folder as mirror export would lay it out, signed with the TEST-ONLY es256
// key, and returns the folder. It writes the bundle directly, without
// export's source checks and without syncing anything to disk, so that a
// test can make tens of thousands of files in a second or two.
func writeManyFilesBundle(t testing.TB, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	w := &directWriter{t: t, dir: dir}
	s := testSigner(t, "es256", "")
	base := MirrorDir + "/" + manyVEXDomain + "/"
	if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(base+"vex/openvex/small")), 0o755); err != nil {
		t.Fatal(err)
	}
	exports := make([]VexExport, 0, n)
	var buf []byte
	for i := range n {
		buf = appendManyVEXDoc(buf[:0], i)
		rel := "vex/" + manyVEXKey(i) + ".json"
		f := w.write(base+rel, buf)
		exports = append(exports, VexExport{Key: manyVEXKey(i), Format: "openvex", CreatedAt: testCreated,
			ArtifactDigest: "sha256:" + f.SHA256, ArtifactSizeBytes: f.Size, Path: rel})
	}
	exportID := testCreated.Format(ExportIDLayout)
	bundleEntry := w.writeJSON(base+DomainBundleName, DomainBundle{SchemaVersion: SchemaVersion, DomainID: manyVEXDomain,
		DisplayName: "VEX", GeneratedAt: testCreated, Exports: exports, Advisories: []json.RawMessage{}})
	bundleBytes := readFile(t, filepath.Join(dir, filepath.FromSlash(bundleEntry.Path)))
	jws, err := s.SignJWS(bytes.NewReader(bundleBytes))
	if err != nil {
		t.Fatal(err)
	}
	w.write(base+DomainJWSName, []byte(jws))
	sig, err := s.SignBlob(bytes.NewReader(bundleBytes))
	if err != nil {
		t.Fatal(err)
	}
	w.write(base+DomainSigName, sig)
	sigInfo := SignatureInfo{Alg: s.Alg(), Kid: s.KeyID()}
	w.writeJSON(base+DomainManifestName, DomainManifest{SchemaVersion: SchemaVersion, DomainID: manyVEXDomain, DisplayName: "VEX",
		ExportID: exportID, GeneratedAt: testCreated, Bundle: bundleEntry, Signature: sigInfo,
		JWSPath: base + DomainJWSName, SigPath: base + DomainSigName, Exports: exports})
	w.writeJSON(IndexPath, Index{SchemaVersion: SchemaVersion, ExportID: exportID, GeneratedAt: testCreated, Domains: []IndexDomain{{
		ID: manyVEXDomain, DisplayName: "VEX", ExportCount: n, BundleSize: bundleEntry.Size, BundleSha256: bundleEntry.SHA256,
		ExportFormats: []string{"openvex"}, Signed: true, Signature: &sigInfo, LastGenerated: testCreated,
		ManifestPath: base + DomainManifestName, BundlePath: bundleEntry.Path, JWSPath: base + DomainJWSName, SigPath: base + DomainSigName,
	}}})
	slices.SortFunc(w.files, func(a, b FileEntry) int { return strings.Compare(a.Path, b.Path) })
	m := Manifest{SchemaVersion: SchemaVersion, ExportID: exportID, Sequence: 1, GeneratedAt: testCreated,
		ExpiresAt: testCreated.Add(DefaultExpiry), Producer: "test", Domains: []string{manyVEXDomain}, Files: w.files}
	mjson, err := MarshalDocument(m)
	if err != nil {
		t.Fatal(err)
	}
	env, err := sign.SignDSSE(context.Background(), PayloadType, mjson, s)
	if err != nil {
		t.Fatal(err)
	}
	sums := append(slices.Clone(m.Files), w.write(ManifestFile, mjson), w.write(EnvelopeFile, env))
	writeFile(t, filepath.Join(dir, ChecksumsFile), FormatChecksums(sums))
	return dir
}

// directWriter writes bundle files and records their entries.
type directWriter struct {
	t     testing.TB
	dir   string
	files []FileEntry
}

// write writes data at rel (whose folder must exist) and records it.
func (w *directWriter) write(rel string, data []byte) FileEntry {
	if err := os.WriteFile(filepath.Join(w.dir, filepath.FromSlash(rel)), data, 0o644); err != nil {
		w.t.Fatal(err)
	}
	d := HashBytes(data)
	f := FileEntry{Path: rel, Size: d.Size, SHA256: d.SHA256}
	w.files = append(w.files, f)
	return f
}

// writeJSON writes v as a bundle document at rel.
func (w *directWriter) writeJSON(rel string, v any) FileEntry {
	data, err := MarshalDocument(v)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.write(rel, data)
}

// heapUse is what the heap held and took while a function ran.
type heapUse struct {
	// peakLive is the most the heap held in live objects after any
	// garbage collection during the run, above what it held before.
	peakLive uint64
	// allocated is the total of all allocations during the run.
	allocated uint64
}

// measureHeap runs fn and reports its heap use, sampling the live heap
// (runtime/metrics, which needs no stop of the world) every millisecond.
func measureHeap(fn func()) heapUse {
	read := func() (live, allocs uint64) {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64(), s[1].Value.Uint64()
	}
	runtime.GC()
	base, allocs0 := read()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			live, _ := read()
			peak = max(peak, live)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	fn()
	runtime.GC() // counts what fn left live at its end
	close(stop)
	wg.Wait()
	live, allocs1 := read()
	peak = max(peak, live)
	return heapUse{peakLive: peak - min(peak, base), allocated: allocs1 - allocs0}
}

// TestVerifyMemoryPerFile verifies a bundle of 20,000 small files in
// process and bounds the heap it uses per file, in live objects at the
// worst moment and in all allocations. Verify used to keep about seven maps
// keyed by path and decode mirror.json and the domain manifest whole, about
// 3.5 KiB live per file (236–262 MiB peak RSS at 65,536 files); the bounds
// leave room for noise but not for that. The DSSE check is off: it belongs
// to pkg/sign and holds the envelope (about 240 bytes per file) whatever
// verify does. Both ways of getting digests are measured: hashing the
// files (mirror verify) and digests given by the caller (mirror import).
func TestVerifyMemoryPerFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 files")
	}
	if raceEnabled {
		t.Skip("the race detector changes what is allocated")
	}
	const n = 20000
	dir := writeManyFilesBundle(t, n)
	roots := testRoots(t, "es256")
	digests := NewDigestSet(0)
	for rel, data := range readTree(t, dir) {
		digests.AddDigest(rel, HashBytes(data))
	}
	for _, c := range []struct {
		name    string
		digests *DigestSet
		// maxLive and maxAlloc are bytes per file.
		maxLive, maxAlloc uint64
	}{
		{"hashing", nil, 900, 12 << 10},
		{"given digests", digests, 900, 12 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := verifyOpts(roots, testNow)
			opts.VerifyDSSE = false
			opts.Digests = c.digests
			var rep *Report
			var err error
			use := measureHeap(func() { rep, err = VerifyDir(context.Background(), dir, opts) })
			if err != nil {
				t.Fatalf("%v%s", err, describeProblems(rep))
			}
			if rep.Files != n+5 || len(rep.Manifest.Files) != n+5 {
				t.Fatalf("report lists %d files (%d in Manifest.Files), want %d", rep.Files, len(rep.Manifest.Files), n+5)
			}
			live, alloc := use.peakLive/n, use.allocated/n
			t.Logf("per file: %d bytes live at the peak, %d bytes allocated", live, alloc)
			if live > c.maxLive {
				t.Errorf("verify held %d bytes per file at its peak, more than %d: something keeps per-file state again", live, c.maxLive)
			}
			if alloc > c.maxAlloc {
				t.Errorf("verify allocated %d bytes per file, more than %d", alloc, c.maxAlloc)
			}
		})
	}
}

// BenchmarkVerifyManyFiles verifies a folder of as many small VEX files as
// the 1 GiB data set of bench/run has files (8,257), where the per-file
// costs of verify show, rather than hashing.
func BenchmarkVerifyManyFiles(b *testing.B) {
	dir := writeManyFilesBundle(b, 8257)
	opts := verifyOpts(testRoots(b, "es256"), testNow)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyDir(context.Background(), dir, opts); err != nil {
			b.Fatal(err)
		}
	}
}
