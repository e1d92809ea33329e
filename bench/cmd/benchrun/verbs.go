package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const mib = 1 << 20

// rssLimit is the peak RSS target of verify and import (issues 2, 3, 8, 10).
const rssLimit = 64 * mib

func fmtDur(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.3f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func fmtMiB(n int64) string {
	if n == 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/mib)
}

func rate(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / mib / d.Seconds()
}

func withRate(d time.Duration, bytes int64) string {
	if bytes <= 0 {
		return fmtDur(d)
	}
	return fmt.Sprintf("%s (%.0f MiB/s)", fmtDur(d), rate(bytes, d))
}

func passMiss(ok bool) string {
	if ok {
		return "pass"
	}
	return "miss"
}

func q(s string) string { return strconv.Quote(s) }

// shq quotes s for bash.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// timeTarget is a target on ours/theirs wall time.
type timeTarget struct {
	text string
	max  float64 // ratio must be <= max (0: no target)
}

// compareRow turns two series into a row; bytes (when > 0) adds throughput.
func (b *Bench) compareRow(measure string, so, st Series, bytes int64, t timeTarget) Row {
	ratio := float64(so.Median()) / float64(st.Median())
	r := Row{
		Measure: measure,
		Ours:    withRate(so.Median(), bytes),
		Theirs:  withRate(st.Median(), bytes),
		Ratio:   fmt.Sprintf("%.2f×", ratio),
		Target:  t.text,
		RSS:     fmt.Sprintf("%s / %s", fmtMiB(so.PeakRSS()), fmtMiB(st.PeakRSS())),
		CPU:     fmt.Sprintf("%.2f / %.2f", so.MedianCPU().Seconds(), st.MedianCPU().Seconds()),
	}
	if ratio < 1 {
		r.Ratio += fmt.Sprintf(" (%.1f× faster)", 1/ratio)
	}
	if t.max > 0 {
		r.Result = passMiss(ratio <= t.max)
	}
	b.detail("%s: ours [%s] spread %.0f%%; theirs [%s] spread %.0f%%; load %s",
		measure, so, so.Spread()*100, st, st.Spread()*100, loadavg())
	return r
}

func (b *Bench) cliCmd(label string, args ...string) Cmd {
	return Cmd{Label: label, Args: append([]string{b.cfg.cli, "-q", "mirror"}, args...)}
}

func (b *Bench) exportCmd(src, out string) Cmd {
	c := b.cliCmd("export", "export", "--source", src, "--out", out, "--key", b.key, "--created", b.created)
	c.Out = out
	return c
}

func (b *Bench) verifyCmd(path string) Cmd {
	return b.cliCmd("verify", "verify", "--bundle-path", path, "--trust-roots", b.pub)
}

func (b *Bench) importCmd(path, root string) Cmd {
	c := b.cliCmd("import", "import", "--bundle-path", path, "--export-root", root, "--trust-roots", b.pub)
	c.Out = root
	return c
}

// unshare runs cosign without network access when the kernel lets us (it
// otherwise tries to reach the public Sigstore infrastructure).
func (b *Bench) cosignPrefix() string {
	if exec.Command("unshare", "-n", "true").Run() == nil {
		return "unshare -n " + shq(b.cosign)
	}
	return shq(b.cosign)
}

// theirExport is what an operator does today: hash every file, tar the
// tree with the checksums, sign the checksums with cosign, and sync (the
// export fsyncs what it writes).
func (b *Bench) theirExport(src, tmp string) Cmd {
	script := fmt.Sprintf(`cd %s
find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum > %s/SHA256SUMS
tar -cf %s/bundle.tar -C %s . -C %s SHA256SUMS
`, shq(src), shq(tmp), shq(tmp), shq(src), shq(tmp))
	label := "tar + sha256sum + sync"
	if b.cosign != "" {
		script += fmt.Sprintf("COSIGN_PASSWORD=test-password %s sign-blob --key %s --tlog-upload=false --yes --output-signature %s/SHA256SUMS.sig %s/SHA256SUMS >/dev/null 2>&1\n",
			b.cosignPrefix(), shq(b.cosignKey), shq(tmp), shq(tmp))
		label = "tar + sha256sum + cosign sign-blob + sync"
	}
	script += "sync\n"
	c := Shell(label, script)
	c.Out, c.MkOut = tmp, true
	return c
}

// limits measures what the verbs are bounded by: SHA-256 in Go and in
// coreutils, and a write made durable with fsync.
func (b *Bench) limits() error {
	logf("limits: go test -bench crypto/sha256")
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", `^BenchmarkHash(8K|1M)$/^New$`, "-benchtime", "200ms", "-count", "3", "crypto/sha256")
	cmd.Dir = b.cfg.work
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -bench crypto/sha256: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`^BenchmarkHash(8K|1M)/New-\d+\s+\d+\s+[\d.]+ ns/op\s+([\d.]+) MB/s`)
	vals := map[string][]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			vals[m[1]] = append(vals[m[1]], v*1e6/mib)
		}
	}
	if len(vals["1M"]) == 0 {
		return fmt.Errorf("no BenchmarkHash1M result in:\n%s", out)
	}
	b.shaMBps = medianF(vals["1M"])
	b.detail("crypto/sha256 go test -bench MiB/s: 1M %v, 8K %v", round1(vals["1M"]), round1(vals["8K"]))

	// sha256sum over the same amount of data, in the page cache.
	p := filepath.Join(b.cfg.work, "sha-ref.bin")
	if err := writePseudoRandom(p, 256*mib); err != nil {
		return err
	}
	defer os.Remove(p)
	s, err := Repeat(Cmd{Label: "sha256sum", Args: []string{"sha256sum", p}, NoSync: true}, 3)
	if err != nil {
		return err
	}
	b.shaSumMB = rate(256*mib, s.Median())
	b.add(Row{
		Measure: "limit: SHA-256, one core (Go crypto/sha256 `go test -bench Hash1M` vs `sha256sum` of 256 MiB in the page cache)",
		Ours:    fmt.Sprintf("%.0f MiB/s", b.shaMBps), Theirs: fmt.Sprintf("%.0f MiB/s", b.shaSumMB),
		Ratio:  fmt.Sprintf("%.1f× faster", b.shaMBps/b.shaSumMB),
		Target: fmt.Sprintf("reference; %d cores → %.0f MiB/s", runtimeCPUs(), b.shaMBps*float64(runtimeCPUs())),
		CPU:    fmt.Sprintf("— / %.2f", s.MedianCPU().Seconds()),
	})

	dd := filepath.Join(b.cfg.work, "dd.bin")
	w, err := Repeat(Shell("dd", fmt.Sprintf("dd if=/dev/zero of=%s bs=1M count=256 conv=fsync status=none; rm -f %s", shq(dd), shq(dd))), 3)
	if err != nil {
		return err
	}
	b.writeMBps = rate(256*mib, w.Median())
	b.add(Row{
		Measure: "limit: write 256 MiB and fsync (`dd conv=fsync`)",
		Ours:    "—", Theirs: fmt.Sprintf("%.0f MiB/s", b.writeMBps), Ratio: "—",
		Target: "reference for export and import (durable writes)",
	})
	return nil
}

func runtimeCPUs() int {
	n, _ := strconv.Atoi(strings.TrimSpace(output("nproc")))
	return max(n, 1)
}

func writePseudoRandom(p string, n int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var x uint64 = 0x9e3779b97f4a7c15
	buf := make([]byte, 8)
	for i := int64(0); i < n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := range 8 {
			buf[j] = byte(x >> (8 * j))
		}
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round1(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*10+0.5)) / 10
	}
	return out
}

// osv runs export against tar + sha256sum + cosign on vulndb, then export,
// verify and import at 1×, 2× and 4× the advisories, with a line fit.
func (b *Bench) osv() error {
	type set struct {
		ds             Dataset
		bundle, root   string
		bundleBytes    int64
		export, verify Series
		imp            Series
	}
	var sets []*set
	for _, c := range b.cfg.osvCopies {
		dir := filepath.Join(b.cfg.work, fmt.Sprintf("osv-%dx", c))
		logf("data: OSV %d× in %s", c, dir)
		ds, err := makeOSV(b.cfg.osvDir, filepath.Join(dir, "src"), c)
		if err != nil {
			return err
		}
		sets = append(sets, &set{ds: ds, bundle: filepath.Join(dir, "bundle"), root: filepath.Join(dir, "root")})
	}
	first := sets[0]
	// Export of vulndb against the tools of today.
	logf("osv: export vs tar + sha256sum")
	so, st, err := Compare(b.exportCmd(first.ds.Dir, first.bundle),
		b.theirExport(first.ds.Dir, filepath.Join(b.cfg.work, "osv-their")), b.cfg.runs, b.cfg.warm)
	if err != nil {
		return err
	}
	b.add(b.compareRow(fmt.Sprintf("export: vulndb OSV %d× (%d advisories, %s) vs %s", b.cfg.osvCopies[0], first.ds.Files, humanSize(first.ds.Bytes), st.Label),
		so, st, first.ds.Bytes, timeTarget{text: "report (issue 2)"}))
	trash.Remove(filepath.Join(b.cfg.work, "osv-their"))

	for _, s := range sets {
		if _, err := Run(b.exportCmd(s.ds.Dir, s.bundle)); err != nil {
			return err
		}
		s.bundleBytes, _, _ = dirSize(s.bundle)
	}
	logf("osv: scaling, %d rounds over %v", b.cfg.runs, b.cfg.osvCopies)
	for range b.cfg.runs {
		for _, s := range sets {
			x, err := Run(b.exportCmd(s.ds.Dir, s.bundle))
			if err != nil {
				return err
			}
			s.export.Samples = append(s.export.Samples, x)
			if x, err = Run(b.verifyCmd(s.bundle)); err != nil {
				return err
			}
			s.verify.Samples = append(s.verify.Samples, x)
			if x, err = Run(b.importCmd(s.bundle, s.root)); err != nil {
				return err
			}
			s.imp.Samples = append(s.imp.Samples, x)
		}
	}
	trash.Empty()
	for _, verb := range []string{"export", "verify", "import"} {
		var xs, ys []float64
		var times, rss, factors []string
		maxStep, worstRSS := 0.0, int64(0)
		for i, s := range sets {
			ser := map[string]Series{"export": s.export, "verify": s.verify, "import": s.imp}[verb]
			xs = append(xs, float64(s.ds.Files))
			ys = append(ys, ser.Median().Seconds())
			times = append(times, fmt.Sprintf("%.2f", ser.Median().Seconds()))
			rss = append(rss, fmt.Sprintf("%.0f", float64(ser.PeakRSS())/mib))
			factors = append(factors, fmt.Sprintf("%d×", b.cfg.osvCopies[i]))
			worstRSS = max(worstRSS, ser.PeakRSS())
			if i > 0 {
				step := ys[i] / ys[i-1] * float64(b.cfg.osvCopies[i-1]) / float64(b.cfg.osvCopies[i])
				maxStep = max(maxStep, step)
			}
			b.detail("scaling %s OSV %d× (%d advisories, bundle %s): [%s]", verb, b.cfg.osvCopies[i], s.ds.Files, humanSize(s.bundleBytes), ser)
		}
		a, slope, r2 := LineFit(xs, ys)
		ok := maxStep <= 1.10 && r2 >= 0.95
		target := "each doubling at most doubles the time (+10%), R² ≥ 0.95"
		if verb != "export" {
			target += "; RSS ≤ 64 MiB"
			ok = ok && worstRSS <= rssLimit
		}
		b.add(Row{
			Measure: fmt.Sprintf("scaling: %s, OSV %s (%s advisories)", verb, strings.Join(factors, "/"), joinInts(sets, func(s *set) int { return s.ds.Files })),
			Ours:    strings.Join(times, " / ") + " s",
			Theirs:  fmt.Sprintf("fit t = %.3f s + %.1f ms per 1k advisories", a, slope*1000*1000),
			Ratio:   fmt.Sprintf("R² %.3f; worst step %.2f× of linear", r2, maxStep),
			Target:  target,
			Result:  passMiss(ok),
			RSS:     strings.Join(rss, " / ") + " MiB",
		})
	}
	for _, s := range sets[1:] {
		trash.Remove(filepath.Dir(s.bundle))
	}
	// Keep the 1× root: the latency test serves it.
	trash.Remove(first.ds.Dir)
	return nil
}

func joinInts[T any](xs []T, f func(T) int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(f(x))
	}
	return strings.Join(parts, "/")
}

// vexSource returns the VEX source tree of size: the one -data names when
// it holds vex-SIZE (a symbolic link to the tree will do), otherwise one
// generated below dir.
func (b *Bench) vexSource(dir string, size int64) (Dataset, error) {
	if b.cfg.data != "" {
		src, err := filepath.EvalSymlinks(filepath.Join(b.cfg.data, "vex-"+humanSize(size)))
		if err != nil {
			return Dataset{}, fmt.Errorf("-data: %w", err)
		}
		n, files, err := dirSize(src)
		if err != nil {
			return Dataset{}, fmt.Errorf("-data: %w", err)
		}
		if files == 0 {
			return Dataset{}, fmt.Errorf("-data: %s holds no files (make it with benchrun -generate)", src)
		}
		logf("data: %s of OpenVEX from %s (%d files)", humanSize(n), src, files)
		return Dataset{Name: "vex-" + humanSize(size), Dir: src, Files: files, Bytes: n}, nil
	}
	logf("data: %s of OpenVEX in %s", humanSize(size), dir)
	return makeVEX(filepath.Join(dir, "src"), size)
}

// vex runs every file-bound comparison on generated OpenVEX data of size bytes.
func (b *Bench) vex(size int64) error {
	dir := filepath.Join(b.cfg.work, "vex-"+humanSize(size))
	defer trash.Remove(dir)
	ds, err := b.vexSource(dir, size)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("VEX %s (%d files)", humanSize(size), ds.Files)
	n, warm := b.cfg.runs, b.cfg.warm
	// Keeping every run's output until the end of each comparison needs
	// room for 2×(runs+1) copies; without it, outputs are deleted at once.
	if need := size * int64(2*n+3); need > freeBytes(b.cfg.work)/2 {
		trash.immediate = true
		defer func() { trash.immediate = false }()
		b.note("%s: not enough free space to keep outputs until the end of each comparison; each run's output is deleted just before the next run, which on ext4 without a journal slows the runs that create files (ours and theirs alike)", name)
	}
	bundle := filepath.Join(dir, "bundle")
	archive := filepath.Join(dir, "bundle.tar.zst")
	tmp := filepath.Join(dir, "theirs")

	if b.want("vex") {
		logf("%s: export", name)
		so, st, err := Compare(b.exportCmd(ds.Dir, bundle), b.theirExport(ds.Dir, tmp), n, warm)
		if err != nil {
			return err
		}
		b.add(b.compareRow(fmt.Sprintf("export: %s vs %s", name, st.Label), so, st, ds.Bytes, timeTarget{text: "report"}))
	}
	// The bundle and its archive, written by one export (untimed).
	mk := b.exportCmd(ds.Dir, bundle)
	if b.want("vex") {
		mk.Args = append(mk.Args, "--archive", archive)
		os.Remove(archive)
	}
	x, err := Run(mk)
	if err != nil {
		return err
	}
	b.detail("%s: export --out --archive took %s, peak RSS %s", name, fmtDur(x.Wall), fmtMiB(x.RSS))
	bundleBytes, bundleFiles, err := dirSize(bundle)
	if err != nil {
		return err
	}
	if b.cfg.data == "" {
		trash.Remove(ds.Dir)
	}
	if !b.want("vex") {
		return b.syncBench(name, bundle, bundleBytes)
	}
	archiveBytes := fileSize(archive)
	b.detail("%s: bundle %s in %d files; archive %s (%.1f:1)", name, humanSize(bundleBytes), bundleFiles, humanSize(archiveBytes), float64(bundleBytes)/float64(archiveBytes))

	// Decompression and read limits on this data.
	zs, err := Repeat(Cmd{Label: "zstd -dc", Args: []string{"bash", "-c", "zstd -dc " + shq(archive) + " > /dev/null"}, NoSync: true}, n)
	if err != nil {
		return err
	}
	rd, err := Repeat(Cmd{Label: "cat", Args: []string{"bash", "-c", "find " + shq(bundle) + " -type f -print0 | xargs -0 cat > /dev/null"}, NoSync: true}, n)
	if err != nil {
		return err
	}
	b.add(Row{
		Measure: fmt.Sprintf("limit: %s: read the folder (`cat`), decompress the archive (`zstd -dc`, 1 thread)", name),
		Ours:    "—",
		Theirs:  fmt.Sprintf("read %.0f MiB/s; zstd -dc %.0f MiB/s", rate(bundleBytes, rd.Median()), rate(bundleBytes, zs.Median())),
		Ratio:   "—", Target: "reference for verify and import",
		CPU: fmt.Sprintf("— / %.2f, %.2f", rd.MedianCPU().Seconds(), zs.MedianCPU().Seconds()),
	})
	zstdRate := rate(bundleBytes, zs.Median())

	logf("%s: verify folder", name)
	sumCheck := Shell("sha256sum -c", "cd "+shq(bundle)+"\nsha256sum -c --quiet SHA256SUMS")
	so, st, err := Compare(b.verifyCmd(bundle), sumCheck, n, warm)
	if err != nil {
		return err
	}
	row := b.compareRow(fmt.Sprintf("verify folder: %s vs `sha256sum -c SHA256SUMS`", name), so, st, bundleBytes,
		timeTarget{text: "≥ 4× throughput (≤ 0.25×)", max: 0.25})
	row.Ratio += b.ofLimit(so.Median(), bundleBytes, b.shaMBps*float64(runtimeCPUs()), "SHA-256 on all cores")
	b.add(row)
	verifyFolder := so

	if b.cosign != "" {
		var blobs []string
		for _, sig := range globAll(filepath.Join(bundle, "mirror", "*", "bundle.json.sig")) {
			blobs = append(blobs, fmt.Sprintf("%s verify-blob --key %s --signature %s --insecure-ignore-tlog=true %s >/dev/null 2>&1",
				b.cosignPrefix(), shq(b.pub), shq(sig), shq(strings.TrimSuffix(sig, ".sig"))))
		}
		theirs := Shell("sha256sum -c + cosign verify-blob", "cd "+shq(bundle)+"\nsha256sum -c --quiet SHA256SUMS\n"+strings.Join(blobs, "\n"))
		so, st, err := Compare(b.verifyCmd(bundle), theirs, n, warm)
		if err != nil {
			return err
		}
		b.add(b.compareRow(fmt.Sprintf("verify folder: %s vs `sha256sum -c` + `cosign verify-blob`", name), so, st, bundleBytes, timeTarget{text: "report"}))
	} else {
		b.add(Row{Measure: fmt.Sprintf("verify folder: %s vs `sha256sum -c` + `cosign verify-blob`", name), Ours: "—", Theirs: "cosign not installed", Ratio: "—"})
	}

	logf("%s: verify archive", name)
	untar := Shell("tar --zstd -xf", fmt.Sprintf("tar --zstd -xf %s -C %s", shq(archive), shq(tmp)))
	untar.Out, untar.MkOut = tmp, true
	so, st, err = Compare(b.verifyCmd(archive), untar, n, warm)
	if err != nil {
		return err
	}
	row = b.compareRow(fmt.Sprintf("verify .tar.zst: %s vs `tar --zstd -xf` into a folder", name), so, st, bundleBytes, timeTarget{text: "≤ 1.0×", max: 1.0})
	row.Ratio += b.ofLimit(so.Median(), bundleBytes, min(zstdRate, b.shaMBps), "min(zstd -dc, SHA-256 1 core)")
	b.add(row)
	verifyArchive := so

	logf("%s: import folder", name)
	root := filepath.Join(dir, "root")
	cp := Shell("cp -r + sync", fmt.Sprintf("cp -r %s %s/b\nsync", shq(bundle), shq(tmp)))
	cp.Out, cp.MkOut = tmp, true
	so, st, err = Compare(b.importCmd(bundle, root), cp, n, warm)
	if err != nil {
		return err
	}
	row = b.compareRow(fmt.Sprintf("import folder: %s vs `cp -r` + `sync`", name), so, st, bundleBytes, timeTarget{text: "≤ 1.1×", max: 1.1})
	row.Ratio += b.ofLimit(so.Median(), bundleBytes, b.writeMBps, "dd conv=fsync")
	b.add(row)
	importFolder := so

	cpSum := Shell("cp -r + sync + sha256sum -c", fmt.Sprintf("cp -r %s %s/b\nsync\ncd %s/b\nsha256sum -c --quiet SHA256SUMS", shq(bundle), shq(tmp), shq(tmp)))
	cpSum.Out, cpSum.MkOut = tmp, true
	so, st, err = Compare(b.importCmd(bundle, root), cpSum, n, warm)
	if err != nil {
		return err
	}
	b.add(b.compareRow(fmt.Sprintf("import folder: %s vs `cp -r` + `sync` + `sha256sum -c`", name), so, st, bundleBytes, timeTarget{text: "< 1.0× (one pass, issue 3)", max: 0.999}))
	importFolder.Samples = append(importFolder.Samples, so.Samples...)

	logf("%s: import archive", name)
	untarSync := Shell("tar --zstd -xf + sync", fmt.Sprintf("tar --zstd -xf %s -C %s\nsync", shq(archive), shq(tmp)))
	untarSync.Out, untarSync.MkOut = tmp, true
	so, st, err = Compare(b.importCmd(archive, root), untarSync, n, warm)
	if err != nil {
		return err
	}
	b.add(b.compareRow(fmt.Sprintf("import .tar.zst: %s vs `tar --zstd -xf` + `sync`", name), so, st, bundleBytes, timeTarget{text: "≤ 1.2× (issue 8)", max: 1.2}))
	importArchive := so
	trash.Remove(tmp)

	worst := max(verifyFolder.PeakRSS(), verifyArchive.PeakRSS(), importFolder.PeakRSS(), importArchive.PeakRSS())
	b.add(Row{
		Measure: fmt.Sprintf("peak RSS: verify and import, %s", name),
		Ours: fmt.Sprintf("verify %s, verify .tar.zst %s, import %s, import .tar.zst %s",
			fmtMiB(verifyFolder.PeakRSS()), fmtMiB(verifyArchive.PeakRSS()), fmtMiB(importFolder.PeakRSS()), fmtMiB(importArchive.PeakRSS())),
		Theirs: "—", Ratio: "—", Target: "≤ 64 MiB", Result: passMiss(worst <= rssLimit), RSS: fmtMiB(worst),
	})
	return b.syncBench(name, bundle, bundleBytes)
}

// ofLimit says how close a run came to the throughput a limit allows.
func (b *Bench) ofLimit(d time.Duration, bytes int64, limitMBps float64, what string) string {
	if limitMBps <= 0 || d <= 0 {
		return ""
	}
	return fmt.Sprintf("; %.0f%% of %s", 100*rate(bytes, d)/limitMBps, what)
}

func globAll(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	return m
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// freeBytes is the space available below dir.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}
