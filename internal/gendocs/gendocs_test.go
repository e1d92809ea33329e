package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/cli"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
)

// repoRoot is the repository root as seen from this package's folder.
const repoRoot = "../.."

func manDate(t *testing.T) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, ManDate)
	if err != nil {
		t.Fatalf("ManDate %q: %v", ManDate, err)
	}
	return d
}

func generate(t *testing.T) Files {
	t.Helper()
	files, err := Generate(manDate(t))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestCommittedFilesUpToDate is the drift check: man/ and completions/ must
// be exactly what the generator writes for the current command tree.
func TestCommittedFilesUpToDate(t *testing.T) {
	drift, err := Check(repoRoot, generate(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) > 0 {
		t.Errorf("generated files out of date; run: go run ./internal/gendocs\n%s", strings.Join(drift, "\n"))
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := generate(t), generate(t)
	if !slices.Equal(a.Names(), b.Names()) {
		t.Fatalf("file lists differ:\n%v\n%v", a.Names(), b.Names())
	}
	for _, n := range a.Names() {
		if !bytes.Equal(a[n], b[n]) {
			t.Errorf("%s differs between two runs", n)
		}
	}
}

// TestDateOnlyInHeader generates with two dates: only the .TH lines of the
// man pages may differ.
func TestDateOnlyInHeader(t *testing.T) {
	a, err := Generate(time.Date(2001, 2, 3, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(time.Date(2031, 9, 4, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	dropTH := func(data []byte) string {
		var out []string
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(l, ".TH ") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	for _, n := range a.Names() {
		if dropTH(a[n]) != dropTH(b[n]) {
			t.Errorf("%s depends on the date outside its .TH line", n)
		}
		if strings.HasPrefix(n, "man/") && (!strings.Contains(string(a[n]), `"Feb 2001"`) || !strings.Contains(string(b[n]), `"Sep 2031"`)) {
			t.Errorf("%s: .TH does not carry the given date", n)
		}
	}
}

func TestGenerateWritesEveryShellAndPage(t *testing.T) {
	files := generate(t)
	for _, want := range []string{
		"completions/stellaops-cli.bash", "completions/stellaops-cli.zsh",
		"completions/stellaops-cli.fish", "completions/stellaops-cli.ps1",
		"man/stellaops-cli.1", "man/stellaops-cli-mirror.1", "man/stellaops-cli-version.1",
		"man/stellaops-cli-mirror-export.1", "man/stellaops-cli-mirror-verify.1",
		"man/stellaops-cli-mirror-import.1", "man/stellaops-cli-completion-bash.1",
	} {
		if _, ok := files[want]; !ok {
			t.Errorf("%s not generated; have %v", want, files.Names())
		}
	}
	eachCommand(NewRoot(), func(cmd *cobra.Command) {
		if _, ok := files["man/"+ManPageName(cmd)]; !ok {
			t.Errorf("%q has no man page %s", cmd.CommandPath(), ManPageName(cmd))
		}
	})
	for _, n := range files.Names() {
		if strings.HasPrefix(n, "man/") && !strings.Contains(string(files[n]), `.TH "`) {
			t.Errorf("%s has no .TH header", n)
		}
		if strings.HasPrefix(n, "man/") && !strings.Contains(string(files[n]), `"Dec 2026"`) {
			t.Errorf("%s does not carry the fixed date %s", n, ManDate)
		}
	}
}

// eachCommand visits the commands that get a man page.
func eachCommand(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() && !c.IsAdditionalHelpTopicCommand() {
			eachCommand(c, fn)
		}
	}
}

var sectionRe = regexp.MustCompile(`(?m)^\.SH (.+)$`)

func sections(page string) []string {
	var out []string
	for _, m := range sectionRe.FindAllStringSubmatch(page, -1) {
		out = append(out, strings.Trim(m[1], `"`))
	}
	return out
}

// sectionBody returns the text of the named section.
func sectionBody(page, title string) string {
	_, rest, ok := strings.Cut(page, "\n.SH "+title+"\n")
	if !ok {
		return ""
	}
	body, _, _ := strings.Cut(rest, "\n.SH ")
	return body
}

// TestEveryCommandHasExamples requires an Example on every command, shown
// by --help and in an EXAMPLES section of its man page.
func TestEveryCommandHasExamples(t *testing.T) {
	files := generate(t)
	eachCommand(NewRoot(), func(cmd *cobra.Command) {
		path := cmd.CommandPath()
		if strings.TrimSpace(cmd.Example) == "" {
			t.Errorf("%q has no Example", path)
			return
		}
		args := append(strings.Fields(path)[1:], "--help")
		var out, errw bytes.Buffer
		code := cli.Main(context.Background(), iostreams.Test(strings.NewReader(""), &out, &errw), args)
		if code != 0 {
			t.Errorf("%s --help: exit %d: %s", path, code, errw.String())
		}
		if !strings.Contains(out.String(), "Examples:\n") || !strings.Contains(out.String(), firstExampleLine(cmd.Example)) {
			t.Errorf("%s --help shows no examples:\n%s", path, out.String())
		}
		page := string(files["man/"+ManPageName(cmd)])
		body := sectionBody(page, secExamples)
		if !strings.Contains(body, "stellaops") {
			t.Errorf("%s: man page has no EXAMPLES section with a command:\n%s", ManPageName(cmd), page)
		}
	})
}

func firstExampleLine(example string) string {
	for _, l := range strings.Split(example, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

// TestManPageSections checks the section order of man-pages(7) and the
// contract's exit codes, environment variables and export-root layout.
func TestManPageSections(t *testing.T) {
	files := generate(t)
	envVars := []string{
		"NO_COLOR", "STELLAOPS_KEY_PASSWORD", "STELLAOPS_MIRROR_PASSWORD", "STELLAOPS_MIRROR_TOKEN",
		"CONCELIER__MIRROR__ENABLED", "CONCELIER__MIRROR__EXPORTROOT", "CONCELIER__MIRROR__ACTIVEEXPORTID",
		"CONCELIER__MIRROR__REQUIREAUTHENTICATION", "CONCELIER__MIRROR__MAXINDEXREQUESTSPERHOUR",
		"CONCELIER__MIRROR__DOMAINS__{n}__ID", "CONCELIER__MIRROR__DOMAINS__{n}__DISPLAYNAME",
		"CONCELIER__MIRROR__DOMAINS__{n}__REQUIREAUTHENTICATION",
		"CONCELIER__MIRROR__DOMAINS__{n}__MAXINDEXREQUESTSPERHOUR",
		"CONCELIER__MIRROR__DOMAINS__{n}__MAXDOWNLOADREQUESTSPERHOUR",
		"CONCELIER__AUTHORITY__ENABLED", "CONCELIER__AUTHORITY__ALLOWANONYMOUSFALLBACK",
		"CONCELIER__AUTHORITY__BYPASSNETWORKS__{n}",
		"CONCELIER__SOURCES__STELLAOPSMIRROR__BASEADDRESS", "CONCELIER__SOURCES__STELLAOPSMIRROR__INDEXPATH",
		"CONCELIER__SOURCES__STELLAOPSMIRROR__DOMAINID", "CONCELIER__SOURCES__STELLAOPSMIRROR__HTTPTIMEOUT",
		"CONCELIER__SOURCES__STELLAOPSMIRROR__SIGNATURE__ENABLED",
		"CONCELIER__SOURCES__STELLAOPSMIRROR__SIGNATURE__KEYID",
		"CONCELIER__SOURCES__STELLAOPSMIRROR__SIGNATURE__PROVIDER",
		"CONCELIER__SOURCES__STELLAOPSMIRROR__SIGNATURE__PUBLICKEYPATH",
	}
	order := []string{secName, secSynopsis, secDescription, secOptions, secInherited,
		secExitStatus, secEnvironment, secFiles, secExamples, secSeeAlso}
	for _, n := range files.Names() {
		if !strings.HasPrefix(n, "man/") {
			continue
		}
		page := string(files[n])
		got := sections(page)
		for _, must := range []string{secName, secSynopsis, secDescription, secExitStatus, secEnvironment, secFiles, secExamples} {
			if !slices.Contains(got, must) {
				t.Errorf("%s: no %s section (have %v)", n, must, got)
			}
		}
		last := -1
		for _, s := range got {
			i := slices.Index(order, s)
			if i < 0 {
				t.Errorf("%s: unexpected section %q", n, s)
				continue
			}
			if i < last {
				t.Errorf("%s: sections out of order: %v", n, got)
				break
			}
			last = i
		}
		if strings.Contains(page, ".SH EXAMPLE\n") {
			t.Errorf("%s: cobra's EXAMPLE section was not renamed", n)
		}
		exit := sectionBody(page, secExitStatus)
		for _, code := range []string{"0", "1", "2", "3", "4", "5", "130"} {
			if !strings.Contains(exit, `\fB`+code+`\fP`) {
				t.Errorf("%s: EXIT STATUS lacks %s", n, code)
			}
		}
		env := sectionBody(page, secEnvironment)
		for _, v := range envVars {
			if !strings.Contains(env, `\fB`+v+`\fP`) {
				t.Errorf("%s: ENVIRONMENT lacks %s", n, v)
			}
		}
		fl := sectionBody(page, secFiles)
		for _, p := range []string{"latest", ".stellaops/", "exportId"} {
			if !strings.Contains(fl, p) {
				t.Errorf("%s: FILES lacks %s", n, p)
			}
		}
		if strings.Contains(page, "Auto generated") {
			t.Errorf("%s: carries cobra's generated-by tag", n)
		}
	}
}

// TestManPageText checks that markdown characters in the help texts reach
// the page as typed.
func TestManPageText(t *testing.T) {
	files := generate(t)
	// \& is roff's zero-width character: it does not show.
	export := strings.ReplaceAll(string(files["man/stellaops-cli-mirror-export.1"]), `\&`, "")
	for _, want := range []string{`DIR/<domainId>/advisories/**/*.json`, `STELLAOPS_KEY_PASSWORD`} {
		if !strings.Contains(export, want) {
			t.Errorf("export page lacks %q", want)
		}
	}
	serve := string(files["man/stellaops-cli-mirror-serve.1"])
	for _, want := range []string{"CONCELIER__MIRROR__EXPORTROOT", "GET /concelier/exports/index.json                         [public, max-age=60]"} {
		if !strings.Contains(serve, want) {
			t.Errorf("serve page lacks %q", want)
		}
	}
}

func TestMarkdownText(t *testing.T) {
	in := "Reads DIR/<id>/**/*.json and CONCELIER__MIRROR__X.\n\nTable:\n  a   b\n\n  c   d\nAfter."
	want := "Reads DIR/\\<id\\>/\\*\\*/\\*.json and CONCELIER\\_\\_MIRROR\\_\\_X.\n\nTable:\n```\n  a   b\n\n  c   d\n```\nAfter.\n"
	if got := markdownText(in); got != want {
		t.Errorf("markdownText:\n got %q\nwant %q", got, want)
	}
	// Indented lines right after a list item continue it.
	in = "Steps:\n\n- first step that\n  wraps\n- second\n\n  verbatim"
	want = "Steps:\n\n- first step that\n  wraps\n- second\n\n```\n  verbatim\n```\n"
	if got := markdownText(in); got != want {
		t.Errorf("markdownText with a list:\n got %q\nwant %q", got, want)
	}
}

// TestCheckAndWrite covers -check's report (differs, missing, extra) and
// that a write repairs all three.
func TestCheckAndWrite(t *testing.T) {
	files := generate(t)
	dir := t.TempDir()
	var out, errw bytes.Buffer
	if code := run([]string{"-dir", dir, "-check"}, &out, &errw); code != 1 {
		t.Fatalf("-check on an empty folder: exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), "missing: man/stellaops-cli.1") {
		t.Errorf("-check output lacks the missing page:\n%s", out.String())
	}
	if code := run([]string{"-dir", dir}, &out, &errw); code != 0 {
		t.Fatalf("write: exit %d: %s", code, errw.String())
	}
	out.Reset()
	if code := run([]string{"-dir", dir, "-check"}, &out, &errw); code != 0 {
		t.Fatalf("-check after a write: exit %d:\n%s", code, out.String())
	}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "man", "stellaops-cli-version.1"), []byte("edited\n"), 0o644))
	must(os.Remove(filepath.Join(dir, "completions", "stellaops-cli.fish")))
	must(os.WriteFile(filepath.Join(dir, "man", "stellaops-cli-gone.1"), []byte("old\n"), 0o644))
	drift, err := Check(dir, files)
	must(err)
	want := []string{
		"missing: completions/stellaops-cli.fish",
		"differs: man/stellaops-cli-version.1",
		"extra:   man/stellaops-cli-gone.1",
	}
	if !slices.Equal(drift, want) {
		t.Errorf("Check:\n got %q\nwant %q", drift, want)
	}
	written, removed, err := Write(dir, files)
	must(err)
	if written != 2 || removed != 1 {
		t.Errorf("Write: %d written, %d removed; want 2 and 1", written, removed)
	}
	drift, err = Check(dir, files)
	must(err)
	if len(drift) != 0 {
		t.Errorf("drift after Write: %v", drift)
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	var out, errw bytes.Buffer
	for _, args := range [][]string{{"-date", "yesterday"}, {"extra"}, {"-nope"}} {
		if code := run(args, &out, &errw); code != 2 {
			t.Errorf("run %v: exit %d, want 2", args, code)
		}
	}
}
