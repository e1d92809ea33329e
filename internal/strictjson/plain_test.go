package strictjson

import (
	"reflect"
	"testing"
)

func TestPlainType(t *testing.T) {
	type inner struct{ A string }
	type node struct {
		Name string  `json:"name"`
		Next *node   `json:"next"`
		Kids []inner `json:"kids"`
	}
	type embeds struct {
		inner
		B string
	}
	type clash struct {
		A string `json:"id"`
		B string `json:"ID"`
	}
	type deep struct {
		M map[string][]embeds
	}
	for _, c := range []struct {
		v    any
		want bool
	}{
		{node{}, true}, {&node{}, true}, {[]inner{}, true}, {map[string]any{}, true},
		{embeds{}, false}, {clash{}, false}, {deep{}, false},
	} {
		if got := plainType(reflect.TypeOf(c.v)); got != c.want {
			t.Errorf("plainType(%T) = %v, want %v", c.v, got, c.want)
		}
	}
}
