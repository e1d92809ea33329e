package mirror

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// ImportOptions holds the flags of "mirror import".
type ImportOptions struct {
	IO                *iostreams.IO
	BundlePath        string
	ExportRoot        string
	AllowDowngrade    bool
	ReplaceTrustRoots bool
	Keep              int
	Wait              time.Duration
	Threshold         int
	verifyFlags
}

// NewCmdImport returns "mirror import".
func NewCmdImport(io *iostreams.IO) *cobra.Command {
	opts := &ImportOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "import --bundle-path PATH --export-root DIR [--trust-roots FILE]",
		Short: "Verify a bundle and activate it atomically in an export root",
		Long: `Import takes the export root's lock, copies the bundle into a staging folder
inside the root while hashing it, verifies the staged copy exactly as
"mirror verify" does, renames it to ROOT/<exportId>, records the sequence
high-water mark and replaces ROOT/latest atomically. Exports beyond --keep
are pruned (never the active one).

Whatever fails (a bad signature, a rollback, a full disk, Ctrl-C, kill -9),
latest, the trust store, the high-water mark and the export folders stay as
they were; only .stellaops/import.log and import-status.json record the
attempt.

The first import with --trust-roots records the keys in ROOT/.stellaops/;
later imports may omit the flag. A flag naming keys the store lacks is
refused unless --replace-trust-roots is given.

Exit status: 0 imported (or already active), 1 I/O error, 2 verification
failed, 3 refused by policy (rollback, expired), 4 bad invocation, 5 another
import or sync holds the lock, 130 interrupted.`,
		Example: `  stellaops-cli mirror import --bundle-path /data/mirror-bundles/export-2026-03-15 \
      --verify-checksums --verify-dsse --trust-roots /data/trust-roots/roots.pem \
      --export-root /srv/stellaops/mirror

  # From cron: wait up to 10 minutes for a running sync, keep 5 exports
  stellaops-cli mirror import -q --bundle-path /media/usb/export --export-root /srv/mirror --wait 10m --keep 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			boundMemory()
			if err := requireFlags(cmd, "bundle-path", "export-root"); err != nil {
				return err
			}
			return runImport(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.BundlePath, "bundle-path", "", "bundle folder, .tar.zst/.tar.gz archive, split set (parts manifest or any part), or - for stdin")
	f.StringVar(&opts.ExportRoot, "export-root", "", "export root to import into (created if missing)")
	f.BoolVar(&opts.AllowDowngrade, "allow-downgrade", false, "accept a sequence not above the high-water mark (recorded in the import log)")
	f.BoolVar(&opts.ReplaceTrustRoots, "replace-trust-roots", false, "replace the export root's trust store with --trust-roots (recorded in the import log)")
	f.IntVar(&opts.Keep, "keep", importer.DefaultKeep, "number of exports to keep; older ones are pruned")
	f.DurationVar(&opts.Wait, "wait", 0, "wait this long for another import or sync to release the lock (default: fail at once, exit 5)")
	f.IntVar(&opts.Threshold, "threshold", 1, "distinct trusted keys that must sign mirror.json")
	opts.verifyFlags.AddFlags(cmd, false)
	_ = cmd.MarkFlagFilename("bundle-path", bundlePathExts...)
	_ = cmd.MarkFlagDirname("export-root")
	return cmd
}

func runImport(ctx context.Context, opts *ImportOptions) error {
	io := opts.IO
	now, err := opts.now()
	if err != nil {
		return err
	}
	if opts.Keep < 1 {
		return failure.Usagef("--keep must be at least 1")
	}
	var roots *trust.Roots
	if opts.TrustRoots != "" {
		if roots, err = trust.LoadFile(opts.TrustRoots); err != nil {
			return err
		}
	} else if opts.ReplaceTrustRoots {
		return failure.Usagef("--replace-trust-roots needs --trust-roots")
	}
	opts.warnDisabled(io)
	partsRoots := roots
	if partsRoots == nil {
		// A split set's parts manifest is checked before the lock is taken;
		// without --trust-roots, the store is what vouches for it.
		partsRoots, _ = trust.LoadFile(filepath.Join(opts.ExportRoot, exportroot.StateDirName, importer.TrustStoreFile))
	}
	stage, cleanup, err := stagerFor(ctx, io, opts.BundlePath, partsRoots, now)
	if err != nil {
		return err
	}
	defer cleanup()
	progress := io.NewProgress(-1, "importing")
	res, err := importer.Import(ctx, importer.Options{
		BundlePath: opts.BundlePath, Stage: stage, ExportRoot: opts.ExportRoot,
		TrustRoots: roots, TrustRootsPath: opts.TrustRoots, ReplaceTrustRoots: opts.ReplaceTrustRoots,
		VerifyChecksums: opts.VerifyChecksums, VerifyDSSE: opts.VerifyDSSE, Threshold: opts.Threshold,
		Now: now, AllowDowngrade: opts.AllowDowngrade, Keep: opts.Keep, Wait: opts.Wait,
		Rotate: rotationHook, Progress: progress.Add,
		Warn: func(s string) { io.Warnf("%s", s) },
	})
	progress.Finish()
	if io.JSON() {
		if perr := io.PrintJSON(importJSON(res, err)); perr != nil {
			return perr
		}
		return err
	}
	if err != nil {
		if res != nil && res.Report != nil && len(res.Report.Problems) > 0 {
			res.Report.Warnings = nil // printed as they happened
			_ = printReport(io, res.Report)
		}
		return err
	}
	if io.Quiet {
		return nil
	}
	switch res.State {
	case "already-active":
		fmt.Fprintf(io.Out, "export %s (sequence %d) is already active in %s; nothing changed\n", res.ExportID, res.Sequence, res.ExportRoot)
	default:
		prev := res.Previous
		if prev == "" {
			prev = "none"
		}
		fmt.Fprintf(io.Out, "imported export %s (sequence %d): %d files, %s\n", res.ExportID, res.Sequence, res.Files, humanBytes(res.Bytes))
		fmt.Fprintf(io.Out, "latest -> %s (was %s)\n", res.ExportID, prev)
		if len(res.Report.SignerKeyIDs) > 0 {
			fmt.Fprintf(io.Out, "signed by %s\n", strings.Join(res.Report.SignerKeyIDs, ", "))
		}
		if len(res.Pruned) > 0 {
			fmt.Fprintf(io.Out, "pruned %s\n", strings.Join(res.Pruned, ", "))
		}
		if res.Report != nil {
			for _, n := range res.Report.RotationNotes {
				fmt.Fprintf(io.Out, "rotation: %s\n", n)
			}
		}
		if res.TrustStoreUpdated {
			fmt.Fprintf(io.Out, "trust store updated\n")
		}
	}
	return nil
}

type importOutput struct {
	*importer.Result
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Exit  int    `json:"exitCode"`
}

func importJSON(res *importer.Result, err error) importOutput {
	if res == nil {
		res = &importer.Result{SchemaVersion: 1}
	}
	out := importOutput{Result: res, OK: err == nil, Exit: failure.Code(err)}
	if err != nil {
		out.Error = err.Error()
		out.State = "failed"
	}
	return out
}
