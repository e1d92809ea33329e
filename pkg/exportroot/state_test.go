package exportroot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestState(t *testing.T) {
	r := openRoot(t)
	if err := r.WriteState("trust-roots.pem", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteState("trust-roots.pem", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadState("trust-roots.pem")
	if err != nil || string(got) != "v2" {
		t.Errorf("ReadState = %q, %v", got, err)
	}
	fi, err := os.Stat(filepath.Join(r.StateDir(), "trust-roots.pem"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("state file mode %v, %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(r.StateDir())
	if len(entries) != 1 {
		t.Errorf("state folder holds %v, want only trust-roots.pem", entries)
	}

	_, err = r.ReadState("sync-fingerprints.json")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(r.StateDir(), "sync-fingerprints.json")) {
		t.Errorf("ReadState(missing) = %v, want ErrNotExist naming the file", err)
	}
}

func TestStateRefusesNames(t *testing.T) {
	r := openRoot(t)
	for _, name := range []string{"", ".", "..", "../escape", "a/b", `a\b`, "/etc/passwd", ".hidden", "a\x00b",
		LockFile, SequenceFile, StatusFile, LogFile, StagingDir, TrashDir} {
		t.Run(name, func(t *testing.T) {
			if err := r.WriteState(name, []byte("x")); err == nil {
				t.Errorf("WriteState(%q) succeeded", name)
			} else if !strings.Contains(err.Error(), r.StateDir()) {
				t.Errorf("WriteState(%q) = %v, want it to name the state folder", name, err)
			}
			if _, err := r.ReadState(name); err == nil {
				t.Errorf("ReadState(%q) succeeded", name)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(r.Dir()), "escape")); err == nil {
		t.Error("WriteState wrote outside the state folder")
	}
}
