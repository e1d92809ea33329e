// Package testutil holds helpers shared by tests of packages that write to
// an export root.
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Paths below an export root that Fingerprint leaves out: files that an
// attempt may change even when it fails (the import log records every
// attempt, the status file its outcome, the lock file its holder).
var ignoredFiles = map[string]bool{
	".stellaops/import.log":         true,
	".stellaops/import-status.json": true,
	".stellaops/lock":               true,
}

// Folders whose own entries Fingerprint leaves out (their contents are
// still listed): the state scaffolding that opening a root or starting an
// import creates.
var ignoredDirs = map[string]bool{
	".stellaops":         true,
	".stellaops/staging": true,
	".stellaops/trash":   true,
}

// Fingerprint returns a deterministic description of the tree at root,
// one line per entry in lexical path order: path, type, permission bits,
// and for regular files the size and SHA-256, for symlinks the target.
// It leaves out .stellaops/import.log, .stellaops/import-status.json,
// .stellaops/lock and the entries (not the contents) of the folders
// .stellaops, .stellaops/staging and .stellaops/trash, so that
//
//	before := testutil.Fingerprint(t, root)
//	... a failing import ...
//	testutil.AssertUnchanged(t, root, before)
//
// checks that nothing visible changed. A missing root has the fingerprint
// "(absent)\n".
func Fingerprint(t testing.TB, root string) string {
	t.Helper()
	fp, err := FingerprintDir(root)
	if err != nil {
		t.Fatalf("fingerprint %s: %v", root, err)
	}
	return fp
}

// FingerprintDir is Fingerprint for callers without a testing.TB (test
// scripts); it returns the walk's error instead of failing the test.
func FingerprintDir(root string) (string, error) {
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return "(absent)\n", nil
	}
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if ignoredFiles[rel] || (d.IsDir() && ignoredDirs[rel]) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		name := strconv.Quote(rel)
		perm := fi.Mode().Perm() | (fi.Mode() & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky))
		switch {
		case fi.Mode().IsRegular():
			sum, err := fileSHA256(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s file %v %d %s\n", name, perm, fi.Size(), sum)
		case fi.IsDir():
			fmt.Fprintf(&b, "%s dir %v\n", name, perm)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s symlink -> %s\n", name, strconv.Quote(target))
		default:
			fmt.Fprintf(&b, "%s other %v\n", name, fi.Mode())
		}
		return nil
	})
	return b.String(), err
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// AssertUnchanged fails t when the fingerprint of root differs from
// before, listing the entries that disappeared or changed ("-") and those
// that appeared or changed ("+").
func AssertUnchanged(t testing.TB, root, before string) {
	t.Helper()
	after := Fingerprint(t, root)
	if after == before {
		return
	}
	t.Errorf("export root %s changed:\n%s", root, Diff(before, after))
}

// Diff compares two fingerprints line by line and returns the lines only
// in a prefixed with "- " and those only in b prefixed with "+ ", in path
// order.
func Diff(a, b string) string {
	al := splitLines(a)
	bl := splitLines(b)
	inA := make(map[string]bool, len(al))
	for _, l := range al {
		inA[l] = true
	}
	inB := make(map[string]bool, len(bl))
	for _, l := range bl {
		inB[l] = true
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(al) || j < len(bl) {
		switch {
		case i < len(al) && inB[al[i]]:
			i++
		case j < len(bl) && inA[bl[j]]:
			j++
		case j >= len(bl) || (i < len(al) && al[i] <= bl[j]):
			out.WriteString("- " + al[i] + "\n")
			i++
		default:
			out.WriteString("+ " + bl[j] + "\n")
			j++
		}
	}
	return out.String()
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
