package strictjson_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
)

// mirrorFile and mirrorManifest have the shape of mirror.json.
type mirrorFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

type mirrorManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	ExportID      string       `json:"exportId"`
	Sequence      int64        `json:"sequence"`
	GeneratedAt   time.Time    `json:"generatedAt"`
	ExpiresAt     time.Time    `json:"expiresAt"`
	Producer      string       `json:"producer"`
	Domains       []string     `json:"domains"`
	Rotations     []string     `json:"rotations,omitempty"`
	Files         []mirrorFile `json:"files"`
}

// vexDocument and its parts have the shape of an OpenVEX document.
type vexDocument struct {
	Context    string         `json:"@context"`
	ID         string         `json:"@id"`
	Author     string         `json:"author"`
	Timestamp  time.Time      `json:"timestamp"`
	Version    int            `json:"version"`
	Statements []vexStatement `json:"statements"`
}

type vexStatement struct {
	Vulnerability   vexVulnerability `json:"vulnerability"`
	Products        []vexProduct     `json:"products"`
	Status          string           `json:"status"`
	Justification   string           `json:"justification,omitempty"`
	ImpactStatement string           `json:"impact_statement,omitempty"`
	ActionStatement string           `json:"action_statement,omitempty"`
	Timestamp       *time.Time       `json:"timestamp,omitempty"`
}

type vexVulnerability struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Aliases     []string `json:"aliases,omitempty"`
}

type vexProduct struct {
	ID          string            `json:"@id"`
	Identifiers map[string]string `json:"identifiers,omitempty"`
}

// mirrorJSON returns an indented mirror.json with n file entries.
func mirrorJSON(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	m := mirrorManifest{
		SchemaVersion: 1, ExportID: "20260301T120000Z", Sequence: 10,
		GeneratedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		ExpiresAt:   time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC),
		Producer:    "stellaops-cli bench", Domains: []string{"community", "primary"},
	}
	for i := range n {
		m.Files = append(m.Files, mirrorFile{
			Path:   fmt.Sprintf("mirror/primary/advisories/ecosystem-%d/SAMPLE-2026-%05d.json", i%7, i),
			SHA256: fmt.Sprintf("%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()),
			Size:   rng.Int64N(1 << 20),
		})
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err)
	}
	return out
}

// mirrorEntryJSON returns one file entry of mirror.json, as a streaming
// reader decodes them one at a time.
func mirrorEntryJSON() []byte {
	m := mirrorJSON(1)
	i := bytes.Index(m, []byte(`{`+"\n"+`      "path"`))
	j := bytes.Index(m[i:], []byte("}"))
	return m[i : i+j+1]
}

// openVEXJSON returns an indented OpenVEX document of at least size bytes.
func openVEXJSON(size int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	statuses := []string{"affected", "fixed", "under_investigation", "not_affected"}
	d := vexDocument{
		Context: "https://openvex.dev/ns/v0.2.0", ID: "https://vex.example.invalid/docs/primary-2026-03",
		Author: "StellaOps sample feed", Timestamp: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), Version: 1,
	}
	for i := 0; ; i++ {
		ts := time.Date(2026, 3, 1+i%28, i%24, 0, 0, 0, time.UTC)
		s := vexStatement{
			Vulnerability: vexVulnerability{
				Name:        fmt.Sprintf("CVE-2026-%05d", 41000+i),
				Description: fmt.Sprintf("Improper validation of input in component %d allows a remote attacker to cause a denial of service – “ünïcode” text.", i),
				Aliases:     []string{fmt.Sprintf("GHSA-%04x-%04x-%04x", rng.IntN(1<<16), rng.IntN(1<<16), rng.IntN(1<<16))},
			},
			Products: []vexProduct{{
				ID:          fmt.Sprintf("pkg:golang/example.com/service%d@v2.%d.0", i%5, i%9),
				Identifiers: map[string]string{"purl": fmt.Sprintf("pkg:golang/example.com/service%d", i%5)},
			}},
			Status:    statuses[i%len(statuses)],
			Timestamp: &ts,
		}
		switch s.Status {
		case "not_affected":
			s.Justification = "vulnerable_code_not_in_execute_path"
			s.ImpactStatement = "The affected function is never called with untrusted \"input\"."
		case "affected":
			s.ActionStatement = "Upgrade to the fixed release.\nSee https://example.invalid/advisories\\" + s.Vulnerability.Name
		}
		d.Statements = append(d.Statements, s)
		if i%16 == 15 {
			out, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				panic(err)
			}
			if len(out) >= size {
				return out
			}
		}
	}
}

type benchDoc struct {
	name   string
	data   []byte
	target func() any
}

func benchDocs() []benchDoc {
	return []benchDoc{
		{"openvex-100KiB", openVEXJSON(100 << 10), func() any { return new(vexDocument) }},
		{"mirror-8000", mirrorJSON(8000), func() any { return new(mirrorManifest) }},
		{"mirror-entry", mirrorEntryJSON(), func() any { return new(mirrorFile) }},
	}
}

type implementation struct {
	name      string
	check     func([]byte) error
	unmarshal func([]byte, any) error
	names     func([]byte, reflect.Type) error
}

var implementations = []implementation{
	{"new", strictjson.Check, strictjson.Unmarshal, strictjson.CheckNames},
	{"oracle", oracleCheck, oracleUnmarshal, oracleCheckNames},
}

func BenchmarkCheck(b *testing.B) {
	for _, d := range benchDocs() {
		for _, impl := range implementations {
			b.Run(d.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(d.data)))
				b.ReportAllocs()
				for b.Loop() {
					if err := impl.check(d.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCheckWidth measures Check on arrays of objects with many keys,
// around the number of keys at which duplicates are looked up in a map.
func BenchmarkCheckWidth(b *testing.B) {
	for _, keys := range []int{8, 32, 128, 129, 512} {
		var doc strings.Builder
		doc.WriteString("[")
		for o := range 64 << 10 / (keys * 16) {
			if o > 0 {
				doc.WriteString(",")
			}
			doc.WriteString("{")
			for i := range keys {
				if i > 0 {
					doc.WriteString(",")
				}
				fmt.Fprintf(&doc, `"fieldName%d":%d`, i, i)
			}
			doc.WriteString("}")
		}
		doc.WriteString("]")
		data := []byte(doc.String())
		b.Run(fmt.Sprintf("keys-%d", keys), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := strictjson.Check(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckNames measures the field-name walk on its own.
func BenchmarkCheckNames(b *testing.B) {
	for _, d := range benchDocs() {
		t := reflect.TypeOf(d.target())
		for _, impl := range implementations {
			b.Run(d.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(d.data)))
				b.ReportAllocs()
				for b.Loop() {
					if err := impl.names(d.data, t); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, d := range benchDocs() {
		for _, impl := range implementations {
			b.Run(d.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(d.data)))
				b.ReportAllocs()
				for b.Loop() {
					if err := impl.unmarshal(d.data, d.target()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// The benchmark documents are what they claim to be.
func TestBenchDocs(t *testing.T) {
	for _, d := range benchDocs() {
		v := d.target()
		if err := strictjson.Unmarshal(d.data, v); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		if err := oracleUnmarshal(d.data, d.target()); err != nil {
			t.Fatalf("%s: oracle: %v", d.name, err)
		}
		if strings.HasPrefix(d.name, "openvex") && len(v.(*vexDocument).Statements) == 0 {
			t.Fatalf("%s: no statements", d.name)
		}
	}
}
