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

func (d dirFS) Open(rel string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(rel)))
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
		return io.NopCloser(bytes.NewReader(d)), nil
	}
	if _, ok := m.sizes[rel]; ok {
		return nil, fmt.Errorf("%s: contents not kept from the archive", rel)
	}
	return nil, &fs.PathError{Op: "open", Path: rel, Err: fs.ErrNotExist}
}

// Files lists the recorded files.
func (m *MemFS) Files() (map[string]int64, map[string]string, error) {
	out := make(map[string]int64, len(m.sizes))
	for k, v := range m.sizes {
		out[k] = v
	}
	return out, map[string]string{}, nil
}

// KeepContents reports whether verification needs the bytes of rel (every
// file but the VEX exports, which only need their digests).
func KeepContents(rel string) bool {
	parts := strings.Split(rel, "/")
	return !(len(parts) >= 4 && parts[0] == MirrorDir && parts[2] == "vex")
}
