// Package sync is the HTTP connector of "mirror sync": it pulls the active
// export of an upstream mirror (a "mirror serve", or any server laid out as
// CONTRACT.md §3 describes) into a local export root, verifies it and
// activates it through the same code as "mirror import".
//
// A run costs one conditional request when the upstream is unchanged. When
// it changed, the run fetches the export's mirror.json and DSSE envelope
// from the immutable /concelier/exports/{exportId}/ routes, verifies the
// signature before it trusts the file list, then brings in every listed
// file: copied from an earlier export of the root when one holds the same
// bytes, else downloaded into a partial file under
// ROOT/.stellaops/sync-partial/ that a later run resumes with Range and
// If-Range. Every read is bounded by the size the signed manifest lists.
package sync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Defaults and limits.
const (
	SchemaVersion = 1

	DefaultIndexPath     = "/concelier/exports/index.json"
	DefaultTimeout       = 30 * time.Second
	MinTimeout           = 5 * time.Second
	MaxTimeout           = 300 * time.Second
	DefaultConcurrency   = 4
	MaxConcurrency       = 32
	DefaultAttempts      = 5
	DefaultMinThroughput = 16 << 10 // bytes per second
	DefaultMaxRetryAfter = 5 * time.Minute
	DefaultBackoffBase   = time.Second
	DefaultBackoffMax    = 30 * time.Second

	// MaxIndexSize bounds index.json.
	MaxIndexSize = 16 << 20

	// StateFile is the fingerprint of the last synced upstream, under
	// ROOT/.stellaops/.
	StateFile = "sync-state.json"
	// PartialDir holds interrupted downloads under ROOT/.stellaops/:
	// sync-partial/<exportId>/<path>.partial.
	PartialDir = "sync-partial"
	// PartialSuffix ends the name of a download in progress.
	PartialSuffix = ".partial"
	// etagSuffix ends the name of the file that records a partial
	// download's ETag, for If-Range.
	etagSuffix = ".etag"
)

// Errors callers branch on.
var (
	// ErrMixedExport: the upstream's index and the signed manifest name
	// different exports (a mix-and-match of two exports). Exit 2.
	ErrMixedExport = failure.New(failure.ErrVerification, "index and manifest from different exports")
	// ErrStalled: a download made less progress than the minimum
	// throughput, or outlived its deadline. Retried, then exit 1.
	ErrStalled = errors.New("download stalled")
	// ErrUnknownDomain: a domain asked for is not in the upstream's index.
	ErrUnknownDomain = errors.New("domain not offered by the upstream")
	// ErrBadIndex: the upstream's index.json is not a mirror index.
	ErrBadIndex = errors.New("not a mirror index")
)

// StatusError is an HTTP response with a status the connector does not
// accept. 5xx and 408 are retried; other codes end the run (exit 1).
type StatusError struct {
	URL    string
	Code   int
	Status string
	// Detail is the start of the body, or the header that explains it.
	Detail string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("GET %s: HTTP %s", e.URL, e.Status)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// RateLimitError reports a 429 whose Retry-After is longer than the run
// waits (Options.MaxRetryAfter), or repeated 429s. Exit 1.
type RateLimitError struct {
	URL        string
	RetryAfter time.Duration
	// RetryAt is when the upstream said to come back (zero if it did not say).
	RetryAt time.Time
	MaxWait time.Duration
}

func (e *RateLimitError) Error() string {
	if e.RetryAt.IsZero() {
		return fmt.Sprintf("GET %s: HTTP 429 Too Many Requests: still rate limited after waiting; retry later", e.URL)
	}
	return fmt.Sprintf("GET %s: HTTP 429 Too Many Requests: the upstream asks to retry after %s (at %s), longer than the %s this run waits",
		e.URL, e.RetryAfter.Round(time.Second), e.RetryAt.UTC().Format(time.RFC3339), e.MaxWait)
}

// Options configure a Syncer. BaseURL is required; ExportRoot is required
// for Sync.
type Options struct {
	// BaseURL is the upstream, e.g. https://mirror.example:8443. A path
	// prefix is kept: IndexPath is appended to it.
	BaseURL string
	// IndexPath is the index route (default DefaultIndexPath). Export files
	// are fetched from the folder it is in: <dir>/<exportId>/<path>.
	IndexPath string
	// Domains are the domains this mirror needs (default: all). The run
	// fails when the upstream stops offering one. The export is always
	// fetched whole: mirror.json signs it as a whole.
	Domains []string

	ExportRoot string
	// TrustRoots verify the export; nil means the export root's store.
	TrustRoots        *trust.Roots
	TrustRootsPath    string
	ReplaceTrustRoots bool
	// KeyID, when set, must be one of the keys that signed mirror.json.
	KeyID string
	// SignatureProvider is recorded in the result and the sync state.
	SignatureProvider string
	VerifyDSSE        bool
	VerifyChecksums   bool
	Threshold         int
	// Now is the trusted time for validity checks; zero means Clock().
	Now            time.Time
	AllowDowngrade bool
	Keep           int
	Wait           time.Duration
	Rotate         bundle.RotationFunc

	// Timeout bounds connecting, the TLS handshake and waiting for
	// response headers, and the whole of each small request (index,
	// manifest, envelope). Default DefaultTimeout.
	Timeout time.Duration
	// RootCAs, when set, replaces the system's CA certificates.
	RootCAs *x509.CertPool
	// Transport, when set, replaces the HTTP transport (tests).
	Transport http.RoundTripper
	User      string
	Password  string
	Token     string
	UserAgent string

	// Concurrency is the number of files fetched at once (default 4).
	Concurrency int
	// Attempts bounds the tries of one request on 5xx, timeouts and
	// broken connections (default 5).
	Attempts int
	// MinThroughput is the slowest a download may be, in bytes per
	// second, measured over StallWindow (default 16 KiB/s). A file's
	// deadline is Timeout plus its size at this rate.
	MinThroughput int64
	// StallWindow is the watchdog's measuring window (default Timeout).
	StallWindow time.Duration
	// MaxRetryAfter is the longest Retry-After a run waits (default 5m).
	MaxRetryAfter time.Duration
	// BackoffBase and BackoffMax bound the exponential backoff between
	// attempts (defaults 1s and 30s).
	BackoffBase time.Duration
	BackoffMax  time.Duration

	// Sleep waits for d or until ctx is done (backoff, Retry-After,
	// interval). Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Clock is the wall clock (default time.Now).
	Clock func() time.Time
	// Rand returns a number in [0, 1) for jitter (default math/rand/v2).
	Rand func() float64
	// Progress is called with bytes copied or downloaded.
	Progress func(int64)
	// Warn receives warnings for the operator.
	Warn func(string)
}

// Syncer pulls from one upstream. It is safe to run one Sync at a time.
type Syncer struct {
	opts      Options
	client    *http.Client
	indexURL  *url.URL
	exportDir string // URL path of the folder index.json is served from, with a final slash
	gate      gate
}

// New checks opts and builds the HTTP client. Errors are usage errors.
func New(opts Options) (*Syncer, error) {
	if opts.IndexPath == "" {
		opts.IndexPath = DefaultIndexPath
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Timeout < MinTimeout || opts.Timeout > MaxTimeout {
		return nil, failure.Usagef("timeout %s: want between %s and %s", opts.Timeout, MinTimeout, MaxTimeout)
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Concurrency < 1 || opts.Concurrency > MaxConcurrency {
		return nil, failure.Usagef("parallel downloads %d: want 1 to %d", opts.Concurrency, MaxConcurrency)
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.MinThroughput <= 0 {
		opts.MinThroughput = DefaultMinThroughput
	}
	if opts.StallWindow <= 0 {
		opts.StallWindow = opts.Timeout
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "stellaops-cli-mirror-sync"
	}
	if opts.User != "" && opts.Token != "" {
		return nil, failure.Usagef("both a user (HTTP Basic) and a bearer token are set; use one")
	}
	if opts.User != "" && opts.Password == "" {
		return nil, failure.Usagef("user %s: no password", opts.User)
	}
	if opts.KeyID != "" && !opts.VerifyDSSE {
		return nil, failure.Usagef("a required signing key id needs the DSSE signature check")
	}
	for _, d := range opts.Domains {
		if !bundle.DomainIDPattern.MatchString(d) {
			return nil, failure.Usagef("domain %q: want lowercase letters, digits and dashes (%s)", d, bundle.DomainIDPattern)
		}
	}
	base, err := url.Parse(opts.BaseURL)
	switch {
	case opts.BaseURL == "":
		return nil, failure.Usagef("no upstream URL")
	case err != nil:
		return nil, failure.Usagef("upstream URL %q: %v", opts.BaseURL, err)
	case base.Scheme != "http" && base.Scheme != "https":
		return nil, failure.Usagef("upstream URL %q: want http:// or https://", opts.BaseURL)
	case base.Host == "":
		return nil, failure.Usagef("upstream URL %q: no host", opts.BaseURL)
	case base.User != nil:
		return nil, failure.Usagef("upstream URL: credentials in the URL are refused (they show in process lists and logs); use --user with STELLAOPS_MIRROR_PASSWORD, or STELLAOPS_MIRROR_TOKEN")
	case base.RawQuery != "" || base.Fragment != "":
		return nil, failure.Usagef("upstream URL %q: no query or fragment allowed", opts.BaseURL)
	}
	ip := opts.IndexPath
	if !strings.HasPrefix(ip, "/") {
		ip = "/" + ip
	}
	if strings.Contains(ip, "?") || strings.Contains(ip, "#") || path.Clean(ip) != ip || strings.HasSuffix(ip, "/") {
		return nil, failure.Usagef("index path %q: want a clean path such as %s", opts.IndexPath, DefaultIndexPath)
	}
	idx := *base
	idx.Path = strings.TrimSuffix(base.Path, "/") + ip
	idx.RawPath = ""
	s := &Syncer{opts: opts, indexURL: &idx, exportDir: path.Dir(idx.Path) + "/"}
	if s.exportDir == "//" {
		s.exportDir = "/"
	}
	s.client = s.newClient()
	return s, nil
}

// IndexURL returns the URL of the upstream's index.json.
func (s *Syncer) IndexURL() string { return s.indexURL.String() }

func (s *Syncer) newClient() *http.Client {
	rt := s.opts.Transport
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: s.opts.Timeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = s.opts.Timeout
		tr.ResponseHeaderTimeout = s.opts.Timeout
		tr.DisableCompression = true
		tr.MaxIdleConnsPerHost = s.opts.Concurrency + 1
		tr.ForceAttemptHTTP2 = true
		if s.opts.RootCAs != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: s.opts.RootCAs, MinVersion: tls.VersionTLS12}
		}
		rt = tr
	}
	return &http.Client{
		Transport: rt,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return fmt.Errorf("refusing a redirect from https to %s", req.URL.Redacted())
			}
			return nil
		},
	}
}

// fileURL returns the URL of a file of an export.
func (s *Syncer) fileURL(exportID, rel string) *url.URL {
	u := *s.indexURL
	parts := strings.Split(rel, "/")
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = url.PathEscape(p)
	}
	u.Path = s.exportDir + exportID + "/" + rel
	u.RawPath = s.exportDir + exportID + "/" + strings.Join(esc, "/")
	return &u
}

// relURL returns the URL of a path relative to the index's folder.
func (s *Syncer) relURL(rel string) *url.URL {
	u := *s.indexURL
	parts := strings.Split(rel, "/")
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = url.PathEscape(p)
	}
	u.Path = s.exportDir + rel
	u.RawPath = s.exportDir + strings.Join(esc, "/")
	return &u
}

// wanted reports whether domain id is one the mirror needs.
func (s *Syncer) wanted(id string) bool {
	return len(s.opts.Domains) == 0 || slices.Contains(s.opts.Domains, id)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// interrupted classifies a cancellation as exit 130.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if err == nil {
		err = ctx.Err()
	}
	return failure.Classify(failure.ErrInterrupted, err)
}
