//go:build unix

package sync

import (
	"io/fs"
	"syscall"
)

// linkCount returns the number of names of a file (1 where unknown).
func linkCount(fi fs.FileInfo) uint64 {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Nlink)
	}
	return 1
}
