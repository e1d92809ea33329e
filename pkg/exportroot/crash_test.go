package exportroot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/crashpoint"
)

// sequences of the test exports.
var testSeq = map[string]int64{idA: 1, idB: 2, idC: 3, idD: 4}

// crashCase describes a kill -9 at one crash point: what the child does,
// and the state the root must be in afterwards.
type crashCase struct {
	// setup prepares the root before the child runs.
	setup func(t *testing.T, r *Root)
	// mode and arg of the child (see runChild).
	mode, arg string
	// state after the crash
	wantExports []string
	wantLatest  string
	wantHWM     int64
	// wantLeftovers is how many paths CleanStaging removes.
	wantLeftovers int
	// recover finishes the interrupted operation after CleanStaging, the
	// way a re-run would.
	recover func(t *testing.T, r *Root)
}

func setupA(t *testing.T, r *Root) {
	activateLocked(t, r, idA)
}

func setupAB(t *testing.T, r *Root) {
	activateLocked(t, r, idA)
	activateLocked(t, r, idB)
}

func setupABC(t *testing.T, r *Root) {
	setupAB(t, r)
	activateLocked(t, r, idC)
}

// activateLocked activates id under the lock and releases it.
func activateLocked(t *testing.T, r *Root, id string) {
	t.Helper()
	l, err := r.Lock(context.Background(), 0, LockInfo{Command: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	activate(t, r, id, testSeq[id])
}

// reimportB is what `mirror import` of B does on a re-run: Activate, and
// when the folder already appeared before the crash, raise the high-water
// mark and point latest at it.
func reimportB(t *testing.T, r *Root) {
	t.Helper()
	staging := stagedBundle(idB)(t, r)
	err := r.Activate(staging, idB, testSeq[idB])
	if errors.Is(err, ErrExportExists) {
		checkExport(t, r.Dir(), idB)
		if err := os.RemoveAll(staging); err != nil {
			t.Fatal(err)
		}
		if err := r.RecordHighWater(idB, testSeq[idB]); err != nil {
			t.Fatal(err)
		}
		err = r.SetLatest(idB)
	}
	if err != nil {
		t.Fatalf("re-import of %s: %v", idB, err)
	}
}

var activateB = []string{"activate", idB + ":2"}

var crashCases = map[string]crashCase{
	"activate-before-rename": {
		setup: setupA, mode: activateB[0], arg: activateB[1],
		wantExports: []string{idA}, wantLatest: idA, wantHWM: 1, wantLeftovers: 1,
		recover: reimportB,
	},
	"activate-after-rename": {
		setup: setupA, mode: activateB[0], arg: activateB[1],
		wantExports: []string{idA, idB}, wantLatest: idA, wantHWM: 1,
		recover: reimportB,
	},
	"activate-after-root-sync": {
		setup: setupA, mode: activateB[0], arg: activateB[1],
		wantExports: []string{idA, idB}, wantLatest: idA, wantHWM: 1,
		recover: reimportB,
	},
	"activate-after-hwm": {
		setup: setupA, mode: activateB[0], arg: activateB[1],
		wantExports: []string{idA, idB}, wantLatest: idA, wantHWM: 2,
		recover: reimportB,
	},
	"activate-after-temp-link": {
		setup: setupA, mode: activateB[0], arg: activateB[1],
		wantExports: []string{idA, idB}, wantLatest: idA, wantHWM: 2, wantLeftovers: 1,
		recover: reimportB,
	},
	"activate-after-latest": {
		setup: setupA, mode: activateB[0], arg: activateB[1],
		wantExports: []string{idA, idB}, wantLatest: idB, wantHWM: 2,
		recover: reimportB,
	},
	"activate-after-final-sync": {
		setup: setupA, mode: activateB[0], arg: activateB[1],
		wantExports: []string{idA, idB}, wantLatest: idB, wantHWM: 2,
		recover: reimportB,
	},
	"setlatest-after-temp-link": {
		setup: setupAB, mode: "setlatest", arg: idA,
		wantExports: []string{idA, idB}, wantLatest: idB, wantHWM: 2, wantLeftovers: 1,
		recover: func(t *testing.T, r *Root) {
			if err := r.SetLatest(idA); err != nil {
				t.Fatal(err)
			}
		},
	},
	"setlatest-after-latest": {
		setup: setupAB, mode: "setlatest", arg: idA,
		wantExports: []string{idA, idB}, wantLatest: idA, wantHWM: 2,
		recover: func(t *testing.T, r *Root) {
			if err := r.SetLatest(idA); err != nil {
				t.Fatal(err)
			}
		},
	},
	"prune-after-trash-rename": {
		setup: setupABC, mode: "prune", arg: "1",
		wantExports: []string{idC}, wantLatest: idC, wantHWM: 3, wantLeftovers: 2,
		recover: func(t *testing.T, r *Root) {
			if removed, err := r.Prune(1); err != nil || len(removed) != 0 {
				t.Fatalf("Prune again = %v, %v", removed, err)
			}
		},
	},
}

func TestEveryCrashPointHasACase(t *testing.T) {
	names := crashpoint.Names()
	for _, n := range names {
		if _, ok := crashCases[n]; !ok {
			t.Errorf("crash point %q has no case in crashCases", n)
		}
	}
	for n := range crashCases {
		if !slices.Contains(names, n) {
			t.Errorf("crashCases names %q, which is not a registered crash point", n)
		}
	}
}

// TestCrashPoints kills a child process at each crash point with SIGKILL
// and checks that the root is consistent, that a re-run cleans up the
// leftovers and completes, and that the next export activates.
func TestCrashPoints(t *testing.T) {
	for _, name := range crashpoint.Names() {
		tc, ok := crashCases[name]
		if !ok {
			continue // reported by TestEveryCrashPointHasACase
		}
		t.Run(name, func(t *testing.T) {
			r := openRoot(t)
			tc.setup(t, r)

			cmd := childCmd(tc.mode, r.Dir(), tc.arg, crashpoint.EnvVar+"="+name)
			out, err := cmd.CombinedOutput()
			if !killedBySIGKILL(err) {
				t.Fatalf("child was not killed at %s: %v\n%s", name, err, out)
			}

			checkConsistent(t, r)
			if got := mustExports(t, r); !slices.Equal(got, tc.wantExports) {
				t.Errorf("Exports = %v, want %v", got, tc.wantExports)
			}
			if got := mustLatest(t, r); got != tc.wantLatest {
				t.Errorf("Latest = %q, want %q", got, tc.wantLatest)
			}
			if got := mustHighWater(t, r); got.Sequence != tc.wantHWM {
				t.Errorf("HighWater = %+v, want sequence %d", got, tc.wantHWM)
			}
			if got, err := ResolveActive(r.Dir(), ""); err != nil || got != tc.wantLatest {
				t.Errorf("ResolveActive = %q, %v; want %q", got, err, tc.wantLatest)
			}

			// The re-run: the dead child's lock is taken over.
			l, err := r.Lock(context.Background(), 0, LockInfo{Command: "re-run"})
			if err != nil {
				t.Fatalf("Lock after crash: %v", err)
			}
			defer l.Unlock()
			removed, err := r.CleanStaging()
			if err != nil {
				t.Fatalf("CleanStaging: %v", err)
			}
			if len(removed) != tc.wantLeftovers {
				t.Errorf("CleanStaging removed %v, want %d paths", removed, tc.wantLeftovers)
			}
			assertNoLeftovers(t, r)

			tc.recover(t, r)
			checkConsistent(t, r)
			assertNoLeftovers(t, r)

			activate(t, r, idD, testSeq[idD])
			checkConsistent(t, r)
			if got := mustLatest(t, r); got != idD {
				t.Errorf("Latest after next Activate = %q, want %q", got, idD)
			}
			if got := mustHighWater(t, r); got.Sequence != testSeq[idD] || got.ExportID != idD {
				t.Errorf("HighWater after next Activate = %+v", got)
			}
		})
	}
}

// checkConsistent checks the invariants of an export root: latest is a
// link to a complete export, every export folder is complete, and the
// high-water mark covers the export latest points at.
func checkConsistent(t *testing.T, r *Root) {
	t.Helper()
	latest := mustLatest(t, r)
	if latest == "" {
		t.Fatal("no latest link")
	}
	ids := mustExports(t, r)
	if !slices.Contains(ids, latest) {
		t.Fatalf("latest -> %s, which is not an export folder (%v)", latest, ids)
	}
	for _, id := range ids {
		checkExport(t, r.Dir(), id)
	}
	if hwm := mustHighWater(t, r); hwm.Sequence < testSeq[latest] {
		t.Errorf("high-water mark %d below the sequence %d of latest %s", hwm.Sequence, testSeq[latest], latest)
	}
}

func assertNoLeftovers(t *testing.T, r *Root) {
	t.Helper()
	for _, sub := range []string{StagingDir, TrashDir} {
		if entries, _ := os.ReadDir(filepath.Join(r.StateDir(), sub)); len(entries) != 0 {
			t.Errorf("%s not empty: %v", sub, entries)
		}
	}
	entries, err := os.ReadDir(r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), latestTempPrefix) {
			t.Errorf("temporary link %s left behind", e.Name())
		}
	}
}
