package bundle

import (
	"io"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
)

// decodeManifestAll runs decodeManifest and collects the files.
func decodeManifestAll(data []byte) (Manifest, error) {
	var files []FileEntry
	m, err := decodeManifest(data, func(f FileEntry) { files = append(files, f) })
	m.Files = files
	return m, err
}

// sameManifest compares decoded manifests, a nil and an empty list alike.
func sameManifest(a, b Manifest) bool {
	if len(a.Files) == 0 && len(b.Files) == 0 {
		a.Files, b.Files = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// manifestCases are mirror.json documents around the sample export's, each
// accepted or refused by strictjson.Unmarshal.
func manifestCases(t *testing.T) map[string]string {
	t.Helper()
	good := string(readFile(t, filepath.Join(exportTo(t, sampleSource(t), testSigner(t, "es256", ""), testCreated, 3), ManifestFile)))
	edit := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("mirror.json does not contain %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	deep := strings.Repeat("[", 70) + strings.Repeat("]", 70)
	shallow := strings.Repeat("[", 61) + strings.Repeat("]", 61)
	return map[string]string{
		"export":                  good,
		"duplicate top key":       edit(`"sequence": 3,`, `"sequence": 3, "sequence": 4,`),
		"case top key":            edit(`"sequence": 3,`, `"sequence": 3, "Sequence": 4,`),
		"escaped top key":         edit(`"sequence": 3,`, `"sequence": 3, "\u0073equence": 4,`),
		"case-variant field":      edit(`"sequence":`, `"Sequence":`),
		"unknown top field":       edit(`"sequence": 3,`, `"sequence": 3, "trustAll": true,`),
		"duplicate files":         edit(`"files": [`, `"files": [], "files": [`),
		"case files":              edit(`"files": [`, `"Files": [`),
		"files null":              edit(`"files": [`, `"files": null, "x": [`),
		"files empty":             edit(`"files": [`, `"files": [], "x": [`),
		"files object":            edit(`"files": [`, `"files": {"a": 1}, "x": [`),
		"files string":            edit(`"files": [`, `"files": "a", "x": [`),
		"file not object":         edit(`"files": [`, `"files": [1, `),
		"file null":               edit(`"files": [`, `"files": [null, `),
		"file unknown field":      edit(`"files": [`, `"files": [{"path": "a", "evil": 1}, `),
		"file case field":         edit(`"files": [`, `"files": [{"Path": "a"}, `),
		"file duplicate key":      edit(`"files": [`, `"files": [{"path": "a", "path": "b"}, `),
		"file wrong type":         edit(`"files": [`, `"files": [{"size": "1"}, `),
		"file deep":               edit(`"files": [`, `"files": [{"path": `+deep+`}, `),
		"head deep":               edit(`"sequence": 3,`, `"sequence": 3, "x": `+deep+`,`),
		"head nested within max":  edit(`"sequence": 3,`, `"sequence": 3, "x": `+shallow+`,`),
		"trailing value":          good + `{"sequence": 9}`,
		"trailing garbage":        good + `x`,
		"invalid UTF-8":           edit(`"producer": "`, "\"producer\": \"\xff"),
		"byte-order mark":         "\xef\xbb\xbf" + good,
		"huge number":             edit(`"sequence": 3,`, `"sequence": 100000000000000000000000000000,`),
		"float sequence":          edit(`"sequence": 3,`, `"sequence": 3.5,`),
		"truncated":               good[:len(good)/2],
		"empty":                   ``,
		"array":                   `[]`,
		"string":                  `"x"`,
		"null":                    `null`,
		"minimal":                 `{"files":[{"path":"a","size":1,"sha256":"00"}]}`,
		"non-ASCII":               `{"producer":"Prim\u00e4r – ✓ 𝄞","files":[{"path":"é𝄞✓"}]}`,
		"only unknown in element": `{"files":[{"x":{"y":[1,2,{"z":null}]}}]}`,
	}
}

// decodeManifest must accept and refuse exactly what strictjson.Unmarshal
// into a Manifest does, and decode the same manifest.
func TestDecodeManifestMatchesStrictJSON(t *testing.T) {
	for name, doc := range manifestCases(t) {
		t.Run(name, func(t *testing.T) {
			var want Manifest
			wantErr := strictjson.Unmarshal([]byte(doc), &want)
			got, err := decodeManifestAll([]byte(doc))
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("decodeManifest error %v, strictjson.Unmarshal error %v", err, wantErr)
			}
			if err == nil && !sameManifest(got, want) {
				t.Errorf("decoded\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// The messages the hostile corpus and the tamper tests expect.
func TestDecodeManifestMessages(t *testing.T) {
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	for doc, want := range map[string]string{
		`{"sequence":1,"sequence":2}`:           `duplicate key "sequence"`,
		`{"sequence":1,"Sequence":2}`:           `differ only by case`,
		`{"sequence":1,"\u0073equence":2}`:      `duplicate key "sequence"`,
		`{"Sequence":1}`:                        `unknown field "Sequence"`,
		`{"x":` + deep + `}`:                    `nesting deeper than 64`,
		`{"files":[]} {}`:                       `data after the JSON value`,
		"{\"producer\":\"\xff\xfe\"}":           `invalid UTF-8`,
		`{"files":[{"path":"a","evil":1}]}`:     `files: [0]: unknown field "evil"`,
		`{"files":[{"path":"a"},{"Path":"b"}]}`: `files: [1]: unknown field "Path"`,
		`{"files":[{"path":"a","path":"b"}]}`:   `duplicate key "path"`,
		`{"sequence":100000000000000000000000}`: `cannot unmarshal`,
		`{"files":{"path":"a"}}`:                `cannot unmarshal object`,
		`{"files":[{"path":"a"}]`:               `EOF`,
		`{"files":[{"path":"a","size":"x"}]}`:   `cannot unmarshal`,
		`{"files":[` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `]}`: `nesting deeper than 64`,
	} {
		_, err := decodeManifestAll([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60q: error %v, want it to say %q", doc, err, want)
		}
	}
}

// FuzzDecodeManifest checks that the streaming decoder accepts exactly what
// strictjson.Unmarshal accepts and decodes the same manifest.
func FuzzDecodeManifest(f *testing.F) {
	for _, seed := range []string{
		`{"schemaVersion":1,"exportId":"20260301T120000Z","files":[{"path":"a","size":1,"sha256":"00"}]}`,
		`{"files":[{"path":"a","path":"b"}]}`,
		`{"files":null,"domains":["a"]}`,
		`{"files":[{"Path":"a"}]}`,
		`{"Files":[]}`,
		`{"files":[]} x`,
		"{\"producer\":\"\xff\"}",
		`[]`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want Manifest
		wantErr := strictjson.Unmarshal(data, &want)
		got, err := decodeManifestAll(data)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: decodeManifest error %v, strictjson.Unmarshal error %v", data, err, wantErr)
		}
		if err == nil && !sameManifest(got, want) {
			t.Fatalf("%q: decoded %+v, strictjson %+v", data, got, want)
		}
	})
}

// streamDomainManifest must accept and refuse exactly what
// strictjson.Unmarshal into a DomainManifest does, however the input is
// cut, and decode the same header.
func TestStreamDomainManifestMatchesStrictJSON(t *testing.T) {
	good := string(readFile(t, filepath.Join(exportTo(t, sampleSource(t), testSigner(t, "es256", ""), testCreated, 3), "mirror/primary", DomainManifestName)))
	edit := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("manifest.json does not contain %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	cases := map[string]string{
		"export":               good,
		"duplicate top key":    edit(`"domainId": "primary",`, `"domainId": "primary", "domainId": "x",`),
		"case top key":         edit(`"domainId": "primary",`, `"domainId": "primary", "DomainId": "x",`),
		"unknown top field":    edit(`"jwsPath"`, `"trusted": true, "jwsPath"`),
		"unknown bundle field": edit(`"bundle": {`, `"bundle": {"evil": 1, `),
		"exports null":         edit(`"exports": [`, `"exports": null, "x": [`),
		"exports object":       edit(`"exports": [`, `"exports": {}, "x": [`),
		"duplicate exports":    edit(`"exports": [`, `"exports": [], "exports": [`),
		"export unknown field": edit(`"exports": [`, `"exports": [{"key": "a", "evil": 1}, `),
		"export case field":    edit(`"exports": [`, `"exports": [{"Key": "a"}, `),
		"export duplicate key": edit(`"exports": [`, `"exports": [{"key": "a", "key": "b"}, `),
		"export wrong type":    edit(`"exports": [`, `"exports": [{"artifactSizeBytes": "3"}, `),
		"export not object":    edit(`"exports": [`, `"exports": ["a", `),
		"trailing value":       good + `{}`,
		"invalid UTF-8":        edit(`"displayName": "`, "\"displayName\": \"\xc3"),
		"truncated":            good[:len(good)/2],
		"empty":                ``,
		"array":                `[]`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			var want DomainManifest
			wantErr := strictjson.Unmarshal([]byte(doc), &want)
			for _, chunked := range []bool{false, true} {
				var in io.Reader = strings.NewReader(doc)
				if chunked {
					in = iotest.OneByteReader(in)
				}
				got, n, err := streamDomainManifest(in)
				if (err == nil) != (wantErr == nil) {
					t.Fatalf("chunked %v: streamDomainManifest error %v, strictjson.Unmarshal error %v", chunked, err, wantErr)
				}
				if err != nil {
					continue
				}
				if n != len(want.Exports) {
					t.Errorf("chunked %v: %d exports, want %d", chunked, n, len(want.Exports))
				}
				header := want
				header.Exports = nil
				if !reflect.DeepEqual(got, header) {
					t.Errorf("chunked %v: header\n got %+v\nwant %+v", chunked, got, header)
				}
			}
		})
	}
}

// FoldCollision finds the same pair as checking each name in turn against
// a map of the folded names before it.
func TestFoldCollisionMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"a", "A", "b", "B", "é", "e\u0301", "É", "/", "x"}
	for range 3000 {
		names := make([]string, rng.IntN(12))
		for i := range names {
			var b strings.Builder
			for range 1 + rng.IntN(3) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			names[i] = b.String()
		}
		wantFirst, wantSecond, wantFound := 0, 0, false
		seen := map[string]int{}
		for i, n := range names {
			if j, dup := seen[FoldPath(n)]; dup {
				wantFirst, wantSecond, wantFound = j, i, true
				break
			}
			seen[FoldPath(n)] = i
		}
		first, second, found := FoldCollision(len(names), func(i int) string { return names[i] })
		if found != wantFound || found && (first != wantFirst || second != wantSecond) {
			t.Fatalf("%q: FoldCollision (%d, %d, %v), map (%d, %d, %v)", names, first, second, found, wantFirst, wantSecond, wantFound)
		}
	}
}
