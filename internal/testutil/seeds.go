package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// CorpusSeeds returns the contents of the files of the hostile corpus
// (testdata/hostile, see internal/hostilegen) whose path matches pattern
// (filepath.Glob syntax, relative to testdata/hostile), skipping files
// larger than maxSize, for fuzz targets to add as seeds. moduleRoot is the
// path from the test's package to the module root, such as "../..".
func CorpusSeeds(tb testing.TB, moduleRoot, pattern string, maxSize int64) [][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(moduleRoot, "testdata", "hostile", pattern))
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, name := range names {
		fi, err := os.Stat(name)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxSize {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}
