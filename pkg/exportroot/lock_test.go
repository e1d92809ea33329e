package exportroot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// holdRaw takes the lock file of r through a separate open file, as
// another process would, and writes content into it.
func holdRaw(t *testing.T, r *Root, content string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(r.statePath(LockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(content), 0); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = f.Close()
		}
	}
	t.Cleanup(release)
	return release
}

func TestLockBusyMessage(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{
			name:    "holder recorded",
			content: `{"pid":4242,"host":"gw1","command":"mirror import","startedAt":"2025-01-01T00:00:00Z"}`,
			want:    []string{"pid 4242", "(mirror import)", "on gw1", "since 2025-01-01T00:00:00Z"},
		},
		{
			name:    "holder not written yet",
			content: "",
			want:    []string{"held by another process"},
		},
		{
			name:    "garbage in lock file",
			content: "not json",
			want:    []string{"held by another process"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			holdRaw(t, r, tt.content)
			l, err := r.Lock(context.Background(), 0, LockInfo{Command: "mirror sync"})
			if err == nil {
				l.Unlock()
				t.Fatal("Lock succeeded while held")
			}
			if !errors.Is(err, failure.ErrBusy) || failure.Code(err) != failure.ExitBusy {
				t.Errorf("err = %v, want failure.ErrBusy (exit 5)", err)
			}
			var be *BusyError
			if !errors.As(err, &be) {
				t.Fatalf("err is %T, want *BusyError", err)
			}
			msg := err.Error()
			for _, w := range append(tt.want, r.statePath(LockFile)) {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestLockRecordsHolderAndUnlocks(t *testing.T) {
	r := openRoot(t)
	l, err := r.Lock(context.Background(), 0, LockInfo{Command: "mirror import"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(r.statePath(LockFile))
	if err != nil {
		t.Fatal(err)
	}
	var info LockInfo
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("lock file %q: %v", data, err)
	}
	host, _ := os.Hostname()
	want := LockInfo{PID: os.Getpid(), Host: host, Command: "mirror import", StartedAt: fixedNow}
	if info != want || l.Info() != want {
		t.Errorf("lock file = %+v, Info() = %+v, want %+v", info, l.Info(), want)
	}
	for _, key := range []string{`"pid"`, `"host"`, `"command"`, `"startedAt"`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("lock file %s lacks %s", data, key)
		}
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Errorf("second Unlock: %v", err)
	}
	l2, err := r.Lock(context.Background(), 0, LockInfo{})
	if err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	l2.Unlock()
}

func TestLockRefusesSecondLockInSameProcess(t *testing.T) {
	r := openRoot(t)
	lock(t, r)
	// A second Root on the same folder, as another goroutine would open.
	r2, err := Open(r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range []*Root{r, r2} {
		_, err := rr.Lock(context.Background(), 0, LockInfo{Command: "second"})
		if !errors.Is(err, failure.ErrBusy) {
			t.Fatalf("second Lock = %v, want ErrBusy", err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("pid %d (test)", os.Getpid())) {
			t.Errorf("message %q does not name this process", err)
		}
	}
}

func TestLockWait(t *testing.T) {
	tests := []struct {
		name string
		// onRetry runs at the first failed retry; it may release the
		// holder or cancel the context.
		onRetry func(release func(), cancel context.CancelFunc)
		wait    time.Duration
		wantErr error
	}{
		{"acquired after release", func(release func(), _ context.CancelFunc) { release() }, time.Hour, nil},
		{"context cancelled", func(_ func(), cancel context.CancelFunc) { cancel() }, time.Hour, context.Canceled},
		{"wait elapses", func(func(), context.CancelFunc) {}, 30 * time.Millisecond, failure.ErrBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openRoot(t)
			r.pollInterval = 5 * time.Millisecond
			release := holdRaw(t, r, `{"pid":4242,"command":"mirror sync"}`)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			retries := 0
			r.lockRetryHook = func() {
				retries++
				if retries == 1 {
					tt.onRetry(release, cancel)
				}
			}
			l, err := r.Lock(ctx, tt.wait, LockInfo{Command: "waiter"})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Lock: %v", err)
				}
				l.Unlock()
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Lock = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), r.statePath(LockFile)) {
				t.Errorf("error %q does not name the lock file", err)
			}
			if errors.Is(err, failure.ErrBusy) && !strings.Contains(err.Error(), "pid 4242 (mirror sync)") {
				t.Errorf("error %q does not name the holder", err)
			}
			if errors.Is(err, failure.ErrBusy) && !strings.Contains(err.Error(), "waiting 30ms") {
				t.Errorf("error %q does not say how long it waited", err)
			}
		})
	}
}

// TestLockHeldByOtherProcess checks the lock against a real second process:
// busy while it holds the lock, taken over when it is killed with SIGKILL
// (no chance to unlock), and handed over when it releases while we wait.
func TestLockHeldByOtherProcess(t *testing.T) {
	t.Run("dead holder is taken over", func(t *testing.T) {
		r := openRoot(t)
		child, _ := startLockHolder(t, r.Dir())
		_, err := r.Lock(context.Background(), 0, LockInfo{Command: "mirror import"})
		if !errors.Is(err, failure.ErrBusy) {
			t.Fatalf("Lock while child holds it = %v, want ErrBusy", err)
		}
		want := fmt.Sprintf("pid %d (mirror sync)", child.Process.Pid)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not contain %q", err, want)
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := child.Wait(); !killedBySIGKILL(err) {
			t.Fatalf("child exit = %v, want killed", err)
		}
		l, err := r.Lock(context.Background(), 0, LockInfo{Command: "mirror import"})
		if err != nil {
			t.Fatalf("Lock after holder died: %v", err)
		}
		defer l.Unlock()
		data, _ := os.ReadFile(r.statePath(LockFile))
		if !strings.Contains(string(data), fmt.Sprintf(`"pid":%d`, os.Getpid())) {
			t.Errorf("lock file after takeover = %s, want this pid", data)
		}
	})
	t.Run("waiter gets the lock on release", func(t *testing.T) {
		r := openRoot(t)
		r.pollInterval = 5 * time.Millisecond
		child, release := startLockHolder(t, r.Dir())
		retried := false
		r.lockRetryHook = func() {
			if !retried {
				retried = true
				release()
			}
		}
		l, err := r.Lock(context.Background(), time.Hour, LockInfo{Command: "mirror import"})
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
		defer l.Unlock()
		if !retried {
			t.Error("Lock did not wait")
		}
		if err := child.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	})
}
