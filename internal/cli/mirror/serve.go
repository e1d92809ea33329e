package mirror

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/serve"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// ServeOptions holds the flags of "mirror serve".
type ServeOptions struct {
	IO *iostreams.IO

	ConfigFile  string
	PrintConfig bool

	ExportRoot                 string
	ActiveExportID             string
	Listen                     string
	TLSCert                    string
	TLSKey                     string
	Htpasswd                   string
	AuthorityKeys              string
	AuthorityIssuer            string
	AuthorityAudiences         []string
	EnableImportAPI            bool
	TrustedProxies             []string
	BypassNetworks             []string
	AdminUsers                 []string
	RequireAuthentication      bool
	MaxIndexRequestsPerHour    int
	MaxDownloadRequestsPerHour int

	// changed reports whether the operator gave a flag.
	changed func(name string) bool
	// now is the clock (tests).
	now func() time.Time
	// started is called once the server listens (tests).
	started func(*serve.Server)
}

// serveMemoryLimit is the soft limit on the Go runtime's memory that serve
// sets when GOMEMLIMIT is not set: under many slow or idle connections the
// garbage collector then works harder instead of letting the heap double.
const serveMemoryLimit = 192 << 20

// serveImporter runs imports for the import API (--enable-import-api): the
// same import as "mirror import", on paths local to the server.
var serveImporter = func(io *iostreams.IO) serve.ImportFunc {
	return func(ctx context.Context, req serve.ImportRequest) error {
		if req.BundlePath == "" || req.BundlePath == "-" {
			return failure.Usagef("bundlePath must name a bundle folder or archive on the server")
		}
		var roots *trust.Roots
		if req.TrustRootsPath != "" {
			var err error
			if roots, err = trust.LoadFile(req.TrustRootsPath); err != nil {
				return err
			}
		}
		now := time.Now()
		partsRoots := roots
		if partsRoots == nil {
			partsRoots, _ = trust.LoadFile(filepath.Join(req.ExportRoot, exportroot.StateDirName, importer.TrustStoreFile))
		}
		stage, cleanup, err := stagerFor(ctx, io, req.BundlePath, partsRoots, now)
		if err != nil {
			return err
		}
		defer cleanup()
		_, err = importer.Import(ctx, importer.Options{
			BundlePath: req.BundlePath, Stage: stage, ExportRoot: req.ExportRoot,
			TrustRoots: roots, TrustRootsPath: req.TrustRootsPath,
			VerifyChecksums: req.VerifyChecksums, VerifyDSSE: req.VerifyDsse,
			Now: now, Command: "import-api", Rotate: rotationHook,
			Warn: func(s string) { io.Warnf("import API: %s", s) },
		})
		return err
	}
}

// NewCmdServe returns "mirror serve".
func NewCmdServe(io *iostreams.IO) *cobra.Command {
	return newCmdServe(io, nil)
}

// newCmdServe builds the command; configure, when not nil, adjusts the
// options after the flags are parsed (tests).
func newCmdServe(io *iostreams.IO, configure func(*ServeOptions)) *cobra.Command {
	opts := &ServeOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "serve --export-root DIR [--listen ADDR] [--config FILE] [--htpasswd FILE] [--tls-cert F --tls-key F]",
		Short: "Serve the active export of an export root over HTTP(S)",
		Long: `Serve publishes the active export of an export root: ACTIVEEXPORTID when set,
else the export "latest" points at, else the newest export folder. When an
import moves latest, new requests see the new export within a second; downloads
already running finish from the old one.

Routes (Cache-Control in brackets):
  GET /concelier/exports/index.json                         [public, max-age=60]
  GET /concelier/exports/mirror/{domain}/manifest.json      [public, max-age=300, immutable]
      .../bundle.json, bundle.json.jws, bundle.json.sig
  GET /concelier/exports/{exportId}/{path}                  [public, max-age=31536000, immutable]
  GET /excititor/mirror/{domain}/index                      [public, max-age=60]
  GET /excititor/mirror/{domain}/download/{exportKey}       [public, max-age=300, immutable]
  GET /healthz, /readyz, /metrics                           [no-store]
  POST /api/v1/mirror/import, GET .../import/status         [no-store] (--enable-import-api)

Files carry a strong ETag (their SHA-256 from mirror.json) and honour
If-None-Match and Range.

Authentication per domain: Basic against an htpasswd file of bcrypt entries,
and bearer JWTs checked offline against --authority-keys (PEM or JWKS) for
issuer, audience, expiry and the scope concelier.mirror.read or
excititor.mirror.read. Budgets per domain and client: index and download
requests per hour (0 = unlimited); over budget answers 429 with Retry-After.

Settings come from, in increasing precedence: the --config file (YAML or
JSON), the CONCELIER__MIRROR__* and CONCELIER__AUTHORITY__* environment
variables, and flags. --print-config shows the result and where each value
came from.

Signals: SIGTERM or Ctrl-C stops accepting connections and lets requests in
flight finish (up to 30 s), then exits 0. SIGHUP re-reads the htpasswd,
authority key and TLS files.

Access log: one JSON object per request and line on stderr.`,
		Example: `  stellaops-cli mirror serve --export-root /srv/stellaops/mirror

  # Protected, behind a reverse proxy on the same host
  stellaops-cli mirror serve --export-root /srv/mirror --listen 127.0.0.1:8443 \
      --htpasswd /etc/stellaops/mirror.htpasswd --require-authentication \
      --trusted-proxy 127.0.0.1 --max-index-requests-per-hour 600

  # Show the effective configuration
  CONCELIER__MIRROR__EXPORTROOT=/srv/mirror stellaops-cli mirror serve --config serve.yaml --print-config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.changed = cmd.Flags().Changed
			if configure != nil {
				configure(opts)
			}
			return runServe(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ConfigFile, "config", "", "configuration file, YAML or JSON (see docs/serve.md)")
	f.BoolVar(&opts.PrintConfig, "print-config", false, "print the effective configuration and where each value came from, then exit")
	f.StringVar(&opts.ExportRoot, "export-root", "", "export root to serve (CONCELIER__MIRROR__EXPORTROOT)")
	f.StringVar(&opts.ActiveExportID, "active-export-id", "", "serve this export instead of latest (CONCELIER__MIRROR__ACTIVEEXPORTID)")
	f.StringVar(&opts.Listen, "listen", serve.DefaultListen, "address to listen on; port 0 picks a free port")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "TLS certificate chain, PEM (TLS 1.2 or later; with --tls-key)")
	f.StringVar(&opts.TLSKey, "tls-key", "", "TLS private key, PEM")
	f.StringVar(&opts.Htpasswd, "htpasswd", "", "htpasswd file with bcrypt entries for Basic authentication")
	f.StringVar(&opts.AuthorityKeys, "authority-keys", "", "PEM or JWKS file of the keys that sign bearer tokens")
	f.StringVar(&opts.AuthorityIssuer, "authority-issuer", "", "required iss claim of bearer tokens")
	f.StringArrayVar(&opts.AuthorityAudiences, "authority-audience", nil, "accepted aud claim of bearer tokens (repeatable)")
	f.BoolVar(&opts.EnableImportAPI, "enable-import-api", false, "offer POST /api/v1/mirror/import to authenticated admins")
	f.StringArrayVar(&opts.TrustedProxies, "trusted-proxy", nil, "CIDR of a reverse proxy whose X-Forwarded-For is believed (repeatable)")
	f.StringArrayVar(&opts.BypassNetworks, "bypass-network", nil, "CIDR whose clients skip authentication (repeatable; CONCELIER__AUTHORITY__BYPASSNETWORKS__{n})")
	f.StringArrayVar(&opts.AdminUsers, "admin-user", nil, "htpasswd user allowed to use the import API (repeatable)")
	f.BoolVar(&opts.RequireAuthentication, "require-authentication", false, "require credentials on every domain without its own setting (CONCELIER__MIRROR__REQUIREAUTHENTICATION)")
	f.IntVar(&opts.MaxIndexRequestsPerHour, "max-index-requests-per-hour", 0, "index requests per client and domain per hour; 0 = unlimited (CONCELIER__MIRROR__MAXINDEXREQUESTSPERHOUR)")
	f.IntVar(&opts.MaxDownloadRequestsPerHour, "max-download-requests-per-hour", 0, "download requests per client and domain per hour; 0 = unlimited")
	_ = cmd.MarkFlagDirname("export-root")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml", "json")
	_ = cmd.MarkFlagFilename("htpasswd")
	_ = cmd.MarkFlagFilename("tls-cert", "pem", "crt")
	_ = cmd.MarkFlagFilename("tls-key", "pem", "key")
	_ = cmd.MarkFlagFilename("authority-keys", "pem", "json")
	_ = cmd.RegisterFlagCompletionFunc("active-export-id", completeExportIDs)
	return cmd
}

// applyFlags copies the flags the operator gave onto cfg.
func (o *ServeOptions) applyFlags(c *serve.Config) error {
	ch := o.changed
	if ch == nil {
		ch = func(string) bool { return false }
	}
	set := func(name string, dst *string, v string) {
		if ch(name) {
			*dst = v
		}
	}
	set("export-root", &c.Mirror.ExportRoot, o.ExportRoot)
	set("active-export-id", &c.Mirror.ActiveExportID, o.ActiveExportID)
	set("listen", &c.Server.Listen, o.Listen)
	set("tls-cert", &c.Server.TLSCert, o.TLSCert)
	set("tls-key", &c.Server.TLSKey, o.TLSKey)
	set("htpasswd", &c.Server.Htpasswd, o.Htpasswd)
	set("authority-keys", &c.Authority.KeysFile, o.AuthorityKeys)
	set("authority-issuer", &c.Authority.Issuer, o.AuthorityIssuer)
	if ch("authority-audience") {
		c.Authority.Audiences = o.AuthorityAudiences
	}
	if ch("enable-import-api") {
		c.Server.EnableImportAPI = o.EnableImportAPI
	}
	if ch("trusted-proxy") {
		c.Server.TrustedProxies = o.TrustedProxies
	}
	if ch("bypass-network") {
		c.Authority.BypassNetworks = o.BypassNetworks
	}
	if ch("admin-user") {
		c.Server.AdminUsers = o.AdminUsers
	}
	if ch("require-authentication") {
		c.Mirror.RequireAuthentication = o.RequireAuthentication
	}
	if ch("max-index-requests-per-hour") {
		if o.MaxIndexRequestsPerHour < 0 {
			return failure.Usagef("--max-index-requests-per-hour %d: must be >= 0", o.MaxIndexRequestsPerHour)
		}
		c.Mirror.MaxIndexRequestsPerHour = o.MaxIndexRequestsPerHour
	}
	if ch("max-download-requests-per-hour") {
		if o.MaxDownloadRequestsPerHour < 0 {
			return failure.Usagef("--max-download-requests-per-hour %d: must be >= 0", o.MaxDownloadRequestsPerHour)
		}
		c.Mirror.MaxDownloadRequestsPerHour = o.MaxDownloadRequestsPerHour
	}
	return nil
}

// printedConfig is the -o json form of --print-config.
type printedConfig struct {
	SchemaVersion int             `json:"schemaVersion"`
	Config        serve.Config    `json:"config"`
	Settings      []serve.Setting `json:"settings"`
	Valid         bool            `json:"valid"`
	Error         string          `json:"error,omitempty"`
}

// listening is the -o json line printed once the server listens.
type listening struct {
	SchemaVersion int    `json:"schemaVersion"`
	URL           string `json:"url"`
	Address       string `json:"address"`
	ExportRoot    string `json:"exportRoot"`
	ExportID      string `json:"exportId,omitempty"`
}

func runServe(ctx context.Context, opts *ServeOptions) error {
	io := opts.IO
	cfg, settings, err := serve.ResolveConfig(opts.ConfigFile, io.Getenv, opts.applyFlags)
	if err != nil {
		return err
	}
	if opts.PrintConfig {
		verr := cfg.Validate()
		if io.JSON() {
			out := printedConfig{SchemaVersion: 1, Config: cfg, Settings: settings, Valid: verr == nil}
			if verr != nil {
				out.Error = verr.Error()
			}
			if err := io.PrintJSON(out); err != nil {
				return err
			}
			return verr
		}
		rows := make([][]string, 0, len(settings))
		for _, s := range settings {
			rows = append(rows, []string{s.Key, s.Value, s.Source})
		}
		io.Table(io.Out, io.ColorOut(), []string{"SETTING", "VALUE", "SOURCE"}, rows)
		return verr
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if fi, err := os.Stat(cfg.Mirror.ExportRoot); err != nil || !fi.IsDir() {
		return failure.WithHint(failure.Usagef("export root %s is not a folder", cfg.Mirror.ExportRoot),
			"run 'stellaops-cli mirror import --export-root DIR ...' first, or fix --export-root")
	}
	sopts := serve.Options{
		Config:    cfg,
		Now:       opts.now,
		AccessLog: io.Err,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(io.Err, "stellaops-cli: "+format+"\n", args...)
		},
	}
	if serveImporter != nil {
		sopts.Import = serveImporter(io)
	}
	srv, err := serve.NewServer(sopts)
	if err != nil {
		return err
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		prev := debug.SetMemoryLimit(serveMemoryLimit)
		defer debug.SetMemoryLimit(prev)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if err := srv.Start(); err != nil {
		return err
	}
	active, aerr := srv.Handler().ActiveExport()
	if aerr != nil {
		io.Warnf("export root %s has no active export yet (/readyz answers 503): %v", cfg.Mirror.ExportRoot, aerr)
		io.Infof("serving export root %s on %s\n", cfg.Mirror.ExportRoot, srv.URL())
	} else {
		io.Infof("serving export %s on %s\n", active, srv.URL())
	}
	if io.JSON() {
		if err := io.PrintJSON(listening{SchemaVersion: 1, URL: srv.URL(), Address: srv.Addr(), ExportRoot: cfg.Mirror.ExportRoot, ExportID: active}); err != nil {
			return err
		}
	}
	if opts.started != nil {
		opts.started(srv)
	}

	stop := make(chan struct{})
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		for {
			select {
			case <-hup:
				if err := srv.Reload(); err != nil {
					io.Warnf("reload on SIGHUP failed, keeping the previous credentials: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
				} else {
					io.Infof("reloaded htpasswd, authority keys and TLS certificate\n")
				}
			case <-stop:
				return
			}
		}
	}()
	err = srv.Wait(ctx)
	close(stop)
	<-reloaded
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		io.Infof("stopped serving %s\n", cfg.Mirror.ExportRoot)
	}
	return nil
}
