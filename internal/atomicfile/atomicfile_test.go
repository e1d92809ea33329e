package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/faultfs"
)

// entries returns the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func assertFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() {
		t.Fatalf("%s is %v, want a regular file", path, fi.Mode())
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s mode = %v, want %v", path, fi.Mode().Perm(), mode)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != content {
		t.Errorf("%s = %q, want %q", path, got, content)
	}
}

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "" for none
		exMode   os.FileMode
		perm     os.FileMode
		opts     []Option
		wantMode os.FileMode
	}{
		{"new file", "", 0, 0o644, nil, 0o644},
		{"new file private", "", 0, 0o600, nil, 0o600},
		{"replace takes perm", "old", 0o640, 0o600, nil, 0o600},
		{"keep mode of existing", "old", 0o640, 0o600, []Option{KeepMode()}, 0o640},
		{"keep mode without existing uses perm", "", 0, 0o600, []Option{KeepMode()}, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "htpasswd")
			if tt.existing != "" {
				if err := os.WriteFile(p, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tt.exMode); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(p, []byte("new content\n"), tt.perm, tt.opts...); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			assertFile(t, p, "new content\n", tt.wantMode)
			if got := entries(t, dir); len(got) != 1 {
				t.Errorf("folder holds %v, want only htpasswd", got)
			}
		})
	}
}

func TestWriteFileReplacesSymlinkNotTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	assertFile(t, link, "new", 0o644)
	assertFile(t, target, "target", 0o644)
}

func TestWriteFileFailureLeavesOldFileAndNoTemp(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) (path string)
		fault   string
		wantErr error
	}{
		{
			name: "disk full",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "state.json")
				if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			fault:   "enospc-after=5",
			wantErr: syscall.ENOSPC,
		},
		{
			name: "i/o error",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "state.json")
				if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			fault:   "eio-after=0",
			wantErr: syscall.EIO,
		},
		{
			name: "rename onto a folder",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "state.json")
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(p, "inside"), []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
		{
			name: "missing folder",
			setup: func(t *testing.T, dir string) string {
				return filepath.Join(dir, "missing", "state.json")
			},
			wantErr: os.ErrNotExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tt.setup(t, dir)
			before := entries(t, dir)
			if tt.fault != "" {
				if err := faultfs.Set(tt.fault); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = faultfs.Set("") })
			}
			err := WriteFile(p, []byte("new content that does not fit"), 0o644)
			if err == nil {
				t.Fatal("WriteFile succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			after := entries(t, dir)
			if strings.Join(before, ",") != strings.Join(after, ",") {
				t.Errorf("folder was %v, now %v (temporary file left behind?)", before, after)
			}
			if data, err := os.ReadFile(p); err == nil && string(data) != "old" {
				t.Errorf("old file changed to %q", data)
			}
		})
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if err := SyncDir(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("SyncDir(missing) = %v, want an error naming it", err)
	}
}

func TestSyncTree(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/b/c.json", "a/d.json", "e.json"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a/d.json", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := SyncTree(dir); err != nil {
		t.Errorf("SyncTree: %v", err)
	}

	tests := []struct {
		name string
		path string
	}{
		{"missing", filepath.Join(dir, "missing")},
		{"a file", filepath.Join(dir, "e.json")},
		{"a symlink", filepath.Join(dir, "link")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SyncTree(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("SyncTree(%s) = %v, want an error naming it", tt.path, err)
			}
		})
	}
}
