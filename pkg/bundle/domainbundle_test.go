package bundle

import (
	"bytes"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
)

// readDomainBundle must accept and refuse exactly what strictjson.Unmarshal
// into a DomainBundle does, and decode the same header.
func TestReadDomainBundleMatchesStrictJSON(t *testing.T) {
	const head = `"schemaVersion":1,"domainId":"primary","displayName":"Primary","generatedAt":"2026-03-01T12:00:00Z","advisoryCount":2,` +
		`"exports":[{"key":"a","format":"openvex","createdAt":"2026-03-01T12:00:00Z","artifactDigest":"sha256:00","artifactSizeBytes":3,"path":"vex/a.json"}]`
	deep := strings.Repeat("[", 70) + strings.Repeat("]", 70)
	cases := map[string]string{
		"valid":                 `{` + head + `,"advisories":[{"id":"A"},{"id":"B","x":{"y":[1,2,{"z":null}]}}]}`,
		"valid, no advisories":  `{` + head + `}`,
		"valid, null":           `{` + head + `,"advisories":null}`,
		"valid, empty":          `{` + head + `,"advisories":[]}`,
		"valid, scalars":        `{` + head + `,"advisories":[1,"two",true,null]}`,
		"advisories first":      `{"advisories":[{"id":"A"}],` + head + `}`,
		"duplicate top key":     `{` + head + `,"domainId":"x","advisories":[]}`,
		"case top key":          `{` + head + `,"DomainID":"x","advisories":[]}`,
		"escaped top key":       `{` + head + `,"domain\u0049d":"x","advisories":[]}`,
		"duplicate advisories":  `{` + head + `,"advisories":[],"advisories":[]}`,
		"case advisories":       `{` + head + `,"Advisories":[]}`,
		"dup in advisory":       `{` + head + `,"advisories":[{"id":"A","id":"B"}]}`,
		"case in advisory":      `{` + head + `,"advisories":[{"id":"A","ID":"B"}]}`,
		"escaped in advisory":   `{` + head + `,"advisories":[{"id":"A","\u0069d":"B"}]}`,
		"dup deep in advisory":  `{` + head + `,"advisories":[{"a":[{"b":1,"b":2}]}]}`,
		"dup in exports":        `{"schemaVersion":1,"exports":[{"key":"a","key":"b"}],"advisories":[]}`,
		"unknown top field":     `{` + head + `,"extra":1,"advisories":[]}`,
		"unknown export field":  `{"schemaVersion":1,"exports":[{"key":"a","evil":1}],"advisories":[]}`,
		"case export field":     `{"schemaVersion":1,"exports":[{"Key":"a"}],"advisories":[]}`,
		"exports null":          `{"schemaVersion":1,"exports":null,"advisories":[]}`,
		"exports empty":         `{"schemaVersion":1,"exports":[],"advisories":[]}`,
		"exports object":        `{"schemaVersion":1,"exports":{"key":"a"},"advisories":[]}`,
		"export not object":     `{"schemaVersion":1,"exports":[1],"advisories":[]}`,
		"export wrong type":     `{"schemaVersion":1,"exports":[{"artifactSizeBytes":"3"}],"advisories":[]}`,
		"duplicate exports":     `{"schemaVersion":1,"exports":[],"exports":[],"advisories":[]}`,
		"case exports":          `{"schemaVersion":1,"Exports":[],"advisories":[]}`,
		"advisories object":     `{` + head + `,"advisories":{"id":"A"}}`,
		"advisories string":     `{` + head + `,"advisories":"A"}`,
		"too deep in advisory":  `{` + head + `,"advisories":[` + deep + `]}`,
		"bad utf8 in advisory":  `{` + head + `,"advisories":[{"id":"A` + "\xff" + `"}]}`,
		"bad utf8 in header":    `{"schemaVersion":1,"displayName":"P` + "\xc3" + `","advisories":[]}`,
		"cut utf8 at the end":   `{` + head + `,"advisories":[]}` + "\xe2\x82",
		"trailing data":         `{` + head + `,"advisories":[]} {}`,
		"trailing garbage":      `{` + head + `,"advisories":[]} x`,
		"truncated":             `{` + head + `,"advisories":[{"id":"A"}`,
		"empty":                 ``,
		"array":                 `[]`,
		"string":                `"x"`,
		"wrong type":            `{"schemaVersion":"one","advisories":[]}`,
		"valid, non-ASCII text": `{"schemaVersion":1,"displayName":"Prim\u00e4r – ✓ 𝄞","advisories":[{"s":"é𝄞✓"}]}`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			var want DomainBundle
			wantErr := strictjson.Unmarshal([]byte(doc), &want)
			for _, chunked := range []bool{false, true} {
				var r io.Reader = strings.NewReader(doc)
				if chunked {
					r = iotest.OneByteReader(r)
				}
				got, n, err := readDomainBundle(r)
				if (err == nil) != (wantErr == nil) {
					t.Fatalf("chunked %v: readDomainBundle error %v, strictjson.Unmarshal error %v", chunked, err, wantErr)
				}
				if err != nil {
					continue
				}
				if n != len(want.Advisories) {
					t.Errorf("chunked %v: %d advisories, want %d", chunked, n, len(want.Advisories))
				}
				want2 := want
				want2.Advisories = nil
				if !reflect.DeepEqual(got, want2) {
					t.Errorf("chunked %v: header\n got %+v\nwant %+v", chunked, got, want2)
				}
			}
		})
	}
}

// The messages the hostile corpus expects for re-signed bundle.json files.
func TestReadDomainBundleMessages(t *testing.T) {
	for doc, want := range map[string]string{
		`{"domainId":"a","domainId":"b"}`:      `duplicate key "domainId"`,
		`{"domainId":"a","DomainId":"b"}`:      `differ only by case`,
		`{"domainId":"a","domain\u0049d":"b"}`: `duplicate key "domainId"`,
		`{"advisories":[{"id":1,"id":2}]}`:     `duplicate key "id"`,
		`{"advisories":[]} 1`:                  `data after the JSON value`,
		"{\"displayName\":\"\xff\"}":           `invalid UTF-8`,
	} {
		_, _, err := readDomainBundle(strings.NewReader(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", doc, err, want)
		}
	}
}

// utf8Reader agrees with utf8.Valid however the stream is cut.
func TestUTF8Reader(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := [][]byte{[]byte("a"), []byte("é"), []byte("✓"), []byte("𝄞"), {0xff}, {0xc3}, {0xe2, 0x82}, {0x80}, {0xf0, 0x9d}}
	for i := range 2000 {
		var doc []byte
		for range rng.IntN(12) {
			tok := alphabet[rng.IntN(len(alphabet))]
			if i%2 == 0 {
				tok = alphabet[rng.IntN(4)] // mostly valid documents too
			}
			doc = append(doc, tok...)
		}
		for _, r := range []io.Reader{bytes.NewReader(doc), iotest.OneByteReader(bytes.NewReader(doc)), iotest.HalfReader(bytes.NewReader(doc))} {
			_, err := io.ReadAll(&utf8Reader{r: r})
			if got, want := err == nil, utf8.Valid(doc); got != want {
				t.Fatalf("%q: utf8Reader error %v, utf8.Valid %v", doc, err, want)
			}
		}
	}
}

// FuzzReadDomainBundle checks that the streaming reader accepts exactly
// what strictjson.Unmarshal accepts, however the input is cut.
func FuzzReadDomainBundle(f *testing.F) {
	for _, seed := range []string{
		`{"schemaVersion":1,"domainId":"p","exports":[{"key":"a","path":"vex/a.json"}],"advisories":[{"id":"A"},{"id":"B"}]}`,
		`{"advisories":[{"id":"A","id":"B"}]}`,
		`{"domainId":"a","DomainId":"b"}`,
		`{"exports":[{"key":"a","evil":1}]}`,
		`{"advisories":null,"exports":null}`,
		"{\"displayName\":\"\xff\"}",
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want DomainBundle
		wantErr := strictjson.Unmarshal(data, &want)
		got, n, err := readDomainBundle(iotest.HalfReader(bytes.NewReader(data)))
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: readDomainBundle error %v, strictjson.Unmarshal error %v", data, err, wantErr)
		}
		if err == nil && (n != len(want.Advisories) || got.DomainID != want.DomainID || len(got.Exports) != len(want.Exports)) {
			t.Fatalf("%q: decoded %+v (%d advisories), strictjson %+v", data, got, n, want)
		}
	})
}
