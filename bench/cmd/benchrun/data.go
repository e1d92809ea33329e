package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Dataset is a source tree for mirror export.
type Dataset struct {
	Name  string
	Dir   string // the --source folder
	Files int
	Bytes int64
}

// makeOSV writes a source tree holding every OSV advisory of vulndb,
// copies times over: the first copy as is, the others with renamed ids
// (GO-2024-1234 becomes GO-R2-2024-1234) so that every id stays unique.
func makeOSV(osvDir, dir string, copies int) (Dataset, error) {
	ds := Dataset{Name: fmt.Sprintf("osv-%dx", copies), Dir: dir}
	entries, err := os.ReadDir(osvDir)
	if err != nil {
		return ds, err
	}
	adv := filepath.Join(dir, "osv", "advisories")
	if err := os.MkdirAll(adv, 0o755); err != nil {
		return ds, err
	}
	if err := os.WriteFile(filepath.Join(dir, "osv", "domain.json"), []byte(`{"displayName": "Go vulnerability database (OSV)"}`+"\n"), 0o644); err != nil {
		return ds, err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || !strings.HasPrefix(name, "GO-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(osvDir, name))
		if err != nil {
			return ds, err
		}
		id := strings.TrimSuffix(name, ".json")
		for c := 1; c <= copies; c++ {
			out, outName := data, name
			if c > 1 {
				nid := fmt.Sprintf("GO-R%d-%s", c, strings.TrimPrefix(id, "GO-"))
				old := []byte(fmt.Sprintf(`"id": %q`, id))
				if !bytes.Contains(data, old) {
					return ds, fmt.Errorf("%s: no %s to rename", name, old)
				}
				out = bytes.Replace(data, old, []byte(fmt.Sprintf(`"id": %q`, nid)), 1)
				outName = nid + ".json"
			}
			if err := os.WriteFile(filepath.Join(adv, outName), out, 0o644); err != nil {
				return ds, err
			}
			ds.Files++
			ds.Bytes += int64(len(out))
		}
	}
	if ds.Files == 0 {
		return ds, fmt.Errorf("no GO-*.json advisories in %s", osvDir)
	}
	return ds, nil
}

// makeVEX writes OpenVEX documents totalling about size bytes into one
// domain: a quarter of the bytes as many small documents (2 KiB to 64 KiB,
// about 32 KiB on average) and the rest as four large ones.
func makeVEX(dir string, size int64) (Dataset, error) {
	ds := Dataset{Name: "vex-" + humanSize(size), Dir: dir}
	base := filepath.Join(dir, "vex")
	for _, d := range []string{"advisories", "vex/openvex/small", "vex/openvex/large"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return ds, err
		}
	}
	if err := os.WriteFile(filepath.Join(base, "domain.json"), []byte(`{"displayName": "VEX statements (generated)"}`+"\n"), 0o644); err != nil {
		return ds, err
	}
	rng := rand.New(rand.NewPCG(uint64(size), 10))
	g := &vexGen{rng: rng}
	small := size / 4
	var written int64
	for i := 0; written < small; i++ {
		// Log-uniform between 2 KiB and 64 KiB.
		n := int64(2048 * (1 << rng.IntN(6)))
		n += rng.Int64N(n)
		p := filepath.Join(base, "vex/openvex/small", fmt.Sprintf("product-%06d.json", i))
		w, err := g.write(p, fmt.Sprintf("small-%06d", i), n)
		if err != nil {
			return ds, err
		}
		written += w
		ds.Files++
	}
	large := (size - written) / 4
	for i := range 4 {
		p := filepath.Join(base, "vex/openvex/large", fmt.Sprintf("platform-%d.json", i))
		w, err := g.write(p, fmt.Sprintf("large-%d", i), large)
		if err != nil {
			return ds, err
		}
		written += w
		ds.Files++
	}
	ds.Bytes = written
	return ds, nil
}

type vexGen struct {
	rng *rand.Rand
}

var (
	vexStatus = []string{"not_affected", "not_affected", "not_affected", "fixed", "affected", "under_investigation"}
	vexJust   = []string{"component_not_present", "vulnerable_code_not_present", "vulnerable_code_not_in_execute_path",
		"vulnerable_code_cannot_be_controlled_by_adversary", "inline_mitigations_already_exist"}
	vexEco = []string{"golang", "npm", "pypi", "maven", "deb", "rpm", "oci"}
)

// write writes one OpenVEX document of at least size bytes.
func (g *vexGen) write(path, id string, size int64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	cw := &countWriter{w: w}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(g.rng.IntN(86400*300)) * time.Second)
	fmt.Fprintf(cw, "{\n  \"@context\": \"https://openvex.dev/ns/v0.2.0\",\n  \"@id\": \"https://vex.stellaops.example/docs/%s\",\n"+
		"  \"author\": \"StellaOps Excititor\",\n  \"role\": \"Document Creator\",\n  \"timestamp\": %q,\n  \"version\": 1,\n  \"statements\": [",
		id, ts.Format(time.RFC3339))
	for i := 0; cw.n < size; i++ {
		if i > 0 {
			cw.WriteString(",")
		}
		g.statement(cw, ts)
	}
	cw.WriteString("\n  ]\n}\n")
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	return cw.n, f.Close()
}

func (g *vexGen) statement(w *countWriter, ts time.Time) {
	r := g.rng
	eco := vexEco[r.IntN(len(vexEco))]
	status := vexStatus[r.IntN(len(vexStatus))]
	fmt.Fprintf(w, "\n    {\n      \"vulnerability\": {\"name\": \"CVE-%d-%d\"},\n      \"products\": [\n", 2018+r.IntN(9), 1000+r.IntN(60000))
	np := 1 + r.IntN(3)
	for j := range np {
		sep := ","
		if j == np-1 {
			sep = ""
		}
		fmt.Fprintf(w, "        {\"@id\": \"pkg:%s/vendor%d/component-%x@%d.%d.%d\"}%s\n", eco, r.IntN(500), r.Uint32()&0xffffff, r.IntN(10), r.IntN(30), r.IntN(100), sep)
	}
	fmt.Fprintf(w, "      ],\n      \"status\": %q", status)
	switch status {
	case "not_affected":
		fmt.Fprintf(w, ",\n      \"justification\": %q", vexJust[r.IntN(len(vexJust))])
	case "affected":
		fmt.Fprintf(w, ",\n      \"action_statement\": \"Upgrade to %d.%d.%d or later\"", r.IntN(10), r.IntN(30), r.IntN(100))
	}
	fmt.Fprintf(w, ",\n      \"timestamp\": %q\n    }", ts.Add(time.Duration(r.IntN(86400))*time.Second).Format(time.RFC3339))
}

type countWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) WriteString(s string) {
	n, _ := c.w.WriteString(s)
	c.n += int64(n)
}

// humanSize formats a size as 100MiB, 1GiB, 8GiB.
func humanSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// parseSize reads 100M, 100MiB, 1G, 8GiB.
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "IB"), "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, strings.TrimSuffix(t, "K")
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, strings.TrimSuffix(t, "M")
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, strings.TrimSuffix(t, "G")
	}
	var n int64
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// dirSize returns the bytes and regular files below dir.
func dirSize(dir string) (int64, int, error) {
	var n int64
	files := 0
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
			files++
		}
		return nil
	})
	return n, files, err
}
