// Package atomicfile writes files so that readers see either the old or the
// new content, never a mix, even after a crash: the data goes to a temporary
// file in the same folder, is synced, renamed over the target, and the
// folder is synced.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stellaops/stellaops-cli/internal/faultfs"
)

type options struct {
	keepMode bool
}

// Option changes how WriteFile writes.
type Option func(*options)

// KeepMode makes WriteFile keep the permission bits (and, where the process
// may, the owner and group) of the file it replaces. perm applies only when
// no file exists yet. Used when rotating files such as htpasswd, whose mode
// and group an operator chose.
func KeepMode() Option {
	return func(o *options) { o.keepMode = true }
}

// WriteFile atomically replaces path with data. The new file gets exactly
// the permission bits perm (the umask is not applied), unless KeepMode is
// given and a file exists. On any failure the temporary file is removed and
// the old file, if any, is left untouched. A symlink at path is replaced by
// a regular file, not followed.
//
// Writes pass through faultfs, so STELLAOPS_FAULT can make them fail.
func WriteFile(path string, data []byte, perm os.FileMode, opts ...Option) (err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("write %s: no file name", path)
	}

	mode := perm.Perm()
	uid, gid := -1, -1
	if o.keepMode {
		if fi, serr := os.Lstat(path); serr == nil && fi.Mode().IsRegular() {
			mode = fi.Mode().Perm()
			uid, gid = owner(fi)
		} else if serr != nil && !errors.Is(serr, fs.ErrNotExist) {
			return fmt.Errorf("write %s: %w", path, serr)
		}
	}

	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: create temporary file: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	if uid >= 0 {
		// Best effort: an unprivileged process can only keep its own ids.
		_ = f.Chown(uid, gid)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: set mode of %s: %w", path, tmp, err)
	}
	if _, err = faultfs.WrapWriter(f).Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync %s: %w", path, tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: close %s: %w", path, tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = SyncDir(dir); err != nil {
		// The new content is in place; only its durability is in doubt.
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs the folder dir, making renames and new entries in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

// SyncTree fsyncs every regular file and folder below dir, dir included,
// folders after their contents. Symlinks are not followed; their entries
// are made durable by syncing the folder that holds them. Used before a
// staged tree is renamed into place.
func SyncTree(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("sync tree %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("sync tree %s: not a folder", dir)
	}
	// Where the kernel can flush the file system holding dir in one call
	// (Linux syncfs), that makes every file and folder below it durable at
	// the cost of one "sync", instead of one flush per file.
	if done, err := syncFilesystem(dir); done || err != nil {
		if err != nil {
			return fmt.Errorf("sync tree %s: %w", dir, err)
		}
		return nil
	}
	var dirs []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			return syncFile(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync tree %s: %w", dir, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := SyncDir(dirs[i]); err != nil {
			return fmt.Errorf("sync tree %s: %w", dir, err)
		}
	}
	return nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return f.Close()
}
