package mirror

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/archive"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
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

  # One archive for a USB stick, split into DVD-sized parts with a signed parts manifest
  stellaops-cli mirror export --source feeds --archive /media/usb/export.tar.zst --split-size 4GiB --key signing.pem

  # Stream to the air-gapped side through a pipe
  stellaops-cli mirror export --source feeds --archive - --key signing.pem | ssh gap stellaops-cli mirror import --bundle-path - --export-root /srv/mirror

  # Reproducible export of one domain with a fixed time and sequence
  stellaops-cli mirror export --source feeds --out out --key cosign.key --domain primary \
      --created 2026-03-15T00:00:00Z --sequence 42 --expires 720h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "source", "key"); err != nil {
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
	f.StringVar(&opts.Archive, "archive", "", "also write the bundle as one .tar.zst or .tar.gz archive (- for a tar.zst on stdout); --out becomes optional")
	f.StringVar(&opts.SplitSize, "split-size", "", "split the archive into parts of at most SIZE (4GiB, 700MiB, ...) with a signed parts manifest")
	_ = cmd.MarkFlagDirname("source")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.MarkFlagFilename("key", "pem", "key")
	_ = cmd.MarkFlagFilename("archive", "zst", "gz")
	_ = cmd.MarkFlagFilename("rotation", "json")
	_ = cmd.RegisterFlagCompletionFunc("alg", cobra.FixedCompletions(sign.Algorithms, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("domain", completeDomainsFromSource)
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
	var partSize int64
	if opts.SplitSize != "" {
		if opts.Archive == "" || opts.Archive == "-" {
			return failure.Usagef("--split-size needs --archive FILE (a file name, not -)")
		}
		if partSize, err = archive.ParseSize(opts.SplitSize); err != nil {
			return failure.Usagef("--split-size %q: %v", opts.SplitSize, err)
		}
	}
	var compression string
	if opts.Archive != "" && opts.Archive != "-" {
		if compression, err = archive.ArchiveFormatFromName(opts.Archive); err != nil {
			return err
		}
		if exists(opts.Archive) || exists(opts.Archive+archive.PartsManifestSuffix) {
			return failure.Usagef("output %s already exists", opts.Archive)
		}
	}
	if opts.Out == "" && opts.Archive == "" {
		return failure.Usagef("--out or --archive is required")
	}
	signer, err := sign.LoadSigner(opts.Key, opts.Alg, opts.KeyID, keyPassword(io))
	if err != nil {
		return err
	}
	out := opts.Out
	if out == "" {
		tmp, err := os.MkdirTemp("", "stellaops-export-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		out = filepath.Join(tmp, "bundle")
	}
	progress := io.NewProgress(-1, "exporting")
	res, err := bundle.Export(ctx, bundle.ExportOptions{
		Source: opts.Source, Out: out, Domains: opts.Domains, Signer: signer,
		Sequence: opts.Sequence, Created: created, Expires: expires, Producer: opts.Producer,
		Rotations: opts.Rotations, Progress: progress.Add,
	})
	progress.Finish()
	if err != nil {
		return err
	}
	summary := io.Out
	if opts.Archive != "" {
		wopts := archive.WriteOptions{Compression: compression, ModTime: res.GeneratedAt}
		switch {
		case opts.Archive == "-":
			wopts.Compression = archive.CompressionZstd
			err = archive.Write(ctx, io.Out, out, wopts)
			summary = io.Err
		case partSize > 0:
			var pm *archive.PartsManifest
			pm, err = archive.WriteSplit(ctx, out, wopts, archive.SplitOptions{
				Dir: filepath.Dir(opts.Archive), Name: filepath.Base(opts.Archive), PartSize: partSize,
				ExportID: res.ExportID, GeneratedAt: res.GeneratedAt,
				Sign: func(payloadType string, payload []byte) ([]byte, error) {
					return sign.SignDSSE(ctx, payloadType, payload, signer)
				},
			})
			if err == nil {
				res.Archive = opts.Archive
				res.Parts = len(pm.Parts)
			}
		default:
			err = archive.WriteFile(ctx, opts.Archive, out, wopts)
			res.Archive = opts.Archive
		}
		if err != nil {
			return err
		}
		if opts.Out == "" {
			res.Out = ""
		}
	}
	if io.JSON() {
		if opts.Archive == "-" {
			enc := *io
			enc.Out = io.Err
			return enc.PrintJSON(res)
		}
		return io.PrintJSON(res)
	}
	if io.Quiet {
		if opts.Archive != "-" {
			fmt.Fprintln(io.Out, firstNonEmpty(res.Out, res.Archive))
		}
		return nil
	}
	if summary != io.Out {
		fmt.Fprintf(summary, "exported %s (sequence %d) to standard output as tar.zst, %d files, %s, signed by %s\n",
			res.ExportID, res.Sequence, res.Files, bundle.HumanBytes(res.Bytes), res.KeyID)
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
	fmt.Fprintf(io.Out, "exported %s (sequence %d) to %s\n", res.ExportID, res.Sequence, firstNonEmpty(res.Out, res.Archive))
	if res.Parts > 0 {
		fmt.Fprintf(io.Out, "split into %d parts: %s%s-0001 ...; parts manifest %s%s (signed)\n", res.Parts,
			res.Archive, archive.PartSuffix[:len(archive.PartSuffix)-1], res.Archive, archive.PartsManifestSuffix)
	} else if res.Archive != "" && res.Out != "" {
		fmt.Fprintf(io.Out, "archive %s\n", res.Archive)
	}
	fmt.Fprintf(io.Out, "%d domains, %d advisories, %d VEX exports, %d files, %s\n",
		len(res.Domains), adv, vex, res.Files, bundle.HumanBytes(res.Bytes))
	fmt.Fprintf(io.Out, "signed by %s (%s), valid until %s\n", res.KeyID, res.Alg, res.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintf(io.Out, "mirror.json sha256 %s\n", res.ManifestSHA256)
	return nil
}
