// Command benchrun measures every stellaops-cli mirror verb against the
// tools operators use today (sha256sum, tar, zstd, cp, cosign, nginx, curl)
// in the same run and prints one Markdown table of ratios. bench/run builds
// it and the CLI, fetches the data, and calls it; see bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	mode       string
	runs       int
	warm       bool
	sizes      []int64
	osvCopies  []int
	only       map[string]bool
	cli        string
	repo       string
	work       string
	osvDir     string
	out        string
	serveDur   string
	serveRound int
	slowloris  bool
	keep       bool
	data       string
}

func main() {
	var cfg config
	var sizes, only, osvCopies string
	flag.StringVar(&cfg.mode, "mode", "quick", "quick or full")
	flag.IntVar(&cfg.runs, "runs", 0, "timed runs per command (default 3 quick, 5 full)")
	flag.StringVar(&sizes, "sizes", "", "VEX data sizes, comma-separated (default 100MiB quick, 1GiB,8GiB full)")
	flag.StringVar(&osvCopies, "osv", "1,2,4", "OSV scaling factors")
	flag.StringVar(&only, "only", "", "run only these parts: limits,osv,vex,serve,latency,sync (comma-separated)")
	flag.StringVar(&cfg.cli, "cli", "", "the stellaops-cli binary")
	flag.StringVar(&cfg.repo, "repo", ".", "the repository (for testdata/keys and bench scripts)")
	flag.StringVar(&cfg.work, "work", "", "scratch folder (removed afterwards unless -keep)")
	flag.StringVar(&cfg.osvDir, "osv-dir", "", "vulndb's data/osv folder (empty: skip the OSV rows)")
	flag.StringVar(&cfg.out, "out", "", "also write the report to this file")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the scratch folder")
	flag.StringVar(&cfg.data, "data", "", "use the VEX source trees written by -generate into this folder (vex-SIZE) instead of generating them; they are left in place")
	generate := flag.String("generate", "", "only write source trees into this folder (vex-SIZE for each -sizes, osv-Nx for each -osv with -osv-dir) and exit")
	flag.Parse()
	if *generate != "" {
		if err := generateOnly(*generate, sizes, osvCopies, cfg.osvDir); err != nil {
			fatal(err)
		}
		return
	}

	quick := cfg.mode == "quick"
	if cfg.runs == 0 {
		cfg.runs = map[bool]int{true: 3, false: 5}[quick]
	}
	// The data is in the page cache when the comparisons start (it was
	// just generated and exported), so no warm-up runs are needed.
	cfg.warm = false
	if sizes == "" {
		sizes = map[bool]string{true: "100MiB", false: "1GiB,8GiB"}[quick]
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := parseSize(strings.TrimSpace(s))
		if err != nil {
			fatal(err)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	for _, s := range strings.Split(osvCopies, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d", &n); err != nil || n < 1 {
			fatal(fmt.Errorf("bad -osv %q", osvCopies))
		}
		cfg.osvCopies = append(cfg.osvCopies, n)
	}
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.only[s] = true
		}
	}
	cfg.serveDur, cfg.serveRound, cfg.slowloris = "2s", 1, false
	if !quick {
		cfg.serveDur, cfg.serveRound, cfg.slowloris = "5s", 2, true
	}
	if cfg.cli == "" || cfg.work == "" {
		fatal(errors.New("-cli and -work are required (run bench/run)"))
	}
	var err error
	if cfg.repo, err = filepath.Abs(cfg.repo); err != nil {
		fatal(err)
	}

	b := newBench(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		if ctx.Err() != nil && !b.finished() {
			logf("interrupted: cleaning up")
			b.cleanup()
			os.Exit(130)
		}
	}()
	runErr := b.run()
	b.done()
	b.cleanup()
	report := b.report()
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			logf("write %s: %v", cfg.out, err)
		}
	}
	if runErr != nil {
		fatal(runErr)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
	os.Exit(1)
}

// Row is one line of the results table.
type Row struct {
	Measure, Ours, Theirs, Ratio, Target, Result, RSS, CPU string
}

// Bench holds the state of one benchmark run.
type Bench struct {
	cfg     config
	start   time.Time
	created string // --created for every export, so bundles are identical

	key, pub, cosignKey, cosignPub string
	cosign                         string // path, or "" when not installed

	rows    []Row
	details []string
	notes   []string
	machine []string

	shaMBps   float64 // crypto/sha256, one core, 1 MiB blocks
	shaSumMB  float64 // sha256sum, one core
	writeMBps float64 // dd conv=fsync

	syncScriptRan bool

	mu       sync.Mutex
	cleanups []func()
	over     bool
}

func newBench(cfg config) *Bench {
	b := &Bench{cfg: cfg, start: time.Now()}
	b.created = b.start.UTC().Truncate(time.Second).Format(time.RFC3339)
	b.key = filepath.Join(cfg.repo, "testdata/keys/es256.pem")
	b.pub = filepath.Join(cfg.repo, "testdata/keys/es256.pub")
	b.cosignKey = filepath.Join(cfg.repo, "testdata/keys/cosign.key")
	b.cosignPub = filepath.Join(cfg.repo, "testdata/keys/cosign.pub")
	if p, err := exec.LookPath("cosign"); err == nil {
		b.cosign = p
	} else if p := filepath.Join(os.Getenv("HOME"), "go/bin/cosign"); fileExists(p) {
		b.cosign = p
	}
	return b
}

func (b *Bench) want(part string) bool { return len(b.cfg.only) == 0 || b.cfg.only[part] }

func (b *Bench) atExit(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanups = append(b.cleanups, f)
}

func (b *Bench) cleanup() {
	b.mu.Lock()
	fs := b.cleanups
	b.cleanups = nil
	b.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	if !b.cfg.keep {
		os.RemoveAll(b.cfg.work)
	}
}

func (b *Bench) done() {
	b.mu.Lock()
	b.over = true
	b.mu.Unlock()
}

func (b *Bench) finished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.over
}

func (b *Bench) add(r Row) {
	b.rows = append(b.rows, r)
	logf("%s: ours %s, theirs %s, ratio %s (%s) %s", r.Measure, r.Ours, r.Theirs, r.Ratio, r.Target, r.Result)
}

func (b *Bench) detail(format string, args ...any) {
	b.details = append(b.details, fmt.Sprintf(format, args...))
}

func (b *Bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (b *Bench) run() error {
	if err := os.MkdirAll(b.cfg.work, 0o755); err != nil {
		return err
	}
	// Quick mode keeps every output until the end (about 3 GiB); full mode
	// empties the trash after each comparison and waits for the freed
	// inodes to age before the next run that creates files.
	trash = &Trash{dir: filepath.Join(b.cfg.work, "trash"), keepAll: b.cfg.mode == "quick"}
	b.describeMachine()
	if b.want("limits") {
		if err := b.limits(); err != nil {
			return fmt.Errorf("limits: %w", err)
		}
	}
	if b.want("osv") {
		if b.cfg.osvDir == "" {
			b.note("OSV rows skipped: golang.org/x/vulndb could not be downloaded")
		} else if err := b.osv(); err != nil {
			return fmt.Errorf("osv: %w", err)
		}
	}
	if b.want("sync") {
		ran, err := b.syncScript()
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		b.syncScriptRan = ran
	}
	if b.want("vex") || (b.want("sync") && !b.syncScriptRan) {
		for _, size := range b.cfg.sizes {
			if err := b.vex(size); err != nil {
				return fmt.Errorf("vex %s: %w", humanSize(size), err)
			}
		}
	}
	if b.want("serve") {
		if err := b.serve(); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	if b.want("latency") {
		if err := b.latency(); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	return nil
}

func (b *Bench) describeMachine() {
	cpu, flags := "", ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if cpu == "" {
					cpu = strings.TrimSpace(v)
				}
			case "flags":
				if flags == "" {
					flags = v
				}
			}
		}
	}
	sha := "no"
	for _, f := range strings.Fields(flags) {
		if f == "sha_ni" {
			sha = "yes"
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		mem = strings.Join(strings.Fields(line)[1:], " ")
	}
	fsType := mountFS(b.cfg.work)
	b.machine = append(b.machine,
		fmt.Sprintf("nproc %d, CPU %s, sha_ni %s, memory %s", runtime.NumCPU(), cpu, sha, mem),
		fmt.Sprintf("kernel %s, scratch file system %s, %s", strings.TrimSpace(output("uname", "-r")), fsType, strings.TrimSpace(output("go", "version"))),
		fmt.Sprintf("load average at start: %s", loadavg()),
		"tools: "+strings.Join([]string{
			firstLine(output("sha256sum", "--version")), firstLine(output("tar", "--version")),
			firstLine(output("zstd", "--version")), strings.TrimSpace(firstLine(output("nginx", "-v"))),
			firstLine(output("wrk", "-v")), firstLine(output("curl", "--version")), b.cosignVersion(),
		}, "; "),
	)
}

func (b *Bench) cosignVersion() string {
	if b.cosign == "" {
		return "cosign not installed"
	}
	for _, line := range strings.Split(output(b.cosign, "version"), "\n") {
		if strings.HasPrefix(line, "GitVersion:") {
			return "cosign " + strings.TrimSpace(strings.TrimPrefix(line, "GitVersion:"))
		}
	}
	return "cosign"
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// output runs a command and returns its stdout and stderr.
func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return string(out)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// report renders the table, the machine, the notes and the raw samples.
func (b *Bench) report() string {
	var s strings.Builder
	fmt.Fprintf(&s, "## stellaops-cli mirror: benchmark (%s mode, %s)\n\n", b.cfg.mode, b.start.UTC().Format(time.RFC3339))
	for _, m := range b.machine {
		fmt.Fprintf(&s, "- %s\n", m)
	}
	fmt.Fprintf(&s, "- load average at end: %s; wall time of the whole run: %s\n", loadavg(), time.Since(b.start).Round(time.Second))
	fmt.Fprintf(&s, "- times are the median of %d runs, ours and theirs alternating (ABBA)%s; ratio = ours / theirs time unless the row says otherwise\n\n",
		b.cfg.runs, map[bool]string{true: " after one warm-up run each", false: ""}[b.cfg.warm])
	s.WriteString("| measure | ours | theirs | ratio | target | result | peak RSS ours / theirs | CPU s ours / theirs |\n")
	s.WriteString("| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |\n")
	for _, r := range b.rows {
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Measure, r.Ours, r.Theirs, r.Ratio, orDash(r.Target), orDash(r.Result), orDash(r.RSS), orDash(r.CPU))
	}
	if len(b.notes) > 0 {
		s.WriteString("\nNotes:\n")
		for _, n := range b.notes {
			fmt.Fprintf(&s, "- %s\n", n)
		}
	}
	if len(b.details) > 0 {
		s.WriteString("\nSamples (wall seconds, in run order) and other details:\n")
		for _, d := range b.details {
			fmt.Fprintf(&s, "- %s\n", d)
		}
	}
	pass, miss := 0, 0
	for _, r := range b.rows {
		switch r.Result {
		case "pass":
			pass++
		case "miss":
			miss++
		}
	}
	fmt.Fprintf(&s, "\n%d targets met, %d missed.\n", pass, miss)
	return s.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// mountFS returns the device and type of the file system holding p.
func mountFS(p string) string {
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "?"
	}
	best, out := -1, "?"
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best, out = len(mp), f[2]+" on "+f[0]
		}
	}
	return out
}

// generateOnly writes the data sets without measuring anything, for
// profiling one verb by hand.
func generateOnly(dir, sizes, copies, osvDir string) error {
	if sizes == "" {
		sizes = "100MiB"
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := parseSize(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		ds, err := makeVEX(filepath.Join(dir, "vex-"+humanSize(n)), n)
		if err != nil {
			return err
		}
		logf("%s: %d files, %s", ds.Dir, ds.Files, humanSize(ds.Bytes))
	}
	if osvDir == "" {
		return nil
	}
	for _, s := range strings.Split(copies, ",") {
		var c int
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d", &c); err != nil || c < 1 {
			return fmt.Errorf("bad -osv %q", copies)
		}
		ds, err := makeOSV(osvDir, filepath.Join(dir, fmt.Sprintf("osv-%dx", c)), c)
		if err != nil {
			return err
		}
		logf("%s: %d advisories, %s", ds.Dir, ds.Files, humanSize(ds.Bytes))
	}
	return nil
}
