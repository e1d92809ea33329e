package sync

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// emptySHA256 is the SHA-256 of no bytes.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// copyBufSize is the buffer of one file copy or download.
const copyBufSize = 1 << 20

var bufPool = gosync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// localSource is a file of an earlier export with the bytes a new file needs.
type localSource struct {
	root *os.Root
	rel  string
	size int64
}

// stager brings the upstream export into the staging folder. It runs
// inside importer.Import, under the export root's lock.
type stager struct {
	r        *run
	exportID string
	state    *os.Root // ROOT/.stellaops
	staging  string   // staging folder, relative to state
	partial  string   // sync-partial/<exportId>, relative to state
	known    map[string][]byte
	local    map[string][]localSource
	progress func(int64)

	mu      gosync.Mutex
	digests map[string]bundle.Digest
}

// stage is the importer.Stager of a sync.
func (st *stager) stage(ctx context.Context, dir string, progress func(int64)) (*bundle.DigestSet, error) {
	r, s := st.r, st.r.s
	st.progress = progress
	if st.progress == nil {
		st.progress = func(int64) {}
	}
	st.exportID = r.idx.ExportID
	st.known = map[string][]byte{}
	st.digests = map[string]bundle.Digest{}
	root, err := exportroot.Open(s.opts.ExportRoot)
	if err != nil {
		return nil, err
	}
	staging, err := filepath.Rel(root.StateDir(), dir)
	if err != nil || strings.HasPrefix(staging, "..") {
		return nil, fmt.Errorf("staging folder %s is not below %s", dir, root.StateDir())
	}
	st.staging = filepath.ToSlash(staging)
	st.partial = PartialDir + "/" + st.exportID
	st.state, err = os.OpenRoot(root.StateDir())
	if err != nil {
		return nil, err
	}
	defer st.state.Close()

	// The manifest and its signature, from the export's immutable route.
	mURL := s.fileURL(st.exportID, bundle.ManifestFile)
	mBytes, _, err := s.readSmall(ctx, &r.c, &r.retries, mURL, bundle.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	envURL := s.fileURL(st.exportID, bundle.EnvelopeFile)
	envBytes, _, err := s.readSmall(ctx, &r.c, &r.retries, envURL, sign.MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	roots, err := st.trustRoots(root)
	if err != nil {
		return nil, err
	}
	if s.opts.Rotate != nil {
		if roots, err = st.rotate(ctx, mBytes, roots); err != nil {
			return nil, err
		}
	}
	// The signature over the exact bytes, before the file list is trusted.
	if s.opts.VerifyDSSE {
		if err := st.verifyEnvelope(envURL.Redacted(), envBytes, mBytes, roots); err != nil {
			return nil, err
		}
	}
	m, err := st.checkManifest(mURL.Redacted(), mBytes)
	if err != nil {
		return nil, err
	}
	if err := st.checkPolicy(root, m); err != nil {
		return nil, err
	}
	// The index as served is the export's mirror/index.json when the digests agree.
	if f, ok := m.File(bundle.IndexPath); ok {
		if d := bundle.HashBytes(r.idxBody); f.SHA256 == d.SHA256 && f.Size == d.Size {
			st.known[bundle.IndexPath] = r.idxBody
		}
	}
	if err := st.findLocal(root, m); err != nil {
		return nil, err
	}
	defer func() {
		for _, srcs := range st.local {
			for _, l := range srcs {
				l.root.Close()
			}
		}
	}()
	if err := st.fetchAll(ctx, m); err != nil {
		return nil, err
	}

	// The top-level files: the verified bytes, and SHA256SUMS as export writes it.
	mDigest, envDigest := bundle.HashBytes(mBytes), bundle.HashBytes(envBytes)
	sums := append(append([]bundle.FileEntry(nil), m.Files...),
		bundle.FileEntry{Path: bundle.ManifestFile, Size: mDigest.Size, SHA256: mDigest.SHA256},
		bundle.FileEntry{Path: bundle.EnvelopeFile, Size: envDigest.Size, SHA256: envDigest.SHA256})
	for _, f := range []struct {
		name string
		data []byte
	}{{bundle.ManifestFile, mBytes}, {bundle.EnvelopeFile, envBytes}, {bundle.ChecksumsFile, bundle.FormatChecksums(sums)}} {
		if err := st.writeStaged(f.name, f.data); err != nil {
			return nil, err
		}
	}
	out := bundle.NewDigestSet(len(st.digests))
	for rel, d := range st.digests {
		out.AddDigest(rel, d)
	}
	return out, nil
}

// trustRoots returns the roots the envelope is checked against before
// anything is downloaded: the flag's, else the root's store.
func (st *stager) trustRoots(root *exportroot.Root) (*trust.Roots, error) {
	if st.r.s.opts.TrustRoots != nil {
		return st.r.s.opts.TrustRoots, nil
	}
	data, err := root.ReadState(importer.TrustStoreFile)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("%w: %v", importer.ErrNoTrustRoots, err))
	}
	p := filepath.Join(root.StateDir(), importer.TrustStoreFile)
	roots, err := trust.Parse(data, p)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("trust store %s: %w", p, err))
	}
	return roots, nil
}

// rotate applies the rotation statements the export carries under keys/,
// as import does, so that an export signed by a rotated-in key verifies.
// The statements authenticate themselves; the manifest is not trusted yet.
func (st *stager) rotate(ctx context.Context, mBytes []byte, roots *trust.Roots) (*trust.Roots, error) {
	r, s := st.r, st.r.s
	var m bundle.Manifest
	if err := json.Unmarshal(mBytes, &m); err != nil {
		return roots, nil // reported once the signature is checked
	}
	statements := map[string][]byte{}
	for _, f := range m.Files {
		if !strings.HasPrefix(f.Path, bundle.KeysDir+"/") || bundle.CheckPath(f.Path) != nil || f.Size > sign.MaxEnvelopeSize {
			continue
		}
		b, _, err := s.readSmall(ctx, &r.c, &r.retries, s.fileURL(st.exportID, f.Path), f.Size)
		if err != nil {
			return nil, err
		}
		statements[f.Path] = b
		st.known[f.Path] = b
	}
	if len(statements) == 0 {
		return roots, nil
	}
	next, _, err := s.opts.Rotate(roots.Clone(), statements, r.now)
	if err != nil {
		return roots, nil // import reports it
	}
	return next, nil
}

func (st *stager) verifyEnvelope(name string, envBytes, mBytes []byte, roots *trust.Roots) error {
	s := st.r.s
	res, err := sign.VerifyDSSE(envBytes, bundle.PayloadType, roots, st.r.now, s.opts.Threshold)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if !bytes.Equal(res.Payload, mBytes) {
		return fmt.Errorf("%s: %w: the envelope's payload is not the bytes of mirror.json", name, bundle.ErrMalformed)
	}
	if kid := s.opts.KeyID; kid != "" {
		ok := false
		for _, k := range res.Accepted {
			ok = ok || k.Matches(kid)
		}
		if !ok {
			return fmt.Errorf("%s: %w: mirror.json is not signed by the required key %s (signed by %s)",
				name, sign.ErrUntrustedKey, kid, strings.Join(res.KeyIDs(), ", "))
		}
	}
	st.r.res.SignerKeyIDs = res.KeyIDs()
	return nil
}

// checkManifest parses the authenticated manifest and checks what the
// download relies on: it names the export the index announced, and every
// path is safe to create.
func (st *stager) checkManifest(name string, mBytes []byte) (*bundle.Manifest, error) {
	var m bundle.Manifest
	if err := strictjson.Unmarshal(mBytes, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, bundle.ErrMalformed, err)
	}
	if m.ExportID != st.exportID {
		return nil, fmt.Errorf("%s: %w: the manifest is export %q, the index announced %s", name, ErrMixedExport, m.ExportID, st.exportID)
	}
	folded := map[string]string{}
	for _, f := range m.Files {
		if err := bundle.CheckPath(f.Path); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		switch f.Path {
		case bundle.ManifestFile, bundle.EnvelopeFile, bundle.ChecksumsFile:
			return nil, fmt.Errorf("%s: %w: lists %s", name, bundle.ErrMalformed, f.Path)
		}
		key := bundle.FoldPath(f.Path)
		if other, dup := folded[key]; dup {
			return nil, fmt.Errorf("%s: %w: %q and %q collide", name, bundle.ErrUnsafePath, other, f.Path)
		}
		folded[key] = f.Path
		if _, err := hex.DecodeString(f.SHA256); err != nil || len(f.SHA256) != 64 || strings.ToLower(f.SHA256) != f.SHA256 || f.Size < 0 {
			return nil, fmt.Errorf("%s: %w: entry %q: size or sha256 malformed", name, bundle.ErrMalformed, f.Path)
		}
	}
	return &m, nil
}

// checkPolicy refuses, before downloading, what import would refuse after:
// an expired or not yet valid export, and a rollback.
func (st *stager) checkPolicy(root *exportroot.Root, m *bundle.Manifest) error {
	s, now := st.r.s, st.r.now
	switch {
	case m.GeneratedAt.After(now.Add(bundle.ClockSkew)):
		return fmt.Errorf("%s: %w: generated at %s, after the trusted time %s", m.ExportID, bundle.ErrNotYetValid,
			m.GeneratedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt):
		return failure.WithHint(fmt.Errorf("%s: %w: expired at %s (trusted time %s)", m.ExportID, bundle.ErrExpired,
			m.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)),
			"the upstream serves a stale export; check that its exports are refreshed")
	}
	if _, err := os.Lstat(root.ExportDir(m.ExportID)); err == nil {
		return nil // import decides: already active, or reactivated
	}
	hwm, err := root.HighWater()
	if err != nil {
		return err
	}
	if hwm.ExportID != "" && m.Sequence <= hwm.Sequence && !s.opts.AllowDowngrade {
		return failure.WithHint(fmt.Errorf("%w: the upstream's export %s has sequence %d, not above the high-water mark %d (export %s)",
			importer.ErrRollback, m.ExportID, m.Sequence, hwm.Sequence, hwm.ExportID),
			"the upstream went back to an older export, which may be a replay; pass --allow-downgrade only if you mean to go back (the import log records it)")
	}
	return nil
}

// findLocal indexes the files of the root's exports by SHA-256, newest
// export first, for the files the new export needs.
func (st *stager) findLocal(root *exportroot.Root, m *bundle.Manifest) error {
	need := map[string]bool{}
	for _, f := range m.Files {
		if f.Size > 0 {
			need[f.SHA256] = true
		}
	}
	st.local = map[string][]localSource{}
	ids, err := root.Exports()
	if err != nil {
		return nil
	}
	for i := len(ids) - 1; i >= 0; i-- {
		er, err := os.OpenRoot(root.ExportDir(ids[i]))
		if err != nil {
			continue
		}
		used := false
		if old, err := readManifest(er); err == nil {
			for _, f := range old.Files {
				if need[f.SHA256] && bundle.CheckPath(f.Path) == nil {
					st.local[f.SHA256] = append(st.local[f.SHA256], localSource{root: er, rel: f.Path, size: f.Size})
					used = true
				}
			}
		}
		if !used {
			er.Close()
		}
	}
	return nil
}

func readManifest(er *os.Root) (*bundle.Manifest, error) {
	f, err := er.Open(bundle.ManifestFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := sign.ReadAllLimited(f, bundle.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	var m bundle.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// fetchAll brings in every listed file with Concurrency workers, largest
// first. The first failure stops the others.
func (st *stager) fetchAll(ctx context.Context, m *bundle.Manifest) error {
	files := append([]bundle.FileEntry(nil), m.Files...)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Size > files[j].Size })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan bundle.FileEntry)
	var (
		wg       gosync.WaitGroup
		errMu    gosync.Mutex
		firstErr error
	)
	for range min(st.r.s.opts.Concurrency, max(len(files), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if err := st.fetchFile(ctx, f); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					errMu.Unlock()
				}
			}
		}()
	}
	parent := ctx
feed:
	for _, f := range files {
		select {
		case jobs <- f:
		case <-parent.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// fetchFile puts one listed file into the staging folder: from bytes
// already in hand, a complete earlier download, an earlier export, or the
// network, in that order. Every source is hashed on the way.
func (st *stager) fetchFile(ctx context.Context, f bundle.FileEntry) error {
	r := st.r
	if b, ok := st.known[f.Path]; ok {
		if d := bundle.HashBytes(b); d.SHA256 == f.SHA256 && d.Size == f.Size {
			r.count(func() { r.downloaded++ })
			return st.writeStaged(f.Path, b)
		}
	}
	if f.Size == 0 && f.SHA256 == emptySHA256 {
		r.count(func() { r.downloaded++ })
		return st.writeStaged(f.Path, nil)
	}
	pp := st.partialPath(f.Path)
	if fi, err := st.state.Lstat(pp); err == nil {
		switch {
		case fi.Mode().IsRegular() && fi.Size() == f.Size:
			d, err := st.hashState(pp)
			if err == nil && d.SHA256 == f.SHA256 {
				if err := st.link(pp, f); err != nil {
					return err
				}
				r.count(func() { r.downloaded++; r.resumed++ })
				return nil
			}
			st.removePartial(f.Path)
		case !fi.Mode().IsRegular() || fi.Size() > f.Size:
			st.removePartial(f.Path)
		}
	}
	for _, src := range st.local[f.SHA256] {
		if src.size != f.Size {
			continue
		}
		if ok, err := st.copyLocal(ctx, src, f); err != nil {
			return err
		} else if ok {
			r.count(func() { r.copied++; r.cpBytes += f.Size })
			return nil
		}
	}
	resumed, err := st.download(ctx, f)
	if err != nil {
		return err
	}
	if err := st.link(pp, f); err != nil {
		return err
	}
	r.count(func() {
		r.downloaded++
		if resumed {
			r.resumed++
		}
	})
	return nil
}

func (st *stager) partialPath(rel string) string { return st.partial + "/" + rel + PartialSuffix }
func (st *stager) stagedPath(rel string) string  { return st.staging + "/" + rel }

func (st *stager) removePartial(rel string) {
	_ = st.state.Remove(st.partialPath(rel))
	_ = st.state.Remove(st.partialPath(rel) + etagSuffix)
}

func (st *stager) record(rel string, d bundle.Digest) {
	st.mu.Lock()
	st.digests[rel] = d
	st.mu.Unlock()
}

// writeStaged writes data as the staged file rel.
func (st *stager) writeStaged(rel string, data []byte) error {
	p := st.stagedPath(rel)
	if err := st.state.MkdirAll(path.Dir(p), 0o755); err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	out, err := st.state.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	if _, err := out.Write(data); err != nil {
		out.Close()
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	st.progress(int64(len(data)))
	st.record(rel, bundle.HashBytes(data))
	return nil
}

// link places the verified download pp as the staged file f. The partial
// stays until the sync succeeds, so a failed import loses no download.
// Where hard links are not possible, the file is copied and hashed again.
func (st *stager) link(pp string, f bundle.FileEntry) error {
	dst := st.stagedPath(f.Path)
	if err := st.state.MkdirAll(path.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("stage %s: %w", f.Path, err)
	}
	if err := st.state.Link(pp, dst); err == nil {
		st.record(f.Path, bundle.Digest{Size: f.Size, SHA256: f.SHA256})
		return nil
	}
	in, err := st.state.Open(pp)
	if err != nil {
		return fmt.Errorf("stage %s: %w", f.Path, err)
	}
	defer in.Close()
	d, err := st.copyInto(context.Background(), in, f.Path, nil)
	if err != nil {
		return err
	}
	if d.SHA256 != f.SHA256 || d.Size != f.Size {
		return fmt.Errorf("stage %s: %w: the download changed on disk", f.Path, bundle.ErrDigestMismatch)
	}
	return nil
}

// copyLocal copies an earlier export's file, hashing it; false when its
// bytes turn out not to be the ones listed (the staged copy is removed).
func (st *stager) copyLocal(ctx context.Context, src localSource, f bundle.FileEntry) (bool, error) {
	in, err := src.root.Open(src.rel)
	if err != nil {
		return false, nil
	}
	defer in.Close()
	d, err := st.copyInto(ctx, in, f.Path, st.progress)
	if err != nil {
		_ = st.state.Remove(st.stagedPath(f.Path))
		if ctx.Err() != nil {
			return false, interrupted(ctx, err)
		}
		return false, nil
	}
	if d.SHA256 != f.SHA256 || d.Size != f.Size {
		_ = st.state.Remove(st.stagedPath(f.Path))
		st.mu.Lock()
		delete(st.digests, f.Path)
		st.mu.Unlock()
		return false, nil
	}
	return true, nil
}

// copyInto writes in to the staged file rel, hashing while writing.
func (st *stager) copyInto(ctx context.Context, in io.Reader, rel string, progress func(int64)) (bundle.Digest, error) {
	p := st.stagedPath(rel)
	if err := st.state.MkdirAll(path.Dir(p), 0o755); err != nil {
		return bundle.Digest{}, fmt.Errorf("stage %s: %w", rel, err)
	}
	out, err := st.state.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return bundle.Digest{}, fmt.Errorf("stage %s: %w", rel, err)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	d, err := importer.CopyHashing(ctx, out, in, *bp, progress)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return d, fmt.Errorf("stage %s: %w", rel, err)
	}
	st.record(rel, d)
	return d, nil
}

// hashState hashes a file below the state folder.
func (st *stager) hashState(rel string) (bundle.Digest, error) {
	f, err := st.state.Open(rel)
	if err != nil {
		return bundle.Digest{}, err
	}
	defer f.Close()
	return bundle.HashReader(f, nil)
}
