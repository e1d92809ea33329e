package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sync"

	"github.com/stellaops/stellaops-cli/internal/faultfs"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// maxManifestForLimits bounds the mirror.json Extract reads back to derive
// limits; a larger one is left to the verifier.
const maxManifestForLimits = 64 << 20

// Extract writes the archive's regular files and folders below root, in
// one pass, and returns every file written with the size and SHA-256
// computed while writing it, in archive order, so the caller can verify
// exactly what is on disk. Files are created with O_EXCL (nothing is
// overwritten) and mode 0644, folders with mode 0755. Each file's write-back
// is started as soon as it is written, and not waited for: making the
// files and folders durable is the job of the caller's sync of the whole
// tree before it relies on it (exportroot.Activate syncs the staging
// folder before it renames it). A sync of the folders here would wait for
// the disk to take every byte written so far; after Extract, the caller's
// own checks run while the disk catches up.
//
// The goroutine that decompresses the archive hands each file's bytes to a
// few workers, which hash it and create and write the file, so that
// decompression does not wait for file creation. Folders are created in
// archive order before the files in them.
//
// Once mirror.json has been written, Extract lowers limits to what it lists
// (BundleLimits). On any error, including a cancelled ctx, Extract removes
// every file and folder it created, leaving root as it found it. Extract
// refuses what Walk refuses. When several entries fail, the error reported
// is that of the first of them in archive order, as in a sequential pass.
func Extract(ctx context.Context, src *Source, root *os.Root, limits Limits) ([]bundle.FileEntry, error) {
	x := &extractor{root: root, known: map[string]bool{}, folders: newFolderCache(root)}
	x.pipe = newPipeline(x, extractWorkers(), extractChunks)
	err := src.Walk(ctx, limits, x.entry(src))
	if werr := x.pipe.wait(); werr != nil {
		err = werr
	}
	x.folders.closeAll()
	if err != nil {
		if cerr := x.cleanup(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove partly extracted files: %w", cerr))
		}
		return nil, err
	}
	return x.files, nil
}

// extractChunks bounds the chunks in flight between decompression and the
// workers (4 MiB): as many small files, or a few megabytes of a large one.
const extractChunks = 32

// extractWorkers is the number of goroutines that create and write files:
// one per CPU, at least two (a worker waits on the disk as much as it
// computes) and at most four.
func extractWorkers() int {
	return min(max(runtime.GOMAXPROCS(0), 2), 4)
}

type extractor struct {
	root    *os.Root
	pipe    *pipeline
	folders *folderCache
	known   map[string]bool // folders known to exist
	dirs    []string        // folders created, in order

	mu      sync.Mutex
	created []string // files created, by the workers
	files   []bundle.FileEntry
}

// entry returns the Walk function: folders are created here, files are
// sent to the workers.
func (x *extractor) entry(src *Source) func(EntryInfo, io.Reader) error {
	return func(e EntryInfo, r io.Reader) error {
		if err := x.pipe.stopped(); err != nil {
			return err
		}
		if e.IsDir {
			return x.mkdirAll(e.Name)
		}
		dir := path.Dir(e.Name)
		if dir != "." {
			if err := x.mkdirAll(dir); err != nil {
				return err
			}
		}
		return x.sendFile(src, e, dir, r)
	}
}

// sendFile hands one file entry to the workers, and waits for mirror.json
// to be written so that the limits can be lowered from it.
func (x *extractor) sendFile(src *Source, e EntryInfo, dir string, r io.Reader) error {
	f, err := x.folders.acquire(dir)
	if err != nil {
		return fmt.Errorf("extract %s: %w", e.Name, err)
	}
	job := &fileJob{name: e.Name, size: e.Size, folder: f}
	if e.Name == bundle.ManifestFile {
		job.done = make(chan struct{})
	}
	// Every file is sent, in order, so its index is its place in files.
	x.mu.Lock()
	x.files = append(x.files, bundle.FileEntry{Path: e.Name, Size: e.Size})
	x.mu.Unlock()
	n, err := x.pipe.sendFile(job, r)
	switch {
	case err == errWorkerFailed || err != nil && isClassified(err):
		return err
	case err != nil:
		return fmt.Errorf("extract %s: %w", e.Name, err)
	case n != e.Size:
		return fmt.Errorf("%w: truncated: entry %s has %d of %d bytes", ErrCorrupt, quoteName(e.Name), n, e.Size)
	case job.done != nil:
		if err := x.pipe.await(job); err != nil {
			return err
		}
		return x.tightenFromManifest(src, e.Size)
	}
	return nil
}

func (x *extractor) mkdirAll(dir string) error {
	if x.known[dir] {
		return nil
	}
	if parent := path.Dir(dir); parent != "." {
		if err := x.mkdirAll(parent); err != nil {
			return err
		}
	}
	err := x.root.Mkdir(dir, 0o755)
	switch {
	case err == nil:
		x.dirs = append(x.dirs, dir)
	case errors.Is(err, fs.ErrExist):
		info, serr := x.root.Lstat(dir)
		if serr != nil {
			return fmt.Errorf("extract %s: %w", dir, serr)
		}
		if !info.IsDir() {
			return fmt.Errorf("extract %s: exists and is not a folder", dir)
		}
	default:
		return fmt.Errorf("extract %s: %w", dir, err)
	}
	x.known[dir] = true
	return nil
}

// open creates job's file in its folder (a worker's part).
func (x *extractor) open(job *fileJob) (io.Writer, error) {
	f, err := job.folder.create(path.Base(job.name))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Path = job.name
		}
		return nil, fmt.Errorf("extract %s: %w", job.name, err)
	}
	x.mu.Lock()
	x.created = append(x.created, job.name)
	x.mu.Unlock()
	job.file = f
	return &fileWriter{w: faultfs.WrapWriter(f), name: job.name}, nil
}

// finish starts the file's write-back, closes it and records its digest.
func (x *extractor) finish(job *fileJob, sum [sha256.Size]byte) error {
	f := job.file
	job.file = nil
	startWriteback(f)
	if err := f.Close(); err != nil {
		return fmt.Errorf("extract %s: %w", job.name, err)
	}
	x.mu.Lock()
	x.files[job.index].SHA256 = hex.EncodeToString(sum[:])
	x.mu.Unlock()
	return nil
}

// release closes a file left open by an error and lets go of its folder.
func (x *extractor) release(job *fileJob) {
	if job.file != nil {
		job.file.Close()
		job.file = nil
	}
	x.folders.release(job.folder)
}

// fileWriter names the file in its write errors.
type fileWriter struct {
	w    io.Writer
	name string
}

// Write writes p to the file.
func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		err = fmt.Errorf("extract %s: %w", w.name, err)
	}
	return n, err
}

// tightenFromManifest reads back the mirror.json just written and lowers
// the limits to what it lists. An unreadable manifest changes nothing: the
// verifier reports it.
func (x *extractor) tightenFromManifest(src *Source, size int64) error {
	if size > maxManifestForLimits {
		return nil
	}
	f, err := x.root.Open(bundle.ManifestFile)
	if err != nil {
		return fmt.Errorf("extract %s: %w", bundle.ManifestFile, err)
	}
	defer f.Close()
	if l, ok := manifestLimits(io.LimitReader(f, size), size, false); ok {
		return src.SetLimits(l)
	}
	return nil
}

// cleanup removes what Extract created: the files, then the folders,
// newest first. The workers have stopped by then.
func (x *extractor) cleanup() error {
	var errs []error
	for _, name := range x.created {
		if err := x.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for i := len(x.dirs) - 1; i >= 0; i-- {
		if err := x.root.Remove(x.dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	x.created, x.dirs, x.files = nil, nil, nil
	return errors.Join(errs...)
}
