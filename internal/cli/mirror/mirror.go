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
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return failure.Usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		NewCmdExport(io),
		NewCmdVerify(io),
		NewCmdImport(io),
		NewCmdStatus(io),
		NewCmdSmoke(io),
		NewCmdServe(io),
	)
	return cmd
}
