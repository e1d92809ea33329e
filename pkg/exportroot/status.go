package exportroot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
)

// States of an import, as reported by Status.State.
const (
	StateIdle      = "idle"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// Status is ROOT/.stellaops/import-status.json, also the body of
// GET /api/v1/mirror/import/status. Errors and Warnings are encoded as
// arrays, never null.
type Status struct {
	State           string     `json:"state"`
	ExportsImported int        `json:"exportsImported"`
	TotalBytes      int64      `json:"totalBytes"`
	Errors          []string   `json:"errors"`
	Warnings        []string   `json:"warnings"`
	StartedAt       *time.Time `json:"startedAt"`
	FinishedAt      *time.Time `json:"finishedAt"`
}

// MarshalJSON encodes s with nil Errors and Warnings as empty arrays.
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status
	p := plain(s)
	if p.Errors == nil {
		p.Errors = []string{}
	}
	if p.Warnings == nil {
		p.Warnings = []string{}
	}
	return json.Marshal(p)
}

func validState(s string) bool {
	switch s {
	case StateIdle, StateRunning, StateSucceeded, StateFailed:
		return true
	}
	return false
}

// WriteStatus atomically replaces ROOT/.stellaops/import-status.json with
// s. An unknown State is refused.
func (r *Root) WriteStatus(s Status) error {
	p := r.statePath(StatusFile)
	if !validState(s.State) {
		return fmt.Errorf("write status %s: unknown state %q", p, s.State)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("write status %s: %w", p, err)
	}
	return atomicfile.WriteFile(p, append(data, '\n'), 0o644)
}

// ReadStatus reads ROOT/.stellaops/import-status.json. When there is none,
// it returns an idle Status.
func (r *Root) ReadStatus() (Status, error) {
	p := r.statePath(StatusFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Status{State: StateIdle, Errors: []string{}, Warnings: []string{}}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("read status %s: %w", p, err)
	}
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return Status{}, fmt.Errorf("read status %s: %w", p, err)
	}
	if !validState(s.State) {
		return Status{}, fmt.Errorf("read status %s: unknown state %q", p, s.State)
	}
	if s.Errors == nil {
		s.Errors = []string{}
	}
	if s.Warnings == nil {
		s.Warnings = []string{}
	}
	return s, nil
}
