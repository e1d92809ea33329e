package bundle

import (
	"cmp"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
)

// Marks verify sets on a listed file, one bit each.
const (
	markPresent   uint8 = 1 << iota // a regular file of that name is in the bundle
	markSummed                      // SHA256SUMS has a line for it
	markInBundle                    // an export of its domain's signed bundle.json names it
	markBadSum                      // mirror.json's sha256 for it is not 64 lower-case characters
	markSumNotHex                   // mirror.json's sha256 for it is not hex
)

// What verify learnt of a listed file's contents.
const (
	digestUnknown uint8 = iota // not hashed (absent, unreadable, or checksums off)
	digestMatch                // size and SHA-256 as mirror.json lists them
	digestDiffers              // see fileTable.differ
)

// fileRecord is one file of mirror.json's list as verify keeps it: the
// SHA-256 as 32 bytes rather than a 64-character string.
type fileRecord struct {
	path string
	size int64
	sum  [32]byte
}

// hexSum returns the lower-case hex form of the record's SHA-256.
func (f *fileRecord) hexSum() (out [64]byte) {
	hex.Encode(out[:], f.sum[:])
	return out
}

// sumIs reports whether s is the record's SHA-256 in lower-case hex.
func (f *fileRecord) sumIs(s string) bool {
	h := f.hexSum()
	return string(h[:]) == s
}

// entry returns the record as mirror.json lists it.
func (f *fileRecord) entry() FileEntry {
	h := f.hexSum()
	return FileEntry{Path: f.path, Size: f.size, SHA256: string(h[:])}
}

// fileTable is mirror.json's file list as verify consults it: one record
// per file in mirror.json's order, which checkManifest makes sure is sorted
// by path without repeats, so that a name is found by binary search; and a
// byte of marks and one of digest state per file, in place of a map keyed
// by path for each of: listed files, case-folded names, present files,
// digests, SHA256SUMS entries and bundle.json's exports.
type fileTable struct {
	files []fileRecord
	// marks are set by the checks, on the verifying goroutine only.
	marks []uint8
	// digest is set by the hashing workers, each at its own files' indices.
	digest []uint8

	mu sync.Mutex
	// differ holds the size and SHA-256 found for the files whose digest
	// state is digestDiffers.
	differ map[int]Digest
	// presentSize holds the size found in the bundle for present files
	// whose size differs from the listing; it is written before hashing
	// starts and only read after.
	presentSize map[int]int64
}

// newFileTable returns a table with room for n files.
func newFileTable(n int) *fileTable {
	return &fileTable{files: make([]fileRecord, 0, n), marks: make([]uint8, 0, n),
		differ: map[int]Digest{}, presentSize: map[int]int64{}}
}

// add appends mirror.json's entry f, marking a malformed SHA-256 for
// checkManifest to report.
func (t *fileTable) add(f FileEntry) {
	rec := fileRecord{path: f.Path, size: f.Size}
	var mark uint8
	switch {
	case len(f.SHA256) != 64 || strings.ToLower(f.SHA256) != f.SHA256:
		mark = markBadSum
	case !decodeSum(&rec.sum, f.SHA256):
		mark = markSumNotHex
	}
	t.files = append(t.files, rec)
	t.marks = append(t.marks, mark)
}

// startDigests makes room for the digest state of every file.
func (t *fileTable) startDigests() { t.digest = make([]uint8, len(t.files)) }

// find returns the index of the record for p.
func (t *fileTable) find(p string) (int, bool) {
	return slices.BinarySearchFunc(t.files, p, func(f fileRecord, p string) int { return strings.Compare(f.path, p) })
}

// entry returns the entry for p, if listed.
func (t *fileTable) entry(p string) (FileEntry, bool) {
	if i, ok := t.find(p); ok {
		return t.files[i].entry(), true
	}
	return FileEntry{}, false
}

// listed reports whether mirror.json lists p.
func (t *fileTable) listed(p string) bool {
	_, ok := t.find(p)
	return ok
}

// prefixRange returns the indices [lo, hi) of the records whose path starts
// with prefix.
func (t *fileTable) prefixRange(prefix string) (int, int) {
	lo, _ := t.find(prefix)
	hi := lo
	for hi < len(t.files) && strings.HasPrefix(t.files[hi].path, prefix) {
		hi++
	}
	return lo, hi
}

// record stores the digest found for file i.
func (t *fileTable) record(i int, d Digest) {
	f := &t.files[i]
	if d.Size == f.size && f.sumIs(d.SHA256) {
		t.digest[i] = digestMatch
		return
	}
	t.mu.Lock()
	t.differ[i] = d
	t.mu.Unlock()
	t.digest[i] = digestDiffers
}

// matches reports whether file i's contents were found as listed.
func (t *fileTable) matches(i int) bool { return t.digest[i] == digestMatch }

// entries returns the records as mirror.json lists them.
func (t *fileTable) entries() []FileEntry {
	if len(t.files) == 0 {
		return nil
	}
	out := make([]FileEntry, len(t.files))
	for i := range t.files {
		out[i] = t.files[i].entry()
	}
	return out
}

// FoldCollision finds the first of n names, in their order, that FoldPath
// maps to the same key as an earlier one: it returns the index of the
// first name with that key, and of the colliding one. Sorting the folded
// names finds this with one slice of n small entries instead of a map
// holding every name.
func FoldCollision(n int, name func(int) string) (first, second int, found bool) {
	type folded struct {
		key string
		i   int
	}
	keys := make([]folded, n)
	for i := range n {
		keys[i] = folded{FoldPath(name(i)), i}
	}
	slices.SortFunc(keys, func(a, b folded) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	second = n
	for k := 1; k < len(keys); k++ {
		// keys[k] is the second of its group when the one before starts it.
		if keys[k].key == keys[k-1].key && (k == 1 || keys[k-2].key != keys[k].key) && keys[k].i < second {
			first, second, found = keys[k-1].i, keys[k].i, true
		}
	}
	return first, second, found
}

// recordSum stores the size and SHA-256 found for file i.
func (t *fileTable) recordSum(i int, size int64, sum *[32]byte) {
	f := &t.files[i]
	if size == f.size && *sum == f.sum {
		t.digest[i] = digestMatch
		return
	}
	t.record(i, Digest{Size: size, SHA256: hex.EncodeToString(sum[:])})
}

// recordGiven stores the digests a caller computed, merging the two lists
// sorted by path.
func (t *fileTable) recordGiven(g *DigestSet) {
	sums, odd := g.records()
	j := 0
	for i := range t.files {
		p := t.files[i].path
		for j < len(sums) && sums[j].path < p {
			j++
		}
		if j == len(sums) {
			return
		}
		if sums[j].path != p {
			continue
		}
		if d, ok := odd[p]; ok {
			t.record(i, d)
		} else {
			t.recordSum(i, sums[j].size, &sums[j].sum)
		}
	}
}

// decodeSum decodes s, 64 lower-case hex digits, into sum.
func decodeSum(sum *[32]byte, s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	var text [64]byte
	copy(text[:], s)
	_, err := hex.Decode(sum[:], text[:])
	return err == nil
}
