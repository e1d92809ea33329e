package archive

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// TestManifestLimits checks that reading mirror.json as a stream gives the
// limits that decoding it whole (json.Unmarshal) and BundleLimits give, and
// refuses what json.Unmarshal refuses.
func TestManifestLimits(t *testing.T) {
	for _, doc := range []string{
		`{"schemaVersion":1,"files":[{"path":"mirror/a/x.json","size":10,"sha256":"00"},{"path":"keys/k.pub","size":3}],"domains":["a"]}`,
		`{"files":[{"path":"mirror/a/x.json","size":10}],"files":[{"path":"b","size":1}]}`,
		`{"Files":[{"PATH":"mirror/a/x.json","Size":10}]}`,
		`{"files":null}`,
		`{"files":[null,{"path":"a/b","size":2}]}`,
		`{"other":{"files":[{"path":"x/y","size":1}]}}`,
		`{}`,
		`{"files":[{"path":"a","size":-1}]}`,
		`{"files":[{"path":"a","size":1}]} `,
		`{"files":[{"path":"a","size":1}]} {}`,
		`{"files":[{"path":"a","size":"1"}]}`,
		`{"files":{"path":"a"}}`,
		`{"files":[{"path":"a","size":1}]`,
		`[{"files":[]}]`,
		`nonsense`,
		``,
	} {
		var m struct {
			Files []bundle.FileEntry `json:"files"`
		}
		uerr := json.Unmarshal([]byte(doc), &m)
		got, ok := manifestLimits(strings.NewReader(doc), int64(len(doc)), true)
		if ok != (uerr == nil) {
			t.Errorf("%s: ok %v, json.Unmarshal: %v", doc, ok, uerr)
			continue
		}
		if want := BundleLimits(m.Files, int64(len(doc))); ok && got != want {
			t.Errorf("%s: %+v, want %+v", doc, got, want)
		}
	}
	if _, ok := manifestLimits(strings.NewReader(`{"files":[]} trailing`), 20, false); !ok {
		t.Error("trailing data refused without whole")
	}
}
