package bundle

import (
	"fmt"
	"sync"
	"testing"
)

// TestDigestSet checks that a set filled from several goroutines lists
// every file once, sorted, that the last digest added for a path wins,
// and that a SHA-256 which is not lower-case hex is kept as given.
func TestDigestSet(t *testing.T) {
	s := NewDigestSet(4)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 400; i += 4 {
				sum := [32]byte{byte(i)}
				s.Add(fmt.Sprintf("mirror/vex/%03d.json", 399-i), int64(i), &sum)
			}
		}()
	}
	wg.Wait()
	if s.Len() != 400 {
		t.Fatalf("Len %d, want 400", s.Len())
	}
	prev := ""
	s.Each(func(p string, size int64) {
		if p <= prev {
			t.Fatalf("%q listed after %q", p, prev)
		}
		prev = p
	})

	d := HashBytes([]byte("x"))
	s.AddDigest("mirror/vex/000.json", d)
	if got, ok := s.Get("mirror/vex/000.json"); !ok || got != d {
		t.Fatalf("after a second Add: %v %v, want %v", got, ok, d)
	}
	odd := Digest{Size: 1, SHA256: "ABC"}
	s.AddDigest("mirror/vex/001.json", odd)
	if got, _ := s.Get("mirror/vex/001.json"); got != odd {
		t.Fatalf("odd digest read back as %v", got)
	}
	s.Add("mirror/vex/001.json", 2, &[32]byte{})
	if got, _ := s.Get("mirror/vex/001.json"); got.Size != 2 || got.SHA256 != fmt.Sprintf("%064d", 0) {
		t.Fatalf("odd digest replaced by %v", got)
	}
	if s.Len() != 400 {
		t.Fatalf("Len %d after replacing, want 400", s.Len())
	}
	if _, ok := s.Get("mirror/vex/400.json"); ok {
		t.Fatal("found a path never added")
	}
}
