package archive

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

var update = flag.Bool("update", false, "rewrite testdata/archive/hostile from the generator")

const fixtureDir = "../../testdata/archive/hostile"

func (h hostileStream) fileName() string {
	if h.File != "" {
		return h.File
	}
	return h.Name + ".tar.zst"
}

// walkErr opens path (or stdin) and walks it, returning the first error.
func walkErr(t *testing.T, path string, stdin []byte, limits Limits) error {
	t.Helper()
	src, err := Open(context.Background(), path, bytes.NewReader(stdin), testOpen)
	if err != nil {
		return err
	}
	defer src.Close()
	return src.Walk(context.Background(), limits, func(e EntryInfo, r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
}

// extractErr opens path (or stdin) and extracts it into a new folder, and
// checks that the folder is empty afterwards.
func extractErr(t *testing.T, path string, stdin []byte, limits Limits) error {
	t.Helper()
	out := t.TempDir()
	root, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	src, err := Open(context.Background(), path, bytes.NewReader(stdin), testOpen)
	if err == nil {
		defer src.Close()
		var files []bundle.FileEntry
		files, err = Extract(context.Background(), src, root, limits)
		if err != nil && files != nil {
			t.Errorf("Extract returned files with an error")
		}
	}
	if left := listTree(t, out); len(left) != 0 {
		t.Errorf("Extract left %v behind", left)
	}
	return err
}

func checkHostileErr(t *testing.T, how string, err error, want string, is error, replace map[string]string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted; want %s", how, want)
	}
	got := err.Error()
	for from, to := range replace {
		got = strings.ReplaceAll(got, from, to)
	}
	if got != want {
		t.Errorf("%s:\n got  %s\n want %s", how, got, want)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("%s: %v does not wrap %v", how, err, is)
	}
	if code := failure.Code(err); code != failure.ExitVerification {
		t.Errorf("%s: exit code %d, want %d", how, code, failure.ExitVerification)
	}
}

func TestHostileStreams(t *testing.T) {
	for _, h := range hostileStreams() {
		t.Run(h.Name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, h.fileName())
			if err := os.WriteFile(path, h.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			asFile := map[string]string{path: "$SRC"}
			asStdin := map[string]string{"standard input": "$SRC"}
			checkHostileErr(t, "walk file", walkErr(t, path, nil, h.Limits), h.Want, h.Is, asFile)
			checkHostileErr(t, "walk stdin", walkErr(t, "-", h.Data, h.Limits), h.Want, h.Is, asStdin)
			checkHostileErr(t, "extract file", extractErr(t, path, nil, h.Limits), h.Want, h.Is, asFile)
			checkHostileErr(t, "extract stdin", extractErr(t, "-", h.Data, h.Limits), h.Want, h.Is, asStdin)
		})
	}
}

func TestHostileSplits(t *testing.T) {
	for _, h := range hostileSplits() {
		t.Run(h.Name, func(t *testing.T) {
			dir := t.TempDir()
			m := writeHostileSplit(dir, h)
			if h.Stdin != nil {
				data := h.Stdin(dir, m)
				asStdin := map[string]string{"standard input": "$SRC"}
				checkHostileErr(t, "walk stdin", walkErr(t, "-", data, Limits{}), h.Want, h.Is, asStdin)
				checkHostileErr(t, "extract stdin", extractErr(t, "-", data, Limits{}), h.Want, h.Is, asStdin)
				return
			}
			var paths []string
			for _, name := range []string{m.Archive + PartsManifestSuffix, m.Archive + PartsEnvelopeSuffix} {
				if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
					paths = append(paths, filepath.Join(dir, name))
				}
			}
			for _, p := range m.Parts {
				if _, err := os.Stat(filepath.Join(dir, p.Name)); err == nil {
					paths = append(paths, filepath.Join(dir, p.Name))
					break
				}
			}
			asDir := map[string]string{dir: "$DIR"}
			for _, p := range paths {
				how := "open " + filepath.Base(p)
				// The set is refused by Open, before any of the archive is read.
				src, err := Open(context.Background(), p, nil, testOpen)
				if err == nil {
					src.Close()
					t.Fatalf("%s: Open accepted the set", how)
				}
				checkHostileErr(t, how, err, h.Want, h.Is, asDir)
				checkHostileErr(t, "extract via "+filepath.Base(p), extractErr(t, p, nil, Limits{}), h.Want, h.Is, asDir)
			}
		})
	}
}

// TestHostileFixtures keeps testdata/archive/hostile in step with the
// generator; run with -update to rewrite it.
func TestHostileFixtures(t *testing.T) {
	want := map[string][]byte{}
	for _, h := range hostileStreams() {
		want[h.fileName()] = h.Data
	}
	for _, h := range hostileSplits() {
		dir := t.TempDir()
		m := writeHostileSplit(dir, h)
		if h.Stdin != nil {
			want[h.Name+".stdin"] = h.Stdin(dir, m)
			continue
		}
		for _, name := range listTree(t, dir) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			want[h.Name+"/"+name] = data
		}
	}
	if *update {
		if err := os.RemoveAll(fixtureDir); err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			p := filepath.Join(fixtureDir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var have []string
	if _, err := os.Stat(fixtureDir); err == nil {
		for _, name := range listTree(t, fixtureDir) {
			if info, err := os.Stat(filepath.Join(fixtureDir, name)); err == nil && !info.IsDir() {
				have = append(have, name)
			}
		}
	}
	if len(have) != len(want) {
		t.Fatalf("%s holds %d files, the generator makes %d; run go test ./pkg/archive/ -run TestHostileFixtures -update", fixtureDir, len(have), len(want))
	}
	for _, name := range have {
		data, err := os.ReadFile(filepath.Join(fixtureDir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[name]; !ok || !bytes.Equal(data, w) {
			t.Errorf("%s differs from the generator; run go test ./pkg/archive/ -run TestHostileFixtures -update", name)
		}
	}
}
