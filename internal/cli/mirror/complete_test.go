package mirror

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/internal/samplefeed"
)

// complete runs cobra's hidden __complete command on the mirror tree and
// returns the completions and the directive line.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	cmd := NewCmdMirror(iostreams.Test(strings.NewReader(""), &out, &errw))
	cmd.SetOut(&out)
	cmd.SetErr(&errw)
	cmd.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	if err := cmd.Execute(); err != nil {
		t.Fatalf("__complete %v: %v\n%s", args, err, errw.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

// directive formats a cobra directive as __complete prints it.
func directive(d cobra.ShellCompDirective) string {
	return fmt.Sprintf(":%d", d)
}

func TestCompleteExportDomainsFromSource(t *testing.T) {
	src := filepath.Join(t.TempDir(), "feed")
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	// Not domains: a file, and a folder whose name is not a domain id.
	if err := os.WriteFile(filepath.Join(src, "README"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "Not_A_Domain"), 0o755); err != nil {
		t.Fatal(err)
	}

	got, dir := complete(t, "export", "--source", src, "--domain", "")
	want := []string{"community\tCommunity", "primary\tPrimary"}
	if !slices.Equal(got, want) || dir != directive(cobra.ShellCompDirectiveNoFileComp) {
		t.Errorf("--domain: got %q %s, want %q %s", got, dir, want, directive(cobra.ShellCompDirectiveNoFileComp))
	}

	got, _ = complete(t, "export", "--source", src, "--domain", "primary", "--domain", "")
	if !slices.Equal(got, []string{"community\tCommunity"}) {
		t.Errorf("--domain after --domain primary: got %q", got)
	}
	got, _ = complete(t, "export", "--source", src, "--domain", "p")
	if !slices.Equal(got, []string{"primary\tPrimary"}) {
		t.Errorf("--domain p: got %q", got)
	}
	got, _ = complete(t, "export", "--domain", "")
	if len(got) != 0 {
		t.Errorf("--domain without --source: got %q, want nothing", got)
	}
	got, _ = complete(t, "export", "--source", filepath.Join(src, "missing"), "--domain", "")
	if len(got) != 0 {
		t.Errorf("--domain with a missing --source: got %q, want nothing", got)
	}
}

// makeRoot lays out an export root with two exports, latest pointing at
// the newer one, and a state folder.
func makeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, id := range []string{"20260301T000000Z", "20260315T000000Z"} {
		for _, d := range []string{"primary", "community"} {
			if err := os.MkdirAll(filepath.Join(root, id, "mirror", d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "20260301T000000Z", "mirror", "retired"), 0o755); err != nil {
		t.Fatal(err)
	}
	index := `{"schemaVersion":1,"exportId":"20260315T000000Z","generatedAt":"2026-03-15T00:00:00Z","domains":[` +
		`{"id":"community","displayName":"Community feed"},{"id":"primary","displayName":"Primary"}]}`
	if err := os.WriteFile(filepath.Join(root, "20260315T000000Z", "mirror", "index.json"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("20260315T000000Z", filepath.Join(root, "latest")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, ".stellaops", "staging"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCompleteServeExportIDs(t *testing.T) {
	root := makeRoot(t)
	got, dir := complete(t, "serve", "--export-root", root, "--active-export-id", "")
	want := []string{"20260315T000000Z\tlatest", "20260301T000000Z"}
	d := directive(cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder)
	if !slices.Equal(got, want) || dir != d {
		t.Errorf("--active-export-id: got %q %s, want %q %s", got, dir, want, d)
	}

	t.Setenv(exportRootEnv, root)
	got, _ = complete(t, "serve", "--active-export-id", "202603")
	if !slices.Equal(got, want) {
		t.Errorf("--active-export-id from $%s: got %q, want %q", exportRootEnv, got, want)
	}
}

// domainCmd is a command with the flags of sync: --export-root and a
// repeatable --domain completed from it.
func domainCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sync", RunE: func(*cobra.Command, []string) error { return nil }}
	cmd.Flags().String("export-root", "", "")
	cmd.Flags().String("active-export-id", "", "")
	cmd.Flags().StringArray("domain", nil, "")
	_ = cmd.RegisterFlagCompletionFunc("domain", completeDomainsFromExportRoot)
	return cmd
}

func TestCompleteDomainsFromExportRoot(t *testing.T) {
	root := makeRoot(t)
	run := func(args ...string) []string {
		t.Helper()
		cmd := domainCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return lines[:len(lines)-1]
	}
	got := run("--export-root", root, "--domain", "")
	if want := []string{"community\tCommunity feed", "primary\tPrimary"}; !slices.Equal(got, want) {
		t.Errorf("latest: got %q, want %q", got, want)
	}
	got = run("--export-root", root, "--active-export-id", "20260301T000000Z", "--domain", "")
	if want := []string{"community", "primary", "retired"}; !slices.Equal(got, want) {
		t.Errorf("pinned export: got %q, want %q", got, want)
	}
	got = run("--export-root", root, "--domain", "community", "--domain", "")
	if want := []string{"primary\tPrimary"}; !slices.Equal(got, want) {
		t.Errorf("after --domain community: got %q, want %q", got, want)
	}
	got = run("--export-root", t.TempDir(), "--domain", "")
	if len(got) != 0 {
		t.Errorf("empty export root: got %q, want nothing", got)
	}
}

// TestCompleteFileFlags checks the file and folder flags: their extension
// filters reach the shell with cobra's FilterFileExt or FilterDirs
// directive.
func TestCompleteFileFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
		dir  cobra.ShellCompDirective
	}{
		{[]string{"verify", "--bundle-path", ""}, bundlePathExts, cobra.ShellCompDirectiveFilterFileExt},
		{[]string{"import", "--bundle-path", ""}, bundlePathExts, cobra.ShellCompDirectiveFilterFileExt},
		{[]string{"verify", "--trust-roots", ""}, []string{"pem", "pub", "crt"}, cobra.ShellCompDirectiveFilterFileExt},
		{[]string{"export", "--key", ""}, []string{"pem", "key"}, cobra.ShellCompDirectiveFilterFileExt},
		{[]string{"export", "--archive", ""}, []string{"zst", "gz"}, cobra.ShellCompDirectiveFilterFileExt},
		{[]string{"export", "--source", ""}, nil, cobra.ShellCompDirectiveFilterDirs},
		{[]string{"import", "--export-root", ""}, nil, cobra.ShellCompDirectiveFilterDirs},
		{[]string{"serve", "--export-root", ""}, nil, cobra.ShellCompDirectiveFilterDirs},
	} {
		got, dir := complete(t, tc.args...)
		if !slices.Equal(got, tc.want) || dir != directive(tc.dir) {
			t.Errorf("%v: got %q %s, want %q %s", tc.args, got, dir, tc.want, directive(tc.dir))
		}
	}
}

// TestDomainFlagsComplete requires every --domain flag of a command that
// also names a source tree or an export root to complete domain ids from
// it (completeDomainsFromSource, completeDomainsFromExportRoot).
func TestDomainFlagsComplete(t *testing.T) {
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		f := cmd.Flags()
		if f.Lookup("domain") != nil && (f.Lookup("source") != nil || f.Lookup("export-root") != nil) {
			if _, ok := cmd.GetFlagCompletionFunc("domain"); !ok {
				t.Errorf("%q: --domain has no completion; register completeDomainsFromSource or completeDomainsFromExportRoot", cmd.CommandPath())
			}
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(NewCmdMirror(iostreams.Test(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})))
}
