package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/buildinfo"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
)

func newCmdVersion(io *iostreams.IO) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Long: `Version prints the release version, the commit it was built from, the build
date and the Go toolchain and platform. Release builds set them at link time;
other builds take them from the module and VCS information Go records, else
print "dev" and "unknown". "stellaops-cli --version" prints the same text.`,
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
			fmt.Fprint(io.Out, versionText(info))
			return nil
		},
	}
}

// versionText is the text form of "version" and "--version".
func versionText(info buildinfo.Info) string {
	return fmt.Sprintf("stellaops-cli %s\ncommit: %s\nbuilt: %s\ngo: %s %s\n",
		info.Version, info.Commit, info.Date, info.GoVersion, info.Platform)
}

// versionTemplate is versionText as a cobra version template: fixed text,
// with any template delimiters in the build strings quoted.
func versionTemplate(info buildinfo.Info) string {
	return strings.NewReplacer("{{", `{{"{{"}}`, "}}", `{{"}}"}}`).Replace(versionText(info))
}
