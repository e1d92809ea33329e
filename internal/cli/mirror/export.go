package mirror

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/sign"
)

// ExportOptions holds the flags of "mirror export".
type ExportOptions struct {
	IO        *iostreams.IO
	Source    string
	Out       string
	Key       string
	KeyID     string
	Alg       string
	Domains   []string
	Sequence  int64
	Created   string
	Expires   string
	Producer  string
	Rotations []string
	Archive   string
	SplitSize string
}

// NewCmdExport returns "mirror export".
func NewCmdExport(io *iostreams.IO) *cobra.Command {
	opts := &ExportOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "export --source DIR --out DIR --key FILE",
		Short: "Write a signed mirror bundle from a source tree of advisories and VEX exports",
		Long: `Export reads DIR/<domainId>/advisories/**/*.json and DIR/<domainId>/vex/**/*.json
and writes a signed bundle to --out: mirror.json and its DSSE envelope,
SHA256SUMS, and per domain a bundle.json with a detached JWS and a
cosign-compatible .sig.

The bundle is written into a temporary folder beside --out and renamed at the
end: a failed or interrupted export leaves nothing behind. The same source,
--created and key give byte-identical files.

Encrypted cosign keys read their password from STELLAOPS_KEY_PASSWORD, else
from a terminal prompt.`,
		Example: `  # Export every domain, valid for a week
  stellaops-cli mirror export --source /srv/concelier/feeds --out /data/mirror-bundles/export-2026-03-15 --key signing.pem

  # Reproducible export of one domain with a fixed time and sequence
  stellaops-cli mirror export --source feeds --out out --key cosign.key --domain primary \
      --created 2026-03-15T00:00:00Z --sequence 42 --expires 720h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "source", "out", "key"); err != nil {
				return err
			}
			return runExport(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Source, "source", "", "source tree: <domainId>/advisories and <domainId>/vex folders")
	f.StringVar(&opts.Out, "out", "", "bundle folder to create (must not exist)")
	f.StringVar(&opts.Key, "key", "", "private key: PEM PKCS#8, SEC 1, PKCS#1, or a cosign encrypted key")
	f.StringVar(&opts.KeyID, "key-id", "", "key id written into the signatures (default: hex SHA-256 of the public key)")
	f.StringVar(&opts.Alg, "alg", "", "JWS algorithm (default by key: ES256/ES384/ES512, RS256, EdDSA; RS384 for RSA keys)")
	f.StringArrayVar(&opts.Domains, "domain", nil, "export only this domain (repeatable)")
	f.Int64Var(&opts.Sequence, "sequence", 0, "sequence number, strictly increasing per producer (default: Unix seconds of --created)")
	f.StringVar(&opts.Created, "created", "", "generation time, RFC 3339 (default: now)")
	f.StringVar(&opts.Expires, "expires", "168h", "validity of the bundle from --created")
	f.StringVar(&opts.Producer, "producer", "stellaops-cli", "producer name recorded in mirror.json")
	f.StringArrayVar(&opts.Rotations, "rotation", nil, "rotation statement to carry under keys/ (repeatable)")
	_ = cmd.MarkFlagDirname("source")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.MarkFlagFilename("key", "pem", "key")
	_ = cmd.RegisterFlagCompletionFunc("alg", cobra.FixedCompletions(sign.Algorithms, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runExport(ctx context.Context, opts *ExportOptions) error {
	io := opts.IO
	created, err := parseTimeFlag("created", opts.Created, time.Now)
	if err != nil {
		return err
	}
	expires, err := parseDuration("expires", opts.Expires)
	if err != nil {
		return err
	}
	signer, err := sign.LoadSigner(opts.Key, opts.Alg, opts.KeyID, keyPassword(io))
	if err != nil {
		return err
	}
	progress := io.NewProgress(-1, "exporting")
	res, err := bundle.Export(ctx, bundle.ExportOptions{
		Source: opts.Source, Out: opts.Out, Domains: opts.Domains, Signer: signer,
		Sequence: opts.Sequence, Created: created, Expires: expires, Producer: opts.Producer,
		Rotations: opts.Rotations, Progress: progress.Add,
	})
	progress.Finish()
	if err != nil {
		return err
	}
	if io.JSON() {
		return io.PrintJSON(res)
	}
	if io.Quiet {
		fmt.Fprintln(io.Out, res.Out)
		return nil
	}
	rows := make([][]string, 0, len(res.Domains))
	var adv, vex int
	for _, d := range res.Domains {
		rows = append(rows, []string{d.ID, fmt.Sprint(d.Advisories), fmt.Sprint(d.VEXExports), bundle.HumanBytes(d.BundleSize)})
		adv += d.Advisories
		vex += d.VEXExports
	}
	io.Table(io.Out, io.ColorOut(), []string{"DOMAIN", "ADVISORIES", "VEX EXPORTS", "BUNDLE"}, rows)
	fmt.Fprintf(io.Out, "exported %s (sequence %d) to %s\n", res.ExportID, res.Sequence, res.Out)
	fmt.Fprintf(io.Out, "%d domains, %d advisories, %d VEX exports, %d files, %s\n",
		len(res.Domains), adv, vex, res.Files, bundle.HumanBytes(res.Bytes))
	fmt.Fprintf(io.Out, "signed by %s (%s), valid until %s\n", res.KeyID, res.Alg, res.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintf(io.Out, "mirror.json sha256 %s\n", res.ManifestSHA256)
	return nil
}
