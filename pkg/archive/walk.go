package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

const (
	blockSize = 512
	// maxTrailingZeros is the zero padding accepted after the end-of-archive
	// marker (tar pads to its record size, 10 KiB by default).
	maxTrailingZeros = 1 << 20
	// headerAllowance is the decompressed data allowed per entry beyond its
	// contents: headers, PAX records, padding.
	headerAllowance = 64 << 10
)

// EntryInfo describes one archive entry passed to a Walk function.
type EntryInfo struct {
	// Name is the entry's slash-separated relative path, without a
	// trailing slash and without a leading "./".
	Name string
	// IsDir is true for folders, false for regular files.
	IsDir bool
	// Size is the file's size in bytes (0 for folders).
	Size int64
	// ModTime is the modification time recorded in the archive.
	ModTime time.Time
}

// SetLimits lowers the limits of a running Walk or Extract, typically from
// fn once mirror.json has been read (see BundleLimits); called before Walk,
// it lowers the limits Walk is given. Zero fields and values above the
// current limits are ignored: limits never rise. It
// returns an error wrapping ErrLimitExceeded if the archive already
// exceeds the new limits; the walk then fails too. MaxWindow cannot change
// once decompression has started.
func (s *Source) SetLimits(l Limits) error {
	s.limits = tighten(s.limits, l)
	if err := s.checkTotals(); err != nil {
		s.limitErr = err
		return err
	}
	return nil
}

func tighten(cur, l Limits) Limits {
	if l.MaxEntries > 0 && (cur.MaxEntries <= 0 || l.MaxEntries < cur.MaxEntries) {
		cur.MaxEntries = l.MaxEntries
	}
	if l.MaxBytes > 0 && (cur.MaxBytes <= 0 || l.MaxBytes < cur.MaxBytes) {
		cur.MaxBytes = l.MaxBytes
	}
	if l.MaxWindow > 0 && (cur.MaxWindow == 0 || l.MaxWindow < cur.MaxWindow) {
		cur.MaxWindow = l.MaxWindow
	}
	return cur
}

func (s *Source) checkTotals() error {
	if s.limits.MaxEntries > 0 && s.entries > s.limits.MaxEntries {
		return &EntryError{Name: s.current, Reason: fmt.Sprintf("more than %d entries", s.limits.MaxEntries), Err: ErrLimitExceeded}
	}
	if s.limits.MaxBytes > 0 && s.bytes > s.limits.MaxBytes {
		return &EntryError{Name: s.current, Reason: fmt.Sprintf("files add up to more than %d bytes", s.limits.MaxBytes), Err: ErrLimitExceeded}
	}
	return nil
}

// Walk reads the archive in one pass and calls fn for every entry, in
// archive order, with a reader of the entry's contents that is valid until
// fn returns; what fn leaves unread is skipped. An error from fn stops the
// walk and is returned as is.
//
// Walk refuses, with an error wrapping failure.ErrVerification that names
// the entry: entries other than regular files and folders (symbolic and
// hard links, devices, FIFOs, sparse files, PAX global headers), names that
// are absolute or contain "..", ".", empty components, NUL, backslashes,
// control characters or invalid UTF-8, duplicates, names that collide by
// case or Unicode normalisation, more entries or bytes than limits allow,
// a zstd window above limits.MaxWindow, truncation (also at an entry
// boundary: the end-of-archive marker is required) and any data after the
// end of the archive other than tar's zero padding.
//
// Entries are checked before fn sees them, so a refused entry never
// reaches fn; entries before it have. A Source can be walked once.
func (s *Source) Walk(ctx context.Context, limits Limits, fn func(hdr EntryInfo, r io.Reader) error) error {
	if s.walked {
		return errors.New("archive: source already read")
	}
	s.walked = true
	s.limits = tighten(s.limits, limits).withDefaults()

	dec, closeDec, err := s.decompressor()
	if err != nil {
		return err
	}
	defer closeDec()
	g := &guardReader{ctx: ctx, s: s, r: dec}
	tr := tar.NewReader(g)
	names := newNameSet()
	rootSeen := false
	var dataEnd int64

	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return s.streamError(ctx, err, "header")
		}
		s.entries++
		s.current = hdr.Name
		if err := s.checkTotals(); err != nil {
			return err
		}
		info, root, err := checkHeader(hdr, names)
		if err != nil {
			return err
		}
		if root {
			if rootSeen {
				return unsafeEntry(hdr.Name, "duplicate entry")
			}
			rootSeen = true
		}
		if !info.IsDir {
			if info.Size > s.limits.MaxBytes-s.bytes {
				return &EntryError{Name: hdr.Name, Reason: fmt.Sprintf("files add up to more than %d bytes", s.limits.MaxBytes), Err: ErrLimitExceeded}
			}
			s.bytes += info.Size
		}
		dataEnd = s.consumed + info.Size + padding(info.Size)
		if root {
			continue
		}
		er := &entryReader{ctx: ctx, s: s, tr: tr}
		if err := fn(info, er); err != nil {
			return err
		}
		if s.limitErr != nil {
			return s.limitErr
		}
	}
	if s.consumed != dataEnd+2*blockSize {
		where := "before the first entry"
		if s.entries > 0 {
			where = "after entry " + quoteName(s.current)
		}
		return fmt.Errorf("%w: truncated: %s ends without the end-of-archive marker (%s)", ErrCorrupt, s.display, where)
	}
	return s.checkTrailer(ctx, g)
}

func padding(size int64) int64 {
	return -size & (blockSize - 1)
}

// checkHeader validates one header and returns its EntryInfo; root is true
// for a "./" entry, which stands for the archive's top folder.
func checkHeader(hdr *tar.Header, names *nameSet) (info EntryInfo, root bool, err error) {
	raw := hdr.Name
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		return info, false, unsafeEntry(raw, "symbolic link to %s (only regular files and folders are allowed)", quoteName(hdr.Linkname))
	case tar.TypeLink:
		return info, false, unsafeEntry(raw, "hard link to %s (only regular files and folders are allowed)", quoteName(hdr.Linkname))
	case tar.TypeChar:
		return info, false, unsafeEntry(raw, "character device (only regular files and folders are allowed)")
	case tar.TypeBlock:
		return info, false, unsafeEntry(raw, "block device (only regular files and folders are allowed)")
	case tar.TypeFifo:
		return info, false, unsafeEntry(raw, "named pipe (only regular files and folders are allowed)")
	case tar.TypeGNUSparse:
		return info, false, unsafeEntry(raw, "GNU sparse file (only regular files and folders are allowed)")
	case tar.TypeXGlobalHeader:
		return info, false, unsafeEntry(raw, "PAX global header (not produced by stellaops-cli)")
	default:
		return info, false, unsafeEntry(raw, "unsupported entry type %q (only regular files and folders are allowed)", string(hdr.Typeflag))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return info, false, unsafeEntry(raw, "GNU sparse file (only regular files and folders are allowed)")
		}
	}
	dir := hdr.Typeflag == tar.TypeDir
	switch {
	case hdr.Size < 0:
		return info, false, &EntryError{Name: raw, Reason: "negative size", Err: ErrCorrupt}
	case dir && hdr.Size != 0:
		return info, false, unsafeEntry(raw, "folder with a size of %d bytes", hdr.Size)
	case raw == "":
		return info, false, unsafeEntry(raw, "empty name")
	case strings.HasPrefix(raw, "/"):
		return info, false, unsafeEntry(raw, "absolute name")
	}
	name := strings.TrimPrefix(raw, "./")
	if dir {
		if name == "" || raw == "." {
			return EntryInfo{IsDir: true, ModTime: hdr.ModTime}, true, nil
		}
		name = strings.TrimSuffix(name, "/")
	} else if strings.HasSuffix(name, "/") {
		return info, false, unsafeEntry(raw, "regular file whose name ends in \"/\"")
	}
	if reason := checkName(name); reason != "" {
		return info, false, unsafeEntry(raw, "%s", reason)
	}
	if reason := names.add(name, dir); reason != "" {
		return info, false, unsafeEntry(raw, "%s", reason)
	}
	return EntryInfo{Name: name, IsDir: dir, Size: hdr.Size, ModTime: hdr.ModTime}, false, nil
}

func (s *Source) decompressor() (io.Reader, func(), error) {
	switch s.Compression {
	case CompressionZstd:
		window := s.limits.MaxWindow
		if window < zstd.MinWindowSize {
			window = zstd.MinWindowSize
		}
		// One synchronous decoder: the asynchronous one (concurrency 2
		// and more) takes more CPU than it saves here and holds more
		// buffers; the callers hash and write on other goroutines.
		d, err := zstd.NewReader(s.raw,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(window),
			zstd.WithDecoderMaxMemory(window),
		)
		if err != nil {
			return nil, nil, s.compressedError(err, "")
		}
		return d, d.Close, nil
	case CompressionGzip:
		z, err := gzip.NewReader(s.raw)
		if err != nil {
			return nil, nil, s.compressedError(err, "")
		}
		return z, func() { z.Close() }, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown compression %q", ErrCorrupt, s.Compression)
}

// compressedError classifies an error of the decompressor or the input.
func (s *Source) compressedError(err error, where string) error {
	s.probeInput(err)
	if s.rec.err != nil {
		if isClassified(s.rec.err) {
			return s.rec.err
		}
		return fmt.Errorf("read %s: %w", s.display, s.rec.err)
	}
	if isClassified(err) {
		return err
	}
	if where != "" {
		where = " " + where
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return fmt.Errorf("%w: truncated: %s ends%s", ErrCorrupt, s.display, where)
	case errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return failure.WithHint(
			fmt.Errorf("%w: %s: zstd window larger than the limit of %d MiB", ErrLimitExceeded, s.display, s.limits.MaxWindow>>20),
			"compress with a smaller window (zstd --long=27 at most), or raise the window limit")
	case errors.Is(err, zstd.ErrCRCMismatch):
		// The checksum covers the whole frame and is checked at its end;
		// the decoder withholds the frame's last block when it fails.
		where = " at the end of the archive"
	}
	return fmt.Errorf("%w: %s: corrupt %s data%s: %v", ErrCorrupt, s.display, s.Compression, where, err)
}

// maxInputProbe bounds what probeInput reads.
const maxInputProbe = 1 << 20

// probeInput reads on a little in a split set after the decompressor
// failed on what looks like corrupt data, so that a part that changed since
// it was checked is named instead: the decompressor stops as soon as the
// data is wrong, before the input has reached the end of the part, where
// its digest is checked again. Other inputs are not read further (a pipe
// could block).
func (s *Source) probeInput(err error) {
	if s.Parts == nil || s.rec.err != nil || err == nil || isClassified(err) {
		return
	}
	_, _ = io.CopyN(io.Discard, s.raw, maxInputProbe)
}

func isClassified(err error) bool {
	return errors.Is(err, failure.ErrVerification) || errors.Is(err, failure.ErrInterrupted) || errors.Is(err, failure.ErrUsage)
}

// streamError classifies an error met while reading tar data.
func (s *Source) streamError(ctx context.Context, err error, phase string) error {
	if isClassified(err) || s.rec.err != nil {
		return s.compressedError(err, "")
	}
	if ctx.Err() != nil {
		return ctxError(ctx.Err())
	}
	if errors.Is(err, tar.ErrHeader) {
		name, reason := describeHeader(s.lastBlock[:])
		if name == "" {
			return fmt.Errorf("%w: %s: malformed tar header after entry %s: %s", ErrCorrupt, s.display, quoteName(s.current), reason)
		}
		return &EntryError{Name: name, Reason: "malformed tar header: " + reason, Err: ErrCorrupt}
	}
	where := "in the middle of entry " + quoteName(s.current)
	if phase == "header" {
		where = "after entry " + quoteName(s.current)
		if s.entries == 0 {
			where = "before the first entry"
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated: %s ends %s", ErrCorrupt, s.display, where)
	}
	return s.compressedError(err, where)
}

// describeHeader recovers the name of a header block Go's tar reader
// refused, and the reason where it can tell.
func describeHeader(blk []byte) (name, reason string) {
	if len(blk) != blockSize || bytes.Equal(blk, make([]byte, blockSize)) {
		return "", "invalid header"
	}
	cstr := func(b []byte) string {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		return string(b)
	}
	magic := string(blk[257:265])
	if magic != "ustar\x0000" && magic != "ustar  \x00" {
		return "", "invalid header"
	}
	name = cstr(blk[0:100])
	if string(blk[257:263]) == "ustar\x00" {
		if prefix := cstr(blk[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
	}
	var sum int64
	for i, c := range blk {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	stored, err := strconv.ParseInt(strings.Trim(cstr(blk[148:156]), " "), 8, 64)
	switch {
	case err != nil || stored != sum:
		return name, "bad header checksum"
	case blk[124] == 0xff:
		return name, "negative size"
	}
	return name, "invalid header"
}

// checkTrailer accepts only zero padding after the end-of-archive marker,
// and then the end of the compressed stream.
func (s *Source) checkTrailer(ctx context.Context, g *guardReader) error {
	buf := make([]byte, 32<<10)
	var zeros int64
	for {
		n, err := g.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return fmt.Errorf("%w: %s: trailing data after the end of the tar archive", ErrCorrupt, s.display)
			}
		}
		zeros += int64(n)
		if zeros > maxTrailingZeros {
			return fmt.Errorf("%w: %s: more than %d bytes of padding after the end of the tar archive", ErrCorrupt, s.display, maxTrailingZeros)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			switch {
			case isClassified(err) || s.rec.err != nil || ctx.Err() != nil:
				return s.streamError(ctx, err, "trailer")
			case errors.Is(err, zstd.ErrMagicMismatch) || errors.Is(err, gzip.ErrHeader):
				return fmt.Errorf("%w: %s: trailing data after the end of the compressed archive: %v", ErrCorrupt, s.display, err)
			case errors.Is(err, io.ErrUnexpectedEOF):
				return fmt.Errorf("%w: truncated: %s ends before the end of the compressed stream", ErrCorrupt, s.display)
			}
			return fmt.Errorf("%w: %s: corrupt %s data at the end of the archive: %v", ErrCorrupt, s.display, s.Compression, err)
		}
	}
}

// guardReader sits between the decompressor and the tar reader: it honours
// ctx, bounds the decompressed stream (entries can hide data in headers
// the tar reader skips), counts consumed bytes and keeps the last block.
type guardReader struct {
	ctx context.Context
	s   *Source
	r   io.Reader
}

func (g *guardReader) Read(p []byte) (int, error) {
	if err := g.ctx.Err(); err != nil {
		return 0, ctxError(err)
	}
	s := g.s
	n, err := g.r.Read(p)
	if n > 0 {
		s.consumed += int64(n)
		if n >= blockSize {
			copy(s.lastBlock[:], p[n-blockSize:n])
		} else {
			copy(s.lastBlock[:], s.lastBlock[n:])
			copy(s.lastBlock[blockSize-n:], p[:n])
		}
		allowed := s.limits.MaxBytes + (s.entries+2)*headerAllowance + maxTrailingZeros + 2*blockSize
		if allowed < 0 || s.consumed > allowed {
			where := "before the first entry"
			if s.entries > 0 {
				where = "after entry " + quoteName(s.current)
			}
			return n, fmt.Errorf("%w: %s: the decompressed stream exceeds the %d bytes the limits allow, %s", ErrLimitExceeded, s.display, allowed, where)
		}
	}
	return n, err
}

// entryReader is the reader fn gets for one entry.
type entryReader struct {
	ctx context.Context
	s   *Source
	tr  *tar.Reader
}

func (e *entryReader) Read(p []byte) (int, error) {
	n, err := e.tr.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, e.s.streamError(e.ctx, err, "data")
	}
	return n, err
}
