package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// bundle.json and its signatures, rotation statements) are kept in memory.
// The checks are those of bundle.VerifyDir.
func Verify(ctx context.Context, src *Source, opts bundle.VerifyOptions) (*bundle.Report, error) {
	memfs := bundle.NewMemFS()
	digests := map[string]bundle.Digest{}
	buf := make([]byte, readBufferSize)
	var keptTotal int64
	err := src.Walk(ctx, Limits{}, func(e EntryInfo, r io.Reader) error {
		if e.IsDir {
			return nil
		}
		h := sha256.New()
		var kept []byte
		var n int64
		if bundle.KeepContents(e.Name) {
			if e.Size > MaxKeptDocument {
				return fmt.Errorf("%w: %s: %d bytes, more than the %d a signed document may have", failure.ErrVerification, e.Name, e.Size, int64(MaxKeptDocument))
			}
			if keptTotal += e.Size; keptTotal > MaxKeptTotal {
				return &EntryError{Name: e.Name, Reason: fmt.Sprintf("signed documents add up to more than %d bytes", int64(MaxKeptTotal)), Err: ErrLimitExceeded}
			}
			data := make([]byte, e.Size)
			if _, err := io.ReadFull(io.TeeReader(r, h), data); err != nil {
				return err
			}
			kept, n = data, int64(len(data))
		} else {
			var err error
			n, err = io.CopyBuffer(h, r, buf)
			if err != nil {
				return err
			}
		}
		if opts.Progress != nil {
			opts.Progress(n)
		}
		if kept == nil {
			kept = nilIfAbsent(kept, bundle.KeepContents(e.Name))
		}
		memfs.Add(e.Name, n, kept)
		digests[e.Name] = bundle.Digest{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
		if e.Name == bundle.ManifestFile {
			var m struct {
				Files []bundle.FileEntry `json:"files"`
			}
			if json.Unmarshal(kept, &m) == nil {
				return src.SetLimits(BundleLimits(m.Files, n))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	opts.Digests = digests
	return bundle.VerifyFS(ctx, memfs, src.Path, opts)
}

// nilIfAbsent keeps an empty document as a non-nil empty slice.
func nilIfAbsent(b []byte, keep bool) []byte {
	if keep && b == nil {
		return []byte{}
	}
	return b
}
