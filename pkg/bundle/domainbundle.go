package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
)

// errInvalidUTF8 is what utf8Reader returns at the first invalid byte.
var errInvalidUTF8 = errors.New("invalid UTF-8")

// readDomainBundle decodes a domain's bundle.json from r in one streaming
// pass, with the checks of strictjson.Unmarshal: valid UTF-8, no duplicate
// keys (also not by case or escaping) at any depth, nesting of at most
// strictjson.MaxDepth, nothing after the value, and no field that
// DomainBundle does not have. The advisories are checked and counted but not
// kept (the returned bundle's Advisories is nil), and the exports are
// decoded one at a time, so memory stays bounded by the decoded exports
// however many advisories the domain carries; reading the whole document
// into memory, as strictjson.Unmarshal needs, took several times its size.
func readDomainBundle(r io.Reader) (DomainBundle, int, error) {
	var b DomainBundle
	ur := &utf8Reader{r: r}
	dec := json.NewDecoder(ur)
	dec.UseNumber()
	fail := func(err error) (DomainBundle, int, error) {
		if ur.bad {
			err = errInvalidUTF8
		}
		return DomainBundle{}, 0, err
	}
	tok, err := dec.Token()
	if err != nil {
		return fail(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fail(fmt.Errorf("json: cannot unmarshal %s into Go value of type bundle.DomainBundle", jsonKind(tok)))
	}
	// Everything but the advisories is re-assembled into a small document
	// and decoded with strictjson.Unmarshal, which refuses unknown fields.
	var head bytes.Buffer
	head.WriteByte('{')
	seen := map[string]string{}
	count := 0
	var exports []VexExport
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		key := kt.(string)
		fold := strings.ToLower(key)
		if prev, dup := seen[fold]; dup {
			if prev == key {
				return fail(fmt.Errorf("duplicate key %q", key))
			}
			return fail(fmt.Errorf("keys %q and %q differ only by case", prev, key))
		}
		seen[fold] = key
		switch key {
		case "advisories":
			n, err := countArray(dec)
			if err != nil {
				return fail(err)
			}
			count = n
			continue
		case "exports":
			e, err := decodeExports(dec)
			if err != nil {
				return fail(err)
			}
			exports = e
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail(err)
		}
		if head.Len() > 1 {
			head.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		head.Write(k)
		head.WriteByte(':')
		head.Write(raw)
		if head.Len() > MaxDocumentSize {
			return fail(fmt.Errorf("bundle.json without its advisories is larger than %d bytes", MaxDocumentSize))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil || !ur.bad {
			return fail(errors.New("data after the JSON value"))
		}
		return fail(err)
	}
	if ur.bad {
		return fail(errInvalidUTF8)
	}
	head.WriteByte('}')
	if err := strictjson.Unmarshal(head.Bytes(), &b); err != nil {
		return DomainBundle{}, 0, err
	}
	b.Exports = exports
	return b, count, nil
}

// decodeExports reads the exports value: null, or an array whose elements
// are each decoded with strictjson.Unmarshal into a VexExport.
func decodeExports(dec *json.Decoder) ([]VexExport, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("json: cannot unmarshal %s into Go struct field DomainBundle.exports of type []bundle.VexExport", jsonKind(tok))
	}
	out := []VexExport{}
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		var e VexExport
		if err := strictjson.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("exports: [%d]: %w", i, err)
		}
		out = append(out, e)
	}
	_, err = dec.Token() // the closing bracket
	return out, err
}

// countArray reads the advisories value: null, or an array whose elements
// are checked as strictjson.Check would (depth counted from the top-level
// object, as there) and counted.
func countArray(dec *json.Decoder) (int, error) {
	tok, err := dec.Token()
	if err != nil {
		return 0, err
	}
	if tok == nil {
		return 0, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return 0, fmt.Errorf("json: cannot unmarshal %s into Go struct field DomainBundle.advisories of type []json.RawMessage", jsonKind(tok))
	}
	n := 0
	for dec.More() {
		if err := strictjson.WalkValue(dec, 2); err != nil {
			return 0, err
		}
		n++
	}
	_, err = dec.Token() // the closing bracket
	return n, err
}

func jsonKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "array"
		}
		return "object"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	}
	return "null"
}

// utf8Reader passes r through and fails at the first byte that is not
// valid UTF-8, including a sequence cut by the end of the stream.
type utf8Reader struct {
	r     io.Reader
	carry []byte // the start of a sequence cut by the end of the last read
	bad   bool
}

func (u *utf8Reader) Read(p []byte) (int, error) {
	if u.bad {
		return 0, errInvalidUTF8
	}
	n, err := u.r.Read(p)
	b := p[:n]
	for len(u.carry) > 0 && len(b) > 0 {
		u.carry = append(u.carry, b[0])
		b = b[1:]
		if utf8.FullRune(u.carry) {
			if r, size := utf8.DecodeRune(u.carry); r == utf8.RuneError && size <= 1 || size != len(u.carry) {
				u.bad = true
				return n, errInvalidUTF8
			}
			u.carry = u.carry[:0]
		}
	}
	// Keep a sequence cut at the end for the next read.
	if i := lastRuneStart(b); i >= 0 && !utf8.FullRune(b[i:]) {
		u.carry = append(u.carry[:0], b[i:]...)
		b = b[:i]
	}
	if !utf8.Valid(b) {
		u.bad = true
		return n, errInvalidUTF8
	}
	if err == io.EOF && len(u.carry) > 0 {
		u.bad = true
		return n, errInvalidUTF8
	}
	return n, err
}

// lastRuneStart returns the index of the last byte of b that may start a
// sequence, looking back at most utf8.UTFMax bytes, or -1.
func lastRuneStart(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return -1
}
