package archive

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// MaxKeptDocument bounds each signed document kept in memory while an
// archive streams past (see bundle.KeepContents), and MaxKeptTotal all of
// them together: the sizes an archive declares are not authenticated
// until the walk is over, so they cannot be what bounds the memory used.
const (
	MaxKeptDocument = 512 << 20
	MaxKeptTotal    = 1 << 30
)

// Verify checks the bundle inside src in one streaming pass, without
// extracting it: every entry is hashed as it goes by, and only the signed
// documents (mirror.json, the envelopes, SHA256SUMS, index and manifests,
// bundle.json and its signatures, rotation statements) are kept in memory,
// the larger ones compressed (keptFS). The checks are those of
// bundle.VerifyDir. A worker hashes the entries while the archive is
// decompressed.
func Verify(ctx context.Context, src *Source, opts bundle.VerifyOptions) (*bundle.Report, error) {
	kept, err := newKeptFS()
	if err != nil {
		return nil, err
	}
	defer kept.close()
	v := &verifyWalk{src: src, progress: opts.Progress, fs: kept}
	v.pipe = newPipeline(v, 1, verifyChunks)
	err = src.Walk(ctx, Limits{}, v.entry)
	if werr := v.pipe.wait(); werr != nil {
		err = werr
	}
	kept.close()
	if err != nil {
		return nil, err
	}
	opts.Digests = kept.digests
	return bundle.VerifyFS(ctx, v.fs, src.Path, opts)
}

// verifyChunks bounds the chunks in flight between decompression and the
// hashing worker (2 MiB).
const verifyChunks = 16

// verifyWalk is the state of Verify's pass over the archive.
type verifyWalk struct {
	src       *Source
	pipe      *pipeline
	progress  func(int64)
	keptTotal int64
	fs        *keptFS
}

// entry is the Walk function: every file goes to the worker, which hashes
// it and keeps the signed documents.
func (v *verifyWalk) entry(e EntryInfo, r io.Reader) error {
	if e.IsDir {
		return nil
	}
	job := &fileJob{name: e.Name, size: e.Size}
	if bundle.KeepContents(e.Name) {
		if err := v.checkKept(e); err != nil {
			return err
		}
		job.doc = v.fs.newDoc(e.Size)
		if e.Name == bundle.ManifestFile {
			job.done = make(chan struct{})
		}
	}
	n, err := v.pipe.sendFile(job, r)
	if err != nil {
		return err
	}
	if n != e.Size {
		return fmt.Errorf("%w: truncated: entry %s has %d of %d bytes", ErrCorrupt, quoteName(e.Name), n, e.Size)
	}
	if v.progress != nil {
		v.progress(n)
	}
	if job.done != nil {
		return v.limitsFromManifest(job)
	}
	return nil
}

// checkKept bounds a signed document by MaxKeptDocument and all of them by
// MaxKeptTotal.
func (v *verifyWalk) checkKept(e EntryInfo) error {
	if e.Size > MaxKeptDocument {
		return fmt.Errorf("%w: %s: %d bytes, more than the %d a signed document may have", failure.ErrVerification, e.Name, e.Size, int64(MaxKeptDocument))
	}
	if v.keptTotal += e.Size; v.keptTotal > MaxKeptTotal {
		return &EntryError{Name: e.Name, Reason: fmt.Sprintf("signed documents add up to more than %d bytes", int64(MaxKeptTotal)), Err: ErrLimitExceeded}
	}
	return nil
}

// limitsFromManifest lowers the limits to what mirror.json lists, once the
// worker has kept it. A manifest that does not parse changes nothing: the
// verifier reports it.
func (v *verifyWalk) limitsFromManifest(job *fileJob) error {
	if err := v.pipe.await(job); err != nil {
		return err
	}
	f, err := v.fs.Open(job.name)
	if err != nil {
		return err
	}
	defer f.Close()
	if l, ok := manifestLimits(f, job.size, true); ok {
		v.fs.digests.Grow(int(min(l.MaxEntries, 1<<20)))
		return v.src.SetLimits(l)
	}
	return nil
}

// open returns where a signed document's bytes are kept; other files are
// only hashed.
func (v *verifyWalk) open(job *fileJob) (io.Writer, error) {
	if job.doc != nil {
		return job.doc, nil
	}
	return nil, nil
}

// finish records the entry's digest, and keeps a signed document.
func (v *verifyWalk) finish(job *fileJob, sum [sha256.Size]byte) error {
	if job.doc != nil {
		job.doc.keep(job.name)
	}
	v.fs.digests.Add(job.name, job.size, &sum)
	return nil
}

func (v *verifyWalk) release(*fileJob) {}
