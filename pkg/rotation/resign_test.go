package rotation

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// exportBundle writes a bundle of the sample feed signed by k, created at t0.
func exportBundle(t testing.TB, dir string, k testKey, rotations ...string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if _, err := os.Stat(src); err != nil {
		if err := samplefeed.WriteTo(src); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "bundles", "b")
	_, err := bundle.Export(context.Background(), bundle.ExportOptions{Source: src, Out: out, Signer: k.signer(t),
		Created: t0, Sequence: 1, Rotations: rotations})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func verifyWith(t testing.TB, dir string, ks ...testKey) error {
	t.Helper()
	var r trust.Roots
	for _, k := range ks {
		r.Keys = append(r.Keys, k.key)
	}
	_, err := bundle.VerifyDir(context.Background(), dir, bundle.VerifyOptions{Roots: &r, Now: t0.Add(time.Hour),
		VerifyChecksums: true, VerifyDSSE: true})
	return err
}

func readAll(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestResign(t *testing.T) {
	ks := testKeys(t)
	tmp := t.TempDir()
	stmt := filepath.Join(tmp, "keys-rotation-x.json")
	if err := os.WriteFile(stmt, envelopeOf(t, rotateDoc(t, ks.k1, ks.k2), ks.k1, ks.k2), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := exportBundle(t, tmp, ks.k1, stmt)
	before := readAll(t, dir)

	res, err := Resign(context.Background(), ResignOptions{Dir: dir, Signer: ks.k3.signer(t), KeepSignatures: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyWith(t, dir, ks.k3); err != nil {
		t.Fatalf("re-signed bundle does not verify with the new key: %v", err)
	}
	if err := verifyWith(t, dir, ks.k1); err == nil {
		t.Fatal("re-signed bundle still verifies with the old key alone")
	}
	after := readAll(t, dir)
	var changed []string
	for p, b := range before {
		if !bytes.Equal(after[p], b) {
			changed = append(changed, p)
		}
	}
	if len(after) != len(before) {
		t.Fatalf("%d files before, %d after", len(before), len(after))
	}
	for _, p := range changed {
		switch {
		case p == bundle.ManifestFile, p == bundle.EnvelopeFile, p == bundle.ChecksumsFile, p == bundle.IndexPath,
			strings.HasSuffix(p, "/"+bundle.DomainJWSName), strings.HasSuffix(p, "/"+bundle.DomainSigName),
			strings.HasSuffix(p, "/"+bundle.DomainManifestName):
		default:
			t.Errorf("content file %s changed", p)
		}
	}
	if len(changed) != len(res.Rewritten) {
		t.Errorf("changed %v, reported %v", changed, res.Rewritten)
	}
	// The old signatures could not be kept: mirror.json changed.
	if len(res.KeptSignatures) != 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "were dropped") {
		t.Fatalf("kept %v, warnings %q", res.KeptSignatures, res.Warnings)
	}
	var m bundle.Manifest
	var idx bundle.Index
	if err := readDocument(dir, bundle.ManifestFile, &m); err != nil {
		t.Fatal(err)
	}
	if err := readDocument(dir, bundle.IndexPath, &idx); err != nil {
		t.Fatal(err)
	}
	if m.ExportID != "20260301T000000Z" || m.Sequence != 1 || len(m.Rotations) != 1 || idx.Domains[0].Signature.Kid != ks.k3.key.ID || idx.Domains[0].Signature.Alg != "ES384" {
		t.Fatalf("manifest %+v / index signature %+v", m, idx.Domains[0].Signature)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("left-overs beside the bundle: %v", entries)
	}
}

func TestResignKeepSignatures(t *testing.T) {
	ks := testKeys(t)
	ctx := context.Background()
	dir := exportBundle(t, t.TempDir(), ks.k1)
	// A co-signer adds its signature to the envelope (a threshold of two).
	manifest, _ := os.ReadFile(filepath.Join(dir, bundle.ManifestFile))
	env, err := sign.SignDSSE(ctx, bundle.PayloadType, manifest, ks.k1.signer(t), ks.k4.signer(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.EnvelopeFile), env, 0o644); err != nil {
		t.Fatal(err)
	}
	m := mustManifest(t, dir)
	files := append(m.Files, bundle.FileEntry{Path: bundle.ManifestFile, SHA256: bundle.HashBytes(manifest).SHA256},
		bundle.FileEntry{Path: bundle.EnvelopeFile, SHA256: bundle.HashBytes(env).SHA256})
	if err := os.WriteFile(filepath.Join(dir, bundle.ChecksumsFile), bundle.FormatChecksums(files), 0o644); err != nil {
		t.Fatal(err)
	}

	// The same key signs the same bytes: mirror.json does not change and
	// the co-signature stays.
	res, err := Resign(ctx, ResignOptions{Dir: dir, Signer: ks.k1.signer(t), KeepSignatures: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KeptSignatures) != 1 || res.KeptSignatures[0] != ks.k4.key.ID {
		t.Fatalf("kept %v", res.KeptSignatures)
	}
	got, _ := os.ReadFile(filepath.Join(dir, bundle.EnvelopeFile))
	if _, err := sign.VerifyDSSE(got, bundle.PayloadType, roots(ks.k1.key, ks.k4.key), t0, 2); err != nil {
		t.Fatalf("threshold of two lost: %v", err)
	}
	// Without --keep-signatures only the new signature remains.
	if _, err := Resign(ctx, ResignOptions{Dir: dir, Signer: ks.k1.signer(t)}); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(filepath.Join(dir, bundle.EnvelopeFile))
	if e, _ := sign.ParseEnvelope(got); len(e.Signatures) != 1 {
		t.Fatalf("%d signatures", len(e.Signatures))
	}
	if err := verifyWith(t, dir, ks.k1); err != nil {
		t.Fatal(err)
	}
}

func mustManifest(t testing.TB, dir string) bundle.Manifest {
	t.Helper()
	var m bundle.Manifest
	if err := readDocument(dir, bundle.ManifestFile, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResignRefuses(t *testing.T) {
	ks := testKeys(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		opts   ResignOptions
		want   string
		code   int
	}{
		{"changed content", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "mirror", "primary", "vex", "openvex", "2026-03.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, ' '), 0o644)
		}, ResignOptions{}, "does not match its mirror.json", failure.ExitVerification},
		{"extra file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "mirror", "extra.json"), []byte("{}"), 0o644)
		}, ResignOptions{}, "not listed in mirror.json", failure.ExitVerification},
		{"missing file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "mirror", "community", "bundle.json.sig"))
		}, ResignOptions{}, "missing", failure.ExitVerification},
		{"re-encoded manifest", func(t *testing.T, dir string) {
			p := filepath.Join(dir, bundle.ManifestFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte("  "), []byte("   "), 1), 0o644)
		}, ResignOptions{}, "not in the encoding", failure.ExitVerification},
		{"does not verify against the given roots", func(t *testing.T, dir string) {}, ResignOptions{Roots: roots(ks.k2.key), Now: t0.Add(time.Hour)},
			"does not verify against --trust-roots", failure.ExitVerification},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			dir := exportBundle(t, tmp, ks.k1)
			tt.tamper(t, dir)
			fp := testutil.Fingerprint(t, filepath.Dir(dir))
			tt.opts.Dir, tt.opts.Signer = dir, ks.k2.signer(t)
			_, err := Resign(ctx, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || failure.Code(err) != tt.code {
				t.Fatalf("error %v (exit %d), want %q with exit %d", err, failure.Code(err), tt.want, tt.code)
			}
			testutil.AssertUnchanged(t, filepath.Dir(dir), fp)
		})
	}

	// An export inside an export root is never modified.
	tmp := t.TempDir()
	dir := exportBundle(t, tmp, ks.k1)
	os.Mkdir(filepath.Join(filepath.Dir(dir), ".stellaops"), 0o755)
	if _, err := Resign(ctx, ResignOptions{Dir: dir, Signer: ks.k2.signer(t)}); err == nil || !strings.Contains(err.Error(), "inside an export root") {
		t.Fatalf("export root: %v", err)
	}
	// A link to a bundle (ROOT/latest) is refused.
	link := filepath.Join(tmp, "latest")
	os.Symlink(dir, link)
	if _, err := Resign(ctx, ResignOptions{Dir: link, Signer: ks.k2.signer(t)}); err == nil || !errors.Is(err, failure.ErrUsage) {
		t.Fatalf("symlink: %v", err)
	}
}
