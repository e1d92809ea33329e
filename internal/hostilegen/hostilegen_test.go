package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestCorpusUpToDate regenerates the corpus and compares it with
// testdata/hostile, file by file.
func TestCorpusUpToDate(t *testing.T) {
	want, err := Generate(filepath.Join("..", "..", "testdata", "keys"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "testdata", "hostile")
	have := map[string]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		have[rel] = true
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if w, ok := want[rel]; !ok {
			t.Errorf("%s is not made by the generator", rel)
		} else if !bytes.Equal(data, w) {
			t.Errorf("%s differs from the generator", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want.Names() {
		if !have[name] {
			t.Errorf("%s is missing", name)
		}
	}
	if t.Failed() {
		t.Log("run: go run ./internal/hostilegen (from the module root)")
	}
}

// TestSealKeepsCleanBundle checks that sealing an untouched export gives
// it back byte for byte: the cases that re-sign differ from the export
// only where they tamper.
func TestSealKeepsCleanBundle(t *testing.T) {
	g, err := newGen(filepath.Join("..", "..", "testdata", "keys"))
	if err != nil {
		t.Fatal(err)
	}
	g.tmp = t.TempDir()
	if err := g.writeSource(); err != nil {
		t.Fatal(err)
	}
	if g.base, err = g.export(g.k, 10, created10, 0); err != nil {
		t.Fatal(err)
	}
	sealed := g.seal(g.base.clone())
	for _, name := range g.base.names() {
		if !bytes.Equal(sealed[name], g.base[name]) {
			t.Errorf("seal changed %s", name)
		}
	}
	if len(sealed) != len(g.base) {
		t.Errorf("seal made %d files of %d", len(sealed), len(g.base))
	}
}
