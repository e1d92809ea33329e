// Command hostile loads mirror serve the way a hostile network would, on
// loopback only and bounded in time and count, while a well-behaved client
// measures its latency and the serve process's memory is sampled:
//
//	slowloris    10,000 connections that send their headers a byte at a time
//	flood        wrong Basic passwords at about 1,000 requests per second
//	flood-spread the same, from 250 addresses, with a download budget set
//	xff          clients outside --trusted-proxy forging X-Forwarded-For
//	budget       5,000 client addresses each spending its whole budget
//	soak         downloads checked against their SHA-256 while imports move
//	             latest every 2 seconds (and prune the old exports)
//	sigterm      SIGTERM while downloads are in flight, one of them stalled
//
// Client sockets are bound to addresses of 127.0.0.0/8, so budgets see
// them as distinct clients. Usage (from the module root):
//
//	go build -o /tmp/stellaops-cli ./cmd/stellaops-cli
//	go run ./bench/hostile -bin /tmp/stellaops-cli [-only slowloris,soak] [-scale 0.5]
//
// It signs its bundles with the TEST-ONLY keys of testdata/keys and prints
// one Markdown table; the exit status is 1 when a scenario misses its
// target (p99 under 50 ms, serve under 256 MiB, no mismatch, no 5xx, drain
// complete).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type config struct {
	bin   string
	keys  string
	scale float64
	tmp   string
}

// result is one row of the report.
type result struct {
	name    string
	load    string
	probe   probeStats
	maxRSS  int64
	checks  []string // "ok: ..." or "FAIL: ..."
	details string
}

func (r *result) check(ok bool, format string, args ...any) {
	prefix := "ok"
	if !ok {
		prefix = "FAIL"
	}
	r.checks = append(r.checks, prefix+": "+fmt.Sprintf(format, args...))
}

func (r *result) failed() bool {
	for _, c := range r.checks {
		if strings.HasPrefix(c, "FAIL") {
			return true
		}
	}
	return false
}

// Targets of the issue: a normal client's p99 and serve's memory.
const (
	targetP99 = 50 * time.Millisecond
	targetRSS = 256 << 20
)

func main() {
	var cfg config
	only := flag.String("only", "", "comma-separated scenarios (default: all)")
	flag.StringVar(&cfg.bin, "bin", "", "stellaops-cli binary to run (required)")
	flag.StringVar(&cfg.keys, "keys", "testdata/keys", "folder of the TEST-ONLY keys")
	flag.Float64Var(&cfg.scale, "scale", 1, "scale every duration and count by this factor")
	flag.Parse()
	if cfg.bin == "" {
		fmt.Fprintln(os.Stderr, "hostile: -bin is required (go build -o /tmp/stellaops-cli ./cmd/stellaops-cli)")
		os.Exit(4)
	}
	var err error
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		fatal(err)
	}
	if cfg.tmp, err = os.MkdirTemp("", "stellaops-hostile-"); err != nil {
		fatal(err)
	}
	defer os.RemoveAll(cfg.tmp)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	scenarios := []struct {
		name string
		run  func(context.Context, *config) (*result, error)
	}{
		{"slowloris", runSlowloris},
		{"flood", runFlood},
		{"flood-spread", runFloodSpread},
		{"xff", runXFF},
		{"budget", runBudget},
		{"soak", runSoak},
		{"sigterm", runSIGTERM},
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s != "" {
			want[s] = true
		}
	}
	var results []*result
	failed := false
	for _, s := range scenarios {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "hostile: %s ...\n", s.name)
		start := time.Now()
		r, err := s.run(ctx, &cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hostile: %s: %v\n", s.name, err)
			failed = true
			continue
		}
		fmt.Fprintf(os.Stderr, "hostile: %s done in %s\n", s.name, time.Since(start).Round(time.Second))
		results = append(results, r)
		failed = failed || r.failed()
	}
	report(os.Stdout, results)
	if failed {
		os.Exit(1)
	}
}

func (c *config) dur(d time.Duration) time.Duration { return time.Duration(float64(d) * c.scale) }
func (c *config) count(n int) int                   { return max(1, int(float64(n)*c.scale)) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "hostile:", err)
	os.Exit(1)
}
