package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// minCompressedDocument is the size from which keptFS holds a signed
// document compressed.
const minCompressedDocument = 64 << 10

// keptFS is the bundle as Verify saw it go by: a bundle.MemFS listing every
// file from the digests Verify records (bundle.NewSetFS), and the bytes of
// the signed documents. The larger
// documents are held zstd-compressed, compressed chunk by chunk as they go
// by (they are JSON, listing every file with its digest, and shrink four-
// to fivefold; they are the largest part of what Verify keeps and grow with
// the number of files), and are decompressed as they are read, each time
// verification opens one, which it does once or a few times.
//
// keptFS embeds the MemFS, so that everything but Open (the listing of the
// files, in particular) is the MemFS's own; the MemFS holds the smaller
// documents' bytes.
type keptFS struct {
	*bundle.MemFS
	digests *bundle.DigestSet
	enc     *zstd.Encoder

	mu     sync.Mutex
	packed map[string]packedDocument
}

// packedDocument is a compressed signed document: zstd frames, one per
// chunk it arrived in.
type packedDocument struct {
	size int64
	zst  []byte
}

func newKeptFS() (*keptFS, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(chunkSize),
	)
	if err != nil {
		return nil, err
	}
	digests := bundle.NewDigestSet(0)
	return &keptFS{MemFS: bundle.NewSetFS(digests), digests: digests, enc: enc, packed: map[string]packedDocument{}}, nil
}

// keptDoc receives the bytes of one signed document, in order.
type keptDoc struct {
	k    *keptFS
	size int64
	raw  []byte // a smaller document, as it is
	zst  []byte // a larger one, compressed
}

// newDoc returns where the bytes of a signed document of size bytes go.
func (k *keptFS) newDoc(size int64) *keptDoc {
	d := &keptDoc{k: k, size: size}
	if size < minCompressedDocument {
		d.raw = make([]byte, 0, size)
	}
	return d
}

// Write keeps p: copied, or compressed as a frame of its own.
func (d *keptDoc) Write(p []byte) (int, error) {
	if d.raw != nil {
		d.raw = append(d.raw, p...)
	} else {
		d.zst = d.k.enc.EncodeAll(p, d.zst)
	}
	return len(p), nil
}

// keep records the document under name once all its bytes were written.
func (d *keptDoc) keep(name string) {
	k := d.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if d.raw != nil {
		k.MemFS.Add(name, d.size, d.raw)
		return
	}
	k.packed[name] = packedDocument{size: d.size, zst: bytes.Clone(d.zst)}
}

// Forget drops the bytes kept of rel (see bundle.MemFS.Forget).
func (k *keptFS) Forget(rel string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.packed, rel)
	k.MemFS.Forget(rel)
}

// close lets the encoder go; it is called once the archive has gone by, as
// its buffers are no longer needed.
func (k *keptFS) close() {
	if k.enc != nil {
		k.enc.Close()
		k.enc = nil
	}
}

// Open returns the bytes of a kept document, decompressed as they are read,
// or what the MemFS returns for any other file.
func (k *keptFS) Open(rel string) (io.ReadCloser, error) {
	k.mu.Lock()
	p, ok := k.packed[rel]
	k.mu.Unlock()
	if !ok {
		return k.MemFS.Open(rel)
	}
	dec, err := zstd.NewReader(bytes.NewReader(p.zst),
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(chunkSize),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return &keptFile{name: rel, doc: p, dec: dec}, nil
}

// keptFile is an opened compressed document. It tells its size, so that a
// reader can size its buffer at once, and can seek back to its start (a
// signature check per trusted key reads it again).
type keptFile struct {
	name string
	doc  packedDocument
	dec  *zstd.Decoder
	read int64
}

// Read decompresses the next bytes.
func (f *keptFile) Read(p []byte) (int, error) {
	n, err := f.dec.Read(p)
	f.read += int64(n)
	if errors.Is(err, io.EOF) && f.read != f.doc.size {
		err = fmt.Errorf("%s: kept document decompressed to %d bytes, not %d", f.name, f.read, f.doc.size)
	}
	return n, err
}

// Seek supports going back to the start only.
func (f *keptFile) Seek(offset int64, whence int) (int64, error) {
	if offset != 0 || whence != io.SeekStart {
		return f.read, fmt.Errorf("%s: seek other than to the start", f.name)
	}
	f.read = 0
	return 0, f.dec.Reset(bytes.NewReader(f.doc.zst))
}

// Close releases the decoder.
func (f *keptFile) Close() error {
	f.dec.Close()
	return nil
}

// Stat describes the document as a regular file.
func (f *keptFile) Stat() (fs.FileInfo, error) {
	return keptInfo{name: f.name, size: f.doc.size}, nil
}

// keptInfo is the fs.FileInfo of a keptFile.
type keptInfo struct {
	name string
	size int64
}

func (i keptInfo) Name() string       { return i.name }
func (i keptInfo) Size() int64        { return i.size }
func (i keptInfo) Mode() fs.FileMode  { return 0o444 }
func (i keptInfo) ModTime() time.Time { return time.Time{} }
func (i keptInfo) IsDir() bool        { return false }
func (i keptInfo) Sys() any           { return nil }
