package bundle

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FS is what verification reads a bundle through: a folder on disk, or the
// entries of an archive streamed once and held as digests plus the small
// signed documents.
type FS interface {
	// Open opens the file at the slash-separated path rel.
	Open(rel string) (io.ReadCloser, error)
	// Files lists the regular files with their sizes, and separately every
	// other entry (symlink, device, ...) with a description of its type.
	Files() (files map[string]int64, other map[string]string, err error)
}

// DirFS reads a bundle folder.
func DirFS(dir string) FS { return dirFS(dir) }

type dirFS string

// Open opens rel only when it is a regular file: a symbolic link (to
// /dev/zero, say) or a FIFO in a hostile bundle folder would otherwise
// make verification read for ever or block on open.
func (d dirFS) Open(rel string) (io.ReadCloser, error) {
	p := filepath.Join(string(d), filepath.FromSlash(rel))
	before, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %q: not a regular file (%s)", ErrUnsafePath, rel, before.Mode().Type())
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	if after, err := f.Stat(); err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, fmt.Errorf("%w: %q: replaced while being opened", ErrUnsafePath, rel)
	}
	return f, nil
}

func (d dirFS) Files() (map[string]int64, map[string]string, error) {
	files, other := map[string]int64{}, map[string]string{}
	err := filepath.WalkDir(string(d), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(string(d), p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == "." || e.IsDir():
			return nil
		case !e.Type().IsRegular():
			other[rel] = e.Type().String()
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		files[rel] = info.Size()
		return nil
	})
	return files, other, err
}

// MemFS is a bundle seen through a single pass over an archive: the size of
// every file, and the bytes of those kept (the signed documents). Opening a
// file whose bytes were not kept fails; give Verify its digests instead.
type MemFS struct {
	sizes map[string]int64
	data  map[string][]byte
}

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS { return &MemFS{sizes: map[string]int64{}, data: map[string][]byte{}} }

// Add records a file; data may be nil when its bytes were not kept.
func (m *MemFS) Add(rel string, size int64, data []byte) {
	m.sizes[rel] = size
	if data != nil {
		m.data[rel] = data
	}
}

// Open returns the kept bytes of rel.
func (m *MemFS) Open(rel string) (io.ReadCloser, error) {
	if d, ok := m.data[rel]; ok {
		return seekNopCloser{bytes.NewReader(d)}, nil
	}
	if _, ok := m.sizes[rel]; ok {
		return nil, fmt.Errorf("%s: contents not kept from the archive", rel)
	}
	return nil, &fs.PathError{Op: "open", Path: rel, Err: fs.ErrNotExist}
}

// seekNopCloser lets readers seek kept bytes (a signature check per
// trusted key) without copying them.
type seekNopCloser struct{ *bytes.Reader }

func (seekNopCloser) Close() error { return nil }

// Files lists the recorded files.
func (m *MemFS) Files() (map[string]int64, map[string]string, error) {
	out := make(map[string]int64, len(m.sizes))
	for k, v := range m.sizes {
		out[k] = v
	}
	return out, map[string]string{}, nil
}

// KeepContents reports whether verification reads the bytes of rel:
// mirror.json, its envelope, SHA256SUMS, index.json, each domain's
// manifest.json, bundle.json and its two signatures, and the rotation
// statements under keys/. Everything else (VEX exports, and any file the
// bundle should not hold) only needs its digest.
func KeepContents(rel string) bool {
	switch rel {
	case ManifestFile, EnvelopeFile, ChecksumsFile, IndexPath:
		return true
	}
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 2 && parts[0] == KeysDir:
		return true
	case len(parts) == 3 && parts[0] == MirrorDir:
		switch parts[2] {
		case DomainManifestName, DomainBundleName, DomainJWSName, DomainSigName:
			return true
		}
	}
	return false
}
