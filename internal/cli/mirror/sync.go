package mirror

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	mirrorsync "github.com/stellaops/stellaops-cli/pkg/sync"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Environment of "mirror sync" (CONTRACT.md §3); flags win.
const (
	SyncEnvPrefix        = "CONCELIER__SOURCES__STELLAOPSMIRROR__"
	SyncEnvBaseAddress   = SyncEnvPrefix + "BASEADDRESS"
	SyncEnvIndexPath     = SyncEnvPrefix + "INDEXPATH"
	SyncEnvDomainID      = SyncEnvPrefix + "DOMAINID"
	SyncEnvHTTPTimeout   = SyncEnvPrefix + "HTTPTIMEOUT"
	SyncEnvSigEnabled    = SyncEnvPrefix + "SIGNATURE__ENABLED"
	SyncEnvSigKeyID      = SyncEnvPrefix + "SIGNATURE__KEYID"
	SyncEnvSigProvider   = SyncEnvPrefix + "SIGNATURE__PROVIDER"
	SyncEnvSigPublicKey  = SyncEnvPrefix + "SIGNATURE__PUBLICKEYPATH"
	SyncPasswordEnv      = "STELLAOPS_MIRROR_PASSWORD"
	SyncTokenEnv         = "STELLAOPS_MIRROR_TOKEN"
	defaultSyncProvider  = "default"
	maxCAFileSize        = 4 << 20
	syncOutputSchemaVers = 1
)

// SyncOptions holds the flags of "mirror sync".
type SyncOptions struct {
	IO                *iostreams.IO
	From              string
	IndexPath         string
	Domains           []string
	ExportRoot        string
	Timeout           string
	User              string
	CAFile            string
	KeyID             string
	SignatureProvider string
	AllowDowngrade    bool
	ReplaceTrustRoots bool
	Keep              int
	Wait              time.Duration
	Threshold         int
	Parallel          int
	Discover          bool
	Test              bool
	Interval          time.Duration
	verifyFlags

	changed func(string) bool
	// configure adjusts the library options (tests inject clocks).
	configure func(*mirrorsync.Options)
}

// NewCmdSync returns "mirror sync".
func NewCmdSync(io *iostreams.IO) *cobra.Command {
	return newCmdSync(io, nil)
}

func newCmdSync(io *iostreams.IO, configure func(*SyncOptions)) *cobra.Command {
	opts := &SyncOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "sync --from URL --export-root DIR [--trust-roots FILE]",
		Short: "Pull the upstream mirror's export over HTTP, verify it and activate it",
		Long: `Sync is the cron-driven connector between mirrors. It reads the upstream's
index.json with a conditional request; when nothing changed (304, or the same
export and per-domain fingerprint as recorded in ROOT/.stellaops/sync-state.json)
it exits 0 after that one request.

When the upstream has a new export, sync fetches its mirror.json and
mirror.dsse.json from the immutable /concelier/exports/{exportId}/ routes and
checks the signature before it trusts the file list. Every listed file is
copied from an earlier export of the root when one holds the same bytes, else
downloaded into ROOT/.stellaops/sync-partial/; an interrupted run resumes
there with Range and If-Range. Every file's size and SHA-256 are checked, no
body is read past the size mirror.json lists, and slow or stuck downloads are
cut by a deadline and a minimum-throughput watchdog. 5xx answers and timeouts
are retried with backoff; a 429 is waited out up to 5 minutes.

The export is then verified and activated exactly as "mirror import" does it
(lock, staging, high-water mark, atomic latest), so the root can be served by
"mirror serve" and synced from again: mirrors chain. A failed run leaves the
active export as it was; only partial downloads stay for the next run.

--domain names the domains this mirror needs: sync fails when the upstream
stops offering one, and --discover lists only those. The export itself is
always fetched whole, because mirror.json signs it as a whole.

--discover lists the upstream's domains; --test makes one index request and
reports reachability and latency. Neither writes anything.

--interval keeps running (for containers without cron): a sync every
interval, varied by up to 10%, until SIGTERM or Ctrl-C (exit 130). A failed
cycle is reported and the loop goes on.

Credentials: --user with the password in STELLAOPS_MIRROR_PASSWORD, or a bearer
token in STELLAOPS_MIRROR_TOKEN. The environment variables
CONCELIER__SOURCES__STELLAOPSMIRROR__BASEADDRESS, __INDEXPATH, __DOMAINID
(comma-separated), __HTTPTIMEOUT, __SIGNATURE__ENABLED, __SIGNATURE__KEYID,
__SIGNATURE__PUBLICKEYPATH and __SIGNATURE__PROVIDER set the same as the flags;
flags win.

Exit status: 0 synced or up to date, 1 network or I/O error (also a 429 whose
Retry-After is too long: the message says when to retry), 2 verification
failed, 3 refused by policy (rollback, expired), 4 bad invocation, 5 another
import or sync holds the lock, 130 interrupted.`,
		Example: `  # From cron every 15 minutes (quiet unless something fails)
  */15 * * * * stellaops-cli mirror sync -q --from https://mirror.example:8443 --export-root /srv/stellaops/mirror

  # First run: record the producer's keys in the export root
  stellaops-cli mirror sync --from https://mirror.example:8443 --export-root /srv/stellaops/mirror \
      --trust-roots /data/trust-roots/roots.pem

  # What does the upstream offer? Is it reachable?
  stellaops-cli mirror sync --from https://mirror.example:8443 --discover
  stellaops-cli mirror sync --from https://mirror.example:8443 --test

  # In a container: sync every 10 minutes until stopped
  STELLAOPS_MIRROR_TOKEN=$TOKEN stellaops-cli mirror sync --from https://mirror.example:8443 \
      --export-root /srv/mirror --interval 10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			boundMemory()
			opts.changed = cmd.Flags().Changed
			return runSync(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.From, "from", "", "base URL of the upstream mirror, e.g. https://mirror.example:8443 ("+SyncEnvBaseAddress+")")
	f.StringVar(&opts.IndexPath, "index-path", mirrorsync.DefaultIndexPath, "path of the upstream's index.json below --from ("+SyncEnvIndexPath+")")
	f.StringArrayVar(&opts.Domains, "domain", nil, "domain this mirror needs (repeatable; default: all; "+SyncEnvDomainID+")")
	f.StringVar(&opts.ExportRoot, "export-root", "", "export root to sync into (created if missing)")
	f.StringVar(&opts.Timeout, "timeout", mirrorsync.DefaultTimeout.String(), "connect, TLS and response-header timeout, and the limit for small documents; 5s to 300s ("+SyncEnvHTTPTimeout+")")
	f.StringVar(&opts.User, "user", "", "user name for HTTP Basic; the password comes from "+SyncPasswordEnv)
	f.StringVar(&opts.CAFile, "ca-file", "", "PEM file of the CA certificates to trust for https (instead of the system's)")
	f.StringVar(&opts.KeyID, "key-id", "", "require this key among the signers of mirror.json ("+SyncEnvSigKeyID+")")
	f.StringVar(&opts.SignatureProvider, "signature-provider", "", "signature provider name, recorded in the sync state ("+SyncEnvSigProvider+"; default \"default\")")
	f.BoolVar(&opts.AllowDowngrade, "allow-downgrade", false, "accept a sequence not above the high-water mark (recorded in the import log)")
	f.BoolVar(&opts.ReplaceTrustRoots, "replace-trust-roots", false, "replace the export root's trust store with --trust-roots (recorded in the import log)")
	f.IntVar(&opts.Keep, "keep", importer.DefaultKeep, "number of exports to keep; older ones are pruned")
	f.DurationVar(&opts.Wait, "wait", 0, "wait this long for another import or sync to release the lock (default: fail at once, exit 5)")
	f.IntVar(&opts.Threshold, "threshold", 1, "distinct trusted keys that must sign mirror.json")
	f.IntVar(&opts.Parallel, "parallel", mirrorsync.DefaultConcurrency, "files fetched at once")
	f.BoolVar(&opts.Discover, "discover", false, "list the upstream's domains and exit; writes nothing")
	f.BoolVar(&opts.Test, "test", false, "make one index request, report reachability and latency, and exit; writes nothing")
	f.DurationVar(&opts.Interval, "interval", 0, "keep running and sync every DURATION (with jitter) until stopped")
	opts.verifyFlags.AddFlags(cmd, false)
	_ = cmd.MarkFlagDirname("export-root")
	_ = cmd.MarkFlagFilename("ca-file", "pem", "crt")
	_ = cmd.RegisterFlagCompletionFunc("domain", completeDomainsFromExportRoot)
	if configure != nil {
		configure(opts)
	}
	return cmd
}

// env reads a variable of the environment.
func (opts *SyncOptions) env(name string) string {
	if opts.IO.Getenv == nil {
		return ""
	}
	return strings.TrimSpace(opts.IO.Getenv(name))
}

// flagSet reports whether the flag was given on the command line.
func (opts *SyncOptions) flagSet(name string) bool {
	return opts.changed != nil && opts.changed(name)
}

// resolve layers the environment under the flags and builds the library
// options. Every problem is a usage error (exit 4).
func (opts *SyncOptions) resolve() (mirrorsync.Options, error) {
	var so mirrorsync.Options
	if !opts.flagSet("from") {
		opts.From = opts.env(SyncEnvBaseAddress)
	}
	if !opts.flagSet("index-path") {
		if v := opts.env(SyncEnvIndexPath); v != "" {
			opts.IndexPath = v
		}
	}
	if !opts.flagSet("domain") {
		for _, d := range strings.Split(opts.env(SyncEnvDomainID), ",") {
			if d = strings.TrimSpace(d); d != "" {
				opts.Domains = append(opts.Domains, d)
			}
		}
	}
	timeoutText, timeoutName := opts.Timeout, "--timeout"
	if !opts.flagSet("timeout") {
		if v := opts.env(SyncEnvHTTPTimeout); v != "" {
			timeoutText, timeoutName = v, SyncEnvHTTPTimeout
		}
	}
	timeout, err := parseSyncTimeout(timeoutName, timeoutText)
	if err != nil {
		return so, err
	}
	if !opts.flagSet("verify-dsse") {
		if v := opts.env(SyncEnvSigEnabled); v != "" {
			b, err := parseEnvBool(v)
			if err != nil {
				return so, failure.Usagef("%s=%q: want true or false", SyncEnvSigEnabled, v)
			}
			opts.VerifyDSSE = b
		}
	}
	if !opts.flagSet("key-id") {
		opts.KeyID = opts.env(SyncEnvSigKeyID)
	}
	if !opts.flagSet("signature-provider") {
		opts.SignatureProvider = opts.env(SyncEnvSigProvider)
	}
	if opts.SignatureProvider == "" {
		opts.SignatureProvider = defaultSyncProvider
	}
	if !opts.flagSet("trust-roots") {
		opts.TrustRoots = opts.env(SyncEnvSigPublicKey)
	}

	switch {
	case opts.From == "":
		return so, failure.WithHint(failure.Usagef("--from is required"),
			"pass the upstream's base URL, e.g. --from https://mirror.example:8443, or set "+SyncEnvBaseAddress)
	case opts.Discover && opts.Test:
		return so, failure.Usagef("--discover and --test do not go together")
	case (opts.Discover || opts.Test) && opts.Interval > 0:
		return so, failure.Usagef("--interval does not go with --discover or --test")
	case !opts.Discover && !opts.Test && opts.ExportRoot == "":
		return so, failure.WithHint(failure.Usagef("--export-root is required"),
			"name the export root to sync into, e.g. --export-root /srv/stellaops/mirror")
	case opts.Interval < 0:
		return so, failure.Usagef("--interval %s: want a positive duration", opts.Interval)
	case opts.Keep < 1:
		return so, failure.Usagef("--keep must be at least 1")
	case opts.ReplaceTrustRoots && opts.TrustRoots == "":
		return so, failure.Usagef("--replace-trust-roots needs --trust-roots")
	}
	now := time.Time{}
	if opts.Now != "" {
		if now, err = opts.now(); err != nil {
			return so, err
		}
	}
	so = mirrorsync.Options{
		BaseURL: opts.From, IndexPath: opts.IndexPath, Domains: opts.Domains, ExportRoot: opts.ExportRoot,
		TrustRootsPath: opts.TrustRoots, ReplaceTrustRoots: opts.ReplaceTrustRoots,
		KeyID: opts.KeyID, SignatureProvider: opts.SignatureProvider,
		VerifyDSSE: opts.VerifyDSSE, VerifyChecksums: opts.VerifyChecksums, Threshold: opts.Threshold,
		Now: now, AllowDowngrade: opts.AllowDowngrade, Keep: opts.Keep, Wait: opts.Wait,
		Rotate: rotationHook, Timeout: timeout, Concurrency: opts.Parallel,
		Warn: func(s string) { opts.IO.Warnf("%s", s) },
	}
	if opts.TrustRoots != "" && !opts.Discover && !opts.Test {
		if so.TrustRoots, err = trust.LoadFile(opts.TrustRoots); err != nil {
			return so, err
		}
	}
	if opts.CAFile != "" {
		if so.RootCAs, err = loadCAFile(opts.CAFile); err != nil {
			return so, err
		}
	}
	if opts.User != "" {
		so.User = opts.User
		so.Password = opts.env(SyncPasswordEnv)
		if so.Password == "" {
			return so, failure.WithHint(failure.Usagef("--user %s: no password", opts.User),
				"set "+SyncPasswordEnv)
		}
	} else {
		so.Token = opts.env(SyncTokenEnv)
	}
	if opts.configure != nil {
		opts.configure(&so)
	}
	return so, nil
}

func runSync(ctx context.Context, opts *SyncOptions) error {
	io := opts.IO
	so, err := opts.resolve()
	if err != nil {
		return err
	}
	if !opts.Discover && !opts.Test {
		opts.warnDisabled(io)
	}
	var progress *iostreams.Progress
	if !opts.Discover && !opts.Test && opts.Interval == 0 {
		progress = io.NewProgress(-1, "syncing")
		so.Progress = progress.Add
	}
	s, err := mirrorsync.New(so)
	if err != nil {
		return err
	}
	if (so.Token != "" || so.User != "") && strings.HasPrefix(s.IndexURL(), "http://") && !isLoopbackURL(s.IndexURL()) {
		io.Warnf("sending credentials to %s over plain http", s.IndexURL())
	}
	switch {
	case opts.Discover:
		return runDiscover(ctx, io, s)
	case opts.Test:
		return runSyncTest(ctx, io, s)
	case opts.Interval > 0:
		return s.Loop(ctx, opts.Interval, func(res *mirrorsync.Result, err error) {
			if perr := printSyncResult(io, res, err); perr != nil {
				io.Warnf("%v", perr)
			}
			if err != nil && !io.JSON() {
				reportCycleError(io, err)
			}
		})
	}
	res, err := s.Sync(ctx)
	progress.Finish()
	if perr := printSyncResult(io, res, err); perr != nil {
		return perr
	}
	return err
}

// reportCycleError prints a failed cycle of --interval the way the root
// command prints a final error, and the loop goes on.
func reportCycleError(io *iostreams.IO, err error) {
	msg := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	fmt.Fprintf(io.Err, "stellaops-cli: error: %s\n", msg)
	if hint := failure.HintOf(err); hint != "" {
		fmt.Fprintf(io.Err, "stellaops-cli: hint: %s\n", hint)
	}
}

type syncOutput struct {
	*mirrorsync.Result
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
	Exit  int    `json:"exitCode"`
}

// printSyncResult renders one run: JSON, or one summary line on stdout
// (nothing with -q), and for a failed verification the problems.
func printSyncResult(io *iostreams.IO, res *mirrorsync.Result, err error) error {
	if res == nil {
		res = &mirrorsync.Result{SchemaVersion: syncOutputSchemaVers, State: mirrorsync.StateFailed}
	}
	if io.JSON() {
		out := syncOutput{Result: res, OK: err == nil, Exit: failure.Code(err)}
		if err != nil {
			out.Error = err.Error()
			out.Hint = failure.HintOf(err)
		}
		return io.PrintJSON(out)
	}
	if err != nil {
		if res.Report != nil && len(res.Report.Problems) > 0 {
			res.Report.Warnings = nil // printed as they happened
			return printReport(io, res.Report)
		}
		return nil
	}
	if io.Quiet {
		return nil
	}
	if res.State == mirrorsync.StateUpToDate {
		fmt.Fprintf(io.Out, "up to date: export %s from %s\n", res.ExportID, res.From)
		return nil
	}
	fmt.Fprintf(io.Out, "synced export %s (sequence %d) from %s: %d files, %s, %d downloaded, %d copied locally, %d resumed\n",
		res.ExportID, res.Sequence, res.From, res.Files, humanBytes(res.Bytes), res.Downloaded, res.Copied, res.Resumed)
	return nil
}

func runDiscover(ctx context.Context, io *iostreams.IO, s *mirrorsync.Syncer) error {
	d, err := s.Discover(ctx)
	if io.JSON() {
		if perr := io.PrintJSON(d); perr != nil {
			return perr
		}
		return err
	}
	if err != nil {
		return err
	}
	io.Infof("%s: export %s, generated %s, %d domain(s)\n", d.From, d.ExportID, d.GeneratedAt.UTC().Format(time.RFC3339), len(d.Domains))
	rows := make([][]string, 0, len(d.Domains))
	for _, dd := range d.Domains {
		signed := "no"
		if dd.Signed {
			signed = "yes"
		}
		formats := strings.Join(dd.ExportFormats, ",")
		if formats == "" {
			formats = "-"
		}
		rows = append(rows, []string{dd.ID, dd.DisplayName, strconv.Itoa(dd.AdvisoryCount), humanBytes(dd.BundleSize),
			formats, signed, orDash(dd.Alg), orDash(dd.Kid), dd.LastGenerated.UTC().Format(time.RFC3339)})
	}
	io.Table(io.Out, io.ColorOut(), []string{"DOMAIN", "DISPLAY NAME", "ADVISORIES", "BUNDLE SIZE", "FORMATS", "SIGNED", "ALG", "KID", "LAST GENERATED"}, rows)
	return nil
}

func runSyncTest(ctx context.Context, io *iostreams.IO, s *mirrorsync.Syncer) error {
	p, err := s.Test(ctx)
	if io.JSON() {
		if perr := io.PrintJSON(p); perr != nil {
			return perr
		}
		return err
	}
	if err != nil {
		return err
	}
	if !io.Quiet {
		fmt.Fprintf(io.Out, "reachable: %s: HTTP %d in %.1f ms (%.1f ms with the body), export %s, %d domain(s)\n",
			p.URL, p.Status, p.LatencyMs, p.TotalMs, p.ExportID, p.Domains)
	}
	return nil
}

// parseSyncTimeout reads a Go duration ("30s"), whole seconds ("30") or a
// .NET TimeSpan ("00:00:30"), and checks the 5s to 300s range.
func parseSyncTimeout(name, v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	var err error
	switch {
	case strings.Count(v, ":") == 2:
		parts := strings.Split(v, ":")
		h, e1 := strconv.Atoi(parts[0])
		m, e2 := strconv.Atoi(parts[1])
		sec, e3 := strconv.ParseFloat(parts[2], 64)
		if e1 != nil || e2 != nil || e3 != nil || h < 0 || m < 0 || sec < 0 {
			err = fmt.Errorf("bad TimeSpan")
		}
		d = time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second))
	default:
		if n, perr := strconv.Atoi(v); perr == nil {
			d = time.Duration(n) * time.Second
		} else {
			d, err = time.ParseDuration(v)
		}
	}
	if err != nil {
		return 0, failure.Usagef("%s %q: want a duration such as 30s", name, v)
	}
	if d < mirrorsync.MinTimeout || d > mirrorsync.MaxTimeout {
		return 0, failure.Usagef("%s %s: want between %s and %s", name, d, mirrorsync.MinTimeout, mirrorsync.MaxTimeout)
	}
	return d, nil
}

func parseEnvBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", v)
}

// loadCAFile reads PEM CA certificates for --ca-file.
func loadCAFile(path string) (*x509.CertPool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read --ca-file: %w", err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCAFileSize+1))
	if err == nil && len(data) > maxCAFileSize {
		err = fmt.Errorf("larger than %d bytes", maxCAFileSize)
	}
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read --ca-file %s: %w", path, err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, failure.Usagef("--ca-file %s: no PEM certificates found", path)
	}
	return pool, nil
}

// isLoopbackURL reports whether u names localhost or a loopback address.
func isLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && isLoopback(p.Hostname())
}
