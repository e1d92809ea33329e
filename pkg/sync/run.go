package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
)

// States of a run, as reported by Result.State.
const (
	StateSynced   = "synced"
	StateUpToDate = "up-to-date"
	StateFailed   = "failed"
)

// Result describes one sync run, also a failed one.
type Result struct {
	SchemaVersion int    `json:"schemaVersion"`
	State         string `json:"state"`
	From          string `json:"from"`
	ExportRoot    string `json:"exportRoot"`
	ExportID      string `json:"exportId,omitempty"`
	Sequence      int64  `json:"sequence,omitempty"`
	// Previous is the export latest pointed at before the run.
	Previous string `json:"previous,omitempty"`
	// NotModified says the upstream answered the conditional index
	// request with 304.
	NotModified bool  `json:"notModified"`
	Files       int   `json:"files"`
	Bytes       int64 `json:"bytes"`
	// Downloaded files came over HTTP (in this run or, for Resumed ones,
	// partly in an earlier one); Copied files came from an earlier export
	// of the root.
	Downloaded        int       `json:"downloaded"`
	DownloadedBytes   int64     `json:"downloadedBytes"`
	Copied            int       `json:"copied"`
	CopiedBytes       int64     `json:"copiedBytes"`
	Resumed           int       `json:"resumed"`
	Requests          int64     `json:"requests"`
	Retries           int64     `json:"retries"`
	SignerKeyIDs      []string  `json:"signerKeyIds"`
	SignatureProvider string    `json:"signatureProvider,omitempty"`
	Pruned            []string  `json:"pruned"`
	TrustStoreUpdated bool      `json:"trustStoreUpdated"`
	Downgrade         bool      `json:"downgrade"`
	StartedAt         time.Time `json:"startedAt"`
	DurationSeconds   float64   `json:"durationSeconds"`
	// RetryAt is when a rate-limited run may try again.
	RetryAt *time.Time `json:"retryAt,omitempty"`
	// Report is the verification report of a failed import.
	Report *bundle.Report `json:"report,omitempty"`
}

// run is the state of one Sync.
type run struct {
	s       *Syncer
	res     *Result
	now     time.Time
	c       counter
	retries atomic.Int64

	idx     *bundle.Index
	idxBody []byte
	idxETag string

	mu         gosync.Mutex
	downloaded int
	dlBytes    int64
	copied     int
	cpBytes    int64
	resumed    int
}

// Sync brings the export root up to date with the upstream. The Result
// is never nil.
func (s *Syncer) Sync(ctx context.Context) (*Result, error) {
	started := s.opts.Clock()
	r := &run{s: s, res: &Result{
		SchemaVersion: SchemaVersion, From: s.indexURL.Redacted(), ExportRoot: s.opts.ExportRoot,
		SignerKeyIDs: []string{}, Pruned: []string{}, SignatureProvider: s.opts.SignatureProvider,
		StartedAt: started.UTC(),
	}}
	err := r.sync(ctx)
	res := r.res
	res.Requests = r.c.n.Load()
	res.Retries = r.retries.Load()
	r.mu.Lock()
	res.Downloaded, res.DownloadedBytes, res.Copied, res.CopiedBytes, res.Resumed = r.downloaded, r.dlBytes, r.copied, r.cpBytes, r.resumed
	r.mu.Unlock()
	res.DurationSeconds = s.opts.Clock().Sub(started).Seconds()
	if err != nil {
		res.State = StateFailed
		var rl *RateLimitError
		if errors.As(err, &rl) && !rl.RetryAt.IsZero() {
			t := rl.RetryAt.UTC()
			res.RetryAt = &t
		}
	}
	return res, err
}

func (r *run) sync(ctx context.Context) error {
	s := r.s
	if s.opts.ExportRoot == "" {
		return failure.Usagef("no export root")
	}
	r.now = s.opts.Now
	if r.now.IsZero() {
		r.now = s.opts.Clock()
	}
	source := s.indexURL.String()
	prev, err := readState(s.opts.ExportRoot)
	if err != nil {
		s.opts.Warn(fmt.Sprintf("ignoring the sync state: %v", err))
		prev = nil
	}
	usable := prev.usable(source, s.opts.ExportRoot)

	hdr := http.Header{}
	if usable && prev.ETag != "" {
		hdr.Set("If-None-Match", prev.ETag)
	}
	body, resp, err := r.fetchIndex(ctx, hdr)
	if err != nil {
		return err
	}
	if body == nil {
		r.res.NotModified = true
		r.upToDate(prev)
		return nil
	}
	var idx bundle.Index
	if err := strictjson.Unmarshal(body, &idx); err != nil {
		return fmt.Errorf("%s: %w: %v", s.indexURL.Redacted(), ErrBadIndex, err)
	}
	if !exportroot.ValidExportID(idx.ExportID) {
		return fmt.Errorf("%s: %w: exportId %q is not YYYYMMDDTHHMMSSZ", s.indexURL.Redacted(), ErrBadIndex, idx.ExportID)
	}
	offered := map[string]bool{}
	for _, d := range idx.Domains {
		offered[d.ID] = true
	}
	for _, d := range s.opts.Domains {
		if !offered[d] {
			return failure.WithHint(fmt.Errorf("%w: %s (export %s offers %d domain(s))", ErrUnknownDomain, d, idx.ExportID, len(idx.Domains)),
				"run 'stellaops-cli mirror sync --from URL --discover' to list the upstream's domains")
		}
	}
	r.res.ExportID = idx.ExportID
	if usable && prev.ExportID == idx.ExportID && sameFingerprint(prev.Domains, fingerprint(&idx)) {
		r.upToDate(prev)
		return nil
	}
	r.idx, r.idxBody = &idx, body
	if et := resp.Header.Get("ETag"); et != "" {
		r.idxETag = et
	}
	return r.importExport(ctx)
}

// fetchIndex GETs the index, conditionally when hdr says so. A nil body
// with no error means 304 Not Modified.
func (r *run) fetchIndex(ctx context.Context, hdr http.Header) ([]byte, *http.Response, error) {
	s := r.s
	rt := &retrier{s: s, url: s.indexURL, retries: &r.retries}
	for {
		body, resp, err := s.readSmallOnce(ctx, &r.c, s.indexURL, MaxIndexSize, hdr)
		if err == nil {
			return body, resp, nil
		}
		if err := rt.next(ctx, err); err != nil {
			return nil, nil, err
		}
	}
}

func (r *run) upToDate(prev *State) {
	r.res.State = StateUpToDate
	r.res.ExportID = prev.ExportID
	r.res.Sequence = prev.Sequence
	r.res.Previous = prev.ExportID
}

func (r *run) importExport(ctx context.Context) error {
	s := r.s
	st := &stager{r: r}
	var progress func(int64)
	if s.opts.Progress != nil {
		var mu gosync.Mutex
		progress = func(n int64) {
			mu.Lock()
			s.opts.Progress(n)
			mu.Unlock()
		}
	}
	ires, err := importer.Import(ctx, importer.Options{
		BundlePath: s.indexURL.Redacted(), Stage: st.stage, ExportRoot: s.opts.ExportRoot,
		TrustRoots: s.opts.TrustRoots, TrustRootsPath: s.opts.TrustRootsPath, ReplaceTrustRoots: s.opts.ReplaceTrustRoots,
		VerifyChecksums: s.opts.VerifyChecksums, VerifyDSSE: s.opts.VerifyDSSE, Threshold: s.opts.Threshold,
		Now: r.now, AllowDowngrade: s.opts.AllowDowngrade, Keep: s.opts.Keep, Wait: s.opts.Wait,
		Command: exportroot.CommandSync, Rotate: s.opts.Rotate, Progress: progress,
		Clock: s.opts.Clock, Warn: s.opts.Warn, Commit: r.commit,
	})
	res := r.res
	if ires != nil {
		if ires.ExportID != "" {
			res.ExportID, res.Sequence = ires.ExportID, ires.Sequence
		}
		res.Previous, res.Files, res.Bytes = ires.Previous, ires.Files, ires.Bytes
		res.TrustStoreUpdated, res.Downgrade = ires.TrustStoreUpdated, ires.Downgrade
		if ires.Pruned != nil {
			res.Pruned = ires.Pruned
		}
		if ires.Report != nil {
			if len(ires.Report.SignerKeyIDs) > 0 {
				res.SignerKeyIDs = ires.Report.SignerKeyIDs
			}
			if err != nil {
				res.Report = ires.Report
			}
		}
	}
	if err != nil {
		return err
	}
	res.State = StateSynced
	if ires.State == "already-active" {
		res.State = StateUpToDate
	}
	return nil
}

// commit runs under the export root's lock once the export is active: it
// records the upstream's fingerprint and drops the partial downloads.
func (r *run) commit(ires *importer.Result) error {
	s := r.s
	root, err := exportroot.Open(s.opts.ExportRoot)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Join(root.StateDir(), PartialDir))
	p := filepath.Join(root.ExportDir(ires.ExportID), filepath.FromSlash(bundle.IndexPath))
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("record sync state: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxIndexSize+1))
	f.Close()
	if err != nil {
		return fmt.Errorf("record sync state: read %s: %w", p, err)
	}
	var idx bundle.Index
	if err := strictjson.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("record sync state: %s: %w", p, err)
	}
	st := &State{
		SchemaVersion: SchemaVersion, Source: s.indexURL.String(),
		ExportID: ires.ExportID, Sequence: ires.Sequence, GeneratedAt: idx.GeneratedAt.UTC(),
		Domains: fingerprint(&idx), SignatureProvider: s.opts.SignatureProvider,
		SyncedAt: s.opts.Clock().UTC(),
	}
	if r.idxETag != "" && bytes.Equal(b, r.idxBody) {
		st.ETag = r.idxETag
	}
	data, err := marshalState(st)
	if err != nil {
		return err
	}
	if err := root.WriteState(StateFile, data); err != nil {
		return fmt.Errorf("record sync state: %w", err)
	}
	return nil
}

func (r *run) count(f func()) {
	r.mu.Lock()
	f()
	r.mu.Unlock()
}
