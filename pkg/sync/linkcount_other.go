//go:build !unix

package sync

import "io/fs"

// linkCount returns 1: the file systems here report no link count.
func linkCount(fs.FileInfo) uint64 { return 1 }
