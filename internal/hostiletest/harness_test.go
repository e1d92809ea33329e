//go:build unix

// Package hostiletest runs hostile input through the stellaops-cli binary:
// the corpus of testdata/hostile through mirror verify and mirror import,
// disk-full and I/O errors at every write of an import, and SIGTERM during
// serve downloads. The test binary re-executes itself as the CLI.
package hostiletest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/cli"
	"github.com/stellaops/stellaops-cli/internal/iostreams"
	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/importer"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// runMainEnv makes the test binary behave as stellaops-cli.
const runMainEnv = "STELLAOPS_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Main(ctx, iostreams.System(), os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

var (
	corpusDir = filepath.Join("..", "..", "testdata", "hostile")
	// now and seedNow are the times of the corpus (see its INDEX.tsv).
	now     = time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC)
	seedNow = time.Date(2026, 3, 15, 6, 0, 0, 0, time.UTC)
)

// cmdTimeout bounds every run of the CLI: a case that hangs fails instead
// of stalling the suite.
const cmdTimeout = 2 * time.Minute

// result is one run of the CLI.
type result struct {
	code   int
	output string
}

// runCLI runs the test binary as stellaops-cli with stdin (may be nil)
// and extra environment.
func runCLI(t testing.TB, stdin []byte, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), runMainEnv+"=1", "NO_COLOR=1"), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("stellaops-cli %s: still running after %s\n%s", strings.Join(args, " "), cmdTimeout, out.String())
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("stellaops-cli %s: killed by %v\n%s", strings.Join(args, " "), ws.Signal(), out.String())
		}
	case err != nil:
		t.Fatal(err)
	}
	return result{code: code, output: out.String()}
}

// abs returns the absolute path of a corpus file.
func abs(t testing.TB, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(corpusDir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// seedRoot creates an export root and imports the bundle seed into it at
// seedNow with the trust roots in rootsFile ("-": the root stays empty).
func seedRoot(t testing.TB, dir, seed, rootsFile string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if seed == "-" {
		return
	}
	roots, err := trust.LoadFile(abs(t, rootsFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = importer.Import(context.Background(), importer.Options{
		BundlePath: seed, Stage: importer.FolderStager(abs(t, seed)), ExportRoot: dir,
		TrustRoots: roots, TrustRootsPath: abs(t, rootsFile), VerifyChecksums: true, VerifyDSSE: true,
		Now: seedNow, Clock: func() time.Time { return seedNow },
	})
	if err != nil {
		t.Fatalf("seed %s with %s: %v", dir, seed, err)
	}
}

// checkConsistent requires latest to point at a complete export that
// verifies with rootsFile at now and the high-water mark to cover it, and
// returns its id ("" for a root without exports).
func checkConsistent(t testing.TB, dir, rootsFile string, at time.Time) string {
	t.Helper()
	root, err := exportroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := root.Latest()
	if err != nil {
		t.Fatalf("latest: %v", err)
	}
	if latest == "" {
		return ""
	}
	roots, err := trust.LoadFile(abs(t, rootsFile))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bundle.VerifyDir(context.Background(), root.ExportDir(latest), bundle.VerifyOptions{
		Roots: roots, Now: at, VerifyChecksums: true, VerifyDSSE: true})
	if err != nil {
		t.Fatalf("latest -> %s does not verify: %v", latest, err)
	}
	hwm, err := root.HighWater()
	if err != nil {
		t.Fatal(err)
	}
	if hwm.Sequence < rep.Sequence {
		t.Fatalf("high-water mark %d below the active export's sequence %d", hwm.Sequence, rep.Sequence)
	}
	return latest
}

// noStagingLeftovers requires the root's staging folder to be empty.
func noStagingLeftovers(t testing.TB, dir string) {
	t.Helper()
	leftovers, _ := filepath.Glob(filepath.Join(dir, exportroot.StateDirName, "staging", "*"))
	if len(leftovers) > 0 {
		t.Fatalf("staging leftovers: %v", leftovers)
	}
}

func fingerprint(t testing.TB, dir string) string {
	t.Helper()
	return testutil.Fingerprint(t, dir)
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	if s == "-" {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("exit status %q: %v", s, err)
	}
	return n
}

// clip shortens long output in failure messages.
func clip(s string) string {
	if len(s) > 4000 {
		return s[:4000] + fmt.Sprintf("\n... (%d more bytes)", len(s)-4000)
	}
	return s
}
