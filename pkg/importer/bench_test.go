package importer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// keysDir holds the TEST-ONLY keys of testdata/keys.
const keysDir = "../../testdata/keys"

var benchCreated = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// benchShapes are the bundles imported: many small VEX files, and a few
// large ones, 64 MiB in all.
var benchShapes = []struct {
	name  string
	files int
}{
	{"vex-512x128KiB", 512},
	{"vex-4x16MiB", 4},
}

// benchBundle exports a bundle of files VEX documents totalling 64 MiB,
// signed with the TEST-ONLY ES256 key, and returns its folder and size.
func benchBundle(b *testing.B, files int) (string, int64) {
	b.Helper()
	src := filepath.Join(b.TempDir(), "src")
	vex := filepath.Join(src, "bench", "vex", "openvex")
	if err := os.MkdirAll(vex, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	size := (64 << 20) / files
	for i := range files {
		doc := fmt.Appendf(nil, `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://vex.example/%d", "timestamp": "2026-01-02T03:04:05Z", "statements": [], "pad": "`, i)
		for len(doc) < size-3 {
			doc = append(doc, "0123456789abcdef"[rng.IntN(16)])
		}
		doc = append(doc, "\"}\n"...)
		if err := os.WriteFile(filepath.Join(vex, fmt.Sprintf("doc-%05d.json", i)), doc, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	signer, err := sign.LoadSigner(filepath.Join(keysDir, "es256.pem"), "", "", nil)
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "bundle")
	res, err := bundle.Export(context.Background(), bundle.ExportOptions{Source: src, Out: out, Signer: signer, Created: benchCreated, Sequence: 1})
	if err != nil {
		b.Fatal(err)
	}
	return out, res.Bytes
}

func benchRoots(b *testing.B) *trust.Roots {
	b.Helper()
	roots, err := trust.LoadFile(filepath.Join(keysDir, "es256.pub"))
	if err != nil {
		b.Fatal(err)
	}
	return roots
}

// Every iteration writes into a new folder and the folders are removed at
// the end: on ext4 without a journal, creating files right after deleting
// as many makes the allocator skip every recently freed inode, which would
// charge the benchmark's own clean-up to the next iteration.

// BenchmarkFolderStager measures the staging copy alone: copy, SHA-256 of
// every file, name checks.
func BenchmarkFolderStager(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) {
			src, total := benchBundle(b, s.files)
			stage := FolderStager(src)
			parent := b.TempDir()
			b.SetBytes(total)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				dir := filepath.Join(parent, fmt.Sprint(i))
				i++
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				if _, err := stage(context.Background(), dir, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkImport measures a whole import into an empty export root:
// staging copy, verification, fsync of every file and folder, activation.
func BenchmarkImport(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) {
			src, total := benchBundle(b, s.files)
			roots := benchRoots(b)
			parent := b.TempDir()
			b.SetBytes(total)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				root := filepath.Join(parent, fmt.Sprint(i))
				i++
				_, err := Import(context.Background(), Options{
					BundlePath: src, Stage: FolderStager(src), ExportRoot: root, TrustRoots: roots,
					VerifyChecksums: true, VerifyDSSE: true, Now: benchCreated.Add(time.Hour),
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
