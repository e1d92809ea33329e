package exportroot

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/faultfs"
	"github.com/stellaops/stellaops-cli/internal/testutil"
)

const (
	idA = "20250101T000000Z"
	idB = "20250102T000000Z"
	idC = "20250103T000000Z"
	idD = "20250104T000000Z"
	idE = "20250105T000000Z"
)

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, StateDirName)} {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v, want a 0755 folder", p, fi.Mode(), err)
		}
	}
	if r.StateDir() != filepath.Join(r.Dir(), StateDirName) || !filepath.IsAbs(r.Dir()) {
		t.Errorf("Dir() = %s, StateDir() = %s", r.Dir(), r.StateDir())
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("Open(file) = %v, want an error naming it", err)
	}
}

func TestNewStaging(t *testing.T) {
	r := openRoot(t)
	a, err := r.NewStaging()
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.NewStaging()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("NewStaging returned %s twice", a)
	}
	var rootStat syscall.Stat_t
	if err := syscall.Stat(r.Dir(), &rootStat); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{a, b} {
		if filepath.Dir(d) != filepath.Join(r.StateDir(), StagingDir) {
			t.Errorf("staging %s not in %s", d, filepath.Join(r.StateDir(), StagingDir))
		}
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("staging %s: %v, %v; want a 0755 folder", d, fi.Mode(), err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil || st.Dev != rootStat.Dev {
			t.Errorf("staging %s is not on the root's file system", d)
		}
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Errorf("staging %s not empty", d)
		}
	}
}

func TestActivate(t *testing.T) {
	r := openRoot(t)
	lock(t, r)
	if id := mustLatest(t, r); id != "" {
		t.Fatalf("Latest of empty root = %q", id)
	}
	if h := mustHighWater(t, r); h != (HighWaterMark{}) {
		t.Fatalf("HighWater of empty root = %+v", h)
	}

	activate(t, r, idA, 1)
	activate(t, r, idB, 2)

	checkExport(t, r.Dir(), idA)
	checkExport(t, r.Dir(), idB)
	if got := mustLatest(t, r); got != idB {
		t.Errorf("Latest = %q, want %q", got, idB)
	}
	target, err := os.Readlink(filepath.Join(r.Dir(), LatestName))
	if err != nil || target != idB {
		t.Errorf("latest -> %q (%v), want the relative name %q", target, err, idB)
	}
	if got := mustExports(t, r); !slices.Equal(got, []string{idA, idB}) {
		t.Errorf("Exports = %v", got)
	}
	want := HighWaterMark{Sequence: 2, ExportID: idB, UpdatedAt: fixedNow}
	if got := mustHighWater(t, r); got != want {
		t.Errorf("HighWater = %+v, want %+v", got, want)
	}
	data, err := os.ReadFile(filepath.Join(r.StateDir(), SequenceFile))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sequence", "exportId", "updatedAt"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("sequence.json %s lacks %q", data, k)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(r.StateDir(), StagingDir)); len(entries) != 0 {
		t.Errorf("staging leftovers after Activate: %v", entries)
	}
	if got, err := ResolveActive(r.Dir(), ""); err != nil || got != idB {
		t.Errorf("ResolveActive = %q, %v", got, err)
	}
}

func TestActivateKeepsHighWaterMonotonic(t *testing.T) {
	r := openRoot(t)
	lock(t, r)
	activate(t, r, idB, 5)
	// An allowed downgrade: older export, lower sequence.
	activate(t, r, idA, 3)
	if got := mustLatest(t, r); got != idA {
		t.Errorf("Latest = %s, want %s", got, idA)
	}
	if got := mustHighWater(t, r); got.Sequence != 5 || got.ExportID != idB {
		t.Errorf("HighWater = %+v, want sequence 5 of %s", got, idB)
	}
	if err := r.RecordHighWater(idC, 7); err != nil {
		t.Fatal(err)
	}
	if got := mustHighWater(t, r); got.Sequence != 7 || got.ExportID != idC {
		t.Errorf("HighWater = %+v, want sequence 7 of %s", got, idC)
	}
}

func TestActivateRefusals(t *testing.T) {
	tests := []struct {
		name    string
		staging func(t *testing.T, r *Root) string
		id      string
		wantErr error
		wantMsg string
	}{
		{
			name:    "export exists",
			staging: stagedBundle(idA),
			id:      idA,
			wantErr: ErrExportExists,
			wantMsg: idA,
		},
		{
			name:    "invalid export id",
			staging: stagedBundle(idB),
			id:      "../" + idB,
			wantErr: ErrInvalidExportID,
		},
		{
			name:    "latest as export id",
			staging: stagedBundle(idB),
			id:      LatestName,
			wantErr: ErrInvalidExportID,
		},
		{
			name: "folder outside staging",
			staging: func(t *testing.T, r *Root) string {
				d := t.TempDir()
				if err := writeBundle(d, idB); err != nil {
					t.Fatal(err)
				}
				return d
			},
			id:      idB,
			wantMsg: "not a staging folder",
		},
		{
			name:    "an export folder as staging",
			staging: func(t *testing.T, r *Root) string { return r.ExportDir(idA) },
			id:      idB,
			wantMsg: "not a staging folder",
		},
		{
			name:    "the staging parent itself",
			staging: func(t *testing.T, r *Root) string { return filepath.Join(r.StateDir(), StagingDir) },
			id:      idB,
			wantMsg: "not a staging folder",
		},
		{
			name:    "missing staging folder",
			staging: func(t *testing.T, r *Root) string { return filepath.Join(r.StateDir(), StagingDir, "gone") },
			id:      idB,
			wantErr: fs.ErrNotExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			lock(t, r)
			activate(t, r, idA, 1)
			staging := tt.staging(t, r)
			before := testutil.Fingerprint(t, r.Dir())
			err := r.Activate(staging, tt.id, 2)
			if err == nil {
				t.Fatal("Activate succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantMsg)
			}
			testutil.AssertUnchanged(t, r.Dir(), before)
			if got := mustLatest(t, r); got != idA {
				t.Errorf("Latest = %s after refusal", got)
			}
		})
	}
}

func stagedBundle(id string) func(t *testing.T, r *Root) string {
	return func(t *testing.T, r *Root) string {
		d, err := r.NewStaging()
		if err != nil {
			t.Fatal(err)
		}
		if err := writeBundle(d, id); err != nil {
			t.Fatal(err)
		}
		return d
	}
}

func TestSetLatest(t *testing.T) {
	r := openRoot(t)
	lock(t, r)
	activate(t, r, idA, 1)
	activate(t, r, idB, 2)
	if err := r.SetLatest(idA); err != nil {
		t.Fatal(err)
	}
	if got := mustLatest(t, r); got != idA {
		t.Errorf("Latest = %s, want %s", got, idA)
	}

	tests := []struct {
		name    string
		id      string
		wantErr error
	}{
		{"missing export", idC, fs.ErrNotExist},
		{"invalid id", "../x", ErrInvalidExportID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.Fingerprint(t, r.Dir())
			err := r.SetLatest(tt.id)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("SetLatest(%q) = %v, want %v", tt.id, err, tt.wantErr)
			}
			testutil.AssertUnchanged(t, r.Dir(), before)
		})
	}

	t.Run("latest is a folder", func(t *testing.T) {
		r := openRoot(t)
		activate(t, r, idA, 1)
		latest := filepath.Join(r.Dir(), LatestName)
		if err := os.Remove(latest); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(latest, 0o755); err != nil {
			t.Fatal(err)
		}
		err := r.SetLatest(idA)
		if err == nil || !strings.Contains(err.Error(), latest) {
			t.Errorf("SetLatest over a folder = %v, want an error naming %s", err, latest)
		}
		if _, err := r.Latest(); err == nil {
			t.Error("Latest with a folder at latest succeeded")
		}
	})
}

// TestSetLatestIsAtomic swaps latest back and forth while a reader keeps
// reading it: the reader must always find a link to one of the exports.
func TestSetLatestIsAtomic(t *testing.T) {
	r := openRoot(t)
	lock(t, r)
	activate(t, r, idA, 1)
	activate(t, r, idB, 2)

	stop := make(chan struct{})
	result := make(chan []string)
	go func() {
		var bad []string
		reads := 0
		for {
			select {
			case <-stop:
				if reads == 0 {
					bad = append(bad, "reader never ran")
				}
				result <- bad
				return
			default:
			}
			id, err := ResolveActive(r.Dir(), "")
			target, lerr := os.Readlink(filepath.Join(r.Dir(), LatestName))
			reads++
			if err != nil || lerr != nil || (id != idA && id != idB) || (target != idA && target != idB) {
				bad = append(bad, id+" "+target)
			}
		}
	}()
	for i := 0; i < 200; i++ {
		id := idA
		if i%2 == 1 {
			id = idB
		}
		if err := r.SetLatest(id); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if bad := <-result; len(bad) > 0 {
		t.Errorf("reader saw %d bad states, first %q", len(bad), bad[0])
	}
	entries, _ := os.ReadDir(r.Dir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), latestTempPrefix) {
			t.Errorf("temporary link %s left behind", e.Name())
		}
	}
}

func TestLatestErrors(t *testing.T) {
	tests := []struct {
		name   string
		target string
	}{
		{"absolute target", "/etc"},
		{"parent target", "../" + idA},
		{"not an export id", "current"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			latest := filepath.Join(r.Dir(), LatestName)
			if err := os.Symlink(tt.target, latest); err != nil {
				t.Fatal(err)
			}
			_, err := r.Latest()
			if !errors.Is(err, ErrInvalidExportID) || !strings.Contains(err.Error(), latest) {
				t.Errorf("Latest = %v, want ErrInvalidExportID naming %s", err, latest)
			}
		})
	}
}

func TestHighWaterCorrupt(t *testing.T) {
	r := openRoot(t)
	p := filepath.Join(r.StateDir(), SequenceFile)
	if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.HighWater(); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("HighWater = %v, want an error naming %s", err, p)
	}
	if err := r.RecordHighWater(idA, 1); err == nil {
		t.Error("RecordHighWater over a corrupt file succeeded")
	}
}

func TestExportsIgnoresJunk(t *testing.T) {
	r := openRoot(t)
	for _, d := range []string{idC, idA, "tmp", "2025", idB + "x"} {
		if err := os.Mkdir(filepath.Join(r.Dir(), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir(), idD), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(idA, filepath.Join(r.Dir(), idE)); err != nil {
		t.Fatal(err)
	}
	if got := mustExports(t, r); !slices.Equal(got, []string{idA, idC}) {
		t.Errorf("Exports = %v, want [%s %s]", got, idA, idC)
	}
}

func TestPrune(t *testing.T) {
	all := []string{idA, idB, idC, idD, idE}
	tests := []struct {
		name        string
		latest      string // "" for no latest link
		keep        int
		wantRemoved []string
	}{
		{"keep newest two", idE, 2, []string{idA, idB, idC}},
		{"never the latest even when oldest", idA, 2, []string{idB, idC}},
		{"latest in the middle", idC, 1, []string{idA, idB, idD}},
		{"keep one equal to latest", idE, 1, []string{idA, idB, idC, idD}},
		{"keep all", idE, 5, nil},
		{"keep more than there are", idE, 10, nil},
		{"keep zero removes nothing", idE, 0, nil},
		{"negative keep removes nothing", idE, -1, nil},
		{"no latest link", "", 3, []string{idA, idB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			lock(t, r)
			for i, id := range all {
				activate(t, r, id, int64(i+1))
			}
			if tt.latest == "" {
				if err := os.Remove(filepath.Join(r.Dir(), LatestName)); err != nil {
					t.Fatal(err)
				}
			} else if err := r.SetLatest(tt.latest); err != nil {
				t.Fatal(err)
			}
			junk := filepath.Join(r.Dir(), "notes")
			if err := os.Mkdir(junk, 0o755); err != nil {
				t.Fatal(err)
			}

			removed, err := r.Prune(tt.keep)
			if err != nil {
				t.Fatalf("Prune: %v", err)
			}
			if !slices.Equal(removed, tt.wantRemoved) {
				t.Errorf("removed %v, want %v", removed, tt.wantRemoved)
			}
			var wantLeft []string
			for _, id := range all {
				if !slices.Contains(tt.wantRemoved, id) {
					wantLeft = append(wantLeft, id)
				}
			}
			if got := mustExports(t, r); !slices.Equal(got, wantLeft) {
				t.Errorf("Exports after prune = %v, want %v", got, wantLeft)
			}
			for _, id := range wantLeft {
				checkExport(t, r.Dir(), id)
			}
			if got := mustLatest(t, r); got != tt.latest {
				t.Errorf("Latest = %q, want %q", got, tt.latest)
			}
			if _, err := os.Stat(junk); err != nil {
				t.Errorf("Prune touched %s: %v", junk, err)
			}
			if entries, _ := os.ReadDir(filepath.Join(r.StateDir(), TrashDir)); len(entries) != 0 {
				t.Errorf("trash not emptied: %v", entries)
			}
		})
	}
}

func TestCleanStaging(t *testing.T) {
	r := openRoot(t)
	lock(t, r)
	activate(t, r, idA, 1)
	before := testutil.Fingerprint(t, r.Dir())

	var want []string
	for i := 0; i < 2; i++ {
		d := stagedBundle(idB)(t, r)
		want = append(want, d)
	}
	trashed := filepath.Join(r.StateDir(), TrashDir, idB+"-0123")
	if err := os.MkdirAll(filepath.Join(trashed, "mirror"), 0o755); err != nil {
		t.Fatal(err)
	}
	want = append(want, trashed)
	tmpLink := filepath.Join(r.Dir(), latestTempPrefix+"0123")
	if err := os.Symlink(idA, tmpLink); err != nil {
		t.Fatal(err)
	}
	want = append(want, tmpLink)
	// Not ours: a file that merely looks like a temp link.
	lookalike := filepath.Join(r.Dir(), latestTempPrefix+"file")
	if err := os.WriteFile(lookalike, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	removed, err := r.CleanStaging()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if err := os.Remove(lookalike); err != nil {
		t.Errorf("lookalike file: %v", err)
	}
	testutil.AssertUnchanged(t, r.Dir(), before)

	removed, err = r.CleanStaging()
	if err != nil || len(removed) != 0 {
		t.Errorf("second CleanStaging = %v, %v", removed, err)
	}
}

// TestActivateRollsBackOnError makes Activate fail after the rename and
// checks that the root is left as it was and that a retry succeeds.
func TestActivateRollsBackOnError(t *testing.T) {
	tests := []struct {
		name string
		// breakRoot makes a step after the rename fail; it returns a
		// function that repairs the cause.
		breakRoot func(t *testing.T, r *Root) (repair func())
		wantErr   error
	}{
		{
			name: "disk full writing the high-water mark",
			breakRoot: func(t *testing.T, r *Root) func() {
				if err := faultfs.Set("enospc-after=0"); err != nil {
					t.Fatal(err)
				}
				return func() { _ = faultfs.Set("") }
			},
			wantErr: syscall.ENOSPC,
		},
		{
			name: "latest cannot be replaced",
			breakRoot: func(t *testing.T, r *Root) func() {
				latest := filepath.Join(r.Dir(), LatestName)
				if err := os.Remove(latest); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(latest, 0o755); err != nil {
					t.Fatal(err)
				}
				return func() {
					if err := os.Remove(latest); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(idA, latest); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			lock(t, r)
			activate(t, r, idA, 1)
			staging := stagedBundle(idB)(t, r)
			repair := tt.breakRoot(t, r)
			t.Cleanup(func() { _ = faultfs.Set("") })
			before := testutil.Fingerprint(t, r.Dir())

			err := r.Activate(staging, idB, 2)
			if err == nil {
				t.Fatal("Activate succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			testutil.AssertUnchanged(t, r.Dir(), before)
			if h := mustHighWater(t, r); h.Sequence != 1 || h.ExportID != idA {
				t.Errorf("HighWater = %+v after a failed Activate", h)
			}

			repair()
			if err := r.Activate(staging, idB, 2); err != nil {
				t.Fatalf("retry: %v", err)
			}
			checkConsistent(t, r)
			if got := mustLatest(t, r); got != idB {
				t.Errorf("Latest = %s, want %s", got, idB)
			}
		})
	}
}
