package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// server is mirror serve running as a child process.
type server struct {
	cmd        *exec.Cmd
	addr       string
	base       string
	log        string
	done       chan struct{}
	err        error
	maxRSS     atomic.Int64
	maxFDs     atomic.Int64
	stopSample chan struct{}
}

var serveCount atomic.Int64

// startServe starts mirror serve on a free loopback port with args and
// samples its resident memory and open files every 50 ms.
func startServe(cfg *config, root string, args ...string) (*server, error) {
	n := serveCount.Add(1)
	log := filepath.Join(cfg.tmp, fmt.Sprintf("serve-%d.log", n))
	lf, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.bin, append([]string{"mirror", "serve", "-o", "json", "--export-root", root, "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.Stderr = lf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	s := &server{cmd: cmd, log: log, done: make(chan struct{}), stopSample: make(chan struct{})}
	var l struct {
		Address string `json:"address"`
	}
	derr := json.NewDecoder(stdout).Decode(&l)
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		s.err = cmd.Wait()
		lf.Close()
		close(s.done)
	}()
	if derr != nil || l.Address == "" {
		_ = cmd.Process.Kill()
		<-s.done
		out, _ := os.ReadFile(log)
		return nil, fmt.Errorf("serve did not start: %v\n%s", derr, out)
	}
	s.addr = l.Address
	s.base = "http://" + l.Address
	go s.sample()
	return s, nil
}

func (s *server) sample() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if rss := readRSS(s.cmd.Process.Pid); rss > s.maxRSS.Load() {
			s.maxRSS.Store(rss)
		}
		if fds := countFDs(s.cmd.Process.Pid); fds > s.maxFDs.Load() {
			s.maxFDs.Store(fds)
		}
		select {
		case <-t.C:
		case <-s.stopSample:
			return
		case <-s.done:
			return
		}
	}
}

// stop sends sig and waits for the process; it returns the exit status.
func (s *server) stop(sig syscall.Signal, wait time.Duration) int {
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(wait):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	close(s.stopSample)
	return s.cmd.ProcessState.ExitCode()
}

// readRSS returns the resident set size of pid in bytes (Linux).
func readRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func countFDs(pid int) int64 {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return int64(len(ents))
}

// fdTargets describes pid's open files other than sockets, pipes and
// anonymous ones (Linux).
func fdTargets(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range ents {
		t, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || strings.HasPrefix(t, "socket:") || strings.HasPrefix(t, "pipe:") || strings.HasPrefix(t, "anon_inode:") || strings.HasPrefix(t, "/dev/") {
			continue
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// metrics reads gauges from serve's /metrics.
func metrics(base string, names ...string) (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if rest, ok := strings.CutPrefix(line, n+" "); ok {
				v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				out[n] = v
			}
		}
	}
	return out, sc.Err()
}

// clientIP returns the i-th attacker address: 127.<block>.x.y, never
// 127.0.0.1, which the probe uses.
func clientIP(block, i int) net.IP {
	return net.IPv4(127, byte(block), byte(i/250), byte(i%250+1))
}

// clientFrom returns an HTTP client whose connections leave from ip.
func clientFrom(ip net.IP, conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: d.DialContext, MaxIdleConns: conns, MaxIdleConnsPerHost: conns,
		IdleConnTimeout: 30 * time.Second, DisableCompression: true,
	}}
}

// probeStats are a well-behaved client's latencies.
type probeStats struct {
	n, failures   int
	p50, p99, max time.Duration
	codes         map[int]int
}

func (p probeStats) String() string {
	return fmt.Sprintf("%d requests, p50 %s, p99 %s, max %s, %d failed", p.n, ms(p.p50), ms(p.p99), ms(p.max), p.failures)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// startProbe requests url from 127.0.0.1 every interval, one request at a
// time over a kept-alive connection, until stop is called; prepare may add
// credentials. A request counts as failed unless it answers 200 or 304.
func startProbe(url string, interval time.Duration, prepare func(*http.Request)) (stop func() probeStats) {
	c := clientFrom(net.IPv4(127, 0, 0, 1), 2, 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var lat []time.Duration
	st := probeStats{codes: map[int]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if prepare != nil {
				prepare(req)
			}
			start := time.Now()
			resp, err := c.Do(req)
			code := 0
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			d := time.Since(start)
			mu.Lock()
			lat = append(lat, d)
			st.codes[code]++
			if err != nil || (code != http.StatusOK && code != http.StatusNotModified) {
				st.failures++
			}
			mu.Unlock()
		}
	}()
	return func() probeStats {
		cancel()
		<-done
		c.CloseIdleConnections()
		mu.Lock()
		defer mu.Unlock()
		st.n = len(lat)
		if len(lat) > 0 {
			slices.Sort(lat)
			st.p50 = lat[len(lat)/2]
			st.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
			st.max = lat[len(lat)-1]
		}
		return st
	}
}

// counter counts outcomes by key.
type counter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counter) add(k string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
	c.mu.Unlock()
}

func (c *counter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, c.m[k]))
	}
	return strings.Join(parts, ", ")
}

func outcome(resp *http.Response, err error) string {
	if err != nil {
		if strings.Contains(err.Error(), "Client.Timeout") || strings.Contains(err.Error(), "deadline") {
			return "timeout"
		}
		return "error"
	}
	return strconv.Itoa(resp.StatusCode)
}
