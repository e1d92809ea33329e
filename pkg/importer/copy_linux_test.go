package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// TestCopyFileSizes stages files on either side of the kernel copy's
// threshold and segment size: each staged copy has the source's bytes, and
// the digest returned is theirs.
func TestCopyFileSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	src, dst := t.TempDir(), t.TempDir()
	root, err := os.OpenRoot(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, size := range []int{0, 1, kernelCopyMin - 1, kernelCopyMin, kernelCopySegment, 2*kernelCopySegment + 4097} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		name := filepath.Join(src, "f")
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rel := fmt.Sprintf("staged-%d", size)
		var progress int64
		d, err := copyFile(context.Background(), root, rel, name, make([]byte, 1<<20), func(n int64) { progress += n })
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		got, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) || d != bundle.HashBytes(data) || progress != int64(size) {
			t.Fatalf("%d bytes: staged %d bytes, digest %v, progress %d", size, len(got), d, progress)
		}
	}
}

// TestCopyKernelInterrupted (Linux) stops a kernel copy of a large file when ctx is
// cancelled.
func TestCopyKernelInterrupted(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 3*kernelCopySegment), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(t.TempDir(), "g"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = copyKernel(ctx, out, in, make([]byte, 1<<20), func(int64) { cancel() })
	if !errors.Is(err, failure.ErrInterrupted) {
		t.Fatalf("cancelled copy: %v", err)
	}
	if st, _ := out.Stat(); st.Size() >= 3*kernelCopySegment {
		t.Fatalf("cancelled copy went on to %d bytes", st.Size())
	}
}
