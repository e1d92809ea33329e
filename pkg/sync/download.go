package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// maxETagSize bounds a recorded ETag.
const maxETagSize = 1024

// maxDeadlineSeconds caps a file's deadline (about 30 days), so that the
// arithmetic cannot overflow for huge files at a tiny minimum throughput.
const maxDeadlineSeconds = 30 * 24 * 3600

// errResumeMismatch: a resumed download's whole-file digest is wrong, so
// the kept bytes may be the bad ones; the file restarts from zero.
var errResumeMismatch = errors.New("resumed download does not match; restarting from zero")

// download fetches f into its partial file, resuming what an earlier
// attempt or run left, and verifies the whole file's size and SHA-256. It
// reports whether bytes of an earlier attempt were kept.
func (st *stager) download(ctx context.Context, f bundle.FileEntry) (bool, error) {
	s := st.r.s
	u := s.fileURL(st.exportID, f.Path)
	rt := &retrier{s: s, url: u, retries: &st.r.retries}
	restarted := false
	for {
		resumed, err := st.attempt(ctx, f)
		if err == nil {
			return resumed, nil
		}
		if errors.Is(err, errResumeMismatch) && !restarted {
			restarted = true
			st.removePartial(f.Path)
			continue
		}
		if errors.Is(err, bundle.ErrDigestMismatch) || errors.Is(err, bundle.ErrSizeMismatch) {
			st.removePartial(f.Path)
		}
		if err := rt.next(ctx, err); err != nil {
			return false, err
		}
	}
}

// attempt makes one request for f. With a partial file it asks for the
// rest (Range, and If-Range with the ETag the partial came with); a 200
// answer starts over. It never reads more than f.Size bytes of body plus
// one byte to detect a longer one.
func (st *stager) attempt(ctx context.Context, f bundle.FileEntry) (bool, error) {
	r, s := st.r, st.r.s
	u := s.fileURL(st.exportID, f.Path)
	name := u.Redacted()
	pp := st.partialPath(f.Path)
	if err := st.state.MkdirAll(path.Dir(pp), 0o755); err != nil {
		return false, final(fmt.Errorf("create partial folder for %s: %w", f.Path, err))
	}

	var have int64
	if fi, err := st.state.Lstat(pp); err == nil {
		if fi.Mode().IsRegular() && fi.Size() < f.Size && linkCount(fi) == 1 {
			have = fi.Size()
		} else {
			st.removePartial(f.Path)
		}
	}
	hdr := http.Header{}
	if have > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		if et := st.readETag(f.Path); et != "" {
			hdr.Set("If-Range", et)
		}
	}

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	deadline := s.opts.Timeout + time.Duration(min(float64(f.Size-have)/float64(s.opts.MinThroughput), maxDeadlineSeconds)*float64(time.Second))
	timer := time.AfterFunc(deadline, func() {
		cancel(fmt.Errorf("%w: %s: %s", ErrStalled, errDeadline, deadline.Round(time.Second)))
	})
	defer timer.Stop()

	resp, err := s.get(rctx, &r.c, u, hdr)
	if err != nil {
		return false, causeOf(ctx, rctx, fmt.Errorf("GET %s: %w", name, err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if have > 0 {
			st.removePartial(f.Path)
			have = 0
		}
	case http.StatusPartialContent:
		start, end, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case have == 0 || !ok:
			st.removePartial(f.Path)
			return false, fmt.Errorf("GET %s: unexpected 206 with Content-Range %q", name, resp.Header.Get("Content-Range"))
		case total >= 0 && total != f.Size:
			return false, fmt.Errorf("GET %s: %w: the server has %d bytes, mirror.json lists %d", name, bundle.ErrSizeMismatch, total, f.Size)
		case start != have || end != f.Size-1:
			st.removePartial(f.Path)
			return false, fmt.Errorf("GET %s: asked for bytes %d-, got %d-%d; restarting the file", name, have, start, end)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		st.removePartial(f.Path)
		return false, fmt.Errorf("GET %s: HTTP 416 for bytes %d-; restarting the file", name, have)
	default:
		return false, s.statusError(resp, u)
	}
	want := f.Size - have
	if resp.ContentLength >= 0 && resp.ContentLength != want {
		return false, fmt.Errorf("GET %s: %w: Content-Length %d, mirror.json lists %d (nothing read)", name, bundle.ErrSizeMismatch, resp.ContentLength, want)
	}
	etag := resp.Header.Get("ETag")
	if strings.HasPrefix(etag, "W/") || len(etag) > maxETagSize {
		etag = ""
	}

	h := sha256.New()
	var out *os.File
	if have > 0 {
		if err := st.hashPrefix(pp, have, h); err != nil {
			st.removePartial(f.Path)
			return false, fmt.Errorf("resume %s: %w", f.Path, err)
		}
		out, err = st.state.OpenFile(pp, os.O_WRONLY, 0o644)
		if err == nil {
			_, err = out.Seek(have, io.SeekStart)
		}
	} else {
		st.removePartial(f.Path)
		out, err = st.state.OpenFile(pp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		if out != nil {
			out.Close()
		}
		return false, final(fmt.Errorf("write partial %s: %w", pp, err))
	}

	window := s.opts.StallWindow
	minBytes := max(int64(float64(s.opts.MinThroughput)*window.Seconds()), 1)
	wd := watch(resp.Body, window, minBytes, cancel)
	n, rerr := st.copyBody(rctx, out, h, wd, want)
	wd.Stop()
	r.count(func() { r.dlBytes += n })
	if rerr == nil && n == want {
		var one [1]byte
		if k, _ := io.ReadFull(wd, one[:]); k > 0 {
			out.Close()
			return false, fmt.Errorf("GET %s: %w: the body is longer than the %d bytes mirror.json lists", name, bundle.ErrSizeMismatch, f.Size)
		}
	}
	if rerr == nil && n == want {
		rerr = out.Sync()
	}
	if cerr := out.Close(); rerr == nil {
		rerr = cerr
	}
	if rerr != nil || n < want {
		if have+n > 0 && etag != "" {
			st.writeETag(f.Path, etag)
		}
		if rerr == nil {
			rerr = io.ErrUnexpectedEOF
		}
		var fe *finalError
		if errors.As(rerr, &fe) {
			return false, rerr
		}
		return false, causeOf(ctx, rctx, fmt.Errorf("GET %s: %w after %d of %d bytes", name, rerr, have+n, f.Size))
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		if have > 0 {
			return false, fmt.Errorf("%s: %w", f.Path, errResumeMismatch)
		}
		return false, fmt.Errorf("GET %s: %w: sha256 %s, mirror.json lists %s", name, bundle.ErrDigestMismatch, sum, f.SHA256)
	}
	_ = st.state.Remove(pp + etagSuffix)
	return have > 0, nil
}

// copyBody copies at most want bytes of body into out and h.
func (st *stager) copyBody(ctx context.Context, out io.Writer, h io.Writer, body io.Reader, want int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for n < want {
		chunk := buf
		if rest := want - n; rest < int64(len(chunk)) {
			chunk = chunk[:rest]
		}
		k, err := body.Read(chunk)
		if k > 0 {
			if _, werr := out.Write(chunk[:k]); werr != nil {
				return n, final(fmt.Errorf("write partial: %w", werr))
			}
			h.Write(chunk[:k])
			n += int64(k)
			st.progress(int64(k))
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if ctx.Err() != nil {
			return n, context.Cause(ctx)
		}
	}
	return n, nil
}

// hashPrefix feeds the first n bytes of the partial file into h.
func (st *stager) hashPrefix(pp string, n int64, h io.Writer) error {
	in, err := st.state.Open(pp)
	if err != nil {
		return err
	}
	defer in.Close()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	k, err := io.CopyBuffer(h, io.LimitReader(in, n), *bp)
	if err == nil && k != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (st *stager) readETag(rel string) string {
	f, err := st.state.Open(st.partialPath(rel) + etagSuffix)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxETagSize+1))
	if err != nil || len(b) > maxETagSize {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (st *stager) writeETag(rel, etag string) {
	_ = st.state.WriteFile(st.partialPath(rel)+etagSuffix, []byte(etag+"\n"), 0o644)
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*", -1).
func parseContentRange(v string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err error
	if start, err = strconv.ParseInt(a, 10, 64); err != nil || start < 0 {
		return 0, 0, 0, false
	}
	if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= end {
			return 0, 0, 0, false
		}
	}
	return start, end, total, true
}
