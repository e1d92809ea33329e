// Package mirror holds the "stellaops-cli mirror" verbs: one file per verb,
// each a NewCmdX, an XOptions struct and a runX that calls the library.
package mirror

import (
	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// NewCmdMirror returns the "mirror" command group.
func NewCmdMirror(io *iostreams.IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Work with signed mirror bundles: export, verify, import, serve, smoke, sync, rotate",
		Long: `The mirror verbs move signed advisory and VEX bundles across an air gap.

Connected side: "export" writes a signed bundle from a source tree. Across
the gap: the bundle travels on removable media, or "sync" pulls it over HTTP.
Air-gapped side: "verify" checks a bundle, "import" activates it atomically in
an export root, "status" shows the export root, "serve" publishes it over
HTTP(S) and "smoke" checks a running mirror end to end. "rotate" rolls signing
keys and credentials.`,
		Example: `  # Connected side
  stellaops-cli mirror export --source /srv/concelier/feeds --out /data/mirror-bundles/export-2026-03-15 --key signing.pem

  # Air-gapped side
  stellaops-cli mirror verify --bundle-path /media/usb/export-2026-03-15 --trust-roots roots.pem
  stellaops-cli mirror import --bundle-path /media/usb/export-2026-03-15 --trust-roots roots.pem --export-root /srv/stellaops/mirror
  stellaops-cli mirror serve --export-root /srv/stellaops/mirror`,
		Args: cobra.ArbitraryArgs,
		RunE: runGroup,
	}
	cmd.AddCommand(
		NewCmdExport(io),
		NewCmdVerify(io),
		NewCmdImport(io),
		NewCmdStatus(io),
		NewCmdSmoke(io),
		NewCmdServe(io),
		NewCmdSync(io),
		NewCmdRotate(io),
	)
	return cmd
}

// runGroup is the RunE of a command group: help without arguments, a usage
// error (exit 4) for an unknown subcommand.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return failure.Usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}
