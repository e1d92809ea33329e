package archive

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// bundleEntrySlack allows for the entries mirror.json does not list:
// mirror.json, mirror.dsse.json, SHA256SUMS, a "./" root and empty folders.
const bundleEntrySlack = 64

// BundleLimits derives limits from the files a bundle's mirror.json lists
// (possibly not yet verified, which is safe: limits only refuse more, and
// a manifest that understates its files fails verification anyway). The
// entries allowed are the files, the folders their paths imply, and 64
// more for mirror.json, mirror.dsse.json, SHA256SUMS and empty folders;
// the bytes are the files' sizes plus manifestSize (the size of
// mirror.json) and a generous allowance for mirror.dsse.json and
// SHA256SUMS. A negative size gives zero Limits, which lowers nothing.
func BundleLimits(files []bundle.FileEntry, manifestSize int64) Limits {
	var acc limitsAcc
	for _, f := range files {
		acc.add(f.Path, f.Size)
	}
	return acc.limits(manifestSize)
}

// limitsAcc adds up what BundleLimits needs of each file listed, so that
// the list itself need not be held.
type limitsAcc struct {
	files    int64
	total    int64
	pathSum  int64
	negative bool
	dirs     map[string]bool
}

const maxInt64 = int64(^uint64(0) >> 1)

// add counts one listed file.
func (a *limitsAcc) add(path string, size int64) {
	if size < 0 {
		a.negative = true
		return
	}
	a.files++
	a.total = addCapped(a.total, size)
	a.pathSum += int64(len(path)) + 67
	for i := 0; i < len(path); i++ {
		if path[i] != '/' || a.dirs[path[:i]] {
			continue
		}
		if a.dirs == nil {
			a.dirs = map[string]bool{}
		}
		a.dirs[strings.Clone(path[:i])] = true
	}
}

// limits returns the limits of the files counted.
func (a *limitsAcc) limits(manifestSize int64) Limits {
	if a.negative {
		return Limits{}
	}
	extra := 3*manifestSize + 1<<20 + 4096 + a.pathSum
	return Limits{
		MaxEntries: a.files + int64(len(a.dirs)) + bundleEntrySlack,
		MaxBytes:   addCapped(a.total, extra),
	}
}

// addCapped returns a+b, or the largest int64 where that overflows; both
// are at least zero.
func addCapped(a, b int64) int64 {
	if a > maxInt64-b {
		return maxInt64
	}
	return a + b
}

// listedFile is what the limits need of a file mirror.json lists.
type listedFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// manifestLimits derives BundleLimits from the mirror.json in r, of
// manifestSize bytes, reading it as a stream: one entry of its "files" at
// a time is decoded, instead of the whole list (or the whole document)
// being held. ok is false when r does not hold a JSON object whose "files"
// is null or a list of objects with a path and a size, as json.Unmarshal
// into such a struct would report; with whole, also when anything but
// white space follows the object.
func manifestLimits(r io.Reader, manifestSize int64, whole bool) (l Limits, ok bool) {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Limits{}, false
	}
	var acc limitsAcc
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return Limits{}, false
		}
		if key, _ := t.(string); !strings.EqualFold(key, "files") {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return Limits{}, false
			}
			continue
		}
		// A repeated key replaces the list, as in json.Unmarshal.
		acc = limitsAcc{}
		if !readListedFiles(dec, &acc) {
			return Limits{}, false
		}
	}
	if _, err := dec.Token(); err != nil {
		return Limits{}, false
	}
	if whole {
		if _, err := dec.Token(); err != io.EOF {
			return Limits{}, false
		}
	}
	return acc.limits(manifestSize), true
}

// readListedFiles reads the value of "files" (null or a list) into acc.
func readListedFiles(dec *json.Decoder, acc *limitsAcc) bool {
	t, err := dec.Token()
	switch {
	case err != nil:
		return false
	case t == nil:
		return true
	case t != json.Delim('['):
		return false
	}
	for dec.More() {
		var f listedFile
		if err := dec.Decode(&f); err != nil {
			return false
		}
		acc.add(f.Path, f.Size)
	}
	_, err = dec.Token()
	return err == nil
}
