package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

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
// is started as soon as it is written (not waited for: an fsync per file
// here serialised one disk flush per entry with the decompression), and the
// folders are synced at the end; making the files durable is the job of the
// caller's fsync of the whole tree before activation (exportroot.Activate).
//
// Once mirror.json has been written, Extract lowers limits to what it lists
// (BundleLimits). On any error, including a cancelled ctx, Extract removes
// every file and folder it created, leaving root as it found it. Extract
// refuses what Walk refuses.
func Extract(ctx context.Context, src *Source, root *os.Root, limits Limits) ([]bundle.FileEntry, error) {
	x := &extractor{root: root, known: map[string]bool{}, buf: make([]byte, readBufferSize)}
	err := src.Walk(ctx, limits, func(e EntryInfo, r io.Reader) error {
		if e.IsDir {
			return x.mkdirAll(e.Name)
		}
		if dir := path.Dir(e.Name); dir != "." {
			if err := x.mkdirAll(dir); err != nil {
				return err
			}
		}
		f, err := x.writeFile(e, r)
		if err != nil {
			return err
		}
		x.files = append(x.files, f)
		if e.Name == bundle.ManifestFile {
			return x.tightenFromManifest(src, e.Size)
		}
		return nil
	})
	if err == nil {
		err = x.syncDirs()
	}
	if err != nil {
		if cerr := x.cleanup(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove partly extracted files: %w", cerr))
		}
		return nil, err
	}
	return x.files, nil
}

type extractor struct {
	root    *os.Root
	known   map[string]bool // folders known to exist
	created []string        // files and folders created, in order
	dirs    []string        // folders created
	files   []bundle.FileEntry
	buf     []byte
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
		x.created = append(x.created, dir)
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

func (x *extractor) writeFile(e EntryInfo, r io.Reader) (bundle.FileEntry, error) {
	f, err := x.root.OpenFile(e.Name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return bundle.FileEntry{}, fmt.Errorf("extract %s: %w", e.Name, err)
	}
	x.created = append(x.created, e.Name)
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(faultfs.WrapWriter(f), h), r, x.buf)
	if err != nil {
		f.Close()
		if isClassified(err) {
			return bundle.FileEntry{}, err
		}
		return bundle.FileEntry{}, fmt.Errorf("extract %s: %w", e.Name, err)
	}
	if n != e.Size {
		f.Close()
		return bundle.FileEntry{}, fmt.Errorf("%w: truncated: entry %s has %d of %d bytes", ErrCorrupt, quoteName(e.Name), n, e.Size)
	}
	startWriteback(f)
	if err := f.Close(); err != nil {
		return bundle.FileEntry{}, fmt.Errorf("extract %s: %w", e.Name, err)
	}
	return bundle.FileEntry{Path: e.Name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
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
	var m struct {
		Files []bundle.FileEntry `json:"files"`
	}
	if err := json.NewDecoder(io.LimitReader(f, size)).Decode(&m); err != nil {
		return nil
	}
	return src.SetLimits(BundleLimits(m.Files, size))
}

func (x *extractor) syncDirs() error {
	for i := len(x.dirs) - 1; i >= 0; i-- {
		if err := syncRootDir(x.root, x.dirs[i]); err != nil {
			return err
		}
	}
	return syncRootDir(x.root, ".")
}

func syncRootDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// cleanup removes what Extract created, newest first.
func (x *extractor) cleanup() error {
	var errs []error
	for i := len(x.created) - 1; i >= 0; i-- {
		if err := x.root.Remove(x.created[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	x.created, x.dirs, x.files = nil, nil, nil
	return errors.Join(errs...)
}
