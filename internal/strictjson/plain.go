package strictjson

import (
	"reflect"
	"strings"
	"sync"
)

// plainTypes caches plainType: reflect.Type to bool.
var plainTypes sync.Map

// plainType reports whether, for t, a name check by checkNames makes
// encoding/json's DisallowUnknownFields redundant: no struct reachable from
// t embeds another (where the two disagree about promoted and tagged
// fields) or has two fields whose json names fold to the same lower case.
func plainType(t reflect.Type) bool {
	if v, ok := plainTypes.Load(t); ok {
		return v.(bool)
	}
	ok := isPlain(t, map[reflect.Type]bool{})
	plainTypes.Store(t, ok)
	return ok
}

func isPlain(t reflect.Type, visiting map[reflect.Type]bool) bool {
	if t == nil {
		return true
	}
	if visiting[t] {
		return true // a recursive type is as plain as the rest of it
	}
	visiting[t] = true
	defer delete(visiting, t)
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return isPlain(t.Elem(), visiting)
	case reflect.Struct:
		names := map[string]bool{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				return false
			}
			name, ok := jsonName(f)
			if !ok {
				continue
			}
			fold := strings.ToLower(name)
			if names[fold] {
				return false
			}
			names[fold] = true
			if !isPlain(f.Type, visiting) {
				return false
			}
		}
	}
	return true
}
