package archive

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// benchTree writes a bundle-like tree of about STELLAOPS_BENCH_MIB MiB
// (default 256): a few large domain bundles of compressible JSON, many
// small VEX files and a mirror.json that lists them (Extract derives its
// limits from it). It returns the folder and its total size.
func benchTree(b *testing.B) (string, int64) {
	b.Helper()
	mib := 256
	if v, err := strconv.Atoi(os.Getenv("STELLAOPS_BENCH_MIB")); err == nil && v > 0 {
		mib = v
	}
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	var total int64
	var listed []bundle.FileEntry
	write := func(name string, size int64) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		var n int64
		for n < size {
			line := fmt.Sprintf(`{"id":"CVE-%d-%05d","severity":%d,"summary":"%016x%016x"},`+"\n", 2000+rng.IntN(26), rng.IntN(100000), rng.IntN(10), rng.Uint64(), rng.Uint64())
			m, _ := w.WriteString(line)
			n += int64(m)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		total += n
		listed = append(listed, bundle.FileEntry{Path: name, Size: n})
	}
	small := int64(mib) << 20 / 10
	for i := range 500 {
		write(fmt.Sprintf("mirror/d%d/vex/export-%04d.json", i%4, i), small/500)
	}
	for i := range 4 {
		write(fmt.Sprintf("mirror/d%d/bundle.json", i), (int64(mib)<<20-small)/4)
	}
	m, err := json.Marshal(bundle.Manifest{SchemaVersion: 1, ExportID: "20250314T150926Z", GeneratedAt: testModTime, Files: listed})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.ManifestFile), m, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir, total + int64(len(m))
}

func benchArchive(b *testing.B, comp string) (string, int64) {
	b.Helper()
	dir, total := benchTree(b)
	p := filepath.Join(b.TempDir(), "bench.tar."+map[string]string{CompressionZstd: "zst", CompressionGzip: "gz"}[comp])
	if err := WriteFile(context.Background(), p, dir, WriteOptions{ModTime: testModTime}); err != nil {
		b.Fatal(err)
	}
	return p, total
}

func BenchmarkWrite(b *testing.B) {
	for _, comp := range []string{CompressionZstd, CompressionGzip} {
		b.Run(comp, func(b *testing.B) {
			dir, total := benchTree(b)
			b.SetBytes(total)
			b.ResetTimer()
			for b.Loop() {
				if err := Write(context.Background(), io.Discard, dir, WriteOptions{Compression: comp, ModTime: testModTime}); err != nil {
					b.Fatal(err)
				}
			}
			reportRSS(b)
		})
	}
}

func BenchmarkWalk(b *testing.B) {
	for _, comp := range []string{CompressionZstd, CompressionGzip} {
		b.Run(comp, func(b *testing.B) {
			p, total := benchArchive(b, comp)
			b.SetBytes(total)
			buf := make([]byte, 256<<10)
			b.ResetTimer()
			for b.Loop() {
				src, err := Open(context.Background(), p, nil, OpenOptions{})
				if err != nil {
					b.Fatal(err)
				}
				// Hash every file, as a verify does.
				err = src.Walk(context.Background(), Limits{}, func(e EntryInfo, r io.Reader) error {
					h := sha256.New()
					_, err := io.CopyBuffer(h, r, buf)
					return err
				})
				src.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
			reportRSS(b)
		})
	}
}

// benchExtractArchive returns the archive BenchmarkExtract reads: the
// .tar.zst named by STELLAOPS_BENCH_ARCHIVE (for example one written by
// mirror export --archive from bench data), else a generated one.
func benchExtractArchive(b *testing.B) (string, int64) {
	b.Helper()
	p := os.Getenv("STELLAOPS_BENCH_ARCHIVE")
	if p == "" {
		return benchArchive(b, CompressionZstd)
	}
	src, err := Open(context.Background(), p, nil, OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var total int64
	err = src.Walk(context.Background(), Limits{}, func(e EntryInfo, r io.Reader) error {
		total += e.Size
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return p, total
}

func BenchmarkExtract(b *testing.B) {
	p, total := benchExtractArchive(b)
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		out := b.TempDir()
		root, err := os.OpenRoot(out)
		if err != nil {
			b.Fatal(err)
		}
		src, err := Open(context.Background(), p, nil, OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		_, err = Extract(context.Background(), src, root, Limits{})
		b.StopTimer()
		src.Close()
		root.Close()
		if err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(out)
		b.StartTimer()
	}
	reportRSS(b)
}

// BenchmarkVerify verifies the archive named by STELLAOPS_BENCH_ARCHIVE
// against the public key STELLAOPS_BENCH_ROOTS at STELLAOPS_BENCH_NOW.
func BenchmarkVerify(b *testing.B) {
	p, roots, now := os.Getenv("STELLAOPS_BENCH_ARCHIVE"), os.Getenv("STELLAOPS_BENCH_ROOTS"), os.Getenv("STELLAOPS_BENCH_NOW")
	if p == "" || roots == "" || now == "" {
		b.Skip("set STELLAOPS_BENCH_ARCHIVE, STELLAOPS_BENCH_ROOTS and STELLAOPS_BENCH_NOW")
	}
	r, err := trust.LoadFile(roots)
	if err != nil {
		b.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, now)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		src, err := Open(context.Background(), p, nil, OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		_, err = Verify(context.Background(), src, bundle.VerifyOptions{Roots: r, Now: at, VerifyChecksums: true, VerifyDSSE: true})
		src.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRSS(b)
}
