//go:build windows

package exportroot

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// errLocked is what lockFile returns when another holder has the lock.
var errLocked = errors.New("lock held by another process")

// lockFile takes an exclusive, non-blocking LockFileEx lock on the first
// byte of f. Windows releases it when the holder's handle closes, also when
// the process dies.
func lockFile(f *os.File) error {
	var ol windows.Overlapped
	err := windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLocked
	}
	return err
}

func unlockFile(f *os.File) error {
	var ol windows.Overlapped
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &ol)
}
