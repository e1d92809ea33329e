package importer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// planStage reports, of several problems, the one first met in the walk's
// lexical order, as checking each name in turn did.
func TestPlanStageFirstProblem(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		symlink string
		want    string
	}{
		{"collision", []string{"m/A.json", "m/a.json"}, "", `"m/A.json" and "m/a.json" collide`},
		{"normalisation", []string{"m/caf\u00e9.json", "m/cafe\u0301.json"}, "", "collide"},
		{"collision before an unsafe name", []string{"m/A.json", "m/a.json", "m/z\\x.json"}, "", "collide"},
		{"unsafe name before a collision", []string{"m/0\\x.json", "m/A.json", "m/a.json"}, "", "backslash"},
		{"collision before a symlink", []string{"m/A.json", "m/a.json"}, "m/z.json", "collide"},
		{"symlink before a collision", []string{"m/A.json", "m/a.json"}, "m/0.json", "not a regular file"},
		{"symlink colliding", []string{"m/A.json"}, "m/a.json", "collide"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			for _, f := range tt.files {
				writeTestFile(t, filepath.Join(src, filepath.FromSlash(f)), "{}")
			}
			if tt.symlink != "" {
				if err := os.Symlink("/etc/passwd", filepath.Join(src, filepath.FromSlash(tt.symlink))); err != nil {
					t.Fatal(err)
				}
			}
			_, err := planStage(context.Background(), src)
			if !errors.Is(err, bundle.ErrUnsafePath) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want an unsafe path saying %q", err, tt.want)
			}
		})
	}
}

// planStage lists the folders parents first and every file with its size.
func TestPlanStageLists(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"mirror.json", "mirror/index.json", "mirror/p/vex/a/b.json", "mirror/p/bundle.json"} {
		writeTestFile(t, filepath.Join(src, filepath.FromSlash(f)), f)
	}
	plan, err := planStage(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mirror", "mirror/p", "mirror/p/vex", "mirror/p/vex/a"}; !slices.Equal(plan.dirs, want) {
		t.Errorf("folders %q, want %q", plan.dirs, want)
	}
	var got []string
	for _, j := range plan.files {
		if j.size != int64(len(j.rel)) {
			t.Errorf("%s: size %d, want %d", j.rel, j.size, len(j.rel))
		}
		got = append(got, j.rel)
	}
	if want := []string{"mirror/index.json", "mirror/p/bundle.json", "mirror/p/vex/a/b.json", "mirror.json"}; !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
