//go:build !linux

package atomicfile

// syncFilesystem is not available here: SyncTree flushes file by file.
func syncFilesystem(string) (bool, error) { return false, nil }
