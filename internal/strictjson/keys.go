package strictjson

import (
	"encoding/binary"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// keySet holds the keys, folded to lower case, of the objects being
// scanned: the keys of the innermost object come last.
type keySet struct {
	refs   []keyRef
	folded []byte
}

// keyRef is one key of a keySet.
type keyRef struct {
	start, end int    // the folded key is folded[start:end]
	quote      int    // offset of the key's opening quote in the document
	hash       uint32 // foldHash of the folded key
}

// keyScope is the part of a keySet that belongs to one object.
type keyScope struct {
	refs, folded int            // lengths of the keySet's slices when the object opened
	index        map[string]int // folded key to index in refs, once the object has many keys
}

// linearKeys is how many keys an object may have before its duplicates are
// looked up in a map rather than by comparing with every earlier key: the
// comparisons, mostly of hashes, cost less than filling a map up to about
// this many keys (see BenchmarkCheckWidth).
const linearKeys = 128

// open starts the keys of an object.
func (k *keySet) open() keyScope {
	return keyScope{refs: len(k.refs), folded: len(k.folded)}
}

// small reports whether k's storage is small enough to keep for reuse.
func (k *keySet) small() bool {
	return cap(k.refs) <= 4<<10 && cap(k.folded) <= 64<<10
}

// reset empties k, keeping its storage.
func (k *keySet) reset() {
	k.refs = k.refs[:0]
	k.folded = k.folded[:0]
}

// close drops the keys of the object that scope belongs to, which must be
// the innermost one.
func (k *keySet) close(scope keyScope) {
	k.refs = k.refs[:scope.refs]
	k.folded = k.folded[:scope.folded]
}

// add records the key data[start:end] (a string with its quotes) in scope,
// or reports that it repeats an earlier key of the object once both are
// decoded and folded with strings.ToLower. plain says that the key is ASCII
// without escapes.
func (k *keySet) add(scope *keyScope, data []byte, start, end int, plain bool) error {
	from := len(k.folded)
	raw := data[start+1 : end-1]
	if plain {
		k.folded = appendLowerASCII(k.folded, raw)
	} else {
		k.folded = append(k.folded, strings.ToLower(unquote(raw))...)
	}
	folded := k.folded[from:]
	h := foldHash(folded)
	if i, dup := k.find(scope, folded, h); dup {
		return duplicateKeyError(unquote(quotedAt(data, k.refs[i].quote)), unquote(raw))
	}
	k.refs = append(k.refs, keyRef{start: from, end: len(k.folded), quote: start, hash: h})
	switch n := len(k.refs) - scope.refs; {
	case scope.index != nil:
		scope.index[string(folded)] = len(k.refs) - 1
	case n > linearKeys:
		scope.index = make(map[string]int, 2*n)
		for i := scope.refs; i < len(k.refs); i++ {
			scope.index[string(k.key(i))] = i
		}
	}
	return nil
}

// find returns the index in refs of the key of scope that folds to folded.
func (k *keySet) find(scope *keyScope, folded []byte, h uint32) (int, bool) {
	if scope.index != nil {
		i, ok := scope.index[string(folded)]
		return i, ok
	}
	for i := scope.refs; i < len(k.refs); i++ {
		if k.refs[i].hash == h && string(k.key(i)) == string(folded) {
			return i, true
		}
	}
	return 0, false
}

// key returns the folded bytes of refs[i].
func (k *keySet) key(i int) []byte {
	return k.folded[k.refs[i].start:k.refs[i].end]
}

// foldHash hashes a folded key eight bytes at a time.
func foldHash(folded []byte) uint32 {
	h := uint64(len(folded))
	for len(folded) >= 8 {
		h = (h ^ binary.LittleEndian.Uint64(folded)) * 0x9e3779b97f4a7c15
		folded = folded[8:]
	}
	var tail uint64
	for i, c := range folded {
		tail |= uint64(c) << (8 * i)
	}
	h = (h ^ tail) * 0x9e3779b97f4a7c15
	return uint32(h >> 32)
}

// appendLowerASCII appends s, which is ASCII, with A to Z in lower case.
func appendLowerASCII(dst, s []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, len(s))[:n+len(s)]
	out := dst[n:]
	for len(s) >= 8 {
		binary.LittleEndian.PutUint64(out, lowerASCII8(binary.LittleEndian.Uint64(s)))
		s, out = s[8:], out[8:]
	}
	for i, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return dst
}

// lowerASCII8 turns the bytes A to Z of x, eight ASCII bytes, to lower case.
func lowerASCII8(x uint64) uint64 {
	atLeastA := x + (0x80-'A')*ones
	beyondZ := x + (0x80-'Z'-1)*ones
	upper := atLeastA &^ beyondZ & highs
	return x | upper>>2
}

// quotedAt returns the contents of the valid JSON string whose opening
// quote is at data[i].
func quotedAt(data []byte, i int) []byte {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return data[i+1 : j]
		}
	}
	return data[i+1:]
}

// unquote decodes the contents of a valid JSON string as encoding/json
// does: a surrogate escape that is not half of a pair decodes to U+FFFD.
func unquote(raw []byte) string {
	return string(appendUnquoted(make([]byte, 0, len(raw)), raw))
}

func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := unicodeEscape(raw[i:])
			dst = utf8.AppendRune(dst, r)
			i += n
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// unicodeEscape decodes the \u escape at the start of s, with the one
// after it if the two are a surrogate pair, and returns the rune and the
// number of bytes used.
func unicodeEscape(s []byte) (rune, int) {
	r := hex4(s[2:6])
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
		if pair := utf16.DecodeRune(r, hex4(s[8:12])); pair != unicode.ReplacementChar {
			return pair, 12
		}
	}
	return unicode.ReplacementChar, 6
}

// hex4 decodes four hexadecimal digits, or returns -1.
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
