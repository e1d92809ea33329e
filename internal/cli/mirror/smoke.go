package mirror

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/smoke"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Environment variables read by "mirror smoke".
const (
	SmokePasswordEnv = "STELLAOPS_MIRROR_PASSWORD"
	SmokeTokenEnv    = "STELLAOPS_MIRROR_TOKEN"
)

// SmokeOptions holds the flags and dependencies of "mirror smoke".
type SmokeOptions struct {
	IO *iostreams.IO

	// URL of the mirror to check; empty runs the self-contained mode.
	URL     string
	Domains []string

	User          string
	PasswordStdin bool
	Token         string
	// AllowAnonymous accepts domains that answer without credentials.
	AllowAnonymous bool

	// KeyFile or TrustRootsFile verify bundle.json.jws.
	KeyFile        string
	TrustRootsFile string

	CheckRateLimit    bool
	RateLimitRequests int
	MaxAge            string
	Timeout           time.Duration
	CAFile            string
	JUnitFile         string
	// KeepDir keeps what the self-contained mode made there.
	KeepDir string

	// Now returns the current time; tests fix it.
	Now func() time.Time

	// jwsVerifierFor turns the --key or --trust-roots file at path into the
	// verifier of bundle.json.jws, trusting keys as of now().
	jwsVerifierFor func(path string, now func() time.Time) (smoke.JWSVerifier, error)
}

// NewCmdSmoke returns "mirror smoke".
func NewCmdSmoke(io *iostreams.IO) *cobra.Command {
	return newCmdSmoke(io, nil)
}

// newCmdSmoke builds the command; configure, when not nil, adjusts the
// options after the flags are parsed (tests inject a clock and verifier).
func newCmdSmoke(io *iostreams.IO, configure func(*SmokeOptions)) *cobra.Command {
	opts := &SmokeOptions{IO: io, Now: time.Now, jwsVerifierFor: jwsVerifierFromFile}
	cmd := &cobra.Command{
		Use:   "smoke [--url URL] [--domain ID]... [--user NAME | --token TOKEN] [--key PUBKEY | --trust-roots FILE]",
		Short: "Run the deployment smoke tests against a mirror and report one row per check",
		Long: `Smoke runs the runbook's smoke tests against the mirror at --url and prints one
row per check with its status (pass, fail, skip, warn), the detail and the time
it took. Checks 2 to 6 run once per domain.

  1 index       /concelier/exports/index.json answers 200 with the credentials,
                is valid JSON with exportId, generatedAt and the domains, and
                has Cache-Control "public, max-age=60".
  2 manifest    manifest.json has Cache-Control "public, max-age=300, immutable"
                and a strong ETag, and If-None-Match with it answers 304.
  3 bundle      bundle.json downloads; its size and SHA-256 match manifest.json
                and index.json (hashed while streaming).
  4 jws         bundle.json.jws verifies over the downloaded bundle.json with
                --key or --trust-roots (skipped without them). bundle.json is
                kept in memory for this, up to 256 MiB; a larger one is a warn.
  5 excititor   /excititor/mirror/{domain}/index lists exports[].exportKey, and
                the first export downloads with the size and SHA-256 it lists.
  6 auth        manifest.json requested without credentials answers 401 with a
                WWW-Authenticate Bearer challenge. A domain that answers 200 is
                a skip ("domain allows anonymous access") when no credentials
                were given, but a failure when they were: you expected it to be
                protected. --allow-anonymous makes that a skip too (open
                domains, or a host in the mirror's bypass networks).
  7 rate-limit  with --check-rate-limit: up to --rate-limit-requests index
                requests reach 429 with an integer Retry-After. This uses up the
                hourly index budget of the credentials (or of this host), so it
                runs last; do not point it at a mirror that clients depend on
                with the same credentials.
  8 max-age     with --max-age: index.json's generatedAt is not older than that.
  9 healthz, readyz  answer 200 without credentials; 404 (not offered) is a skip.

Failures name the request, the status code and the header or digest that was
wrong with the expected and the actual value, so the table can go into an
incident ticket as it is. The table goes to stdout (tab-separated when stdout
is not a terminal), the summary "N passed, N failed, N skipped" to stderr;
-o json prints the report as a JSON document and --junit FILE also writes JUnit
XML (one test case per check) for CI systems.

Credentials: --user NAME with the password in STELLAOPS_MIRROR_PASSWORD or on
the first line of stdin with --password-stdin (HTTP Basic), or a bearer token
with --token or, better, in STELLAOPS_MIRROR_TOKEN (a flag value is visible to
other users of the host). They are sent only to the host of --url.

--url is the mirror's base URL; a reverse proxy's path prefix is kept, and the
index URL itself (…/concelier/exports/index.json) is accepted too. --timeout is
the longest wait for a response or for the next bytes of a download.

Without --url, smoke builds a mirror of its own from an embedded sample feed on
127.0.0.1 and checks that.

Exit status: 0 every check passed (skips and warnings allowed), 1 the mirror
could not be reached (connection refused, DNS, TLS, no response), 2 a check
failed, 4 bad invocation or unreadable key, trust-roots or CA file.`,
		Example: `  # After a deployment: every check, with the producer's key
  STELLAOPS_MIRROR_PASSWORD=... stellaops-cli mirror smoke --url https://mirror.internal:8443 \
      --user smoke --key cosign.pub --max-age 26h

  # In CI, with a JUnit report and the rate-limit check, against a private CA
  STELLAOPS_MIRROR_TOKEN=$TOKEN stellaops-cli mirror smoke --url https://mirror.internal:8443 \
      --domain primary --trust-roots roots.pem --ca-file ca.pem --check-rate-limit --junit smoke.xml

  # No URL: build a mirror from the embedded sample feed on 127.0.0.1 and check it
  stellaops-cli mirror smoke
  stellaops-cli mirror smoke --keep ./smoke-demo

  # Machine-readable
  stellaops-cli mirror smoke --url https://mirror.internal:8443 -o json | jq '.checks[] | select(.status=="fail")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if configure != nil {
				configure(opts)
			}
			return runSmoke(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.URL, "url", "", "base URL of the mirror to check, e.g. https://mirror.internal:8443 (default: a self-contained mirror)")
	f.StringArrayVar(&opts.Domains, "domain", nil, "check only this domain (repeatable; default: every domain in index.json)")
	f.StringVar(&opts.User, "user", "", "user name for HTTP Basic; the password comes from "+SmokePasswordEnv+" or --password-stdin")
	f.BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the --user password from the first line of stdin")
	f.StringVar(&opts.Token, "token", "", "bearer token (default $"+SmokeTokenEnv+", which is safer than this flag)")
	f.BoolVar(&opts.AllowAnonymous, "allow-anonymous", false, "treat domains readable without credentials as intended (auth check skips)")
	f.StringVar(&opts.KeyFile, "key", "", "public key file (PEM, cosign.pub) that must have signed bundle.json.jws")
	f.StringVar(&opts.TrustRootsFile, "trust-roots", "", "PEM file of trusted keys; bundle.json.jws must verify with one of them")
	f.BoolVar(&opts.CheckRateLimit, "check-rate-limit", false, "expect 429 with Retry-After within --rate-limit-requests index requests (uses up the hourly index budget)")
	f.IntVar(&opts.RateLimitRequests, "rate-limit-requests", smoke.DefaultRateLimitRequests, "most index requests sent by --check-rate-limit")
	f.StringVar(&opts.MaxAge, "max-age", "", "fail when the export's generatedAt is older than this, e.g. 26h or 2d")
	f.DurationVar(&opts.Timeout, "timeout", smoke.DefaultTimeout, "longest wait for a response, or for the next bytes of a download")
	f.StringVar(&opts.CAFile, "ca-file", "", "PEM file of the CA certificates to trust for https (instead of the system's)")
	f.StringVar(&opts.JUnitFile, "junit", "", "also write the results as JUnit XML to `FILE`")
	f.StringVar(&opts.KeepDir, "keep", "", "without --url: keep the key, bundle, export root and htpasswd in this empty `DIR`")
	cmd.MarkFlagsMutuallyExclusive("key", "trust-roots")
	cmd.MarkFlagsMutuallyExclusive("user", "token")
	_ = cmd.MarkFlagFilename("key", "pem", "pub")
	_ = cmd.MarkFlagFilename("trust-roots", "pem", "pub", "crt")
	_ = cmd.MarkFlagFilename("ca-file", "pem", "crt")
	_ = cmd.MarkFlagFilename("junit", "xml")
	return cmd
}

// runSmoke checks the mirror at --url, or a self-contained one without it.
func runSmoke(ctx context.Context, opts *SmokeOptions) error {
	if opts.URL == "" {
		return runSelfContained(ctx, opts)
	}
	so, err := opts.smokeOptions()
	if err != nil {
		return err
	}
	report, runErr := smoke.Run(ctx, so)
	return finishSmoke(opts, report, runErr)
}

// runSelfContained exports, imports and serves a sample mirror on loopback,
// then checks it like runSmoke.
func runSelfContained(ctx context.Context, opts *SmokeOptions) error {
	io := opts.IO
	if opts.KeepDir != "" {
		if entries, err := os.ReadDir(opts.KeepDir); err == nil && len(entries) > 0 {
			return failure.Usagef("--keep %s: the folder is not empty", opts.KeepDir)
		}
	}
	io.Infof("building a self-contained mirror from the embedded sample feed (ephemeral key, export, verify, import, serve on 127.0.0.1)\n")
	report, lm, runErr := smoke.RunLocal(ctx, smoke.LocalOptions{Dir: opts.KeepDir, Now: opts.Now})
	err := finishSmoke(opts, report, runErr)
	if opts.KeepDir != "" && lm != nil && !io.JSON() {
		fmt.Fprintf(io.Err, `
kept in %[1]s:
  signing key   %[2]s (public: %[3]s)
  bundle        %[4]s
  export root   %[5]s
  htpasswd      %[6]s (user %[7]s, password %[8]s)
try next:
  stellaops-cli mirror verify --bundle-path %[4]s --trust-roots %[3]s
  stellaops-cli mirror status --export-root %[5]s --log
  stellaops-cli mirror serve --export-root %[5]s --htpasswd %[6]s --require-authentication
  STELLAOPS_MIRROR_PASSWORD=%[8]s stellaops-cli mirror smoke --url http://127.0.0.1:8443 --user %[7]s --key %[3]s
`, lm.Dir, lm.Key, lm.PublicKey, lm.Bundle, lm.ExportRoot, lm.Htpasswd, lm.User, lm.Password)
	}
	return err
}

// smokeOptions turns the flags into smoke.Options: credentials, the HTTP
// client, the JWS verifier and the limits.
func (opts *SmokeOptions) smokeOptions() (smoke.Options, error) {
	io := opts.IO
	getenv := io.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	so := smoke.Options{
		URL: opts.URL, Domains: opts.Domains, AllowAnonymous: opts.AllowAnonymous,
		CheckRateLimit: opts.CheckRateLimit, RateLimitRequests: opts.RateLimitRequests,
		Timeout: opts.Timeout, Now: now,
	}
	if opts.Timeout <= 0 {
		return so, failure.Usagef("--timeout %s: want a positive duration such as 30s", opts.Timeout)
	}
	if opts.RateLimitRequests <= 0 {
		return so, failure.Usagef("--rate-limit-requests %d: want a positive number", opts.RateLimitRequests)
	}
	if opts.MaxAge != "" {
		d, err := parseDuration("max-age", opts.MaxAge)
		if err != nil {
			return so, err
		}
		so.MaxAge = d
	}

	switch {
	case opts.PasswordStdin && opts.User == "":
		return so, failure.Usagef("--password-stdin needs --user")
	case opts.User != "":
		so.User = opts.User
		if opts.PasswordStdin {
			pw, err := readSecretLine(io, "--password-stdin")
			if err != nil {
				return so, err
			}
			so.Password = pw
		} else {
			so.Password = getenv(SmokePasswordEnv)
		}
		if so.Password == "" {
			return so, failure.WithHint(failure.Usagef("--user %s: no password", opts.User),
				"set "+SmokePasswordEnv+" or pipe the password into --password-stdin")
		}
	default:
		so.Token = opts.Token
		if so.Token == "" {
			so.Token = strings.TrimSpace(getenv(SmokeTokenEnv))
		}
	}

	if path := firstNonEmpty(opts.KeyFile, opts.TrustRootsFile); path != "" {
		if opts.jwsVerifierFor == nil {
			return so, errors.New("--key/--trust-roots: JWS verification is not available in this build")
		}
		v, err := opts.jwsVerifierFor(path, now)
		if err != nil {
			return so, failure.Classify(failure.ErrUsage, err)
		}
		so.VerifyJWS = v
	}

	client, err := smokeHTTPClient(opts.CAFile, opts.Timeout)
	if err != nil {
		return so, err
	}
	so.Client = client

	if u, err := url.Parse(opts.URL); err == nil && u.Scheme == "http" && (so.User != "" || so.Token != "") && !isLoopback(u.Hostname()) {
		io.Warnf("sending credentials to %s over plain http", u.Host)
	}
	return so, nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// readSecretLine reads the first line of stdin, without its line ending.
func readSecretLine(io *iostreams.IO, flag string) (string, error) {
	if io.In == nil {
		return "", failure.Usagef("%s: no standard input", flag)
	}
	r := bufio.NewReaderSize(io.In, 4096)
	line, err := r.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) && len(line) == 0 {
		return "", failure.Usagef("%s: nothing on standard input", flag)
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", failure.Usagef("%s: first line of standard input is longer than 4096 bytes", flag)
	}
	s := strings.TrimRight(string(line), "\r\n")
	if s == "" {
		return "", failure.Usagef("%s: empty password on standard input", flag)
	}
	return s, nil
}

// jwsVerifierFromFile loads a --key or --trust-roots file (PEM public keys
// or certificates; a cosign.pub works) and verifies with pkg/sign.
func jwsVerifierFromFile(path string, now func() time.Time) (smoke.JWSVerifier, error) {
	roots, err := trust.LoadFile(path)
	if err != nil {
		return nil, err
	}
	return func(jws, payload []byte) (string, error) {
		res, err := sign.VerifyJWS(jws, bytes.NewReader(payload), roots, now())
		if err != nil {
			return "", err
		}
		return res.Key.ID, nil
	}, nil
}

// smokeHTTPClient returns the client of a smoke run: the environment's proxy
// settings, connect, TLS handshake and response header timeouts, and with
// caFile only the CA certificates of that file.
func smokeHTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = timeout
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read --ca-file: %w", err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, failure.Usagef("--ca-file %s: no PEM certificates found", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

// finishSmoke prints the report, writes the JUnit file and returns the
// error for the exit status: the run's own error (unreachable: 1), else a
// verification error when a check failed (2).
func finishSmoke(opts *SmokeOptions, report *smoke.Report, runErr error) error {
	io := opts.IO
	var errs []error
	if report != nil {
		if err := printSmokeReport(io, report); err != nil {
			return err
		}
		if opts.JUnitFile != "" {
			var buf bytes.Buffer
			err := report.WriteJUnit(&buf)
			if err == nil {
				err = atomicfile.WriteFile(opts.JUnitFile, buf.Bytes(), 0o644)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("write --junit %s: %w", opts.JUnitFile, err))
			}
		}
	}
	switch {
	case errors.Is(runErr, smoke.ErrUnreachable):
		errs = append([]error{failure.WithHint(runErr,
			"check the URL, DNS, the firewall and, for https, --ca-file")}, errs...)
	case runErr != nil:
		errs = append([]error{runErr}, errs...)
	case report != nil:
		if err := report.Err(); err != nil {
			errs = append([]error{err}, errs...)
		}
	}
	return errors.Join(errs...)
}

// printSmokeReport writes the report: JSON, or the table on stdout with the
// mirror, the export and the time before it and the summary after it on
// stderr.
func printSmokeReport(io *iostreams.IO, r *smoke.Report) error {
	if io.JSON() {
		return io.PrintJSON(r)
	}
	export := r.ExportID
	if export == "" {
		export = "unknown (index.json unavailable)"
	}
	io.Infof("mirror smoke of %s at %s, export %s\n", r.URL, r.StartedAt.UTC().Format(time.RFC3339), export)
	styled := io.ColorOut()
	rows := make([][]string, 0, len(r.Checks))
	for _, c := range r.Checks {
		detail := c.Detail
		if styled {
			detail = wrapWords(detail, smokeDetailWidth)
		}
		rows = append(rows, []string{c.ID(), string(c.Status), detail, smoke.FormatDuration(c.Duration)})
	}
	io.Table(io.Out, styled, []string{"CHECK", "STATUS", "DETAIL", "DURATION"}, rows)
	io.Infof("%s\n", r.Summary())
	return nil
}

// smokeDetailWidth is where details wrap in the styled table.
const smokeDetailWidth = 96

// wrapWords breaks s into lines of at most width runes at spaces; a word
// longer than width (a URL, a digest) gets a line of its own.
func wrapWords(s string, width int) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(s) {
		l := utf8.RuneCountInString(w)
		switch {
		case n == 0:
		case n+1+l > width:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += l
	}
	return b.String()
}
