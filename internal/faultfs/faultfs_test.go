package faultfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const childEnv = "FAULTFS_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		var buf bytes.Buffer
		n, err := WrapWriter(&buf).Write(make([]byte, 10))
		fmt.Printf("%d %s\n", n, errString(err))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func errString(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.ENOSPC):
		return "enospc"
	case errors.Is(err, syscall.EIO):
		return "eio"
	}
	return "other"
}

func setFault(t *testing.T, spec string) {
	t.Helper()
	prev := active.Load()
	if err := Set(spec); err != nil {
		t.Fatalf("Set(%q): %v", spec, err)
	}
	t.Cleanup(func() { active.Store(prev) })
}

func TestWrapWriter(t *testing.T) {
	type write struct {
		size    int
		wantN   int
		wantErr syscall.Errno // 0: no error
	}
	tests := []struct {
		name   string
		spec   string
		writes []write
	}{
		{"unset passes everything", "", []write{{100, 100, 0}, {1 << 20, 1 << 20, 0}}},
		{"enospc short write", "enospc-after=10", []write{{6, 6, 0}, {6, 4, syscall.ENOSPC}, {1, 0, syscall.ENOSPC}}},
		{"enospc exact fit", "enospc-after=10", []write{{10, 10, 0}, {1, 0, syscall.ENOSPC}}},
		{"enospc at zero", "enospc-after=0", []write{{0, 0, 0}, {1, 0, syscall.ENOSPC}}},
		{"eio", "eio-after=3", []write{{5, 3, syscall.EIO}}},
		{"lowest limit first", "eio-after=8,enospc-after=4", []write{{5, 4, syscall.ENOSPC}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setFault(t, tt.spec)
			if got := Enabled(); got != (tt.spec != "") {
				t.Errorf("Enabled() = %v", got)
			}
			var buf bytes.Buffer
			w := WrapWriter(&buf)
			total := 0
			for i, wr := range tt.writes {
				n, err := w.Write(bytes.Repeat([]byte{'x'}, wr.size))
				total += n
				if n != wr.wantN {
					t.Errorf("write %d: n = %d, want %d", i, n, wr.wantN)
				}
				if wr.wantErr == 0 && err != nil {
					t.Errorf("write %d: unexpected error %v", i, err)
				}
				if wr.wantErr != 0 && !errors.Is(err, wr.wantErr) {
					t.Errorf("write %d: err = %v, want %v", i, err, wr.wantErr)
				}
				if wr.wantErr != 0 && err != nil && !strings.Contains(err.Error(), EnvVar) {
					t.Errorf("write %d: error %q does not say it was injected", i, err)
				}
			}
			if buf.Len() != total {
				t.Errorf("underlying writer got %d bytes, writes reported %d", buf.Len(), total)
			}
		})
	}
}

func TestCheckWrite(t *testing.T) {
	setFault(t, "enospc-after=1048576")
	for i := 0; i < 16; i++ {
		if err := CheckWrite(65536); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	if err := CheckWrite(1); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("CheckWrite past 1 MiB = %v, want ENOSPC", err)
	}

	setFault(t, "")
	if err := CheckWrite(1 << 30); err != nil {
		t.Fatalf("CheckWrite with no rules = %v", err)
	}
}

func TestWrapWriterUnsetReturnsSameWriter(t *testing.T) {
	setFault(t, "")
	var buf bytes.Buffer
	if w := WrapWriter(&buf); w != io.Writer(&buf) {
		t.Errorf("WrapWriter with no rules wrapped the writer")
	}
}

func TestParseErrors(t *testing.T) {
	for _, spec := range []string{"enospc", "enospc-after=", "enospc-after=-1", "enospc-after=x", "full-after=3", ","} {
		t.Run(spec, func(t *testing.T) {
			if err := Set(spec); !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("Set(%q) = %v, want ErrInvalidSpec", spec, err)
			}
		})
	}
}

// TestEnvironment checks the rules are read from STELLAOPS_FAULT at start,
// and that a bad value makes writes fail rather than being ignored.
func TestEnvironment(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"", "10 ok"},
		{"enospc-after=4", "4 enospc"},
		{"eio-after=2", "2 eio"},
		{"bogus", "0 other"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"=1", EnvVar+"="+tt.env)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("child wrote %q, want %q", got, tt.want)
			}
		})
	}
}
