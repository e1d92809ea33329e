package strictjson_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
)

type entry struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

type embedded struct {
	Producer string `json:"producer"`
}

type doc struct {
	embedded
	SchemaVersion int               `json:"schemaVersion"`
	ExportID      string            `json:"exportId"`
	GeneratedAt   time.Time         `json:"generatedAt"`
	Key           string            `json:"key,omitempty"`
	Files         []entry           `json:"files"`
	Labels        map[string]entry  `json:"labels,omitempty"`
	Raw           []json.RawMessage `json:"raw,omitempty"`
	Skipped       string            `json:"-"`
	Untagged      string
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "object", in: `{"a":1,"b":[1,2,{"c":null}],"d":"x"}`},
		{name: "scalar", in: `1`},
		{name: "trailing whitespace", in: "{}\n\t "},
		{name: "same key in sibling objects", in: `[{"a":1},{"a":2}]`},
		{name: "same key at two levels", in: `{"a":{"a":1}}`},
		{name: "duplicate key", in: `{"a":1,"a":1}`, wantErr: `duplicate key "a"`},
		{name: "nested duplicate", in: `{"a":[{"b":1,"b":2}]}`, wantErr: "duplicate"},
		{name: "case-variant duplicate", in: `{"exportId":"1","ExportID":"2"}`, wantErr: "differ only by case"},
		{name: "Kelvin sign", in: `{"key":1,"\u212aey":2}`, wantErr: "differ only by case"},
		{name: "escaped duplicate", in: `{"exportId":"1","\u0065xportId":"2"}`, wantErr: "duplicate"},
		{name: "escaped case-variant duplicate", in: `{"exportId":"1","\u0045xportId":"2"}`, wantErr: "differ only by case"},
		{name: "lone surrogates collide", in: `{"\ud800":1,"\udc00":2}`, wantErr: "duplicate"},
		{name: "invalid UTF-8 in a string", in: "{\"a\":\"\xff\"}", wantErr: "UTF-8"},
		{name: "invalid UTF-8 in a key", in: "{\"\xc3\x28\":1}", wantErr: "UTF-8"},
		{name: "overlong encoding", in: "{\"a\":\"\xc0\xaf\"}", wantErr: "UTF-8"},
		{name: "trailing object", in: `{} {}`, wantErr: "after the JSON value"},
		{name: "trailing garbage", in: `{}x`, wantErr: "after the JSON value"},
		{name: "trailing comma", in: `{"a":1,}`, wantErr: "invalid"},
		{name: "two values", in: `1 2`, wantErr: "after the JSON value"},
		{name: "empty", in: ``, wantErr: "EOF"},
		{name: "unterminated", in: `{"a":[1,2`, wantErr: "EOF"},
		{name: "depth at the limit", in: strings.Repeat("[", strictjson.MaxDepth) + strings.Repeat("]", strictjson.MaxDepth)},
		{name: "depth over the limit", in: strings.Repeat("[", strictjson.MaxDepth+1) + strings.Repeat("]", strictjson.MaxDepth+1), wantErr: "nesting deeper"},
		{name: "depth bomb", in: strings.Repeat(`{"a":[`, 500000), wantErr: "nesting deeper"},
		{name: "NaN", in: `{"a":NaN}`, wantErr: "invalid"},
		{name: "single quotes", in: `{'a':1}`, wantErr: "invalid"},
		{name: "comment", in: "{\"a\":1 /* x */}", wantErr: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := strictjson.Check([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestUnmarshal(t *testing.T) {
	valid := `{"producer":"p","schemaVersion":1,"exportId":"20260301T120000Z","generatedAt":"2026-03-01T12:00:00Z",` +
		`"files":[{"path":"a","size":1}],"labels":{"Any Key":{"path":"b","size":2}},"raw":[{"Free":"form","FREE?":1}],"Untagged":"u"}`
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "valid", in: valid},
		{name: "escaped key is the same key", in: `{"\u0065xportId":"x"}`},
		{name: "duplicate key", in: `{"exportId":"a","exportId":"b"}`, wantErr: "duplicate"},
		{name: "case-variant duplicate", in: `{"exportId":"a","ExportId":"b"}`, wantErr: "differ only by case"},
		{name: "escaped-key duplicate", in: `{"exportId":"a","\u0065xportId":"b"}`, wantErr: "duplicate"},
		{name: "case-variant single field", in: `{"ExportID":"20260301T120000Z"}`, wantErr: `unknown field "ExportID"`},
		{name: "upper-case single field", in: `{"EXPORTID":"x"}`, wantErr: "unknown field"},
		{name: "Kelvin-sign field", in: `{"\u212aey":"x"}`, wantErr: "unknown field"},
		{name: "long-s field", in: `{"\u017fchemaVersion":1}`, wantErr: "unknown field"},
		{name: "case-variant nested field", in: `{"files":[{"Path":"a"}]}`, wantErr: `files: [0]: unknown field "Path"`},
		{name: "case-variant field in a map value", in: `{"labels":{"x":{"SIZE":1}}}`, wantErr: "unknown field"},
		{name: "case-variant embedded field", in: `{"Producer":"p"}`, wantErr: "unknown field"},
		{name: "unknown field", in: `{"exportId":"a","signature":"x"}`, wantErr: `unknown field "signature"`},
		{name: "field tagged -", in: `{"Skipped":"x"}`, wantErr: "unknown field"},
		{name: "wrong type", in: `{"schemaVersion":"1"}`, wantErr: "cannot unmarshal"},
		{name: "number overflow", in: `{"schemaVersion":1e400}`, wantErr: "cannot unmarshal"},
		{name: "bad time", in: `{"generatedAt":"yesterday"}`, wantErr: "parsing time"},
		{name: "invalid UTF-8", in: "{\"exportId\":\"\xff\"}", wantErr: "UTF-8"},
		{name: "trailing data", in: `{"exportId":"a"}{"exportId":"b"}`, wantErr: "after the JSON value"},
		{name: "depth bomb", in: `{"raw":[` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `]}`, wantErr: "nesting deeper"},
		{name: "case-variant keys in free-form content", in: `{"raw":[{"id":"a","ID":"b"}]}`, wantErr: "differ only by case"},
		{name: "null", in: `null`},
		{name: "array for an object", in: `[]`, wantErr: "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d doc
			err := strictjson.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}

	var d doc
	if err := strictjson.Unmarshal([]byte(valid), &d); err != nil {
		t.Fatal(err)
	}
	if d.Producer != "p" || d.ExportID != "20260301T120000Z" || len(d.Files) != 1 || d.Labels["Any Key"].Size != 2 || d.Untagged != "u" {
		t.Errorf("decoded %+v", d)
	}
}

// TestUnmarshalIntoMapAndSlice: documents whose top level is not a struct.
func TestUnmarshalIntoMapAndSlice(t *testing.T) {
	var m map[string][]entry
	if err := strictjson.Unmarshal([]byte(`{"a":[{"path":"x","size":1}]}`), &m); err != nil {
		t.Fatal(err)
	}
	if err := strictjson.Unmarshal([]byte(`{"a":[{"PATH":"x"}]}`), &m); err == nil {
		t.Error("accepted a case-variant field inside a map of slices")
	}
	var s []entry
	if err := strictjson.Unmarshal([]byte(`[{"path":"x"},{"path":"y","path":"z"}]`), &s); err == nil {
		t.Error("accepted a duplicate inside a slice")
	}
}
