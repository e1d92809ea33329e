//go:build !unix

package atomicfile

import "io/fs"

// owner reports no owner where files have none in the Unix sense.
func owner(fs.FileInfo) (int, int) { return -1, -1 }
