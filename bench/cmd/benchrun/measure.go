package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Cmd is one timed command. Before and After run untimed around every run.
type Cmd struct {
	Label  string
	Args   []string
	Dir    string
	Env    []string
	Before func() error
	After  func() error
	// Out is a folder the command creates (or fills, with MkOut). Before
	// each run, what the last run left there is moved out of the way (see
	// Trash), and MkOut creates it empty.
	Out   string
	MkOut bool
	// NoSync skips the sync(2) that otherwise precedes every run, so that
	// one run's dirty pages are not charged to the next.
	NoSync bool
}

// Trash takes the outputs of timed runs. On ext4 without a journal (as
// here), deleting files makes the inode allocator skip each freed inode for
// the next 60 seconds (recently_deleted() in fs/ext4/ialloc.c), so a run
// that creates thousands of files right after the benchmark deleted
// thousands pays for the benchmark's own clean-up. Outputs are therefore
// renamed into the trash instead: with KeepAll they stay there until the
// end of the run; otherwise the trash is emptied after each comparison and
// the next run that creates files waits until those inodes are no longer
// recent.
type Trash struct {
	dir        string
	n          int
	keepAll    bool // delete nothing until the end of the run
	immediate  bool // no room to keep outputs: delete at once
	lastDelete time.Time
}

// recentDelete is how long ext4 avoids reusing a freed inode whose inode
// table block is clean (RECENTCY_MIN), plus a margin.
const recentDelete = 62 * time.Second

// Discard moves p out of the way (or deletes it in immediate mode).
func (t *Trash) Discard(p string) error {
	if _, err := os.Lstat(p); err != nil {
		return nil
	}
	if t == nil || t.immediate {
		err := os.RemoveAll(p)
		if t != nil {
			t.lastDelete = time.Now()
		}
		return err
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return err
	}
	t.n++
	return os.Rename(p, filepath.Join(t.dir, fmt.Sprint(t.n)))
}

// Remove deletes a data folder, or keeps it in the trash with KeepAll.
func (t *Trash) Remove(p string) {
	if t != nil && t.keepAll {
		_ = t.Discard(p)
		return
	}
	if _, err := os.Lstat(p); err == nil {
		_, files, _ := dirSize(p)
		os.RemoveAll(p)
		if t != nil && files >= manyFiles {
			t.lastDelete = time.Now()
		}
	}
}

// Empty deletes what was discarded (not with KeepAll). Only a delete of
// many files makes the next file-creating run wait.
func (t *Trash) Empty() {
	if t == nil || t.keepAll {
		return
	}
	if _, err := os.Lstat(t.dir); err != nil {
		return
	}
	_, files, _ := dirSize(t.dir)
	os.RemoveAll(t.dir)
	syscall.Sync()
	if files >= manyFiles {
		t.lastDelete = time.Now()
	}
}

// manyFiles is the size of a delete worth waiting for.
const manyFiles = 200

// coolDown waits until files deleted by Empty are no longer recent.
func (t *Trash) coolDown() {
	if t == nil || t.immediate || t.lastDelete.IsZero() {
		return
	}
	if d := recentDelete - time.Since(t.lastDelete); d > 0 {
		logf("waiting %s for freed inodes to age (ext4 skips recently freed ones)", d.Round(time.Second))
		time.Sleep(d)
	}
}

// trash is the one Trash of the run (nil: delete at once).
var trash *Trash

// Shell returns a Cmd running script with bash -c (set -euo pipefail).
func Shell(label, script string) Cmd {
	return Cmd{Label: label, Args: []string{"bash", "-c", "set -euo pipefail\n" + script}}
}

// Sample is one run: wall time, CPU time (user+system, the process and
// every descendant it waited for) and peak RSS (the largest process of the
// tree, from wait4).
type Sample struct {
	Wall time.Duration
	CPU  time.Duration
	RSS  int64 // bytes
}

// Run runs c once.
func Run(c Cmd) (Sample, error) {
	if c.Out != "" {
		if err := trash.Discard(c.Out); err != nil {
			return Sample{}, fmt.Errorf("%s: %w", c.Label, err)
		}
		if c.MkOut {
			if err := os.MkdirAll(c.Out, 0o755); err != nil {
				return Sample{}, err
			}
		}
		trash.coolDown()
	}
	if c.Before != nil {
		if err := c.Before(); err != nil {
			return Sample{}, fmt.Errorf("%s: before: %w", c.Label, err)
		}
	}
	if !c.NoSync {
		syscall.Sync()
	}
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	var stderr tailBuffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %s: %w\n%s", c.Label, strings.Join(c.Args, " "), err, stderr.String())
	}
	s := Sample{Wall: wall, CPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.RSS = ru.Maxrss * 1024
	}
	if c.After != nil {
		if err := c.After(); err != nil {
			return s, fmt.Errorf("%s: after: %w", c.Label, err)
		}
	}
	return s, nil
}

// tailBuffer keeps the last 8 KiB written to it.
type tailBuffer struct{ b bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if t.b.Len() > 16<<10 {
		keep := append([]byte(nil), t.b.Bytes()[t.b.Len()-8<<10:]...)
		t.b.Reset()
		t.b.Write(keep)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.b.String() }

// Series is the samples of one command.
type Series struct {
	Label   string
	Samples []Sample
}

func (s Series) walls() []time.Duration {
	out := make([]time.Duration, len(s.Samples))
	for i, x := range s.Samples {
		out[i] = x.Wall
	}
	return out
}

// Median wall time.
func (s Series) Median() time.Duration { return median(s.walls()) }

// MedianCPU is the median CPU time.
func (s Series) MedianCPU() time.Duration {
	out := make([]time.Duration, len(s.Samples))
	for i, x := range s.Samples {
		out[i] = x.CPU
	}
	return median(out)
}

// PeakRSS is the largest peak RSS of any run.
func (s Series) PeakRSS() int64 {
	var m int64
	for _, x := range s.Samples {
		m = max(m, x.RSS)
	}
	return m
}

// Spread is (max-min)/median of the wall times.
func (s Series) Spread() float64 {
	w := s.walls()
	if len(w) == 0 {
		return 0
	}
	return float64(slices.Max(w)-slices.Min(w)) / float64(median(w))
}

// String lists every wall time, for the appendix.
func (s Series) String() string {
	parts := make([]string, len(s.Samples))
	for i, x := range s.Samples {
		parts[i] = fmt.Sprintf("%.3f", x.Wall.Seconds())
	}
	return strings.Join(parts, " ")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Compare runs ours and theirs n times each, alternating in ABBA order so
// that neither always runs first, after one untimed warm-up run of each
// when warm is set.
func Compare(ours, theirs Cmd, n int, warm bool) (Series, Series, error) {
	so, st := Series{Label: ours.Label}, Series{Label: theirs.Label}
	if warm {
		if _, err := Run(ours); err != nil {
			return so, st, err
		}
		if _, err := Run(theirs); err != nil {
			return so, st, err
		}
	}
	for i := range n {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			c, s := ours, &so
			if k == 1 {
				c, s = theirs, &st
			}
			x, err := Run(c)
			if err != nil {
				return so, st, err
			}
			s.Samples = append(s.Samples, x)
		}
	}
	trash.Empty()
	return so, st, nil
}

// Repeat runs c n times.
func Repeat(c Cmd, n int) (Series, error) {
	s := Series{Label: c.Label}
	for range n {
		x, err := Run(c)
		if err != nil {
			return s, err
		}
		s.Samples = append(s.Samples, x)
	}
	return s, nil
}

// LineFit fits y = a + b·x by least squares and returns a, b and R².
func LineFit(x, y []float64) (a, b, r2 float64) {
	n := float64(len(x))
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0, 0, 0
	}
	b = (n*sxy - sx*sy) / den
	a = (sy - b*sx) / n
	mean := sy / n
	var ssTot, ssRes float64
	for i := range x {
		ssTot += (y[i] - mean) * (y[i] - mean)
		r := y[i] - (a + b*x[i])
		ssRes += r * r
	}
	if ssTot == 0 {
		return a, b, 1
	}
	return a, b, 1 - ssRes/ssTot
}
