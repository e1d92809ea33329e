package releasetest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/sign"
)

// exportCreated is the fixed generation time of the test export.
var exportCreated = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)

// makeExport writes a bundle of the embedded sample feed signed with the
// TEST-ONLY ES256 key and returns its folder.
func makeExport(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "feed")
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	signer, err := sign.LoadSigner(repoPath("testdata", "keys", "es256.pem"), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bundle")
	if _, err := bundle.Export(context.Background(), bundle.ExportOptions{
		Source: src, Out: out, Signer: signer, Created: exportCreated, Expires: 7 * 24 * time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// schemaFiles maps each schema of docs/schemas to the bundle documents it
// describes (glob patterns relative to the bundle folder).
var schemaFiles = map[string]string{
	"mirror.schema.json":        bundle.ManifestFile,
	"dsse-envelope.schema.json": bundle.EnvelopeFile,
	"index.schema.json":         bundle.IndexPath,
	"manifest.schema.json":      "mirror/*/" + bundle.DomainManifestName,
	"bundle.schema.json":        "mirror/*/" + bundle.DomainBundleName,
}

func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	p, err := filepath.Abs(repoPath("docs", "schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	s, err := c.Compile(p)
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return s
}

func validate(s *jsonschema.Schema, data []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}

func TestEverySchemaIsTested(t *testing.T) {
	names, err := filepath.Glob(repoPath("docs", "schemas", "*.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no schemas in docs/schemas")
	}
	for _, n := range names {
		base := filepath.Base(n)
		if _, ok := schemaFiles[base]; !ok {
			t.Errorf("%s is not validated against an export; add it to schemaFiles", base)
		}
		var doc struct {
			Schema string `json:"$schema"`
			ID     string `json:"$id"`
		}
		if err := json.Unmarshal(readFile(t, "docs", "schemas", base), &doc); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %q, want draft 2020-12", base, doc.Schema)
		}
		if !strings.HasSuffix(doc.ID, "/docs/schemas/"+base) {
			t.Errorf("%s: $id %q does not name the file", base, doc.ID)
		}
	}
}

// TestSchemasValidateExport validates every document of a real export.
func TestSchemasValidateExport(t *testing.T) {
	dir := makeExport(t)
	for name, pattern := range schemaFiles {
		s := compileSchema(t, name)
		matches, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pattern)))
		if err != nil || len(matches) == 0 {
			t.Fatalf("%s: no %s in the export (%v)", name, pattern, err)
		}
		for _, m := range matches {
			data, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(s, data); err != nil {
				t.Errorf("%s does not validate against %s:\n%v", m, name, err)
			}
		}
	}
}

// mutation changes one decoded document; the result must not validate.
type mutation struct {
	name   string
	schema string
	file   string
	change func(doc map[string]any)
}

func obj(v any) map[string]any { return v.(map[string]any) }
func first(v any) map[string]any {
	return obj(v.([]any)[0])
}

// TestSchemasAreStrict checks that the schemas refuse what readers refuse:
// unknown and missing fields, malformed ids, digests and paths.
func TestSchemasAreStrict(t *testing.T) {
	dir := makeExport(t)
	domainManifest := "mirror/primary/" + bundle.DomainManifestName
	domainBundle := "mirror/primary/" + bundle.DomainBundleName
	muts := []mutation{
		{"unknown field", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { d["extra"] = true }},
		{"unknown file field", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { first(d["files"])["mode"] = 420 }},
		{"schemaVersion 2", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { d["schemaVersion"] = 2 }},
		{"bad exportId", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { d["exportId"] = "2026-03-15" }},
		{"zero sequence", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { d["sequence"] = 0 }},
		{"non-UTC time", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { d["expiresAt"] = "2026-03-22T01:00:00+01:00" }},
		{"not a time", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { d["generatedAt"] = "2026-13-45T00:00:00Z" }},
		{"bad domain id", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { d["domains"] = []any{"Primary"} }},
		{"uppercase digest", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) {
			f := first(d["files"])
			f["sha256"] = strings.ToUpper(f["sha256"].(string))
		}},
		{"dot-dot path", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { first(d["files"])["path"] = "mirror/../../etc/passwd" }},
		{"absolute path", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { first(d["files"])["path"] = "/etc/passwd" }},
		{"backslash path", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { first(d["files"])["path"] = `mirror\index.json` }},
		{"lists itself", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { first(d["files"])["path"] = "mirror.json" }},
		{"negative size", "mirror.schema.json", bundle.ManifestFile, func(d map[string]any) { first(d["files"])["size"] = -1 }},
		{"wrong payloadType", "dsse-envelope.schema.json", bundle.EnvelopeFile, func(d map[string]any) { d["payloadType"] = "application/json" }},
		{"no signatures", "dsse-envelope.schema.json", bundle.EnvelopeFile, func(d map[string]any) { d["signatures"] = []any{} }},
		{"unknown index field", "index.schema.json", bundle.IndexPath, func(d map[string]any) { first(d["domains"])["mirrorUrl"] = "x" }},
		{"signed without signature", "index.schema.json", bundle.IndexPath, func(d map[string]any) { delete(first(d["domains"]), "signature") }},
		{"alg none", "index.schema.json", bundle.IndexPath, func(d map[string]any) { obj(first(d["domains"])["signature"])["alg"] = "none" }},
		{"alg HS256", "manifest.schema.json", domainManifest, func(d map[string]any) { obj(d["signature"])["alg"] = "HS256" }},
		{"escaping manifest path", "index.schema.json", bundle.IndexPath, func(d map[string]any) { first(d["domains"])["manifestPath"] = "../manifest.json" }},
		{"bad artifact digest", "manifest.schema.json", domainManifest, func(d map[string]any) { first(d["exports"])["artifactDigest"] = "md5:abc" }},
		{"unknown export field", "bundle.schema.json", domainBundle, func(d map[string]any) { first(d["exports"])["url"] = "x" }},
		{"advisory without id", "bundle.schema.json", domainBundle, func(d map[string]any) { delete(first(d["advisories"]), "id") }},
		{"advisory not an object", "bundle.schema.json", domainBundle, func(d map[string]any) { d["advisories"] = []any{"SAMPLE-1"} }},
	}
	// Every required field of every document, removed in turn.
	for name, file := range map[string]string{
		"mirror.schema.json": bundle.ManifestFile, "index.schema.json": bundle.IndexPath,
		"manifest.schema.json": domainManifest, "bundle.schema.json": domainBundle,
		"dsse-envelope.schema.json": bundle.EnvelopeFile,
	} {
		var doc map[string]any
		if err := json.Unmarshal(readExportFile(t, dir, file), &doc); err != nil {
			t.Fatal(err)
		}
		for key := range doc {
			if key == "rotations" {
				continue
			}
			muts = append(muts, mutation{"without " + key, name, file, func(d map[string]any) { delete(d, key) }})
		}
	}
	schemas := map[string]*jsonschema.Schema{}
	for _, m := range muts {
		s := schemas[m.schema]
		if s == nil {
			s = compileSchema(t, m.schema)
			schemas[m.schema] = s
		}
		var doc map[string]any
		if err := json.Unmarshal(readExportFile(t, dir, m.file), &doc); err != nil {
			t.Fatal(err)
		}
		m.change(doc)
		data, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(s, data); err == nil {
			t.Errorf("%s: %s: %s validates after the change", m.schema, m.name, m.file)
		}
	}
}

func readExportFile(t *testing.T, dir, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSchemasMatchGoTypes keeps the schemas and pkg/bundle's types in step:
// the same property names on every closed object, required exactly where
// the field is always written, and no other properties allowed.
func TestSchemasMatchGoTypes(t *testing.T) {
	for name, typ := range map[string]reflect.Type{
		"mirror.schema.json":   reflect.TypeFor[bundle.Manifest](),
		"index.schema.json":    reflect.TypeFor[bundle.Index](),
		"manifest.schema.json": reflect.TypeFor[bundle.DomainManifest](),
		"bundle.schema.json":   reflect.TypeFor[bundle.DomainBundle](),
	} {
		var schema map[string]any
		if err := json.Unmarshal(readFile(t, "docs", "schemas", name), &schema); err != nil {
			t.Fatal(err)
		}
		compareType(t, name, schema, schema, typ, "")
	}
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// compareType checks the schema node (resolving local $refs) against the
// Go struct type typ.
func compareType(t *testing.T, file string, root, node map[string]any, typ reflect.Type, at string) {
	t.Helper()
	node = resolve(t, file, root, node)
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ == timeType || typ == rawType:
		return
	case typ.Kind() == reflect.Slice:
		items, ok := node["items"].(map[string]any)
		if !ok {
			t.Errorf("%s %s: array without items", file, at)
			return
		}
		compareType(t, file, root, items, typ.Elem(), at+"[]")
		return
	case typ.Kind() != reflect.Struct:
		return
	}
	if node["additionalProperties"] != false {
		t.Errorf("%s %s: additionalProperties is not false on a closed type (%s)", file, orRoot(at), typ)
	}
	props, _ := node["properties"].(map[string]any)
	var names, required []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, name)
		}
		sub, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s %s: no property %q (%s.%s)", file, orRoot(at), name, typ, f.Name)
			continue
		}
		compareType(t, file, root, sub, f.Type, at+"."+name)
	}
	var schemaNames []string
	for n := range props {
		schemaNames = append(schemaNames, n)
	}
	sort.Strings(names)
	sort.Strings(schemaNames)
	if !slices.Equal(names, schemaNames) {
		t.Errorf("%s %s: properties %v, %s has %v", file, orRoot(at), schemaNames, typ, names)
	}
	var schemaRequired []string
	for _, r := range asList(node["required"]) {
		schemaRequired = append(schemaRequired, r.(string))
	}
	sort.Strings(required)
	sort.Strings(schemaRequired)
	if !slices.Equal(required, schemaRequired) {
		t.Errorf("%s %s: required %v, want %v (fields without omitempty)", file, orRoot(at), schemaRequired, required)
	}
}

func orRoot(at string) string {
	if at == "" {
		return "(document)"
	}
	return at
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// resolve follows a local "$ref": "#/$defs/name".
func resolve(t *testing.T, file string, root, node map[string]any) map[string]any {
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		defs, _ := root["$defs"].(map[string]any)
		next, found := defs[name].(map[string]any)
		if !ok || !found {
			t.Fatalf("%s: cannot resolve $ref %q", file, ref)
		}
		node = next
	}
}
