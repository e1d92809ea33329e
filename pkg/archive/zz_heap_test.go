package archive

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

func TestZZHeap(t *testing.T) {
	path := os.Getenv("ZZ_ARCHIVE")
	if path == "" {
		t.Skip()
	}
	debug.SetMemoryLimit(48 << 20)
	roots, err := trust.LoadFile("../../testdata/keys/es256.pub")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src, err := Open(ctx, path, nil, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var max uint64
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > max+(256<<10) {
				max = v
				f, _ := os.Create("/tmp/zzheap.pprof")
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
				t.Logf("live %d MiB at %s", v>>20, time.Now().Format("15:04:05.000"))
			}
		}
	}()
	now, _ := time.Parse(time.RFC3339, "2026-12-02T00:00:00Z")
	rep, err := Verify(ctx, src, bundle.VerifyOptions{Roots: roots, Now: now, VerifyDSSE: true, VerifyChecksums: true})
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Verified)
}
