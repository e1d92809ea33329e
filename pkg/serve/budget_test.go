package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func intp(n int) *int { return &n }

func retryAfter(t testing.TB, w interface {
	Header() http.Header
}) int {
	t.Helper()
	v := w.Header().Get("Retry-After")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("Retry-After %q is not a positive integer", v)
	}
	return n
}

func TestIndexBudgetWithRetryAfter(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Options) { c.Mirror.MaxIndexRequestsPerHour = 3 })
	target := "/concelier/exports/index.json"
	for i := 0; i < 3; i++ {
		if w := e.do("GET", target, nil); w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	w := e.do("GET", target, nil)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("4th request: %d", w.Code)
	}
	if n := retryAfter(t, w); n != 1200 {
		t.Fatalf("Retry-After %d, want 1200 (one token per 3600/3 s)", n)
	}
	if w.Header().Get("Cache-Control") != CacheNoStore {
		t.Errorf("429 Cache-Control %q", w.Header().Get("Cache-Control"))
	}
	var body struct {
		Error             string `json:"error"`
		RetryAfterSeconds int    `json:"retryAfterSeconds"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" || body.RetryAfterSeconds != 1200 {
		t.Fatalf("429 body %s", w.Body)
	}
	// The excititor index counts against the index budget too.
	if w := e.do("GET", "/excititor/mirror/primary/index", nil); w.Code != 200 {
		t.Fatalf("excititor index is another scope (domain): %d", w.Code)
	}
	// Downloads have their own (unlimited) budget.
	for i := 0; i < 10; i++ {
		if w := e.do("GET", "/concelier/exports/mirror/primary/bundle.json", nil); w.Code != 200 {
			t.Fatalf("download %d: %d", i, w.Code)
		}
	}
	// Another client has its own budget.
	if w := e.do("GET", target, map[string]string{"RemoteAddr": "198.51.100.1:1"}); w.Code != 200 {
		t.Fatalf("other client: %d", w.Code)
	}
	// Time passes: one token back after Retry-After, not before.
	e.clock.Advance(1199 * time.Second)
	if w := e.do("GET", target, nil); w.Code != 429 || retryAfter(t, w) != 1 {
		t.Fatalf("1 s early: %d Retry-After %s", w.Code, w.Header().Get("Retry-After"))
	}
	e.clock.Advance(time.Second)
	if w := e.do("GET", target, nil); w.Code != 200 {
		t.Fatalf("after Retry-After: %d", w.Code)
	}
	if w := e.do("GET", target, nil); w.Code != 429 {
		t.Fatalf("only one token came back: %d", w.Code)
	}
}

func TestDomainBudgetsInheritAndOverride(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Options) {
		c.Mirror.MaxIndexRequestsPerHour = 2
		c.Mirror.MaxDownloadRequestsPerHour = 0 // unlimited
		c.Mirror.Domains = []DomainConfig{
			{ID: "secure", MaxIndexRequestsPerHour: intp(4), MaxDownloadRequestsPerHour: intp(1)},
		}
	})
	count := func(target string, n int) int {
		ok := 0
		for i := 0; i < n; i++ {
			if w := e.do("GET", target, nil); w.Code == 200 {
				ok++
			} else if w.Code != 429 {
				t.Fatalf("%s: %d", target, w.Code)
			}
		}
		return ok
	}
	// primary has no budget of its own: it inherits the global index budget.
	if n := count("/excititor/mirror/primary/index", 10); n != 2 {
		t.Errorf("primary excititor index: %d allowed, want 2 (inherited)", n)
	}
	if n := count("/excititor/mirror/secure/index", 10); n != 4 {
		t.Errorf("secure excititor index: %d allowed, want 4", n)
	}
	if n := count("/concelier/exports/mirror/secure/bundle.json", 10); n != 1 {
		t.Errorf("secure downloads: %d allowed, want 1", n)
	}
	// Same domain via the export-id route shares the domain budget.
	if n := count("/concelier/exports/"+exportA+"/mirror/secure/bundle.json", 3); n != 0 {
		t.Errorf("secure downloads via export id: %d allowed, want 0", n)
	}
	// 0 means unlimited.
	if n := count("/concelier/exports/mirror/primary/bundle.json", 200); n != 200 {
		t.Errorf("primary downloads: %d allowed, want all 200", n)
	}
	if n := count("/concelier/exports/index.json", 10); n != 2 {
		t.Errorf("global index.json: %d allowed, want 2", n)
	}
}

func TestBudgetPerAuthenticatedName(t *testing.T) {
	e, _, _ := authEnv(t, func(c *Config) { c.Mirror.MaxIndexRequestsPerHour = 3 })
	target := "/concelier/exports/index.json"
	good := basic("alice", "wonderland")
	// alice from three addresses shares one budget (plus the first
	// verification charged to the first address).
	codes := ""
	for i := 0; i < 5; i++ {
		w := e.do("GET", target, map[string]string{"Authorization": good, "RemoteAddr": fmt.Sprintf("203.0.113.%d:1", i)})
		codes += strconv.Itoa(w.Code) + " "
	}
	if codes != "200 200 200 429 429 " {
		t.Fatalf("codes %s", codes)
	}
	// Another user is unaffected.
	if w := e.do("GET", target, map[string]string{"Authorization": basic("ops", "s3cret")}); w.Code != 200 {
		t.Fatalf("ops: %d", w.Code)
	}
}

func TestFailedAuthCountsAndRefusalSkipsBcrypt(t *testing.T) {
	e, _, _ := authEnv(t, func(c *Config) { c.Mirror.MaxIndexRequestsPerHour = 3 })
	var compares atomic.Int64
	e.h.basic.compares = func() { compares.Add(1) }
	target := "/concelier/exports/index.json"
	client := map[string]string{"RemoteAddr": "198.51.100.7:1"}
	with := func(authz string) map[string]string {
		return map[string]string{"RemoteAddr": client["RemoteAddr"], "Authorization": authz}
	}
	if w := e.do("GET", target, client); w.Code != 401 {
		t.Fatalf("no credentials: %d", w.Code)
	}
	if w := e.do("GET", target, with(basic("alice", "guess1"))); w.Code != 401 {
		t.Fatalf("guess 1: %d", w.Code)
	}
	if w := e.do("GET", target, with(basic("alice", "guess2"))); w.Code != 401 {
		t.Fatalf("guess 2: %d", w.Code)
	}
	before := compares.Load()
	for i := 0; i < 20; i++ {
		w := e.do("GET", target, with(basic("alice", fmt.Sprintf("guess-%d", i))))
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("guess after budget: %d", w.Code)
		}
		retryAfter(t, w)
	}
	if got := compares.Load(); got != before {
		t.Fatalf("refused requests ran bcrypt %d times", got-before)
	}
	// Even the right password from that address waits: no bcrypt while over budget.
	if w := e.do("GET", target, with(basic("alice", "wonderland"))); w.Code != 429 {
		t.Fatalf("right password over budget: %d", w.Code)
	}
	if compares.Load() != before {
		t.Fatal("bcrypt ran on a refused request")
	}
	// Bad bearer tokens count too.
	other := map[string]string{"RemoteAddr": "198.51.100.8:1", "Authorization": "Bearer junk"}
	codes := ""
	for i := 0; i < 4; i++ {
		codes += strconv.Itoa(e.do("GET", target, other).Code) + " "
	}
	if codes != "401 401 401 429 " {
		t.Fatalf("bad bearer codes %s", codes)
	}
}

func TestLimiterMemoryBounded(t *testing.T) {
	l := newLimiter(1024)
	now := testNow
	for i := 0; i < 100000; i++ {
		l.take(fmt.Sprintf("g|i|ip:10.%d.%d.%d", i>>16&255, i>>8&255, i&255), 10, now)
		if i%1000 == 0 {
			now = now.Add(time.Millisecond)
		}
	}
	if n := l.size(); n > 1024+limiterShards {
		t.Fatalf("limiter tracks %d clients, cap 1024", n)
	}
	// A client seen recently keeps its spent budget under churn.
	l = newLimiter(1024)
	for i := 0; i < 10; i++ {
		l.take("victim", 10, now)
	}
	if ok, _ := l.take("victim", 10, now); ok {
		t.Fatal("budget not spent")
	}
	// Under churn the least recently seen entries go first.
	for i := 0; i < 5000; i++ {
		l.take(fmt.Sprintf("spoof-%d", i), 10, now.Add(-time.Hour))
	}
	if ok, _ := l.take("victim", 10, now); ok {
		t.Fatal("victim's bucket was evicted in favour of idle entries")
	}
}
