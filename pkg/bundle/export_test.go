package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// TestExportDeterministic: the same source, --created and key give
// byte-identical bundles, whoever exports them and wherever the source is.
func TestExportDeterministic(t *testing.T) {
	for _, key := range []struct{ name, alg string }{
		{"es256", ""}, {"es384", ""}, {"es512", ""}, {"rsa2048", ""}, {"rsa2048", "RS384"}, {"ed25519", ""},
	} {
		t.Run(key.name+key.alg, func(t *testing.T) {
			s := testSigner(t, key.name, key.alg)
			a := readTree(t, exportTo(t, sampleSource(t), s, testCreated, 0))
			b := readTree(t, exportTo(t, sampleSource(t), s, testCreated, 0))
			if len(a) != len(b) {
				t.Fatalf("%d files vs %d", len(a), len(b))
			}
			for p, data := range a {
				if !bytes.Equal(data, b[p]) {
					t.Errorf("%s differs between two exports", p)
				}
			}
			later := readTree(t, exportTo(t, sampleSource(t), s, testCreated.Add(time.Second), 0))
			for _, p := range []string{ManifestFile, EnvelopeFile, IndexPath, "mirror/primary/bundle.json"} {
				if bytes.Equal(a[p], later[p]) {
					t.Errorf("%s is the same for another --created", p)
				}
			}
		})
	}
}

func TestExportLayout(t *testing.T) {
	s := testSigner(t, "es256", "")
	out := exportTo(t, sampleSource(t), s, testCreated, 42)
	files := readTree(t, out)

	var m Manifest
	if err := strictjson.Unmarshal(files[ManifestFile], &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 1 || m.ExportID != "20260301T120000Z" || m.Sequence != 42 ||
		!m.GeneratedAt.Equal(testCreated) || !m.ExpiresAt.Equal(testCreated.Add(DefaultExpiry)) ||
		m.Producer == "" || strings.Join(m.Domains, ",") != "community,primary" {
		t.Errorf("manifest header %+v", m)
	}
	// files: every other file, sorted, with size and lowercase sha256.
	var want []string
	for p := range files {
		switch p {
		case ManifestFile, EnvelopeFile, ChecksumsFile:
		default:
			want = append(want, p)
		}
	}
	sort.Strings(want)
	if len(m.Files) != len(want) {
		t.Fatalf("mirror.json lists %d files, the bundle has %d more", len(m.Files), len(want))
	}
	for i, f := range m.Files {
		d := HashBytes(files[f.Path])
		if f.Path != want[i] || f.Size != d.Size || f.SHA256 != d.SHA256 {
			t.Errorf("entry %d: %+v, want %s %+v", i, f, want[i], d)
		}
	}
	for _, p := range []string{"mirror/index.json", "mirror/primary/manifest.json", "mirror/primary/bundle.json",
		"mirror/primary/bundle.json.jws", "mirror/primary/bundle.json.sig", "mirror/primary/vex/openvex/2026-03.json",
		"mirror/community/vex/csaf/sample-vex-1.json"} {
		if _, ok := files[p]; !ok {
			t.Errorf("missing %s", p)
		}
	}

	// SHA256SUMS covers every file but itself, in sha256sum's format.
	sums, err := ParseChecksums(files[ChecksumsFile])
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != len(files)-1 {
		t.Errorf("SHA256SUMS has %d entries for %d files", len(sums), len(files)-1)
	}
	for p, sum := range sums {
		if HashBytes(files[p]).SHA256 != sum {
			t.Errorf("SHA256SUMS entry for %s is wrong", p)
		}
	}

	// bundle.json: advisories sorted by id; exports vouch for each VEX file.
	var b DomainBundle
	if err := strictjson.Unmarshal(files["mirror/primary/bundle.json"], &b); err != nil {
		t.Fatal(err)
	}
	if b.DomainID != "primary" || b.DisplayName != "Primary" || b.AdvisoryCount != len(b.Advisories) || len(b.Advisories) == 0 {
		t.Errorf("bundle.json header %+v", b)
	}
	prev := ""
	for _, a := range b.Advisories {
		var adv struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(a, &adv); err != nil {
			t.Fatal(err)
		}
		if adv.ID <= prev {
			t.Errorf("advisories not sorted: %s after %s", adv.ID, prev)
		}
		prev = adv.ID
	}
	if len(b.Exports) != 3 {
		t.Fatalf("%d exports", len(b.Exports))
	}
	for _, e := range b.Exports {
		d := HashBytes(files["mirror/primary/"+e.Path])
		if e.ArtifactDigest != "sha256:"+d.SHA256 || e.ArtifactSizeBytes != d.Size || e.Format == "" || e.CreatedAt.IsZero() {
			t.Errorf("export %+v does not describe %s", e, e.Path)
		}
	}

	// index.json: the contract's fields.
	var idx map[string]any
	if err := json.Unmarshal(files[IndexPath], &idx); err != nil {
		t.Fatal(err)
	}
	if idx["exportId"] != m.ExportID || idx["generatedAt"] == nil {
		t.Errorf("index header %v", idx)
	}
	domains := idx["domains"].([]any)
	for _, d := range domains {
		dm := d.(map[string]any)
		for _, k := range []string{"id", "displayName", "advisoryCount", "bundleSize", "bundleSha256", "exportFormats",
			"signed", "signature", "lastGenerated", "manifestPath", "bundlePath"} {
			if _, ok := dm[k]; !ok {
				t.Errorf("index.json domain %v lacks %s", dm["id"], k)
			}
		}
		sig := dm["signature"].(map[string]any)
		if sig["alg"] != "ES256" || sig["kid"] != s.KeyID() {
			t.Errorf("index signature %v", sig)
		}
	}
}

func TestExportRefusesExistingOutAndLeavesNothingOnFailure(t *testing.T) {
	s := testSigner(t, "es256", "")
	src := sampleSource(t)
	out := exportTo(t, src, s, testCreated, 0)
	before := readTree(t, out)
	_, err := Export(context.Background(), ExportOptions{Source: src, Out: out, Signer: s, Created: testCreated})
	if !errors.Is(err, failure.ErrUsage) {
		t.Errorf("export over an existing folder: %v", err)
	}
	after := readTree(t, out)
	if len(after) != len(before) {
		t.Error("the existing bundle changed")
	}

	// An invalid advisory fails the export; nothing is left beside --out.
	writeFile(t, filepath.Join(src, "primary", "advisories", "bad.json"), []byte(`{"id":`))
	parent := t.TempDir()
	_, err = Export(context.Background(), ExportOptions{Source: src, Out: filepath.Join(parent, "b"), Signer: s, Created: testCreated})
	if !errors.Is(err, failure.ErrUsage) || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("invalid advisory: %v", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("a failed export left %v", entries)
	}
}
