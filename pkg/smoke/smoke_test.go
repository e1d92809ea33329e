package smoke_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/smoke"
	"github.com/stellaops/stellaops-cli/pkg/smoke/smoketest"
)

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

var genAt = smoketest.DefaultGeneratedAt

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

// protectedConfig is a mirror that requires Basic credentials and answers
// 429 after ten index requests, with the given faults.
func protectedConfig(f smoketest.Faults) smoketest.Config {
	return smoketest.Config{User: testUser, Password: testPassword, IndexBudget: 10, Faults: f}
}

// fullOptions turns every check on, with credentials, a verifier and a
// clock one hour after the export.
func fullOptions(m *smoketest.Mirror) smoke.Options {
	return smoke.Options{
		URL: m.URL, User: testUser, Password: testPassword, Client: m.Client(),
		VerifyJWS: m.VerifyJWS, CheckRateLimit: true, MaxAge: 24 * time.Hour,
		Now: clock(genAt.Add(time.Hour)),
	}
}

func run(t *testing.T, m *smoketest.Mirror, opts smoke.Options) *smoke.Report {
	t.Helper()
	r, err := smoke.Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

// allIDs are the rows of a full run against a two-domain mirror.
var allIDs = []string{
	"index",
	"manifest/primary", "manifest/secondary",
	"bundle/primary", "bundle/secondary",
	"jws/primary", "jws/secondary",
	"excititor/primary", "excititor/secondary",
	"auth/primary", "auth/secondary",
	"rate-limit", "max-age", "healthz", "readyz",
}

func ids(r *smoke.Report) []string {
	var out []string
	for _, c := range r.Checks {
		out = append(out, c.ID())
	}
	return out
}

// expectStatuses asserts the status of every check: checks whose name is in
// want have that status, all others pass.
func expectStatuses(t *testing.T, r *smoke.Report, want map[string]smoke.Status) {
	t.Helper()
	if got := strings.Join(ids(r), " "); got != strings.Join(allIDs, " ") {
		t.Fatalf("checks:\n got %s\nwant %s", got, strings.Join(allIDs, " "))
	}
	for _, c := range r.Checks {
		w, ok := want[c.Name]
		if !ok {
			w = smoke.StatusPass
		}
		if c.Status != w {
			t.Errorf("%s: status %s, want %s; detail: %s", c.ID(), c.Status, w, c.Detail)
		}
	}
}

func checkByID(t *testing.T, r *smoke.Report, id string) smoke.Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.ID() == id {
			return c
		}
	}
	t.Fatalf("no check %s in %v", id, ids(r))
	return smoke.Check{}
}

func TestCorrectMirrorPassesEverything(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{}))
	defer m.Close()
	r := run(t, m, fullOptions(m))
	expectStatuses(t, r, nil)
	if !r.Passed() || r.Err() != nil {
		t.Fatalf("Passed %v, Err %v", r.Passed(), r.Err())
	}
	if r.ExportID != m.ExportID || !r.GeneratedAt.Equal(genAt) {
		t.Errorf("export %s %s, want %s %s", r.ExportID, r.GeneratedAt, m.ExportID, genAt)
	}
	if got := r.Summary(); got != "15 passed, 0 failed, 0 skipped" {
		t.Errorf("summary %q", got)
	}
	for _, want := range []struct{ id, text string }{
		{"index", "exportId " + m.ExportID},
		{"jws/primary", "signed by key " + m.KeyID()},
		{"rate-limit", "429 after 10 index requests, Retry-After: 3600"},
		{"auth/primary", `WWW-Authenticate: Bearer realm="stellaops-mirror", scope="concelier.mirror.read"`},
		{"excititor/primary", "exportKey openvex/stellaops-2025-0001"},
		{"max-age", "is 1h0m0s old"},
	} {
		if c := checkByID(t, r, want.id); !strings.Contains(c.Detail, want.text) {
			t.Errorf("%s detail %q does not contain %q", want.id, c.Detail, want.text)
		}
	}
	if !r.StartedAt.Equal(genAt.Add(time.Hour)) {
		t.Errorf("startedAt %s", r.StartedAt)
	}
}

// TestEachFaultFailsItsCheck runs one mirror per way of being wrong; each
// fails exactly its checks and every other check passes.
func TestEachFaultFailsItsCheck(t *testing.T) {
	fail := smoke.StatusFail
	cases := []struct {
		name   string
		cfg    smoketest.Config
		adjust func(*smoke.Options)
		want   map[string]smoke.Status
		detail map[string]string // check id -> text its detail must contain
	}{
		{
			name:   "index Cache-Control",
			cfg:    protectedConfig(smoketest.Faults{IndexCacheControl: "no-cache"}),
			want:   map[string]smoke.Status{"index": fail},
			detail: map[string]string{"index": `/concelier/exports/index.json: HTTP 200: Cache-Control: want "public, max-age=60", got "no-cache"`},
		},
		{
			name: "manifest Cache-Control",
			cfg:  protectedConfig(smoketest.Faults{ManifestCacheControl: "public, max-age=60"}),
			want: map[string]smoke.Status{"manifest": fail},
			detail: map[string]string{
				"manifest/primary": `Cache-Control: want "public, max-age=300, immutable", got "public, max-age=60"`,
			},
		},
		{
			name:   "missing ETag",
			cfg:    protectedConfig(smoketest.Faults{NoETag: true}),
			want:   map[string]smoke.Status{"manifest": fail},
			detail: map[string]string{"manifest/secondary": "no ETag header"},
		},
		{
			name:   "no 304",
			cfg:    protectedConfig(smoketest.Faults{No304: true}),
			want:   map[string]smoke.Status{"manifest": fail},
			detail: map[string]string{"manifest/primary": "HTTP 200 OK, want 304"},
		},
		{
			name:   "no WWW-Authenticate",
			cfg:    protectedConfig(smoketest.Faults{NoWWWAuthenticate: true}),
			want:   map[string]smoke.Status{"auth": fail},
			detail: map[string]string{"auth/primary": "HTTP 401 without a WWW-Authenticate header"},
		},
		{
			// A tampered bundle.json no longer matches its signature either.
			name: "bundle tampered",
			cfg:  protectedConfig(smoketest.Faults{TamperBundle: true}),
			want: map[string]smoke.Status{"bundle": fail, "jws": fail},
			detail: map[string]string{
				"bundle/primary": "manifest.json bundle.size/sha256 says 2565 bytes, sha256 ",
				"jws/primary":    "does not match the payload",
			},
		},
		{
			name:   "JWS by another key",
			cfg:    protectedConfig(smoketest.Faults{JWSOtherKey: true}),
			want:   map[string]smoke.Status{"jws": fail},
			detail: map[string]string{"jws/primary": "which is not trusted"},
		},
		{
			name:   "digest not matching the index",
			cfg:    protectedConfig(smoketest.Faults{IndexDigest: true}),
			want:   map[string]smoke.Status{"bundle": fail},
			detail: map[string]string{"bundle/primary": "index.json bundleSize/bundleSha256 says 2565 bytes, sha256 f41f3fa625ff120ddca7ef456bf66371ecea23c129f4e4c32367101edb516cf8 (sha256 differs)"},
		},
		{
			name: "excititor download digest mismatch",
			cfg:  protectedConfig(smoketest.Faults{TamperVEX: true}),
			want: map[string]smoke.Status{"excititor": fail},
			detail: map[string]string{
				"excititor/primary": `/excititor/mirror/primary/download/openvex/stellaops-2025-0001: HTTP 200: export "openvex/stellaops-2025-0001" does not match: got 490 bytes`,
			},
		},
		{
			name:   "no 429",
			cfg:    smoketest.Config{User: testUser, Password: testPassword},
			adjust: func(o *smoke.Options) { o.RateLimitRequests = 25 },
			want:   map[string]smoke.Status{"rate-limit": fail},
			detail: map[string]string{"rate-limit": "no 429 after 25 index requests"},
		},
		{
			name: "Retry-After not an integer",
			cfg: smoketest.Config{User: testUser, Password: testPassword, IndexBudget: 3,
				RetryAfter: "Wed, 21 Oct 2025 07:28:00 GMT"},
			want:   map[string]smoke.Status{"rate-limit": fail},
			detail: map[string]string{"rate-limit": "want an integer number of seconds"},
		},
		{
			name:   "stale export",
			cfg:    protectedConfig(smoketest.Faults{}),
			adjust: func(o *smoke.Options) { o.Now = clock(genAt.Add(49 * time.Hour)) },
			want:   map[string]smoke.Status{"max-age": fail},
			detail: map[string]string{"max-age": "is 49h0m0s old at 2025-03-03T13:00:00Z, older than the maximum age 24h0m0s"},
		},
		{
			name:   "anonymous access although credentials were given",
			cfg:    protectedConfig(smoketest.Faults{Anonymous: true}),
			want:   map[string]smoke.Status{"auth": fail},
			detail: map[string]string{"auth/primary": "readable anonymously although credentials were given"},
		},
		{
			name:   "not ready",
			cfg:    protectedConfig(smoketest.Faults{NotReady: true}),
			want:   map[string]smoke.Status{"readyz": fail},
			detail: map[string]string{"readyz": `HTTP 503 Service Unavailable, body: "no active export loaded", want 200`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := smoketest.New(tc.cfg)
			defer m.Close()
			opts := fullOptions(m)
			if tc.adjust != nil {
				tc.adjust(&opts)
			}
			r := run(t, m, opts)
			expectStatuses(t, r, tc.want)
			for id, text := range tc.detail {
				c := checkByID(t, r, id)
				if !strings.Contains(c.Detail, text) {
					t.Errorf("%s detail %q does not contain %q", id, c.Detail, text)
				}
			}
			err := r.Err()
			if r.Passed() || !errors.Is(err, failure.ErrVerification) || failure.Code(err) != failure.ExitVerification {
				t.Fatalf("Passed %v, Err %v (code %d), want a verification failure", r.Passed(), err, failure.Code(err))
			}
		})
	}
}

func TestFailureDetailNamesTheRequest(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{ManifestCacheControl: "no-store"}))
	defer m.Close()
	r := run(t, m, fullOptions(m))
	c := checkByID(t, r, "manifest/primary")
	want := m.URL + "/concelier/exports/mirror/primary/manifest.json"
	if c.URL != want || c.HTTPStatus != http.StatusOK {
		t.Errorf("url %q status %d, want %q 200", c.URL, c.HTTPStatus, want)
	}
	err := r.Err()
	if err == nil || !strings.Contains(err.Error(), "2 of 15 checks failed: manifest/primary, manifest/secondary") ||
		!strings.Contains(err.Error(), m.URL) {
		t.Errorf("Err() = %v", err)
	}
}

func TestEquivalentCacheControlIsAWarning(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{IndexCacheControl: "max-age=60,public"}))
	defer m.Close()
	r := run(t, m, fullOptions(m))
	expectStatuses(t, r, map[string]smoke.Status{"index": smoke.StatusWarn})
	if !r.Passed() || r.Err() != nil {
		t.Fatalf("a warning must not fail the run: %v", r.Err())
	}
	if got := r.Summary(); got != "14 passed, 0 failed, 0 skipped, 1 warning" {
		t.Errorf("summary %q", got)
	}
}

func TestSkips(t *testing.T) {
	t.Run("optional checks not asked for", func(t *testing.T) {
		m := smoketest.New(protectedConfig(smoketest.Faults{}))
		defer m.Close()
		r := run(t, m, smoke.Options{URL: m.URL, User: testUser, Password: testPassword, Now: clock(genAt)})
		skip := smoke.StatusSkip
		expectStatuses(t, r, map[string]smoke.Status{"jws": skip, "rate-limit": skip, "max-age": skip})
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
	})
	t.Run("anonymous domain without credentials", func(t *testing.T) {
		m := smoketest.New(smoketest.Config{IndexBudget: 5})
		defer m.Close()
		opts := fullOptions(m)
		opts.User, opts.Password = "", ""
		r := run(t, m, opts)
		expectStatuses(t, r, map[string]smoke.Status{"auth": smoke.StatusSkip})
		if c := checkByID(t, r, "auth/primary"); c.Detail != "domain allows anonymous access" {
			t.Errorf("detail %q", c.Detail)
		}
	})
	t.Run("anonymous access declared", func(t *testing.T) {
		m := smoketest.New(protectedConfig(smoketest.Faults{Anonymous: true}))
		defer m.Close()
		opts := fullOptions(m)
		opts.AllowAnonymous = true
		r := run(t, m, opts)
		expectStatuses(t, r, map[string]smoke.Status{"auth": smoke.StatusSkip})
	})
	t.Run("health endpoints not offered", func(t *testing.T) {
		m := smoketest.New(protectedConfig(smoketest.Faults{NoHealth: true}))
		defer m.Close()
		r := run(t, m, fullOptions(m))
		expectStatuses(t, r, map[string]smoke.Status{"healthz": smoke.StatusSkip, "readyz": smoke.StatusSkip})
		if c := checkByID(t, r, "healthz"); !strings.Contains(c.Detail, "answered 404") {
			t.Errorf("detail %q", c.Detail)
		}
	})
}

func TestBearerToken(t *testing.T) {
	m := smoketest.New(smoketest.Config{Token: "tok-123", IndexBudget: 4})
	defer m.Close()
	opts := fullOptions(m)
	opts.User, opts.Password, opts.Token = "", "", "tok-123"
	expectStatuses(t, run(t, m, opts), nil)
}

func TestMissingCredentials(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{}))
	defer m.Close()
	opts := fullOptions(m)
	opts.User, opts.Password = "", ""

	r := run(t, m, opts)
	c := checkByID(t, r, "index")
	if c.Status != smoke.StatusFail || c.HTTPStatus != http.StatusUnauthorized ||
		!strings.Contains(c.Detail, "HTTP 401 Unauthorized, WWW-Authenticate: Bearer") ||
		!strings.Contains(c.Detail, "no credentials were given") {
		t.Errorf("index: %s %d %q", c.Status, c.HTTPStatus, c.Detail)
	}
	// Without the index and without --domain there is no domain to check.
	if got := strings.Join(ids(r), " "); got != "index rate-limit max-age healthz readyz" {
		t.Errorf("checks %s", got)
	}

	// With domains named, the domain checks use the contract's paths.
	opts.Domains = []string{"primary"}
	r = run(t, m, opts)
	if c := checkByID(t, r, "manifest/primary"); c.Status != smoke.StatusFail || c.HTTPStatus != 401 {
		t.Errorf("manifest: %s %d %q", c.Status, c.HTTPStatus, c.Detail)
	}
	if c := checkByID(t, r, "auth/primary"); c.Status != smoke.StatusPass {
		t.Errorf("auth: %s %q", c.Status, c.Detail)
	}
	if c := checkByID(t, r, "jws/primary"); c.Status != smoke.StatusSkip {
		t.Errorf("jws: %s %q", c.Status, c.Detail)
	}
}

func TestDomainSelection(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{}))
	defer m.Close()
	opts := fullOptions(m)
	opts.CheckRateLimit = false

	opts.Domains = []string{"secondary"}
	r := run(t, m, opts)
	want := "index manifest/secondary bundle/secondary jws/secondary excititor/secondary auth/secondary rate-limit max-age healthz readyz"
	if got := strings.Join(ids(r), " "); got != want {
		t.Errorf("checks %s", got)
	}
	if !r.Passed() {
		t.Errorf("unexpected failure: %v", r.Err())
	}

	opts.Domains = []string{"primary", "tertiary"}
	r = run(t, m, opts)
	c := checkByID(t, r, "index")
	if c.Status != smoke.StatusFail || !strings.Contains(c.Detail, `domain "tertiary" is not listed in index.json (listed: primary, secondary)`) {
		t.Errorf("index: %s %q", c.Status, c.Detail)
	}
	for _, name := range []string{"manifest", "bundle", "jws", "excititor", "auth"} {
		if c := checkByID(t, r, name+"/tertiary"); c.Status != smoke.StatusSkip {
			t.Errorf("%s: %s %q", c.ID(), c.Status, c.Detail)
		}
		if c := checkByID(t, r, name+"/primary"); c.Status != smoke.StatusPass {
			t.Errorf("%s: %s %q", c.ID(), c.Status, c.Detail)
		}
	}
}

func TestURLForms(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{}))
	defer m.Close()
	for _, u := range []string{m.URL + "/", m.URL + "/concelier/exports/index.json", m.URL + "/concelier/exports/"} {
		opts := fullOptions(m)
		opts.URL = u
		opts.CheckRateLimit = false
		r := run(t, m, opts)
		if r.URL != m.URL+"/" || !r.Passed() {
			t.Errorf("%s: report url %s, err %v", u, r.URL, r.Err())
		}
	}
}

func TestBadOptionsAreUsageErrors(t *testing.T) {
	for _, opts := range []smoke.Options{
		{URL: ""},
		{URL: "ftp://mirror.example"},
		{URL: "https://"},
		{URL: "https://bob:pw@mirror.example"},
		{URL: "https://mirror.example", User: "bob", Password: "pw", Token: "t"},
		{URL: "https://mirror.example", Domains: []string{"Primary"}},
		{URL: "https://mirror.example", Domains: []string{"a", "a"}},
	} {
		r, err := smoke.Run(context.Background(), opts)
		if r != nil || failure.Code(err) != failure.ExitUsage {
			t.Errorf("%+v: report %v, err %v (code %d), want a usage error", opts, r, err, failure.Code(err))
		}
	}
}

func TestUnreachableMirror(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		r, err := smoke.Run(context.Background(), smoke.Options{URL: "http://" + addr, Now: clock(genAt)})
		assertUnreachable(t, r, err)
	})
	t.Run("TLS certificate not trusted", func(t *testing.T) {
		m := smoketest.NewTLS(protectedConfig(smoketest.Faults{}))
		defer m.Close()
		r, err := smoke.Run(context.Background(), smoke.Options{
			URL: m.URL, User: testUser, Password: testPassword, Client: &http.Client{}, Now: clock(genAt),
		})
		assertUnreachable(t, r, err)
		if !strings.Contains(r.Checks[0].Detail, "certificate") {
			t.Errorf("detail %q", r.Checks[0].Detail)
		}
	})
	t.Run("TLS with the CA", func(t *testing.T) {
		m := smoketest.NewTLS(protectedConfig(smoketest.Faults{}))
		defer m.Close()
		expectStatuses(t, run(t, m, fullOptions(m)), nil)
	})
}

func assertUnreachable(t *testing.T, r *smoke.Report, err error) {
	t.Helper()
	if !errors.Is(err, smoke.ErrUnreachable) || failure.Code(err) != failure.ExitError {
		t.Fatalf("err %v (code %d), want ErrUnreachable with exit 1", err, failure.Code(err))
	}
	if r == nil || len(r.Checks) != 1 || r.Checks[0].Name != smoke.NameIndex || r.Checks[0].Status != smoke.StatusFail {
		t.Fatalf("report %+v, want one failed index check", r)
	}
}

// TestStalledDownload ends a download that stops sending bytes after the
// timeout instead of hanging.
func TestStalledDownload(t *testing.T) {
	m := smoketest.NewUnstarted(protectedConfig(smoketest.Faults{}))
	inner := m.Config.Handler
	m.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/concelier/exports/mirror/primary/bundle.json" {
			inner.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"schemaVersion":`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	m.Start()
	defer m.Close()
	opts := fullOptions(m)
	opts.Timeout = 200 * time.Millisecond
	r := run(t, m, opts)
	c := checkByID(t, r, "bundle/primary")
	if c.Status != smoke.StatusFail || !strings.Contains(c.Detail, "download interrupted after 17 bytes: no data received for 200ms") {
		t.Errorf("bundle: %s %q", c.Status, c.Detail)
	}
	if c := checkByID(t, r, "jws/primary"); c.Status != smoke.StatusSkip {
		t.Errorf("jws: %s %q", c.Status, c.Detail)
	}
	if c := checkByID(t, r, "bundle/secondary"); c.Status != smoke.StatusPass {
		t.Errorf("bundle/secondary: %s %q", c.Status, c.Detail)
	}
}

func TestInterrupted(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{}))
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	opts := fullOptions(m)
	opts.VerifyJWS = func(jws, payload []byte) (string, error) {
		cancel()
		return m.VerifyJWS(jws, payload)
	}
	r, err := smoke.Run(ctx, opts)
	if !errors.Is(err, context.Canceled) || errors.Is(err, smoke.ErrUnreachable) || r == nil {
		t.Fatalf("report %v, err %v", r != nil, err)
	}
}

func TestReportJSON(t *testing.T) {
	m := smoketest.New(protectedConfig(smoketest.Faults{NoETag: true}))
	defer m.Close()
	r := run(t, m, fullOptions(m))
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "checks duration durationMs exportId failed generatedAt passed schemaVersion skipped startedAt url warnings"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys %s, want %s", got, want)
	}
	var parsed struct {
		SchemaVersion int       `json:"schemaVersion"`
		URL           string    `json:"url"`
		StartedAt     time.Time `json:"startedAt"`
		Passed        int       `json:"passed"`
		Failed        int       `json:"failed"`
		Skipped       int       `json:"skipped"`
		Checks        []struct {
			Number     int    `json:"number"`
			Name       string `json:"name"`
			Domain     string `json:"domain"`
			Status     string `json:"status"`
			Detail     string `json:"detail"`
			URL        string `json:"url"`
			HTTPStatus int    `json:"httpStatus"`
			Duration   string `json:"duration"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.SchemaVersion != 1 || parsed.URL != m.URL+"/" || parsed.Passed != 13 || parsed.Failed != 2 ||
		parsed.Skipped != 0 || len(parsed.Checks) != 15 || !parsed.StartedAt.Equal(genAt.Add(time.Hour)) {
		t.Errorf("parsed %+v", parsed)
	}
	c := parsed.Checks[1]
	if c.Number != 2 || c.Name != "manifest" || c.Domain != "primary" || c.Status != "fail" ||
		c.HTTPStatus != 200 || c.Duration != "0s" || !strings.Contains(c.Detail, "no ETag") {
		t.Errorf("check %+v", c)
	}
}
