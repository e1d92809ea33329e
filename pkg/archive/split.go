package archive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Part describes one volume of a split set in the parts manifest.
type Part struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// PartsManifest is NAME.parts.json: the size and SHA-256 of every part and
// of the whole archive (the parts concatenated in index order). It is
// signed as a DSSE envelope with payloadType PartsPayloadType, stored in
// NAME.parts.dsse.json.
type PartsManifest struct {
	SchemaVersion int       `json:"schemaVersion"`
	Archive       string    `json:"archive"`
	Compression   string    `json:"compression"`
	TotalSize     int64     `json:"totalSize"`
	SHA256        string    `json:"sha256"`
	PartSize      int64     `json:"partSize"`
	Parts         []Part    `json:"parts"`
	ExportID      string    `json:"exportId"`
	GeneratedAt   time.Time `json:"generatedAt"`
}

// Marshal returns the canonical bytes of the manifest: keys in the order of
// the struct, two-space indentation, a final newline, generatedAt in UTC
// whole seconds.
func (m *PartsManifest) Marshal() ([]byte, error) {
	c := *m
	c.GeneratedAt = c.GeneratedAt.UTC().Truncate(time.Second)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SignFunc signs payload and returns a DSSE envelope (JSON) for it.
type SignFunc func(payloadType string, payload []byte) ([]byte, error)

// SplitOptions controls a SplitWriter.
type SplitOptions struct {
	// Dir is the folder the parts and the parts manifest are written to.
	Dir string
	// Name is the archive's file name, such as "bundle.tar.zst"; parts are
	// Name.part-0001, ... and the manifest Name.parts.json.
	Name string
	// PartSize is the largest size of a part in bytes (see ParseSize).
	PartSize int64
	// Compression is recorded in the manifest; when empty it comes from Name.
	Compression string
	// ExportID and GeneratedAt are copied from the bundle's mirror.json.
	ExportID    string
	GeneratedAt time.Time
	// Sign produces the DSSE envelope of the parts manifest.
	Sign SignFunc
}

// SplitWriter cuts a stream into parts of at most PartSize bytes, hashing
// each part and the whole stream as it goes. Parts are written under
// hidden temporary names; Commit renames them into place and writes the
// parts manifest and its envelope, Close without Commit removes them. A
// failed or abandoned export leaves nothing behind.
type SplitWriter struct {
	opts SplitOptions

	cur      *os.File
	curSize  int64
	curHash  hash.Hash
	total    hash.Hash
	size     int64
	parts    []Part
	temps    []string // temporary paths, one per finished or open part
	final    []string // renamed targets, for clean-up on a failed Commit
	err      error
	finished bool
}

// NewSplitWriter checks opts and that none of the set's files exist yet.
func NewSplitWriter(opts SplitOptions) (*SplitWriter, error) {
	if opts.Name == "" || strings.ContainsAny(opts.Name, `/\`) || strings.HasPrefix(opts.Name, ".") || checkName(opts.Name) != "" {
		return nil, failure.Usagef("split archive name %s: must be a plain file name", quoteName(opts.Name))
	}
	if opts.PartSize <= 0 {
		return nil, failure.Usagef("split size must be above zero")
	}
	if opts.Compression == "" {
		c, err := ArchiveFormatFromName(opts.Name)
		if err != nil {
			return nil, err
		}
		opts.Compression = c
	}
	if opts.Compression != CompressionZstd && opts.Compression != CompressionGzip {
		return nil, failure.Usagef("unknown compression %q: use zstd or gzip", opts.Compression)
	}
	if opts.Sign == nil {
		return nil, failure.Usagef("split archive %s: no signer for the parts manifest", opts.Name)
	}
	if opts.Dir == "" {
		opts.Dir = "."
	}
	if err := checkNoSplitSet(opts.Dir, opts.Name); err != nil {
		return nil, err
	}
	return &SplitWriter{opts: opts, total: sha256.New()}, nil
}

// checkNoSplitSet refuses to overwrite any file of an existing split set,
// whose stale parts would otherwise pass for extra parts of the new one.
func checkNoSplitSet(dir, name string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return failure.Classify(failure.ErrUsage, fmt.Errorf("split archive output folder: %w", err))
	}
	for _, e := range ents {
		n := e.Name()
		if n == name+PartsManifestSuffix || n == name+PartsEnvelopeSuffix || strings.HasPrefix(n, name+PartSuffix) {
			return failure.Usagef("%s already exists; remove the old split set %s first", filepath.Join(dir, n), name)
		}
	}
	return nil
}

// Write implements io.Writer.
func (s *SplitWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.finished {
		return 0, errors.New("split archive: write after commit")
	}
	written := 0
	for len(p) > 0 {
		if s.cur == nil {
			if err := s.openPart(); err != nil {
				s.err = err
				return written, err
			}
		}
		chunk := p
		if room := s.opts.PartSize - s.curSize; int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, err := s.cur.Write(chunk)
		s.curHash.Write(chunk[:n])
		s.total.Write(chunk[:n])
		s.curSize += int64(n)
		s.size += int64(n)
		written += n
		p = p[n:]
		if err != nil {
			s.err = fmt.Errorf("write %s: %w", partName(s.opts.Name, len(s.temps)), err)
			return written, s.err
		}
		if s.curSize == s.opts.PartSize {
			if err := s.finishPart(); err != nil {
				s.err = err
				return written, err
			}
		}
	}
	return written, nil
}

func (s *SplitWriter) openPart() error {
	index := len(s.temps) + 1
	f, err := createOutput(s.opts.Dir, "."+partName(s.opts.Name, index)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create %s: %w", partName(s.opts.Name, index), err)
	}
	s.cur, s.curSize, s.curHash = f, 0, sha256.New()
	s.temps = append(s.temps, f.Name())
	return nil
}

func (s *SplitWriter) finishPart() error {
	index := len(s.temps)
	name := partName(s.opts.Name, index)
	f := s.cur
	s.cur = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	s.parts = append(s.parts, Part{Name: name, Index: index, Size: s.curSize, SHA256: hex.EncodeToString(s.curHash.Sum(nil))})
	return nil
}

// Commit finishes the last part, writes and signs the parts manifest, and
// renames every file of the set into place. It returns the manifest.
func (s *SplitWriter) Commit() (*PartsManifest, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.finished {
		return nil, errors.New("split archive: already committed")
	}
	if s.cur != nil {
		if err := s.finishPart(); err != nil {
			s.err = err
			return nil, err
		}
	}
	if len(s.parts) == 0 {
		s.err = errors.New("split archive: nothing was written")
		return nil, s.err
	}
	m := &PartsManifest{
		SchemaVersion: PartsSchemaVersion,
		Archive:       s.opts.Name,
		Compression:   s.opts.Compression,
		TotalSize:     s.size,
		SHA256:        hex.EncodeToString(s.total.Sum(nil)),
		PartSize:      s.opts.PartSize,
		Parts:         s.parts,
		ExportID:      s.opts.ExportID,
		GeneratedAt:   s.opts.GeneratedAt.UTC().Truncate(time.Second),
	}
	payload, err := m.Marshal()
	if err != nil {
		s.err = err
		return nil, err
	}
	env, err := s.opts.Sign(PartsPayloadType, payload)
	if err != nil {
		s.err = fmt.Errorf("sign %s%s: %w", s.opts.Name, PartsManifestSuffix, err)
		return nil, s.err
	}
	targets := make([]string, 0, len(s.temps)+2)
	for _, p := range s.parts {
		targets = append(targets, p.Name)
	}
	for _, extra := range []struct {
		suffix string
		data   []byte
	}{{PartsManifestSuffix, payload}, {PartsEnvelopeSuffix, env}} {
		tmp, err := writeTemp(s.opts.Dir, s.opts.Name+extra.suffix, extra.data)
		if err != nil {
			s.err = err
			return nil, err
		}
		s.temps = append(s.temps, tmp)
		targets = append(targets, s.opts.Name+extra.suffix)
	}
	if err := checkNoSplitSet(s.opts.Dir, s.opts.Name); err != nil {
		s.err = err
		return nil, err
	}
	for i, tmp := range s.temps {
		target := filepath.Join(s.opts.Dir, targets[i])
		if err := os.Rename(tmp, target); err != nil {
			s.err = fmt.Errorf("write %s: %w", target, err)
			return nil, s.err
		}
		s.final = append(s.final, target)
	}
	s.temps = nil
	if err := syncDir(s.opts.Dir); err != nil {
		s.err = err
		return nil, err
	}
	s.final = nil
	s.finished = true
	return m, nil
}

// Close removes every file written so far unless Commit succeeded. It is
// safe to call more than once and after Commit.
func (s *SplitWriter) Close() error {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	var errs []error
	for _, p := range append(s.temps, s.final...) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	s.temps, s.final = nil, nil
	if !s.finished && s.err == nil {
		s.err = errors.New("split archive: closed without commit")
	}
	return errors.Join(errs...)
}

func writeTemp(dir, name string, data []byte) (string, error) {
	f, err := createOutput(dir, "."+name+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// WriteSplit writes the bundle folder as a split set described by opts,
// with the archive settings of wopts (Compression defaults to
// opts.Compression, then to the one implied by opts.Name). Nothing is left
// in opts.Dir on failure.
func WriteSplit(ctx context.Context, bundleDir string, wopts WriteOptions, opts SplitOptions) (*PartsManifest, error) {
	if opts.Compression == "" {
		opts.Compression = wopts.Compression
	}
	sw, err := NewSplitWriter(opts)
	if err != nil {
		return nil, err
	}
	defer sw.Close()
	if wopts.Compression == "" {
		wopts.Compression = sw.opts.Compression
	}
	if wopts.Compression != sw.opts.Compression {
		return nil, failure.Usagef("split archive %s: compression %s does not match %s", opts.Name, wopts.Compression, sw.opts.Compression)
	}
	bw := bufio.NewWriterSize(sw, 1<<20)
	if err := Write(ctx, bw, bundleDir, wopts); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return sw.Commit()
}

// WriteFile writes the bundle folder as one archive file at path, through a
// hidden temporary file renamed into place, so that a failed run leaves no
// file behind. An empty opts.Compression comes from the file name.
func WriteFile(ctx context.Context, path, bundleDir string, opts WriteOptions) error {
	if opts.Compression == "" {
		c, err := ArchiveFormatFromName(path)
		if err != nil {
			return err
		}
		opts.Compression = c
	}
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := createOutput(dir, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := Write(ctx, bw, bundleDir, opts); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

// createOutput creates the temporary file of an archive, a part or a parts
// manifest, readable by everyone as the files of a bundle folder are
// (os.CreateTemp alone would leave it readable by its owner only, which
// stops a USB stick's archive from being read by another account).
func createOutput(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}
