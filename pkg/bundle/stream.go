package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
)

// errInvalidUTF8 is what utf8Reader returns at the first invalid byte.
var errInvalidUTF8 = strictjson.ErrInvalidUTF8

// fieldReader consumes the value of one streamed field from dec.
type fieldReader func(dec *json.Decoder) error

// decodeStream decodes the JSON object read from r into v (a pointer to a
// struct) in one streaming pass, with the checks of strictjson.Unmarshal:
// valid UTF-8, no duplicate keys (also not by case or escaping) at any
// depth, nesting of at most strictjson.MaxDepth, nothing after the value,
// and no field that v's type does not have.
//
// The fields named in streamed are not decoded into v: their reader
// consumes the value from the decoder instead, one array element at a time,
// so that memory stays bounded by one element however long the array is.
// Every other field is re-assembled into a small document, decoded with
// strictjson.Unmarshal once the object ends; doc names the document in the
// message when that part exceeds MaxDocumentSize.
func decodeStream(r io.Reader, v any, doc string, streamed map[string]fieldReader) error {
	ur := &utf8Reader{r: r}
	dec := json.NewDecoder(ur)
	dec.UseNumber()
	err := decodeObject(dec, v, doc, streamed, func() bool { return ur.bad })
	if err != nil && ur.bad {
		return errInvalidUTF8
	}
	return err
}

// decodeObject is decodeStream after the reader is set up; bad reports
// whether the input held invalid UTF-8 so far.
func decodeObject(dec *json.Decoder, v any, doc string, streamed map[string]fieldReader, bad func() bool) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		// null decodes into nothing, as encoding/json has it.
		return endOfDocument(dec, bad)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("json: cannot unmarshal %s into Go value of type %s", jsonKind(tok), reflect.TypeOf(v).Elem())
	}
	var head bytes.Buffer
	head.WriteByte('{')
	seen := map[string]string{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		key := kt.(string)
		if err := strictjson.AddKey(seen, key); err != nil {
			return err
		}
		if read, ok := streamed[key]; ok {
			if err := read(dec); err != nil {
				return err
			}
			continue
		}
		if err := appendField(dec, &head, key); err != nil {
			return err
		}
		if head.Len() > MaxDocumentSize {
			return fmt.Errorf("%s without its %s is larger than %d bytes", doc, streamedNames(streamed), MaxDocumentSize)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if err := endOfDocument(dec, bad); err != nil {
		return err
	}
	head.WriteByte('}')
	return strictjson.Unmarshal(head.Bytes(), v)
}

// endOfDocument makes sure nothing but white space follows the value, and
// that the whole input was valid UTF-8.
func endOfDocument(dec *json.Decoder, bad func() bool) error {
	if _, err := dec.Token(); err != io.EOF {
		if err == nil || !bad() {
			return strictjson.ErrDataAfterJSON
		}
		return err
	}
	if bad() {
		return errInvalidUTF8
	}
	return nil
}

// appendField reads the value of key from dec and appends the member to
// the object being assembled in head.
func appendField(dec *json.Decoder, head *bytes.Buffer, key string) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if head.Len() > 1 {
		head.WriteByte(',')
	}
	k, _ := json.Marshal(key)
	head.Write(k)
	head.WriteByte(':')
	head.Write(raw)
	return nil
}

// streamedNames lists the streamed fields for a message.
func streamedNames(streamed map[string]fieldReader) string {
	names := make([]string, 0, len(streamed))
	for k := range streamed {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, " and ")
}

// eachElement reads a streamed field's value: null, or an array whose
// elements each are consumed by elem (called with the element's index).
// goType describes the field for the message when the value is neither, as
// encoding/json would ("Go struct field T.f of type []U").
func eachElement(dec *json.Decoder, goType string, elem func(i int) error) (null bool, err error) {
	tok, err := dec.Token()
	if err != nil {
		return false, err
	}
	if tok == nil {
		return true, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return false, fmt.Errorf("json: cannot unmarshal %s into %s", jsonKind(tok), goType)
	}
	for i := 0; dec.More(); i++ {
		if err := elem(i); err != nil {
			return false, err
		}
	}
	_, err = dec.Token() // the closing bracket
	return false, err
}

// elementDecoder decodes array elements with strictjson.Unmarshal, reusing
// one buffer for their text.
type elementDecoder struct {
	field string
	raw   json.RawMessage
}

// decode reads element i of the field from dec into v.
func (e *elementDecoder) decode(dec *json.Decoder, i int, v any) error {
	e.raw = e.raw[:0]
	if err := dec.Decode(&e.raw); err != nil {
		return err
	}
	if err := strictjson.Unmarshal(e.raw, v); err != nil {
		return fmt.Errorf("%s: [%d]: %w", e.field, i, err)
	}
	return nil
}

// walkElements checks every element of a streamed array as strictjson.Check
// would (depth counted from the top-level object, as there) and counts them.
func walkElements(dec *json.Decoder, goType string) (int, error) {
	n := 0
	_, err := eachElement(dec, goType, func(int) error {
		n++
		return strictjson.WalkValue(dec, 2)
	})
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
