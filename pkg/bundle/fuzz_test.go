package bundle

import (
	"encoding/hex"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/internal/testutil"
)

// fuzzSeeds exports the sample feed and returns the bundle folder.
func fuzzSeeds(f *testing.F) string {
	f.Helper()
	return exportTo(f, sampleSource(f), testSigner(f, "es256", ""), testCreated, 0)
}

func FuzzManifest(f *testing.F) {
	dir := fuzzSeeds(f)
	f.Add(readFile(f, filepath.Join(dir, ManifestFile)))
	for _, s := range testutil.CorpusSeeds(f, "../..", "cases/*/mirror.json", 1<<20) {
		f.Add(s)
	}
	f.Add([]byte(`{"schemaVersion":1,"schemaVersion":2}`))
	f.Add([]byte(`{"ExportID":"20260301T120000Z"}`))
	f.Add([]byte(`{"files":[{"path":"../x","size":-1,"sha256":"00"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Manifest
		if err := strictjson.Unmarshal(data, &m); err != nil {
			return
		}
		out, err := MarshalDocument(m)
		if err != nil {
			return // e.g. a year outside 0..9999 cannot be encoded again
		}
		var again Manifest
		if err := strictjson.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-encoded manifest refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalise(m), normalise(again)) {
			t.Fatalf("manifest changed in a round trip:\n%+v\n%+v", m, again)
		}
		for _, fe := range m.Files {
			if CheckPath(fe.Path) == nil && strings.Contains("/"+fe.Path+"/", "/../") {
				t.Fatalf("CheckPath accepted %q", fe.Path)
			}
		}
	})
}

// normalise drops what a JSON round trip may change without changing the
// meaning: time zones and the difference between a nil and an empty list.
func normalise(m Manifest) Manifest {
	m.GeneratedAt, m.ExpiresAt = m.GeneratedAt.UTC(), m.ExpiresAt.UTC()
	if len(m.Domains) == 0 {
		m.Domains = nil
	}
	if len(m.Rotations) == 0 {
		m.Rotations = nil
	}
	if len(m.Files) == 0 {
		m.Files = nil
	}
	return m
}

func FuzzParseChecksums(f *testing.F) {
	dir := fuzzSeeds(f)
	f.Add(readFile(f, filepath.Join(dir, ChecksumsFile)))
	for _, s := range testutil.CorpusSeeds(f, "../..", "cases/*/SHA256SUMS", 1<<20) {
		f.Add(s)
	}
	f.Add([]byte(strings.Repeat("0", 64) + " *a\n" + strings.Repeat("0", 64) + "  a\n"))
	f.Add([]byte(strings.Repeat("A", 64) + "  \x00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sums, err := ParseChecksums(data)
		if err != nil {
			return
		}
		var entries []FileEntry
		for name, sum := range sums {
			if len(sum) != 64 || strings.ToLower(sum) != sum {
				t.Fatalf("digest %q for %q", sum, name)
			}
			if _, err := hex.DecodeString(sum); err != nil {
				t.Fatalf("digest %q is not hex", sum)
			}
			entries = append(entries, FileEntry{Path: name, SHA256: sum})
		}
		// Names that survive a line-based format come back unchanged.
		for _, e := range entries {
			if strings.ContainsAny(e.Path, "\r\n") || strings.HasPrefix(e.Path, " ") || strings.HasPrefix(e.Path, "*") {
				return
			}
		}
		again, err := ParseChecksums(FormatChecksums(entries))
		if err != nil {
			t.Fatalf("formatted checksums refused: %v", err)
		}
		if !reflect.DeepEqual(again, sums) {
			t.Fatalf("round trip changed the checksums:\n%v\n%v", sums, again)
		}
	})
}
