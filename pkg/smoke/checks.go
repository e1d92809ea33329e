package smoke

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// checkIndex is check 1. It returns the parsed index, or nil, and a
// non-nil error wrapping ErrUnreachable when no response came back.
func (p *prober) checkIndex(ctx context.Context) (idx *bundle.Index, unreachable error) {
	p.check(1, NameIndex, "", func(o *outcome) {
		u := p.base.ResolveReference(&url.URL{Path: IndexRoute})
		o.url = u.String()
		resp, err := p.open(ctx, u, true, nil)
		if err != nil {
			o.fail("%v", err)
			if ctx.Err() == nil {
				unreachable = fmt.Errorf("%w: %v", ErrUnreachable, err)
			}
			return
		}
		defer resp.Body.Close()
		o.status = resp.StatusCode
		body, rerr := readBounded(resp.Body, MaxDocumentBytes)
		if resp.StatusCode != http.StatusOK {
			msg := fmt.Sprintf("GET %s: %s, want 200", u, httpStatus(resp, body))
			switch {
			case resp.StatusCode == http.StatusUnauthorized && !p.credentials():
				msg += " (no credentials were given)"
			case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
				msg += " (the credentials were refused)"
			case resp.StatusCode == http.StatusTooManyRequests:
				msg += " (this client's index budget is used up, e.g. by an earlier rate-limit check)"
			}
			o.fail("%s", msg)
			return
		}
		if rerr != nil {
			o.fail("GET %s: reading index.json: %v", u, rerr)
			return
		}
		checkCacheControl(o, resp.Header, IndexCacheControl)
		var ix bundle.Index
		if err := json.Unmarshal(body, &ix); err != nil {
			o.fail("index.json is not valid JSON: %v", err)
			return
		}
		idx = &ix
		p.report.ExportID = ix.ExportID
		p.report.GeneratedAt = ix.GeneratedAt
		if ix.ExportID == "" {
			o.fail("index.json has no exportId")
		}
		if ix.GeneratedAt.IsZero() {
			o.fail("index.json has no generatedAt")
		}
		var ids []string
		seen := map[string]bool{}
		for _, d := range ix.Domains {
			switch {
			case !domainIDPattern.MatchString(d.ID):
				o.fail("index.json lists invalid domain id %q", d.ID)
			case seen[d.ID]:
				o.fail("index.json lists domain %q twice", d.ID)
			default:
				seen[d.ID] = true
				ids = append(ids, d.ID)
			}
		}
		if len(ix.Domains) == 0 {
			o.fail("index.json lists no domains")
		}
		for _, d := range p.opts.Domains {
			if !seen[d] {
				o.fail("domain %q is not listed in index.json (listed: %s)", d, strings.Join(ids, ", "))
			}
		}
		o.note("exportId %s, generatedAt %s, domains: %s", ix.ExportID,
			ix.GeneratedAt.UTC().Format(time.RFC3339), strings.Join(ids, ", "))
	})
	return idx, unreachable
}

// domainFileURL returns the URL of a domain file: the index's path when it
// names one, else the contract's mirror/<domain>/<name>.
func (p *prober) domainFileURL(d *domain, indexPath, name string) (*url.URL, error) {
	rel := indexPath
	if rel == "" {
		rel = bundle.MirrorDir + "/" + d.id + "/" + name
	}
	return p.resolve(p.exportsBase, rel)
}

func (p *prober) manifestURL(d *domain) (*url.URL, error) {
	var rel string
	if d.entry != nil {
		rel = d.entry.ManifestPath
	}
	return p.domainFileURL(d, rel, bundle.DomainManifestName)
}

// checkManifest is check 2.
func (p *prober) checkManifest(ctx context.Context, d *domain) {
	p.check(2, NameManifest, d.id, func(o *outcome) {
		u, err := p.manifestURL(d)
		if err != nil {
			o.fail("index.json manifestPath: %v", err)
			return
		}
		resp, body, ok := p.getDocument(ctx, o, u, "manifest.json")
		if !ok {
			return
		}
		checkCacheControl(o, resp.Header, ImmutableCacheControl)

		var m bundle.DomainManifest
		if err := json.Unmarshal(body, &m); err != nil {
			o.fail("manifest.json is not valid JSON: %v", err)
		} else {
			d.manifest = &m
			if m.DomainID != d.id {
				o.fail("manifest.json domainId is %q, want %q", m.DomainID, d.id)
			}
		}

		etag := resp.Header.Get("ETag")
		switch {
		case etag == "":
			o.fail("no ETag header (want a strong ETag); conditional request not tried")
			return
		case strings.HasPrefix(etag, "W/"):
			o.fail("ETag %s is weak, want a strong ETag", etag)
		}
		cond, err := p.open(ctx, u, true, http.Header{"If-None-Match": {etag}})
		if err != nil {
			o.fail("conditional GET with If-None-Match: %s: %v", etag, err)
			return
		}
		cbody, _ := readBounded(cond.Body, 4096)
		cond.Body.Close()
		if cond.StatusCode != http.StatusNotModified {
			o.status = cond.StatusCode
			o.fail("conditional GET with If-None-Match: %s: %s, want 304", etag, httpStatus(cond, cbody))
			return
		}
		o.note("ETag %s, 304 on If-None-Match", etag)
		if d.manifest != nil {
			o.note("bundle %d bytes, sha256 %s", d.manifest.Bundle.Size, normDigest(d.manifest.Bundle.SHA256))
		}
	})
}

// reference is a size and digest that a download must match.
type reference struct {
	source string
	size   int64
	sha256 string
}

// checkBundle is check 3.
func (p *prober) checkBundle(ctx context.Context, d *domain) {
	p.check(3, NameBundle, d.id, func(o *outcome) {
		var refs []reference
		if m := d.manifest; m != nil {
			refs = append(refs, reference{"manifest.json bundle.size/sha256", m.Bundle.Size, m.Bundle.SHA256})
		}
		if e := d.entry; e != nil {
			refs = append(refs, reference{"index.json bundleSize/bundleSha256", e.BundleSize, e.BundleSha256})
		}
		var rel string
		switch {
		case d.entry != nil && d.entry.BundlePath != "":
			rel = d.entry.BundlePath
		case d.manifest != nil && d.manifest.Bundle.Path != "":
			rel = d.manifest.Bundle.Path
		}
		u, err := p.domainFileURL(d, rel, bundle.DomainBundleName)
		if err != nil {
			d.bundleNote = "bundle.json path unusable"
			o.fail("bundle path: %v", err)
			return
		}
		o.url = u.String()
		resp, err := p.open(ctx, u, true, nil)
		if err != nil {
			d.bundleNote = "bundle.json not downloaded"
			o.fail("%v", err)
			return
		}
		defer resp.Body.Close()
		o.status = resp.StatusCode
		if resp.StatusCode != http.StatusOK {
			body, _ := readBounded(resp.Body, 4096)
			d.bundleNote = fmt.Sprintf("bundle.json not downloaded (HTTP %d)", resp.StatusCode)
			o.fail("GET %s: %s, want 200", u, httpStatus(resp, body))
			return
		}

		limit := int64(MaxDownloadBytes)
		if max := maxRefSize(refs); max > 0 {
			limit = max
		}
		var keep *cappedBuffer
		var sink io.Writer
		if p.opts.VerifyJWS != nil {
			keep = &cappedBuffer{max: MaxJWSPayloadBytes}
			sink = keep
		}
		size, sum, truncated, err := hashStream(resp.Body, limit, sink)
		if err != nil {
			d.bundleNote = "bundle.json download interrupted"
			o.fail("GET %s: download interrupted after %d bytes: %v", u, size, err)
			return
		}
		if truncated {
			d.bundleNote = "bundle.json longer than announced"
			o.fail("GET %s: bundle.json is longer than the %d bytes announced; stopped reading", u, limit)
			return
		}
		d.bundleGot = true
		if keep != nil {
			d.bundleBytes, d.bundleTooLarge = keep.bytes(), keep.over
		}
		if len(refs) == 0 {
			o.skipf("downloaded %d bytes, sha256 %s; nothing to compare with: manifest.json and index.json unavailable", size, sum)
			return
		}
		compareRefs(o, "bundle.json", size, sum, refs)
		var srcs []string
		for _, r := range refs {
			srcs = append(srcs, strings.SplitN(r.source, " ", 2)[0])
		}
		o.note("%d bytes, sha256 %s, matches %s", size, sum, strings.Join(srcs, " and "))
	})
}

func maxRefSize(refs []reference) int64 {
	var max int64
	for _, r := range refs {
		if r.size > max {
			max = r.size
		}
	}
	return max
}

// compareRefs records one problem naming every reference that size and
// sum do not match, and one for every reference without a usable digest.
func compareRefs(o *outcome, what string, size int64, sum string, refs []reference) {
	var mismatched []string
	for _, r := range refs {
		want := normDigest(r.sha256)
		var diffs []string
		switch {
		case want == "":
			o.fail("%s has no SHA-256 for %s", r.source, what)
			continue
		case !validDigest(want):
			o.fail("%s SHA-256 %q is not 64 hex digits", r.source, r.sha256)
			continue
		case want != sum:
			diffs = append(diffs, "sha256")
		}
		if r.size != size {
			diffs = append(diffs, "size")
		}
		if len(diffs) > 0 {
			verb := "differs"
			if len(diffs) > 1 {
				verb = "differ"
			}
			mismatched = append(mismatched, fmt.Sprintf("%s says %d bytes, sha256 %s (%s %s)",
				r.source, r.size, want, strings.Join(diffs, " and "), verb))
		}
	}
	if len(mismatched) > 0 {
		o.fail("%s does not match: got %d bytes, sha256 %s; %s", what, size, sum, strings.Join(mismatched, "; "))
	}
}

// cappedBuffer keeps written bytes up to max; past it, it keeps nothing.
type cappedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *cappedBuffer) Write(b []byte) (int, error) {
	if c.over {
		return len(b), nil
	}
	if c.buf.Len()+len(b) > c.max {
		c.over = true
		c.buf = bytes.Buffer{}
		return len(b), nil
	}
	return c.buf.Write(b)
}

func (c *cappedBuffer) bytes() []byte {
	if c.over {
		return nil
	}
	return c.buf.Bytes()
}

// hashStream reads r up to limit bytes, hashing as it goes and copying into
// keep when not nil. truncated reports that r had more than limit bytes.
func hashStream(r io.Reader, limit int64, keep io.Writer) (size int64, sum string, truncated bool, err error) {
	h := sha256.New()
	w := io.Writer(h)
	if keep != nil {
		w = io.MultiWriter(h, keep)
	}
	size, err = io.Copy(w, io.LimitReader(r, limit))
	if err != nil {
		return size, "", false, err
	}
	if size == limit {
		var one [1]byte
		n, _ := io.ReadFull(r, one[:])
		truncated = n > 0
	}
	return size, hex.EncodeToString(h.Sum(nil)), truncated, nil
}

// checkJWS is check 4.
func (p *prober) checkJWS(ctx context.Context, d *domain) {
	p.check(4, NameJWS, d.id, func(o *outcome) {
		if p.opts.VerifyJWS == nil {
			o.skipf("no verification key given (--key or --trust-roots); signature not checked")
			return
		}
		var rel string
		if d.entry != nil {
			rel = d.entry.JWSPath
		}
		u, err := p.domainFileURL(d, rel, bundle.DomainJWSName)
		if err != nil {
			o.fail("index.json jwsPath: %v", err)
			return
		}
		o.url = u.String()
		if !d.bundleGot {
			o.skipf("%s; see the bundle check", d.bundleNote)
			return
		}
		if d.bundleTooLarge {
			o.warn("bundle.json is larger than %d MiB, the limit for verifying its JWS in memory; signature not checked",
				MaxJWSPayloadBytes>>20)
			return
		}
		resp, err := p.open(ctx, u, true, nil)
		if err != nil {
			o.fail("%v", err)
			return
		}
		jws, rerr := readBounded(resp.Body, MaxJWSBytes)
		resp.Body.Close()
		o.status = resp.StatusCode
		if resp.StatusCode != http.StatusOK {
			o.fail("GET %s: %s, want 200", u, httpStatus(resp, jws))
			return
		}
		if rerr != nil {
			o.fail("GET %s: reading bundle.json.jws: %v", u, rerr)
			return
		}
		jws = bytes.TrimSpace(jws)
		kid, err := p.opts.VerifyJWS(jws, d.bundleBytes)
		if err != nil {
			o.fail("bundle.json.jws does not verify over the downloaded bundle.json: %v", err)
			return
		}
		o.note("bundle.json.jws verifies, signed by key %s", kid)
		if sig := d.entry; sig != nil && sig.Signature != nil {
			if sig.Signature.Alg != "" {
				o.note("alg %s", sig.Signature.Alg)
			}
			if sig.Signature.Kid != "" && sig.Signature.Kid != kid {
				o.note("index.json names kid %s", sig.Signature.Kid)
			}
		}
	})
}

// checkExcititor is check 5.
func (p *prober) checkExcititor(ctx context.Context, d *domain) {
	p.check(5, NameExcititor, d.id, func(o *outcome) {
		base := p.base.ResolveReference(&url.URL{Path: ExcititorRoute + d.id + "/"})
		u := base.ResolveReference(&url.URL{Path: "index"})
		_, body, ok := p.getDocument(ctx, o, u, "the excititor index")
		if !ok {
			return
		}
		var ix bundle.ExcititorIndex
		if err := json.Unmarshal(body, &ix); err != nil {
			o.fail("excititor index is not valid JSON: %v", err)
			return
		}
		if ix.DomainID != d.id {
			o.fail("excititor index domainId is %q, want %q", ix.DomainID, d.id)
		}
		if p.report.ExportID != "" && ix.ExportID != "" && ix.ExportID != p.report.ExportID {
			o.warn("excititor index exportId %s differs from index.json's %s", ix.ExportID, p.report.ExportID)
		}
		var announced int
		if d.manifest != nil {
			announced = len(d.manifest.Exports)
		}
		if len(ix.Exports) == 0 {
			if announced > 0 {
				o.fail("excititor index lists no exports, manifest.json lists %d", announced)
			} else if len(o.problems) == 0 {
				o.skipf("excititor index lists no exports for this domain")
			}
			return
		}
		for i, e := range ix.Exports {
			if e.ExportKey == "" {
				o.fail("excititor index exports[%d] has no exportKey", i)
			}
		}
		e := ix.Exports[0]
		if e.ExportKey == "" {
			return
		}
		esc, err := escapePath(e.ExportKey)
		if err != nil {
			o.fail("exportKey %q: %v", e.ExportKey, err)
			return
		}
		du, err := p.resolve(base, "download/"+esc)
		if err != nil {
			o.fail("exportKey %q: %v", e.ExportKey, err)
			return
		}
		o.url = du.String()
		refs := []reference{{"excititor index size/sha256", e.Size, e.SHA256}}
		if d.manifest != nil {
			for _, x := range d.manifest.Exports {
				if x.Key == e.ExportKey {
					refs = append(refs, reference{"manifest.json exports[].artifactSizeBytes/artifactDigest", x.ArtifactSizeBytes, x.ArtifactDigest})
				}
			}
		}
		dl, err := p.open(ctx, du, true, nil)
		if err != nil {
			o.fail("%v", err)
			return
		}
		defer dl.Body.Close()
		o.status = dl.StatusCode
		if dl.StatusCode != http.StatusOK {
			b, _ := readBounded(dl.Body, 4096)
			o.fail("GET %s: %s, want 200", du, httpStatus(dl, b))
			return
		}
		limit := int64(MaxDownloadBytes)
		if max := maxRefSize(refs); max > 0 {
			limit = max
		}
		size, sum, truncated, err := hashStream(dl.Body, limit, nil)
		switch {
		case err != nil:
			o.fail("GET %s: download interrupted after %d bytes: %v", du, size, err)
			return
		case truncated:
			o.fail("GET %s: export %q is longer than the %d bytes announced; stopped reading", du, e.ExportKey, limit)
			return
		}
		compareRefs(o, fmt.Sprintf("export %q", e.ExportKey), size, sum, refs)
		o.note("%d exports; exportKey %s (%s): %d bytes, sha256 %s", len(ix.Exports), e.ExportKey, e.Format, size, sum)
	})
}

// checkAuth is check 6.
func (p *prober) checkAuth(ctx context.Context, d *domain) {
	p.check(6, NameAuth, d.id, func(o *outcome) {
		u, err := p.manifestURL(d)
		if err != nil {
			o.fail("index.json manifestPath: %v", err)
			return
		}
		o.url = u.String()
		resp, err := p.open(ctx, u, false, nil)
		if err != nil {
			o.fail("%v", err)
			return
		}
		body, _ := readBounded(resp.Body, 4096)
		resp.Body.Close()
		o.status = resp.StatusCode
		challenge := headerValue(resp.Header, "WWW-Authenticate")
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			switch {
			case challenge == "":
				o.fail("GET %s without credentials: HTTP 401 without a WWW-Authenticate header, want a Bearer challenge", u)
			case !hasBearer(resp.Header):
				o.fail("GET %s without credentials: HTTP 401 with WWW-Authenticate: %s, want a Bearer challenge", u, challenge)
			default:
				o.note("401 without credentials, WWW-Authenticate: %s", challenge)
			}
		case http.StatusOK:
			if p.credentials() && !p.opts.AllowAnonymous {
				o.fail("GET %s without credentials: HTTP 200, want 401: the domain is readable anonymously although "+
					"credentials were given (if that is intended, e.g. an open domain or a bypass network, allow anonymous access)", u)
				return
			}
			o.skipf("domain allows anonymous access")
		default:
			o.fail("GET %s without credentials: %s, want 401 with WWW-Authenticate: Bearer", u, httpStatus(resp, body))
		}
	})
}

// hasBearer reports whether a WWW-Authenticate header offers the Bearer scheme.
func hasBearer(h http.Header) bool {
	for _, v := range h.Values("WWW-Authenticate") {
		for _, part := range strings.Split(v, ",") {
			f := strings.Fields(part)
			if len(f) > 0 && strings.EqualFold(f[0], "Bearer") {
				return true
			}
		}
	}
	return false
}

// checkRateLimit is check 7.
func (p *prober) checkRateLimit(ctx context.Context) {
	p.check(7, NameRateLimit, "", func(o *outcome) {
		if !p.opts.CheckRateLimit {
			o.skipf("not asked for (--check-rate-limit)")
			return
		}
		n := p.opts.RateLimitRequests
		if n == 0 {
			n = DefaultRateLimitRequests
		}
		u := p.base.ResolveReference(&url.URL{Path: IndexRoute})
		o.url = u.String()
		for i := 1; i <= n; i++ {
			if ctx.Err() != nil {
				o.fail("interrupted after %d requests", i-1)
				return
			}
			resp, err := p.open(ctx, u, true, nil)
			if err != nil {
				o.fail("request %d: %v", i, err)
				return
			}
			var body []byte
			if resp.StatusCode == http.StatusOK {
				drain(resp.Body)
			} else {
				body, _ = readBounded(resp.Body, 4096)
			}
			resp.Body.Close()
			o.status = resp.StatusCode
			switch resp.StatusCode {
			case http.StatusOK:
				continue
			case http.StatusTooManyRequests:
				ra := resp.Header.Get("Retry-After")
				if !isDigits(ra) {
					got := fmt.Sprintf("%q", ra)
					if ra == "" {
						got = "none"
					}
					o.fail("GET %s: 429 after %d requests, but Retry-After is %s, want an integer number of seconds", u, i, got)
					return
				}
				noun := "requests"
				if i == 1 {
					noun = "request"
				}
				o.note("429 after %d index %s, Retry-After: %s", i, noun, ra)
				return
			default:
				o.fail("GET %s: request %d: %s, want 200 or 429", u, i, httpStatus(resp, body))
				return
			}
		}
		o.status = http.StatusOK
		o.fail("GET %s: no 429 after %d index requests; the index budget is not enforced, or allows more than that "+
			"(MAXINDEXREQUESTSPERHOUR)", u, n)
	})
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// checkMaxAge is check 8.
func (p *prober) checkMaxAge(idx *bundle.Index) {
	p.check(8, NameMaxAge, "", func(o *outcome) {
		if p.opts.MaxAge <= 0 {
			o.skipf("not asked for (--max-age)")
			return
		}
		if idx == nil {
			o.skipf("index.json unavailable; see the index check")
			return
		}
		if idx.GeneratedAt.IsZero() {
			o.fail("index.json has no generatedAt")
			return
		}
		now := p.now().UTC()
		age := now.Sub(idx.GeneratedAt)
		gen := idx.GeneratedAt.UTC().Format(time.RFC3339)
		switch {
		case age > p.opts.MaxAge:
			o.fail("export %s generatedAt %s is %s old at %s, older than the maximum age %s",
				idx.ExportID, gen, age.Round(time.Second), now.Format(time.RFC3339), p.opts.MaxAge)
		case age < -5*time.Minute:
			o.warn("export %s generatedAt %s is %s in the future at %s; check the clocks",
				idx.ExportID, gen, (-age).Round(time.Second), now.Format(time.RFC3339))
		default:
			if age < 0 {
				age = 0
			}
			o.note("export %s generatedAt %s is %s old (maximum %s)", idx.ExportID, gen, age.Round(time.Second), p.opts.MaxAge)
		}
	})
}

// checkHealth is check 9 for one endpoint.
func (p *prober) checkHealth(ctx context.Context, number int, name, route string) {
	p.check(number, name, "", func(o *outcome) {
		u := p.healthBase.ResolveReference(&url.URL{Path: route})
		o.url = u.String()
		resp, err := p.open(ctx, u, false, nil)
		if err != nil {
			o.fail("%v", err)
			return
		}
		body, _ := readBounded(resp.Body, 4096)
		resp.Body.Close()
		o.status = resp.StatusCode
		switch resp.StatusCode {
		case http.StatusOK:
			o.note("200")
		case http.StatusNotFound:
			o.skipf("not offered: GET %s answered 404", u)
		default:
			o.fail("GET %s: %s, want 200", u, httpStatus(resp, body))
		}
	})
}

// getDocument GETs a small JSON document with the credentials and records the
// request on o; it fails o unless the answer is a 200 read whole within
// MaxDocumentBytes. The body is closed; the headers stay readable.
func (p *prober) getDocument(ctx context.Context, o *outcome, u *url.URL, what string) (*http.Response, []byte, bool) {
	o.url = u.String()
	resp, err := p.open(ctx, u, true, nil)
	if err != nil {
		o.fail("%v", err)
		return nil, nil, false
	}
	body, rerr := readBounded(resp.Body, MaxDocumentBytes)
	resp.Body.Close()
	o.status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		o.fail("GET %s: %s, want 200", u, httpStatus(resp, body))
		return nil, nil, false
	}
	if rerr != nil {
		o.fail("GET %s: reading %s: %v", u, what, rerr)
		return nil, nil, false
	}
	return resp, body, true
}
