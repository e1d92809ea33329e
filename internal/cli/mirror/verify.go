package mirror

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/rotation"
)

// VerifyOptions holds the flags of "mirror verify".
type VerifyOptions struct {
	IO         *iostreams.IO
	BundlePath string
	Threshold  int
	verifyFlags
}

// NewCmdVerify returns "mirror verify".
func NewCmdVerify(io *iostreams.IO) *cobra.Command {
	opts := &VerifyOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "verify --bundle-path PATH --trust-roots FILE",
		Short: "Check a bundle's signatures, digests, file list and validity",
		Long: `Verify checks a bundle without changing anything: the DSSE signature over
mirror.json by a key trusted at --now, mirror.json parsed strictly, every
listed file present with its size and SHA-256 and no unlisted file, each
domain's detached JWS and cosign .sig over bundle.json, the VEX digests in
bundle.json, SHA256SUMS against mirror.json, and the validity window.

Every problem is reported with the file and the check, not only the first.

Exit status: 0 verified, 2 verification failed, 3 refused by policy
(expired, not yet valid), 4 bad invocation or unreadable trust roots.`,
		Example: `  stellaops-cli mirror verify --bundle-path /media/usb/export-2026-03-15 --trust-roots roots.pem

  # Verify as of a trusted time (air-gapped clocks drift)
  stellaops-cli mirror verify --bundle-path export --trust-roots cosign.pub --now 2026-03-16T09:00:00Z -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			boundMemory()
			if err := requireFlags(cmd, "bundle-path", "trust-roots"); err != nil {
				return err
			}
			return runVerify(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.BundlePath, "bundle-path", "", "bundle folder, .tar.zst/.tar.gz archive, split set (parts manifest or any part), or - for stdin")
	cmd.Flags().IntVar(&opts.Threshold, "threshold", 1, "distinct trusted keys that must sign mirror.json")
	opts.verifyFlags.AddFlags(cmd, true)
	_ = cmd.MarkFlagFilename("bundle-path", bundlePathExts...)
	return cmd
}

func runVerify(ctx context.Context, opts *VerifyOptions) error {
	io := opts.IO
	now, err := opts.now()
	if err != nil {
		return err
	}
	roots, err := loadTrustRoots(opts.TrustRoots)
	if err != nil {
		return err
	}
	opts.warnDisabled(io)
	progress := io.NewProgress(-1, "verifying")
	report, err := verifyPath(ctx, io, opts.BundlePath, bundle.VerifyOptions{
		Roots: roots, Now: now, Threshold: opts.Threshold,
		VerifyChecksums: opts.VerifyChecksums, VerifyDSSE: opts.VerifyDSSE,
		Rotate: rotationHook, Progress: progress.Add,
	})
	progress.Finish()
	if report != nil && len(report.Checks) > 0 {
		if perr := printReport(io, report); perr != nil {
			return perr
		}
	}
	return err
}

// printReport renders a verification report: the checks as a table, then
// every problem with its file and check.
func printReport(io *iostreams.IO, r *bundle.Report) error {
	if io.JSON() {
		return io.PrintJSON(r)
	}
	if io.Quiet && r.Verified {
		return nil
	}
	// Names and messages may come from a hostile bundle: what a terminal
	// would act on is printed escaped.
	rows := make([][]string, 0, len(r.Checks))
	for _, c := range r.Checks {
		rows = append(rows, []string{c.Name, c.Status, iostreams.PrintableLine(c.Detail)})
	}
	io.Table(io.Out, io.ColorOut(), []string{"CHECK", "STATUS", "DETAIL"}, rows)
	for _, p := range r.Problems {
		line := fmt.Sprintf("problem: %s: %s: %s", p.File, p.Check, p.Message)
		if p.Expected != "" || p.Actual != "" {
			line += fmt.Sprintf(" (expected %s, got %s)", orDash(p.Expected), orDash(p.Actual))
		}
		fmt.Fprintln(io.Out, iostreams.PrintableLine(line))
	}
	for _, w := range r.Warnings {
		io.Warnf("%s", iostreams.Printable(w))
	}
	if r.Verified {
		fmt.Fprintf(io.Out, "verified: export %s, sequence %d, signed by %s\n", r.ExportID, r.Sequence, strings.Join(r.SignerKeyIDs, ", "))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rotationHook applies rotation statements carried in bundles.
var rotationHook bundle.RotationFunc = rotation.Apply
