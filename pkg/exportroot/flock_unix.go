//go:build unix

package exportroot

import (
	"errors"
	"os"
	"syscall"
)

// errLocked is what lockFile returns when another holder has the lock.
var errLocked = syscall.EWOULDBLOCK

// lockFile takes an exclusive, non-blocking flock on f. The kernel releases
// it when the holder dies, so a lock left by a dead process is free.
func lockFile(f *os.File) error { return flock(f, syscall.LOCK_EX|syscall.LOCK_NB) }

func unlockFile(f *os.File) error { return flock(f, syscall.LOCK_UN) }

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
