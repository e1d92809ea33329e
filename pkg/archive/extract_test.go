package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

func extractTo(t *testing.T, src *Source, ctx context.Context) (string, []bundle.FileEntry, error) {
	t.Helper()
	out := t.TempDir()
	root, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	files, err := Extract(ctx, src, root, Limits{})
	return out, files, err
}

func TestExtractRoundTrip(t *testing.T) {
	files := bundleFiles()
	dir := writeTree(t, files)
	splitDir, m, _ := writeSplitSet(t, CompressionGzip)
	for name, open := range map[string]func() (*Source, error){
		"zstd": func() (*Source, error) { return openBytes(t, archiveBytes(t, dir, CompressionZstd)) },
		"gzip": func() (*Source, error) { return openBytes(t, archiveBytes(t, dir, CompressionGzip)) },
		"split": func() (*Source, error) {
			return Open(context.Background(), filepath.Join(splitDir, m.Parts[2].Name), nil, testOpen)
		},
	} {
		t.Run(name, func(t *testing.T) {
			src, err := open()
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			out, got, err := extractTo(t, src, context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkExtracted(t, out, got, files)
			for _, f := range got {
				info, err := os.Stat(filepath.Join(out, filepath.FromSlash(f.Path)))
				if err != nil {
					t.Fatal(err)
				}
				if runtime.GOOS != "windows" && info.Mode().Perm()&^0o022 != 0o644&^0o022 {
					t.Errorf("%s: mode %v", f.Path, info.Mode())
				}
			}
			want := listTree(t, dir)
			if got := listTree(t, out); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("tree:\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// checkExtracted compares the digests Extract returned, in archive order,
// and the files it wrote below out with files.
func checkExtracted(t *testing.T, out string, got []bundle.FileEntry, files map[string][]byte) {
	t.Helper()
	if len(got) != len(files) {
		t.Fatalf("%d files, want %d", len(got), len(files))
	}
	for i, f := range got {
		sum := sha256.Sum256(files[f.Path])
		if f.Size != int64(len(files[f.Path])) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: %+v", f.Path, f)
		}
		if i > 0 && got[i-1].Path >= f.Path {
			t.Errorf("files out of archive order: %s then %s", got[i-1].Path, f.Path)
		}
		disk, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.Path)))
		if err != nil || !bytes.Equal(disk, files[f.Path]) {
			t.Errorf("%s on disk differs: %v", f.Path, err)
		}
	}
}

func TestExtractNeverOverwrites(t *testing.T) {
	data := archiveBytes(t, writeTree(t, bundleFiles()), CompressionZstd)
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "mirror"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "mirror", "index.json"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	src, err := openBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Extract(context.Background(), src, root, Limits{})
	if err == nil || !errors.Is(err, os.ErrExist) {
		t.Fatalf("err = %v", err)
	}
	if got := listTree(t, out); strings.Join(got, " ") != "mirror mirror/index.json" {
		t.Fatalf("left %v", got)
	}
	if data, _ := os.ReadFile(filepath.Join(out, "mirror", "index.json")); string(data) != "mine" {
		t.Fatal("an existing file was overwritten")
	}
}

type cancelReader struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestExtractCancelled(t *testing.T) {
	data := archiveBytes(t, writeTree(t, bundleFiles()), CompressionGzip)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := Open(ctx, "-", &cancelReader{r: bytes.NewReader(data), n: len(data) / 2, cancel: cancel}, testOpen)
	if err != nil {
		t.Fatal(err)
	}
	out, files, err := extractTo(t, src, ctx)
	if failure.Code(err) != failure.ExitInterrupted || files != nil {
		t.Fatalf("err = %v", err)
	}
	if left := listTree(t, out); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
}

// TestExtractLimitsFromManifest refuses an archive holding more than its
// mirror.json lists, once mirror.json is on disk.
func TestExtractLimitsFromManifest(t *testing.T) {
	files := bundleFiles()
	dir := writeTree(t, files)
	for i := range 100 {
		p := filepath.Join(dir, "mirror", "primary", "vex", fmt.Sprintf("x%03d.json", i))
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := openBytes(t, archiveBytes(t, dir, CompressionZstd))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := extractTo(t, src, context.Background())
	want := `archive exceeds limit at entry "mirror/primary/vex/x061.json": more than 78 entries`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if left := listTree(t, out); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
}
