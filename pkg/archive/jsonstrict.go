package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

const maxJSONDepth = 32

// checkStrictJSON refuses duplicate object keys, keys that differ from a
// known field name only by case (encoding/json would match them anyway),
// nesting deeper than maxJSONDepth and anything after the top-level value.
func checkStrictJSON(data []byte, known []string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := strictValue(dec, known, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

func strictValue(dec *json.Decoder, known []string, depth int) error {
	if depth > maxJSONDepth {
		return errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, ok := kt.(string)
			if !ok {
				return errors.New("malformed JSON object")
			}
			if seen[key] {
				return fmt.Errorf("duplicate key %q", key)
			}
			seen[key] = true
			for _, k := range known {
				if key != k && strings.EqualFold(key, k) {
					return fmt.Errorf("key %q differs from %q only by case", key, k)
				}
			}
			if err := strictValue(dec, known, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for dec.More() {
			if err := strictValue(dec, known, depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // closing delimiter
	return err
}
