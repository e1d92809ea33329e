package strictjson_test

// The token-based implementation that the byte-level checker replaced. It is
// kept as the reference the differential fuzz targets and the benchmarks
// compare against.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
)

// oracleUnmarshal is the reference Unmarshal.
func oracleUnmarshal(data []byte, v any) error {
	if err := oracleCheck(data); err != nil {
		return err
	}
	if err := oracleCheckNames(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}

// oracleCheck is the reference Check.
func oracleCheck(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := oracleWalkValue(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// oracleWalkValue is the reference WalkValue.
func oracleWalkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= strictjson.MaxDepth {
		return fmt.Errorf("nesting deeper than %d", strictjson.MaxDepth)
	}
	switch d {
	case '{':
		seen := map[string]string{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key := kt.(string)
			fold := strings.ToLower(key)
			if prev, dup := seen[fold]; dup {
				if prev == key {
					return fmt.Errorf("duplicate key %q", key)
				}
				return fmt.Errorf("keys %q and %q differ only by case", prev, key)
			}
			seen[fold] = key
			if err := oracleWalkValue(dec, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := oracleWalkValue(dec, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // closing delimiter
	return err
}

// oracleCheckNames is the reference checkNames.
func oracleCheckNames(data []byte, t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(json.RawMessage{}) {
			return nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil // the typed decode reports the mismatch
		}
		fields := oracleJSONFields(t)
		for k, raw := range obj {
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("unknown field %q", k)
			}
			if err := oracleCheckNames(raw, ft); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		var arr []json.RawMessage
		if err := json.Unmarshal(data, &arr); err != nil {
			return nil
		}
		for i, raw := range arr {
			if err := oracleCheckNames(raw, t.Elem()); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil
		}
		for k, raw := range obj {
			if err := oracleCheckNames(raw, t.Elem()); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	return nil
}

func oracleJSONFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range oracleJSONFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		out[name] = f.Type
	}
	return out
}
