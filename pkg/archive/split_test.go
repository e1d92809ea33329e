package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

const testPartSize = 64 << 10

// writeSplitSet writes bundleFiles as a split set and returns its folder,
// the manifest and the single-archive bytes it must concatenate to.
func writeSplitSet(t testing.TB, comp string) (string, *PartsManifest, []byte) {
	t.Helper()
	src := writeTree(t, bundleFiles())
	out := t.TempDir()
	name := "bundle.tar.zst"
	if comp == CompressionGzip {
		name = "bundle.tar.gz"
	}
	m, err := WriteSplit(context.Background(), src, WriteOptions{ModTime: testModTime}, SplitOptions{
		Dir:         out,
		Name:        name,
		PartSize:    testPartSize,
		ExportID:    "20250314T150926Z",
		GeneratedAt: testModTime,
		Sign:        testSign,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, m, archiveBytes(t, src, comp)
}

func TestSplitRoundTrip(t *testing.T) {
	for _, comp := range []string{CompressionZstd, CompressionGzip} {
		t.Run(comp, func(t *testing.T) {
			dir, m, whole := writeSplitSet(t, comp)
			if len(m.Parts) < 3 {
				t.Fatalf("only %d parts; the test bundle should need several", len(m.Parts))
			}
			var cat []byte
			for i, p := range m.Parts {
				data, err := os.ReadFile(filepath.Join(dir, p.Name))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(data)
				switch {
				case p.Index != i+1 || p.Name != fmt.Sprintf("%s.part-%04d", m.Archive, i+1):
					t.Errorf("part %d: %+v", i, p)
				case int64(len(data)) != p.Size || hex.EncodeToString(sum[:]) != p.SHA256:
					t.Errorf("part %d: size or digest wrong", p.Index)
				case i < len(m.Parts)-1 && p.Size != testPartSize:
					t.Errorf("part %d: size %d", p.Index, p.Size)
				}
				cat = append(cat, data...)
			}
			if !bytes.Equal(cat, whole) {
				t.Fatal("the parts do not concatenate to the single archive")
			}
			sum := sha256.Sum256(whole)
			if m.SHA256 != hex.EncodeToString(sum[:]) || m.TotalSize != int64(len(whole)) || m.Compression != comp || m.PartSize != testPartSize {
				t.Fatalf("manifest: %+v", m)
			}

			want := append([]string{}, m.Archive+".parts.dsse.json", m.Archive+".parts.json")
			for _, p := range m.Parts {
				want = append(want, p.Name)
			}
			if got := listTree(t, dir); strings.Join(got, " ") != strings.Join(sortedCopy(want), " ") {
				t.Fatalf("files: %v\nwant %v", got, sortedCopy(want))
			}

			raw, err := os.ReadFile(filepath.Join(dir, m.Archive+".parts.json"))
			if err != nil {
				t.Fatal(err)
			}
			env, err := os.ReadFile(filepath.Join(dir, m.Archive+".parts.dsse.json"))
			if err != nil {
				t.Fatal(err)
			}
			payload, err := testVerify(PartsPayloadType, env)
			if err != nil || !bytes.Equal(payload, raw) {
				t.Fatalf("envelope payload differs from the manifest: %v", err)
			}

			files := bundleFiles()
			for _, path := range []string{
				filepath.Join(dir, m.Archive+".parts.json"),
				filepath.Join(dir, m.Archive+".parts.dsse.json"),
				filepath.Join(dir, m.Parts[0].Name),
				filepath.Join(dir, m.Parts[len(m.Parts)-1].Name),
				filepath.Join(dir, m.Archive), // only the split set exists
			} {
				src, err := Open(context.Background(), path, nil, testOpen)
				if err != nil {
					t.Fatalf("Open(%s): %v", path, err)
				}
				if src.Parts == nil || !src.PartsSigned || src.Compression != comp {
					t.Errorf("Open(%s): parts %v signed %v compression %s", path, src.Parts != nil, src.PartsSigned, src.Compression)
				}
				got, _, err := readAll(t, src, Limits{})
				src.Close()
				if err != nil {
					t.Fatalf("Walk via %s: %v", path, err)
				}
				checkFiles(t, got, files)
			}

			// A plain concatenation of the parts on stdin.
			src, err := openBytes(t, cat)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := readAll(t, src, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			checkFiles(t, got, files)
		})
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

func checkFiles(t testing.TB, got, want map[string][]byte) {
	t.Helper()
	n := 0
	for name, data := range got {
		if data == nil {
			continue
		}
		n++
		if !bytes.Equal(data, want[name]) {
			t.Errorf("%s: contents differ", name)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("%s: missing", name)
		}
	}
	if n != len(want) {
		t.Errorf("%d files, want %d", n, len(want))
	}
}

func TestPartsManifestFormat(t *testing.T) {
	m := &PartsManifest{
		SchemaVersion: 1,
		Archive:       "b.tar.zst",
		Compression:   "zstd",
		TotalSize:     5,
		SHA256:        strings.Repeat("a", 64),
		PartSize:      4,
		Parts: []Part{
			{Name: "b.tar.zst.part-0001", Index: 1, Size: 4, SHA256: strings.Repeat("b", 64)},
			{Name: "b.tar.zst.part-0002", Index: 2, Size: 1, SHA256: strings.Repeat("c", 64)},
		},
		ExportID:    "20250314T150926Z",
		GeneratedAt: testModTime.Add(123 * time.Millisecond).In(time.FixedZone("X", -7200)),
	}
	got, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "schemaVersion": 1,
  "archive": "b.tar.zst",
  "compression": "zstd",
  "totalSize": 5,
  "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "partSize": 4,
  "parts": [
    {
      "name": "b.tar.zst.part-0001",
      "index": 1,
      "size": 4,
      "sha256": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    },
    {
      "name": "b.tar.zst.part-0002",
      "index": 2,
      "size": 1,
      "sha256": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
    }
  ],
  "exportId": "20250314T150926Z",
  "generatedAt": "2025-03-14T15:09:26Z"
}
`
	if string(got) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	back, err := parsePartsManifest(got, "b.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.Marshal()
	if !bytes.Equal(again, got) {
		t.Fatal("manifest does not survive a round trip")
	}
}

func TestParsePartsManifestRefuses(t *testing.T) {
	good := func() string {
		m := &PartsManifest{
			SchemaVersion: 1, Archive: "b.tar.zst", Compression: "zstd", TotalSize: 5,
			SHA256: strings.Repeat("a", 64), PartSize: 4,
			Parts: []Part{
				{Name: "b.tar.zst.part-0001", Index: 1, Size: 4, SHA256: strings.Repeat("b", 64)},
				{Name: "b.tar.zst.part-0002", Index: 2, Size: 1, SHA256: strings.Repeat("c", 64)},
			},
			ExportID: "20250314T150926Z", GeneratedAt: testModTime,
		}
		b, _ := m.Marshal()
		return string(b)
	}()
	cases := map[string]struct{ from, to, want string }{
		"duplicate key":   {`"archive": "b.tar.zst",`, `"archive": "b.tar.zst", "archive": "b.tar.zst",`, `duplicate key "archive"`},
		"case twin":       {`"partSize": 4,`, `"partSize": 4, "PartSize": 4,`, `keys "partSize" and "PartSize" differ only by case`},
		"schema":          {`"schemaVersion": 1`, `"schemaVersion": 2`, `unsupported schemaVersion 2`},
		"renamed":         {`"archive": "b.tar.zst"`, `"archive": "c.tar.zst"`, `the parts manifest describes "c.tar.zst", not "b.tar.zst"`},
		"compression":     {`"compression": "zstd"`, `"compression": "xz"`, `unknown compression "xz"`},
		"index":           {`"index": 2`, `"index": 3`, `parts[1] has index 3`},
		"path in name":    {`"name": "b.tar.zst.part-0002"`, `"name": "../b.tar.zst.part-0002"`, `part 2 is named "../b.tar.zst.part-0002", expected b.tar.zst.part-0002`},
		"short middle":    {`"size": 4`, `"size": 3`, `part 1 has size 3, but only the last part may be smaller than 4`},
		"oversized part":  {`"size": 1`, `"size": 5`, `part 2 has size 5`},
		"total":           {`"totalSize": 5`, `"totalSize": 6`, `parts add up to 5 bytes, totalSize is 6`},
		"digest":          {`"sha256": "aaaa`, `"sha256": "AAAA`, `sha256 is not 64 lowercase hex digits`},
		"trailing":        {"", "{}", `data after the JSON value`},
		"zero part size":  {`"partSize": 4`, `"partSize": 0`, `partSize 0`},
		"not json":        {`{`, `[`, `invalid character ':' after array element`},
		"negative size":   {`"size": 1`, `"size": -1`, `part 2 has size -1`},
		"part digest hex": {`"sha256": "cccc`, `"sha256": "zzzz`, `part 2: sha256 is not 64 lowercase hex digits`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			data := good + tc.to
			if tc.from != "" {
				data = strings.Replace(good, tc.from, tc.to, 1)
			}
			if data == good {
				t.Fatal("replacement did not apply")
			}
			_, err := parsePartsManifest([]byte(data), "b.tar.zst")
			if !errors.Is(err, ErrParts) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestSplitWriterBoundaries writes streams of exact multiples of the part
// size and checks no empty part appears.
func TestSplitWriterBoundaries(t *testing.T) {
	for _, size := range []int{1, 99, 100, 101, 300, 301} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			sw, err := NewSplitWriter(SplitOptions{Dir: dir, Name: "x.tar.gz", PartSize: 100, Sign: testSign})
			if err != nil {
				t.Fatal(err)
			}
			defer sw.Close()
			data := bytes.Repeat([]byte{7}, size)
			// Odd write sizes cross part boundaries inside one Write.
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 37)
				if _, err := sw.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			m, err := sw.Commit()
			if err != nil {
				t.Fatal(err)
			}
			if want := (size + 99) / 100; len(m.Parts) != want {
				t.Fatalf("%d parts, want %d", len(m.Parts), want)
			}
			last := m.Parts[len(m.Parts)-1]
			if last.Size == 0 || m.TotalSize != int64(size) || m.Compression != CompressionGzip {
				t.Fatalf("manifest %+v", m)
			}
			if err := sw.Close(); err != nil {
				t.Fatal(err)
			}
			if got := len(listTree(t, dir)); got != len(m.Parts)+2 {
				t.Fatalf("%d files after Close", got)
			}
		})
	}
}

func TestSplitFailureLeavesNothing(t *testing.T) {
	t.Run("signer fails", func(t *testing.T) {
		src := writeTree(t, bundleFiles())
		out := t.TempDir()
		_, err := WriteSplit(context.Background(), src, WriteOptions{}, SplitOptions{
			Dir: out, Name: "b.tar.zst", PartSize: testPartSize,
			Sign: func(string, []byte) ([]byte, error) { return nil, errors.New("key locked") },
		})
		if err == nil || err.Error() != "sign b.tar.zst.parts.json: key locked" {
			t.Fatalf("err = %v", err)
		}
		if got := listTree(t, out); len(got) != 0 {
			t.Fatalf("left behind: %v", got)
		}
	})
	t.Run("source refused midway", func(t *testing.T) {
		src := writeTree(t, bundleFiles())
		if err := os.Symlink("x", filepath.Join(src, "zzz")); err != nil {
			t.Skip(err)
		}
		out := t.TempDir()
		_, err := WriteSplit(context.Background(), src, WriteOptions{}, SplitOptions{Dir: out, Name: "b.tar.zst", PartSize: 1000, Sign: testSign})
		if !errors.Is(err, ErrUnsupportedSource) {
			t.Fatalf("err = %v", err)
		}
		if got := listTree(t, out); len(got) != 0 {
			t.Fatalf("left behind: %v", got)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		src := writeTree(t, bundleFiles())
		out := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		sw, err := NewSplitWriter(SplitOptions{Dir: out, Name: "b.tar.zst", PartSize: 1000, Sign: testSign})
		if err != nil {
			t.Fatal(err)
		}
		w := &cancelAfter{w: sw, n: 5000, cancel: cancel}
		err = Write(ctx, w, src, WriteOptions{})
		if failure.Code(err) != failure.ExitInterrupted {
			t.Fatalf("err = %v", err)
		}
		if got := listTree(t, out); len(got) == 0 {
			t.Fatal("expected temporary parts before Close")
		}
		for _, name := range listTree(t, out) {
			if !strings.HasPrefix(name, ".") {
				t.Fatalf("a visible file before commit: %s", name)
			}
		}
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		if got := listTree(t, out); len(got) != 0 {
			t.Fatalf("left behind: %v", got)
		}
		if _, err := sw.Commit(); err == nil {
			t.Fatal("Commit after Close succeeded")
		}
	})
	t.Run("existing set", func(t *testing.T) {
		out := t.TempDir()
		stale := filepath.Join(out, "b.tar.zst.part-0007")
		if err := os.WriteFile(stale, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := NewSplitWriter(SplitOptions{Dir: out, Name: "b.tar.zst", PartSize: 10, Sign: testSign})
		if failure.Code(err) != failure.ExitUsage || !strings.Contains(err.Error(), "b.tar.zst.part-0007 already exists") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []SplitOptions{
			{Name: "", PartSize: 10, Sign: testSign},
			{Name: "a/b.tar.zst", PartSize: 10, Sign: testSign},
			{Name: ".b.tar.zst", PartSize: 10, Sign: testSign},
			{Name: "b.tar.zst", PartSize: 0, Sign: testSign},
			{Name: "b.tar.zst", PartSize: 10},
			{Name: "b.bin", PartSize: 10, Sign: testSign},
			{Name: "b.bin", PartSize: 10, Sign: testSign, Compression: "lz4"},
		} {
			o.Dir = t.TempDir()
			if _, err := NewSplitWriter(o); failure.Code(err) != failure.ExitUsage {
				t.Errorf("%+v: %v", o, err)
			}
		}
	})
}

type cancelAfter struct {
	w      interface{ Write([]byte) (int, error) }
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.n -= len(p)
	if c.n <= 0 {
		c.cancel()
	}
	return c.w.Write(p)
}

var partNameRE = regexp.MustCompile(`^b\.tar\.zst\.part-\d{4}$`)

func TestPartNames(t *testing.T) {
	for i, want := range map[int]string{1: "b.tar.zst.part-0001", 42: "b.tar.zst.part-0042", 9999: "b.tar.zst.part-9999", 10000: "b.tar.zst.part-10000"} {
		if got := partName("b.tar.zst", i); got != want {
			t.Errorf("partName(%d) = %s", i, got)
		}
		a, idx, ok := splitPartName(want)
		if !ok || a != "b.tar.zst" || idx != i {
			t.Errorf("splitPartName(%s) = %s %d %v", want, a, idx, ok)
		}
	}
	if !partNameRE.MatchString(partName("b.tar.zst", 3)) {
		t.Error("part name pattern")
	}
}
