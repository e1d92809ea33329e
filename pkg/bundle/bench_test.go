package bundle

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchSource writes a source tree of one domain: advisories OSV-like
// documents (about 1.8 KiB each, the size of a vulndb entry) and vexMiB MiB
// of OpenVEX in files of 16 KiB to 4 MiB.
func benchSource(b *testing.B, advisories, vexMiB int) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "src")
	adv := filepath.Join(dir, "bench", "advisories")
	vex := filepath.Join(dir, "bench", "vex", "openvex")
	for _, d := range []string{adv, vex} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range advisories {
		doc := fmt.Sprintf(`{
  "schema_version": "1.3.1",
  "id": "GO-%d-%04d",
  "modified": "2026-01-01T00:00:00Z",
  "published": "2025-04-14T20:04:52Z",
  "aliases": ["CVE-%d-%05d", "GHSA-%04x-%04x-%04x"],
  "summary": "Denial of service in example.com/module%d when parsing crafted input",
  "details": "A crafted request body can make the parser allocate without bound. The fix limits the size of what is read into memory and adds a deadline to every request handled by the package.",
  "affected": [
    {
      "package": {"name": "example.com/module%d", "ecosystem": "Go"},
      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.%d.%d"}]}],
      "ecosystem_specific": {"imports": [{"path": "example.com/module%d/parse", "symbols": ["Decoder.Decode", "Parse", "ParseReader"]}]}
    }
  ],
  "references": [
    {"type": "FIX", "url": "https://example.com/module%d/commit/%016x"},
    {"type": "REPORT", "url": "https://example.com/module%d/issues/%d"}
  ],
  "database_specific": {"url": "https://pkg.go.dev/vuln/GO-%d-%04d", "review_status": "REVIEWED"}
}
`, 2020+i/10000, i%10000, 2020+rng.IntN(6), rng.IntN(100000), rng.Uint32()&0xffff, rng.Uint32()&0xffff, rng.Uint32()&0xffff,
			i, i, rng.IntN(30), rng.IntN(20), i, i, rng.Uint64(), i, rng.IntN(5000), 2020+i/10000, i%10000)
		if err := os.WriteFile(filepath.Join(adv, fmt.Sprintf("GO-%06d.json", i)), []byte(doc), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var written int64
	for i := 0; written < int64(vexMiB)<<20; i++ {
		size := int64(16<<10) << rng.IntN(9) // 16 KiB .. 4 MiB
		f, err := os.Create(filepath.Join(vex, fmt.Sprintf("doc-%05d.json", i)))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		n, _ := fmt.Fprintf(w, `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://vex.example/%d", "author": "bench", "timestamp": "2026-01-02T03:04:05Z", "version": 1, "statements": [`, i)
		for j := 0; int64(n) < size; j++ {
			if j > 0 {
				w.WriteByte(',')
				n++
			}
			m, _ := fmt.Fprintf(w, "\n  {\"vulnerability\": {\"name\": \"CVE-%d-%d\"}, \"products\": [{\"@id\": \"pkg:golang/example.com/m%x@v1.%d.%d\"}], \"status\": \"not_affected\", \"justification\": \"vulnerable_code_not_in_execute_path\"}",
				2018+rng.IntN(9), rng.IntN(60000), rng.Uint32(), rng.IntN(30), rng.IntN(99))
			n += m
		}
		w.WriteString("\n]}\n")
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		written += int64(n)
	}
	return dir
}

func benchBundle(b *testing.B, advisories, vexMiB int) (string, int64) {
	b.Helper()
	out := exportTo(b, benchSource(b, advisories, vexMiB), testSigner(b, "es256", ""), testCreated, 1)
	var total int64
	err := filepath.Walk(out, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return out, total
}

var benchSizes = []struct {
	name               string
	advisories, vexMiB int
}{
	{"osv-5k", 5000, 0},
	{"osv-20k", 20000, 0},
	{"vex-64MiB", 100, 64},
}

// BenchmarkExport measures mirror export; bytes are the bundle's.
func BenchmarkExport(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			src := benchSource(b, s.advisories, s.vexMiB)
			signer := testSigner(b, "es256", "")
			parent := b.TempDir()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				out := filepath.Join(parent, fmt.Sprint(i))
				i++
				res, err := Export(context.Background(), ExportOptions{Source: src, Out: out, Signer: signer, Created: testCreated, Sequence: 1})
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(res.Bytes)
				b.StopTimer()
				os.RemoveAll(out)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkVerifyDir measures mirror verify of a bundle folder.
func BenchmarkVerifyDir(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			dir, total := benchBundle(b, s.advisories, s.vexMiB)
			opts := verifyOpts(testRoots(b, "es256"), testNow)
			b.SetBytes(total)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := VerifyDir(context.Background(), dir, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHashFile measures the streaming hash of one file, the unit of
// work of verify; compare with crypto/sha256's BenchmarkHash1M.
func BenchmarkHashFile(b *testing.B) {
	for _, size := range []int{16 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			p := filepath.Join(b.TempDir(), "f")
			if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := HashFile(p, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyDirEnv verifies the bundle folder named by
// STELLAOPS_BENCH_BUNDLE (signed by the TEST-ONLY es256 key, as bench/run's
// bundles are), for profiling a real bundle: go test -run '^$' -bench
// VerifyDirEnv -cpuprofile cpu.out -memprofile mem.out ./pkg/bundle
func BenchmarkVerifyDirEnv(b *testing.B) {
	dir := os.Getenv("STELLAOPS_BENCH_BUNDLE")
	if dir == "" {
		b.Skip("STELLAOPS_BENCH_BUNDLE is not set")
	}
	opts := VerifyOptions{Roots: testRoots(b, "es256"), VerifyChecksums: true, VerifyDSSE: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyDir(context.Background(), dir, opts); err != nil {
			b.Fatal(err)
		}
	}
}
