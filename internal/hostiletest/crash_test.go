//go:build unix

package hostiletest

import (
	"bytes"
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
)

// runKilled runs the CLI with the crash point set and reports whether it
// died of SIGKILL; otherwise it returns the exit status.
func runKilled(t *testing.T, point string, args ...string) (killed bool, code int, output string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "NO_COLOR=1", crashpoint.EnvVar+"="+point)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("still running after %s:\n%s", cmdTimeout, out.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal() == syscall.SIGKILL, -1, out.String()
		}
		return false, ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return false, 0, out.String()
}

// crashPoints lists the registered points of the import sequence (sync
// activates through it too).
func crashPoints(t *testing.T) []string {
	var points []string
	for _, name := range crashpoint.Names() {
		for _, prefix := range []string{"import-", "activate-", "prune-", "setlatest-"} {
			if strings.HasPrefix(name, prefix) {
				points = append(points, name)
			}
		}
	}
	if len(points) < 10 {
		t.Fatalf("only %d crash points registered: %v", len(points), points)
	}
	return points
}

// crashLoop kills the command args(root) at every crash point, then
// checks that the root is consistent (latest at the seed or at the new
// export) and that the same command, run again, succeeds.
func crashLoop(t *testing.T, args func(root string) []string) {
	const seedID, newID = "20260315T000000Z", "20260315T010000Z"
	hit := 0
	for _, point := range crashPoints(t) {
		t.Run(point, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			seedRoot(t, root, "base/seq10", "roots/es256.pem")
			killed, code, out := runKilled(t, point, args(root)...)
			switch {
			case killed:
				hit++
				if got := checkConsistent(t, root, "roots/es256.pem", now); got != seedID && got != newID {
					t.Fatalf("after a kill at %s latest -> %q", point, got)
				}
			case code != 0:
				t.Fatalf("with crash point %s (not reached): exit %d\n%s", point, code, out)
			}
			r := runCLI(t, nil, nil, args(root)...)
			if r.code != 0 {
				t.Fatalf("re-run after a kill at %s: exit %d\n%s", point, r.code, r.output)
			}
			if got := checkConsistent(t, root, "roots/es256.pem", now); got != newID {
				t.Fatalf("after the re-run latest -> %q", got)
			}
			noStagingLeftovers(t, root)
		})
	}
	if hit < 8 {
		t.Fatalf("only %d crash points were reached", hit)
	}
	t.Logf("%d crash points reached", hit)
}

// TestArchiveImportCrashPoints is cmd/stellaops-cli's crash test for an
// import from a .tar.zst, which extracts instead of copying.
func TestArchiveImportCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the binary twice per crash point")
	}
	crashLoop(t, func(root string) []string {
		return []string{"mirror", "import", "-q", "--bundle-path", abs(t, "cases/control-tar-zst.tar.zst"), "--export-root", root,
			"--trust-roots", abs(t, "roots/es256.pem"), "--keep", "1", "--now", now.Format(time.RFC3339)}
	})
}

// TestSyncCrashPoints kills mirror sync, pulling the next export from a
// mirror serve, at every crash point of its activation.
func TestSyncCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the binary twice per crash point")
	}
	up := filepath.Join(t.TempDir(), "upstream")
	seedRoot(t, up, "base/seq10", "roots/es256.pem")
	r := runCLI(t, nil, nil, "mirror", "import", "-q", "--bundle-path", abs(t, "base/seq11"), "--export-root", up,
		"--trust-roots", abs(t, "roots/es256.pem"), "--now", now.Format(time.RFC3339))
	if r.code != 0 {
		t.Fatalf("upstream: %s", r.output)
	}
	p := startServe(t, up)
	crashLoop(t, func(root string) []string {
		return []string{"mirror", "sync", "-q", "--from", "http://" + p.addr, "--export-root", root,
			"--trust-roots", abs(t, "roots/es256.pem"), "--keep", "1", "--now", now.Format(time.RFC3339)}
	})
}
