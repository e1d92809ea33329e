package sync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	gosync "sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// errDeadline ends a download that outlived its deadline.
var errDeadline = errors.New("file deadline exceeded")

// gate holds every request back while the upstream's Retry-After runs.
type gate struct {
	mu    gosync.Mutex
	until time.Time
}

func (g *gate) hold(t time.Time) {
	g.mu.Lock()
	if t.After(g.until) {
		g.until = t
	}
	g.mu.Unlock()
}

func (g *gate) wait(ctx context.Context, s *Syncer) error {
	g.mu.Lock()
	until := g.until
	g.mu.Unlock()
	if d := until.Sub(s.opts.Clock()); d > 0 {
		return s.opts.Sleep(ctx, d)
	}
	return ctx.Err()
}

// counter counts the requests of one run.
type counter struct{ n atomic.Int64 }

// get sends one GET for u with the credentials and hdr, after any
// Retry-After in force. Errors are left unclassified: ctx may be a
// request's own context, cancelled by a deadline or the watchdog, so the
// caller decides with causeOf whether the run was interrupted.
func (s *Syncer) get(ctx context.Context, c *counter, u *url.URL, hdr http.Header) (*http.Response, error) {
	if err := s.gate.wait(ctx, s); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", s.opts.UserAgent)
	req.Header.Set("Accept-Encoding", "identity")
	switch {
	case s.opts.Token != "":
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	case s.opts.User != "":
		req.SetBasicAuth(s.opts.User, s.opts.Password)
	}
	if c != nil {
		c.n.Add(1)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	return resp, nil
}

// statusError builds the error for an unexpected status and closes the
// body. A 429 becomes a *rateLimited for the retrier.
func (s *Syncer) statusError(resp *http.Response, u *url.URL) error {
	defer resp.Body.Close()
	e := &StatusError{URL: u.Redacted(), Code: resp.StatusCode, Status: resp.Status}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		drain(resp.Body)
		ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), s.opts.Clock())
		return &rateLimited{status: e, after: ra, known: ok}
	case http.StatusUnauthorized:
		if v := resp.Header.Get("WWW-Authenticate"); v != "" {
			e.Detail = "WWW-Authenticate: " + v
		}
		drain(resp.Body)
		return failure.WithHint(e, "set STELLAOPS_MIRROR_TOKEN, or --user with STELLAOPS_MIRROR_PASSWORD, to credentials the upstream accepts")
	case http.StatusForbidden:
		drain(resp.Body)
		return failure.WithHint(e, "the credentials are valid but lack the scope concelier.mirror.read for this domain")
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	e.Detail = excerpt(b)
	return e
}

// rateLimited is a 429 seen by one attempt.
type rateLimited struct {
	status *StatusError
	after  time.Duration
	known  bool
}

func (r *rateLimited) Error() string { return r.status.Error() }

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// retrier decides, after a failed attempt, whether to try again.
type retrier struct {
	s        *Syncer
	url      *url.URL
	attempts int
	waits    int
	retries  *atomic.Int64
}

// next waits as the failure asks and returns nil to try again, or the
// error to give up with.
func (r *retrier) next(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return interrupted(ctx, err)
	}
	s := r.s
	var rl *rateLimited
	if errors.As(err, &rl) {
		r.waits++
		now := s.opts.Clock()
		if rl.known && rl.after > s.opts.MaxRetryAfter {
			return failure.WithHint(&RateLimitError{URL: rl.status.URL, RetryAfter: rl.after, RetryAt: now.Add(rl.after), MaxWait: s.opts.MaxRetryAfter},
				fmt.Sprintf("run again after %s; the next cron run picks up where this one stopped", now.Add(rl.after).UTC().Format(time.RFC3339)))
		}
		if r.waits > s.opts.Attempts {
			return &RateLimitError{URL: rl.status.URL, MaxWait: s.opts.MaxRetryAfter}
		}
		d := rl.after
		if !rl.known {
			d = s.backoff(r.waits)
		}
		s.gate.hold(now.Add(d))
		r.count()
		return nil
	}
	if !retryable(err) {
		return err
	}
	r.attempts++
	if r.attempts >= s.opts.Attempts {
		return fmt.Errorf("%w (gave up after %d attempts)", err, r.attempts)
	}
	r.count()
	if werr := s.opts.Sleep(ctx, s.backoff(r.attempts)); werr != nil {
		return interrupted(ctx, err)
	}
	return nil
}

func (r *retrier) count() {
	if r.retries != nil {
		r.retries.Add(1)
	}
}

// backoff is exponential with jitter: half fixed, half random.
func (s *Syncer) backoff(n int) time.Duration {
	d := s.opts.BackoffBase
	for i := 1; i < n && d < s.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.opts.BackoffMax)
	return d/2 + time.Duration(s.opts.Rand()*float64(d/2))
}

// retryable reports whether another attempt may succeed: transport errors,
// stalls, 5xx and 408. Verification, policy and usage failures, and other
// HTTP statuses, are final.
func retryable(err error) bool {
	if errors.Is(err, failure.ErrVerification) || errors.Is(err, failure.ErrPolicy) ||
		errors.Is(err, failure.ErrUsage) || errors.Is(err, failure.ErrInterrupted) || errors.Is(err, failure.ErrBusy) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500 || se.Code == http.StatusRequestTimeout
	}
	var fe *finalError
	return !errors.As(err, &fe)
}

// finalError marks an error that no retry can fix.
type finalError struct{ err error }

func (f *finalError) Error() string { return f.err.Error() }
func (f *finalError) Unwrap() error { return f.err }

func final(err error) error { return &finalError{err: err} }

// watchdog counts the bytes read through it; a ticker cancels the request
// when a window passes with fewer than the minimum.
type watchdog struct {
	r    io.Reader
	n    atomic.Int64
	stop chan struct{}
	once gosync.Once
}

// watch starts the watchdog over body: every window, at least min bytes
// must have arrived, else cancel(ErrStalled).
func watch(body io.Reader, window time.Duration, minBytes int64, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{r: body, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(window)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				cur := w.n.Load()
				if cur-last < minBytes {
					cancel(fmt.Errorf("%w: %d bytes in %s, below the minimum of %d", ErrStalled, cur-last, window, minBytes))
					return
				}
				last = cur
			}
		}
	}()
	return w
}

func (w *watchdog) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.n.Add(int64(n))
	return n, err
}

func (w *watchdog) Stop() { w.once.Do(func() { close(w.stop) }) }

// readSmall GETs u and returns the body, which must be at most limit
// bytes. It retries as the retrier allows.
func (s *Syncer) readSmall(ctx context.Context, c *counter, retries *atomic.Int64, u *url.URL, limit int64) ([]byte, *http.Response, error) {
	r := &retrier{s: s, url: u, retries: retries}
	for {
		body, resp, err := s.readSmallOnce(ctx, c, u, limit, nil)
		if err == nil {
			return body, resp, nil
		}
		if err := r.next(ctx, err); err != nil {
			return nil, nil, err
		}
	}
}

// readSmallOnce makes one attempt. A 304 is returned with a nil body.
func (s *Syncer) readSmallOnce(ctx context.Context, c *counter, u *url.URL, limit int64, hdr http.Header) ([]byte, *http.Response, error) {
	rctx, cancel := context.WithTimeoutCause(ctx, s.opts.Timeout, fmt.Errorf("%w: no complete response within %s", ErrStalled, s.opts.Timeout))
	defer cancel()
	resp, err := s.get(rctx, c, u, hdr)
	if err != nil {
		return nil, nil, causeOf(ctx, rctx, fmt.Errorf("GET %s: %w", u.Redacted(), err))
	}
	if resp.StatusCode == http.StatusNotModified && hdr.Get("If-None-Match") != "" {
		resp.Body.Close()
		return nil, resp, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, s.statusError(resp, u)
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return nil, nil, final(fmt.Errorf("GET %s: %d bytes, more than the %d this tool reads", u.Redacted(), resp.ContentLength, limit))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, causeOf(ctx, rctx, fmt.Errorf("GET %s: %w", u.Redacted(), err))
	}
	if int64(len(b)) > limit {
		return nil, nil, final(fmt.Errorf("GET %s: more than the %d bytes this tool reads", u.Redacted(), limit))
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, nil, fmt.Errorf("GET %s: %w: %d of %d bytes", u.Redacted(), io.ErrUnexpectedEOF, len(b), resp.ContentLength)
	}
	return b, resp, nil
}

// causeOf replaces a context error with the reason the request's context
// was cancelled (a stall, a deadline), unless the run itself was cancelled.
func causeOf(parent, rctx context.Context, err error) error {
	if parent.Err() != nil {
		return interrupted(parent, err)
	}
	if c := context.Cause(rctx); c != nil && rctx.Err() != nil {
		return fmt.Errorf("%v: %w", err, c)
	}
	return err
}

func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10)) }

// excerpt returns the start of an error body as one printable line.
func excerpt(b []byte) string {
	if !utf8.Valid(b) {
		return ""
	}
	out := make([]rune, 0, len(b))
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		out = append(out, r)
	}
	s := string(out)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// readLimited reads r, which must hold at most limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than the %d bytes this tool reads", limit)
	}
	return b, nil
}
