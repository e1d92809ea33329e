// Package archive writes and reads the sneakernet form of a mirror bundle:
// one deterministic .tar.zst or .tar.gz archive, optionally cut into split
// volumes (NAME.part-0001, NAME.part-0002, ...) described by a signed parts
// manifest (NAME.parts.json and its DSSE envelope NAME.parts.dsse.json).
//
// Everything streams: an archive is never held in memory, and reading one
// is a single pass. The reader refuses anything that is not a regular file
// or folder, unsafe or colliding names, duplicate entries, decompression
// bombs, oversized zstd windows, truncation and trailing data; each refusal
// wraps failure.ErrVerification (exit 2) and names the entry.
//
// Archive layout: the bundle folder's contents sit at the top level of the
// archive (mirror.json, not bundle/mirror.json), sorted in byte order of
// their archive names, each folder ("mirror/") right before its contents.
// With that order SHA256SUMS, keys/, mirror.dsse.json and mirror.json come
// before the mirror/ tree, so a streaming reader sees the signed manifest
// before the bulk of the data and can lower its limits (BundleLimits).
//
// A split set is the archive's bytes cut into NAME.part-0001, ... of
// SplitOptions.PartSize bytes each (the last may be shorter); `cat
// NAME.part-*` restores the archive. NAME.parts.json (PartsManifest) lists
// each part's size and SHA-256 and the whole archive's, and is signed by
// NAME.parts.dsse.json, so a bad part is named before anything is
// extracted. Sizes such as "4GiB" or "4.7GB" are read by ParseSize.
package archive

import (
	"errors"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/text/unicode/norm"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Compression names, as used in WriteOptions, the parts manifest and Source.
const (
	CompressionZstd = "zstd"
	CompressionGzip = "gzip"
)

// PartsPayloadType is the DSSE payloadType of a parts manifest envelope.
const PartsPayloadType = "application/vnd.stellaops.mirror.parts+json;version=1"

// PartsSchemaVersion is the schemaVersion of the parts manifest.
const PartsSchemaVersion = 1

// File name suffixes of a split set: NAME.part-0001, NAME.parts.json and
// NAME.parts.dsse.json, where NAME is the archive's file name.
const (
	PartSuffix             = ".part-"
	PartsManifestSuffix    = ".parts.json"
	PartsEnvelopeSuffix    = ".parts.dsse.json"
	partIndexMinimumDigits = 4
)

// Default limits applied where a Limits field is zero.
const (
	// DefaultMaxEntries bounds the number of archive entries (files and
	// folders) until the caller knows better from mirror.json.
	DefaultMaxEntries = 1 << 18
	// DefaultMaxBytes bounds the total size of the files in an archive.
	DefaultMaxBytes = 256 << 30
	// DefaultMaxWindow is the largest zstd window accepted (128 MiB).
	DefaultMaxWindow = 128 << 20
)

// Errors that callers branch on. Each wraps failure.ErrVerification, so
// errors.Is(err, failure.ErrVerification) holds for all of them.
var (
	// ErrUnsafeEntry: an entry that is not a regular file or folder, an
	// unsafe name, a duplicate or a name colliding with another entry.
	ErrUnsafeEntry = classed("unsafe archive entry", failure.ErrVerification)
	// ErrLimitExceeded: more entries or bytes than allowed, or a zstd window
	// above the limit (decompression bombs).
	ErrLimitExceeded = classed("archive exceeds limit", failure.ErrVerification)
	// ErrCorrupt: truncated or corrupt compressed data, a malformed tar
	// header, trailing data after the end of the archive.
	ErrCorrupt = classed("corrupt archive", failure.ErrVerification)
	// ErrParts: a split set with a missing, extra, corrupt or swapped part,
	// or a parts manifest that is unsigned, malformed or inconsistent.
	ErrParts = classed("split archive", failure.ErrVerification)
)

// ErrUnsupportedSource is returned by Write for a bundle folder that holds
// something other than regular files and folders, a name the reader would
// refuse, or a file that changed while it was archived.
var ErrUnsupportedSource = errors.New("unsupported bundle folder content")

type classedError struct {
	msg   string
	class error
}

func (e *classedError) Error() string { return e.msg }
func (e *classedError) Unwrap() error { return e.class }

func classed(msg string, class error) error { return &classedError{msg: msg, class: class} }

// EntryError reports an archive entry the reader refused.
type EntryError struct {
	// Name is the entry's name as stored in the archive.
	Name string
	// Reason says what is wrong with it.
	Reason string
	// Err is ErrUnsafeEntry or ErrLimitExceeded.
	Err error
}

// Error names the entry, quoted, and the reason.
func (e *EntryError) Error() string {
	if errors.Is(e.Err, ErrUnsafeEntry) {
		return fmt.Sprintf("%v %s: %s", e.Err, quoteName(e.Name), e.Reason)
	}
	return fmt.Sprintf("%v at entry %s: %s", e.Err, quoteName(e.Name), e.Reason)
}

// Unwrap returns ErrUnsafeEntry or ErrLimitExceeded.
func (e *EntryError) Unwrap() error { return e.Err }

func unsafeEntry(name, format string, args ...any) error {
	return &EntryError{Name: name, Reason: fmt.Sprintf(format, args...), Err: ErrUnsafeEntry}
}

// quoteName quotes a name from an untrusted archive so that control
// characters and invalid UTF-8 cannot reach the operator's terminal raw.
// A name not in Unicode NFC is shown with ASCII escapes, so that names
// colliding by normalisation look different.
func quoteName(name string) string {
	const max = 200
	suffix := ""
	if len(name) > max {
		name, suffix = name[:max], "..."
	}
	if !norm.NFC.IsNormalString(name) {
		return fmt.Sprintf("%+q%s", name, suffix)
	}
	return fmt.Sprintf("%q%s", name, suffix)
}

// Limits bounds what a reader accepts. Zero fields take the defaults.
type Limits struct {
	// MaxEntries is the largest number of entries (files and folders).
	MaxEntries int64
	// MaxBytes is the largest total size of the files' contents.
	MaxBytes int64
	// MaxWindow is the largest zstd window (memory the decoder needs).
	MaxWindow uint64
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxWindow == 0 {
		l.MaxWindow = DefaultMaxWindow
	}
	return l
}

// ArchiveFormatFromName returns the compression implied by an archive file
// name: "zstd" for .tar.zst (also .tar.zstd, .tzst), "gzip" for .tar.gz
// (also .tgz). Other names are an ErrUsage error.
func ArchiveFormatFromName(name string) (string, error) {
	lower := strings.ToLower(name)
	for _, s := range []struct{ suffix, comp string }{
		{".tar.zst", CompressionZstd},
		{".tar.zstd", CompressionZstd},
		{".tzst", CompressionZstd},
		{".tar.gz", CompressionGzip},
		{".tgz", CompressionGzip},
	} {
		if strings.HasSuffix(lower, s.suffix) && len(lower) > len(s.suffix) {
			return s.comp, nil
		}
	}
	return "", failure.Usagef("archive name %s: cannot tell the compression; use a name ending in .tar.zst or .tar.gz", quoteName(name))
}

// IsArchivePath reports whether path names an archive form rather than a
// bundle folder: "-", a .tar.zst/.tar.gz name, a parts manifest or envelope,
// or a part of a split set. It looks at the name only.
func IsArchivePath(path string) bool {
	if path == "-" {
		return true
	}
	if _, err := ArchiveFormatFromName(path); err == nil {
		return true
	}
	if strings.HasSuffix(path, PartsManifestSuffix) || strings.HasSuffix(path, PartsEnvelopeSuffix) {
		return true
	}
	_, _, ok := splitPartName(baseName(path))
	return ok
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// splitPartName splits "NAME.part-0003" into ("NAME", 3, true).
func splitPartName(name string) (archive string, index int, ok bool) {
	i := strings.LastIndex(name, PartSuffix)
	if i <= 0 {
		return "", 0, false
	}
	digits := name[i+len(PartSuffix):]
	if len(digits) < partIndexMinimumDigits || len(digits) > 9 {
		return "", 0, false
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return "", 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n == 0 || partName(name[:i], n) != name {
		return "", 0, false
	}
	return name[:i], n, true
}

// partName returns the file name of part index (1-based) of archive.
func partName(archive string, index int) string {
	return fmt.Sprintf("%s%s%04d", archive, PartSuffix, index)
}

var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"k":   1 << 10,
	"kib": 1 << 10,
	"kb":  1e3,
	"m":   1 << 20,
	"mib": 1 << 20,
	"mb":  1e6,
	"g":   1 << 30,
	"gib": 1 << 30,
	"gb":  1e9,
	"t":   1 << 40,
	"tib": 1 << 40,
	"tb":  1e12,
}

// ParseSize parses a size such as "4GiB", "700MiB", "1.5GB", "500k" or
// "1048576". Units follow split(1): KiB, MiB, GiB, TiB and the bare K, M,
// G, T are powers of 1024; kB, MB, GB, TB are powers of 1000. Units are
// case-insensitive, a space may separate number and unit, and a fraction
// must come to a whole number of bytes. The result is above zero.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || strings.Count(num, ".") > 1 || num == "." || !ok {
		return 0, failure.Usagef("invalid size %q: use a number with an optional unit such as 700MiB, 4GiB or 4.7GB", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, failure.Usagef("invalid size %q", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, failure.Usagef("invalid size %q: not a whole number of bytes", s)
	}
	v := r.Num()
	if v.Sign() <= 0 {
		return 0, failure.Usagef("invalid size %q: must be above zero", s)
	}
	if !v.IsInt64() {
		return 0, failure.Usagef("invalid size %q: too large", s)
	}
	return v.Int64(), nil
}
