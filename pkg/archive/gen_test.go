package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// This file generates the hostile archives of the tests, the fuzz seeds and
// the fixtures under testdata/archive/hostile (go test -run
// TestHostileFixtures -update rewrites them). Everything is deterministic:
// fixed contents, fixed compression settings, fixed test keys.

// tarPiece is one element of a hand-built tar stream: an entry written by
// archive/tar, or raw bytes appended as they are.
type tarPiece struct {
	hdr  *tar.Header
	body []byte
	raw  []byte
}

func tfile(name, body string) tarPiece {
	return tarPiece{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, body: []byte(body)}
}

func tdir(name string) tarPiece {
	return tarPiece{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func traw(b []byte) tarPiece { return tarPiece{raw: b} }

// buildTar writes pieces as a tar stream, with the end-of-archive marker
// if end is set.
func buildTar(pieces []tarPiece, end bool) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range pieces {
		if p.raw != nil {
			must(tw.Flush())
			buf.Write(p.raw)
			continue
		}
		h := *p.hdr
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = testModTime
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(p.body))
		}
		must(tw.WriteHeader(&h))
		_, err := tw.Write(p.body)
		must(err)
	}
	if end {
		must(tw.Close())
	} else {
		must(tw.Flush())
	}
	return buf.Bytes()
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// rawHeader builds a USTAR (or GNU) header block by hand, for what
// archive/tar refuses to write.
func rawHeader(name string, typeflag byte, size int64, gnu bool) []byte {
	blk := make([]byte, blockSize)
	copy(blk[0:100], name)
	copy(blk[100:108], "0000644\x00")
	copy(blk[108:116], "0000000\x00")
	copy(blk[116:124], "0000000\x00")
	copy(blk[124:136], fmt.Sprintf("%011o\x00", size))
	copy(blk[136:148], fmt.Sprintf("%011o\x00", testModTime.Unix()))
	blk[156] = typeflag
	if gnu {
		copy(blk[257:265], "ustar  \x00")
	} else {
		copy(blk[257:265], "ustar\x0000")
	}
	fixChecksum(blk)
	return blk
}

func fixChecksum(blk []byte) {
	copy(blk[148:156], "        ")
	var sum int64
	for _, c := range blk {
		sum += int64(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// rawEntry is a raw header plus its padded body.
func rawEntry(name string, typeflag byte, body []byte) []byte {
	out := rawHeader(name, typeflag, int64(len(body)), false)
	out = append(out, body...)
	return append(out, make([]byte, padding(int64(len(body))))...)
}

// paxFlood is n PAX extended headers of about 1 MB each that the tar
// reader consumes without returning an entry.
func paxFlood(n int) []byte {
	const total = 1000000
	rec := fmt.Sprintf("%d comment=%s\n", total, strings.Repeat("a", total-len("1000000 comment=\n")))
	var out []byte
	for range n {
		out = append(out, rawEntry("PaxHeaders/flood", tar.TypeXHeader, []byte(rec))...)
	}
	return out
}

func compress(data []byte, comp string) []byte {
	var buf bytes.Buffer
	w, err := newCompressor(&buf, comp)
	must(err)
	_, err = w.Write(data)
	must(err)
	must(w.Close())
	return buf.Bytes()
}

func zst(data []byte) []byte { return compress(data, CompressionZstd) }
func gz(data []byte) []byte  { return compress(data, CompressionGzip) }

// smallBundle is the bundle of the hostile split sets: small enough for
// fixtures, large enough for several 4 KiB parts.
func smallBundle() map[string][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	big := make([]byte, 18<<10)
	for i := range big {
		big[i] = byte(rng.IntN(256))
	}
	return withManifest(map[string][]byte{
		"SHA256SUMS":                 []byte("0000  mirror/index.json\n"),
		"mirror.dsse.json":           []byte(`{}` + "\n"),
		"mirror/index.json":          []byte(`{"domains":[]}` + "\n"),
		"mirror/primary/bundle.json": big,
	})
}

const hostilePartSize = 4096

// smallArchive is smallBundle as one archive stream.
func smallArchive(comp string) []byte {
	dir, err := os.MkdirTemp("", "archive-gen-")
	must(err)
	defer os.RemoveAll(dir)
	for name, data := range smallBundle() {
		p := filepath.Join(dir, filepath.FromSlash(name))
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, 0o644))
	}
	var buf bytes.Buffer
	must(Write(context.Background(), &buf, dir, WriteOptions{Compression: comp, ModTime: testModTime}))
	return buf.Bytes()
}

// hostileStream is a hostile single archive: as a file named File, or on
// stdin.
type hostileStream struct {
	Name   string
	File   string
	Data   []byte
	Limits Limits
	// Want is the exact error; $SRC stands for the file's path or
	// "standard input".
	Want string
	// Is is the sentinel the error wraps.
	Is error
}

// prefix are valid entries before the hostile one, so that Extract has
// written files it must remove.
func prefix() []tarPiece {
	return []tarPiece{
		tfile("SHA256SUMS", "0000  mirror/index.json\n"),
		tdir("mirror/"),
		tfile("mirror/index.json", "{}\n"),
	}
}

func withPrefix(p ...tarPiece) []tarPiece { return append(prefix(), p...) }

func hostileStreams() []hostileStream {
	tz := func(p ...tarPiece) []byte { return zst(buildTar(withPrefix(p...), true)) }
	valid := smallArchive(CompressionZstd)
	validGz := smallArchive(CompressionGzip)
	validTar := buildTar(withPrefix(tfile("mirror/a.json", "{}\n")), true)

	negative := rawHeader("mirror/negative.json", tar.TypeReg, 0, false)
	for i := 124; i < 136; i++ {
		negative[i] = 0xff
	}
	fixChecksum(negative)
	badSum := rawHeader("mirror/badsum.json", tar.TypeReg, 0, false)
	copy(badSum[148:156], "0000001\x00")
	sizedDir := rawHeader("mirror/sized/", tar.TypeDir, 0, false)
	copy(sizedDir[124:136], fmt.Sprintf("%011o\x00", 10))
	fixChecksum(sizedDir)

	huge := withWindow(valid, 28)

	bomb := buildTar(withPrefix(tarPiece{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: "mirror/primary/bundle.json"}, body: make([]byte, 16<<20)}), true)
	noEnd := buildTar(withPrefix(), false)
	oneZero := append(bytes.Clone(noEnd), make([]byte, blockSize)...)
	trailingTar := append(bytes.Clone(validTar), rawEntry("mirror/late.json", tar.TypeReg, []byte("{}"))...)

	const (
		only  = " (only regular files and folders are allowed)"
		folds = " on file systems that ignore case or Unicode normalisation"
	)
	return []hostileStream{
		{Name: "symlink", Data: tz(tarPiece{hdr: &tar.Header{Typeflag: tar.TypeSymlink, Name: "mirror/evil", Linkname: "/etc/passwd"}}),
			Want: `unsafe archive entry "mirror/evil": symbolic link to "/etc/passwd"` + only, Is: ErrUnsafeEntry},
		{Name: "hardlink", Data: tz(tarPiece{hdr: &tar.Header{Typeflag: tar.TypeLink, Name: "mirror/hl", Linkname: "mirror/index.json"}}),
			Want: `unsafe archive entry "mirror/hl": hard link to "mirror/index.json"` + only, Is: ErrUnsafeEntry},
		{Name: "chardev", Data: tz(tarPiece{hdr: &tar.Header{Typeflag: tar.TypeChar, Name: "mirror/tty", Devmajor: 4}}),
			Want: `unsafe archive entry "mirror/tty": character device` + only, Is: ErrUnsafeEntry},
		{Name: "blockdev", Data: tz(tarPiece{hdr: &tar.Header{Typeflag: tar.TypeBlock, Name: "mirror/sda", Devmajor: 8}}),
			Want: `unsafe archive entry "mirror/sda": block device` + only, Is: ErrUnsafeEntry},
		{Name: "fifo", Data: tz(tarPiece{hdr: &tar.Header{Typeflag: tar.TypeFifo, Name: "mirror/fifo"}}),
			Want: `unsafe archive entry "mirror/fifo": named pipe` + only, Is: ErrUnsafeEntry},
		{Name: "sparse", Data: tz(traw(rawHeader("mirror/sparse.json", tar.TypeGNUSparse, 0, true))),
			Want: `unsafe archive entry "mirror/sparse.json": GNU sparse file` + only, Is: ErrUnsafeEntry},
		{Name: "global-header", Data: tz(tarPiece{hdr: &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "x"}}}),
			Want: `unsafe archive entry "pax_global_header": PAX global header (not produced by stellaops-cli)`, Is: ErrUnsafeEntry},
		{Name: "dotdot", Data: tz(tfile("mirror/../../etc/cron.d/evil", "x")),
			Want: `unsafe archive entry "mirror/../../etc/cron.d/evil": name contains ".."`, Is: ErrUnsafeEntry},
		{Name: "absolute", Data: tz(tfile("/etc/cron.d/evil", "x")),
			Want: `unsafe archive entry "/etc/cron.d/evil": absolute name`, Is: ErrUnsafeEntry},
		{Name: "backslash", Data: tz(tfile(`mirror\..\..\evil`, "x")),
			Want: `unsafe archive entry "mirror\\..\\..\\evil": name contains a backslash`, Is: ErrUnsafeEntry},
		{Name: "invalid-utf8", Data: tz(traw(rawEntry("mirror/\xff.json", tar.TypeReg, nil))),
			Want: `unsafe archive entry "mirror/\xff.json": name is not valid UTF-8`, Is: ErrUnsafeEntry},
		{Name: "control-char", Data: tz(tfile("mirror/\x1b[31mred.json", "x")),
			Want: `unsafe archive entry "mirror/\x1b[31mred.json": name contains a control character`, Is: ErrUnsafeEntry},
		{Name: "empty-component", Data: tz(tfile("mirror//x.json", "x")),
			Want: `unsafe archive entry "mirror//x.json": name has an empty component`, Is: ErrUnsafeEntry},
		{Name: "dot-component", Data: tz(tfile("mirror/./x.json", "x")),
			Want: `unsafe archive entry "mirror/./x.json": name contains a "." component`, Is: ErrUnsafeEntry},
		{Name: "duplicate", Data: tz(tfile("mirror/index.json", "{\"evil\":true}\n")),
			Want: `unsafe archive entry "mirror/index.json": duplicate entry`, Is: ErrUnsafeEntry},
		{Name: "duplicate-folder", Data: tz(tdir("mirror/")),
			Want: `unsafe archive entry "mirror/": duplicate entry`, Is: ErrUnsafeEntry},
		{Name: "case-collision", Data: tz(tfile("mirror/INDEX.json", "{}\n")),
			Want: `unsafe archive entry "mirror/INDEX.json": collides with "mirror/index.json"` + folds, Is: ErrUnsafeEntry},
		{Name: "case-collision-folder", Data: tz(tfile("Mirror/other.json", "{}\n")),
			Want: `unsafe archive entry "Mirror/other.json": folder "Mirror" collides with "mirror"` + folds, Is: ErrUnsafeEntry},
		{Name: "nfc-nfd-collision", Data: tz(tfile("mirror/caf\u00e9.json", "{}\n"), tfile("mirror/cafe\u0301.json", "{}\n")),
			Want: `unsafe archive entry "mirror/cafe\u0301.json": collides with "mirror/café.json"` + folds, Is: ErrUnsafeEntry},
		{Name: "file-as-folder", Data: tz(tfile("mirror/index.json/x", "x")),
			Want: `unsafe archive entry "mirror/index.json/x": is inside "mirror/index.json", which is a regular file`, Is: ErrUnsafeEntry},
		{Name: "file-over-folder", Data: tz(tfile("mirror", "x")),
			Want: `unsafe archive entry "mirror": regular file with the name of a folder`, Is: ErrUnsafeEntry},
		{Name: "nul-in-name", Data: tz(traw(append(rawEntry("PaxHeaders/x", tar.TypeXHeader, []byte("24 path=mirror/a\x00b.json\n")), rawEntry("mirror/a", tar.TypeReg, nil)...))),
			Want: `corrupt archive: $SRC: malformed tar header after entry "mirror/index.json": invalid header`, Is: ErrCorrupt},
		{Name: "negative-size", Data: tz(traw(negative)),
			Want: `corrupt archive at entry "mirror/negative.json": malformed tar header: negative size`, Is: ErrCorrupt},
		{Name: "bad-checksum", Data: tz(traw(badSum)),
			Want: `corrupt archive at entry "mirror/badsum.json": malformed tar header: bad header checksum`, Is: ErrCorrupt},
		{Name: "folder-with-size", Data: tz(traw(sizedDir)),
			Want: `unsafe archive entry "mirror/sized/": folder with a size of 10 bytes`, Is: ErrUnsafeEntry},
		{Name: "too-many-entries", Data: tz(tfile("mirror/a.json", "{}")), Limits: Limits{MaxEntries: 3},
			Want: `archive exceeds limit at entry "mirror/a.json": more than 3 entries`, Is: ErrLimitExceeded},
		{Name: "gzip-bomb", File: "gzip-bomb.tar.gz", Data: gz(bomb), Limits: Limits{MaxBytes: 4 << 20},
			Want: `archive exceeds limit at entry "mirror/primary/bundle.json": files add up to more than 4194304 bytes`, Is: ErrLimitExceeded},
		{Name: "zstd-bomb", Data: zst(bomb), Limits: Limits{MaxBytes: 4 << 20},
			Want: `archive exceeds limit at entry "mirror/primary/bundle.json": files add up to more than 4194304 bytes`, Is: ErrLimitExceeded},
		{Name: "header-bomb", Data: zst(buildTar(withPrefix(traw(paxFlood(8)), tfile("mirror/a.json", "{}")), true)), Limits: Limits{MaxBytes: 1 << 20},
			Want: `archive exceeds limit: $SRC: the decompressed stream exceeds the 2425856 bytes the limits allow, after entry "mirror/index.json"`, Is: ErrLimitExceeded},
		{Name: "huge-window", Data: huge,
			Want: `archive exceeds limit: $SRC: zstd window larger than the limit of 128 MiB`, Is: ErrLimitExceeded},
		{Name: "truncated", Data: valid[:len(valid)/2],
			Want: `corrupt archive: truncated: $SRC ends before the first entry`, Is: ErrCorrupt},
		{Name: "truncated-gzip", File: "truncated-gzip.tar.gz", Data: validGz[:len(validGz)/2],
			Want: `corrupt archive: truncated: $SRC ends in the middle of entry "mirror/primary/bundle.json"`, Is: ErrCorrupt},
		{Name: "truncated-at-entry", Data: zst(noEnd),
			Want: `corrupt archive: truncated: $SRC ends without the end-of-archive marker (after entry "mirror/index.json")`, Is: ErrCorrupt},
		{Name: "truncated-end-marker", Data: zst(oneZero),
			Want: `corrupt archive: truncated: $SRC ends without the end-of-archive marker (after entry "mirror/index.json")`, Is: ErrCorrupt},
		{Name: "trailing-garbage", Data: append(bytes.Clone(valid), "GARBAGE! GARBAGE! GARBAGE!"...),
			Want: `corrupt archive: $SRC: trailing data after the end of the compressed archive: invalid input: magic number mismatch`, Is: ErrCorrupt},
		{Name: "trailing-garbage-gzip", File: "trailing-garbage-gzip.tar.gz", Data: append(bytes.Clone(validGz), "GARBAGE! GARBAGE! GARBAGE!"...),
			Want: `corrupt archive: $SRC: trailing data after the end of the compressed archive: gzip: invalid header`, Is: ErrCorrupt},
		{Name: "trailing-tar-entry", Data: zst(trailingTar),
			Want: `corrupt archive: $SRC: trailing data after the end of the tar archive`, Is: ErrCorrupt},
		{Name: "not-compressed", Data: validTar,
			Want: `corrupt archive: $SRC is neither zstd nor gzip compressed`, Is: ErrCorrupt},
		{Name: "corrupt-zstd", Data: flipByte(valid, len(valid)*3/4),
			Want: `corrupt archive: $SRC: corrupt zstd data at the end of the archive: ` + corruptZstdDetail, Is: ErrCorrupt},
	}
}

// withWindow rewrites the header of a zstd frame (the archive's only one)
// to declare a window of 1<<log bytes, which the decoder checks before it
// decodes any block.
func withWindow(frame []byte, log byte) []byte {
	fhd := frame[4]
	if fhd&0x03 != 0 {
		panic("zstd frame with a dictionary id")
	}
	single := fhd&0x20 != 0
	fcsLen := []int{0, 2, 4, 8}[fhd>>6]
	if single && fhd>>6 == 0 {
		fcsLen = 1
	}
	end := 5 + fcsLen
	if !single {
		end++ // window descriptor
	}
	out := append([]byte{}, frame[:4]...)
	out = append(out, fhd&0x04, (log-10)<<3) // keep the checksum flag; no content size
	return append(out, frame[end:]...)
}

// corruptZstdDetail is the decoder's message for the corrupt-zstd case.
const corruptZstdDetail = "CRC check failed"

func flipByte(data []byte, i int) []byte {
	c := bytes.Clone(data)
	c[i] ^= 0x55
	return c
}

// hostileSplit is a hostile split set: a valid set of smallBundle with one
// mutation, opened through its manifest, a part, or stdin.
type hostileSplit struct {
	Name string
	// Mutate damages the valid set in dir.
	Mutate func(dir string, m *PartsManifest)
	// Stdin, if set, builds a stream from the valid set for "-" instead.
	Stdin func(dir string, m *PartsManifest) []byte
	// Want is the exact error; $DIR stands for the set's folder.
	Want string
	Is   error
}

func partPath(dir string, m *PartsManifest, index int) string {
	return filepath.Join(dir, m.Parts[index-1].Name)
}

func readPart(dir string, m *PartsManifest, index int) []byte {
	b, err := os.ReadFile(partPath(dir, m, index))
	must(err)
	return b
}

func catParts(dir string, m *PartsManifest, order ...int) []byte {
	var out []byte
	for _, i := range order {
		out = append(out, readPart(dir, m, i)...)
	}
	return out
}

func hostileSplits() []hostileSplit {
	const n = "bundle.tar.zst"
	return []hostileSplit{
		{Name: "swapped-parts", Mutate: func(dir string, m *PartsManifest) {
			must(os.Rename(partPath(dir, m, 2), partPath(dir, m, 2)+".x"))
			must(os.Rename(partPath(dir, m, 3), partPath(dir, m, 2)))
			must(os.Rename(partPath(dir, m, 2)+".x", partPath(dir, m, 3)))
		}, Want: "split archive " + n + ": 2 problems: " +
			"part 0002 (" + n + ".part-0002): sha256 mismatch: it holds the data of part 0003 (" + n + ".part-0003); the parts were swapped or renamed; " +
			"part 0003 (" + n + ".part-0003): sha256 mismatch: it holds the data of part 0002 (" + n + ".part-0002); the parts were swapped or renamed", Is: ErrParts},
		{Name: "missing-part", Mutate: func(dir string, m *PartsManifest) {
			must(os.Remove(partPath(dir, m, 3)))
		}, Want: "split archive " + n + ": part 0003 (" + n + ".part-0003): missing", Is: ErrParts},
		{Name: "extra-part", Mutate: func(dir string, m *PartsManifest) {
			must(os.WriteFile(filepath.Join(dir, partName(n, len(m.Parts)+1)), readPart(dir, m, 1), 0o644))
		}, Want: "split archive " + n + ": " + n + ".part-0006: extra part not listed in " + n + ".parts.json", Is: ErrParts},
		{Name: "corrupt-part", Mutate: func(dir string, m *PartsManifest) {
			must(os.WriteFile(partPath(dir, m, 3), flipByte(readPart(dir, m, 3), 100), 0o644))
		}, Want: "split archive " + n + ": part 0003 (" + n + ".part-0003): sha256 mismatch: the copy on this medium is corrupt", Is: ErrParts},
		{Name: "truncated-part", Mutate: func(dir string, m *PartsManifest) {
			must(os.Truncate(partPath(dir, m, 2), 1000))
		}, Want: "split archive " + n + ": part 0002 (" + n + ".part-0002): 1000 bytes, expected 4096: the copy on this medium is truncated", Is: ErrParts},
		{Name: "several-problems", Mutate: func(dir string, m *PartsManifest) {
			must(os.Remove(partPath(dir, m, 1)))
			must(os.WriteFile(partPath(dir, m, 4), flipByte(readPart(dir, m, 4), 7), 0o644))
			must(os.WriteFile(partPath(dir, m, 2), append(readPart(dir, m, 2), 0), 0o644))
			must(os.WriteFile(filepath.Join(dir, partName(n, 9)), nil, 0o644))
		}, Want: "split archive " + n + ": 4 problems: part 0001 (" + n + ".part-0001): missing; " +
			"part 0002 (" + n + ".part-0002): 4097 bytes, expected 4096: the copy on this medium is too long; " +
			"part 0004 (" + n + ".part-0004): sha256 mismatch: the copy on this medium is corrupt; " +
			n + ".part-0009: extra part not listed in " + n + ".parts.json", Is: ErrParts},
		{Name: "unsigned", Mutate: func(dir string, m *PartsManifest) {
			must(os.Remove(filepath.Join(dir, n+PartsEnvelopeSuffix)))
		}, Want: "split archive " + n + ": " + n + ".parts.dsse.json is missing: the parts manifest is not signed", Is: ErrParts},
		{Name: "untrusted-signature", Mutate: func(dir string, m *PartsManifest) {
			payload, err := os.ReadFile(filepath.Join(dir, n+PartsManifestSuffix))
			must(err)
			env, err := signerFor(otherKey)(PartsPayloadType, payload)
			must(err)
			must(os.WriteFile(filepath.Join(dir, n+PartsEnvelopeSuffix), env, 0o644))
		}, Want: "split archive " + n + ": " + n + ".parts.dsse.json: no valid signature by a trusted key", Is: nil},
		{Name: "tampered-manifest", Mutate: func(dir string, m *PartsManifest) {
			p := filepath.Join(dir, n+PartsManifestSuffix)
			data, err := os.ReadFile(p)
			must(err)
			must(os.WriteFile(p, bytes.Replace(data, []byte(m.Parts[2].SHA256), []byte(strings.Repeat("0", 64)), 1), 0o644))
		}, Want: "split archive " + n + ": " + n + ".parts.json does not match the payload of " + n + ".parts.dsse.json", Is: ErrParts},
		{Name: "manifest-missing", Mutate: func(dir string, m *PartsManifest) {
			must(os.Remove(filepath.Join(dir, n+PartsManifestSuffix)))
			must(os.Remove(filepath.Join(dir, n+PartsEnvelopeSuffix)))
		}, Want: "split archive " + n + ": " + n + ".parts.json is missing beside " + n + ".part-0001", Is: ErrParts},
		{Name: "stdin-swapped-parts", Stdin: func(dir string, m *PartsManifest) []byte {
			return catParts(dir, m, 1, 3, 2, 4, 5)
		}, Want: `corrupt archive: $SRC: corrupt zstd data at the end of the archive: CRC check failed`, Is: ErrCorrupt},
		{Name: "stdin-missing-part", Stdin: func(dir string, m *PartsManifest) []byte {
			return catParts(dir, m, 1, 2, 3, 4)
		}, Want: `corrupt archive: truncated: $SRC ends before the first entry`, Is: ErrCorrupt},
	}
}

// writeHostileSplit writes the valid small split set into dir and applies
// the case's mutation; it returns the manifest of the valid set.
func writeHostileSplit(dir string, c hostileSplit) *PartsManifest {
	src, err := os.MkdirTemp("", "archive-gen-")
	must(err)
	defer os.RemoveAll(src)
	for name, data := range smallBundle() {
		p := filepath.Join(src, filepath.FromSlash(name))
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, 0o644))
	}
	m, err := WriteSplit(context.Background(), src, WriteOptions{ModTime: testModTime}, SplitOptions{
		Dir: dir, Name: "bundle.tar.zst", PartSize: hostilePartSize,
		ExportID: "20250314T150926Z", GeneratedAt: testModTime, Sign: testSign,
	})
	must(err)
	if len(m.Parts) != 5 {
		panic(fmt.Sprintf("the hostile split set has %d parts, the cases assume 5", len(m.Parts)))
	}
	if c.Mutate != nil {
		c.Mutate(dir, m)
	}
	return m
}

// seedArchives returns small valid and hostile archive streams for fuzzing.
func seedArchives(t testing.TB) [][]byte {
	seeds := [][]byte{
		smallArchive(CompressionZstd),
		smallArchive(CompressionGzip),
		zst(buildTar(withPrefix(), true)),
		gz(buildTar(withPrefix(tdir("./"), tfile("./mirror/a.json", "{}")), true)),
	}
	for _, h := range hostileStreams() {
		if len(h.Data) <= 64<<10 {
			seeds = append(seeds, h.Data)
		}
	}
	return seeds
}
