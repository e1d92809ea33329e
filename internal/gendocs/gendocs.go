package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/stellaops/stellaops-cli/internal/cli"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
)

// ManDate is the date the man pages carry. It is fixed so that the pages do
// not change from one run to the next; bump it (or pass -date) at a release.
const ManDate = "2026-12-01"

// Output folders, relative to the repository root. Every file in them is
// generated: Write removes files the generator no longer produces.
const (
	ManDir         = "man"
	CompletionsDir = "completions"
)

// Files maps slash-separated paths relative to the repository root to their
// generated contents.
type Files map[string][]byte

// Names returns the paths in order.
func (f Files) Names() []string {
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewRoot returns the command tree the files are generated from.
func NewRoot() *cobra.Command {
	return cli.NewRootCmd(iostreams.Test(strings.NewReader(""), io.Discard, io.Discard))
}

// Generate builds the man pages and completion scripts of a fresh command
// tree, dated date.
func Generate(date time.Time) (Files, error) {
	return GenerateFrom(NewRoot(), date)
}

// GenerateFrom builds the files from root. It changes root's help texts for
// the man page renderer, so pass a tree built for this purpose.
func GenerateFrom(root *cobra.Command, date time.Time) (Files, error) {
	files := Files{}
	name := root.Name()
	completions := []struct {
		file string
		gen  func(io.Writer) error
	}{
		{name + ".bash", func(w io.Writer) error { return root.GenBashCompletionV2(w, true) }},
		{name + ".zsh", root.GenZshCompletion},
		{name + ".fish", func(w io.Writer) error { return root.GenFishCompletion(w, true) }},
		{name + ".ps1", root.GenPowerShellCompletionWithDesc},
	}
	for _, c := range completions {
		var buf bytes.Buffer
		if err := c.gen(&buf); err != nil {
			return nil, fmt.Errorf("%s completion: %w", c.file, err)
		}
		files[path.Join(CompletionsDir, c.file)] = buf.Bytes()
	}

	prepareForMan(root)
	d := date.UTC()
	var walk func(cmd *cobra.Command) error
	walk = func(cmd *cobra.Command) error {
		for _, c := range cmd.Commands() {
			if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
				continue
			}
			if err := walk(c); err != nil {
				return err
			}
		}
		header := &doc.GenManHeader{Section: "1", Date: &d, Source: name, Manual: name + " manual"}
		var buf bytes.Buffer
		if err := doc.GenMan(cmd, header, &buf); err != nil {
			return fmt.Errorf("man page of %q: %w", cmd.CommandPath(), err)
		}
		files[path.Join(ManDir, ManPageName(cmd))] = restructure(buf.Bytes())
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return files, nil
}

// ManPageName is the man page file of cmd, e.g. stellaops-cli-mirror-import.1.
func ManPageName(cmd *cobra.Command) string {
	return strings.ReplaceAll(cmd.CommandPath(), " ", "-") + ".1"
}

// Check compares files with what is on disk under dir and returns one line
// per generated file that differs or is missing, and per file in the output
// folders that the generator does not produce.
func Check(dir string, files Files) ([]string, error) {
	var drift []string
	for _, name := range files.Names() {
		have, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		switch {
		case err == nil && !bytes.Equal(have, files[name]):
			drift = append(drift, "differs: "+name)
		case err == nil:
		case os.IsNotExist(err):
			drift = append(drift, "missing: "+name)
		default:
			return nil, err
		}
	}
	extra, err := extraFiles(dir, files)
	if err != nil {
		return nil, err
	}
	for _, name := range extra {
		drift = append(drift, "extra:   "+name)
	}
	return drift, nil
}

// Write writes files under dir, leaving unchanged files untouched, and
// removes the files of the output folders that are not generated any more.
func Write(dir string, files Files) (written, removed int, err error) {
	for _, name := range files.Names() {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, files[name]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, removed, err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return written, removed, err
		}
		written++
	}
	extra, err := extraFiles(dir, files)
	if err != nil {
		return written, removed, err
	}
	for _, name := range extra {
		if err := os.Remove(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			return written, removed, err
		}
		removed++
	}
	return written, removed, nil
}

// extraFiles lists the files in the output folders that files lacks.
func extraFiles(dir string, files Files) ([]string, error) {
	var extra []string
	for _, out := range []string{ManDir, CompletionsDir} {
		err := filepath.WalkDir(filepath.Join(dir, out), func(p string, e fs.DirEntry, err error) error {
			if os.IsNotExist(err) {
				return filepath.SkipDir
			}
			if err != nil || e.IsDir() {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			if _, ok := files[filepath.ToSlash(rel)]; !ok {
				extra = append(extra, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(extra)
	return extra, nil
}

// prepareForMan rewrites the help texts of the tree into the markdown that
// cobra/doc renders: the commands' long descriptions and every flag's usage
// have markdown characters escaped, and indented blocks (tables, lists,
// commands) become verbatim blocks.
func prepareForMan(root *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	escapeFlags := func(fs *pflag.FlagSet) {
		fs.VisitAll(func(f *pflag.Flag) {
			if !seen[f] {
				seen[f] = true
				// pflag marks a value name with backticks (`FILE`); the help
				// shows it without them.
				f.Usage = escapeMarkdown(strings.ReplaceAll(f.Usage, "`", ""))
			}
		})
	}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.DisableAutoGenTag = true
		cmd.InitDefaultHelpFlag()
		cmd.Long = markdownText(cmd.Long)
		cmd.Short = escapeMarkdown(cmd.Short)
		escapeFlags(cmd.LocalFlags())
		escapeFlags(cmd.InheritedFlags())
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
}

// markdownText turns a help text into markdown: plain lines escaped,
// indented blocks fenced so that they keep their layout.
func markdownText(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var b strings.Builder
	inItem := false // the previous line belongs to a "- " list item
	for i := 0; i < len(lines); {
		line := lines[i]
		switch {
		case strings.TrimSpace(line) == "":
			inItem = false
		case strings.HasPrefix(line, "- ") || strings.HasPrefix(line, "* "):
			inItem = true
		case indented(line) && inItem:
			// The continuation of a list item, not a verbatim block.
			b.WriteString("  " + escapeMarkdown(strings.TrimSpace(line)) + "\n")
			i++
			continue
		case !indented(line):
			inItem = false
		}
		if !indented(line) {
			b.WriteString(escapeMarkdown(line))
			b.WriteByte('\n')
			i++
			continue
		}
		// A verbatim block runs over indented lines and the blank lines
		// between them.
		j := i
		end := i
		for j < len(lines) && (indented(lines[j]) || strings.TrimSpace(lines[j]) == "") {
			if indented(lines[j]) {
				end = j + 1
			}
			j++
		}
		b.WriteString("```\n")
		for _, l := range lines[i:end] {
			b.WriteString(strings.ReplaceAll(l, "\t", "    "))
			b.WriteByte('\n')
		}
		b.WriteString("```\n")
		i = end
	}
	return b.String()
}

func indented(line string) bool {
	return strings.TrimSpace(line) != "" && (line[0] == ' ' || line[0] == '\t')
}

// escapeMarkdown quotes the characters markdown would read as emphasis,
// code, links or HTML.
var escapeMarkdown = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `<`, `\<`, `>`, `\>`, `[`, `\[`, `]`, `\]`,
).Replace
