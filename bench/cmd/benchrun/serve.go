package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serve runs bench/serve-vs-nginx.sh (wrk against serve and nginx with the
// same files and headers) and turns its table into rows.
func (b *Bench) serve() error {
	script := filepath.Join(b.cfg.repo, "bench", "serve-vs-nginx.sh")
	if !fileExists(script) {
		b.add(Row{Measure: "serve vs nginx", Ours: "—", Theirs: "—", Ratio: "—", Target: "≥ 60% small files, ≥ 90% 1 MiB", Result: "not measured (bench/serve-vs-nginx.sh missing)"})
		return nil
	}
	logf("serve: bench/serve-vs-nginx.sh (DURATION=%s ROUNDS=%d)", b.cfg.serveDur, b.cfg.serveRound)
	cmd := exec.Command("bash", script)
	cmd.Dir = b.cfg.repo
	slow := "0"
	if b.cfg.slowloris {
		slow = "1"
	}
	cmd.Env = append(os.Environ(), "DURATION="+b.cfg.serveDur, "ROUNDS="+strconv.Itoa(b.cfg.serveRound), "SLOWLORIS="+slow)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return err
	}
	b.atExit(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) })
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("bench/serve-vs-nginx.sh: %v\n%s", err, out.String())
	}
	re := regexp.MustCompile(`^\| ([^|]+?) \| (none|basic) \| (\d+) \| (\d+) \| ([\d.]+|n/a) \|`)
	found := 0
	for _, line := range strings.Split(out.String(), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			if strings.HasPrefix(line, "wrk ") || strings.HasPrefix(line, "bundle throughput") || strings.HasPrefix(line, "slow clients") ||
				(strings.HasPrefix(line, "| ") && strings.Contains(line, "MiB")) {
				b.detail("serve-vs-nginx.sh: %s", strings.TrimSpace(line))
			}
			continue
		}
		found++
		target, limit := "≥ 0.60× nginx req/s", 0.60
		if strings.HasPrefix(m[1], "bundle.json") {
			target, limit = "≥ 0.90× nginx throughput", 0.90
		}
		auth := map[string]string{"none": "no auth", "basic": "Basic auth"}[m[2]]
		ratio, _ := strconv.ParseFloat(m[5], 64)
		b.add(Row{
			Measure: fmt.Sprintf("serve vs nginx: GET %s, %s (wrk, best of %d × %s)", m[1], auth, b.cfg.serveRound, b.cfg.serveDur),
			Ours:    m[3] + " req/s", Theirs: m[4] + " req/s", Ratio: fmt.Sprintf("%.2f×", ratio),
			Target: target, Result: passMiss(ratio >= limit),
		})
	}
	if found == 0 {
		return fmt.Errorf("no result rows in the output of bench/serve-vs-nginx.sh:\n%s", out.String())
	}
	return nil
}

// server is a process listening on 127.0.0.1.
type server struct {
	url  string
	cmd  *exec.Cmd
	log  string // stderr (serve's access log)
	stop func()
}

func (b *Bench) startServe(root, name string) (*server, error) {
	stdout := filepath.Join(b.cfg.work, name+".out")
	logPath := filepath.Join(b.cfg.work, name+".log")
	fo, err := os.Create(stdout)
	if err != nil {
		return nil, err
	}
	fe, err := os.Create(logPath)
	if err != nil {
		fo.Close()
		return nil, err
	}
	cmd := exec.Command(b.cfg.cli, "-o", "json", "mirror", "serve", "--export-root", root, "--listen", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = fo, fe
	if err := cmd.Start(); err != nil {
		fo.Close()
		fe.Close()
		return nil, err
	}
	s := &server{cmd: cmd, log: logPath}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			fo.Close()
			fe.Close()
		})
	}
	b.atExit(s.stop)
	re := regexp.MustCompile(`"url":\s*"([^"]+)"`)
	for range 100 {
		data, _ := os.ReadFile(stdout)
		if m := re.FindSubmatch(data); m != nil {
			s.url = string(m[1])
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	logData, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("mirror serve did not start:\n%s", logData)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNginx serves ROOT/latest/mirror/index.json at the same path and
// with the same Cache-Control as mirror serve.
func (b *Bench) startNginx(root string) (*server, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx = "/usr/sbin/nginx"
	}
	dir := filepath.Join(b.cfg.work, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    sendfile on;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:%[2]d;
        location = /concelier/exports/index.json {
            alias %[3]s/latest/mirror/index.json;
            default_type application/json;
            add_header Cache-Control "public, max-age=60" always;
        }
        location / { return 404; }
    }
}
`, dir, port, root)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	args := []string{"-c", filepath.Join(dir, "nginx.conf"), "-p", dir + "/", "-e", filepath.Join(dir, "error.log")}
	if os.Getuid() == 0 {
		args = append(args, "-g", "user root root;")
	}
	cmd := exec.Command(nginx, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{url: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGQUIT)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	b.atExit(s.stop)
	for range 100 {
		if resp, err := http.Get(s.url + "/concelier/exports/index.json"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	logData, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	return nil, fmt.Errorf("nginx did not start:\n%s", logData)
}

// wrkRPS runs wrk for d and returns requests per second.
func wrkRPS(url string, d string) (float64, error) {
	out, err := exec.Command("wrk", "-t2", "-c32", "-d"+d, url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk %s: no Requests/sec in:\n%s", url, out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// latency measures p50 and p99 of index.json on serve and on nginx at half
// the lower of their peak rates, with an open-loop load (each request is
// timed from when it was due, so a stalled server is charged for the
// requests queued behind it).
func (b *Bench) latency() error {
	root := filepath.Join(b.cfg.work, fmt.Sprintf("osv-%dx", b.cfg.osvCopies[0]), "root")
	if !fileExists(filepath.Join(root, "latest")) {
		b.add(Row{Measure: "latency at 50% of peak: GET index.json", Ours: "—", Theirs: "—", Ratio: "—", Result: "not measured (needs the OSV export root)"})
		return nil
	}
	srv, err := b.startServe(root, "latency-serve")
	if err != nil {
		return err
	}
	defer srv.stop()
	ngx, err := b.startNginx(root)
	if err != nil {
		return err
	}
	defer ngx.stop()
	path := "/concelier/exports/index.json"
	peakDur, loadDur := "3s", 5*time.Second
	if b.cfg.mode != "quick" {
		peakDur, loadDur = "5s", 10*time.Second
	}
	logf("latency: peak rates (wrk %s each)", peakDur)
	ps, err := wrkRPS(srv.url+path, peakDur)
	if err != nil {
		return err
	}
	pn, err := wrkRPS(ngx.url+path, peakDur)
	if err != nil {
		return err
	}
	target := 0.5 * min(ps, pn)
	logf("latency: open loop at %.0f req/s for %s each", target, loadDur)
	var ls, ln loadResult
	for i := range 2 {
		d := loadDur / 2
		if i%2 == 0 {
			ls.merge(openLoop(srv.url+path, target, d))
			ln.merge(openLoop(ngx.url+path, target, d))
		} else {
			ln.merge(openLoop(ngx.url+path, target, d))
			ls.merge(openLoop(srv.url+path, target, d))
		}
	}
	p50s, p99s := ls.pct(0.50), ls.pct(0.99)
	p50n, p99n := ln.pct(0.50), ln.pct(0.99)
	b.add(Row{
		Measure: fmt.Sprintf("latency: GET index.json at %.0f req/s = 50%% of the lower peak (serve %.0f, nginx %.0f req/s), open loop", target, ps, pn),
		Ours:    fmt.Sprintf("p50 %s, p99 %s", fmtLat(p50s), fmtLat(p99s)),
		Theirs:  fmt.Sprintf("p50 %s, p99 %s", fmtLat(p50n), fmtLat(p99n)),
		Ratio:   fmt.Sprintf("p99 %.2f×", float64(p99s)/float64(max(p99n, 1))),
		Target:  "report (issue 10)",
	})
	b.detail("latency: serve %d requests, %d errors, %d late by > 1 s; nginx %d requests, %d errors, %d late", len(ls.lat), ls.errs, ls.dropped, len(ln.lat), ln.errs, ln.dropped)
	return nil
}

func fmtLat(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

type loadResult struct {
	lat     []time.Duration
	errs    int
	dropped int
}

func (l *loadResult) merge(o loadResult) {
	l.lat = append(l.lat, o.lat...)
	l.errs += o.errs
	l.dropped += o.dropped
}

func (l *loadResult) pct(p float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	s := slices.Clone(l.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func openLoop(url string, rps float64, d time.Duration) loadResult {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	jobs := make(chan time.Time, 1<<16)
	var mu sync.Mutex
	var res loadResult
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for due := range jobs {
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(due))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errs += errs
			mu.Unlock()
		}()
	}
	interval := time.Duration(float64(time.Second) / rps)
	start := time.Now()
	end := start.Add(d)
	// A random phase so that two runs do not beat against the same timer.
	next := start.Add(time.Duration(rand.Int64N(int64(interval) + 1)))
	for next.Before(end) {
		now := time.Now()
		for !next.After(now) && next.Before(end) {
			if now.Sub(next) > time.Second {
				res.dropped++
			} else {
				select {
				case jobs <- next:
				default:
					res.dropped++
				}
			}
			next = next.Add(interval)
		}
		time.Sleep(200 * time.Microsecond)
	}
	close(jobs)
	wg.Wait()
	return res
}

// syncBench compares mirror sync with curl fetching the same files from
// mirror serve, then times a sync with nothing new.
func (b *Bench) syncBench(name, bundle string, bundleBytes int64) error {
	if !b.want("sync") || b.syncScriptRan {
		return nil
	}
	if help, err := exec.Command(b.cfg.cli, "mirror", "sync", "--help").CombinedOutput(); err != nil || !strings.Contains(string(help), "--from") {
		b.add(Row{Measure: fmt.Sprintf("sync vs curl: %s", name), Ours: "—", Theirs: "—", Ratio: "—", Target: "≤ 1.2×",
			Result: "not measured (this build has no `mirror sync`)"})
		return nil
	}
	dir := filepath.Join(b.cfg.work, "sync")
	defer trash.Remove(dir)
	upstream := filepath.Join(dir, "upstream")
	if _, err := Run(b.importCmd(bundle, upstream)); err != nil {
		return err
	}
	srv, err := b.startServe(upstream, "sync-serve")
	if err != nil {
		return err
	}
	defer srv.stop()
	exportID, err := os.Readlink(filepath.Join(upstream, "latest"))
	if err != nil {
		return err
	}
	exportID = filepath.Base(exportID)
	src := filepath.Join(upstream, exportID)
	var m struct {
		Domains []string `json:"domains"`
	}
	data, err := os.ReadFile(filepath.Join(src, "mirror.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	// curl fetches every file of the export from the immutable route.
	dst := filepath.Join(dir, "curl")
	var cfg strings.Builder
	err = filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fmt.Fprintf(&cfg, "url = %s\noutput = %s\n", q(srv.url+"/concelier/exports/"+exportID+"/"+filepath.ToSlash(rel)), q(filepath.Join(dst, rel)))
		return nil
	})
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "curl.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return err
	}
	curl := Shell("curl --parallel + sync", fmt.Sprintf("curl -sS --fail --create-dirs --parallel --parallel-max 4 -K %s\nsync", shq(cfgPath)))
	curl.Out = dst
	down := filepath.Join(dir, "downstream")
	args := []string{"sync", "--from", srv.url, "--export-root", down, "--trust-roots", b.pub}
	for _, d := range m.Domains {
		args = append(args, "--domain", d)
	}
	ours := b.cliCmd("sync", args...)
	ours.Out = down
	logf("%s: sync vs curl", name)
	so, st, err := Compare(ours, curl, b.cfg.runs, b.cfg.warm)
	if err != nil {
		return err
	}
	b.add(b.compareRow(fmt.Sprintf("sync: %s from mirror serve vs `curl --parallel` of the same files + `sync`", name), so, st, bundleBytes, timeTarget{text: "≤ 1.2×", max: 1.2}))

	// Nothing changed upstream: one conditional request.
	again := b.cliCmd("sync", args...)
	var noChange Series
	maxReq := 0
	for range b.cfg.runs {
		before := countLines(srv.log)
		x, err := Run(again)
		if err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond) // let the access log line land
		maxReq = max(maxReq, countLines(srv.log)-before)
		noChange.Samples = append(noChange.Samples, x)
	}
	b.add(Row{
		Measure: fmt.Sprintf("sync, nothing changed: %s", name),
		Ours:    fmt.Sprintf("%s, %d request(s)", fmtDur(noChange.Median()), maxReq), Theirs: "—", Ratio: "—",
		Target: "< 50 ms and 1 request (issue 7)", Result: passMiss(noChange.Median() < 50*time.Millisecond && maxReq == 1),
		RSS: fmtMiB(noChange.PeakRSS()),
	})
	b.detail("sync, nothing changed: [%s]", noChange)
	return nil
}

// countLines counts the access-log lines (JSON objects) in a file.
func countLines(p string) int {
	f, err := os.Open(p)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if bytes.HasPrefix(bytes.TrimSpace(sc.Bytes()), []byte("{")) {
			n++
		}
	}
	return n
}

// syncScript runs bench/sync-vs-curl.sh (mirror sync against curl
// --parallel fetching the same files from the same mirror serve, and a
// no-change sync) and turns its table into rows. It reports whether the
// script exists.
func (b *Bench) syncScript() (bool, error) {
	script := filepath.Join(b.cfg.repo, "bench", "sync-vs-curl.sh")
	if !fileExists(script) {
		return false, nil
	}
	logf("sync: bench/sync-vs-curl.sh")
	cmd := exec.Command("bash", script)
	cmd.Dir = b.cfg.repo
	cmd.Env = append(os.Environ(), "SYNC_BENCH_REPS="+strconv.Itoa(b.cfg.runs))
	if b.cfg.mode == "quick" {
		cmd.Env = append(cmd.Env, "SYNC_BENCH_QUICK=1", "SYNC_BENCH_NOCHANGE_RUNS=3")
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return true, err
	}
	b.atExit(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) })
	if err := cmd.Wait(); err != nil {
		return true, fmt.Errorf("bench/sync-vs-curl.sh: %v\n%s", err, out.String())
	}
	var title, curl, full, noChange []string
	for _, line := range strings.Split(out.String(), "\n") {
		cells := tableCells(line)
		switch {
		case strings.HasPrefix(line, "### "):
			title = []string{strings.TrimPrefix(line, "### ")}
		case len(cells) >= 5 && cells[0] == "curl --parallel":
			curl = cells
		case len(cells) >= 5 && strings.HasPrefix(cells[0], "mirror sync, full"):
			full = cells
		case len(cells) >= 5 && strings.HasPrefix(cells[0], "mirror sync, no change"):
			noChange = cells
		}
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "| ---") {
			b.detail("sync-vs-curl.sh: %s", line)
		}
	}
	if curl == nil || full == nil || noChange == nil {
		return true, fmt.Errorf("bench/sync-vs-curl.sh: no curl, full sync or no-change row in:\n%s", out.String())
	}
	what := "sync vs curl"
	if title != nil {
		what = "sync (" + strings.TrimPrefix(title[0], "mirror sync vs curl: ") + ")"
	}
	ratio, _ := strconv.ParseFloat(full[4], 64)
	b.add(Row{
		Measure: what + ": full sync into an empty root vs `curl --parallel` of the same files (bench/sync-vs-curl.sh)",
		Ours:    full[1] + " s (" + full[3] + " MiB/s)", Theirs: curl[1] + " s (" + curl[3] + " MiB/s)",
		Ratio: fmt.Sprintf("%.2f×", ratio), Target: "≤ 1.2×", Result: passMiss(ratio > 0 && ratio <= 1.2),
	})
	secs, _ := strconv.ParseFloat(noChange[1], 64)
	reqs := noChange[2]
	b.add(Row{
		Measure: "sync, nothing changed (bench/sync-vs-curl.sh)",
		Ours:    fmt.Sprintf("%.3f s, %s request(s)", secs, reqs), Theirs: "—", Ratio: "—",
		Target: "< 50 ms and 1 request (issue 7)", Result: passMiss(secs < 0.050 && reqs == "1"),
	})
	return true, nil
}

// tableCells splits a Markdown table row into trimmed cells.
func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
		return nil
	}
	parts := strings.Split(strings.Trim(line, "|"), "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
