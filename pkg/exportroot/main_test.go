package exportroot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment of the child processes that tests start by re-executing the
// test binary.
const (
	childModeEnv = "EXPORTROOT_TEST_CHILD"
	childRootEnv = "EXPORTROOT_TEST_ROOT"
	childArgEnv  = "EXPORTROOT_TEST_ARG"
)

// fixedNow is the clock of every Root in these tests.
var fixedNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		if err := runChild(mode, os.Getenv(childRootEnv), os.Getenv(childArgEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is the body of a child process.
//
//	lock-hold            take the lock as "mirror sync", print "locked", hold it until stdin closes
//	activate ID:SEQ      take the lock, stage a bundle for ID, Activate it
//	setlatest ID         take the lock, SetLatest(ID)
//	prune KEEP           take the lock, Prune(KEEP)
func runChild(mode, dir, arg string) error {
	r, err := Open(dir, WithClock(fixedClock))
	if err != nil {
		return err
	}
	command := "mirror import"
	if mode == "lock-hold" {
		command = "mirror sync"
	}
	l, err := r.Lock(context.Background(), 0, LockInfo{Command: command})
	if err != nil {
		return err
	}
	defer l.Unlock()
	switch mode {
	case "lock-hold":
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return nil
	case "activate":
		id, seqText, _ := strings.Cut(arg, ":")
		seq, err := strconv.ParseInt(seqText, 10, 64)
		if err != nil {
			return err
		}
		staging, err := r.NewStaging()
		if err != nil {
			return err
		}
		if err := writeBundle(staging, id); err != nil {
			return err
		}
		return r.Activate(staging, id, seq)
	case "setlatest":
		return r.SetLatest(arg)
	case "prune":
		keep, err := strconv.Atoi(arg)
		if err != nil {
			return err
		}
		_, err = r.Prune(keep)
		return err
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// childCmd returns a command re-executing the test binary in mode.
func childCmd(mode, root, arg string, extraEnv ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childModeEnv+"="+mode, childRootEnv+"="+root, childArgEnv+"="+arg)
	cmd.Env = append(cmd.Env, extraEnv...)
	return cmd
}

// killedBySIGKILL reports whether err is the exit of a process killed by
// SIGKILL.
func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// startLockHolder starts a child that holds the lock of root. It returns
// the child and a function that makes it release the lock and exit.
func startLockHolder(t *testing.T, root string) (*exec.Cmd, func()) {
	t.Helper()
	cmd := childCmd("lock-hold", root, "")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder said %q, %v", line, err)
	}
	return cmd, func() { _ = stdin.Close() }
}

// bundleFiles returns the files of the test bundle for id.
func bundleFiles(id string) map[string]string {
	return map[string]string{
		"mirror.json":                    `{"exportId":"` + id + `"}`,
		"mirror.dsse.json":               `{"payload":"` + id + `"}`,
		"mirror/index.json":              `{"exportId":"` + id + `","domains":["primary"]}`,
		"mirror/primary/bundle.json":     strings.Repeat(`{"id":"`+id+`"}`, 500),
		"mirror/primary/manifest.json":   `{"domainId":"primary"}`,
		"mirror/primary/vex/a/b/c.json":  `{"vex":true}`,
		"mirror/primary/bundle.json.jws": "header..sig",
	}
}

func writeBundle(dir, id string) error {
	for rel, content := range bundleFiles(id) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkExport fails t unless ROOT/<id> holds exactly the test bundle for id.
func checkExport(t *testing.T, root, id string) {
	t.Helper()
	want := bundleFiles(id)
	got := map[string]string{}
	dir := filepath.Join(root, id)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatalf("export %s: %v", id, err)
	}
	if len(got) != len(want) {
		t.Errorf("export %s has %d files, want %d: %v", id, len(got), len(want), sortedKeys(got))
	}
	for rel, content := range want {
		if got[rel] != content {
			t.Errorf("export %s: %s is incomplete or wrong", id, rel)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// openRoot opens a fresh root in a temp folder.
func openRoot(t *testing.T) *Root {
	t.Helper()
	r, err := Open(filepath.Join(t.TempDir(), "root"), WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// lock takes r's lock or fails t; it is released at cleanup.
func lock(t *testing.T, r *Root) *Lock {
	t.Helper()
	l, err := r.Lock(context.Background(), 0, LockInfo{Command: "test"})
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	t.Cleanup(func() { _ = l.Unlock() })
	return l
}

// activate stages and activates the test bundle for id in-process.
func activate(t *testing.T, r *Root, id string, seq int64) {
	t.Helper()
	staging, err := r.NewStaging()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeBundle(staging, id); err != nil {
		t.Fatal(err)
	}
	if err := r.Activate(staging, id, seq); err != nil {
		t.Fatalf("Activate(%s, %d): %v", id, seq, err)
	}
}

func mustLatest(t *testing.T, r *Root) string {
	t.Helper()
	id, err := r.Latest()
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	return id
}

func mustExports(t *testing.T, r *Root) []string {
	t.Helper()
	ids, err := r.Exports()
	if err != nil {
		t.Fatalf("Exports: %v", err)
	}
	return ids
}

func mustHighWater(t *testing.T, r *Root) HighWaterMark {
	t.Helper()
	h, err := r.HighWater()
	if err != nil {
		t.Fatalf("HighWater: %v", err)
	}
	return h
}
