package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/sign"
)

// Discovery lists what an upstream offers. Nothing is verified: the JWS
// header is read, not checked, to show which algorithm and key signed.
type Discovery struct {
	SchemaVersion int                `json:"schemaVersion"`
	From          string             `json:"from"`
	ExportID      string             `json:"exportId"`
	GeneratedAt   time.Time          `json:"generatedAt"`
	Domains       []DiscoveredDomain `json:"domains"`
	Requests      int64              `json:"requests"`
}

// DiscoveredDomain is one domain of the upstream's index.
type DiscoveredDomain struct {
	ID            string    `json:"id"`
	DisplayName   string    `json:"displayName"`
	AdvisoryCount int       `json:"advisoryCount"`
	ExportCount   int       `json:"exportCount"`
	BundleSize    int64     `json:"bundleSize"`
	ExportFormats []string  `json:"exportFormats"`
	Signed        bool      `json:"signed"`
	Alg           string    `json:"alg,omitempty"`
	Kid           string    `json:"kid,omitempty"`
	LastGenerated time.Time `json:"lastGenerated"`
	// Error says why the JWS header could not be read.
	Error string `json:"error,omitempty"`
}

// Discover reads the upstream's index and each domain's bundle.json.jws
// header. It writes nothing.
func (s *Syncer) Discover(ctx context.Context) (*Discovery, error) {
	var c counter
	out := &Discovery{SchemaVersion: SchemaVersion, From: s.indexURL.Redacted(), Domains: []DiscoveredDomain{}}
	defer func() { out.Requests = c.n.Load() }()
	body, _, err := s.readSmall(ctx, &c, nil, s.indexURL, MaxIndexSize)
	if err != nil {
		return out, err
	}
	var idx bundle.Index
	if err := strictjson.Unmarshal(body, &idx); err != nil {
		return out, fmt.Errorf("%s: %w: %v", s.indexURL.Redacted(), ErrBadIndex, err)
	}
	out.ExportID, out.GeneratedAt = idx.ExportID, idx.GeneratedAt
	for _, d := range idx.Domains {
		if !s.wanted(d.ID) {
			continue
		}
		dd := DiscoveredDomain{
			ID: d.ID, DisplayName: d.DisplayName, AdvisoryCount: d.AdvisoryCount, ExportCount: d.ExportCount,
			BundleSize: d.BundleSize, ExportFormats: d.ExportFormats, Signed: d.Signed, LastGenerated: d.LastGenerated,
		}
		if dd.ExportFormats == nil {
			dd.ExportFormats = []string{}
		}
		if d.Signed {
			dd.Alg, dd.Kid, err = s.jwsHeader(ctx, &c, d)
			if err != nil {
				if ctx.Err() != nil {
					return out, interrupted(ctx, err)
				}
				dd.Error = err.Error()
				s.opts.Warn(fmt.Sprintf("domain %s: %v", d.ID, err))
			}
		}
		out.Domains = append(out.Domains, dd)
	}
	for _, want := range s.opts.Domains {
		found := false
		for _, d := range out.Domains {
			found = found || d.ID == want
		}
		if !found {
			return out, fmt.Errorf("%w: %s", ErrUnknownDomain, want)
		}
	}
	return out, nil
}

// jwsHeader fetches a domain's bundle.json.jws and returns its header's
// algorithm and key id.
func (s *Syncer) jwsHeader(ctx context.Context, c *counter, d bundle.IndexDomain) (string, string, error) {
	rel := d.JWSPath
	if rel == "" {
		rel = bundle.MirrorDir + "/" + d.ID + "/" + bundle.DomainJWSName
	}
	if err := bundle.CheckPath(rel); err != nil {
		return "", "", fmt.Errorf("jwsPath: %w", err)
	}
	b, _, err := s.readSmall(ctx, c, nil, s.relURL(rel), sign.MaxJWSSize)
	if err != nil {
		return "", "", err
	}
	h, _, _, err := sign.ParseJWSHeader(b)
	if err != nil {
		return "", "", err
	}
	return h.Alg, h.Kid, nil
}

// Probe is the outcome of Test.
type Probe struct {
	SchemaVersion int    `json:"schemaVersion"`
	URL           string `json:"url"`
	Reachable     bool   `json:"reachable"`
	Status        int    `json:"status,omitempty"`
	// LatencyMs is the time to the response headers; TotalMs includes
	// reading the body.
	LatencyMs float64   `json:"latencyMs"`
	TotalMs   float64   `json:"totalMs"`
	Bytes     int       `json:"bytes"`
	ExportID  string    `json:"exportId,omitempty"`
	Generated time.Time `json:"generatedAt,omitzero"`
	Domains   int       `json:"domains"`
	Error     string    `json:"error,omitempty"`
}

// Test makes one index request, without retrying, and reports whether the
// upstream answered with an index and how fast. It writes nothing.
func (s *Syncer) Test(ctx context.Context) (*Probe, error) {
	p := &Probe{SchemaVersion: SchemaVersion, URL: s.indexURL.Redacted()}
	start := s.opts.Clock()
	rctx, cancel := context.WithTimeoutCause(ctx, s.opts.Timeout, fmt.Errorf("%w: no complete response within %s", ErrStalled, s.opts.Timeout))
	defer cancel()
	resp, err := s.get(rctx, nil, s.indexURL, nil)
	p.LatencyMs = ms(s.opts.Clock().Sub(start))
	if err != nil {
		err = causeOf(ctx, rctx, fmt.Errorf("GET %s: %w", s.indexURL.Redacted(), err))
		p.Error = err.Error()
		return p, err
	}
	p.Status = resp.StatusCode
	if resp.StatusCode != 200 {
		err := s.statusError(resp, s.indexURL)
		var rl *rateLimited
		if errors.As(err, &rl) {
			err = rl.status
		}
		p.Error = err.Error()
		return p, err
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, MaxIndexSize)
	p.TotalMs = ms(s.opts.Clock().Sub(start))
	p.Bytes = len(body)
	if err != nil {
		err = causeOf(ctx, rctx, fmt.Errorf("GET %s: %w", s.indexURL.Redacted(), err))
		p.Error = err.Error()
		return p, err
	}
	var idx bundle.Index
	if err := strictjson.Unmarshal(body, &idx); err != nil {
		err = fmt.Errorf("%s: %w: %v", s.indexURL.Redacted(), ErrBadIndex, err)
		p.Error = err.Error()
		return p, err
	}
	p.Reachable = true
	p.ExportID, p.Generated, p.Domains = idx.ExportID, idx.GeneratedAt, len(idx.Domains)
	return p, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
