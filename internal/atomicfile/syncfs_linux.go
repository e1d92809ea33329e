//go:build linux

package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFilesystem flushes the whole file system that holds dir with
// syncfs(2): data and metadata of every file written so far, as "sync" does
// for one file system. It reports false when syncfs is unavailable.
func syncFilesystem(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		if err == unix.ENOSYS {
			return false, nil
		}
		return true, err
	}
	return true, nil
}
