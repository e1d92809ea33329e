package mirror

import (
	"context"
	"os"
	"time"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/archive"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// isFolder reports whether the bundle path names a folder (else an archive,
// a split set or standard input).
func isFolder(path string) bool {
	if path == "-" {
		return false
	}
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// partsVerifier checks a split set's parts manifest envelope against roots.
func partsVerifier(roots *trust.Roots, now time.Time) archive.VerifyFunc {
	return func(payloadType string, envelope []byte) ([]byte, error) {
		if roots == nil {
			return nil, errNoRootsForParts
		}
		res, err := sign.VerifyDSSE(envelope, payloadType, roots, now, 1)
		if err != nil {
			return nil, err
		}
		return res.Payload, nil
	}
}

var errNoRootsForParts = failureUsage("a split set's parts manifest is checked against the trust roots: pass --trust-roots")

// openArchive opens an archive, a split set or standard input.
func openArchive(ctx context.Context, io *iostreams.IO, path string, roots *trust.Roots, now time.Time) (*archive.Source, error) {
	return archive.Open(ctx, path, io.In, archive.OpenOptions{VerifyParts: partsVerifier(roots, now)})
}

// verifyPath verifies a bundle folder or archive.
func verifyPath(ctx context.Context, io *iostreams.IO, path string, opts bundle.VerifyOptions) (*bundle.Report, error) {
	if isFolder(path) {
		return bundle.VerifyDir(ctx, path, opts)
	}
	src, err := openArchive(ctx, io, path, opts.Roots, opts.Now)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return archive.Verify(ctx, src, opts)
}

// stagerFor returns how to copy the bundle at path into a staging folder:
// a folder is copied file by file, an archive extracted through os.Root.
func stagerFor(ctx context.Context, io *iostreams.IO, path string, roots *trust.Roots, now time.Time) (importer.Stager, func(), error) {
	if isFolder(path) || (path != "-" && !archive.IsArchivePath(path) && !exists(path)) {
		return importer.FolderStager(path), func() {}, nil
	}
	src, err := openArchive(ctx, io, path, roots, now)
	if err != nil {
		return nil, nil, err
	}
	stage := func(ctx context.Context, dir string, progress func(int64)) (*bundle.DigestSet, error) {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		files, err := archive.Extract(ctx, src, root, archive.Limits{})
		if err != nil {
			return nil, err
		}
		out := bundle.NewDigestSet(len(files))
		for _, f := range files {
			out.AddDigest(f.Path, bundle.Digest{Size: f.Size, SHA256: f.SHA256})
			if progress != nil {
				progress(f.Size)
			}
		}
		return out, nil
	}
	return stage, func() { src.Close() }, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func humanBytes(n int64) string { return bundle.HumanBytes(n) }
