// Package smoke checks a running StellaOps mirror the way the deployment
// runbook does, and reports one row per check. The routes, headers and
// documents it expects are those of CONTRACT.md §3.
//
// The checks, numbered as in the runbook:
//
//  1. index: /concelier/exports/index.json answers 200 with the credentials,
//     is valid JSON with an exportId, a generatedAt and the domains asked
//     for, and carries Cache-Control "public, max-age=60".
//  2. manifest (per domain): manifest.json answers 200 with Cache-Control
//     "public, max-age=300, immutable" and a strong ETag, and a conditional
//     request with If-None-Match answers 304.
//  3. bundle (per domain): bundle.json downloads; its size and SHA-256 match
//     manifest.json (bundle.size, bundle.sha256) and index.json (bundleSize,
//     bundleSha256). The download is hashed as it streams.
//  4. jws (per domain): bundle.json.jws verifies over the downloaded bytes
//     with Options.VerifyJWS. Skipped when no verifier is given.
//  5. excititor (per domain): /excititor/mirror/{domain}/index lists
//     exports[].exportKey; the first export downloads from
//     /excititor/mirror/{domain}/download/{exportKey} with the size and
//     SHA-256 the index announces (and manifest.json, when it lists it).
//  6. auth (per domain): manifest.json requested without credentials answers
//     401 with a WWW-Authenticate challenge for Bearer. See Options.AllowAnonymous
//     for domains that answer 200.
//  7. rate-limit: with Options.CheckRateLimit, repeated index.json requests
//     reach 429 with an integer Retry-After within Options.RateLimitRequests.
//  8. max-age: with Options.MaxAge, index.json's generatedAt is not older
//     than MaxAge at Options.Now.
//  9. healthz, readyz: /healthz and /readyz answer 200; 404 (not offered)
//     is a skip.
//
// Run returns a Report whatever the checks find; its Err method turns
// failed checks into an error wrapping failure.ErrVerification. Run itself
// returns an error only when it cannot start (bad options), when the
// mirror cannot be reached at all (ErrUnreachable) or when ctx ends.
package smoke

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Routes of the mirror (CONTRACT.md §3), relative to its base URL.
const (
	IndexRoute     = "concelier/exports/index.json"
	ExportsRoute   = "concelier/exports/"
	ExcititorRoute = "excititor/mirror/"
	HealthzRoute   = "healthz"
	ReadyzRoute    = "readyz"
)

// Cache-Control values the contract requires.
const (
	IndexCacheControl     = "public, max-age=60"
	ImmutableCacheControl = "public, max-age=300, immutable"
)

// Defaults and bounds. Every read from the network is bounded.
const (
	// DefaultRateLimitRequests bounds the requests of the rate-limit check.
	DefaultRateLimitRequests = 200
	// DefaultTimeout is the longest wait for a response, or for more bytes
	// of a body, when Options.Timeout is zero.
	DefaultTimeout = 30 * time.Second
	// MaxDocumentBytes bounds index.json, manifest.json and the excititor index.
	MaxDocumentBytes = 16 << 20
	// MaxJWSBytes bounds bundle.json.jws.
	MaxJWSBytes = 64 << 10
	// MaxJWSPayloadBytes bounds how much of bundle.json is kept in memory
	// for the JWS check. A larger bundle.json is still hashed as it streams,
	// but its JWS is not verified and the jws check is a warning.
	MaxJWSPayloadBytes = 256 << 20
	// MaxDownloadBytes bounds a download whose size nothing announces.
	MaxDownloadBytes = 8 << 30
)

// ErrUnreachable reports that the mirror could not be reached at all:
// connection refused, DNS, TLS, or no response in time to the first request.
// It is not a verification failure (exit status 1).
var ErrUnreachable = errors.New("mirror unreachable")

// JWSVerifier verifies a detached JWS (RFC 7797, compact form) over payload
// and returns the id of the key that signed it.
type JWSVerifier func(jws, payload []byte) (keyID string, err error)

// Options configure Run.
type Options struct {
	// URL is the mirror's base URL, e.g. https://mirror.internal:8443. A path
	// prefix (a reverse proxy's location) is kept; a trailing
	// "/concelier/exports" or "/concelier/exports/index.json" is dropped so
	// that the index URL itself may be given.
	URL string
	// Domains to check; empty means every domain that index.json lists.
	Domains []string

	// User and Password authenticate with HTTP Basic; Token with a Bearer
	// token. Set one or the other.
	User     string
	Password string
	Token    string
	// AllowAnonymous declares that the domains are meant to be readable
	// without credentials (an open domain, or a client in a bypass network).
	//
	// The auth check sends one request without credentials. When a domain
	// answers it with 200, the check is a skip with "domain allows anonymous
	// access" if no credentials were given or AllowAnonymous is set. If
	// credentials were given, the operator expects the domain to be
	// protected, so a 200 is a failure unless AllowAnonymous is set.
	AllowAnonymous bool

	// Client sends the requests; nil means a client with the proxy settings
	// of the environment. TLS settings (a private CA) belong here.
	Client *http.Client
	// Timeout is the longest wait for a response, or for the next bytes of
	// a body; 0 means DefaultTimeout. Large downloads may take longer than
	// Timeout in total as long as bytes keep arriving.
	Timeout time.Duration

	// VerifyJWS checks bundle.json.jws; nil skips the jws check. bundle.json
	// is kept in memory for it up to MaxJWSPayloadBytes.
	VerifyJWS JWSVerifier

	// CheckRateLimit sends up to RateLimitRequests index requests (0 means
	// DefaultRateLimitRequests) and expects a 429 with an integer
	// Retry-After. It uses up the client's index budget for the current
	// hour, so it runs after every other check.
	CheckRateLimit    bool
	RateLimitRequests int

	// MaxAge, when positive, is the oldest index.json generatedAt accepted.
	MaxAge time.Duration
	// Now returns the current time; nil means time.Now. Check durations and
	// the max-age check use it.
	Now func() time.Time

	// HealthURL is the base URL of /healthz and /readyz; empty means the
	// mirror's base URL.
	HealthURL string
}

var domainIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Run checks the mirror at opts.URL and returns the report. Failed checks
// are in the report, not in the error: call Report.Err. The error is
// non-nil when the options are unusable (wrapping failure.ErrUsage), when
// the mirror cannot be reached (wrapping ErrUnreachable; the report then
// holds the failed index check) or when ctx ends (the report holds what
// was checked so far).
func Run(ctx context.Context, opts Options) (*Report, error) {
	p, err := newProber(opts)
	if err != nil {
		return nil, err
	}
	return p.run(ctx)
}

type prober struct {
	opts        Options
	client      *http.Client
	timeout     time.Duration
	now         func() time.Time
	base        *url.URL
	exportsBase *url.URL
	healthBase  *url.URL
	report      *Report
}

func newProber(opts Options) (*prober, error) {
	base, err := parseBase(opts.URL, "URL")
	if err != nil {
		return nil, err
	}
	p := &prober{opts: opts, base: base, client: opts.Client, timeout: opts.Timeout, now: opts.Now}
	p.exportsBase = base.ResolveReference(&url.URL{Path: ExportsRoute})
	p.healthBase = base
	if opts.HealthURL != "" {
		if p.healthBase, err = parseBase(opts.HealthURL, "health URL"); err != nil {
			return nil, err
		}
	}
	if p.client == nil {
		p.client = &http.Client{}
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.now == nil {
		p.now = time.Now
	}
	if opts.Token != "" && (opts.User != "" || opts.Password != "") {
		return nil, failure.Usagef("smoke: give a user and password or a bearer token, not both")
	}
	if opts.Password != "" && opts.User == "" {
		return nil, failure.Usagef("smoke: a password needs a user name")
	}
	if opts.RateLimitRequests < 0 {
		return nil, failure.Usagef("smoke: rate-limit request count %d is negative", opts.RateLimitRequests)
	}
	seen := map[string]bool{}
	for _, d := range opts.Domains {
		if !domainIDPattern.MatchString(d) {
			return nil, failure.Usagef("smoke: invalid domain id %q: want lowercase letters, digits and '-'", d)
		}
		if seen[d] {
			return nil, failure.Usagef("smoke: domain %q given twice", d)
		}
		seen[d] = true
	}
	return p, nil
}

// parseBase turns a URL into a base that ends in "/", without credentials,
// query or fragment.
func parseBase(raw, what string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, failure.Usagef("smoke: invalid %s %q: %v", what, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, failure.Usagef("smoke: invalid %s %q: want an http:// or https:// URL", what, raw)
	}
	if u.Host == "" {
		return nil, failure.Usagef("smoke: invalid %s %q: no host", what, raw)
	}
	if u.User != nil {
		return nil, failure.Usagef("smoke: invalid %s: pass credentials separately, not in the URL", what)
	}
	path := strings.TrimRight(u.Path, "/")
	path = strings.TrimSuffix(path, "/"+IndexRoute)
	path = strings.TrimSuffix(path, "/"+strings.TrimSuffix(ExportsRoute, "/"))
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: path + "/"}, nil
}

func (p *prober) credentials() bool {
	return p.opts.Token != "" || p.opts.User != ""
}

// domain is what the checks of one domain learn and share.
type domain struct {
	id       string
	entry    *bundle.IndexDomain // nil when index.json could not be read
	listed   bool                // listed in index.json, or index.json unavailable
	manifest *bundle.DomainManifest

	bundleGot      bool   // bundle.json downloaded completely
	bundleBytes    []byte // kept for the JWS check, nil when not kept
	bundleTooLarge bool   // larger than MaxJWSPayloadBytes
	bundleNote     string // why bundle.json is not available
}

func (p *prober) run(ctx context.Context) (*Report, error) {
	start := p.now()
	p.report = &Report{SchemaVersion: 1, URL: p.base.String(), StartedAt: start.UTC()}
	finish := func() *Report {
		sort.SliceStable(p.report.Checks, func(i, j int) bool {
			return p.report.Checks[i].Number < p.report.Checks[j].Number
		})
		p.report.Duration = p.now().Sub(start)
		return p.report
	}

	idx, unreachable := p.checkIndex(ctx)
	if unreachable != nil {
		return finish(), unreachable
	}
	if ctx.Err() != nil {
		return finish(), fmt.Errorf("mirror smoke of %s: %w", p.base, ctx.Err())
	}

	for _, d := range p.domains(idx) {
		if !d.listed {
			reason := fmt.Sprintf("domain %q is not listed in index.json", d.id)
			for _, c := range []struct {
				n    int
				name string
			}{{2, NameManifest}, {3, NameBundle}, {4, NameJWS}, {5, NameExcititor}, {6, NameAuth}} {
				p.add(Check{Number: c.n, Name: c.name, Domain: d.id, Status: StatusSkip, Detail: reason})
			}
			continue
		}
		p.checkManifest(ctx, d)
		p.checkBundle(ctx, d)
		p.checkJWS(ctx, d)
		p.checkExcititor(ctx, d)
		p.checkAuth(ctx, d)
	}
	p.checkMaxAge(idx)
	p.checkHealth(ctx, 9, NameHealthz, HealthzRoute)
	p.checkHealth(ctx, 9, NameReadyz, ReadyzRoute)
	p.checkRateLimit(ctx)

	if err := ctx.Err(); err != nil {
		return finish(), fmt.Errorf("mirror smoke of %s: %w", p.base, err)
	}
	return finish(), nil
}

// domains picks the domains to check: those asked for, else those listed.
func (p *prober) domains(idx *bundle.Index) []*domain {
	var out []*domain
	if idx == nil {
		for _, id := range p.opts.Domains {
			out = append(out, &domain{id: id, listed: true})
		}
		return out
	}
	byID := map[string]*bundle.IndexDomain{}
	for i := range idx.Domains {
		e := &idx.Domains[i]
		if _, dup := byID[e.ID]; !dup && domainIDPattern.MatchString(e.ID) {
			byID[e.ID] = e
		}
	}
	if len(p.opts.Domains) == 0 {
		for i := range idx.Domains {
			e := &idx.Domains[i]
			if byID[e.ID] == e {
				out = append(out, &domain{id: e.ID, entry: e, listed: true})
			}
		}
		return out
	}
	for _, id := range p.opts.Domains {
		e := byID[id]
		out = append(out, &domain{id: id, entry: e, listed: e != nil})
	}
	return out
}

// outcome collects what one check found.
type outcome struct {
	problems []string
	warnings []string
	notes    []string
	skip     string
	url      string
	status   int
}

func (o *outcome) fail(format string, args ...any) {
	o.problems = append(o.problems, fmt.Sprintf(format, args...))
}

func (o *outcome) warn(format string, args ...any) {
	o.warnings = append(o.warnings, fmt.Sprintf(format, args...))
}

func (o *outcome) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

func (o *outcome) skipf(format string, args ...any) { o.skip = fmt.Sprintf(format, args...) }

func (o *outcome) result() (Status, string) {
	var status Status
	var parts []string
	switch {
	case len(o.problems) > 0:
		status, parts = StatusFail, append(append([]string{}, o.problems...), o.warnings...)
		if o.url != "" && !strings.Contains(parts[0], o.url) {
			prefix := "GET " + o.url
			if o.status != 0 && !strings.Contains(strings.Join(parts, " "), "HTTP ") {
				prefix += fmt.Sprintf(": HTTP %d", o.status)
			}
			parts[0] = prefix + ": " + parts[0]
		}
	case o.skip != "":
		status, parts = StatusSkip, []string{o.skip}
	case len(o.warnings) > 0:
		status, parts = StatusWarn, append(append([]string{}, o.warnings...), o.notes...)
	default:
		status, parts = StatusPass, o.notes
	}
	return status, oneLine(strings.Join(parts, "; "))
}

// check runs fn as check number/name (for domain d, if not empty) and adds
// its row to the report.
func (p *prober) check(number int, name, d string, fn func(o *outcome)) {
	start := p.now()
	o := &outcome{}
	fn(o)
	status, detail := o.result()
	p.add(Check{Number: number, Name: name, Domain: d, Status: status, Detail: detail,
		URL: o.url, HTTPStatus: o.status, Duration: p.now().Sub(start)})
}

func (p *prober) add(c Check) { p.report.Checks = append(p.report.Checks, c) }

// oneLine keeps a detail on one line of printable text, for tables and TSV.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
