package exportroot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

func TestResolveActive(t *testing.T) {
	const (
		old = "20250101T000000Z"
		mid = "20250201T000000Z"
		new = "20250301T000000Z"
	)
	tests := []struct {
		name     string
		dirs     []string // folders to create in the root
		files    []string // regular files to create in the root
		latest   string   // symlink target of latest; "" for none
		override string
		noRoot   bool
		want     string
		wantErr  error
	}{
		{name: "override wins over latest", dirs: []string{old, mid, new}, latest: new, override: old, want: old},
		{name: "missing override falls back to latest", dirs: []string{old, new}, latest: old, override: mid, want: old},
		{name: "latest wins over newest", dirs: []string{old, mid, new}, latest: mid, want: mid},
		{name: "no latest takes newest", dirs: []string{mid, old, new}, want: new},
		{name: "dangling latest takes newest", dirs: []string{old, mid}, latest: new, want: mid},
		{name: "latest outside the root takes newest", dirs: []string{old}, latest: "../elsewhere", want: old},
		{name: "latest to a file takes newest", dirs: []string{old}, files: []string{new}, latest: new, want: old},
		{name: "junk names ignored", dirs: []string{old, "tmp", "2025", "20250101T000000", "zzz"}, want: old},
		{name: "override is the only export", dirs: []string{old}, override: old, want: old},
		{name: "empty root", wantErr: ErrNoActiveExport},
		{name: "only junk", dirs: []string{"tmp", ".stellaops"}, files: []string{new}, wantErr: ErrNoActiveExport},
		{name: "missing override and nothing else", override: old, wantErr: ErrNoActiveExport},
		{name: "missing root", noRoot: true, wantErr: ErrNoActiveExport},
		{name: "override not an export id", dirs: []string{old}, override: "../" + old, wantErr: ErrInvalidExportID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			if !tt.noRoot {
				if err := os.Mkdir(root, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range tt.dirs {
				if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.latest != "" {
				if err := os.Symlink(tt.latest, filepath.Join(root, LatestName)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ResolveActive(root, tt.override)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ResolveActive = %q, %v; want error %v", got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), root) {
					t.Errorf("error %q does not name the root", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ResolveActive = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestInvalidExportIDIsUsageError(t *testing.T) {
	_, err := ResolveActive(t.TempDir(), "latest")
	if failure.Code(err) != failure.ExitUsage {
		t.Errorf("exit code for a bad override = %d, want %d (%v)", failure.Code(err), failure.ExitUsage, err)
	}
}

func TestValidExportID(t *testing.T) {
	tests := map[string]bool{
		"20250101T000000Z":   true,
		"20251231T235959Z":   true,
		"20250101T000000":    false,
		"20250101T000000z":   false,
		"2025010T000000Z":    false,
		"20250101T0000000Z":  false,
		"latest":             false,
		"":                   false,
		"../20250101T000000": false,
		"20250101T000000Z\n": false,
	}
	for id, want := range tests {
		if got := ValidExportID(id); got != want {
			t.Errorf("ValidExportID(%q) = %v, want %v", id, got, want)
		}
	}
}
