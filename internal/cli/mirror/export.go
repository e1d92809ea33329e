package mirror

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
)

// NewCmdExport is replaced by the real export verb.
func NewCmdExport(io *iostreams.IO) *cobra.Command {
	return &cobra.Command{Use: "export", RunE: func(*cobra.Command, []string) error { return errors.New("not yet") }}
}
