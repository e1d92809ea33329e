package releasetest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/stellaops/stellaops-cli/internal/cli"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
)

// repoRoot is the repository root as seen from this package's folder.
const repoRoot = "../.."

// runAsCLIEnv makes the test binary behave as stellaops-cli, for tests
// that run it from a shell (completion scripts).
const runAsCLIEnv = "STELLAOPS_RELEASETEST_RUN_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(runAsCLIEnv) == "1" {
		os.Exit(cli.Main(context.Background(), iostreams.System(), os.Args[1:]))
	}
	os.Exit(m.Run())
}

// repoPath joins parts onto the repository root.
func repoPath(parts ...string) string {
	return filepath.Join(append([]string{repoRoot}, parts...)...)
}

// newRoot returns a fresh command tree.
func newRoot() *cobra.Command {
	return cli.NewRootCmd(iostreams.Test(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
}

// runCLI runs stellaops-cli in process with args and returns its output
// and exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	io := iostreams.Test(strings.NewReader(""), &out, &errw)
	io.Getenv = func(string) string { return "" }
	code = cli.Main(context.Background(), io, args)
	return out.String(), errw.String(), code
}

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(repoPath(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
