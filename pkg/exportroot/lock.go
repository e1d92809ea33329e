package exportroot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// LockInfo describes the holder of an export root's lock. It is stored as
// JSON in ROOT/.stellaops/lock while the lock is held.
type LockInfo struct {
	PID       int       `json:"pid"`
	Host      string    `json:"host"`
	Command   string    `json:"command"`
	StartedAt time.Time `json:"startedAt"`
}

// BusyError reports that another process (or another Lock in this process)
// holds the export root's lock. It wraps failure.ErrBusy (exit 5).
type BusyError struct {
	// Path is the lock file.
	Path string
	// Holder is what the lock file says about the holder; zero when it
	// could not be read (the holder may not have written it yet).
	Holder LockInfo
	// Waited is how long Lock waited before giving up.
	Waited time.Duration
}

// Error describes the holder: pid, command, host and start time when known.
func (e *BusyError) Error() string {
	msg := "export root is busy: " + e.Path + " is held"
	if e.Holder.PID > 0 {
		msg += fmt.Sprintf(" by pid %d", e.Holder.PID)
		if e.Holder.Command != "" {
			msg += fmt.Sprintf(" (%s)", e.Holder.Command)
		}
		if e.Holder.Host != "" {
			msg += " on " + e.Holder.Host
		}
		if !e.Holder.StartedAt.IsZero() {
			msg += " since " + e.Holder.StartedAt.UTC().Format(time.RFC3339)
		}
	} else {
		msg += " by another process"
	}
	if e.Waited > 0 {
		msg += fmt.Sprintf("; gave up after waiting %s", e.Waited)
	}
	return msg
}

// Unwrap returns failure.ErrBusy.
func (e *BusyError) Unwrap() error { return failure.ErrBusy }

// Lock is a held export root lock.
type Lock struct {
	f    *os.File
	path string
	info LockInfo
}

// Info returns what the lock file says about this holder.
func (l *Lock) Info() LockInfo { return l.info }

// Path returns the lock file's path.
func (l *Lock) Path() string { return l.path }

// Lock takes the export root's exclusive lock, an flock on
// ROOT/.stellaops/lock, and records info in it. Zero fields of info are
// filled in: the process id, the host name and the Root's clock.
//
// When the lock is held elsewhere, Lock returns a *BusyError (wrapping
// failure.ErrBusy) naming the holder's pid and command if wait is 0;
// otherwise it retries until it gets the lock, wait has elapsed (a
// *BusyError), or ctx is done (an error wrapping ctx's error). A lock whose
// holder died is released by the kernel and taken over. A second Lock in
// the same process is refused like any other holder.
func (r *Root) Lock(ctx context.Context, wait time.Duration, info LockInfo) (*Lock, error) {
	p := r.statePath(LockFile)
	if info.PID == 0 {
		info.PID = os.Getpid()
	}
	if info.Host == "" {
		info.Host, _ = os.Hostname()
	}
	if info.StartedAt.IsZero() {
		info.StartedAt = r.now().UTC()
	}

	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	var ticker *time.Ticker
	for {
		l, busy, err := r.tryLock(p, info)
		if err != nil || busy == nil {
			return l, err
		}
		if wait <= 0 {
			return nil, busy
		}
		if r.lockRetryHook != nil {
			r.lockRetryHook()
		}
		if ticker == nil {
			ticker = time.NewTicker(r.pollInterval)
			defer ticker.Stop()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for lock %s: %w", p, ctx.Err())
		case <-deadline:
			// One last attempt, so that a release at the deadline is not missed.
			l, busy, err := r.tryLock(p, info)
			if err != nil || busy == nil {
				return l, err
			}
			busy.Waited = wait
			return nil, busy
		case <-ticker.C:
		}
	}
}

// tryLock makes one attempt. It returns a *BusyError when the lock is held
// elsewhere, or an error for anything else.
func (r *Root) tryLock(p string, info LockInfo) (*Lock, *BusyError, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open lock %s: %w", p, err)
	}
	if err := lockFile(f); err != nil {
		defer f.Close()
		if errors.Is(err, errLocked) {
			return nil, &BusyError{Path: p, Holder: readHolder(f)}, nil
		}
		return nil, nil, fmt.Errorf("lock %s: %w", p, err)
	}
	l := &Lock{f: f, path: p, info: info}
	data, err := json.Marshal(info)
	if err == nil {
		data = append(data, '\n')
		if err = f.Truncate(0); err == nil {
			_, err = f.WriteAt(data, 0)
		}
	}
	if err != nil {
		_ = l.Unlock()
		return nil, nil, fmt.Errorf("write lock %s: %w", p, err)
	}
	return l, nil, nil
}

func readHolder(f *os.File) LockInfo {
	var info LockInfo
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err == nil {
		_ = json.Unmarshal(data, &info)
	}
	return info
}

// Unlock clears the lock file and releases the lock. It is safe to call
// more than once.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	_ = f.Truncate(0)
	err := unlockFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return nil
}
