// Package exportroot manages the on-disk export root that mirror import and
// mirror sync write and mirror serve reads (CONTRACT.md §1.4):
//
//	ROOT/<exportId>/           a complete, verified bundle tree, never modified after it appears
//	ROOT/latest -> <exportId>  relative symlink, replaced atomically
//	ROOT/.stellaops/           state: lock, staging, high-water mark, status, import log, trust store
//
// Writers take the root's lock, build a bundle in a staging folder from
// NewStaging, and publish it with Activate. Every step is ordered so that a
// kill -9 at any point leaves latest pointing at a complete export.
package exportroot

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Names of the files and folders in the state folder.
const (
	LockFile     = "lock"
	SequenceFile = "sequence.json"
	StatusFile   = "import-status.json"
	LogFile      = "import.log"
	StagingDir   = "staging"
	TrashDir     = "trash"
)

// latestTempPrefix starts the names of the symlinks that Activate and
// SetLatest create before renaming them over latest.
const latestTempPrefix = ".latest.tmp-"

// Root is an opened export root folder.
type Root struct {
	dir   string
	state string
	now   func() time.Time

	// pollInterval is how often Lock retries while waiting.
	pollInterval time.Duration
	// lockRetryHook, when set, runs after each failed attempt to take the
	// lock while waiting (tests use it to synchronise with the wait loop).
	lockRetryHook func()
}

// Option configures a Root.
type Option func(*Root)

// WithClock sets the clock used for timestamps the Root writes itself
// (the high-water mark's updatedAt, a lock's startedAt when unset).
func WithClock(now func() time.Time) Option {
	return func(r *Root) { r.now = now }
}

// Open opens the export root dir, creating dir and its state folder
// (mode 0755) when missing.
func Open(dir string, opts ...Option) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open export root %s: %w", dir, err)
	}
	r := &Root{
		dir:          abs,
		state:        filepath.Join(abs, StateDirName),
		now:          time.Now,
		pollInterval: 100 * time.Millisecond,
	}
	for _, o := range opts {
		o(r)
	}
	if err := os.MkdirAll(r.state, 0o755); err != nil {
		return nil, fmt.Errorf("open export root %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open export root %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open export root %s: not a folder", dir)
	}
	return r, nil
}

// Dir returns the absolute path of the export root.
func (r *Root) Dir() string { return r.dir }

// StateDir returns the absolute path of the state folder, ROOT/.stellaops.
func (r *Root) StateDir() string { return r.state }

// ExportDir returns the path of the export folder for exportID.
func (r *Root) ExportDir(exportID string) string { return filepath.Join(r.dir, exportID) }

func (r *Root) statePath(name string) string { return filepath.Join(r.state, name) }

// randomSuffix returns 16 hex characters from crypto/rand.
func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
