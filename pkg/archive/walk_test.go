package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

func TestCheckName(t *testing.T) {
	for name, want := range map[string]string{
		"mirror.json":                    "",
		"mirror/primary/vex/a-b_c.json":  "",
		"mirror/caf\u00e9.json":          "",
		"a/.hidden":                      "",
		"a/..b":                          "",
		"":                               "empty name",
		"/etc/passwd":                    "absolute name",
		"a/../b":                         `name contains ".."`,
		"..":                             `name contains ".."`,
		"a/..":                           `name contains ".."`,
		"./a":                            `name contains a "." component`,
		"a//b":                           "name has an empty component",
		"a/":                             "name has an empty component",
		"a\x00b":                         "name contains a NUL byte",
		`a\b`:                            "name contains a backslash",
		"a\nb":                           "name contains a control character",
		"a\x7fb":                         "name contains a control character",
		"a\xffb":                         "name is not valid UTF-8",
		strings.Repeat("a", 256):         "name component longer than 255 bytes",
		strings.Repeat("a/", 2049) + "a": "name longer than 4096 bytes",
	} {
		if got := checkName(name); got != want {
			t.Errorf("checkName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestNameSet(t *testing.T) {
	type add struct {
		name string
		dir  bool
		want string
	}
	cases := map[string][]add{
		"implicit then explicit folder": {{"a/b", false, ""}, {"a", true, ""}, {"a", true, "duplicate entry"}},
		"file then folder":              {{"a", false, ""}, {"a", true, "folder with the name of a regular file"}},
		"folder then file":              {{"a", true, ""}, {"a", false, "regular file with the name of a folder"}},
		"implicit folder then file":     {{"a/b", false, ""}, {"a", false, "regular file with the name of a folder"}},
		"inside a file":                 {{"a", false, ""}, {"a/b", false, `is inside "a", which is a regular file`}},
		"case":                          {{"A.json", false, ""}, {"a.json", false, `collides with "A.json" on file systems that ignore case or Unicode normalisation`}},
		"case of a parent":              {{"Dir/a", false, ""}, {"dir/b", false, `folder "dir" collides with "Dir" on file systems that ignore case or Unicode normalisation`}},
		"sharp s":                       {{"stra\u00dfe", false, ""}, {"STRASSE", false, `collides with "straße" on file systems that ignore case or Unicode normalisation`}},
		"kelvin":                        {{"k", false, ""}, {"\u212a", false, `collides with "k" on file systems that ignore case or Unicode normalisation`}},
		"nfd":                           {{"e\u0301", false, ""}, {"\u00e9", false, `collides with "e\u0301" on file systems that ignore case or Unicode normalisation`}},
		"distinct":                      {{"a", false, ""}, {"b", false, ""}, {"a-b/c", false, ""}, {"a.b", false, ""}},
	}
	for name, adds := range cases {
		t.Run(name, func(t *testing.T) {
			s := newNameSet()
			for _, a := range adds {
				if got := s.add(a.name, a.dir); got != a.want {
					t.Fatalf("add(%q, %v) = %q, want %q", a.name, a.dir, got, a.want)
				}
			}
		})
	}
}

func TestWalkRoundTrip(t *testing.T) {
	files := bundleFiles()
	dir := writeTree(t, files)
	for _, comp := range []string{CompressionZstd, CompressionGzip} {
		t.Run(comp, func(t *testing.T) {
			data := archiveBytes(t, dir, comp)
			p := filepath.Join(t.TempDir(), "bundle.tar.zst") // the name does not decide
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{p, "-"} {
				src, err := Open(context.Background(), path, bytes.NewReader(data), testOpen)
				if err != nil {
					t.Fatal(err)
				}
				if src.Compression != comp || src.Parts != nil {
					t.Errorf("compression %s parts %v", src.Compression, src.Parts)
				}
				got, order, err := readAll(t, src, Limits{})
				src.Close()
				if err != nil {
					t.Fatal(err)
				}
				checkFiles(t, got, files)
				if order[0] != "SHA256SUMS" || order[len(order)-1] != "mirror/primary/vex/openvex.json" {
					t.Errorf("order %v", order)
				}
			}
		})
	}
}

// TestWalkForeignTar accepts what GNU tar writes for `tar -C DIR -czf - .`:
// a "./" root entry, "./" prefixes and zero padding to the record size.
func TestWalkForeignTar(t *testing.T) {
	tarData := buildTar([]tarPiece{
		tdir("./"),
		tfile("./mirror.json", "{}"),
		tdir("./mirror/"),
		tfile("./mirror/index.json", "{}"),
	}, true)
	tarData = append(tarData, make([]byte, 10240-len(tarData)%10240)...)
	src, err := openBytes(t, gz(tarData))
	if err != nil {
		t.Fatal(err)
	}
	got, order, err := readAll(t, src, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, " ") != "mirror.json mirror mirror/index.json" || string(got["mirror/index.json"]) != "{}" {
		t.Fatalf("order %v", order)
	}

	// Concatenated gzip members are one stream.
	half := len(tarData) / 2
	src, err = openBytes(t, append(gz(tarData[:half]), gz(tarData[half:])...))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, src, Limits{}); err != nil {
		t.Fatal(err)
	}

	// Too much padding is refused.
	padded := append(bytes.Clone(tarData), make([]byte, 2<<20)...)
	src, err = openBytes(t, zst(padded))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = readAll(t, src, Limits{})
	if want := "corrupt archive: standard input: more than 1048576 bytes of padding after the end of the tar archive"; err == nil || err.Error() != want {
		t.Fatalf("err = %v", err)
	}
}

func TestWalkTruncatedMidEntry(t *testing.T) {
	data := archiveBytes(t, writeTree(t, bundleFiles()), CompressionZstd)
	src, err := openBytes(t, data[:len(data)*2/3])
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = readAll(t, src, Limits{})
	want := `corrupt archive: truncated: standard input ends in the middle of entry "mirror/primary/bundle.json"`
	if err == nil || err.Error() != want || failure.Code(err) != failure.ExitVerification {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestWalkSetLimits(t *testing.T) {
	files := bundleFiles()
	data := archiveBytes(t, writeTree(t, files), CompressionZstd)
	var manifest bundle.Manifest
	if err := jsonUnmarshal(files["mirror.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	exact := BundleLimits(manifest.Files, int64(len(files["mirror.json"])))

	walk := func(tighten Limits) error {
		src, err := openBytes(t, data)
		if err != nil {
			t.Fatal(err)
		}
		return src.Walk(context.Background(), Limits{}, func(e EntryInfo, r io.Reader) error {
			if e.Name == "mirror.json" {
				if err := src.SetLimits(tighten); err != nil {
					return err
				}
			}
			_, err := io.Copy(io.Discard, r)
			return err
		})
	}
	if err := walk(exact); err != nil {
		t.Fatalf("limits from the manifest refused the bundle: %v", err)
	}
	// Raising limits has no effect, zero fields are ignored.
	if err := walk(Limits{MaxEntries: 1 << 40, MaxBytes: 1 << 62}); err != nil {
		t.Fatal(err)
	}

	err := walk(Limits{MaxEntries: 10})
	want := `archive exceeds limit at entry "mirror/primary/bundle.json": more than 10 entries`
	if exact.MaxEntries != 9+5+64 || !errors.Is(err, ErrLimitExceeded) || err.Error() != want {
		t.Fatalf("limits %+v, err = %v", exact, err)
	}
	// Tightening below what was already read fails at once.
	err = walk(Limits{MaxEntries: 2})
	want = `archive exceeds limit at entry "mirror.json": more than 2 entries`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v", err)
	}
	err = walk(Limits{MaxBytes: 200 << 10})
	want = `archive exceeds limit at entry "mirror/primary/bundle.json": files add up to more than 204800 bytes`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v", err)
	}
}

func TestWalkLimitErrorIgnoredByFn(t *testing.T) {
	data := archiveBytes(t, writeTree(t, bundleFiles()), CompressionGzip)
	src, err := openBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Walk(context.Background(), Limits{}, func(e EntryInfo, r io.Reader) error {
		_ = src.SetLimits(Limits{MaxEntries: 1})
		return nil
	})
	if !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestBundleLimits(t *testing.T) {
	files := []bundle.FileEntry{
		{Path: "keys/k.pub", Size: 10},
		{Path: "mirror/index.json", Size: 20},
		{Path: "mirror/a/bundle.json", Size: 1000},
		{Path: "mirror/a/vex/x.json", Size: 5},
	}
	l := BundleLimits(files, 300)
	// 4 files + keys, mirror, mirror/a, mirror/a/vex + the slack.
	if l.MaxEntries != 4+4+64 {
		t.Errorf("MaxEntries %d", l.MaxEntries)
	}
	if l.MaxBytes < 1035+300 || l.MaxBytes > 1035+300+2<<20 {
		t.Errorf("MaxBytes %d", l.MaxBytes)
	}
	if got := BundleLimits([]bundle.FileEntry{{Path: "a", Size: -1}}, 10); got != (Limits{}) {
		t.Errorf("negative size: %+v", got)
	}
	if got := BundleLimits([]bundle.FileEntry{{Path: "a", Size: 1 << 62}, {Path: "b", Size: 1 << 62}}, 10); got.MaxBytes != 1<<63-1 {
		t.Errorf("overflow: %+v", got)
	}
}

func TestWalkFnErrorAndSecondWalk(t *testing.T) {
	data := archiveBytes(t, writeTree(t, bundleFiles()), CompressionZstd)
	src, err := openBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := src.Walk(context.Background(), Limits{}, func(EntryInfo, io.Reader) error { return boom }); err != boom {
		t.Fatalf("err = %v", err)
	}
	if err := src.Walk(context.Background(), Limits{}, func(EntryInfo, io.Reader) error { return nil }); err == nil {
		t.Fatal("second walk succeeded")
	}
}

func TestWalkCancelled(t *testing.T) {
	data := archiveBytes(t, writeTree(t, bundleFiles()), CompressionZstd)
	src, err := openBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = src.Walk(ctx, Limits{}, func(e EntryInfo, r io.Reader) error {
		if e.Name == "mirror.json" {
			cancel()
		}
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if failure.Code(err) != failure.ExitInterrupted || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notArchive := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notArchive, []byte("hello, world"), 0o644); err != nil {
		t.Fatal(err)
	}
	badArchive := filepath.Join(dir, "b.tar.zst")
	if err := os.WriteFile(badArchive, []byte("hello, world"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "e.tar.gz")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path  string
		stdin []byte
		code  int
		want  string
	}{
		{filepath.Join(dir, "missing.tar.zst"), nil, failure.ExitUsage, "open archive: stat $DIR/missing.tar.zst: no such file or directory"},
		{filepath.Join(dir, "missing.tar.zst.parts.json"), nil, failure.ExitUsage, "open archive: stat $DIR/missing.tar.zst.parts.json: no such file or directory"},
		{filepath.Join(dir, "missing.tar.zst.part-0001"), nil, failure.ExitUsage, "open archive: stat $DIR/missing.tar.zst.part-0001: no such file or directory"},
		{dir, nil, failure.ExitUsage, "$DIR is a folder, not an archive"},
		{notArchive, nil, failure.ExitUsage, "$DIR/notes.txt is not a bundle archive (.tar.zst or .tar.gz) or folder"},
		{badArchive, nil, failure.ExitVerification, "corrupt archive: $DIR/b.tar.zst is neither zstd nor gzip compressed"},
		{empty, nil, failure.ExitVerification, "corrupt archive: $DIR/e.tar.gz is empty"},
		{"-", nil, failure.ExitVerification, "corrupt archive: standard input is empty"},
		{"-", []byte{0x28, 0xb5}, failure.ExitVerification, "corrupt archive: standard input is truncated: too short for an archive"},
		{"-", []byte("plain text"), failure.ExitVerification, "corrupt archive: standard input is neither zstd nor gzip compressed"},
	}
	for _, tc := range cases {
		_, err := Open(context.Background(), tc.path, bytes.NewReader(tc.stdin), testOpen)
		if err == nil || failure.Code(err) != tc.code || scrub(err.Error(), dir) != tc.want {
			t.Errorf("Open(%s): %v (exit %d)\nwant %s (exit %d)", scrub(tc.path, dir), err, failure.Code(err), tc.want, tc.code)
		}
	}
	if _, err := Open(context.Background(), "-", nil, testOpen); failure.Code(err) != failure.ExitUsage {
		t.Errorf("nil stdin: %v", err)
	}
}

type failingReader struct{ after []byte }

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.after) > 0 {
		n := copy(p, f.after)
		f.after = f.after[n:]
		return n, nil
	}
	return 0, errors.New("input/output error")
}

// TestWalkIOError keeps read errors of the medium apart from corrupt data:
// they are exit 1, not 2.
func TestWalkIOError(t *testing.T) {
	data := archiveBytes(t, writeTree(t, bundleFiles()), CompressionZstd)
	src, err := Open(context.Background(), "-", &failingReader{after: data[:len(data)/2]}, testOpen)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = readAll(t, src, Limits{})
	if err == nil || err.Error() != "read standard input: input/output error" || failure.Code(err) != failure.ExitError {
		t.Fatalf("err = %v (exit %d)", err, failure.Code(err))
	}
}

func TestSplitOpenOptions(t *testing.T) {
	dir, m, _ := writeSplitSet(t, CompressionZstd)
	manifest := filepath.Join(dir, m.Archive+PartsManifestSuffix)

	if _, err := Open(context.Background(), manifest, nil, OpenOptions{}); failure.Code(err) != failure.ExitUsage {
		t.Errorf("no verifier: %v", err)
	}
	src, err := Open(context.Background(), manifest, nil, OpenOptions{SkipPartsSignature: true})
	if err != nil || src.PartsSigned || src.Parts == nil {
		t.Fatalf("skip signature: %v", err)
	}
	if _, _, err := readAll(t, src, Limits{}); err != nil {
		t.Fatal(err)
	}

	// Without the envelope, skipping the signature still checks the parts.
	if err := os.Remove(filepath.Join(dir, m.Archive+PartsEnvelopeSuffix)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, m.Parts[1].Name), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), manifest, nil, OpenOptions{SkipPartsSignature: true})
	var pe *PartsError
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].Index != 2 {
		t.Fatalf("err = %v", err)
	}
	if hint := failure.HintOf(err); !strings.Contains(hint, "copy the named parts again") {
		t.Errorf("hint %q", hint)
	}
}

// TestSplitPartChangesAfterCheck covers a part that differs on the second
// read, as on a failing medium.
func TestSplitPartChangesAfterCheck(t *testing.T) {
	dir, m, _ := writeSplitSet(t, CompressionZstd)
	src, err := Open(context.Background(), filepath.Join(dir, m.Archive+PartsManifestSuffix), nil, testOpen)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	last := m.Parts[len(m.Parts)-1]
	p := filepath.Join(dir, last.Name)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[0] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = readAll(t, src, Limits{})
	var pe *PartsError
	if !errors.As(err, &pe) || failure.Code(err) != failure.ExitVerification {
		t.Fatalf("err = %v", err)
	}
	want := fmt.Sprintf("split archive bundle.tar.zst: part %04d (%s): sha256 mismatch on second read: the part changed after it was checked, or the medium is unreliable", last.Index, last.Name)
	if err.Error() != want {
		t.Fatalf("err = %v", err)
	}
}
