package mirror

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
)

// NewCmdVerify is replaced by the real export verb.
func NewCmdVerify(io *iostreams.IO) *cobra.Command {
	return &cobra.Command{Use: "verify", RunE: func(*cobra.Command, []string) error { return errors.New("not yet") }}
}
