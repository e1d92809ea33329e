package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/faultfs"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// manyFiles is a bundle tree with files in many folders, small ones and
// ones that span several chunks.
func manyFiles(folders, perFolder int) map[string][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	files := map[string][]byte{}
	for d := range folders {
		for f := range perFolder {
			size := rng.IntN(4 << 10)
			if f == 0 && d%7 == 0 {
				size = 2*chunkSize + rng.IntN(chunkSize)
			}
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rng.IntN(256))
			}
			files[fmt.Sprintf("mirror/d%03d/vex/f%02d.json", d, f)] = data
		}
	}
	return withManifest(files)
}

// extractFresh extracts data into a new folder and returns the folder,
// the files returned and the error.
func extractFresh(t *testing.T, data []byte, prepare func(dir string)) (string, []bundle.FileEntry, error) {
	t.Helper()
	out := t.TempDir()
	if prepare != nil {
		prepare(out)
	}
	src, err := openBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	root, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	files, err := Extract(context.Background(), src, root, Limits{})
	return out, files, err
}

// TestExtractManyFolders extracts more folders than the folder cache keeps
// open, with files larger than a chunk among them.
func TestExtractManyFolders(t *testing.T) {
	files := manyFiles(3*maxIdleFolders, 3)
	data := archiveBytes(t, writeTree(t, files), CompressionZstd)
	out, got, err := extractFresh(t, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkExtracted(t, out, got, files)
}

// TestExtractWorkerErrorFirstInArchiveOrder makes the workers fail on two
// entries (files that already exist) and expects the error of the first
// of them in archive order, every time, and nothing left behind but the
// files that were there.
func TestExtractWorkerErrorFirstInArchiveOrder(t *testing.T) {
	files := manyFiles(40, 4)
	data := archiveBytes(t, writeTree(t, files), CompressionZstd)
	first, second := "mirror/d012/vex/f01.json", "mirror/d030/vex/f02.json"
	for run := range 20 {
		out, got, err := extractFresh(t, data, func(dir string) {
			for _, name := range []string{second, first} {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("mine"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
		if err == nil || got != nil || !errors.Is(err, os.ErrExist) {
			t.Fatalf("run %d: err = %v, %d files", run, err, len(got))
		}
		want := fmt.Sprintf("extract %s: openat %s: file exists", first, first)
		if err.Error() != want {
			t.Fatalf("run %d: err = %v\nwant %s", run, err, want)
		}
		left := strings.Join(listTree(t, out), " ")
		if left != "mirror mirror/d012 mirror/d012/vex "+first+" mirror/d030 mirror/d030/vex "+second {
			t.Fatalf("run %d: left %v", run, left)
		}
		for _, name := range []string{first, second} {
			if b, _ := os.ReadFile(filepath.Join(out, filepath.FromSlash(name))); string(b) != "mine" {
				t.Fatalf("run %d: %s was overwritten", run, name)
			}
		}
	}
}

// TestExtractWriteFaults fails the writes from byte N on, as a full disk
// does: Extract must report the write error of the file it failed in and
// leave the folder empty, whichever worker met it.
func TestExtractWriteFaults(t *testing.T) {
	files := manyFiles(20, 5)
	data := archiveBytes(t, writeTree(t, files), CompressionZstd)
	var total int64
	for _, b := range files {
		total += int64(len(b))
	}
	t.Cleanup(func() { faultfs.Set("") })
	for _, n := range []int64{0, 1, 5000, total / 3, total / 2, total - 1} {
		if err := faultfs.Set(fmt.Sprintf("enospc-after=%d", n)); err != nil {
			t.Fatal(err)
		}
		out, got, err := extractFresh(t, data, nil)
		faultfs.Set("")
		if err == nil || got != nil || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("enospc-after=%d: err = %v", n, err)
		}
		if !strings.HasPrefix(err.Error(), "extract mirror") {
			t.Errorf("enospc-after=%d: err = %v", n, err)
		}
		if left := listTree(t, out); len(left) != 0 {
			t.Fatalf("enospc-after=%d: left %v", n, left)
		}
	}
	if err := faultfs.Set(fmt.Sprintf("enospc-after=%d", total)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := extractFresh(t, data, nil); err != nil {
		t.Fatalf("enospc-after=%d (every byte fits): %v", total, err)
	}
}

// TestExtractReadErrorAfterWorkerError fails a write early and the archive
// late: the write error, met first in archive order, is the one reported.
func TestExtractReadErrorAfterWorkerError(t *testing.T) {
	files := manyFiles(20, 5)
	data := archiveBytes(t, writeTree(t, files), CompressionGzip)
	data = data[:len(data)*3/4]
	t.Cleanup(func() { faultfs.Set("") })
	if err := faultfs.Set("eio-after=100"); err != nil {
		t.Fatal(err)
	}
	out, _, err := extractFresh(t, data, nil)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v", err)
	}
	if left := listTree(t, out); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
}

// TestPipelineDrainsAfterFailure sends more chunks than the pipeline holds
// to a handler that fails at once: the sender must get errWorkerFailed
// instead of waiting for ever, and every chunk must come back.
func TestPipelineDrainsAfterFailure(t *testing.T) {
	h := &failingHandler{err: errors.New("boom")}
	p := newPipeline(h, 2, 4)
	var sendErr error
	for i := 0; i < 50 && sendErr == nil; i++ {
		_, sendErr = p.sendFile(&fileJob{name: fmt.Sprint(i), size: 3 * chunkSize}, bytes.NewReader(make([]byte, 3*chunkSize)))
	}
	if sendErr != errWorkerFailed {
		t.Fatalf("send: %v", sendErr)
	}
	if err := p.wait(); err != h.err {
		t.Fatalf("wait: %v", err)
	}
	if len(p.free) != p.allocated {
		t.Fatalf("%d of %d chunks came back", len(p.free), p.allocated)
	}
	if opened, released := h.opened.Load(), h.released.Load(); opened < 1 || opened > 2 || released < opened {
		t.Fatalf("%d jobs opened (the first, and at most one more begun beside it), %d released", opened, released)
	}
}

// failingHandler fails every job it opens.
type failingHandler struct {
	err              error
	opened, released atomic.Int32
}

func (h *failingHandler) open(*fileJob) (io.Writer, error) {
	h.opened.Add(1)
	return nil, h.err
}

func (h *failingHandler) finish(*fileJob, [sha256.Size]byte) error { return nil }

func (h *failingHandler) release(*fileJob) { h.released.Add(1) }

// TestPipelineShortEntry hands over an entry that ends early: no digest is
// recorded for it and the sender sees how many bytes there were.
func TestPipelineShortEntry(t *testing.T) {
	h := &recordingHandler{}
	p := newPipeline(h, 1, 4)
	n, err := p.sendFile(&fileJob{name: "short", size: 2*chunkSize + 10}, bytes.NewReader(make([]byte, chunkSize+5)))
	if err != nil || n != chunkSize+5 {
		t.Fatalf("n = %d, err = %v", n, err)
	}
	if err := p.wait(); err != nil {
		t.Fatal(err)
	}
	if len(h.finished) != 0 {
		t.Fatalf("finished %v", h.finished)
	}
}

// recordingHandler records the jobs finished.
type recordingHandler struct{ finished []string }

func (h *recordingHandler) open(*fileJob) (io.Writer, error) { return nil, nil }

func (h *recordingHandler) finish(job *fileJob, _ [sha256.Size]byte) error {
	h.finished = append(h.finished, job.name)
	return nil
}

func (h *recordingHandler) release(*fileJob) {}
