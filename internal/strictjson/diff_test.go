package strictjson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/internal/testutil"
)

// trickySeeds are inputs at the edges of the grammar and of the checks.
func trickySeeds() []string {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deepObj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	many := func(n int, last string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":1,`, i)
		}
		b.WriteString(last + "}")
		return b.String()
	}
	return []string{
		// nesting
		deep(63), deep(64), deep(65), deepObj(64), deepObj(65),
		strings.Repeat("[", 65), strings.Repeat(`{"a":[`, 40) + "x",
		`[[[[1]]],[[2]]]`, `{"a":{"b":{"c":{}}}}`,
		// escapes and surrogates
		`"\"\\\/\b\f\n\r\t\u00e9\u20AC"`, `"\x"`, `"\u12"`, `"\u12G4"`, `"\U0041"`, `"\'"`, `"\`, `"\u`,
		`{"\u0041":1,"a":2}`, `{"\u0061":1,"a":2}`, `{"\uD834\uDD1E":1,"𝄞":2}`, `{"\ud834":1,"\ufffd":2}`,
		`{"\udd1e\ud834":1}`, `{"\ud834\u0041":1,"\ufffdA":2}`, `{"\ud834\ud834\udd1e":1,"\ufffd𝄞":2}`,
		`{"\ud800":1,"\udc00":2}`, `{"\u212a":1,"k":2}`, `{"K":1,"\u212A":2}`, `{"ſ":1,"S":2}`, `{"É":1,"é":2}`,
		`{"a\u0000":1,"a\u0000":2}`, `{"\/":1,"/":2}`, `{"a\"b":1,"A\"B":2}`, `{"a\\":1,"b":{"a\\":2}}`,
		// invalid UTF-8
		"{\"\xff\":1}", "{\"a\xc3\":1}", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"",
		"[1,2] \xff", "\xff", "{\"a\":1,\"a\":\"\xff\"}", "[\xc3\xa9]", "\"\xef\xbf\xbd\"",
		// numbers
		"1e400", "-0", "01", "-01", "1.", ".5", "1e", "1e+", "+1", "-", "0x10", "1E-7", "-0.0e0", "[-]",
		"123456789012345678901234567890", "[1e400,-1e-400]", "1.5e+3", "0.e1", "1ee2",
		// literals
		"true", "false", "null", "tru", "truex", "nul", "nulll", "True", "[true,false,null]", "fals",
		// separators
		"[1,]", `{"a":1,}`, "[,1]", "[1 2]", `{"a" 1}`, `{"a":1 "b":2}`, `{,}`, `{"a"}`, `{1:2}`, `[1:2]`,
		`["a":1]`, `{"a":1]`, `[1}`,
		// around the value
		"", " ", "\xef\xbb\xbf{}", "{}\x00", "\x00", `{"a":"` + "\x00" + `"}`, "{} {}", "1 2", "1x", `"a"x`,
		`{}x`, " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", "\f{}", "\v1", "{}\u00a0",
		// many keys
		many(16, `"K3":1`), many(16, `"k15":1`), many(17, `"k16x":1`), many(40, `"K39":1`), many(40, `"\u006b5":1`),
		many(40, `"new":1`), `{"a":` + many(30, `"k29x":1`) + `,"A":2}`, `{"a":` + many(30, `"k29x":1`) + `,"k1":2}`,
	}
}

// unmarshalSeeds are documents aimed at the struct types of the fuzz
// targets.
func unmarshalSeeds() []string {
	return []string{
		`{"producer":"p","schemaVersion":1,"exportId":"x","generatedAt":"2026-03-01T12:00:00Z","files":[{"path":"a","size":1}],"labels":{"K":{"path":"b"}},"raw":[{"Free":1}],"Untagged":"u"}`,
		`{"\u0065xportId":"x"}`, `{"files":[{"path":"a"},{"PATH":"b"}]}`, `{"files":[{"path":"a"},{"x":1,"y":2}]}`,
		`{"labels":{"a":{"size":"1"}}}`, `{"labels":{"a":{"s\u0069ze":1}}}`, `{"Skipped":"x"}`, `{"raw":[[{"any":1}]]}`,
		`{"files":null,"labels":null,"raw":null}`, `{"files":{},"labels":[],"raw":{}}`, `{"generatedAt":{"x":1}}`,
		`{"schemaVersion":1e400}`, `{"schemaVersion":1.5}`, `{"schemaVersion":-0}`, `null`, `[]`, `"x"`, `{}`,
		`{"schemaVersion":1,"exportId":"20260301T120000Z","sequence":10,"generatedAt":"2026-03-01T12:00:00Z","expiresAt":"2026-04-01T12:00:00Z","producer":"p","domains":["a"],"files":[{"path":"a","sha256":"00","size":1},{"path":"b","sha256":"01","size":2}]}`,
		`{"files":[{"path":"a","sha256":"00","size":1,"Size":2}]}`, `{"files":[{"path":"a","sha256":"00","bytes":1}]}`,
		`{"name":"a","kids":[{"name":"b","kids":[{"name":"c","Meta":{}}]}],"meta":{"x":[{"Any":1}]}}`,
		`{"a":[{"path":"x","size":1}],"b":[{"path":"y","extra":1}]}`, `[{"path":"x"},{"path":"y","size":"big"}]`,
	}
}

func addSeeds(f *testing.F, extra ...string) {
	if err := fsSeeds(f); err != nil {
		f.Fatal(err)
	}
	for _, pattern := range []string{"cases/json-*/mirror.json", "cases/json-*/mirror.dsse.json", "cases/json-*/mirror/index.json", "cases/json-*/mirror/primary/*.json"} {
		for _, s := range testutil.CorpusSeeds(f, "../..", pattern, 1<<20) {
			f.Add(s)
		}
	}
	f.Add(mirrorJSON(20))
	f.Add(openVEXJSON(2 << 10))
	for _, s := range append(trickySeeds(), extra...) {
		f.Add([]byte(s))
	}
}

// checkErrors are the messages of Check that are not syntax errors.
var checkErrors = []string{"invalid UTF-8", "duplicate key ", "keys ", "nesting deeper than ", "data after the JSON value"}

func isCheckError(err error) bool {
	for _, prefix := range checkErrors {
		if strings.HasPrefix(err.Error(), prefix) {
			return true
		}
	}
	return false
}

// sameCheckError reports whether got, from Check, stands for want, from the
// oracle: the same message, or both syntax errors.
func sameCheckError(got, want error) bool {
	if isCheckError(want) {
		return got.Error() == want.Error()
	}
	var syntax *json.SyntaxError
	isSyntax := errors.As(want, &syntax) || strings.HasSuffix(want.Error(), "EOF")
	return isSyntax && !isCheckError(got) && strings.Contains(got.Error(), " at offset ")
}

// checkAgrees compares Check with the oracle on data.
func checkAgrees(data []byte) error {
	got, want := strictjson.Check(data), oracleCheck(data)
	if (got == nil) != (want == nil) || got != nil && !sameCheckError(got, want) {
		return fmt.Errorf("%q: Check error %v, oracle error %v", data, got, want)
	}
	return nil
}

// FuzzCheckMatchesOracle checks that Check accepts exactly what the
// token-based implementation accepts, and refuses with the same message
// whenever that message is not a syntax error.
func FuzzCheckMatchesOracle(f *testing.F) {
	addSeeds(f, unmarshalSeeds()...)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := checkAgrees(data); err != nil {
			t.Fatal(err)
		}
	})
}

// tree is a recursive type for the Unmarshal fuzz target.
type tree struct {
	Name string         `json:"name"`
	Kids []*tree        `json:"kids,omitempty"`
	Meta map[string]any `json:"meta,omitempty"`
}

// fuzzTargets make the values the Unmarshal fuzz target decodes into.
var fuzzTargets = []func() any{
	func() any { return new(doc) },
	func() any { return new(mirrorManifest) },
	func() any { return new(tree) },
	func() any { return new(map[string][]entry) },
	func() any { return new([]entry) },
	func() any { return new(any) },
}

// unmarshalAgrees compares Unmarshal with the oracle on data, decoding
// into each of fuzzTargets.
func unmarshalAgrees(data []byte) error {
	for _, target := range fuzzTargets {
		got, want := target(), target()
		gotErr, wantErr := strictjson.Unmarshal(data, got), oracleUnmarshal(data, want)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && !sameUnmarshalError(gotErr, wantErr) {
			return fmt.Errorf("%q into %T: Unmarshal error %v, oracle error %v", data, got, gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%q into %T: decoded\n%#v\noracle decoded\n%#v", data, got, got, want)
		}
	}
	return nil
}

// sameUnmarshalError is sameCheckError for Unmarshal. Which of several
// unknown fields the oracle reports depends on map order, so only the kind
// of that error is compared.
func sameUnmarshalError(got, want error) bool {
	if strings.Contains(want.Error(), "unknown field ") {
		return strings.Contains(got.Error(), "unknown field ")
	}
	if got.Error() == want.Error() {
		return true
	}
	return sameCheckError(got, want)
}

// FuzzUnmarshalMatchesOracle checks that Unmarshal accepts exactly what the
// token-based implementation accepts, decodes the same value, and refuses
// for the same reason.
func FuzzUnmarshalMatchesOracle(f *testing.F) {
	addSeeds(f, unmarshalSeeds()...)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := unmarshalAgrees(data); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMatchesOracle runs the seeds of the differential fuzz targets, also
// under plain go test and without the corpus.
func TestMatchesOracle(t *testing.T) {
	for _, s := range append(trickySeeds(), unmarshalSeeds()...) {
		if err := checkAgrees([]byte(s)); err != nil {
			t.Error(err)
		}
		if err := unmarshalAgrees([]byte(s)); err != nil {
			t.Error(err)
		}
	}
}

// Check and Unmarshal share pooled key storage and the cache of type
// shapes; concurrent calls must not disturb each other.
func TestMatchesOracleConcurrently(t *testing.T) {
	seeds := append(trickySeeds(), unmarshalSeeds()...)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range seeds {
				data := []byte(seeds[(i+g*7)%len(seeds)])
				if err := checkAgrees(data); err != nil {
					errs <- err
					return
				}
				if err := unmarshalAgrees(data); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
