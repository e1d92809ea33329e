package releasetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
)

func bashPath(t *testing.T) string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	return bash
}

// TestBashCompletionLoads sources the committed bash script as an operator
// would and checks that it registers the completion function.
func TestBashCompletionLoads(t *testing.T) {
	bash := bashPath(t)
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", "source completions/stellaops-cli.bash; complete -p stellaops-cli")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := strings.TrimSpace(string(out))
	if !strings.Contains(got, "-F __start_stellaops-cli") || !strings.HasSuffix(got, " stellaops-cli") {
		t.Errorf("complete -p stellaops-cli: %q", got)
	}
}

// TestBashCompletionEndToEnd runs the committed bash script's completion
// function with this test binary standing in for stellaops-cli on PATH, so
// the script, cobra's __complete protocol and the dynamic completions are
// exercised together.
func TestBashCompletionEndToEnd(t *testing.T) {
	bash := bashPath(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "stellaops-cli")); err != nil {
		t.Skipf("cannot link the test binary: %v", err)
	}
	script, err := filepath.Abs(repoPath("completions", "stellaops-cli.bash"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "feed")
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}

	// completeLine completes the last word of line and returns the
	// candidates without their descriptions.
	completeLine := func(line string) []string {
		t.Helper()
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", `
# The script uses bash-completion's _get_comp_words_by_ref; load the
# package where it is installed, else stand in for it.
for f in /usr/share/bash-completion/bash_completion /etc/bash_completion; do
  if [[ -r $f ]]; then source "$f"; break; fi
done
if ! declare -F _get_comp_words_by_ref >/dev/null; then
  _get_comp_words_by_ref() {
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
  }
fi
# compopt only works inside a completion the shell started.
compopt() { :; }
source "$1"
read -r -a COMP_WORDS <<<"$2"
if [[ "$2" == *" " ]]; then COMP_WORDS+=(""); fi
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$2"
COMP_POINT=${#COMP_LINE}
COMP_TYPE=9
__start_stellaops-cli
printf '%s\n' "${COMPREPLY[@]}"
`, "bash", script, line)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), runAsCLIEnv+"=1", "COLUMNS=200")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("completing %q: %v\n%s%s", line, err, out, stderr.String())
		}
		var words []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				words = append(words, f[0])
			}
		}
		return words
	}

	for _, tc := range []struct {
		line string
		want []string
	}{
		{"stellaops-cli mirror ex", []string{"export"}},
		{"stellaops-cli ver", []string{"version"}},
		{"stellaops-cli version -o ", []string{"json", "text"}},
		{"stellaops-cli mirror export --source " + src + " --domain ", []string{"community", "primary"}},
		{"stellaops-cli mirror export --source " + src + " --domain prim", []string{"primary"}},
		{"stellaops-cli mirror export --alg ES", []string{"ES256", "ES384", "ES512"}},
	} {
		got := completeLine(tc.line)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("complete %q: got %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestCompletionCommandsMatchCommittedScripts checks that "stellaops-cli
// completion SHELL" prints the committed script, so that both ways of
// installing completions behave the same.
func TestCompletionCommandsMatchCommittedScripts(t *testing.T) {
	for shell, file := range map[string]string{
		"bash": "stellaops-cli.bash", "zsh": "stellaops-cli.zsh",
		"fish": "stellaops-cli.fish", "powershell": "stellaops-cli.ps1",
	} {
		out, errw, code := runCLI(t, "completion", shell)
		if code != 0 {
			t.Errorf("completion %s: exit %d: %s", shell, code, errw)
			continue
		}
		if out != string(readFile(t, "completions", file)) {
			t.Errorf("completion %s differs from completions/%s; run: go run ./internal/gendocs", shell, file)
		}
	}
}
