package smoke

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/serve"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Names of the setup rows of a self-contained run.
const (
	NameSetupExport = "export"
	NameSetupVerify = "verify"
	NameSetupImport = "import"
	NameSetupServe  = "serve"
)

// LocalOptions configures RunLocal.
type LocalOptions struct {
	// Dir receives the key, the feed, the bundle, the export root and the
	// htpasswd file; empty means a temporary folder removed at the end.
	Dir string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// IndexBudget is the served index budget per client and hour, small
	// enough for the rate-limit check to reach 429.
	IndexBudget int
	// Logf receives the server's operator messages; nil discards them.
	Logf func(format string, args ...any)
}

// LocalMirror says what a self-contained run made, for the operator to explore.
type LocalMirror struct {
	Dir        string `json:"dir,omitempty"`
	Key        string `json:"key,omitempty"`
	PublicKey  string `json:"publicKey,omitempty"`
	Bundle     string `json:"bundle,omitempty"`
	ExportRoot string `json:"exportRoot,omitempty"`
	Htpasswd   string `json:"htpasswd,omitempty"`
	User       string `json:"user,omitempty"`
	Password   string `json:"password,omitempty"`
	URL        string `json:"url,omitempty"`
}

// LocalUser is the user a self-contained run creates.
const LocalUser = "smoke"

// RunLocal builds a mirror of its own and checks it: an ephemeral ES256 key
// signs an export of the embedded sample feed, which is verified, imported
// into an export root and served on 127.0.0.1 (a free port) with a generated
// htpasswd user and a small index budget; then every check runs against it,
// including 401 and 429. The report starts with a row per setup step.
// Everything is removed afterwards unless opts.Dir is set.
func RunLocal(ctx context.Context, opts LocalOptions) (*Report, *LocalMirror, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IndexBudget <= 0 {
		opts.IndexBudget = 30
	}
	dir := opts.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "stellaops-smoke-")
		if err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	lm := &LocalMirror{
		Dir:        dir,
		Key:        filepath.Join(dir, "signing.key.pem"),
		PublicKey:  filepath.Join(dir, "signing.pub.pem"),
		Bundle:     filepath.Join(dir, "bundle"),
		ExportRoot: filepath.Join(dir, "export-root"),
		Htpasswd:   filepath.Join(dir, "htpasswd"),
		User:       LocalUser,
	}
	var setup []Check
	step := func(name string, fn func() (string, error)) error {
		start := time.Now()
		detail, err := fn()
		c := Check{Name: name, Status: StatusPass, Detail: detail, Duration: time.Since(start)}
		if err != nil {
			c.Status, c.Detail = StatusFail, err.Error()
		}
		setup = append(setup, c)
		return err
	}
	fail := func(err error) (*Report, *LocalMirror, error) {
		return &Report{SchemaVersion: 1, StartedAt: opts.Now().UTC(), Checks: setup}, lm, err
	}

	var signer *sign.Signer
	var res *bundle.ExportResult
	if err := step(NameSetupExport, func() (string, error) {
		priv, err := sign.Generate(sign.ES256)
		if err != nil {
			return "", err
		}
		if signer, err = sign.NewSigner(priv, "", ""); err != nil {
			return "", err
		}
		if err := writeKeyPair(lm, signer); err != nil {
			return "", err
		}
		feed := filepath.Join(dir, "feed")
		if err := samplefeed.WriteTo(feed); err != nil {
			return "", err
		}
		res, err = bundle.Export(ctx, bundle.ExportOptions{Source: feed, Out: lm.Bundle, Signer: signer, Created: opts.Now()})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("export %s of the sample feed, %d files, signed with an ephemeral ES256 key %.16s", res.ExportID, res.Files, signer.KeyID()), nil
	}); err != nil {
		return fail(err)
	}
	roots := &trust.Roots{}
	if err := roots.Add(signer.TrustKey()); err != nil {
		return fail(err)
	}
	if err := step(NameSetupVerify, func() (string, error) {
		rep, err := bundle.VerifyDir(ctx, lm.Bundle, bundle.VerifyOptions{Roots: roots, Now: opts.Now(), VerifyChecksums: true, VerifyDSSE: true})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d checks passed: DSSE, digests, SHA256SUMS, JWS and .sig of %d domains", len(rep.Checks), len(rep.Domains)), nil
	}); err != nil {
		return fail(err)
	}
	if err := step(NameSetupImport, func() (string, error) {
		ir, err := importer.Import(ctx, importer.Options{
			BundlePath: lm.Bundle, Stage: importer.FolderStager(lm.Bundle), ExportRoot: lm.ExportRoot,
			TrustRoots: roots, VerifyChecksums: true, VerifyDSSE: true, Now: opts.Now(),
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("latest -> %s in %s", ir.ExportID, lm.ExportRoot), nil
	}); err != nil {
		return fail(err)
	}
	var srv *serve.Server
	if err := step(NameSetupServe, func() (string, error) {
		pw, err := writeHtpasswd(lm.Htpasswd)
		if err != nil {
			return "", err
		}
		lm.Password = pw
		cfg := serve.DefaultConfig()
		cfg.Mirror.Enabled = true
		cfg.Mirror.ExportRoot = lm.ExportRoot
		cfg.Mirror.RequireAuthentication = true
		cfg.Mirror.MaxIndexRequestsPerHour = opts.IndexBudget
		cfg.Mirror.MaxDownloadRequestsPerHour = 0
		cfg.Server.Listen = "127.0.0.1:0"
		cfg.Server.Htpasswd = lm.Htpasswd
		srv, err = serve.NewServer(serve.Options{Config: cfg, Now: opts.Now, Logf: opts.Logf})
		if err != nil {
			return "", err
		}
		if err := srv.Start(); err != nil {
			return "", err
		}
		lm.URL = srv.URL()
		return fmt.Sprintf("%s with Basic auth (user %s) and %d index requests per hour", lm.URL, LocalUser, opts.IndexBudget), nil
	}); err != nil {
		return fail(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	report, err := Run(ctx, Options{
		URL: lm.URL, User: LocalUser, Password: lm.Password,
		VerifyJWS: func(jws, payload []byte) (string, error) {
			r, err := sign.VerifyJWS(jws, bytes.NewReader(payload), roots, opts.Now())
			return r.Key.ID, err
		},
		CheckRateLimit: true, RateLimitRequests: opts.IndexBudget + 10,
		MaxAge: time.Hour, Timeout: 10 * time.Second, Now: opts.Now,
	})
	if report != nil {
		report.Checks = append(setup, report.Checks...)
	}
	if opts.Dir == "" {
		lm = &LocalMirror{URL: lm.URL, User: LocalUser}
	}
	return report, lm, err
}

func writeKeyPair(lm *LocalMirror, s *sign.Signer) error {
	priv, err := s.PrivatePEM()
	if err != nil {
		return err
	}
	pub, err := sign.MarshalPublicKeyPEM(s.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(lm.Key, priv, 0o600); err != nil {
		return err
	}
	return os.WriteFile(lm.PublicKey, pub, 0o644)
}

// writeHtpasswd creates an htpasswd file with one bcrypt entry for
// LocalUser and a random password, which it returns.
func writeHtpasswd(path string) (string, error) {
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(raw)
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", err
	}
	return pw, os.WriteFile(path, []byte(LocalUser+":"+string(hash)+"\n"), 0o600)
}
