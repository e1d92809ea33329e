package strictjson

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// shapeKind says how checkNames walks a value of a Go type.
type shapeKind uint8

const (
	shapeAny    shapeKind = iota // not walked: scalars, interfaces, byte slices
	shapeStruct                  // an object whose keys must name fields
	shapeList                    // an array whose elements have the shape elem
	shapeMap                     // an object whose values have the shape elem
)

// shape is what checkNames needs to know of a Go type.
type shape struct {
	kind   shapeKind
	elem   *shape            // shapeList, shapeMap
	fields map[string]*shape // shapeStruct: json name to field shape
}

var anyShape = &shape{kind: shapeAny}

// shapes caches the shape of each type Unmarshal has decoded into.
var shapes sync.Map // reflect.Type to *shape

// shapeOf returns the shape of t, built once per type.
func shapeOf(t reflect.Type) *shape {
	if t == nil {
		return anyShape
	}
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s, _ := shapes.LoadOrStore(t, buildShape(t, map[reflect.Type]*shape{}))
	return s.(*shape)
}

// buildShape builds the shape of t; building holds the shapes under
// construction, so that recursive types refer back to them.
func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := building[t]; ok {
		return s
	}
	s := &shape{}
	building[t] = s
	switch t.Kind() {
	case reflect.Struct:
		s.kind = shapeStruct
		fields := jsonFields(t)
		s.fields = make(map[string]*shape, len(fields))
		for name, ft := range fields {
			s.fields[name] = buildShape(ft, building)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() != reflect.Uint8 {
			s.kind = shapeList
			s.elem = buildShape(t.Elem(), building)
		}
	case reflect.Map:
		s.kind = shapeMap
		s.elem = buildShape(t.Elem(), building)
	}
	return s
}

// jsonFields maps the json name of each field of the struct type t, with
// the fields of embedded structs, to the field's type.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name, ok := jsonName(f); ok {
			out[name] = f.Type
		}
	}
	return out
}

// jsonName returns the name encoding/json uses for the field f, and false
// for fields it ignores (unexported, or tagged "-").
func jsonName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	tag, ok := f.Tag.Lookup("json")
	if !ok {
		return f.Name, true
	}
	n, _, _ := strings.Cut(tag, ",")
	switch n {
	case "-":
		return "", false
	case "":
		return f.Name, true
	}
	return n, true
}

// checkNames refuses object keys that do not exactly name a field. data
// must have passed Check. Values whose JSON kind does not match the Go type
// are left to the typed decode to report.
func checkNames(data []byte, t reflect.Type) error {
	s := shapeOf(t)
	if s.kind == shapeAny {
		return nil
	}
	w := namesWalker{data: data}
	w.skipSpace()
	return w.value(s)
}

// namesWalker walks a document that has passed Check, guided by shapes.
type namesWalker struct {
	data []byte
	pos  int
}

func (w *namesWalker) skipSpace() {
	if w.pos < len(w.data) && spaceChars[w.data[w.pos]] {
		w.pos = skipSpace(w.data, w.pos+1)
	}
}

// value walks the value at the current position, which is not whitespace.
func (w *namesWalker) value(s *shape) error {
	c := w.data[w.pos]
	switch {
	case s.kind == shapeStruct && c == '{':
		return w.members(s)
	case s.kind == shapeMap && c == '{':
		return w.members(s)
	case s.kind == shapeList && c == '[':
		return w.elements(s.elem)
	}
	w.skipValue()
	return nil
}

// members walks an object: the fields of a struct, or the values of a map.
func (w *namesWalker) members(s *shape) error {
	w.pos++
	w.skipSpace()
	if w.data[w.pos] == '}' {
		w.pos++
		return nil
	}
	for {
		name := w.key()
		vs := s.elem
		if s.kind == shapeStruct {
			f, ok := s.fields[string(name)]
			if !ok {
				return fmt.Errorf("unknown field %q", name)
			}
			vs = f
		}
		w.skipSpace()
		w.pos++ // ':'
		w.skipSpace()
		if err := w.value(vs); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		w.skipSpace()
		if w.data[w.pos] == '}' {
			w.pos++
			return nil
		}
		w.pos++ // ','
		w.skipSpace()
	}
}

// elements walks the elements of an array.
func (w *namesWalker) elements(elem *shape) error {
	w.pos++
	w.skipSpace()
	if w.data[w.pos] == ']' {
		w.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := w.value(elem); err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
		w.skipSpace()
		if w.data[w.pos] == ']' {
			w.pos++
			return nil
		}
		w.pos++ // ','
		w.skipSpace()
	}
}

// key reads the object key at the current position and returns it decoded.
func (w *namesWalker) key() []byte {
	start := w.pos
	w.skipString()
	raw := w.data[start+1 : w.pos-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	return appendUnquoted(make([]byte, 0, len(raw)), raw)
}

// skipString moves past the string at the current position.
func (w *namesWalker) skipString() {
	i := w.pos + 1
	for {
		i += bytes.IndexByte(w.data[i:], '"')
		if !escapedQuote(w.data, i) {
			w.pos = i + 1
			return
		}
		i++
	}
}

// escapedQuote reports whether the quote at data[i] is preceded by an odd
// number of backslashes.
func escapedQuote(data []byte, i int) bool {
	n := 0
	for i > 0 && data[i-1] == '\\' {
		n++
		i--
	}
	return n%2 == 1
}

// skipValue moves past the value at the current position.
func (w *namesWalker) skipValue() {
	depth := 0
	for {
		switch w.data[w.pos] {
		case '"':
			w.skipString()
		case '{', '[':
			depth++
			w.pos++
		case '}', ']':
			depth--
			w.pos++
		default:
			if depth == 0 {
				w.skipScalar()
				return
			}
			w.pos++
		}
		if depth == 0 {
			return
		}
	}
}

// skipScalar moves past the number or literal at the current position.
func (w *namesWalker) skipScalar() {
	for w.pos < len(w.data) && !endsScalar[w.data[w.pos]] {
		w.pos++
	}
}

// endsScalar are the bytes that may follow a number or literal.
var endsScalar = [256]bool{' ': true, '\t': true, '\n': true, '\r': true, ',': true, ']': true, '}': true}
