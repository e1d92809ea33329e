package crashpoint

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

var (
	testPointA = Register("test-point-a")
	testPointB = Register("test-point-b")
)

const childEnv = "CRASHPOINT_TEST_CHILD"

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		Hit(name)
		os.Stdout.WriteString("survived\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestNames(t *testing.T) {
	names := Names()
	for _, want := range []string{testPointA, testPointB} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() = %v, missing %q", names, want)
		}
		if !Registered(want) {
			t.Errorf("Registered(%q) = false", want)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("Names() = %v, not sorted", names)
	}
	if Registered("never-registered") {
		t.Error(`Registered("never-registered") = true`)
	}
}

func TestRegisterRefusesDuplicatesAndEmpty(t *testing.T) {
	for _, name := range []string{testPointA, ""} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			Register(name)
		})
	}
}

func TestHit(t *testing.T) {
	tests := []struct {
		name       string
		envPoint   string
		hitPoint   string
		wantKilled bool
	}{
		{"matching point kills", testPointA, testPointA, true},
		{"other point survives", testPointB, testPointA, false},
		{"unset survives", "", testPointA, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+tt.hitPoint, EnvVar+"="+tt.envPoint)
			out, err := cmd.Output()
			var ee *exec.ExitError
			killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() &&
				ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
			if killed != tt.wantKilled {
				t.Fatalf("child killed = %v, want %v (err %v, output %q)", killed, tt.wantKilled, err, out)
			}
			if !tt.wantKilled && (err != nil || string(out) != "survived\n") {
				t.Fatalf("child: err %v, output %q", err, out)
			}
		})
	}
}

func TestHitWithoutEnvIsNoop(t *testing.T) {
	if os.Getenv(EnvVar) != "" {
		t.Skipf("%s is set in the test environment", EnvVar)
	}
	Hit(testPointA)
	Hit("not-registered")
}
