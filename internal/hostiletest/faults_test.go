//go:build unix

package hostiletest

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/faultfs"
	"github.com/stellaops/stellaops-cli/internal/testutil"
)

// TestImportWriteFaults fails the writes of an import with ENOSPC or EIO
// from byte N on (internal/faultfs counts every byte the import writes:
// the staged copy or extraction, the trust store, the high-water mark, the
// status and the log). For every N the import must either exit 1 and
// leave the export root exactly as it was, or, once N covers every write
// that matters, succeed with a consistent root. N runs over the whole
// range: the threshold T where the import starts to succeed is found by
// bisection, then N takes T-1, T, T+1 and steps of T/32 from 0. Every
// fourth failed run is followed by a clean import, which must succeed.
func TestImportWriteFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the binary about a hundred times per case")
	}
	for _, c := range []struct {
		name, rule, bundle, seed string
	}{
		{"enospc-folder", "enospc-after", "base/seq11", "base/seq10"},
		{"enospc-archive", "enospc-after", "cases/control-tar-zst.tar.zst", "base/seq10"},
		{"enospc-first-import", "enospc-after", "base/seq11", "-"},
		{"eio-folder", "eio-after", "base/seq11", "base/seq10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			runs := 0
			try := func(n int64) int {
				t.Helper()
				runs++
				root := filepath.Join(t.TempDir(), "root")
				seedRoot(t, root, c.seed, "roots/es256.pem")
				before := fingerprint(t, root)
				prev := checkConsistent(t, root, "roots/es256.pem", seedNow)
				r := runCLI(t, nil, []string{fmt.Sprintf("%s=%s=%d", faultfs.EnvVar, c.rule, n)},
					"mirror", "import", "-q", "--bundle-path", abs(t, c.bundle), "--export-root", root,
					"--trust-roots", abs(t, "roots/es256.pem"), "--now", now.Format(time.RFC3339))
				switch r.code {
				case 0:
					if got := checkConsistent(t, root, "roots/es256.pem", now); got != "20260315T010000Z" {
						t.Fatalf("%s=%d: exit 0 but latest -> %q", c.rule, n, got)
					}
				case 1:
					if after := fingerprint(t, root); after != before {
						t.Fatalf("%s=%d: failed import changed the export root:\n%s", c.rule, n, testutil.Diff(before, after))
					}
					if got := checkConsistent(t, root, "roots/es256.pem", seedNow); got != prev {
						t.Fatalf("%s=%d: latest -> %q, was %q", c.rule, n, got, prev)
					}
					noStagingLeftovers(t, root)
					// Nothing is left that stops the next import.
					if runs%4 != 0 {
						break
					}
					if r := runCLI(t, nil, nil, "mirror", "import", "-q", "--bundle-path", abs(t, c.bundle), "--export-root", root,
						"--trust-roots", abs(t, "roots/es256.pem"), "--now", now.Format(time.RFC3339)); r.code != 0 {
						t.Fatalf("%s=%d: import after the failed one: exit %d\n%s", c.rule, n, r.code, r.output)
					}
				default:
					t.Fatalf("%s=%d: exit %d, want 0 or 1\n%s", c.rule, n, r.code, clip(r.output))
				}
				return r.code
			}
			// Bisect the smallest N at which the import succeeds.
			lo, hi := int64(0), int64(64<<10)
			if try(hi) != 0 {
				t.Fatalf("%s=%d: the import does not succeed", c.rule, hi)
			}
			for lo < hi {
				mid := (lo + hi) / 2
				if try(mid) == 0 {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			threshold := lo
			offsets := map[int64]bool{0: true, 1: true, threshold - 1: true, threshold: true, threshold + 1: true}
			for i := int64(1); i < 32; i++ {
				offsets[threshold*i/32] = true
			}
			var ns []int64
			for n := range offsets {
				ns = append(ns, n)
			}
			sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
			// The high-water mark and the status carry times whose
			// printed length varies by a few bytes from run to run, so
			// near the threshold either outcome is right.
			const jitter = 16
			for _, n := range ns {
				got := try(n)
				switch {
				case n < threshold-jitter && got != 1:
					t.Fatalf("%s=%d: exit %d, want 1 (the import needs %d bytes)", c.rule, n, got, threshold)
				case n > threshold+jitter && got != 0:
					t.Fatalf("%s=%d: exit %d, want 0 (the import needs %d bytes)", c.rule, n, got, threshold)
				}
			}
			t.Logf("%s: the import writes %d bytes before it can succeed; %d runs", c.rule, threshold, runs)
		})
	}
}
