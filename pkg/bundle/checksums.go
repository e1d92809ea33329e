package bundle

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// maxChecksumLine bounds one line of SHA256SUMS.
const maxChecksumLine = 64 << 10

// ParseChecksums reads "<hex>  <path>" lines (the sha256sum format).
func ParseChecksums(data []byte) (map[string]string, error) {
	out := map[string]string{}
	_, err := scanChecksums(bytes.NewReader(data), func(line int, name, sum string) error {
		if _, dup := out[name]; dup {
			return repeatedLine(line, name)
		}
		out[name] = sum
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanChecksums reads SHA256SUMS lines from r and calls fn with each line's
// number, name and digest (in lower case); an error from fn ends the scan.
// It returns the number of entries read.
func scanChecksums(r io.Reader, fn func(line int, name, sum string) error) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, maxChecksumLine), maxChecksumLine)
	n, entries := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		name, sum, err := parseChecksumLine(line, n)
		if err != nil {
			return entries, err
		}
		if err := fn(n, name, sum); err != nil {
			return entries, err
		}
		entries++
	}
	if err := sc.Err(); err != nil {
		return entries, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return entries, nil
}

// parseChecksumLine splits line n of SHA256SUMS into its name and digest.
func parseChecksumLine(line string, n int) (name, sum string, err error) {
	sum, name, ok := strings.Cut(line, "  ")
	if !ok {
		sum, name, ok = strings.Cut(line, " *")
	}
	if !ok || len(sum) != 64 {
		return "", "", fmt.Errorf("%w: line %d is not '<sha256>  <path>'", ErrMalformed, n)
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return "", "", fmt.Errorf("%w: line %d: sha256 is not hex", ErrMalformed, n)
	}
	return name, strings.ToLower(sum), nil
}

func repeatedLine(line int, name string) error {
	return fmt.Errorf("%w: line %d repeats %s", ErrMalformed, line, name)
}

// checkChecksums compares SHA256SUMS with mirror.json and the signed files.
// The file is read a line at a time and each line looked up in the file
// table; its disagreements are reported once the whole file has parsed,
// as a file that does not parse is reported as that alone.
func (v *verifier) checkChecksums() {
	r := v.r
	if !v.opts.VerifyChecksums {
		r.check(CheckChecksums, "skip", "--verify-checksums=false")
		return
	}
	f, err := v.fs.Open(ChecksumsFile)
	if err != nil {
		r.check(CheckChecksums, statusErr, "cannot read SHA256SUMS")
		return
	}
	defer f.Close()
	if st, ok := f.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Size() > MaxChecksumsSize {
			r.check(CheckChecksums, statusErr, "cannot read SHA256SUMS")
			return
		}
	}
	sc := &sumsCheck{v: v, top: map[string]string{}, topSeen: map[string]bool{}, unknown: map[string]bool{}, pending: &Report{}}
	// mirror.json and its envelope were hashed when read (an archive's
	// verify has dropped their bytes since).
	for name, sum := range map[string]string{ManifestFile: r.ManifestSHA256, EnvelopeFile: v.envelopeSHA256} {
		if sum != "" {
			sc.top[name] = sum
		} else if d, err := v.hashFile(name); err == nil {
			sc.top[name] = d.SHA256
		}
	}
	src := &countingReader{r: io.LimitReader(f, MaxChecksumsSize+1)}
	entries, perr := scanChecksums(src, sc.line)
	if perr != nil {
		_, _ = io.Copy(io.Discard, src) // a read error or excess further on still says "cannot read"
	}
	if src.err != nil || src.n > MaxChecksumsSize {
		r.check(CheckChecksums, statusErr, "cannot read SHA256SUMS")
		return
	}
	if perr != nil {
		r.problem(ChecksumsFile, CheckChecksums, perr, "", "")
		r.check(CheckChecksums, statusErr, perr.Error())
		return
	}
	problems := len(r.Problems)
	r.Problems = append(r.Problems, sc.pending.Problems...)
	sc.reportMissing()
	if len(r.Problems) > problems {
		r.check(CheckChecksums, statusErr, fmt.Sprintf("%d disagreement(s) with mirror.json", len(r.Problems)-problems))
	} else {
		r.check(CheckChecksums, statusPass, fmt.Sprintf("%d entries agree with mirror.json", entries))
	}
}

// sumsCheck is the state of one pass over SHA256SUMS.
type sumsCheck struct {
	v *verifier
	// top holds the digests of mirror.json and mirror.dsse.json (those
	// that could be read), which SHA256SUMS lists beside mirror.json's files.
	top     map[string]string
	topSeen map[string]bool
	// unknown are the names seen that are neither listed nor in top.
	unknown map[string]bool
	// pending collects the disagreements until the file has parsed.
	pending *Report
}

// line checks one entry of SHA256SUMS.
func (sc *sumsCheck) line(n int, name, sum string) error {
	t := sc.v.files
	if i, ok := t.find(name); ok {
		if t.marks[i]&markSummed != 0 {
			return repeatedLine(n, name)
		}
		t.marks[i] |= markSummed
		if f := &t.files[i]; !f.sumIs(sum) {
			sc.disagree(name, f.entry().SHA256, sum)
		}
		return nil
	}
	if want, ok := sc.top[name]; ok {
		if sc.topSeen[name] {
			return repeatedLine(n, name)
		}
		sc.topSeen[name] = true
		if want != sum {
			sc.disagree(name, want, sum)
		}
		return nil
	}
	if sc.unknown[name] {
		return repeatedLine(n, name)
	}
	sc.unknown[name] = true
	sc.pending.problem(ChecksumsFile, CheckChecksums, fmt.Errorf("%w: lists %s, which mirror.json does not", failure.ErrVerification, name), "", name)
	return nil
}

// disagree records that SHA256SUMS gives sum for name where want is right.
func (sc *sumsCheck) disagree(name, want, sum string) {
	sc.pending.problem(ChecksumsFile, CheckChecksums, fmt.Errorf("%w: entry for %s disagrees", ErrDigestMismatch, name), want, sum)
}

// reportMissing reports every listed file, and mirror.json and its
// envelope, that SHA256SUMS has no line for.
func (sc *sumsCheck) reportMissing() {
	t, r := sc.v.files, sc.v.r
	for i, f := range t.files {
		if t.marks[i]&markSummed == 0 {
			r.problem(ChecksumsFile, CheckChecksums, fmt.Errorf("%w: no entry for %s", ErrMissingFile, f.path), f.path, "")
		}
	}
	for _, name := range []string{ManifestFile, EnvelopeFile} {
		if _, ok := sc.top[name]; ok && !sc.topSeen[name] {
			r.problem(ChecksumsFile, CheckChecksums, fmt.Errorf("%w: no entry for %s", ErrMissingFile, name), name, "")
		}
	}
}

// countingReader counts the bytes read from r and keeps its first error
// other than io.EOF, so that a read error is told from a malformed line.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
