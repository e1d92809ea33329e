// Package iostreams holds the command's input and output streams and the
// rules for colour, progress bars, tables and JSON output.
package iostreams

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Output formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// IO carries the streams and the output settings of one invocation.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer

	Format  string // text or json
	Quiet   bool
	NoColor bool

	// OutTTY and ErrTTY say whether stdout and stderr are terminals.
	OutTTY bool
	ErrTTY bool
	// InTTY says whether stdin is a terminal (password prompts).
	InTTY bool

	// Getenv reads the environment; tests replace it.
	Getenv func(string) string
}

// System returns streams bound to the process's stdin, stdout and stderr.
func System() *IO {
	return &IO{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
		Format: FormatText,
		OutTTY: isTerminal(os.Stdout), ErrTTY: isTerminal(os.Stderr), InTTY: isTerminal(os.Stdin),
		Getenv: os.Getenv,
	}
}

// Test returns streams bound to the given readers and writers, none a terminal.
func Test(in io.Reader, out, errw io.Writer) *IO {
	return &IO{In: in, Out: out, Err: errw, Format: FormatText, Getenv: os.Getenv}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// JSON reports whether -o json was asked for.
func (s *IO) JSON() bool { return s.Format == FormatJSON }

// ColorOut reports whether stdout may carry colour and styling.
func (s *IO) ColorOut() bool { return s.OutTTY && s.styled() }

// ColorErr reports whether stderr may carry colour and styling.
func (s *IO) ColorErr() bool { return s.ErrTTY && s.styled() }

func (s *IO) styled() bool {
	if s.NoColor || s.JSON() {
		return false
	}
	if s.Getenv != nil && (s.Getenv("NO_COLOR") != "" || s.Getenv("TERM") == "dumb") {
		return false
	}
	return true
}

// ProgressEnabled reports whether progress bars may be drawn on stderr.
func (s *IO) ProgressEnabled() bool { return s.ErrTTY && !s.Quiet && s.styled() }

// Infof prints a people-facing message on stderr unless --quiet.
func (s *IO) Infof(format string, args ...any) {
	if s.Quiet {
		return
	}
	fmt.Fprintf(s.Err, format, args...)
}

// Warnf prints a warning on stderr (also with --quiet).
func (s *IO) Warnf(format string, args ...any) {
	fmt.Fprintf(s.Err, "stellaops-cli: warning: "+format+"\n", args...)
}

// PrintJSON writes v as indented JSON on stdout.
func (s *IO) PrintJSON(v any) error {
	enc := json.NewEncoder(s.Out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Table renders rows on w: a styled table when w is a terminal with colour,
// tab-separated lines otherwise (stable for scripts and tests).
func (s *IO) Table(w io.Writer, styled bool, headers []string, rows [][]string) {
	if !styled {
		fmt.Fprintln(w, strings.Join(headers, "\t"))
		for _, r := range rows {
			fmt.Fprintln(w, strings.Join(r, "\t"))
		}
		return
	}
	head := lipgloss.NewStyle().Bold(true).Padding(0, 1)
	cell := lipgloss.NewStyle().Padding(0, 1)
	t := table.New().
		Border(lipgloss.RoundedBorder()).
		Headers(headers...).
		Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			if row == table.HeaderRow {
				return head
			}
			if row >= 0 && row < len(rows) && col < len(rows[row]) {
				switch rows[row][col] {
				case "ok", "pass", "PASS", "OK":
					return cell.Foreground(lipgloss.Color("2"))
				case "fail", "FAIL", "error":
					return cell.Foreground(lipgloss.Color("1")).Bold(true)
				case "warn", "skip", "WARN", "SKIP":
					return cell.Foreground(lipgloss.Color("3"))
				}
			}
			return cell
		})
	fmt.Fprintln(w, t.Render())
}

// Progress is a byte progress bar on stderr, or a no-op.
type Progress struct{ bar *progressbar.ProgressBar }

// NewProgress returns a progress bar for total bytes (or -1 when unknown).
func (s *IO) NewProgress(total int64, description string) *Progress {
	if !s.ProgressEnabled() {
		return &Progress{}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(s.Err),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100_000_000), // 100ms
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	return &Progress{bar: bar}
}

// Add advances the bar by n bytes. Safe on a nil or no-op bar.
func (p *Progress) Add(n int64) {
	if p == nil || p.bar == nil {
		return
	}
	_ = p.bar.Add64(n)
}

// Finish clears the bar.
func (p *Progress) Finish() {
	if p == nil || p.bar == nil {
		return
	}
	_ = p.bar.Finish()
}
