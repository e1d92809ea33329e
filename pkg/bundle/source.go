package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// DomainIDPattern is the syntax of domain ids.
var DomainIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

var exportKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7}$`)

// MaxAdvisorySize bounds one advisory document.
const MaxAdvisorySize = 16 << 20

// maxValidatedVEX is the largest VEX file checked as JSON in memory; larger
// files are streamed and only sniffed.
const maxValidatedVEX = 64 << 20

// ErrSource marks a problem with the export's source tree (exit 4).
var ErrSource = failure.New(failure.ErrUsage, "invalid source")

func sourceErr(path, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrSource, path, fmt.Sprintf(format, args...))
}

// sourceDomain is one domain found in the source tree.
type sourceDomain struct {
	ID          string
	DisplayName string
	Dir         string
	Advisories  []sourceAdvisory // sorted by id
	VEX         []sourceVEX      // sorted by key
}

type sourceAdvisory struct {
	ID   string
	Path string
}

type sourceVEX struct {
	Key       string
	Path      string
	Size      int64
	Format    string
	CreatedAt time.Time
}

// scanSource reads the source tree's structure, checks every document and
// returns the domains to export. It keeps paths and ids, not contents.
func scanSource(root string, only []string, created time.Time) ([]sourceDomain, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("source %s: %w", root, err))
	}
	if !info.IsDir() {
		return nil, sourceErr(root, "not a folder")
	}
	absRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("source %s: %w", root, err))
	}
	want := map[string]bool{}
	for _, d := range only {
		if !DomainIDPattern.MatchString(d) {
			return nil, failure.Usagef("--domain %q: invalid domain id (want %s)", d, DomainIDPattern)
		}
		want[d] = true
	}
	var domains []sourceDomain
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(root, name)
		if !e.IsDir() {
			continue
		}
		if !DomainIDPattern.MatchString(name) {
			return nil, sourceErr(p, "invalid domain id %q (want %s)", name, DomainIDPattern)
		}
		if len(want) > 0 && !want[name] {
			continue
		}
		d, err := scanDomain(absRoot, p, name, created)
		if err != nil {
			return nil, err
		}
		domains = append(domains, d)
	}
	for _, d := range only {
		if !slices.ContainsFunc(domains, func(sd sourceDomain) bool { return sd.ID == d }) {
			return nil, failure.Usagef("--domain %s: no such domain in %s", d, root)
		}
	}
	if len(domains) == 0 {
		return nil, sourceErr(root, "no domains found (want <domainId>/advisories and <domainId>/vex folders)")
	}
	return domains, nil
}

func scanDomain(absRoot, dir, id string, created time.Time) (sourceDomain, error) {
	d := sourceDomain{ID: id, DisplayName: id, Dir: dir}
	if data, err := os.ReadFile(filepath.Join(dir, "domain.json")); err == nil {
		var meta struct {
			DisplayName string `json:"displayName"`
		}
		if err := strictjson.Check(data); err != nil {
			return d, sourceErr(filepath.Join(dir, "domain.json"), "invalid JSON: %v", err)
		}
		if err := json.Unmarshal(data, &meta); err != nil {
			return d, sourceErr(filepath.Join(dir, "domain.json"), "invalid JSON: %v", err)
		}
		if meta.DisplayName != "" {
			d.DisplayName = meta.DisplayName
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return d, failure.Classify(failure.ErrUsage, err)
	}
	seen := map[string]string{}
	err := walkJSON(absRoot, filepath.Join(dir, "advisories"), func(path, rel string, size int64) error {
		if size > MaxAdvisorySize {
			return sourceErr(path, "advisory larger than %d bytes", MaxAdvisorySize)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return failure.Classify(failure.ErrUsage, err)
		}
		advID, err := advisoryID(data)
		if err != nil {
			return sourceErr(path, "%v", err)
		}
		if prev, dup := seen[advID]; dup {
			return sourceErr(path, "duplicate advisory id %q (also in %s)", advID, prev)
		}
		seen[advID] = path
		d.Advisories = append(d.Advisories, sourceAdvisory{ID: advID, Path: path})
		return nil
	})
	if err != nil {
		return d, err
	}
	sort.Slice(d.Advisories, func(i, j int) bool { return d.Advisories[i].ID < d.Advisories[j].ID })
	err = walkJSON(absRoot, filepath.Join(dir, "vex"), func(path, rel string, size int64) error {
		key := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
		if !exportKeyPattern.MatchString(key) {
			return sourceErr(path, "invalid export key %q (letters, digits, '.', '_', '-' and '/')", key)
		}
		format, createdAt, err := sniffVEX(path, size)
		if err != nil {
			return sourceErr(path, "%v", err)
		}
		if createdAt.IsZero() {
			createdAt = created
		}
		d.VEX = append(d.VEX, sourceVEX{Key: key, Path: path, Size: size, Format: format, CreatedAt: createdAt.UTC().Truncate(time.Second)})
		return nil
	})
	if err != nil {
		return d, err
	}
	sort.Slice(d.VEX, func(i, j int) bool { return d.VEX[i].Key < d.VEX[j].Key })
	return d, nil
}

// walkJSON calls fn for every *.json file below dir (missing dir: nothing).
// Symlinks are followed only when they stay inside the source tree.
func walkJSON(absRoot, dir string, fn func(path, rel string, size int64) error) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var files []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return failure.Classify(failure.ErrUsage, err)
		}
		if e.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(path)
			if err != nil {
				return sourceErr(path, "broken symlink: %v", err)
			}
			if rel, err := filepath.Rel(absRoot, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return sourceErr(path, "symlink leaves the source tree (points at %s)", target)
			}
			st, err := os.Stat(target)
			if err != nil {
				return failure.Classify(failure.ErrUsage, err)
			}
			if st.IsDir() {
				return sourceErr(path, "symlinked folders are not followed")
			}
		} else if e.IsDir() {
			if strings.HasPrefix(e.Name(), ".") && path != dir {
				return filepath.SkipDir
			}
			return nil
		} else if !e.Type().IsRegular() {
			return sourceErr(path, "not a regular file")
		}
		if strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
			return nil
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		return err
	}
	for _, path := range files {
		st, err := os.Stat(path)
		if err != nil {
			return failure.Classify(failure.ErrUsage, err)
		}
		rel, _ := filepath.Rel(dir, path)
		if err := fn(path, rel, st.Size()); err != nil {
			return err
		}
	}
	return nil
}

// advisoryID checks an advisory document and returns its id.
func advisoryID(data []byte) (string, error) {
	if err := strictjson.Check(data); err != nil {
		return "", fmt.Errorf("invalid JSON: %v", err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return "", errors.New("not a JSON object")
	}
	raw, ok := doc["id"]
	if !ok {
		// CSAF keeps its id in document.tracking.id.
		var csaf struct {
			Document struct {
				Tracking struct {
					ID string `json:"id"`
				} `json:"tracking"`
			} `json:"document"`
		}
		if json.Unmarshal(data, &csaf) == nil && csaf.Document.Tracking.ID != "" {
			return csaf.Document.Tracking.ID, nil
		}
		return "", errors.New(`advisory has no "id"`)
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil || strings.TrimSpace(id) == "" {
		return "", errors.New(`advisory "id" must be a non-empty string`)
	}
	return id, nil
}

var (
	reTimestamp   = regexp.MustCompile(`"timestamp"\s*:\s*"([^"]{10,40})"`)
	reReleaseDate = regexp.MustCompile(`"current_release_date"\s*:\s*"([^"]{10,40})"`)
)

// sniffVEX detects the VEX format and creation time from the file's start,
// and validates files up to maxValidatedVEX as strict JSON.
func sniffVEX(path string, size int64) (string, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	head := make([]byte, 256<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", time.Time{}, err
	}
	head = head[:n]
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return "", time.Time{}, errors.New("not a JSON object")
	}
	if size <= maxValidatedVEX {
		data := head
		if int64(n) < size {
			rest, err := io.ReadAll(f)
			if err != nil {
				return "", time.Time{}, err
			}
			data = append(append([]byte{}, head...), rest...)
		}
		if err := strictjson.Check(data); err != nil {
			return "", time.Time{}, fmt.Errorf("invalid JSON: %v", err)
		}
	}
	format := "json"
	var ts []byte
	switch {
	case bytes.Contains(head, []byte("openvex.dev")) || bytes.Contains(head, []byte(`"@context"`)):
		format = "openvex"
	case bytes.Contains(head, []byte(`"bomFormat"`)):
		format = "cyclonedx"
	case bytes.Contains(head, []byte(`"csaf_version"`)):
		format = "csaf"
	}
	if format == "csaf" {
		if m := reReleaseDate.FindSubmatch(head); m != nil {
			ts = m[1]
		}
	} else if m := reTimestamp.FindSubmatch(head); m != nil {
		ts = m[1]
	}
	var t time.Time
	if ts != nil {
		if parsed, err := time.Parse(time.RFC3339, string(ts)); err == nil {
			t = parsed
		}
	}
	return format, t, nil
}
