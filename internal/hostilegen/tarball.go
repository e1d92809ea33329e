package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// entry is one archive entry. Most are written by archive/tar; raw
// entries are hand-made header blocks for what archive/tar refuses to
// write (negative sizes, sparse and NUL tricks).
type entry struct {
	name string
	typ  byte
	link string
	body []byte
	// n copies of fill follow body (bombs, padding), written as runs so
	// that a bomb costs nothing to make.
	fill byte
	n    int64
	pax  map[string]string
	// raw, when set, is written instead: complete 512-byte blocks.
	raw []byte
	// patch edits the entry's header block (the last one written before
	// its body) after archive/tar wrote it; the checksum is redone.
	patch func(blk []byte)
}

var tarTime = time.Date(2026, 3, 15, 1, 0, 0, 0, time.UTC)

func fileEntry(name string, body []byte) entry {
	return entry{name: name, typ: tar.TypeReg, body: body}
}

// treeEntries lists t as export --archive writes it: sorted by archive
// name, each folder (with its trailing slash) right before its contents.
func treeEntries(t tree) []entry {
	names := t.names()
	var all []string
	for _, d := range dirsOf(names) {
		all = append(all, d+"/")
	}
	all = append(all, names...)
	sort.Strings(all)
	var out []entry
	for _, n := range all {
		if strings.HasSuffix(n, "/") {
			out = append(out, entry{name: n, typ: tar.TypeDir})
			continue
		}
		out = append(out, fileEntry(n, t[n]))
	}
	return out
}

// insertEntry inserts e after the entry named after ("" = first).
func insertEntry(es []entry, after string, e ...entry) []entry {
	if after == "" {
		return append(append([]entry{}, e...), es...)
	}
	for i := range es {
		if es[i].name == after {
			out := append([]entry{}, es[:i+1]...)
			out = append(out, e...)
			return append(out, es[i+1:]...)
		}
	}
	panic("no entry " + after)
}

// replaceEntry replaces the entry named name.
func replaceEntry(es []entry, name string, e entry) []entry {
	out := append([]entry{}, es...)
	for i := range out {
		if out[i].name == name {
			out[i] = e
			return out
		}
	}
	panic("no entry " + name)
}

// sink receives the uncompressed tar stream: bytes, and runs of one byte.
type sink interface {
	Write(p []byte) (int, error)
	Fill(b byte, n int64) error
}

// writerSink writes runs out in full.
type writerSink struct{ io.Writer }

func (w writerSink) Fill(b byte, n int64) error {
	chunk := bytes.Repeat([]byte{b}, 64<<10)
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// writeTar writes the entries and the end-of-archive marker to w.
func writeTar(w sink, es []entry) error {
	for _, e := range es {
		if e.raw != nil {
			if _, err := w.Write(e.raw); err != nil {
				return err
			}
			continue
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, ModTime: tarTime, Format: tar.FormatPAX, PAXRecords: e.pax}
		switch e.typ {
		case tar.TypeDir:
			hdr.Mode = 0o755
		case tar.TypeReg:
			hdr.Mode = 0o644
			hdr.Size = int64(len(e.body)) + e.n
		case tar.TypeXGlobalHeader:
			hdr = &tar.Header{Name: e.name, Typeflag: e.typ, PAXRecords: e.pax}
		default:
			hdr.Mode = 0o644
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		// WriteHeader writes the header blocks at once; the body and its
		// padding are written below, past the tar.Writer.
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("entry %q: %w", e.name, err)
		}
		b := buf.Bytes()
		if e.patch != nil {
			blk := b[len(b)-512:]
			e.patch(blk)
			setChecksum(blk)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if _, err := w.Write(e.body); err != nil {
			return err
		}
		if err := w.Fill(e.fill, e.n); err != nil {
			return err
		}
		size := int64(len(e.body)) + e.n
		if pad := -size & 511; pad > 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				return err
			}
		}
	}
	_, err := w.Write(make([]byte, 1024))
	return err
}

// compress writes the tar of es compressed with comp ("zstd" or "gzip")
// with fixed settings, so the bytes are the same on every run. Archives
// with runs (bombs) are written as a hand-made zstd frame instead.
func compress(comp string, es []entry) ([]byte, error) {
	for _, e := range es {
		if e.n > 0 && comp == "zstd" {
			var f rleFrame
			if err := writeTar(&f, es); err != nil {
				return nil, err
			}
			return f.bytes(), nil
		}
	}
	var out bytes.Buffer
	var w io.WriteCloser
	switch comp {
	case "zstd":
		z, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(8<<20), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, err
		}
		w = z
	case "gzip":
		z, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		z.OS = 255
		w = z
	default:
		return nil, fmt.Errorf("compression %q", comp)
	}
	if err := writeTar(writerSink{w}, es); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// rleFrame builds one zstd frame (RFC 8878) of raw blocks for bytes and
// RLE blocks for runs: a run of n bytes costs 4 bytes per 128 KiB.
type rleFrame struct {
	blocks  bytes.Buffer
	pending []byte
}

const zstdMaxBlock = 128 << 10

func (f *rleFrame) Write(p []byte) (int, error) {
	f.pending = append(f.pending, p...)
	for len(f.pending) >= zstdMaxBlock {
		f.block(0, f.pending[:zstdMaxBlock], zstdMaxBlock)
		f.pending = f.pending[zstdMaxBlock:]
	}
	return len(p), nil
}

func (f *rleFrame) flush() {
	if len(f.pending) > 0 {
		f.block(0, f.pending, len(f.pending))
		f.pending = nil
	}
}

func (f *rleFrame) Fill(b byte, n int64) error {
	f.flush()
	for n > 0 {
		k := min(n, zstdMaxBlock)
		f.block(1, []byte{b}, int(k))
		n -= k
	}
	return nil
}

// block appends a block header (type 0 raw, 1 RLE) and its content.
func (f *rleFrame) block(typ int, content []byte, size int) {
	h := uint32(size)<<3 | uint32(typ)<<1
	f.blocks.Write([]byte{byte(h), byte(h >> 8), byte(h >> 16)})
	f.blocks.Write(content)
}

func (f *rleFrame) bytes() []byte {
	f.flush()
	f.block(0, nil, 0)
	b := f.blocks.Bytes()
	// Mark the empty raw block just written as the last one.
	b[len(b)-3] |= 1
	// Magic, then a frame header: no content size, no checksum, no
	// dictionary, an 8 MiB window (exponent 13).
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 13 << 3}
	return append(out, b...)
}

// Raw header blocks, for entries archive/tar will not write.

func setChecksum(blk []byte) {
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk[:512] {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

func octal(dst []byte, n int64) {
	s := strconv.FormatInt(n, 8)
	s = strings.Repeat("0", len(dst)-1-len(s)) + s
	copy(dst, s+"\x00")
}

// ustarBlock is a USTAR header block; name is stored as given (bytes),
// which lets NUL and other bytes archive/tar refuses through.
func ustarBlock(name string, typ byte, size int64) []byte {
	blk := make([]byte, 512)
	copy(blk[0:100], name)
	octal(blk[100:108], 0o644)
	octal(blk[108:116], 0)
	octal(blk[116:124], 0)
	octal(blk[124:136], size)
	octal(blk[136:148], tarTime.Unix())
	blk[156] = typ
	copy(blk[257:263], "ustar\x00")
	copy(blk[263:265], "00")
	setChecksum(blk)
	return blk
}

func padded(b []byte) []byte {
	return append(b, make([]byte, -len(b)&511)...)
}

// paxEntry is a PAX extended header (type 'x') with the records given in
// order, written byte for byte.
func paxEntry(records ...[2]string) []byte {
	var body bytes.Buffer
	for _, r := range records {
		rec := " " + r[0] + "=" + r[1] + "\n"
		n := len(rec)
		for {
			l := len(strconv.Itoa(n)) + len(rec)
			if l == n {
				break
			}
			n = l
		}
		body.WriteString(strconv.Itoa(n) + rec)
	}
	out := ustarBlock("PaxHeaders/x", 'x', int64(body.Len()))
	return append(out, padded(body.Bytes())...)
}
