package strictjson

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// appendLowerASCII agrees with bytes.ToLower on ASCII, whatever the length
// and wherever each byte value sits in an eight-byte word.
func TestAppendLowerASCII(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for c := range 128 {
		for n := 1; n <= 17; n++ {
			for pos := range n {
				s := make([]byte, n)
				for i := range s {
					s[i] = byte(rng.IntN(128))
				}
				s[pos] = byte(c)
				got := appendLowerASCII([]byte("x"), s)
				if want := append([]byte("x"), bytes.ToLower(s)...); !bytes.Equal(got, want) {
					t.Fatalf("appendLowerASCII(%q) = %q, want %q", s, got[1:], want[1:])
				}
			}
		}
	}
}
