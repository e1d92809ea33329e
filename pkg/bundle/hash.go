package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"sync"
)

// copyBuf is the buffer size for streaming copies and hashing.
const copyBuf = 1 << 20

// bufPool recycles copy buffers: allocating (and zeroing) a fresh one per
// file made a verify of many small files spend most of its time in the
// allocator and the garbage collector instead of in SHA-256.
var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// copyPooled copies src to dst through a pooled buffer. src is wrapped so
// that io.CopyBuffer uses the buffer: *os.File implements io.WriterTo, and
// its generic WriteTo would allocate a 32 KiB buffer per call instead.
func copyPooled(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(dst, struct{ io.Reader }{src}, *bp)
}

// hashWriter counts and hashes what passes through it.
type hashWriter struct {
	w    io.Writer
	h    hash.Hash
	n    int64
	tick func(int64)
}

func newHashWriter(w io.Writer, tick func(int64)) *hashWriter {
	return &hashWriter{w: w, h: sha256.New(), tick: tick}
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	if hw.tick != nil {
		hw.tick(int64(n))
	}
	return n, err
}

func (hw *hashWriter) sum() string { return hex.EncodeToString(hw.h.Sum(nil)) }

// Digest is the size and hex SHA-256 of a file.
type Digest struct {
	Size   int64
	SHA256 string
}

// HashFile streams path through SHA-256.
func HashFile(path string, tick func(int64)) (Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	return HashReader(f, tick)
}

// HashReader streams r through SHA-256.
func HashReader(r io.Reader, tick func(int64)) (Digest, error) {
	hw := newHashWriter(io.Discard, tick)
	if _, err := copyPooled(hw, r); err != nil {
		return Digest{}, err
	}
	return Digest{Size: hw.n, SHA256: hw.sum()}, nil
}

// HashBytes returns the digest of b.
func HashBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest{Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}
