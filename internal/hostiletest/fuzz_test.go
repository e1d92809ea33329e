//go:build unix

package hostiletest

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/rotation"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

func readTree(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	t := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		t[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// FuzzVerifyMutatedBundle replaces one file of a signed bundle (or adds
// it; a name starting with "-" removes it) and verifies the result in
// memory. Whatever the change, verification must not panic, must refuse
// with exit 2 or 3, and may only accept a bundle whose mirror.json and
// listed files are the signed ones, byte for byte (SHA256SUMS and the
// envelope are not content: an equivalent rewrite of them may pass).
// Seeds are the single-file changes of the corpus's bundle folders.
func FuzzVerifyMutatedBundle(f *testing.F) {
	base := readTree(f, filepath.Join(corpusDir, "base", "seq10"))
	roots, err := trust.LoadFile(filepath.Join(corpusDir, "roots", "es256.pem"))
	if err != nil {
		f.Fatal(err)
	}
	cases, _ := filepath.Glob(filepath.Join(corpusDir, "cases", "*", bundle.ManifestFile))
	for _, m := range cases {
		t := readTree(f, filepath.Dir(m))
		var changed []string
		for name, data := range t {
			if b, ok := base[name]; !ok || !bytes.Equal(b, data) {
				changed = append(changed, name)
			}
		}
		for name := range base {
			if _, ok := t[name]; !ok {
				changed = append(changed, "-"+name)
			}
		}
		if len(changed) == 1 {
			name := changed[0]
			f.Add(name, t[strings.TrimPrefix(name, "-")])
		}
	}
	f.Add(bundle.IndexPath, base[bundle.IndexPath])
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		tree := make(map[string][]byte, len(base)+1)
		for k, v := range base {
			tree[k] = v
		}
		if rest, ok := strings.CutPrefix(name, "-"); ok {
			delete(tree, rest)
		} else {
			tree[name] = data
		}
		memfs := bundle.NewMemFS()
		digests := bundle.NewDigestSet(len(tree))
		for k, v := range tree {
			memfs.Add(k, int64(len(v)), v)
			digests.AddDigest(k, bundle.HashBytes(v))
		}
		rep, err := bundle.VerifyFS(context.Background(), memfs, "fuzz", bundle.VerifyOptions{
			Roots: roots, Now: now, VerifyChecksums: true, VerifyDSSE: true, Digests: digests, Rotate: rotation.Apply,
		})
		if err != nil {
			if c := failure.Code(err); c != failure.ExitVerification && c != failure.ExitPolicy {
				t.Fatalf("refused with exit %d: %v", c, err)
			}
			return
		}
		if !bytes.Equal(tree[bundle.ManifestFile], base[bundle.ManifestFile]) {
			t.Fatalf("accepted a changed mirror.json")
		}
		for _, fe := range rep.Manifest.Files {
			if !bytes.Equal(tree[fe.Path], base[fe.Path]) {
				t.Fatalf("accepted a changed %s", fe.Path)
			}
		}
		for k := range tree {
			if _, ok := base[k]; !ok {
				t.Fatalf("accepted an added %q", k)
			}
		}
	})
}
