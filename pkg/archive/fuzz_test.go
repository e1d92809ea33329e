package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

var fuzzEncoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	must(err)
	return e
})

// FuzzWalk feeds arbitrary streams to the reader. mode 0 passes the bytes
// as they are (compressed archives), 1 and 2 gzip or zstd them first so
// that mutations reach the tar parser. Whatever the input, the reader must
// not panic, must classify every refusal as a verification failure, and
// must only ever hand out safe, distinct names with exact sizes.
func FuzzWalk(f *testing.F) {
	for _, s := range seedArchives(f) {
		f.Add(s, uint8(0))
	}
	for _, s := range testutil.CorpusSeeds(f, "../..", "cases/*.tar.*", 64<<10) {
		f.Add(s, uint8(0))
	}
	for _, pieces := range [][]tarPiece{
		withPrefix(),
		withPrefix(tfile("mirror/a.json", "{}"), tdir("mirror/b/")),
		withPrefix(tarPiece{hdr: &tar.Header{Typeflag: tar.TypeSymlink, Name: "mirror/l", Linkname: "/x"}}),
		{tdir("./"), tfile("./a", "x")},
	} {
		f.Add(buildTar(pieces, true), uint8(1))
		f.Add(buildTar(pieces, true), uint8(2))
	}
	if names, _ := filepath.Glob(filepath.Join(fixtureDir, "*.tar.*")); len(names) > 0 {
		for _, name := range names {
			if data, err := os.ReadFile(name); err == nil && len(data) <= 64<<10 {
				f.Add(data, uint8(0))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		switch mode % 3 {
		case 1:
			var buf bytes.Buffer
			w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			w.Write(data)
			w.Close()
			data = buf.Bytes()
		case 2:
			data = fuzzEncoder().EncodeAll(data, nil)
		}
		src, err := Open(context.Background(), "-", bytes.NewReader(data), OpenOptions{})
		if err != nil {
			if failure.Code(err) != failure.ExitVerification {
				t.Fatalf("Open: unclassified error %v", err)
			}
			return
		}
		defer src.Close()
		seen := map[string]bool{}
		limits := Limits{MaxEntries: 1000, MaxBytes: 16 << 20, MaxWindow: 16 << 20}
		err = src.Walk(context.Background(), limits, func(e EntryInfo, r io.Reader) error {
			if reason := checkName(e.Name); reason != "" {
				t.Fatalf("unsafe name %q reached fn: %s", e.Name, reason)
			}
			key := foldKey(e.Name)
			if seen[key] {
				t.Fatalf("colliding name %q reached fn", e.Name)
			}
			seen[key] = true
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				return err
			}
			if n != e.Size {
				t.Fatalf("%s: read %d bytes, header says %d", e.Name, n, e.Size)
			}
			return nil
		})
		if err != nil && failure.Code(err) != failure.ExitVerification {
			t.Fatalf("Walk: unclassified error %v", err)
		}
		var ee *EntryError
		if errors.As(err, &ee) && ee.Err == nil {
			t.Fatalf("entry error without a class: %v", err)
		}
	})
}

// FuzzPartsManifest checks the parts manifest parser never panics and
// classifies every refusal.
func FuzzPartsManifest(f *testing.F) {
	good, _ := (&PartsManifest{
		SchemaVersion: 1, Archive: "b.tar.zst", Compression: "zstd", TotalSize: 5,
		SHA256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", PartSize: 4,
		Parts: []Part{
			{Name: "b.tar.zst.part-0001", Index: 1, Size: 4, SHA256: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},
			{Name: "b.tar.zst.part-0002", Index: 2, Size: 1, SHA256: "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"},
		},
	}).Marshal()
	f.Add(good)
	f.Add([]byte(`{"parts":[{"index":1},{"index":1}],"parts":[]}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parsePartsManifest(data, "b.tar.zst")
		if err != nil {
			if !errors.Is(err, ErrParts) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		var total int64
		for i, p := range m.Parts {
			if p.Index != i+1 || p.Name != partName("b.tar.zst", i+1) || p.Size <= 0 || p.Size > m.PartSize {
				t.Fatalf("accepted bad part %+v", p)
			}
			total += p.Size
		}
		if total != m.TotalSize {
			t.Fatal("accepted a wrong total")
		}
	})
}
