package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

func TestWriteDeterministic(t *testing.T) {
	files := bundleFiles()
	for _, comp := range []string{CompressionZstd, CompressionGzip} {
		t.Run(comp, func(t *testing.T) {
			a := writeTree(t, files)
			b := writeTree(t, files)
			// Different permissions and times must not matter.
			old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			if err := os.Chtimes(filepath.Join(b, "mirror.json"), old, old); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(b, "SHA256SUMS"), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(b, "mirror"), 0o700); err != nil {
				t.Fatal(err)
			}
			x, y := archiveBytes(t, a, comp), archiveBytes(t, b, comp)
			if !bytes.Equal(x, y) {
				t.Fatalf("archives of identical trees differ (%d vs %d bytes)", len(x), len(y))
			}
			if again := archiveBytes(t, a, comp); !bytes.Equal(x, again) {
				t.Fatal("archiving the same tree twice gave different bytes")
			}
			var other bytes.Buffer
			if err := Write(context.Background(), &other, a, WriteOptions{Compression: comp, ModTime: testModTime.Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(x, other.Bytes()) {
				t.Fatal("a different ModTime gave the same archive")
			}
			// Sub-second parts of ModTime are dropped.
			var frac bytes.Buffer
			if err := Write(context.Background(), &frac, a, WriteOptions{Compression: comp, ModTime: testModTime.Add(300 * time.Millisecond).In(time.FixedZone("X", 3600))}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(x, frac.Bytes()) {
				t.Fatal("ModTime's fraction of a second or zone changed the archive")
			}
		})
	}
}

// TestWriteDeterministicAcrossGOMAXPROCS guards the single-threaded encoder.
func TestWriteDeterministicAcrossGOMAXPROCS(t *testing.T) {
	dir := writeTree(t, bundleFiles())
	prev := runtime.GOMAXPROCS(1)
	one := archiveBytes(t, dir, CompressionZstd)
	runtime.GOMAXPROCS(4)
	four := archiveBytes(t, dir, CompressionZstd)
	runtime.GOMAXPROCS(prev)
	if !bytes.Equal(one, four) {
		t.Fatal("zstd output depends on GOMAXPROCS")
	}
}

func decompress(t *testing.T, data []byte, comp string) io.Reader {
	t.Helper()
	if comp == CompressionGzip {
		z, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if z.Name != "" || z.Comment != "" || !z.ModTime.IsZero() || z.OS != 255 || z.Extra != nil {
			t.Fatalf("gzip header carries data: %+v", z.Header)
		}
		return z
	}
	d, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestWriteLayout(t *testing.T) {
	files := bundleFiles()
	dir := writeTree(t, files)
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SHA256SUMS", "empty/", "keys/", "keys/mirror.pub", "mirror-extra/", "mirror-extra/a.json",
		"mirror.dsse.json", "mirror.json", "mirror/", "mirror/index.json", "mirror/primary/",
		"mirror/primary/bundle.json", "mirror/primary/bundle.json.jws", "mirror/primary/bundle.json.sig",
		"mirror/primary/manifest.json", "mirror/primary/vex/", "mirror/primary/vex/empty.json",
		"mirror/primary/vex/openvex.json",
	}
	for _, comp := range []string{CompressionZstd, CompressionGzip} {
		t.Run(comp, func(t *testing.T) {
			tr := tar.NewReader(decompress(t, archiveBytes(t, dir, comp), comp))
			var got []string
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, h.Name)
				wantMode, wantType := int64(0o644), byte(tar.TypeReg)
				if strings.HasSuffix(h.Name, "/") {
					wantMode, wantType = 0o755, tar.TypeDir
				}
				switch {
				case h.Typeflag != wantType, h.Mode != wantMode:
					t.Errorf("%s: type %c mode %o", h.Name, h.Typeflag, h.Mode)
				case h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "":
					t.Errorf("%s: owner %d:%d %q:%q", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
				case !h.ModTime.Equal(testModTime):
					t.Errorf("%s: mtime %v", h.Name, h.ModTime)
				case !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || len(h.PAXRecords) != 0:
					t.Errorf("%s: extra times or PAX records %v", h.Name, h.PAXRecords)
				case h.Format != tar.FormatUSTAR:
					t.Errorf("%s: format %v", h.Name, h.Format)
				}
				if wantType == tar.TypeReg {
					data, err := io.ReadAll(tr)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(data, files[h.Name]) {
						t.Errorf("%s: contents differ", h.Name)
					}
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestWriteZeroModTimeIsEpoch(t *testing.T) {
	dir := writeTree(t, map[string][]byte{"a": []byte("x")})
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, dir, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(decompress(t, buf.Bytes(), CompressionZstd))
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if h.ModTime.Unix() != 0 {
		t.Fatalf("mtime %v, want the epoch", h.ModTime)
	}
}

func TestWriteRefusesSource(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"symlink", func(t *testing.T, dir string) {
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "mirror", "evil")); err != nil {
				t.Skip("symlinks unsupported:", err)
			}
		}, `unsupported bundle folder content: "mirror/evil": symbolic link (only regular files and folders can be archived)`},
		{"symlinked folder", func(t *testing.T, dir string) {
			if err := os.Symlink(filepath.Join(dir, "mirror"), filepath.Join(dir, "link")); err != nil {
				t.Skip("symlinks unsupported:", err)
			}
		}, `unsupported bundle folder content: "link": symbolic link (only regular files and folders can be archived)`},
		{"backslash", func(t *testing.T, dir string) {
			if runtime.GOOS == "windows" {
				t.Skip("backslash is a separator")
			}
			if err := os.WriteFile(filepath.Join(dir, `a\b`), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, `unsupported bundle folder content: "a\\b": name contains a backslash`},
		{"case collision", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "Mirror.json"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "MIRROR.JSON")); err == nil {
				t.Skip("case-insensitive file system")
			}
		}, `unsupported bundle folder content: "mirror.json": collides with "Mirror.json" on file systems that ignore case or Unicode normalisation`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, bundleFiles())
			tc.setup(t, dir)
			err := Write(context.Background(), io.Discard, dir, WriteOptions{ModTime: testModTime})
			if !errors.Is(err, ErrUnsupportedSource) || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestWriteOptionsErrors(t *testing.T) {
	dir := writeTree(t, bundleFiles())
	err := Write(context.Background(), io.Discard, dir, WriteOptions{Compression: "xz"})
	if failure.Code(err) != failure.ExitUsage {
		t.Errorf("unknown compression: %v", err)
	}
	err = Write(context.Background(), io.Discard, filepath.Join(dir, "nope"), WriteOptions{})
	if failure.Code(err) != failure.ExitUsage {
		t.Errorf("missing folder: %v", err)
	}
}

func TestWriteCancelled(t *testing.T) {
	dir := writeTree(t, bundleFiles())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Write(ctx, io.Discard, dir, WriteOptions{})
	if failure.Code(err) != failure.ExitInterrupted || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	src := writeTree(t, bundleFiles())
	out := t.TempDir()
	p := filepath.Join(out, "bundle.tar.gz")
	if err := WriteFile(context.Background(), p, src, WriteOptions{ModTime: testModTime}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, archiveBytes(t, src, CompressionGzip)) {
		t.Fatal("WriteFile differs from Write")
	}
	if got := listTree(t, out); len(got) != 1 {
		t.Fatalf("left behind: %v", got)
	}
	if fi, err := os.Stat(p); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644) {
		t.Fatalf("archive mode: %v %v", fi.Mode(), err)
	}

	// A failure leaves nothing.
	if err := os.Symlink("x", filepath.Join(src, "evil")); err != nil {
		t.Skip(err)
	}
	fail := filepath.Join(out, "fail.tar.zst")
	if err := WriteFile(context.Background(), fail, src, WriteOptions{}); !errors.Is(err, ErrUnsupportedSource) {
		t.Fatalf("err = %v", err)
	}
	if got := listTree(t, out); len(got) != 1 {
		t.Fatalf("left behind: %v", got)
	}
	if err := WriteFile(context.Background(), filepath.Join(out, "bundle.zip"), src, WriteOptions{}); failure.Code(err) != failure.ExitUsage {
		t.Fatalf("err = %v", err)
	}
}

func TestArchiveFormatFromName(t *testing.T) {
	for name, want := range map[string]string{
		"bundle.tar.zst":  CompressionZstd,
		"B.TAR.ZST":       CompressionZstd,
		"x/y.tar.zstd":    CompressionZstd,
		"y.tzst":          CompressionZstd,
		"bundle.tar.gz":   CompressionGzip,
		"bundle.tgz":      CompressionGzip,
		"bundle.tar":      "",
		".tar.gz":         "",
		"bundle.zst":      "",
		"bundle.tar.zst/": "",
	} {
		got, err := ArchiveFormatFromName(name)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: %q, %v; want %q", name, got, err, want)
		}
		if err != nil && failure.Code(err) != failure.ExitUsage {
			t.Errorf("%q: %v is not a usage error", name, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4GiB":       4 << 30,
		"4gib":       4 << 30,
		"4G":         4 << 30,
		"700MiB":     700 << 20,
		"700M":       700 << 20,
		"1.5GB":      1_500_000_000,
		"4.7GB":      4_700_000_000,
		"500k":       500 << 10,
		"500K":       500 << 10,
		"500kB":      500_000,
		"500 KiB":    500 << 10,
		"1048576":    1 << 20,
		"1024B":      1024,
		"1.5KiB":     1536,
		" 2TiB ":     2 << 40,
		"3TB":        3_000_000_000_000,
		"0.5MiB":     512 << 10,
		"1.000001MB": 1_000_001,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "0", "0MiB", "1.5", "1.2.3M", "4XB", "4 GiBs", "0.1B", "1e9", "99999999999TiB", "."} {
		if got, err := ParseSize(in); err == nil || failure.Code(err) != failure.ExitUsage {
			t.Errorf("ParseSize(%q) = %d, %v; want a usage error", in, got, err)
		}
	}
}

func TestIsArchivePath(t *testing.T) {
	for p, want := range map[string]bool{
		"-":                              true,
		"/media/usb/b.tar.zst":           true,
		"b.tar.gz":                       true,
		"b.tar.zst.parts.json":           true,
		"b.tar.zst.parts.dsse.json":      true,
		"/m/b.tar.zst.part-0003":         true,
		"b.tar.zst.part-12345":           true,
		"b.tar.zst.part-3":               false,
		"b.tar.zst.part-0000":            false,
		"/srv/mirror/20250314T150926Z":   false,
		"bundle":                         false,
		"b.tar.zst.part-0003.partial":    false,
		"/m/dir.part-0001/mirror.json":   false,
		"/m/b.tar.zst.part-0001x":        false,
		"/m/b.tar.zst.part-00012":        false,
		"/media/usb/b.tar.zst.part-0001": true,
	} {
		if got := IsArchivePath(p); got != want {
			t.Errorf("IsArchivePath(%q) = %v", p, got)
		}
	}
}

func TestLongAndUnicodeNames(t *testing.T) {
	files := map[string][]byte{
		"mirror/primary/vex/" + strings.Repeat("long-", 48) + ".json":                          []byte("a"),
		strings.Repeat("d/", 100) + "deep.json":                                                []byte("b"),
		"mirror/primary/vex/caf\u00e9-\u65e5\u672c.json":                                       []byte("c"),
		"mirror/" + strings.Repeat("x", 120) + "/" + strings.Repeat("y", 120) + "/" + "z.json": []byte("d"),
	}
	dir := writeTree(t, files)
	for _, comp := range []string{CompressionZstd, CompressionGzip} {
		data := archiveBytes(t, dir, comp)
		if !bytes.Equal(data, archiveBytes(t, writeTree(t, files), comp)) {
			t.Fatal("not deterministic with long names")
		}
		src, err := openBytes(t, data)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := readAll(t, src, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		checkFiles(t, got, files)
	}
}
