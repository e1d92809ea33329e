package exportroot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
	"github.com/stellaops/stellaops-cli/internal/crashpoint"
)

// Crash points of Activate and SetLatest, in the order they are passed.
var (
	cpActivateBeforeRename   = crashpoint.Register("activate-before-rename")
	cpActivateAfterRename    = crashpoint.Register("activate-after-rename")
	cpActivateAfterRootSync  = crashpoint.Register("activate-after-root-sync")
	cpActivateAfterHWM       = crashpoint.Register("activate-after-hwm")
	cpActivateAfterTempLink  = crashpoint.Register("activate-after-temp-link")
	cpActivateAfterLatest    = crashpoint.Register("activate-after-latest")
	cpActivateAfterFinalSync = crashpoint.Register("activate-after-final-sync")
	cpSetLatestAfterTempLink = crashpoint.Register("setlatest-after-temp-link")
	cpSetLatestAfterLatest   = crashpoint.Register("setlatest-after-latest")
	cpPruneAfterTrashRename  = crashpoint.Register("prune-after-trash-rename")
)

// ErrExportExists reports that Activate found an export folder with the
// same id already in place. Export folders are never modified after they
// appear; to make an existing one active again, use RecordHighWater and
// SetLatest.
var ErrExportExists = errors.New("export folder already exists")

// HighWaterMark is ROOT/.stellaops/sequence.json: the highest sequence
// ever activated in this root, and the export that carried it.
type HighWaterMark struct {
	Sequence  int64     `json:"sequence"`
	ExportID  string    `json:"exportId"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// NewStaging creates an empty, uniquely named staging folder (mode 0755)
// below ROOT/.stellaops/staging, on the same file system as the export
// folders so that Activate can rename it into place.
func (r *Root) NewStaging() (string, error) {
	parent := r.statePath(StagingDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create staging folder in %s: %w", parent, err)
	}
	dir, err := os.MkdirTemp(parent, "s-")
	if err != nil {
		return "", fmt.Errorf("create staging folder in %s: %w", parent, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.Remove(dir)
		return "", fmt.Errorf("create staging folder %s: %w", dir, err)
	}
	return dir, nil
}

// CleanStaging removes what interrupted runs left behind: every staging
// folder, every folder in the trash, and temporary latest links. It returns
// the paths it removed. Call it only while holding the lock.
func (r *Root) CleanStaging() ([]string, error) {
	var removed []string
	for _, sub := range []string{StagingDir, TrashDir} {
		parent := r.statePath(sub)
		entries, err := os.ReadDir(parent)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("clean %s: %w", parent, err)
		}
		for _, e := range entries {
			p := filepath.Join(parent, e.Name())
			if err := os.RemoveAll(p); err != nil {
				return removed, fmt.Errorf("clean %s: %w", p, err)
			}
			removed = append(removed, p)
		}
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return removed, fmt.Errorf("clean %s: %w", r.dir, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), latestTempPrefix) || e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		p := filepath.Join(r.dir, e.Name())
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("clean %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	if len(removed) > 0 {
		if err := atomicfile.SyncDir(r.dir); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// Activate publishes the complete, verified tree in stagingDir as export
// exportID. Call it while holding the lock. The steps, each durable before
// the next starts:
//
//  1. fsync every file and folder of stagingDir;
//  2. rename stagingDir to ROOT/<exportID> (refused with ErrExportExists
//     when that exists), then fsync ROOT;
//  3. raise the high-water mark to sequence (RecordHighWater);
//  4. point latest at exportID: a symlink at a temporary name renamed over
//     latest, then fsync ROOT.
//
// A crash at any step leaves latest at the previous export or at the new,
// complete one; CleanStaging removes the leftovers. When a step fails with
// an error before latest is switched, Activate moves the export folder back
// to stagingDir and restores the high-water mark, so the root is as it was.
// Activate does not apply the rollback policy; callers compare sequence
// with HighWater first.
func (r *Root) Activate(stagingDir, exportID string, sequence int64) error {
	if !ValidExportID(exportID) {
		return fmt.Errorf("activate %s: %w %q", stagingDir, ErrInvalidExportID, exportID)
	}
	if err := r.checkStaging(stagingDir); err != nil {
		return err
	}
	fi, err := os.Lstat(stagingDir)
	if err != nil {
		return fmt.Errorf("activate %s: %w", stagingDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("activate %s: not a folder", stagingDir)
	}
	dest := r.ExportDir(exportID)

	// Kept to restore the high-water mark if a later step fails.
	prevHWM, prevHWMErr := os.ReadFile(r.statePath(SequenceFile))
	if prevHWMErr != nil && !errors.Is(prevHWMErr, fs.ErrNotExist) {
		return fmt.Errorf("activate %s: read high-water mark: %w", exportID, prevHWMErr)
	}
	hadHWM := prevHWMErr == nil

	if err := atomicfile.SyncTree(stagingDir); err != nil {
		return fmt.Errorf("activate %s: %w", exportID, err)
	}
	crashpoint.Hit(cpActivateBeforeRename)

	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("activate %s: %s: %w", exportID, dest, ErrExportExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("activate %s: %w", exportID, err)
	}
	if err := os.Rename(stagingDir, dest); err != nil {
		return fmt.Errorf("activate %s: %w", exportID, err)
	}
	crashpoint.Hit(cpActivateAfterRename)

	if err := atomicfile.SyncDir(r.dir); err != nil {
		return r.rollback(fmt.Errorf("activate %s: %w", exportID, err), stagingDir, dest, false, nil, false)
	}
	_ = atomicfile.SyncDir(filepath.Dir(stagingDir))
	crashpoint.Hit(cpActivateAfterRootSync)

	if err := r.RecordHighWater(exportID, sequence); err != nil {
		return r.rollback(fmt.Errorf("activate %s: %w", exportID, err), stagingDir, dest, false, nil, false)
	}
	crashpoint.Hit(cpActivateAfterHWM)

	committed, err := r.swapLatest(exportID, cpActivateAfterTempLink, cpActivateAfterLatest)
	if err != nil {
		err = fmt.Errorf("activate %s: %w", exportID, err)
		if committed {
			// latest already points at the new, complete export.
			return err
		}
		return r.rollback(err, stagingDir, dest, true, prevHWM, hadHWM)
	}
	crashpoint.Hit(cpActivateAfterFinalSync)
	return nil
}

// rollback undoes an Activate that failed with an error (not a crash)
// before latest was switched: it restores the previous high-water mark when
// it was raised, and moves the export folder back to stagingDir, so that a
// failed import leaves the root as it was. If the mark cannot be restored,
// the export folder stays in place, which is the state a crash right after
// raising the mark leaves. It returns cause joined with any rollback error.
func (r *Root) rollback(cause error, stagingDir, dest string, hwmWritten bool, prevHWM []byte, hadHWM bool) error {
	if hwmWritten {
		p := r.statePath(SequenceFile)
		var err error
		if hadHWM {
			err = atomicfile.WriteFile(p, prevHWM, 0o644)
		} else if err = os.Remove(p); err == nil {
			err = atomicfile.SyncDir(r.state)
		}
		if err != nil {
			return errors.Join(cause, fmt.Errorf("roll back: restore %s: %w", p, err))
		}
	}
	if err := os.Rename(dest, stagingDir); err != nil {
		return errors.Join(cause, fmt.Errorf("roll back: move %s back to %s: %w", dest, stagingDir, err))
	}
	if err := atomicfile.SyncDir(r.dir); err != nil {
		return errors.Join(cause, fmt.Errorf("roll back: %w", err))
	}
	return cause
}

// checkStaging refuses a staging folder that is not below
// ROOT/.stellaops/staging, so that Activate never moves anything else.
func (r *Root) checkStaging(stagingDir string) error {
	abs, err := filepath.Abs(stagingDir)
	if err != nil {
		return fmt.Errorf("activate %s: %w", stagingDir, err)
	}
	rel, err := filepath.Rel(r.statePath(StagingDir), abs)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("activate %s: not a staging folder of %s (use NewStaging)", stagingDir, r.dir)
	}
	return nil
}

// SetLatest points latest at the existing export folder exportID with the
// same atomic swap as Activate. It is used when an export that is already
// in the root is imported again after latest moved elsewhere; call
// RecordHighWater first so that the high-water mark covers it.
func (r *Root) SetLatest(exportID string) error {
	if !ValidExportID(exportID) {
		return fmt.Errorf("set %s: %w %q", filepath.Join(r.dir, LatestName), ErrInvalidExportID, exportID)
	}
	dest := r.ExportDir(exportID)
	if !isDir(dest) {
		return fmt.Errorf("set %s to %s: %s is not an export folder: %w", filepath.Join(r.dir, LatestName), exportID, dest, fs.ErrNotExist)
	}
	_, err := r.swapLatest(exportID, cpSetLatestAfterTempLink, cpSetLatestAfterLatest)
	return err
}

// swapLatest creates a symlink to exportID at a temporary name, renames it
// over latest and fsyncs the root, passing the given crash points after the
// link is created and after the rename. committed reports whether latest
// was switched, also when a later step failed.
func (r *Root) swapLatest(exportID, cpAfterTemp, cpAfterRename string) (committed bool, err error) {
	latest := filepath.Join(r.dir, LatestName)
	if fi, err := os.Lstat(latest); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return false, fmt.Errorf("replace %s: exists and is not a symlink", latest)
	}
	tmp := filepath.Join(r.dir, latestTempPrefix+randomSuffix())
	if err := os.Symlink(exportID, tmp); err != nil {
		return false, fmt.Errorf("replace %s: %w", latest, err)
	}
	crashpoint.Hit(cpAfterTemp)
	if err := os.Rename(tmp, latest); err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("replace %s: %w", latest, err)
	}
	crashpoint.Hit(cpAfterRename)
	if err := atomicfile.SyncDir(r.dir); err != nil {
		return true, fmt.Errorf("replace %s: %w", latest, err)
	}
	return true, nil
}

// RecordHighWater raises the high-water mark to sequence, naming
// exportID, when sequence is above the recorded one; otherwise it leaves
// the mark as it is (an allowed downgrade does not lower it). The file is
// replaced atomically. Call it while holding the lock.
func (r *Root) RecordHighWater(exportID string, sequence int64) error {
	cur, err := r.HighWater()
	if err != nil {
		return err
	}
	if cur.ExportID != "" && sequence <= cur.Sequence {
		return nil
	}
	hwm := HighWaterMark{Sequence: sequence, ExportID: exportID, UpdatedAt: r.now().UTC()}
	data, err := json.MarshalIndent(hwm, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", r.statePath(SequenceFile), err)
	}
	return atomicfile.WriteFile(r.statePath(SequenceFile), append(data, '\n'), 0o644)
}

// HighWater returns the recorded high-water mark, or the zero value when
// none was recorded yet.
func (r *Root) HighWater() (HighWaterMark, error) {
	p := r.statePath(SequenceFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return HighWaterMark{}, nil
	}
	if err != nil {
		return HighWaterMark{}, fmt.Errorf("read high-water mark %s: %w", p, err)
	}
	var hwm HighWaterMark
	if err := json.Unmarshal(data, &hwm); err != nil {
		return HighWaterMark{}, fmt.Errorf("read high-water mark %s: %w", p, err)
	}
	return hwm, nil
}

// Latest returns the export id that ROOT/latest points at, or "" when
// there is no latest link. A latest that is not a symlink to an export id
// is an error.
func (r *Root) Latest() (string, error) {
	if _, err := os.Lstat(filepath.Join(r.dir, LatestName)); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return readLatest(r.dir)
}

// Exports returns the ids of the export folders, oldest first. Entries
// whose names are not export ids are ignored.
func (r *Root) Exports() ([]string, error) {
	return listExports(r.dir)
}

// Prune removes the oldest export folders so that keep remain, never the
// one latest points at (which then remains in addition). keep <= 0 removes
// nothing. Each folder is first renamed into ROOT/.stellaops/trash, so no
// half-deleted export is ever visible under its id, then deleted. It
// returns the ids removed. Call it while holding the lock.
func (r *Root) Prune(keep int) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	ids, err := r.Exports()
	if err != nil {
		return nil, err
	}
	latest, err := r.Latest()
	if err != nil {
		return nil, fmt.Errorf("prune %s: %w", r.dir, err)
	}
	if len(ids) <= keep {
		return nil, nil
	}
	trash := r.statePath(TrashDir)
	if err := os.MkdirAll(trash, 0o755); err != nil {
		return nil, fmt.Errorf("prune %s: %w", r.dir, err)
	}
	var removed []string
	var trashed []string
	for _, id := range ids[:len(ids)-keep] {
		if id == latest {
			continue
		}
		dst := filepath.Join(trash, id+"-"+randomSuffix())
		if err := os.Rename(r.ExportDir(id), dst); err != nil {
			return removed, fmt.Errorf("prune %s: %w", r.ExportDir(id), err)
		}
		removed = append(removed, id)
		trashed = append(trashed, dst)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	if err := atomicfile.SyncDir(r.dir); err != nil {
		return removed, fmt.Errorf("prune %s: %w", r.dir, err)
	}
	crashpoint.Hit(cpPruneAfterTrashRename)
	for _, p := range trashed {
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("prune: remove %s: %w", p, err)
		}
	}
	return removed, nil
}
