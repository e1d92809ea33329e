package bundle

import (
	"bytes"
	"errors"
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
	return collectFiles(d)
}

// fileWalker is implemented by the FS types of this package: walkFiles
// calls fn for every entry below the folder sub ("" for all of them; none
// when sub is absent or not a folder), in no particular order, with the
// size of a regular file or the type of anything else, so that callers
// need not hold a map of every file.
type fileWalker interface {
	walkFiles(sub string, fn func(rel string, size int64, kind string) error) error
}

// collectFiles builds the maps of FS.Files from walkFiles.
func collectFiles(w fileWalker) (map[string]int64, map[string]string, error) {
	files, other := map[string]int64{}, map[string]string{}
	err := w.walkFiles("", func(rel string, size int64, kind string) error {
		if kind != "" {
			other[rel] = kind
		} else {
			files[rel] = size
		}
		return nil
	})
	return files, other, err
}

// walkFiles lists the folder a batch of entries at a time: reading a folder
// of 65,536 files whole, as filepath.WalkDir does, held all their entries.
func (d dirFS) walkFiles(sub string, fn func(rel string, size int64, kind string) error) error {
	if sub != "" {
		st, err := os.Lstat(filepath.Join(string(d), filepath.FromSlash(sub)))
		if errors.Is(err, fs.ErrNotExist) || err == nil && !st.IsDir() {
			return nil
		}
		if err != nil {
			return err
		}
	}
	pending := []string{sub}
	for len(pending) > 0 {
		rel := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		dirs, err := d.readDir(rel, fn)
		if err != nil {
			return err
		}
		pending = append(pending, dirs...)
	}
	return nil
}

// readDir calls fn for every entry of the folder rel that is not a folder,
// and returns the folders in it.
func (d dirFS) readDir(rel string, fn func(rel string, size int64, kind string) error) ([]string, error) {
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var dirs []string
	for {
		entries, err := f.ReadDir(256)
		for _, e := range entries {
			child := e.Name()
			if rel != "" {
				child = rel + "/" + child
			}
			if e.IsDir() {
				dirs = append(dirs, child)
				continue
			}
			if ferr := visitEntry(child, e, fn); ferr != nil {
				return nil, ferr
			}
		}
		if err == io.EOF {
			return dirs, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// visitEntry calls fn for the entry e at rel: a regular file with its size,
// anything else with its type.
func visitEntry(rel string, e fs.DirEntry, fn func(rel string, size int64, kind string) error) error {
	if !e.Type().IsRegular() {
		return fn(rel, 0, e.Type().String())
	}
	info, err := e.Info()
	if err != nil {
		return err
	}
	return fn(rel, info.Size(), "")
}

// MemFS is a bundle seen through a single pass over an archive: the size of
// every file, and the bytes of those kept (the signed documents). Opening a
// file whose bytes were not kept fails; give Verify its digests instead.
type MemFS struct {
	sizes map[string]int64
	// set, when not nil, lists the files in place of sizes.
	set  *DigestSet
	data map[string][]byte
}

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS { return &MemFS{sizes: map[string]int64{}, data: map[string][]byte{}} }

// NewSetFS returns a MemFS whose files are those of set, as many as it will
// hold when verified: Add then only keeps bytes. An archive's verify
// records every file's digest in set, which is also what VerifyOptions.Digests
// takes, so the names and sizes are held once.
func NewSetFS(set *DigestSet) *MemFS { return &MemFS{set: set, data: map[string][]byte{}} }

// Add records a file; data may be nil when its bytes were not kept. On a
// MemFS from NewSetFS, size is the set's.
func (m *MemFS) Add(rel string, size int64, data []byte) {
	if m.set == nil {
		m.sizes[rel] = size
	}
	if data != nil {
		m.data[rel] = data
	}
}

// Open returns the kept bytes of rel.
func (m *MemFS) Open(rel string) (io.ReadCloser, error) {
	if d, ok := m.data[rel]; ok {
		return seekNopCloser{bytes.NewReader(d)}, nil
	}
	if m.has(rel) {
		return nil, fmt.Errorf("%s: contents not kept from the archive", rel)
	}
	return nil, &fs.PathError{Op: "open", Path: rel, Err: fs.ErrNotExist}
}

// Forget drops the kept bytes of rel, which verification will not read
// again: the envelope of mirror.json once read, say, whose bytes are
// the larger part of what a verify of an archive holds. Opening rel then
// fails as for a file whose bytes were not kept.
func (m *MemFS) Forget(rel string) { delete(m.data, rel) }

// has reports whether rel is a file of the MemFS.
func (m *MemFS) has(rel string) bool {
	if m.set != nil {
		return m.set.has(rel)
	}
	_, ok := m.sizes[rel]
	return ok
}

// seekNopCloser lets readers seek kept bytes (a signature check per
// trusted key) without copying them.
type seekNopCloser struct{ *bytes.Reader }

func (seekNopCloser) Close() error { return nil }

// Files lists the recorded files.
func (m *MemFS) Files() (map[string]int64, map[string]string, error) {
	return collectFiles(m)
}

func (m *MemFS) walkFiles(sub string, fn func(rel string, size int64, kind string) error) error {
	var err error
	visit := func(rel string, size int64) {
		if err == nil && (sub == "" || strings.HasPrefix(rel, sub+"/")) {
			err = fn(rel, size, "")
		}
	}
	if m.set != nil {
		m.set.Each(visit)
		return err
	}
	for rel, size := range m.sizes {
		visit(rel, size)
	}
	return err
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
