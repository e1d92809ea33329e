package importer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"

	"github.com/stellaops/stellaops-cli/internal/crashpoint"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// kernelCopyMin is the size from which copyKernel copies a file: below it
// the extra system calls cost more than they save.
const kernelCopyMin = 1 << 20

// kernelCopySegment is how much copyKernel copies, then hashes, at a time.
const kernelCopySegment = 8 << 20

// copyKernel copies in to out inside the kernel (copy_file_range, through
// (*os.File).ReadFrom) a segment at a time, and hashes each segment read
// back from out: what is hashed is what was staged. Writing from a buffer
// in user space cost this machine two to four times the system time of
// the kernel's copy (bench/RESULTS.md), while reading back from the page
// cache is cheap. buf is the read-back buffer; out must be open for reading
// and writing.
func copyKernel(ctx context.Context, out, in *os.File, buf []byte, progress func(int64)) (bundle.Digest, error) {
	h := sha256.New()
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return bundle.Digest{}, failure.Classify(failure.ErrInterrupted, err)
		}
		n, err := out.ReadFrom(io.LimitReader(in, kernelCopySegment))
		if err != nil {
			return bundle.Digest{}, err
		}
		if n == 0 {
			break
		}
		for read := int64(0); read < n; {
			k, err := out.ReadAt(buf[:min(int64(len(buf)), n-read)], off+read)
			h.Write(buf[:k])
			read += int64(k)
			if err != nil && !(err == io.EOF && read == n) {
				return bundle.Digest{}, err
			}
		}
		if progress != nil {
			progress(n)
		}
		if off == 0 {
			crashpoint.HitContext(ctx, cpMidCopy)
		}
		off += n
	}
	return bundle.Digest{Size: off, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
