// Package strictjson decodes signed JSON documents strictly: no duplicate
// keys (also not by case or escaping), no unknown or case-variant field
// names, valid UTF-8, bounded nesting, nothing after the value.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of arrays and objects.
const MaxDepth = 64

// Errors that streaming readers of strict documents report as Check does.
var (
	ErrInvalidUTF8   = errors.New("invalid UTF-8")
	ErrDataAfterJSON = errors.New("data after the JSON value")
)

var (
	errInvalidUTF8   = ErrInvalidUTF8
	errTooDeep       = fmt.Errorf("nesting deeper than %d", MaxDepth)
	errDataAfterJSON = ErrDataAfterJSON
)

// AddKey records key, an object key of a document being read as a stream,
// in seen (the object's keys by lower case), refusing it as Check would
// when it repeats a key of the object or differs from one only by case.
func AddKey(seen map[string]string, key string) error {
	fold := strings.ToLower(key)
	if prev, dup := seen[fold]; dup {
		return duplicateKeyError(prev, key)
	}
	seen[fold] = key
	return nil
}

// duplicateKeyError reports key repeating prev, the earlier key of the same
// object that folds to the same lower case.
func duplicateKeyError(prev, key string) error {
	if prev == key {
		return fmt.Errorf("duplicate key %q", key)
	}
	return fmt.Errorf("keys %q and %q differ only by case", prev, key)
}

// Unmarshal decodes data into v after Check, and refuses any object key that
// is not exactly the json name of a field of v's type.
func Unmarshal(data []byte, v any) error {
	if err := Check(data); err != nil {
		return err
	}
	if err := checkNames(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	if plainType(reflect.TypeOf(v)) {
		// checkNames has refused every key that is not a field's exact
		// name, so encoding/json's DisallowUnknownFields would add nothing;
		// json.Unmarshal decodes in place where a Decoder copies data.
		return json.Unmarshal(data, v)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}

// Check validates data as one JSON value with unique keys in every object
// (also by case, after decoding escapes), valid UTF-8 throughout, nesting of
// at most MaxDepth and nothing but whitespace after the value.
func Check(data []byte) error {
	err := scan(data)
	if err != nil && !utf8.Valid(data) {
		// Invalid UTF-8 anywhere outranks whatever else is wrong.
		return errInvalidUTF8
	}
	return err
}

// WalkValue reads the next value from dec with the checks of Check: unique
// keys in every object (also by case), nesting of at most MaxDepth counting
// from depth. Streaming readers use it for one element of a larger document.
func WalkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= MaxDepth {
		return errTooDeep
	}
	switch d {
	case '{':
		seen := map[string]string{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			if err := AddKey(seen, kt.(string)); err != nil {
				return err
			}
			if err := WalkValue(dec, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := WalkValue(dec, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // closing delimiter
	return err
}
