package smoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// errStalled ends a request that made no progress for the timeout.
var errStalled = errors.New("no progress")

// open sends a GET for u and returns the response with a body that fails
// once no bytes arrive for p.timeout. withAuth adds the credentials. The
// caller closes the body.
func (p *prober) open(ctx context.Context, u *url.URL, withAuth bool, header http.Header) (*http.Response, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(p.timeout, func() { cancel(errStalled) })
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		timer.Stop()
		cancel(nil)
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", "stellaops-cli-mirror-smoke")
	if withAuth {
		switch {
		case p.opts.Token != "":
			req.Header.Set("Authorization", "Bearer "+p.opts.Token)
		case p.opts.User != "":
			req.SetBasicAuth(p.opts.User, p.opts.Password)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		timer.Stop()
		stalled := errors.Is(context.Cause(rctx), errStalled)
		cancel(nil)
		if stalled {
			return nil, fmt.Errorf("GET %s: no response within %s", u, p.timeout)
		}
		return nil, err
	}
	timer.Reset(p.timeout)
	resp.Body = &guardedBody{rc: resp.Body, ctx: rctx, cancel: cancel, timer: timer, timeout: p.timeout}
	return resp, nil
}

// guardedBody restarts the stall timer on every read.
type guardedBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
}

func (g *guardedBody) Read(b []byte) (int, error) {
	n, err := g.rc.Read(b)
	if err != nil && err != io.EOF && errors.Is(context.Cause(g.ctx), errStalled) {
		return n, fmt.Errorf("no data received for %s", g.timeout)
	}
	g.timer.Reset(g.timeout)
	return n, err
}

func (g *guardedBody) Close() error {
	g.timer.Stop()
	err := g.rc.Close()
	g.cancel(nil)
	return err
}

// errTooLarge reports a body over its bound.
var errTooLarge = errors.New("response too large")

// readBounded reads at most limit bytes of r.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return b, err
	}
	if int64(len(b)) > limit {
		return b[:limit], fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	return b, nil
}

// drain reads and discards up to limit bytes so the connection can be reused.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, MaxDocumentBytes)) }

// httpStatus describes a response for a detail: the status code and text,
// the headers that explain it, and for errors the start of the body.
func httpStatus(resp *http.Response, body []byte) string {
	s := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if v := headerValue(resp.Header, "WWW-Authenticate"); v != "" {
			s += fmt.Sprintf(", WWW-Authenticate: %s", v)
		}
	case http.StatusTooManyRequests:
		if v := resp.Header.Get("Retry-After"); v != "" {
			s += fmt.Sprintf(", Retry-After: %s", v)
		}
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if v := resp.Header.Get("Location"); v != "" {
			s += fmt.Sprintf(", Location: %s", v)
		}
	}
	if ex := excerpt(body); ex != "" && resp.StatusCode >= 300 {
		s += fmt.Sprintf(", body: %q", ex)
	}
	return s
}

// excerpt returns the start of a body as printable text.
func excerpt(body []byte) string {
	const max = 200
	if !utf8.Valid(body) {
		if len(body) == 0 {
			return ""
		}
		return fmt.Sprintf("(%d bytes, not text)", len(body))
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// headerValue joins the values of a header as HTTP does for lists.
func headerValue(h http.Header, name string) string {
	return strings.Join(h.Values(name), ", ")
}

// checkCacheControl compares the Cache-Control header with want. A value
// with the same directives in another order or spacing is a warning.
func checkCacheControl(o *outcome, h http.Header, want string) {
	got := strings.TrimSpace(headerValue(h, "Cache-Control"))
	switch {
	case got == want:
	case got == "":
		o.fail("Cache-Control: want %q, got none", want)
	case directives(got) == directives(want):
		o.warn("Cache-Control %q is equivalent to, but not exactly, %q", got, want)
	default:
		o.fail("Cache-Control: want %q, got %q", want, got)
	}
}

func directives(v string) string {
	var ds []string
	for _, d := range strings.Split(v, ",") {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			ds = append(ds, strings.ReplaceAll(d, " ", ""))
		}
	}
	sort.Strings(ds)
	return strings.Join(ds, ",")
}

// normDigest lowercases a SHA-256 digest and drops a "sha256:" prefix.
func normDigest(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.TrimPrefix(s, "sha256:")
}

// validDigest reports whether s (normalised) is 64 hex digits.
func validDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// resolve resolves rel against base and refuses results on another origin,
// so that credentials never leave the mirror.
func (p *prober) resolve(base *url.URL, rel string) (*url.URL, error) {
	r, err := url.Parse(rel)
	if err != nil {
		return nil, fmt.Errorf("invalid path %q: %v", rel, err)
	}
	u := base.ResolveReference(r)
	if u.Scheme != p.base.Scheme || u.Host != p.base.Host {
		return nil, fmt.Errorf("path %q points outside the mirror (%s://%s)", rel, p.base.Scheme, p.base.Host)
	}
	return u, nil
}

// escapePath escapes each segment of a slash-separated path and refuses
// empty, "." and ".." segments.
func escapePath(p string) (string, error) {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("unsafe path %q", p)
		}
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/"), nil
}
