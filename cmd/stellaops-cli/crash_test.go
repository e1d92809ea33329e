package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/crashpoint"
	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

var testNow = time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC)

// runCLI runs the test binary as stellaops-cli with extra environment.
func runCLI(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), runMainEnv+"=1", "NO_COLOR=1"), env...)
	return cmd
}

// fixture exports two sequential bundles of the sample feed.
func fixture(t *testing.T) (dir string, roots *trust.Roots) {
	t.Helper()
	dir = t.TempDir()
	src := filepath.Join(dir, "src")
	if err := samplefeed.WriteTo(src); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join("..", "..", "testdata", "keys")
	signer, err := sign.LoadSigner(filepath.Join(keys, "es256.pem"), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"b10", "b11"} {
		_, err := bundle.Export(context.Background(), bundle.ExportOptions{
			Source: src, Out: filepath.Join(dir, name), Signer: signer, Sequence: int64(10 + i),
			Created: time.Date(2026, 3, 15, i, 0, 0, 0, time.UTC),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	roots, err = trust.LoadFile(filepath.Join(keys, "es256.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, roots
}

func importArgs(dir, bundleName string, extra ...string) []string {
	return append([]string{"mirror", "import", "-q",
		"--bundle-path", filepath.Join(dir, bundleName),
		"--export-root", filepath.Join(dir, "root"),
		"--trust-roots", filepath.Join("..", "..", "testdata", "keys", "es256.pub"),
		"--now", testNow.Format(time.RFC3339)}, extra...)
}

// checkConsistent requires latest to point at a complete export that
// verifies, and the high-water mark to be at least its sequence.
func checkConsistent(t *testing.T, rootDir string, roots *trust.Roots) string {
	t.Helper()
	root, err := exportroot.Open(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := root.Latest()
	if err != nil || latest == "" {
		t.Fatalf("latest: %q, %v", latest, err)
	}
	rep, err := bundle.VerifyDir(context.Background(), root.ExportDir(latest), bundle.VerifyOptions{
		Roots: roots, Now: testNow, VerifyChecksums: true, VerifyDSSE: true})
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

// TestImportCrashPoints kills an import with SIGKILL at every step of the
// sequence, then checks the root is consistent and that a re-run succeeds.
func TestImportCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the binary once per crash point")
	}
	base, roots := fixture(t)
	var points []string
	for _, name := range crashpoint.Names() {
		if strings.HasPrefix(name, "import-") || strings.HasPrefix(name, "activate-") || strings.HasPrefix(name, "prune-") {
			points = append(points, name)
		}
	}
	if len(points) < 10 {
		t.Fatalf("only %d crash points registered: %v", len(points), points)
	}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			for _, b := range []string{"b10", "b11"} {
				if err := os.CopyFS(filepath.Join(dir, b), os.DirFS(filepath.Join(base, b))); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := runCLI(nil, importArgs(dir, "b10")...).CombinedOutput(); err != nil {
				t.Fatalf("first import: %v\n%s", err, out)
			}
			err := runCLI([]string{crashpoint.EnvVar + "=" + point}, importArgs(dir, "b11", "--keep", "1")...).Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("import with crash point %s: want SIGKILL, got %v", point, err)
			}
			latest := checkConsistent(t, filepath.Join(dir, "root"), roots)
			if latest != "20260315T000000Z" && latest != "20260315T010000Z" {
				t.Fatalf("latest -> %s", latest)
			}
			if out, err := runCLI(nil, importArgs(dir, "b11", "--keep", "1")...).CombinedOutput(); err != nil {
				t.Fatalf("re-run after crash at %s: %v\n%s", point, err, out)
			}
			if got := checkConsistent(t, filepath.Join(dir, "root"), roots); got != "20260315T010000Z" {
				t.Fatalf("after re-run latest -> %s", got)
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, "root", ".stellaops", "staging", "*"))
			if len(leftovers) > 0 {
				t.Fatalf("staging leftovers after re-run: %v", leftovers)
			}
		})
	}
}

// TestImportInterrupted sends SIGINT and SIGTERM in the middle of the copy:
// exit 130 and nothing changed under the export root.
func TestImportInterrupted(t *testing.T) {
	base, roots := fixture(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			for _, b := range []string{"b10", "b11"} {
				if err := os.CopyFS(filepath.Join(dir, b), os.DirFS(filepath.Join(base, b))); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := runCLI(nil, importArgs(dir, "b10")...).CombinedOutput(); err != nil {
				t.Fatalf("first import: %v\n%s", err, out)
			}
			before := testutil.Fingerprint(t, filepath.Join(dir, "root"))
			cmd := runCLI([]string{crashpoint.PauseEnvVar + "=import-mid-copy"}, importArgs(dir, "b11")...)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// A bound, not a wait: a child that never pauses or never exits
			// fails the test instead of hanging it.
			watchdog := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
			defer watchdog.Stop()
			sc := bufio.NewScanner(stderr)
			var rest strings.Builder
			for sc.Scan() {
				if strings.Contains(sc.Text(), "paused at import-mid-copy") {
					break
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
				rest.WriteString(sc.Text() + "\n")
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != failure.ExitInterrupted {
				t.Fatalf("want exit 130, got %v; stderr:\n%s", err, rest.String())
			}
			if !strings.Contains(rest.String(), "interrupted") {
				t.Errorf("stderr does not say interrupted:\n%s", rest.String())
			}
			testutil.AssertUnchanged(t, filepath.Join(dir, "root"), before)
			checkConsistent(t, filepath.Join(dir, "root"), roots)
		})
	}
}
