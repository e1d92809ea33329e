package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// StatusOptions holds the flags of "mirror status".
type StatusOptions struct {
	IO             *iostreams.IO
	ExportRoot     string
	ActiveExportID string
	Log            bool
}

// NewCmdStatus returns "mirror status".
func NewCmdStatus(io *iostreams.IO) *cobra.Command {
	opts := &StatusOptions{IO: io}
	cmd := &cobra.Command{
		Use:   "status --export-root DIR",
		Short: "Show an export root: active export, high-water mark, trust store, last import, log chain",
		Long: `Status reads an export root without changing it: the active export (as serve
picks it), latest, the sequence high-water mark, the exports present, the keys
of the trust store with their validity and origin, the last import's status,
and whether the import log's hash chain is intact.

With --log it also prints every entry of the import log. A broken chain (an
edited, deleted or reordered line) exits 2.`,
		Example: `  stellaops-cli mirror status --export-root /srv/stellaops/mirror
  stellaops-cli mirror status --export-root /srv/stellaops/mirror --log -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "export-root"); err != nil {
				return err
			}
			return runStatus(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ExportRoot, "export-root", "", "export root to inspect")
	cmd.Flags().StringVar(&opts.ActiveExportID, "active-export-id", "", "export id serve is pinned to (CONCELIER__MIRROR__ACTIVEEXPORTID)")
	cmd.Flags().BoolVar(&opts.Log, "log", false, "print the import log entries")
	_ = cmd.MarkFlagDirname("export-root")
	return cmd
}

type statusKey struct {
	ID        string     `json:"id"`
	Algorithm string     `json:"algorithm"`
	NotBefore *time.Time `json:"notBefore,omitempty"`
	NotAfter  *time.Time `json:"notAfter,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	Source    string     `json:"source,omitempty"`
}

type statusOutput struct {
	SchemaVersion int                      `json:"schemaVersion"`
	ExportRoot    string                   `json:"exportRoot"`
	Active        string                   `json:"active"`
	Latest        string                   `json:"latest"`
	HighWater     exportroot.HighWaterMark `json:"highWater"`
	Exports       []string                 `json:"exports"`
	TrustStore    []statusKey              `json:"trustStore"`
	LastImport    exportroot.Status        `json:"lastImport"`
	LogEntries    int                      `json:"logEntries"`
	ChainIntact   bool                     `json:"chainIntact"`
	ChainError    string                   `json:"chainError,omitempty"`
	Log           []exportroot.LogEntry    `json:"log,omitempty"`
}

func runStatus(ctx context.Context, opts *StatusOptions) error {
	io := opts.IO
	root, err := exportroot.Open(opts.ExportRoot)
	if err != nil {
		return err
	}
	out := statusOutput{SchemaVersion: 1, ExportRoot: opts.ExportRoot, Exports: []string{}, TrustStore: []statusKey{}}
	if override := opts.ActiveExportID; override == "" {
		opts.ActiveExportID = io.Getenv("CONCELIER__MIRROR__ACTIVEEXPORTID")
	}
	out.Active, _ = exportroot.ResolveActive(opts.ExportRoot, opts.ActiveExportID)
	if out.Latest, err = root.Latest(); err != nil {
		return err
	}
	if out.HighWater, err = root.HighWater(); err != nil {
		return err
	}
	if ex, err := root.Exports(); err == nil && ex != nil {
		out.Exports = ex
	}
	if data, err := root.ReadState(importer.TrustStoreFile); err == nil {
		roots, err := trust.Parse(data, importer.TrustStoreFile)
		if err != nil {
			return fmt.Errorf("trust store: %w", err)
		}
		for _, k := range roots.Keys {
			sk := statusKey{ID: k.ID, Algorithm: k.Algorithm(), Source: k.Source}
			if !k.NotBefore.IsZero() {
				t := k.NotBefore
				sk.NotBefore = &t
			}
			if !k.NotAfter.IsZero() {
				t := k.NotAfter
				sk.NotAfter = &t
			}
			if !k.Revoked.IsZero() {
				t := k.Revoked
				sk.Revoked = &t
			}
			out.TrustStore = append(out.TrustStore, sk)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if st, err := root.ReadStatus(); err == nil {
		out.LastImport = st
	}
	entries, rerr := root.ReadLog()
	out.LogEntries = len(entries)
	verr := root.VerifyLog()
	out.ChainIntact = verr == nil && rerr == nil
	if verr != nil {
		out.ChainError = verr.Error()
	}
	if opts.Log {
		out.Log = entries
	}
	if io.JSON() {
		if err := io.PrintJSON(out); err != nil {
			return err
		}
		return verr
	}
	w := io.Out
	fmt.Fprintf(w, "export root: %s\n", out.ExportRoot)
	fmt.Fprintf(w, "active: %s\n", orDash(out.Active))
	fmt.Fprintf(w, "latest: %s\n", orDash(out.Latest))
	if out.HighWater.ExportID != "" {
		fmt.Fprintf(w, "high-water mark: sequence %d (export %s)\n", out.HighWater.Sequence, out.HighWater.ExportID)
	}
	fmt.Fprintf(w, "exports: %s\n", orDash(strings.Join(out.Exports, ", ")))
	if st := out.LastImport; st.State != "" {
		line := "last import: " + st.State
		if st.FinishedAt != nil {
			line += " at " + st.FinishedAt.Format(time.RFC3339)
		}
		if len(st.Errors) > 0 {
			line += ": " + st.Errors[0]
		}
		fmt.Fprintln(w, line)
	}
	rows := [][]string{}
	for _, k := range out.TrustStore {
		rows = append(rows, []string{k.ID, k.Algorithm, fmtTime(k.NotBefore), fmtTime(k.NotAfter), fmtTime(k.Revoked), k.Source})
	}
	if len(rows) > 0 {
		fmt.Fprintln(w, "trust store:")
		io.Table(w, io.ColorOut(), []string{"KEY ID", "ALGORITHM", "NOT BEFORE", "NOT AFTER", "REVOKED", "SOURCE"}, rows)
	}
	if out.ChainIntact {
		fmt.Fprintf(w, "import log: %d entries, chain intact\n", out.LogEntries)
	} else {
		fmt.Fprintf(w, "import log: %d entries, CHAIN BROKEN: %s\n", out.LogEntries, out.ChainError)
	}
	if opts.Log {
		for _, e := range entries {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\tsequence %d\t%s\n", e.Time.Format(time.RFC3339), e.Command, e.Result, orDash(e.ExportID), e.Sequence, e.Reason)
		}
	}
	return verr
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
