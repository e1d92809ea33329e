package exportroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// LatestName is the name of the symlink in the export root that points at
// the active export folder.
const LatestName = "latest"

// StateDirName is the name of the state folder inside the export root.
const StateDirName = ".stellaops"

// ErrNoActiveExport reports that an export root holds no export that could
// be served: no valid override, no usable latest link and no export folder.
var ErrNoActiveExport = errors.New("no active export")

// ErrInvalidExportID reports a string that is not an export id
// (UTC YYYYMMDDTHHMMSSZ). It is a usage error (failure.ErrUsage).
var ErrInvalidExportID = failure.Usagef("invalid export id")

var exportIDPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z$`)

// ValidExportID reports whether id has the export id form YYYYMMDDTHHMMSSZ.
func ValidExportID(id string) bool {
	return exportIDPattern.MatchString(id)
}

// ResolveActive picks the export that serve should publish from rootDir:
// override (ACTIVEEXPORTID) when it is non-empty and names an existing
// export folder, else the target of the latest link, else the newest export
// folder. It returns an error wrapping ErrNoActiveExport when none applies.
// An override that is not a valid export id is refused with
// ErrInvalidExportID.
func ResolveActive(rootDir, override string) (string, error) {
	if override != "" {
		if !ValidExportID(override) {
			return "", fmt.Errorf("active export override %q in %s: %w", override, rootDir, ErrInvalidExportID)
		}
		if isDir(filepath.Join(rootDir, override)) {
			return override, nil
		}
	}
	if id, err := readLatest(rootDir); err == nil && isDir(filepath.Join(rootDir, id)) {
		return id, nil
	}
	ids, err := listExports(rootDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if len(ids) > 0 {
		return ids[len(ids)-1], nil
	}
	if override != "" {
		return "", fmt.Errorf("export root %s: override %s does not exist and no other export found: %w", rootDir, override, ErrNoActiveExport)
	}
	return "", fmt.Errorf("export root %s: %w", rootDir, ErrNoActiveExport)
}

// readLatest returns the export id that rootDir/latest points at. The link
// must be a plain relative name that is a valid export id.
func readLatest(rootDir string) (string, error) {
	p := filepath.Join(rootDir, LatestName)
	target, err := os.Readlink(p)
	if err != nil {
		return "", fmt.Errorf("read link %s: %w", p, err)
	}
	target = filepath.Clean(target)
	if !ValidExportID(target) {
		return "", fmt.Errorf("link %s points at %q, not an export id: %w", p, target, ErrInvalidExportID)
	}
	return target, nil
}

// listExports returns the export folder names in rootDir, oldest first.
// Entries that are not folders or whose names are not export ids are
// ignored.
func listExports(rootDir string) ([]string, error) {
	entries, err := os.ReadDir(rootDir)
	if err != nil {
		return nil, fmt.Errorf("list export root %s: %w", rootDir, err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && ValidExportID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}
