package bundle

import (
	"encoding/hex"
	"slices"
	"strings"
	"sync"
)

// DigestSet holds the sizes and SHA-256 digests of a bundle's files as a
// caller computed them while reading or writing them (import, and verify
// of an archive), for VerifyOptions.Digests. Each file costs its name and
// 56 bytes, the SHA-256 held as 32 bytes: a map from name to Digest cost
// three times that, which at 66,000 files was megabytes of a verify's
// memory. Add may be called from several goroutines at once; a path added
// twice keeps its last digest.
type DigestSet struct {
	mu     sync.Mutex
	recs   []fileRecord
	sorted bool
	// odd holds, by path, the digests added with a SHA-256 that is not 64
	// lower-case hex digits, as given.
	odd map[string]Digest
}

// NewDigestSet returns an empty set with room for n files.
func NewDigestSet(n int) *DigestSet {
	return &DigestSet{recs: make([]fileRecord, 0, n), sorted: true}
}

// Add records the size and SHA-256 of path.
func (s *DigestSet) Add(path string, size int64, sum *[32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.odd != nil {
		delete(s.odd, path)
	}
	s.add(fileRecord{path: path, size: size, sum: *sum})
}

// AddDigest records d for path.
func (s *DigestSet) AddDigest(path string, d Digest) {
	rec := fileRecord{path: path, size: d.Size}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !decodeSum(&rec.sum, d.SHA256) {
		if s.odd == nil {
			s.odd = map[string]Digest{}
		}
		s.odd[path] = d
	} else {
		delete(s.odd, path)
	}
	s.add(rec)
}

func (s *DigestSet) add(rec fileRecord) {
	if n := len(s.recs); n > 0 && s.recs[n-1].path >= rec.path {
		s.sorted = false
	}
	s.recs = append(s.recs, rec)
}

// Grow makes room for n more files.
func (s *DigestSet) Grow(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = slices.Grow(s.recs, n)
}

// Len returns the number of files in the set.
func (s *DigestSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sort()
	return len(s.recs)
}

// Get returns the digest recorded for path.
func (s *DigestSet) Get(path string) (Digest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.find(path)
	if !ok {
		return Digest{}, false
	}
	if d, odd := s.odd[path]; odd {
		return d, true
	}
	return Digest{Size: s.recs[i].size, SHA256: hex.EncodeToString(s.recs[i].sum[:])}, true
}

// has reports whether path is in the set.
func (s *DigestSet) has(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.find(path)
	return ok
}

// intern returns the set's copy of path, if it has one, so that a table of
// the same names built from another list holds each name once.
func (s *DigestSet) intern(path string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.find(path); ok {
		return s.recs[i].path
	}
	return path
}

// Each calls fn for every file of the set, sorted by path.
func (s *DigestSet) Each(fn func(path string, size int64)) {
	s.mu.Lock()
	s.sort()
	recs := s.recs
	s.mu.Unlock()
	for i := range recs {
		fn(recs[i].path, recs[i].size)
	}
}

// find returns the index of path, sorting the set first.
func (s *DigestSet) find(path string) (int, bool) {
	s.sort()
	return slices.BinarySearchFunc(s.recs, path, func(f fileRecord, p string) int { return strings.Compare(f.path, p) })
}

// sort orders the records by path and drops all but the last of a path
// added more than once. The caller holds s.mu.
func (s *DigestSet) sort() {
	if s.sorted {
		return
	}
	slices.SortStableFunc(s.recs, func(a, b fileRecord) int { return strings.Compare(a.path, b.path) })
	out := s.recs[:0]
	for i := range s.recs {
		if i+1 < len(s.recs) && s.recs[i+1].path == s.recs[i].path {
			continue
		}
		out = append(out, s.recs[i])
	}
	clear(s.recs[len(out):])
	s.recs = out
	s.sorted = true
}

// records returns the records sorted by path, and the odd digests; the
// set must not change while the caller uses them.
func (s *DigestSet) records() ([]fileRecord, map[string]Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sort()
	return s.recs, s.odd
}
