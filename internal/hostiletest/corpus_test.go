//go:build unix

package hostiletest

import (
	"archive/tar"
	"bufio"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stellaops-cli/internal/testutil"
)

// hostileCase is one line of testdata/hostile/INDEX.tsv.
type hostileCase struct {
	name, form, path          string
	verify, imp               int
	roots, seed, seedRoots    string
	args                      []string
	verifyMsg, importMsg, why string
}

func loadIndex(t testing.TB) []hostileCase {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []hostileCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c := strings.Split(line, "\t")
		if len(c) != 12 {
			t.Fatalf("INDEX.tsv: %d fields in %q", len(c), line)
		}
		opt := func(s string) string {
			if s == "-" {
				return ""
			}
			return s
		}
		hc := hostileCase{name: c[0], form: c[1], path: c[2], verify: atoi(t, c[3]), imp: atoi(t, c[4]),
			roots: c[5], seed: c[6], seedRoots: opt(c[7]), verifyMsg: opt(c[9]), importMsg: opt(c[10]), why: c[11]}
		if a := opt(c[8]); a != "" {
			hc.args = strings.Fields(a)
		}
		if hc.seedRoots == "" {
			hc.seedRoots = hc.roots
		}
		cases = append(cases, hc)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// bundleArg prepares the case's bundle and returns the --bundle-path
// value and what to pipe to standard input.
func (c hostileCase) bundleArg(t *testing.T) (string, []byte) {
	t.Helper()
	switch c.form {
	case "dir", "archive":
		return abs(t, c.path), nil
	case "stdin":
		data, err := os.ReadFile(abs(t, c.path))
		if err != nil {
			t.Fatal(err)
		}
		return "-", data
	case "unpacked":
		dir := filepath.Join(t.TempDir(), "bundle")
		unpackRaw(t, abs(t, c.path), dir)
		return dir, nil
	}
	t.Fatalf("unknown form %q", c.form)
	return "", nil
}

// TestCorpus runs every case of testdata/hostile through mirror verify and
// mirror import: each must exit with the status INDEX.tsv gives and print
// its message, and a failed import must leave the export root exactly as
// it was.
func TestCorpus(t *testing.T) {
	cases := loadIndex(t)
	if len(cases) < 40 {
		t.Fatalf("only %d cases in the corpus", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bundlePath, stdin := c.bundleArg(t)
			common := append([]string{"--bundle-path", bundlePath, "--trust-roots", abs(t, c.roots), "--now", now.Format(time.RFC3339)}, c.args...)
			if c.verify >= 0 {
				r := runCLI(t, stdin, nil, append([]string{"mirror", "verify"}, common...)...)
				checkRun(t, "verify", r, c.verify, c.verifyMsg)
			}
			if c.imp >= 0 {
				root := filepath.Join(t.TempDir(), "root")
				seedRoot(t, root, c.seed, c.seedRoots)
				before := fingerprint(t, root)
				prev := checkConsistent(t, root, c.seedRoots, seedNow)
				r := runCLI(t, stdin, nil, append([]string{"mirror", "import", "--export-root", root}, common...)...)
				checkRun(t, "import", r, c.imp, c.importMsg)
				if r.code != 0 {
					if after := fingerprint(t, root); after != before {
						t.Errorf("failed import changed the export root:\n%s", testutil.Diff(before, after))
					}
					if got := checkConsistent(t, root, c.seedRoots, seedNow); got != prev {
						t.Errorf("latest -> %q after a failed import, was %q", got, prev)
					}
				} else {
					checkConsistent(t, root, c.roots, now)
				}
			}
		})
	}
}

func checkRun(t *testing.T, what string, r result, want int, msg string) {
	t.Helper()
	if r.code != want {
		t.Errorf("%s: exit status %d, want %d\n%s", what, r.code, want, clip(r.output))
		return
	}
	if msg != "" && !strings.Contains(r.output, msg) {
		t.Errorf("%s: output does not contain %q:\n%s", what, msg, clip(r.output))
	}
	if want != 0 && !strings.Contains(r.output, "stellaops-cli: error: ") {
		t.Errorf("%s: exit %d without an error line:\n%s", what, want, clip(r.output))
	}
	// Names from the bundle must not reach the terminal raw.
	for _, c := range r.output {
		if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || (c >= 0x80 && c <= 0x9f) {
			t.Errorf("%s: output holds the control character %U:\n%q", what, c, clip(r.output))
			break
		}
	}
	if !utf8.ValidString(r.output) {
		t.Errorf("%s: output is not valid UTF-8:\n%q", what, clip(r.output))
	}
}

// unpackRaw writes the entries of a .tar.zst/.tar.gz into dir as they are:
// symbolic links, hard links within dir, FIFOs and names Go's os.Root
// would refuse are made with plain system calls. Only names that stay
// inside dir are written; it is for making hostile folders in a test's
// temporary directory.
func unpackRaw(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader
	if strings.HasSuffix(archive, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = z
	} else {
		z, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		r = z
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(r)
	symlinkDirs := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			t.Fatalf("unpack %s: %v", archive, err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if name == "" || path.IsAbs(name) || strings.Contains("/"+name+"/", "/../") {
			t.Fatalf("unpack %s: refusing to write %q", archive, hdr.Name)
		}
		skip := false
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			skip = skip || symlinkDirs[d]
		}
		if skip {
			continue // below a symbolic link: the link is the case
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			if _, ok := hdr.PAXRecords["GNU.sparse.realsize"]; ok {
				// A sparse file: holes only, of the size the archive claims.
				var fh *os.File
				if fh, err = os.Create(p); err == nil {
					err = errors.Join(fh.Truncate(hdr.Size), fh.Close())
				}
				break
			}
			var data []byte
			if data, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, data, 0o644)
			}
		case tar.TypeSymlink:
			symlinkDirs[name] = true
			err = os.Symlink(hdr.Linkname, p)
		case tar.TypeLink:
			if path.IsAbs(hdr.Linkname) || strings.Contains("/"+hdr.Linkname+"/", "/../") {
				t.Fatalf("unpack %s: hard link to %q", archive, hdr.Linkname)
			}
			err = os.Link(filepath.Join(dir, filepath.FromSlash(hdr.Linkname)), p)
		case tar.TypeFifo:
			err = syscall.Mkfifo(p, 0o644)
		default:
			t.Fatalf("unpack %s: entry %q of type %q", archive, hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			t.Fatalf("unpack %s: %v", archive, err)
		}
	}
}
