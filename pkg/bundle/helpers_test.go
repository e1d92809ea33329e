package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// keysDir holds the TEST-ONLY keys of testdata/keys.
const keysDir = "../../testdata/keys"

// testCreated is the --created of every test export; testNow the trusted
// time of verify, an hour later. Nothing depends on the clock.
var (
	testCreated = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testNow     = testCreated.Add(time.Hour)
)

func sampleSource(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if err := samplefeed.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testSigner(t testing.TB, name, alg string) *sign.Signer {
	t.Helper()
	var password func() ([]byte, error)
	file := name + ".pem"
	if name == "cosign" {
		file = "cosign.key"
		password = func() ([]byte, error) { return []byte("test-password"), nil }
	}
	s, err := sign.LoadSigner(filepath.Join(keysDir, file), alg, "", password)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testRoots(t testing.TB, names ...string) *trust.Roots {
	t.Helper()
	var all []byte
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(keysDir, n+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	r, err := trust.Parse(all, "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// exportTo exports src into a new folder below t.TempDir().
func exportTo(t testing.TB, src string, s *sign.Signer, created time.Time, sequence int64) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle")
	if _, err := Export(context.Background(), ExportOptions{Source: src, Out: out, Signer: s, Created: created, Sequence: sequence}); err != nil {
		t.Fatal(err)
	}
	return out
}

func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// readTree returns every regular file below dir by slash path.
func readTree(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func verifyOpts(roots *trust.Roots, now time.Time) VerifyOptions {
	return VerifyOptions{Roots: roots, Now: now, VerifyChecksums: true, VerifyDSSE: true}
}

// hasProblem reports whether r holds a problem on file whose error is target
// (any error when target is nil).
func hasProblem(r *Report, file string, target error) bool {
	for _, p := range r.Problems {
		if p.File == file && (target == nil || errors.Is(p.err, target)) {
			return true
		}
	}
	return false
}

func describeProblems(r *Report) string {
	var b strings.Builder
	for _, p := range r.Problems {
		b.WriteString("\n  " + p.File + ": " + p.Check + ": " + p.Message + " [" + p.Class + "]")
	}
	return b.String()
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// resign makes dir consistent again after a deliberate change, as a holder
// of the signing key could: it signs each domain's bundle.json anew (JWS and
// .sig), lists every file with its digest in mirror.json, passes the
// marshalled manifest through edit, signs it with DSSE and rewrites
// SHA256SUMS. Whatever verify still refuses afterwards, it refuses on the
// content, not on a signature or a digest.
func resign(t testing.TB, dir string, s *sign.Signer, edit func([]byte) []byte) {
	t.Helper()
	var m Manifest
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, ManifestFile)), &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Domains {
		base := filepath.Join(dir, MirrorDir, d)
		bundleBytes := readFile(t, filepath.Join(base, DomainBundleName))
		jws, err := s.SignJWS(bytes.NewReader(bundleBytes))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(base, DomainJWSName), []byte(jws))
		sig, err := s.SignBlob(bytes.NewReader(bundleBytes))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(base, DomainSigName), sig)
	}
	m.Files = m.Files[:0]
	for rel, data := range readTree(t, dir) {
		switch rel {
		case ManifestFile, EnvelopeFile, ChecksumsFile:
			continue
		}
		d := HashBytes(data)
		m.Files = append(m.Files, FileEntry{Path: rel, Size: d.Size, SHA256: d.SHA256})
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	mjson, err := MarshalDocument(m)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		mjson = edit(mjson)
	}
	env, err := sign.SignDSSE(context.Background(), PayloadType, mjson, s)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, ManifestFile), mjson)
	writeFile(t, filepath.Join(dir, EnvelopeFile), env)
	sums := append([]FileEntry(nil), m.Files...)
	for _, name := range []string{ManifestFile, EnvelopeFile} {
		d := HashBytes(readFile(t, filepath.Join(dir, name)))
		sums = append(sums, FileEntry{Path: name, Size: d.Size, SHA256: d.SHA256})
	}
	writeFile(t, filepath.Join(dir, ChecksumsFile), FormatChecksums(sums))
}
