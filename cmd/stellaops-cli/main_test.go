package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run())
	}
	testscript.Main(m, map[string]func(){
		"stellaops-cli": func() { os.Exit(run()) },
	})
}

// runMainEnv makes the test binary behave as stellaops-cli, for tests that
// re-execute it with crash and pause points.
const runMainEnv = "STELLAOPS_TEST_RUN_MAIN"

// TestScripts runs the end-to-end scripts in testdata/script. Each script
// gets $KEYS (the TEST-ONLY keys of testdata/keys) and these commands:
//
//	code N cmd args...     run cmd and require exit status N (stdout/stderr kept)
//	samplefeed DIR         write the embedded sample source tree into DIR
//	cpdir SRC DST          copy a folder recursively
//	fingerprint DIR FILE   write DIR's fingerprint to FILE
//	unchanged DIR FILE     require DIR's fingerprint to equal the one in FILE
//	flipbyte FILE [OFFSET] invert one byte (default: the middle one)
//	truncate FILE N        cut FILE to N bytes
//	replace FILE OLD NEW   replace every OLD with NEW in FILE
//	lockroot DIR           hold DIR's export-root lock (as another process would)
//	unlockroot DIR         release it
func TestScripts(t *testing.T) {
	keys, err := filepath.Abs(filepath.Join("..", "..", "testdata", "keys"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("..", "..", "testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("KEYS", keys)
			env.Setenv("NO_COLOR", "1")
			env.Setenv("STELLAOPS_KEY_PASSWORD", "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"code":        cmdCode,
			"samplefeed":  cmdSamplefeed,
			"cpdir":       cmdCpdir,
			"fingerprint": cmdFingerprint,
			"unchanged":   cmdUnchanged,
			"flipbyte":    cmdFlipbyte,
			"truncate":    cmdTruncate,
			"replace":     cmdReplace,
			"lockroot":    cmdLockroot,
			"unlockroot":  cmdUnlockroot,
		},
	})
}

func cmdCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: code N command args...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("code: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("code: %v", err)
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

func cmdSamplefeed(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: samplefeed DIR")
	}
	ts.Check(samplefeed.WriteTo(ts.MkAbs(args[0])))
}

func cmdCpdir(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: cpdir SRC DST")
	}
	ts.Check(os.CopyFS(ts.MkAbs(args[1]), os.DirFS(ts.MkAbs(args[0]))))
}

func cmdFingerprint(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: fingerprint DIR FILE")
	}
	fp, err := testutil.FingerprintDir(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(fp), 0o644))
}

func cmdUnchanged(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: unchanged DIR FILE")
	}
	fp, err := testutil.FingerprintDir(ts.MkAbs(args[0]))
	ts.Check(err)
	want, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	same := fp == string(want)
	if same == neg {
		if neg {
			ts.Fatalf("%s did not change", args[0])
		}
		ts.Fatalf("%s changed:\n%s", args[0], testutil.Diff(string(want), fp))
	}
}

func cmdFlipbyte(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: flipbyte FILE [OFFSET]")
	}
	p := ts.MkAbs(args[0])
	data, err := os.ReadFile(p)
	ts.Check(err)
	if len(data) == 0 {
		ts.Fatalf("flipbyte: %s is empty", args[0])
	}
	off := len(data) / 2
	if len(args) == 2 {
		off, err = strconv.Atoi(args[1])
		ts.Check(err)
		if off < 0 {
			off += len(data)
		}
	}
	data[off] ^= 0x01
	ts.Check(os.WriteFile(p, data, 0o644))
}

func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: truncate FILE N")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
}

func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	p := ts.MkAbs(args[0])
	data, err := os.ReadFile(p)
	ts.Check(err)
	if !strings.Contains(string(data), args[1]) {
		ts.Fatalf("replace: %q not in %s", args[1], args[0])
	}
	ts.Check(os.WriteFile(p, []byte(strings.ReplaceAll(string(data), args[1], args[2])), 0o644))
}

var heldLocks = map[string]*exportroot.Lock{}

func cmdLockroot(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: lockroot DIR")
	}
	root, err := exportroot.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	lock, err := root.Lock(context.Background(), 0, exportroot.LockInfo{Command: "testscript lockroot"})
	ts.Check(err)
	heldLocks[ts.MkAbs(args[0])] = lock
	ts.Defer(func() { lock.Unlock() })
}

func cmdUnlockroot(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: unlockroot DIR")
	}
	if l := heldLocks[ts.MkAbs(args[0])]; l != nil {
		ts.Check(l.Unlock())
		delete(heldLocks, ts.MkAbs(args[0]))
	}
}
