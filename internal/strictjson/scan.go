package strictjson

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"sync"
	"unicode/utf8"
)

// scanner validates one JSON document in a single pass over its bytes.
type scanner struct {
	data []byte
	pos  int
	keys *keySet
}

// keySets keeps the key storage of finished scans for the next ones.
var keySets = sync.Pool{New: func() any { return new(keySet) }}

// scan checks data as Check does, except that invalid UTF-8 outside
// strings is reported as a syntax error.
func scan(data []byte) error {
	keys := keySets.Get().(*keySet)
	defer func() {
		if keys.small() {
			keys.reset()
			keySets.Put(keys)
		}
	}()
	s := scanner{data: data, keys: keys}
	s.skipSpace()
	if err := s.value(0); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos < len(s.data) {
		return errDataAfterJSON
	}
	return nil
}

// syntaxError is a violation of the JSON grammar at a byte offset.
type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string {
	return e.msg + " at offset " + strconv.Itoa(e.offset)
}

// unexpectedEOFError is the end of data inside a value.
type unexpectedEOFError struct{ offset int }

func (e *unexpectedEOFError) Error() string {
	return io.ErrUnexpectedEOF.Error() + " at offset " + strconv.Itoa(e.offset)
}

func (e *unexpectedEOFError) Unwrap() error { return io.ErrUnexpectedEOF }

// unexpectedEOF reports that data ends inside a value.
func (s *scanner) unexpectedEOF() error {
	return &unexpectedEOFError{offset: len(s.data)}
}

// invalid reports the byte at offset i, found where context says, or the
// end of data if i is past it.
func (s *scanner) invalid(i int, context string) error {
	if i >= len(s.data) {
		return s.unexpectedEOF()
	}
	return &syntaxError{msg: "invalid character " + quoteChar(s.data[i]) + " " + context, offset: i}
}

// quoteChar formats c as encoding/json's syntax errors do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// spaceChars are the bytes JSON allows between tokens.
var spaceChars = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// skipSpace moves past whitespace.
func (s *scanner) skipSpace() {
	if s.pos < len(s.data) && spaceChars[s.data[s.pos]] {
		s.pos = skipSpace(s.data, s.pos+1)
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// whitespace, or len(data).
func skipSpace(data []byte, i int) int {
	for i < len(data) && spaceChars[data[i]] {
		i++
	}
	return i
}

// at reports whether the byte at the current position is c.
func (s *scanner) at(c byte) bool {
	return s.pos < len(s.data) && s.data[s.pos] == c
}

// value checks the value that starts at the current position, which is not
// whitespace; depth counts the arrays and objects around it.
func (s *scanner) value(depth int) error {
	if s.pos >= len(s.data) {
		return s.unexpectedEOF()
	}
	switch c := s.data[s.pos]; c {
	case '{':
		return s.object(depth)
	case '[':
		return s.array(depth)
	case '"':
		_, err := s.str()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || isDigit(c) {
			return s.number()
		}
		return s.invalid(s.pos, "looking for beginning of value")
	}
}

// array checks the array at the current position, nested depth deep.
func (s *scanner) array(depth int) error {
	if depth >= MaxDepth {
		return errTooDeep
	}
	s.pos++
	s.skipSpace()
	if s.at(']') {
		s.pos++
		return nil
	}
	for {
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		switch {
		case s.at(','):
			s.pos++
			s.skipSpace()
		case s.at(']'):
			s.pos++
			return nil
		default:
			return s.invalid(s.pos, "after array element")
		}
	}
}

// object checks the object at the current position, nested depth deep,
// and that its keys are unique.
func (s *scanner) object(depth int) error {
	if depth >= MaxDepth {
		return errTooDeep
	}
	s.pos++
	s.skipSpace()
	if s.at('}') {
		s.pos++
		return nil
	}
	scope := s.keys.open()
	for {
		if err := s.key(&scope); err != nil {
			return err
		}
		s.skipSpace()
		if !s.at(':') {
			return s.invalid(s.pos, "after object key")
		}
		s.pos++
		s.skipSpace()
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		switch {
		case s.at(','):
			s.pos++
			s.skipSpace()
		case s.at('}'):
			s.pos++
			s.keys.close(scope)
			return nil
		default:
			return s.invalid(s.pos, "after object key:value pair")
		}
	}
}

// key checks the object key at the current position and adds it to scope.
func (s *scanner) key(scope *keyScope) error {
	if !s.at('"') {
		return s.invalid(s.pos, "looking for beginning of object key string")
	}
	start := s.pos
	plain, err := s.str()
	if err != nil {
		return err
	}
	return s.keys.add(scope, s.data, start, s.pos, plain)
}

// stringChars are the bytes that stand for themselves inside a string:
// printable ASCII other than the quote and the backslash.
var stringChars = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str checks the string at the current position and moves past it. plain
// reports that it is ASCII without escapes, so that its bytes are its value.
func (s *scanner) str() (plain bool, err error) {
	data := s.data
	i := s.pos + 1
	plain = true
	for {
		i = skipStringChars(data, i)
		if i >= len(data) {
			return false, s.unexpectedEOF()
		}
		switch c := data[i]; {
		case c == '"':
			s.pos = i + 1
			return plain, nil
		case c == '\\':
			plain = false
			if i, err = s.escape(i); err != nil {
				return false, err
			}
		case c < 0x20:
			return false, s.invalid(i, "in string literal")
		default:
			plain = false
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return false, errInvalidUTF8
			}
			i += size
		}
	}
}

// skipStringChars returns the index of the first byte at or after i that
// is not in stringChars, or len(data).
func skipStringChars(data []byte, i int) int {
	for ; i+8 <= len(data); i += 8 {
		if m := specialStringBytes(binary.LittleEndian.Uint64(data[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(data) && stringChars[data[i]] {
		i++
	}
	return i
}

const (
	ones  = 0x0101010101010101 // the byte 0x01 eight times
	highs = 0x8080808080808080 // the byte 0x80 eight times
)

// specialStringBytes sets the high bit of the lowest byte of x, as read
// little-endian, that is not in stringChars (a quote, a backslash, a
// control character or a non-ASCII byte); bits above it are unspecified.
// It returns 0 if all eight bytes are in stringChars.
func specialStringBytes(x uint64) uint64 {
	control := x - 0x20*ones
	quote := x ^ '"'*ones
	backslash := x ^ '\\'*ones
	return (control&^x | zeroBytes(quote) | zeroBytes(backslash) | x) & highs
}

// zeroBytes sets the high bit of the lowest zero byte of x and maybe of
// bytes above it; it returns 0 only if no byte of x is zero.
func zeroBytes(x uint64) uint64 {
	return (x - ones) &^ x & highs
}

// escape checks the escape sequence whose backslash is at i and returns the
// index after it.
func (s *scanner) escape(i int) (int, error) {
	i++
	if i >= len(s.data) {
		return i, s.unexpectedEOF()
	}
	switch s.data[i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 1, nil
	case 'u':
		for j := i + 1; j < i+5; j++ {
			if j >= len(s.data) || !isHex(s.data[j]) {
				return j, s.invalid(j, `in \u hexadecimal character escape`)
			}
		}
		return i + 5, nil
	}
	return i, s.invalid(i, "in string escape code")
}

// number checks the number at the current position and moves past it.
func (s *scanner) number() error {
	data := s.data
	i := s.pos
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && isDigit(data[i]):
		i = skipDigits(data, i+1)
	default:
		return s.invalid(i, "in numeric literal")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || !isDigit(data[i]) {
			return s.invalid(i, "after decimal point in numeric literal")
		}
		i = skipDigits(data, i+1)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || !isDigit(data[i]) {
			return s.invalid(i, "in exponent of numeric literal")
		}
		i = skipDigits(data, i+1)
	}
	s.pos = i
	return nil
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	return i
}

// literal checks that word (true, false or null) is at the current
// position and moves past it.
func (s *scanner) literal(word string) error {
	for j := 1; j < len(word); j++ {
		i := s.pos + j
		if i >= len(s.data) || s.data[i] != word[j] {
			return s.invalid(i, fmt.Sprintf("in literal %s (expecting %s)", word, quoteChar(word[j])))
		}
	}
	s.pos += len(word)
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
