package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Fixed compression settings. Changing any of them changes the bytes of
// every archive, so they are part of the format's reproducibility promise.
const (
	zstdLevel  = zstd.SpeedDefault
	zstdWindow = 8 << 20
	gzipLevel  = 6
)

// WriteOptions controls Write.
type WriteOptions struct {
	// Compression is "zstd" (the default when empty) or "gzip"; see
	// ArchiveFormatFromName.
	Compression string
	// ModTime is the modification time of every entry, normally the
	// bundle's generatedAt. It is truncated to whole seconds; the zero time
	// stands for the Unix epoch.
	ModTime time.Time
}

type sourceEntry struct {
	name string
	dir  bool
	info fs.FileInfo
}

// archiveName is the entry's name in the archive.
func (e sourceEntry) archiveName() string {
	if e.dir {
		return e.name + "/"
	}
	return e.name
}

// Write streams the bundle folder bundleDir to w as a compressed tar
// archive. The output depends only on the names and contents of the files
// and folders and on opts: entries sorted in byte order of their archive
// names (folders carry a trailing slash, so each folder comes right before
// its contents), owner 0:0 without names, mode 0644 for files and 0755 for
// folders, every mtime opts.ModTime, no access or change times, PAX format
// (plain USTAR headers unless a name or size needs a PAX record), and fixed
// compression settings (zstd: default level, 8 MiB window, checksum, one
// encoder thread; gzip: level 6, empty header). Only regular files and folders are archived;
// anything else, or a name the reader would refuse, is an
// ErrUnsupportedSource error. Write does not close w.
func Write(ctx context.Context, w io.Writer, bundleDir string, opts WriteOptions) error {
	comp := opts.Compression
	if comp == "" {
		comp = CompressionZstd
	}
	if comp != CompressionZstd && comp != CompressionGzip {
		return failure.Usagef("unknown compression %q: use zstd or gzip", opts.Compression)
	}
	mtime := time.Unix(0, 0).UTC()
	if !opts.ModTime.IsZero() {
		mtime = opts.ModTime.UTC().Truncate(time.Second)
	}

	root, err := os.OpenRoot(bundleDir)
	if err != nil {
		return failure.Classify(failure.ErrUsage, fmt.Errorf("open bundle folder: %w", err))
	}
	defer root.Close()

	entries, err := listSource(ctx, root)
	if err != nil {
		return err
	}

	cw, err := newCompressor(w, comp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(cw)
	buf := make([]byte, 256<<10)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return ctxError(err)
		}
		hdr := &tar.Header{
			Name:    e.archiveName(),
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Mode = 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("write archive entry %s: %w", e.name, err)
			}
			continue
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Mode = 0o644
		hdr.Size = e.info.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write archive entry %s: %w", e.name, err)
		}
		if err := copySourceFile(ctx, tw, root, e, buf); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

func newCompressor(w io.Writer, comp string) (io.WriteCloser, error) {
	switch comp {
	case CompressionZstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstdLevel),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderCRC(true),
			zstd.WithZeroFrames(true),
		)
	default:
		gz, err := gzip.NewWriterLevel(w, gzipLevel)
		if err != nil {
			return nil, err
		}
		// Name, Comment and ModTime stay empty; OS is fixed at 255.
		gz.OS = 255
		return gz, nil
	}
}

// listSource walks the bundle folder without following symbolic links and
// returns its entries sorted by path.
func listSource(ctx context.Context, root *os.Root) ([]sourceEntry, error) {
	var entries []sourceEntry
	names := newNameSet()
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read bundle folder: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return ctxError(err)
		}
		if p == "." {
			return nil
		}
		if reason := checkName(p); reason != "" {
			return fmt.Errorf("%w: %s: %s", ErrUnsupportedSource, quoteName(p), reason)
		}
		t := d.Type()
		if !t.IsDir() && !t.IsRegular() {
			return fmt.Errorf("%w: %s: %s (only regular files and folders can be archived)", ErrUnsupportedSource, quoteName(p), describeMode(t))
		}
		if reason := names.add(p, t.IsDir()); reason != "" {
			return fmt.Errorf("%w: %s: %s", ErrUnsupportedSource, quoteName(p), reason)
		}
		e := sourceEntry{name: p, dir: t.IsDir()}
		if !e.dir {
			info, err := root.Lstat(p)
			if err != nil {
				return fmt.Errorf("read bundle folder: %w", err)
			}
			if !info.Mode().IsRegular() {
				return fmt.Errorf("%w: %s: %s (only regular files and folders can be archived)", ErrUnsupportedSource, quoteName(p), describeMode(info.Mode()))
			}
			e.info = info
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Sort by the names as stored, folders with their trailing slash: a
	// folder then comes right before its contents.
	sort.Slice(entries, func(i, j int) bool { return entries[i].archiveName() < entries[j].archiveName() })
	return entries, nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeIrregular != 0:
		return "irregular file"
	}
	return "unsupported file type"
}

// copySourceFile copies exactly the size recorded in the header, and fails
// if the file was replaced or changed size in the meantime.
func copySourceFile(ctx context.Context, w io.Writer, root *os.Root, e sourceEntry, buf []byte) error {
	f, err := root.Open(e.name)
	if err != nil {
		return fmt.Errorf("read bundle file %s: %w", e.name, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read bundle file %s: %w", e.name, err)
	}
	if !os.SameFile(info, e.info) || info.Size() != e.info.Size() {
		return fmt.Errorf("%w: %s changed while it was archived", ErrUnsupportedSource, quoteName(e.name))
	}
	n, err := io.CopyBuffer(w, io.LimitReader(&ctxReader{ctx: ctx, r: f}, e.info.Size()), buf)
	if err != nil {
		return fmt.Errorf("archive %s: %w", e.name, err)
	}
	if n != e.info.Size() {
		return fmt.Errorf("%w: %s shrank while it was archived", ErrUnsupportedSource, quoteName(e.name))
	}
	var one [1]byte
	m, err := f.Read(one[:])
	if m > 0 {
		return fmt.Errorf("%w: %s grew while it was archived", ErrUnsupportedSource, quoteName(e.name))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read bundle file %s: %w", e.name, err)
	}
	return nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, ctxError(err)
	}
	return c.r.Read(p)
}

// ctxError classifies a cancelled context as an interruption.
func ctxError(err error) error {
	if errors.Is(err, context.Canceled) {
		return failure.Classify(failure.ErrInterrupted, err)
	}
	return err
}
