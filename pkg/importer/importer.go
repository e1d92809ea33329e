// Package importer imports a verified bundle into an export root: it copies
// the bundle into a staging folder while hashing it, verifies the staged
// copy with the bundle library, applies the rollback and expiry policy and
// activates the export atomically. Whatever fails, nothing under the export
// root changes except the import log and status.
package importer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/stellaops/stellaops-cli/internal/crashpoint"
	"github.com/stellaops/stellaops-cli/internal/faultfs"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// TrustStoreFile is the trust store's name under ROOT/.stellaops/.
const TrustStoreFile = "trust-roots.pem"

// DefaultKeep is how many exports an import keeps by default.
const DefaultKeep = 3

// Crash points of the import sequence (see internal/crashpoint).
var (
	cpAfterLock   = crashpoint.Register("import-after-lock")
	cpMidCopy     = crashpoint.Register("import-mid-copy")
	cpAfterCopy   = crashpoint.Register("import-after-copy")
	cpAfterVerify = crashpoint.Register("import-after-verify")
	cpAfterTrust  = crashpoint.Register("import-after-trust-store")
	cpAfterPrune  = crashpoint.Register("import-after-prune")
)

// Errors callers branch on.
var (
	ErrRollback         = failure.New(failure.ErrPolicy, "rollback refused")
	ErrTrustRootsDiffer = failure.New(failure.ErrUsage, "--trust-roots differs from the export root's trust store")
	ErrNoTrustRoots     = failure.New(failure.ErrUsage, "no trust roots")
	ErrExportConflict   = failure.New(failure.ErrVerification, "export id already present with other content")
)

// Stager copies a bundle into dir and returns the size and SHA-256 of every
// file it wrote, computed while writing.
type Stager func(ctx context.Context, dir string, progress func(int64)) (*bundle.DigestSet, error)

// Options configures Import.
type Options struct {
	// BundlePath names the bundle for messages and the log; Stage copies it.
	BundlePath string
	Stage      Stager
	ExportRoot string
	// TrustRoots, when set, are the roots given on the command line.
	TrustRoots        *trust.Roots
	TrustRootsPath    string
	ReplaceTrustRoots bool
	VerifyChecksums   bool
	VerifyDSSE        bool
	Threshold         int
	Now               time.Time
	AllowDowngrade    bool
	Keep              int
	Wait              time.Duration
	Command           string // "import" or "sync"
	Rotate            bundle.RotationFunc
	Progress          func(int64)
	// Clock stamps the log and status (default time.Now); Now is the
	// trusted time for validity checks.
	Clock func() time.Time
	// Warn receives warnings for the operator.
	Warn func(string)
	// Commit, when set, runs after a successful import while the lock is
	// still held (sync records its upstream fingerprint there). The export
	// is active by then, so an error is reported as a warning.
	Commit func(*Result) error
}

// Result describes a finished import.
type Result struct {
	SchemaVersion     int            `json:"schemaVersion"`
	State             string         `json:"state"` // imported, already-active, reactivated
	ExportID          string         `json:"exportId"`
	Sequence          int64          `json:"sequence"`
	Previous          string         `json:"previous,omitempty"`
	ExportRoot        string         `json:"exportRoot"`
	Files             int            `json:"files"`
	Bytes             int64          `json:"bytes"`
	Pruned            []string       `json:"pruned"`
	Cleaned           []string       `json:"cleanedStaging,omitempty"`
	TrustStoreUpdated bool           `json:"trustStoreUpdated"`
	Downgrade         bool           `json:"downgrade"`
	Report            *bundle.Report `json:"report,omitempty"`
}

// Import runs the whole import sequence. On failure the returned Result may
// still carry the verification report.
func Import(ctx context.Context, opts Options) (*Result, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Keep == 0 {
		opts.Keep = DefaultKeep
	}
	if opts.Command == "" {
		opts.Command = exportroot.CommandImport
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	res := &Result{SchemaVersion: 1, ExportRoot: opts.ExportRoot, Pruned: []string{}}
	root, err := exportroot.Open(opts.ExportRoot)
	if err != nil {
		return res, err
	}
	lock, err := root.Lock(ctx, opts.Wait, exportroot.LockInfo{Command: "stellaops-cli mirror " + opts.Command + " " + opts.BundlePath})
	if err != nil {
		if errors.Is(err, failure.ErrBusy) {
			return res, failure.WithHint(err, "wait for it to finish, or pass --wait 10m to wait for the lock")
		}
		return res, err
	}
	defer lock.Unlock()
	crashpoint.Hit(cpAfterLock)

	started := opts.Clock().UTC()
	run := &run{ctx: ctx, opts: opts, root: root, res: res, started: started}
	if cleaned, err := root.CleanStaging(); err == nil {
		res.Cleaned = cleaned
	}
	_ = root.WriteStatus(exportroot.Status{State: exportroot.StateRunning, StartedAt: &started})
	err = run.do()
	if err == nil && opts.Commit != nil {
		if cerr := opts.Commit(res); cerr != nil {
			run.warn("%v", cerr)
		}
	}
	run.finish(err)
	return res, err
}

type run struct {
	ctx       context.Context
	opts      Options
	root      *exportroot.Root
	res       *Result
	started   time.Time
	staging   string
	report    *bundle.Report
	signers   []string
	replaced  bool
	warnings  []string
	logResult string

	// The trust store as it was, restored when activation fails.
	prevTrust            []byte
	hadTrust, wroteTrust bool
}

// restoreTrust puts the trust store back after a failed activation.
func (r *run) restoreTrust() {
	if !r.wroteTrust {
		return
	}
	if r.hadTrust {
		_ = r.root.WriteState(TrustStoreFile, r.prevTrust)
	} else {
		_ = os.Remove(filepath.Join(r.root.StateDir(), TrustStoreFile))
	}
	r.res.TrustStoreUpdated = false
}

func (r *run) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.warnings = append(r.warnings, msg)
	r.opts.Warn(msg)
}

func (r *run) do() error {
	roots, err := r.trustRoots()
	if err != nil {
		return err
	}
	staging, err := r.root.NewStaging()
	if err != nil {
		return err
	}
	r.staging = staging
	defer func() {
		if r.staging != "" {
			os.RemoveAll(r.staging)
		}
	}()

	digests, err := r.opts.Stage(r.ctx, staging, r.opts.Progress)
	if err != nil {
		return err
	}
	// The copy's buffers (an archive's decompression window, the chunks in
	// flight, its table of names) are garbage now: collected before
	// verification allocates its own, the two do not add up in the peak
	// memory of the process (an 8 GiB archive peaked at 74 MiB, 61 with this).
	runtime.GC()
	crashpoint.Hit(cpAfterCopy)
	if err := r.ctx.Err(); err != nil {
		return failure.Classify(failure.ErrInterrupted, err)
	}

	report, verr := bundle.VerifyDir(r.ctx, staging, bundle.VerifyOptions{
		Roots: roots, Now: r.opts.Now, Threshold: r.opts.Threshold,
		VerifyChecksums: r.opts.VerifyChecksums, VerifyDSSE: r.opts.VerifyDSSE,
		Digests: digests, Rotate: r.opts.Rotate,
	})
	if report != nil {
		report.BundlePath = r.opts.BundlePath
		r.res.Report = report
		r.report = report
		r.signers = report.SignerKeyIDs
		r.warnings = append(r.warnings, report.Warnings...)
	}
	if verr != nil {
		return verr
	}
	crashpoint.Hit(cpAfterVerify)
	m := report.Manifest
	r.res.ExportID, r.res.Sequence = m.ExportID, m.Sequence
	r.res.Files, r.res.Bytes = report.Files, report.Bytes

	hwm, err := r.root.HighWater()
	if err != nil {
		return err
	}
	latest, _ := r.root.Latest()
	r.res.Previous = latest
	existing := r.root.ExportDir(m.ExportID)
	if _, err := os.Lstat(existing); err == nil {
		same, err := sameManifest(existing, staging)
		if err != nil {
			return err
		}
		if !same {
			return fmt.Errorf("%w: %s exists in %s with a different mirror.json", ErrExportConflict, m.ExportID, r.opts.ExportRoot)
		}
		if latest == m.ExportID {
			r.res.State = "already-active"
			r.logResult = exportroot.ResultAlreadyActive
			return r.saveTrust(report)
		}
		if m.Sequence < hwm.Sequence && !r.opts.AllowDowngrade {
			return r.rollbackErr(m, hwm)
		}
		if err := r.saveTrust(report); err != nil {
			return err
		}
		if err := r.root.RecordHighWater(m.ExportID, m.Sequence); err != nil {
			return err
		}
		if err := r.root.SetLatest(m.ExportID); err != nil {
			return err
		}
		r.res.State = "reactivated"
		r.res.Downgrade = m.Sequence < hwm.Sequence
		r.logResult = exportroot.ResultImported
		return nil
	}
	if hwm.ExportID != "" && m.Sequence <= hwm.Sequence {
		if !r.opts.AllowDowngrade {
			return r.rollbackErr(m, hwm)
		}
		r.res.Downgrade = true
		r.warn("--allow-downgrade: activating sequence %d below the high-water mark %d (export %s)", m.Sequence, hwm.Sequence, hwm.ExportID)
	}
	if err := r.saveTrust(report); err != nil {
		return err
	}
	crashpoint.Hit(cpAfterTrust)
	if err := r.root.Activate(staging, m.ExportID, m.Sequence); err != nil {
		r.restoreTrust()
		return err
	}
	r.staging = ""
	r.res.State = "imported"
	r.logResult = exportroot.ResultImported
	pruned, err := r.root.Prune(r.opts.Keep)
	if err != nil {
		r.warn("prune: %v", err)
	}
	if pruned != nil {
		r.res.Pruned = pruned
	}
	crashpoint.Hit(cpAfterPrune)
	return nil
}

func (r *run) rollbackErr(m *bundle.Manifest, hwm exportroot.HighWaterMark) error {
	return failure.WithHint(fmt.Errorf("%w: %s has sequence %d, not above the high-water mark %d (export %s)",
		ErrRollback, m.ExportID, m.Sequence, hwm.Sequence, hwm.ExportID),
		"an older bundle may be a replay; pass --allow-downgrade only if you mean to go back (the import log records it)")
}

// trustRoots decides which roots verify this import: the store, the flag,
// or both when the flag adds nothing the store lacks.
func (r *run) trustRoots() (*trust.Roots, error) {
	stored, err := r.loadStore()
	if err != nil {
		return nil, err
	}
	flag := r.opts.TrustRoots
	switch {
	case flag == nil && stored == nil:
		return nil, failure.WithHint(fmt.Errorf("%w: pass --trust-roots (the export root %s has no trust store yet)", ErrNoTrustRoots, r.opts.ExportRoot),
			"the first import records the trust roots; later imports may omit the flag")
	case flag == nil:
		return stored, nil
	case stored == nil:
		r.replaced = true
		return flag, nil
	case r.opts.ReplaceTrustRoots:
		r.replaced = true
		r.warn("--replace-trust-roots: the trust store will be replaced by %s", r.opts.TrustRootsPath)
		return flag, nil
	}
	// The store says which keys are trusted; --trust-roots may still
	// narrow a key it names: a revocation or a validity window given there
	// applies to this import (and is recorded in the store if it succeeds),
	// so an operator who marks a key revoked is not overruled by an older
	// store.
	roots := stored.Clone()
	for _, k := range flag.Keys {
		i := slices.IndexFunc(roots.Keys, func(s trust.Key) bool { return s.DerivedID == k.DerivedID })
		if i < 0 {
			return nil, failure.WithHint(fmt.Errorf("%w: key %s from %s is not in %s", ErrTrustRootsDiffer, k.ID, r.opts.TrustRootsPath,
				filepath.Join(r.root.StateDir(), TrustStoreFile)),
				"pass --replace-trust-roots to replace the trust store (the import log records it), or omit --trust-roots to use the store")
		}
		narrowKey(&roots.Keys[i], k)
	}
	return roots, nil
}

// narrowKey applies the revocation and validity window of k to s where
// they trust the key less.
func narrowKey(s *trust.Key, k trust.Key) {
	if !k.Revoked.IsZero() && (s.Revoked.IsZero() || k.Revoked.Before(s.Revoked)) {
		s.Revoked = k.Revoked
	}
	if k.NotBefore.After(s.NotBefore) {
		s.NotBefore = k.NotBefore
	}
	if !k.NotAfter.IsZero() && (s.NotAfter.IsZero() || k.NotAfter.Before(s.NotAfter)) {
		s.NotAfter = k.NotAfter
	}
}

func (r *run) loadStore() (*trust.Roots, error) {
	data, err := r.root.ReadState(TrustStoreFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	roots, err := trust.Parse(data, filepath.Join(r.root.StateDir(), TrustStoreFile))
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("trust store %s: %w", filepath.Join(r.root.StateDir(), TrustStoreFile), err))
	}
	return roots, nil
}

// saveTrust records the roots used (including keys learned from the bundle's
// rotation statements) when they differ from the store.
func (r *run) saveTrust(report *bundle.Report) error {
	roots := report.Roots
	if roots == nil {
		return nil
	}
	if r.replaced && r.opts.TrustRoots != nil && len(report.RotationNotes) == 0 {
		roots = r.opts.TrustRoots
	}
	data, err := roots.MarshalPEM()
	if err != nil {
		return err
	}
	old, err := r.root.ReadState(TrustStoreFile)
	if err == nil && bytes.Equal(old, data) {
		return nil
	}
	r.prevTrust, r.hadTrust = old, err == nil
	if err := r.root.WriteState(TrustStoreFile, data); err != nil {
		return err
	}
	r.wroteTrust = true
	r.res.TrustStoreUpdated = true
	return nil
}

func (r *run) finish(err error) {
	finished := r.opts.Clock().UTC()
	st := exportroot.Status{State: exportroot.StateSucceeded, StartedAt: &r.started, FinishedAt: &finished,
		Warnings: r.warnings, Errors: []string{}}
	entry := exportroot.LogEntry{
		Time: finished, Command: r.opts.Command, User: currentUser(),
		ExportID: r.res.ExportID, Sequence: r.res.Sequence,
		SignerKeyIDs: r.signers, AllowDowngrade: r.res.Downgrade, ReplacedTrustRoots: r.replaced && err == nil,
		Result: r.logResult,
	}
	if r.report != nil {
		entry.ManifestSHA256 = r.report.ManifestSHA256
		if entry.ExportID == "" {
			entry.ExportID = r.report.ExportID
			entry.Sequence = r.report.Sequence
		}
	}
	if host, herr := os.Hostname(); herr == nil {
		entry.Host = host
	}
	if err != nil {
		st.State = exportroot.StateFailed
		st.Errors = []string{err.Error()}
		entry.Result = exportroot.ResultFailed
		if errors.Is(err, failure.ErrPolicy) || errors.Is(err, failure.ErrVerification) {
			entry.Result = exportroot.ResultRefused
		}
		entry.Reason = err.Error()
		entry.ReplacedTrustRoots = false
	} else {
		st.ExportsImported = 1
		if r.res.State == "already-active" {
			st.ExportsImported = 0
			entry.Reason = "export already active"
		}
		st.TotalBytes = r.res.Bytes
	}
	_ = r.root.AppendLog(entry)
	_ = r.root.WriteStatus(st)
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprint(os.Getuid())
}

func sameManifest(a, b string) (bool, error) {
	da, err := bundle.HashFile(filepath.Join(a, bundle.ManifestFile), nil)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", filepath.Join(a, bundle.ManifestFile), err)
	}
	db, err := bundle.HashFile(filepath.Join(b, bundle.ManifestFile), nil)
	if err != nil {
		return false, err
	}
	return da == db, nil
}

// FolderStager copies the bundle folder src into the staging folder,
// hashing every file as it is written. Only regular files and folders are
// accepted; names must be safe and must not collide on case-insensitive or
// normalising file systems. Every name is checked, and every folder created,
// before the first file is copied; files are then copied by several workers
// at once (copying and hashing one file at a time left a core idle).
func FolderStager(src string) Stager {
	return func(ctx context.Context, dir string, progress func(int64)) (*bundle.DigestSet, error) {
		st, err := os.Stat(src)
		if err != nil {
			return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("bundle %s: %w", src, err))
		}
		if !st.IsDir() {
			return nil, failure.Usagef("bundle %s: not a folder or a supported archive", src)
		}
		if resolved, err := filepath.EvalSymlinks(src); err == nil {
			src = resolved
		}
		plan, err := planStage(ctx, src)
		if err != nil {
			return nil, err
		}
		dst, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer dst.Close()
		for _, d := range plan.dirs {
			if err := dst.Mkdir(d, 0o755); err != nil {
				return nil, err
			}
		}
		return copyFiles(ctx, dst, src, plan.files, progress)
	}
}

// stagePlan is what FolderStager found in the bundle folder: its folders in
// the order they are to be created, and its files.
type stagePlan struct {
	dirs  []string
	files []stageJob
}

// planStage walks the bundle folder src and checks every name: a safe path,
// a folder or a regular file, no collision with an earlier name on
// case-insensitive or normalising file systems. Of several problems, the
// one met first in the walk's order is returned.
func planStage(ctx context.Context, src string) (*stagePlan, error) {
	plan := &stagePlan{}
	var names []string
	// collision returns the first collision among the first n names.
	collision := func(n int) error {
		first, second, found := bundle.FoldCollision(n, func(i int) string { return names[i] })
		if !found {
			return nil
		}
		return fmt.Errorf("%w: %q and %q collide on case-insensitive or normalising file systems", bundle.ErrUnsafePath, names[first], names[second])
	}
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read bundle: %w", err)
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if err := bundle.CheckPath(rel); err != nil {
			return cmp.Or(collision(len(names)), err)
		}
		names = append(names, rel)
		switch {
		case e.IsDir():
			plan.dirs = append(plan.dirs, rel)
			return nil
		case !e.Type().IsRegular():
			err := fmt.Errorf("%w: %s: not a regular file (%s)", bundle.ErrUnsafePath, rel, e.Type())
			return cmp.Or(collision(len(names)), err)
		}
		if err := ctx.Err(); err != nil {
			return failure.Classify(failure.ErrInterrupted, err)
		}
		var size int64
		if info, err := e.Info(); err == nil {
			size = info.Size()
		}
		plan.files = append(plan.files, stageJob{rel: rel, size: size})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := collision(len(names)); err != nil {
		return nil, err
	}
	return plan, nil
}

// stageJob is one file for copyFiles, by its slash path below the bundle.
type stageJob struct {
	rel  string
	size int64
}

// stageWorkers bounds the files copied at once.
const stageWorkers = 4

// copyFiles copies files from the folder src into dst with up to
// min(GOMAXPROCS, stageWorkers) workers, largest first so that the workers
// finish together, and returns their digests. The first error stops the
// copy and is returned.
//
// The smallest file is copied alone before the workers start, so that the
// import-mid-copy crash point is reached once, by one goroutine, as in a
// sequential copy: a pause there stops the whole copy until the signal.
func copyFiles(ctx context.Context, dst *os.Root, src string, files []stageJob, progress func(int64)) (*bundle.DigestSet, error) {
	sort.SliceStable(files, func(i, j int) bool { return files[i].size > files[j].size })
	if n := len(files); n > 1 {
		smallest := files[n-1]
		copy(files[1:], files[:n-1])
		files[0] = smallest
	}
	if progress != nil {
		var pmu sync.Mutex
		inner := progress
		progress = func(n int64) {
			pmu.Lock()
			inner(n)
			pmu.Unlock()
		}
	}
	out := bundle.NewDigestSet(len(files))
	var (
		mu       sync.Mutex
		firstErr error
		next     int
		wg       sync.WaitGroup
	)
	take := func() (stageJob, bool) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next == len(files) {
			return stageJob{}, false
		}
		next++
		return files[next-1], true
	}
	if len(files) > 0 {
		j := files[0]
		next = 1
		d, err := copyFile(ctx, dst, j.rel, sourcePath(src, j.rel), make([]byte, 1<<20), progress)
		if err != nil {
			return nil, err
		}
		out.AddDigest(j.rel, d)
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), stageWorkers, len(files)))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for {
				j, ok := take()
				if !ok {
					return
				}
				err := ctx.Err()
				if err != nil {
					err = failure.Classify(failure.ErrInterrupted, err)
				}
				var d bundle.Digest
				if err == nil {
					d, err = copyFile(ctx, dst, j.rel, sourcePath(src, j.rel), buf, progress)
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					out.AddDigest(j.rel, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// sourcePath returns the path of the bundle file rel below the folder src.
func sourcePath(src, rel string) string { return filepath.Join(src, filepath.FromSlash(rel)) }

func copyFile(ctx context.Context, dst *os.Root, rel, src string, buf []byte, progress func(int64)) (bundle.Digest, error) {
	in, err := os.Open(src)
	if err != nil {
		return bundle.Digest{}, fmt.Errorf("read %s: %w", src, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return bundle.Digest{}, fmt.Errorf("read %s: %w", src, err)
	}
	// A large file is copied inside the kernel and hashed read back from
	// the staged copy (copyKernel), unless write faults are being injected.
	kernel := st.Size() >= kernelCopyMin && !faultfs.Active()
	mode := os.O_WRONLY
	if kernel {
		mode = os.O_RDWR
	}
	out, err := dst.OpenFile(rel, mode|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return bundle.Digest{}, fmt.Errorf("stage %s: %w", rel, err)
	}
	var d bundle.Digest
	if kernel {
		d, err = copyKernel(ctx, out, in, buf, progress)
	} else {
		d, err = CopyHashing(ctx, faultfs.WrapWriter(out), in, buf, progress)
	}
	if err != nil {
		out.Close()
		return d, fmt.Errorf("stage %s: %w", rel, err)
	}
	startWriteback(out)
	if err := out.Close(); err != nil {
		return d, fmt.Errorf("stage %s: %w", rel, err)
	}
	return d, nil
}

// CopyHashing copies src to dst in one pass, returning the size and SHA-256
// of what was written. It checks ctx between chunks.
func CopyHashing(ctx context.Context, dst io.Writer, src io.Reader, buf []byte, progress func(int64)) (bundle.Digest, error) {
	h := sha256.New()
	var n int64
	mid := false
	for {
		if err := ctx.Err(); err != nil {
			return bundle.Digest{}, failure.Classify(failure.ErrInterrupted, err)
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := dst.Write(buf[:k]); err != nil {
				return bundle.Digest{}, err
			}
			h.Write(buf[:k])
			n += int64(k)
			if progress != nil {
				progress(int64(k))
			}
			if !mid {
				mid = true
				crashpoint.HitContext(ctx, cpMidCopy)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return bundle.Digest{}, rerr
		}
	}
	return bundle.Digest{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
