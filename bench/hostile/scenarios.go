package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/rotation"
)

const (
	indexPath    = "/concelier/exports/index.json"
	manifestPath = "/concelier/exports/mirror/primary/manifest.json"
	probeEvery   = 20 * time.Millisecond
)

func (r *result) finish(s *server, probe probeStats) {
	r.probe = probe
	r.maxRSS = s.maxRSS.Load()
	r.check(probe.failures == 0, "normal client: %d of %d requests failed %v", probe.failures, probe.n, probe.codes)
	r.check(probe.p99 < targetP99, "normal client p99 %s (target %s)", ms(probe.p99), ms(targetP99))
	r.check(r.maxRSS < targetRSS, "serve max RSS %d MiB (target %d MiB)", r.maxRSS>>20, targetRSS>>20)
}

// runSlowloris holds 10,000 connections that send their request headers a
// byte every two seconds and reconnect when serve drops them.
func runSlowloris(ctx context.Context, cfg *config) (*result, error) {
	root, err := cfg.sampleRoot("slowloris")
	if err != nil {
		return nil, err
	}
	s, err := startServe(cfg, root)
	if err != nil {
		return nil, err
	}
	defer s.stop(syscall.SIGTERM, time.Minute)
	n := cfg.count(10000)
	dur := cfg.dur(25 * time.Second)
	deadline := time.Now().Add(dur)
	var open, maxOpen, dialed, dropped, dialErrs atomic.Int64
	probe := startProbe(s.base+indexPath, probeEvery, nil)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ramp up over three seconds.
			time.Sleep(time.Duration(i) * 3 * time.Second / time.Duration(n))
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: clientIP(1, i%40)}, Timeout: 5 * time.Second}
			for time.Now().Before(deadline) && ctx.Err() == nil {
				c, err := d.Dial("tcp", s.addr)
				if err != nil {
					dialErrs.Add(1)
					time.Sleep(200 * time.Millisecond)
					continue
				}
				dialed.Add(1)
				cur := open.Add(1)
				for m := maxOpen.Load(); cur > m && !maxOpen.CompareAndSwap(m, cur); m = maxOpen.Load() {
				}
				_, err = c.Write([]byte("GET " + indexPath + " HTTP/1.1\r\nHost: mirror\r\nX-Slow: "))
				for err == nil && time.Now().Before(deadline) {
					time.Sleep(1500*time.Millisecond + rand.N(time.Second))
					_, err = c.Write([]byte{'x'})
				}
				if err != nil {
					dropped.Add(1)
				}
				c.Close()
				open.Add(-1)
			}
		}()
	}
	wg.Wait()
	r := &result{name: "slowloris", load: fmt.Sprintf("%d slow-header clients for %s", n, dur)}
	r.details = fmt.Sprintf("peak %d connections open at once, %d connections made, %d dropped by serve (10 s header timeout), %d dial errors",
		maxOpen.Load(), dialed.Load(), dropped.Load(), dialErrs.Load())
	r.check(maxOpen.Load() >= int64(n)*9/10, "held %d of %d slow connections open at once", maxOpen.Load(), n)
	if dur > 12*time.Second {
		r.check(dropped.Load() > 0, "serve dropped slow clients (%d)", dropped.Load())
	}
	r.finish(s, probe())
	return r, nil
}

// htpasswdFile writes an htpasswd with alice's bcrypt entry at the
// default cost of mirror rotate credentials.
func (c *config) htpasswdFile(password string) (string, error) {
	h, err := rotation.HashPassword([]byte(password), rotation.DefaultBcryptCost)
	if err != nil {
		return "", err
	}
	p := filepath.Join(c.tmp, "htpasswd")
	return p, os.WriteFile(p, []byte("alice:"+string(h)+"\n"), 0o600)
}

func runFlood(ctx context.Context, cfg *config) (*result, error) {
	return flood(ctx, cfg, "flood", 1, 0)
}

func runFloodSpread(ctx context.Context, cfg *config) (*result, error) {
	return flood(ctx, cfg, "flood-spread", 250, 20)
}

// inFlight bounds the flood's requests in flight: serve may hold one up
// to 10 s waiting for a password check, so offering 1,000 per second takes
// about 10,000.
const inFlight = 12000

// flood sends wrong Basic passwords at 1,000 requests per second from
// addrs addresses, with an index budget per client of budget (0: none),
// while alice, whose credentials are cached, reads a domain manifest.
func flood(ctx context.Context, cfg *config, name string, addrs, budget int) (*result, error) {
	root, err := cfg.sampleRoot(name)
	if err != nil {
		return nil, err
	}
	const password = "correct horse battery staple"
	ht, err := cfg.htpasswdFile(password)
	if err != nil {
		return nil, err
	}
	args := []string{"--htpasswd", ht, "--require-authentication"}
	if budget > 0 {
		args = append(args, "--max-index-requests-per-hour", strconv.Itoa(budget))
	}
	s, err := startServe(cfg, root, args...)
	if err != nil {
		return nil, err
	}
	defer s.stop(syscall.SIGTERM, time.Minute)
	auth := func(r *http.Request) { r.SetBasicAuth("alice", password) }
	// The first request pays for bcrypt; later ones hit the cache.
	warm, _ := http.NewRequest(http.MethodGet, s.base+manifestPath, nil)
	auth(warm)
	if resp, err := http.DefaultClient.Do(warm); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("alice cannot read: %v", err)
	} else {
		resp.Body.Close()
	}

	rate := cfg.count(1000)
	dur := cfg.dur(20 * time.Second)
	clients := make([]*http.Client, addrs)
	for i := range clients {
		clients[i] = clientFrom(clientIP(2, i), inFlight, 15*time.Second)
	}
	var out counter
	jobs := make(chan int, rate)
	var wg sync.WaitGroup
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				req, _ := http.NewRequest(http.MethodGet, s.base+indexPath, nil)
				user := "alice"
				if i%2 == 1 {
					user = fmt.Sprintf("user%d", i)
				}
				req.SetBasicAuth(user, fmt.Sprintf("guess-%d", i))
				resp, err := clients[i%addrs].Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				out.add(outcome(resp, err))
			}
		}()
	}
	probe := startProbe(s.base+manifestPath, probeEvery, auth)
	sent, skipped := 0, 0
	tick := time.NewTicker(time.Millisecond)
	start := time.Now()
	for time.Since(start) < dur && ctx.Err() == nil {
		<-tick.C
		want := int(time.Since(start).Seconds() * float64(rate))
		for ; sent+skipped < want; sent++ {
			select {
			case jobs <- sent + skipped:
			default:
				skipped++
				sent--
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	ps := probe()
	close(jobs)
	wg.Wait()
	m, _ := metrics(s.base, "stellaops_mirror_password_checks_total")
	r := &result{name: name, load: fmt.Sprintf("wrong passwords at %d/s for %s from %d address(es), index budget %d/h", rate, dur, addrs, budget)}
	r.details = fmt.Sprintf("sent %d (%.0f/s; %d not sent: 12,000 requests already waiting), answers: %s; bcrypt comparisons: %.0f",
		sent, float64(sent)/elapsed.Seconds(), skipped, out.String(), m["stellaops_mirror_password_checks_total"])
	r.check(out.get("200") == 0, "no wrong password let in (%d answered 200)", out.get("200"))
	r.finish(s, ps)
	return r, nil
}

// runXFF sends X-Forwarded-For with made-up addresses from clients outside
// --trusted-proxy: their budget must stay that of their own address.
func runXFF(ctx context.Context, cfg *config) (*result, error) {
	root, err := cfg.sampleRoot("xff")
	if err != nil {
		return nil, err
	}
	const budget = 50
	s, err := startServe(cfg, root, "--trusted-proxy", "127.0.0.1/32", "--max-index-requests-per-hour", strconv.Itoa(budget))
	if err != nil {
		return nil, err
	}
	defer s.stop(syscall.SIGTERM, time.Minute)
	probe := startProbe(s.base+manifestPath, probeEvery, nil)
	addrs := cfg.count(20)
	deadline := time.Now().Add(cfg.dur(15 * time.Second))
	ok := make([]atomic.Int64, addrs)
	var out counter
	var wg sync.WaitGroup
	for a := range addrs {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := clientFrom(clientIP(3, a), 4, 10*time.Second)
				defer c.CloseIdleConnections()
				for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i += 4 {
					req, _ := http.NewRequest(http.MethodGet, s.base+indexPath, nil)
					spoof := fmt.Sprintf("10.%d.%d.%d", rand.N(256), rand.N(256), rand.N(256))
					switch i % 3 {
					case 1:
						spoof += ", 127.0.0.1"
					case 2:
						req.Header.Add("X-Forwarded-For", "198.51.100.1")
					}
					req.Header.Add("X-Forwarded-For", spoof)
					resp, err := c.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							ok[a].Add(1)
						}
					}
					out.add(outcome(resp, err))
				}
			}()
		}
	}
	wg.Wait()
	// Through the trusted proxy (127.0.0.1) the forwarded address counts.
	proxy := clientFrom(net.IPv4(127, 0, 0, 1), 4, 10*time.Second)
	viaProxy := func(client string, n int) (okN int) {
		for range n {
			req, _ := http.NewRequest(http.MethodGet, s.base+indexPath, nil)
			req.Header.Set("X-Forwarded-For", client)
			resp, err := proxy.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					okN++
				}
			}
		}
		return okN
	}
	first := viaProxy("203.0.113.7", budget+10)
	second := viaProxy("203.0.113.8", 1)
	r := &result{name: "xff", load: fmt.Sprintf("%d untrusted addresses sending index requests with forged X-Forwarded-For for %s, budget %d/h", addrs, cfg.dur(15*time.Second), budget)}
	over := 0
	for a := range addrs {
		if ok[a].Load() != budget {
			over++
		}
	}
	r.details = fmt.Sprintf("answers: %s; via the trusted proxy: %d of %d for one forwarded client, then %d of 1 for another", out.String(), first, budget+10, second)
	r.check(over == 0, "every untrusted address got exactly its own budget of %d (%d did not)", budget, over)
	r.check(first == budget && second == 1, "X-Forwarded-For believed from the trusted proxy only")
	r.finish(s, probe())
	return r, nil
}

// runBudget spends the whole index budget from 5,000 addresses, then checks
// that a new address still has all of its own.
func runBudget(ctx context.Context, cfg *config) (*result, error) {
	root, err := cfg.sampleRoot("budget")
	if err != nil {
		return nil, err
	}
	const budget = 10
	s, err := startServe(cfg, root, "--max-index-requests-per-hour", strconv.Itoa(budget))
	if err != nil {
		return nil, err
	}
	defer s.stop(syscall.SIGTERM, time.Minute)
	probe := startProbe(s.base+manifestPath, probeEvery, nil)
	addrs := cfg.count(5000)
	deadline := time.Now().Add(cfg.dur(60 * time.Second))
	next := atomic.Int64{}
	var out counter
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				a := int(next.Add(1)) - 1
				if a >= addrs || time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				c := clientFrom(clientIP(4+a/60000, a%60000), 1, 10*time.Second)
				okN := 0
				for range budget + 2 {
					resp, err := c.Get(s.base + indexPath)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							okN++
						}
					}
					out.add(outcome(resp, err))
				}
				c.CloseIdleConnections()
				if okN != budget {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	done := min(int(next.Load()), addrs)
	fresh := clientFrom(net.IPv4(127, 9, 9, 9), 1, 10*time.Second)
	freshOK := 0
	for range budget {
		if resp, err := fresh.Get(s.base + indexPath); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				freshOK++
			}
		}
	}
	r := &result{name: "budget", load: fmt.Sprintf("%d addresses × %d index requests, budget %d/h", done, budget+2, budget)}
	r.details = fmt.Sprintf("answers: %s; a new address afterwards: %d of %d", out.String(), freshOK, budget)
	r.check(done == addrs, "all %d addresses ran (%d)", addrs, done)
	r.check(wrong.Load() == 0, "every address got exactly its budget (%d did not)", wrong.Load())
	r.check(freshOK == budget, "a new client still has its whole budget")
	r.finish(s, probe())
	return r, nil
}

// runSoak imports a new export every two seconds (keeping two, so older
// ones are pruned under the clients) while clients download and check
// every body against its ETag and against its export's mirror.json.
func runSoak(ctx context.Context, cfg *config) (*result, error) {
	k := cfg.count(30)
	var bundles []string
	for i := 1; i <= k; i++ {
		src := filepath.Join(cfg.tmp, fmt.Sprintf("soak-src-%d", i))
		if err := bigSource(src, 2<<20, fmt.Sprintf("soak-%d", i)); err != nil {
			return nil, err
		}
		b, err := cfg.exportBundle(src, int64(i), fmt.Sprintf("soak-bundle-%d", i))
		if err != nil {
			return nil, err
		}
		bundles = append(bundles, b)
	}
	root := filepath.Join(cfg.tmp, "soak-root")
	if err := cfg.importBundle(bundles[0], root); err != nil {
		return nil, err
	}
	s, err := startServe(cfg, root)
	if err != nil {
		return nil, err
	}
	defer s.stop(syscall.SIGTERM, time.Minute)
	// Baseline after a first round of requests, connections closed.
	warm := clientFrom(net.IPv4(127, 0, 0, 1), 4, 30*time.Second)
	for _, p := range []string{indexPath, "/concelier/exports/mirror/primary/bundle.json"} {
		if resp, err := warm.Get(s.base + p); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	warm.CloseIdleConnections()
	base, err := metrics(s.base, "go_goroutines", "process_open_fds")
	if err != nil {
		return nil, err
	}

	stop := make(chan struct{})
	var imports, importErrs atomic.Int64
	var importMsgs []string
	go func() {
		defer close(stop)
		t := time.NewTicker(cfg.dur(2 * time.Second))
		defer t.Stop()
		for _, b := range bundles[1:] {
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			out, err := exec.Command(cfg.bin, "mirror", "import", "-q", "--bundle-path", b, "--export-root", root,
				"--trust-roots", filepath.Join(cfg.keys, "es256.pub"), "--keep", "2", "--now", importAt.Format(time.RFC3339)).CombinedOutput()
			imports.Add(1)
			if err != nil {
				importErrs.Add(1)
				importMsgs = append(importMsgs, strings.TrimSpace(string(out)))
			}
		}
	}()
	var st soakStats
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clientFrom(clientIP(5, w), 8, 30*time.Second)
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				st.round(c, s.base)
			}
		}()
	}
	wg.Wait()
	// Goroutines and open files back to where they were. Serve keeps up
	// to four exports loaded (an open folder each; the baseline had one),
	// so three more open folders are not a leak.
	var after map[string]float64
	settled := false
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		after, err = metrics(s.base, "go_goroutines", "process_open_fds")
		if err == nil && after["go_goroutines"] <= base["go_goroutines"]+2 && after["process_open_fds"] <= base["process_open_fds"]+3 {
			settled = true
			break
		}
	}
	openFiles := fdTargets(s.cmd.Process.Pid)
	r := &result{name: "soak", load: fmt.Sprintf("%d imports, one every %s (--keep 2), 4 checking clients", imports.Load(), cfg.dur(2*time.Second))}
	r.details = fmt.Sprintf("%d responses, %d MiB checked; %d answered 404 for an export pruned meanwhile; other answers: %s; goroutines %.0f -> %.0f, open files %.0f -> %.0f (%s)",
		st.responses.Load(), st.bytes.Load()>>20, st.gone.Load(), st.other.String(), base["go_goroutines"], after["go_goroutines"], base["process_open_fds"], after["process_open_fds"], openFiles)
	r.check(importErrs.Load() == 0, "every import succeeded (%d failed %v)", importErrs.Load(), importMsgs)
	r.check(st.mismatches.Load() == 0, "no body differs from its ETag or its export's mirror.json (%d did)", st.mismatches.Load())
	r.check(st.serverErrors.Load() == 0, "no 5xx (%d)", st.serverErrors.Load())
	r.check(settled, "goroutines and open files back to the baseline")
	r.maxRSS = s.maxRSS.Load()
	r.check(r.maxRSS < targetRSS, "serve max RSS %d MiB (target %d MiB)", r.maxRSS>>20, targetRSS>>20)
	r.probe = st.latency()
	return r, nil
}

type soakStats struct {
	responses, bytes, mismatches, serverErrors, gone atomic.Int64
	other                                            counter
	mu                                               sync.Mutex
	lat                                              []time.Duration
}

func (st *soakStats) latency() probeStats {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := probeStats{n: len(st.lat)}
	if len(st.lat) > 0 {
		lat := append([]time.Duration(nil), st.lat...)
		sortDurations(lat)
		p.p50, p.p99, p.max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	}
	return p
}

// get fetches path and checks the body against the ETag (the SHA-256) and,
// when want is set, against that digest.
func (st *soakStats) get(c *http.Client, url, want string) ([]byte, bool) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		st.other.add("error")
		return nil, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	st.mu.Lock()
	st.lat = append(st.lat, time.Since(start))
	st.mu.Unlock()
	st.responses.Add(1)
	switch {
	case resp.StatusCode >= 500:
		st.serverErrors.Add(1)
		return nil, false
	case resp.StatusCode == http.StatusNotFound:
		st.gone.Add(1)
		return nil, false
	case resp.StatusCode != http.StatusOK || err != nil:
		st.other.add(outcome(resp, err))
		return nil, false
	}
	st.bytes.Add(int64(len(body)))
	sum := sha256.Sum256(body)
	got := hex.EncodeToString(sum[:])
	if `"`+got+`"` != resp.Header.Get("ETag") || (want != "" && got != want) || int64(len(body)) != resp.ContentLength {
		st.mismatches.Add(1)
		return nil, false
	}
	return body, true
}

// round reads index.json, then the export it names through its immutable
// route, file by file against its mirror.json, then the latest routes.
func (st *soakStats) round(c *http.Client, base string) {
	idx, ok := st.get(c, base+indexPath, "")
	if !ok {
		return
	}
	var ix bundle.Index
	if json.Unmarshal(idx, &ix) != nil {
		st.mismatches.Add(1)
		return
	}
	if mj, ok := st.get(c, base+"/concelier/exports/"+ix.ExportID+"/mirror.json", ""); ok {
		var m bundle.Manifest
		if json.Unmarshal(mj, &m) != nil {
			st.mismatches.Add(1)
			return
		}
		for _, f := range m.Files {
			st.get(c, base+"/concelier/exports/"+ix.ExportID+"/"+f.Path, f.SHA256)
		}
	}
	st.get(c, base+"/concelier/exports/mirror/primary/bundle.json", "")
	st.get(c, base+"/excititor/mirror/primary/download/openvex/big", "")
}

// runSIGTERM stops serve while five downloads of a 48 MiB file are under
// way: four keep reading and must complete, one has stopped reading and
// must, once the 30 s drain runs out, end short and be seen as such.
func runSIGTERM(ctx context.Context, cfg *config) (*result, error) {
	src := filepath.Join(cfg.tmp, "sigterm-src")
	if err := bigSource(src, 48<<20, "sigterm"); err != nil {
		return nil, err
	}
	b, err := cfg.exportBundle(src, 1, "sigterm-bundle")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(cfg.tmp, "sigterm-root")
	if err := cfg.importBundle(b, root); err != nil {
		return nil, err
	}
	s, err := startServe(cfg, root)
	if err != nil {
		return nil, err
	}
	url := s.base + "/excititor/mirror/primary/download/openvex/big"
	type dl struct {
		stalled       bool
		status        int
		length, got   int64
		etag, sum     string
		err           error
		reportedWhole bool
	}
	started := make(chan struct{}, 5)
	results := make(chan dl, 5)
	for i := range 5 {
		stalled := i == 4
		go func() {
			d := dl{stalled: stalled}
			defer func() { results <- d }()
			c := clientFrom(clientIP(6, i), 1, 0)
			resp, err := c.Get(url)
			if err != nil {
				d.err = err
				started <- struct{}{}
				return
			}
			defer resp.Body.Close()
			d.status, d.length, d.etag = resp.StatusCode, resp.ContentLength, resp.Header.Get("ETag")
			h := sha256.New()
			n, err := io.CopyN(h, resp.Body, 1<<20)
			d.got += n
			started <- struct{}{}
			if err != nil {
				d.err = err
				return
			}
			if stalled {
				<-s.done // read nothing more until serve has exited
			}
			// Read on at about 16 MiB/s.
			buf := make([]byte, 256<<10)
			for {
				k, err := resp.Body.Read(buf)
				h.Write(buf[:k])
				d.got += int64(k)
				if errors.Is(err, io.EOF) {
					d.reportedWhole = true
					break
				}
				if err != nil {
					d.err = err
					break
				}
				time.Sleep(15 * time.Millisecond)
			}
			d.sum = `"` + hex.EncodeToString(h.Sum(nil)) + `"`
		}()
	}
	for range 5 {
		<-started
	}
	sent := time.Now()
	code := s.stop(syscall.SIGTERM, 2*time.Minute)
	exited := time.Since(sent)
	log, _ := os.ReadFile(s.log)
	r := &result{name: "sigterm", load: "SIGTERM during 5 downloads of 48 MiB (1 stalled)"}
	complete, stalledOK := 0, false
	var lines []string
	for range 5 {
		d := <-results
		whole := d.reportedWhole && d.err == nil
		lines = append(lines, fmt.Sprintf("%s %d/%d bytes, complete=%v err=%v", map[bool]string{true: "stalled", false: "reader"}[d.stalled], d.got, d.length, whole, d.err))
		if d.stalled {
			stalledOK = !whole && d.got < d.length
			continue
		}
		if whole && d.got == d.length && d.sum == d.etag && d.status == http.StatusOK {
			complete++
		}
	}
	r.details = fmt.Sprintf("serve exited %d after %s; %s; log: %s", code, exited.Round(100*time.Millisecond), strings.Join(lines, "; "), lastLines(string(log), "drain"))
	r.check(complete == 4, "all 4 reading downloads complete with their SHA-256 (%d)", complete)
	r.check(stalledOK, "the stalled download, cut at the drain timeout, is reported as an error, not as complete")
	r.check(code == 0, "serve exit status %d after draining", code)
	r.maxRSS = s.maxRSS.Load()
	return r, nil
}

func lastLines(log, containing string) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		if strings.Contains(sc.Text(), containing) {
			out = append(out, sc.Text())
		}
	}
	if len(out) == 0 {
		return "(no " + containing + " line)"
	}
	return strings.Join(out, " | ")
}
