//go:build unix

package atomicfile

import (
	"io/fs"
	"syscall"
)

// owner returns the uid and gid of fi, or -1 where unknown.
func owner(fi fs.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}
