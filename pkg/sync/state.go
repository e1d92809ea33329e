package sync

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
)

// maxStateSize bounds the sync state file.
const maxStateSize = 4 << 20

// State is ROOT/.stellaops/sync-state.json: what the last successful sync
// saw upstream. A run whose index matches it makes no further request.
type State struct {
	SchemaVersion int `json:"schemaVersion"`
	// Source is the index URL synced from.
	Source string `json:"source"`
	// ETag is the index response's ETag, sent as If-None-Match; kept only
	// when the served index is the exact bytes of the export's index.json.
	ETag        string    `json:"etag,omitempty"`
	ExportID    string    `json:"exportId"`
	Sequence    int64     `json:"sequence"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Domains fingerprint each domain: its bundle digest and lastGenerated.
	Domains           []DomainFingerprint `json:"domains"`
	SignatureProvider string              `json:"signatureProvider,omitempty"`
	SyncedAt          time.Time           `json:"syncedAt"`
}

// DomainFingerprint identifies one domain's content in an index.
type DomainFingerprint struct {
	ID            string    `json:"id"`
	BundleSha256  string    `json:"bundleSha256"`
	LastGenerated time.Time `json:"lastGenerated"`
}

// fingerprint lists the index's domains, sorted by id.
func fingerprint(idx *bundle.Index) []DomainFingerprint {
	out := make([]DomainFingerprint, 0, len(idx.Domains))
	for _, d := range idx.Domains {
		out = append(out, DomainFingerprint{ID: d.ID, BundleSha256: d.BundleSha256, LastGenerated: d.LastGenerated.UTC()})
	}
	slices.SortFunc(out, func(a, b DomainFingerprint) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

func sameFingerprint(a, b []DomainFingerprint) bool {
	return slices.EqualFunc(a, b, func(x, y DomainFingerprint) bool {
		return x.ID == y.ID && x.BundleSha256 == y.BundleSha256 && x.LastGenerated.Equal(y.LastGenerated)
	})
}

// readState reads the sync state of rootDir without creating anything.
// A missing or unreadable state is nil: the run then syncs in full.
func readState(rootDir string) (*State, error) {
	p := filepath.Join(rootDir, exportroot.StateDirName, StateFile)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, err
	}
	var st State
	if len(b) > maxStateSize {
		return nil, errors.New(p + ": too large")
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	if st.SchemaVersion != SchemaVersion {
		return nil, nil
	}
	return &st, nil
}

// usable reports whether st describes this upstream and an export the
// root still holds.
func (st *State) usable(source, rootDir string) bool {
	if st == nil || st.Source != source || !exportroot.ValidExportID(st.ExportID) {
		return false
	}
	fi, err := os.Stat(filepath.Join(rootDir, st.ExportID))
	return err == nil && fi.IsDir()
}

// ReadState returns the sync state of the export root at rootDir, or nil
// when there is none.
func ReadState(rootDir string) (*State, error) { return readState(rootDir) }

func marshalState(st *State) ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
