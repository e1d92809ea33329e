package strictjson_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/internal/testutil"
)

// dupKeys reports whether any object in data repeats a key, comparing
// decoded keys case-insensitively; it is a second, independent walk.
func dupKeys(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	var walk func() (bool, error)
	walk = func() (bool, error) {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		switch tok {
		case json.Delim('{'):
			keys := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return false, err
				}
				lk := strings.ToLower(k.(string))
				if keys[lk] {
					return true, nil
				}
				keys[lk] = true
				if d, err := walk(); d || err != nil {
					return d, err
				}
			}
			_, err = dec.Token()
			return false, err
		case json.Delim('['):
			for dec.More() {
				if d, err := walk(); d || err != nil {
					return d, err
				}
			}
			_, err = dec.Token()
			return false, err
		}
		return false, nil
	}
	d, _ := walk()
	return d
}

func FuzzStrictJSON(f *testing.F) {
	if err := fsSeeds(f); err != nil {
		f.Fatal(err)
	}
	for _, pattern := range []string{"cases/json-*/mirror.json", "cases/json-*/mirror.dsse.json", "cases/json-*/mirror/index.json", "cases/json-*/mirror/primary/*.json"} {
		for _, s := range testutil.CorpusSeeds(f, "../..", pattern, 1<<20) {
			f.Add(s)
		}
	}
	f.Add([]byte(`{"exportId":"a","\u0065xportId":"b"}`))
	f.Add([]byte(`{"ExportID":"a"}`))
	f.Add([]byte(strings.Repeat("[", 100)))
	f.Add([]byte("{\"a\":\"\xff\"}"))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := strictjson.Check(data)
		if err != nil {
			var d doc
			if strictjson.Unmarshal(data, &d) == nil {
				t.Fatalf("Unmarshal accepted what Check refused (%v)", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatal("Check accepted invalid JSON")
		}
		if !utf8.Valid(data) {
			t.Fatal("Check accepted invalid UTF-8")
		}
		if dupKeys(data) {
			t.Fatal("Check accepted a duplicate key")
		}
		var d doc
		if err := strictjson.Unmarshal(data, &d); err != nil {
			return
		}
		// Whatever Unmarshal accepts names only exact fields: encoding it
		// again and decoding strictly gives the same document.
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var again doc
		if err := strictjson.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-encoded document refused: %v\n%s", err, out)
		}
		out2, _ := json.Marshal(again)
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the document:\n%s\n%s", out, out2)
		}
	})
}

// fsSeeds adds the sample feed's documents as seeds.
func fsSeeds(f *testing.F) error {
	dir := f.TempDir()
	if err := samplefeed.WriteTo(dir); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(p) != ".json" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f.Add(data)
		return nil
	})
}
