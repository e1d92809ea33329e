package serve

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestBcryptWaitersBounded fills the password-check slot and its queue:
// one more check is refused at once instead of holding its request.
func TestBcryptWaitersBounded(t *testing.T) {
	b := newBasicAuth(0, 0, 1)
	hp := &htpasswd{users: map[string][]byte{}}
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	hp.users["u"] = h
	hp.dummy = h
	b.sem <- struct{}{} // the only slot is taken
	var wg sync.WaitGroup
	errs := make(chan error, b.maxWaiting)
	for range b.maxWaiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.verify(context.Background(), hp, "u", "pw", testNow)
		}()
	}
	for b.waiting.Load() < b.maxWaiting {
		runtime.Gosched()
	}
	if err := b.verify(context.Background(), hp, "u", "wrong", testNow); !errors.Is(err, ErrAuthBusy) {
		t.Fatalf("check beyond the queue: %v, want ErrAuthBusy", err)
	}
	<-b.sem
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("queued check: %v", err)
		}
	}
	if n := b.waiting.Load(); n != 0 {
		t.Fatalf("%d checks still counted as waiting", n)
	}
}
