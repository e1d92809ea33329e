package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/buildinfo"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
)

func newCmdVersion(io *iostreams.IO) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version, commit, build date and Go version",
		Args:    cobra.NoArgs,
		Example: "  stellaops-cli version\n  stellaops-cli version -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			info := buildinfo.Get()
			if io.JSON() {
				return io.PrintJSON(struct {
					SchemaVersion int `json:"schemaVersion"`
					buildinfo.Info
				}{1, info})
			}
			fmt.Fprintf(io.Out, "stellaops-cli %s\ncommit: %s\nbuilt: %s\ngo: %s %s\n",
				info.Version, info.Commit, info.Date, info.GoVersion, info.Platform)
			return nil
		},
	}
}
