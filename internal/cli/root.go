// Package cli builds the stellaops-cli command tree and maps its errors to
// the exit codes of the contract. Nothing below cmd/ calls os.Exit.
package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/buildinfo"
	"github.com/stellaops/stellaops-cli/internal/cli/mirror"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// NewRootCmd builds the command tree bound to io.
func NewRootCmd(io *iostreams.IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "stellaops-cli",
		Short: "Export, verify, import and serve signed advisory mirror bundles",
		Long: `stellaops-cli moves Concelier advisories and Excititor VEX exports into
air-gapped networks as signed mirror bundles.

On the connected side, "mirror export" writes a signed bundle. The bundle
travels on removable media or through "mirror sync". On the air-gapped side,
"mirror verify" checks it, "mirror import" activates it atomically in an export
root, and "mirror serve" serves it to downstream consumers.

Exit status: 0 success, 1 unexpected or I/O error, 2 verification failed,
3 refused by policy, 4 bad invocation, 5 busy, 130 interrupted.`,
		Example: `  stellaops-cli mirror export --source feeds --out export-2026-03-15 --key signing.pem
  stellaops-cli mirror verify --bundle-path export-2026-03-15 --trust-roots roots.pem
  stellaops-cli version -o json

  # Shell completion for the current bash session
  source <(stellaops-cli completion bash)`,
		Version:       buildinfo.Get().Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch io.Format {
			case iostreams.FormatText, iostreams.FormatJSON:
			default:
				return failure.Usagef("invalid --output %q: use text or json", io.Format)
			}
			return nil
		},
	}
	root.SetVersionTemplate(versionTemplate(buildinfo.Get()))
	root.Flags().BoolP("version", "v", false, "print the version, commit, build date and Go version")
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return failure.WithHint(failure.Classify(failure.ErrUsage, err),
			fmt.Sprintf("run '%s --help' for usage", cmd.CommandPath()))
	})

	pf := root.PersistentFlags()
	pf.StringVarP(&io.Format, "output", "o", iostreams.FormatText, "output format: text or json")
	pf.BoolVar(&io.NoColor, "no-color", false, "disable colour and styling (also NO_COLOR)")
	pf.BoolVarP(&io.Quiet, "quiet", "q", false, "print only errors and the requested data")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(mirror.NewCmdMirror(io))
	root.AddCommand(newCmdVersion(io))
	addCompletionCmd(root)
	return root
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, io *iostreams.IO, args []string) int {
	root := NewRootCmd(io)
	root.SetArgs(args)
	_, err := root.ExecuteContextC(ctx)
	if err == nil {
		return failure.ExitOK
	}
	if ctx.Err() != nil && !errors.Is(err, failure.ErrInterrupted) {
		err = errors.Join(failure.ErrInterrupted, err)
	}
	err = classifyCobra(err)
	var reported interface{ Reported() bool }
	if !(errors.As(err, &reported) && reported.Reported()) {
		fmt.Fprintf(io.Err, "stellaops-cli: error: %s\n", iostreams.Printable(firstLine(err)))
	}
	if hint := failure.HintOf(err); hint != "" {
		fmt.Fprintf(io.Err, "stellaops-cli: hint: %s\n", iostreams.Printable(hint))
	}
	return failure.Code(err)
}

// classifyCobra marks cobra's own invocation errors as usage errors.
func classifyCobra(err error) error {
	msg := err.Error()
	for _, p := range []string{"required flag(s)", "unknown command", "unknown flag", "unknown shorthand",
		"accepts ", "requires at least", "requires at most", "invalid argument", "if any flags in the group"} {
		if strings.Contains(msg, p) {
			return failure.Classify(failure.ErrUsage, err)
		}
	}
	return err
}

func firstLine(err error) string {
	msg := err.Error()
	if errors.Is(err, failure.ErrInterrupted) && !strings.Contains(msg, "interrupted") {
		return "interrupted: " + msg
	}
	return strings.TrimSpace(msg)
}
