package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sampleRoot builds a small export root.
func sampleRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write(t, root, "20250101T000000Z/mirror.json", `{"exportId":"20250101T000000Z"}`)
	write(t, root, "20250101T000000Z/mirror/index.json", `{}`)
	write(t, root, ".stellaops/sequence.json", `{"sequence":1}`)
	if err := os.Symlink("20250101T000000Z", filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestFingerprintDetectsChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, root string)
		want   string // a line of the diff
	}{
		{"content", func(t *testing.T, root string) {
			write(t, root, "20250101T000000Z/mirror.json", `{"exportId":"20250101T000000Y"}`)
		}, `- "20250101T000000Z/mirror.json" file`},
		{"mode", func(t *testing.T, root string) {
			if err := os.Chmod(filepath.Join(root, "20250101T000000Z/mirror/index.json"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, `+ "20250101T000000Z/mirror/index.json" file -rw-------`},
		{"symlink target", func(t *testing.T, root string) {
			p := filepath.Join(root, "latest")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("20990101T000000Z", p); err != nil {
				t.Fatal(err)
			}
		}, `+ "latest" symlink -> "20990101T000000Z"`},
		{"new export folder", func(t *testing.T, root string) {
			if err := os.Mkdir(filepath.Join(root, "20250102T000000Z"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, `+ "20250102T000000Z" dir`},
		{"removed file", func(t *testing.T, root string) {
			if err := os.Remove(filepath.Join(root, ".stellaops/sequence.json")); err != nil {
				t.Fatal(err)
			}
		}, `- ".stellaops/sequence.json" file`},
		{"staging leftovers", func(t *testing.T, root string) {
			write(t, root, ".stellaops/staging/s-1/mirror.json", "partial")
		}, `+ ".stellaops/staging/s-1" dir`},
		{"trust store", func(t *testing.T, root string) {
			write(t, root, ".stellaops/trust-roots.pem", "key")
		}, `+ ".stellaops/trust-roots.pem" file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := sampleRoot(t)
			before := Fingerprint(t, root)
			if again := Fingerprint(t, root); again != before {
				t.Fatalf("fingerprint not deterministic:\n%s\n%s", before, again)
			}
			tt.change(t, root)
			after := Fingerprint(t, root)
			if after == before {
				t.Fatalf("fingerprint did not change:\n%s", before)
			}
			if d := Diff(before, after); !strings.Contains(d, tt.want) {
				t.Errorf("diff does not contain %q:\n%s", tt.want, d)
			}
		})
	}
}

func TestFingerprintIgnoresAttemptRecords(t *testing.T) {
	root := sampleRoot(t)
	before := Fingerprint(t, root)
	write(t, root, ".stellaops/import.log", "{}\n")
	write(t, root, ".stellaops/import-status.json", `{"state":"failed"}`)
	write(t, root, ".stellaops/lock", `{"pid":1}`)
	for _, d := range []string{".stellaops/staging", ".stellaops/trash"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	AssertUnchanged(t, root, before)
}

func TestFingerprintAbsentRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "missing")
	if got := Fingerprint(t, root); got != "(absent)\n" {
		t.Errorf("Fingerprint(missing) = %q", got)
	}
}

// recorder captures what AssertUnchanged reports.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestAssertUnchanged(t *testing.T) {
	root := sampleRoot(t)
	before := Fingerprint(t, root)

	rec := &recorder{TB: t}
	AssertUnchanged(rec, root, before)
	if len(rec.errors) != 0 {
		t.Fatalf("unchanged root reported: %v", rec.errors)
	}

	write(t, root, "20250101T000000Z/mirror/index.json", `{"changed":true}`)
	write(t, root, "extra", "x")
	AssertUnchanged(rec, root, before)
	if len(rec.errors) != 1 {
		t.Fatalf("got %d reports, want 1: %v", len(rec.errors), rec.errors)
	}
	msg := rec.errors[0]
	for _, want := range []string{
		root,
		`- "20250101T000000Z/mirror/index.json" file -rw-r--r-- 2 `,
		`+ "20250101T000000Z/mirror/index.json" file -rw-r--r-- 16 `,
		`+ "extra" file`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("report does not contain %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "latest") {
		t.Errorf("report lists unchanged entries:\n%s", msg)
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		a, b, want string
	}{
		{"", "", ""},
		{"x\n", "x\n", ""},
		{"a\nb\nc\n", "a\nc\n", "- b\n"},
		{"a\nc\n", "a\nb\nc\n", "+ b\n"},
		{"a 1\nb\n", "a 2\nb\n", "- a 1\n+ a 2\n"},
	}
	for _, tt := range tests {
		if got := Diff(tt.a, tt.b); got != tt.want {
			t.Errorf("Diff(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}
