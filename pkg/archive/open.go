package archive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/failure"
)

const (
	// maxPartsManifestSize bounds NAME.parts.json and its envelope.
	maxPartsManifestSize = 16 << 20
	// maxParts bounds the number of parts a manifest may list.
	maxParts       = 100000
	readBufferSize = 256 << 10
)

var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// VerifyFunc checks a DSSE envelope against the trust roots and returns its
// payload. payloadType is the type the caller expects (PartsPayloadType);
// the function must refuse an envelope of any other type.
type VerifyFunc func(payloadType string, envelope []byte) (payload []byte, err error)

// OpenOptions controls Open.
type OpenOptions struct {
	// VerifyParts verifies the DSSE envelope of a parts manifest. It is
	// required to open a split set unless SkipPartsSignature is set.
	VerifyParts VerifyFunc
	// SkipPartsSignature accepts a parts manifest without checking its
	// signature (for --verify-dsse=false). The parts are still checked
	// against it; the bundle's own mirror.json signature is unaffected.
	SkipPartsSignature bool
}

// Source is an opened archive, ready for one pass of Walk or Extract.
type Source struct {
	// Path is the path Open was given.
	Path string
	// Compression is "zstd" or "gzip", detected from the stream's magic bytes.
	Compression string
	// Parts is the verified parts manifest of a split set, else nil.
	Parts *PartsManifest
	// PartsSigned reports that the parts manifest's signature was verified.
	PartsSigned bool

	display string
	raw     *bufio.Reader
	rec     *errRecorder
	closers []io.Closer
	limits  Limits
	walked  bool

	// state of the current Walk
	entries   int64
	bytes     int64
	current   string
	limitErr  error
	consumed  int64
	lastBlock [blockSize]byte
}

// Close releases the files behind the source.
func (s *Source) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// Open opens any archive form of a bundle: a .tar.zst or .tar.gz file, a
// parts manifest NAME.parts.json (or its envelope NAME.parts.dsse.json),
// any part NAME.part-NNNN of a split set (the manifest is looked up beside
// it), NAME itself where only its split set exists, or "-" for stdin. The compression is detected from magic bytes, so
// on stdin a plain concatenation of parts reads as the archive.
//
// For a split set, Open verifies the parts manifest's envelope before
// trusting it, then checks that every part is present with the listed size
// and SHA-256 and that no unlisted part lies beside them, reporting every
// problem at once in a *PartsError; only then is the archive readable.
// Unreadable paths are ErrUsage errors, bad content ErrVerification ones.
func Open(ctx context.Context, path string, stdin io.Reader, opts OpenOptions) (*Source, error) {
	if path == "-" {
		if stdin == nil {
			return nil, failure.Usagef("--bundle-path -: no standard input")
		}
		return newSource(path, "standard input", stdin, nil, false)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	switch {
	case strings.HasSuffix(base, PartsEnvelopeSuffix) && len(base) > len(PartsEnvelopeSuffix):
		return openSplit(ctx, path, dir, strings.TrimSuffix(base, PartsEnvelopeSuffix), opts)
	case strings.HasSuffix(base, PartsManifestSuffix) && len(base) > len(PartsManifestSuffix):
		return openSplit(ctx, path, dir, strings.TrimSuffix(base, PartsManifestSuffix), opts)
	}
	if archive, _, ok := splitPartName(base); ok {
		return openSplit(ctx, path, dir, archive, opts)
	}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// NAME itself may exist only as a split set.
		for _, alt := range []string{path + PartsManifestSuffix, path + PartsEnvelopeSuffix, partName(path, 1)} {
			if _, serr := os.Stat(alt); serr == nil {
				return openSplit(ctx, alt, dir, base, opts)
			}
		}
	}
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("open archive: %w", err))
	}
	if info.IsDir() {
		return nil, failure.Usagef("%s is a folder, not an archive", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("open archive: %w", err))
	}
	_, nameErr := ArchiveFormatFromName(base)
	s, err := newSource(path, path, f, f, nameErr == nil)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// newSource wraps r and detects its compression. archiveNamed tells whether
// the operator's file name promised an archive, which makes unknown content
// corrupt rather than a wrong path.
func newSource(path, display string, r io.Reader, c io.Closer, archiveNamed bool) (*Source, error) {
	rec := &errRecorder{r: r}
	s := &Source{Path: path, display: display, rec: rec, raw: bufio.NewReaderSize(rec, readBufferSize)}
	if c != nil {
		s.closers = append(s.closers, c)
	}
	head, err := s.raw.Peek(len(magicZstd))
	switch {
	case bytes.HasPrefix(head, magicZstd):
		s.Compression = CompressionZstd
	case bytes.HasPrefix(head, magicGzip):
		s.Compression = CompressionGzip
	case rec.err != nil:
		return nil, fmt.Errorf("read %s: %w", display, rec.err)
	case len(head) == 0:
		return nil, fmt.Errorf("%w: %s is empty", ErrCorrupt, display)
	case err != nil:
		return nil, fmt.Errorf("%w: %s is truncated: too short for an archive", ErrCorrupt, display)
	case archiveNamed || path == "-":
		return nil, fmt.Errorf("%w: %s is neither zstd nor gzip compressed", ErrCorrupt, display)
	default:
		return nil, failure.Usagef("%s is not a bundle archive (.tar.zst or .tar.gz) or folder", display)
	}
	return s, nil
}

// errRecorder remembers the first error other than io.EOF of the raw
// input, to tell I/O errors and part checks from corrupt data.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// PartProblem is one finding about a split set.
type PartProblem struct {
	// Index is the part's 1-based index, 0 for a part the manifest does
	// not list.
	Index int
	// Name is the part's file name.
	Name string
	// Problem says what is wrong.
	Problem string
}

// String formats the problem as "part 0003 (NAME.part-0003): problem".
func (p PartProblem) String() string {
	if p.Index == 0 {
		return fmt.Sprintf("%s: %s", p.Name, p.Problem)
	}
	return fmt.Sprintf("part %04d (%s): %s", p.Index, p.Name, p.Problem)
}

// PartsError lists every problem found with the parts of a split set.
type PartsError struct {
	// Archive is the archive's name, NAME.
	Archive string
	// Problems is in part order, unlisted parts last.
	Problems []PartProblem
}

// Error lists every problem, in part order, on one line.
func (e *PartsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "split archive %s: ", e.Archive)
	if len(e.Problems) > 1 {
		fmt.Fprintf(&b, "%d problems: ", len(e.Problems))
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns ErrParts.
func (e *PartsError) Unwrap() error { return ErrParts }

func partsErrorf(archive, format string, args ...any) error {
	return fmt.Errorf("%w %s: %s", ErrParts, archive, fmt.Sprintf(format, args...))
}

func openSplit(ctx context.Context, given, dir, archive string, opts OpenOptions) (*Source, error) {
	manifestName := archive + PartsManifestSuffix
	envName := archive + PartsEnvelopeSuffix
	manifestPath := filepath.Join(dir, manifestName)
	envPath := filepath.Join(dir, envName)

	if _, err := os.Stat(given); err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("open archive: %w", err))
	}
	hint := fmt.Sprintf("copy %s and %s beside the parts", manifestName, envName)

	env, envErr := readBounded(envPath)
	manifest, manErr := readBounded(manifestPath)
	if envErr != nil && !errors.Is(envErr, fs.ErrNotExist) {
		return nil, envErr
	}
	if manErr != nil && !errors.Is(manErr, fs.ErrNotExist) {
		return nil, manErr
	}
	if env == nil && manifest == nil {
		return nil, failure.WithHint(partsErrorf(archive, "%s is missing beside %s", manifestName, filepath.Base(given)), hint)
	}

	var payload []byte
	signed := false
	switch {
	case env == nil && !opts.SkipPartsSignature:
		return nil, failure.WithHint(partsErrorf(archive, "%s is missing: the parts manifest is not signed", envName), hint)
	case env != nil && !opts.SkipPartsSignature:
		if opts.VerifyParts == nil {
			return nil, failure.Usagef("split archive %s: no verifier for the parts manifest", archive)
		}
		p, err := opts.VerifyParts(PartsPayloadType, env)
		if err != nil {
			err = fmt.Errorf("split archive %s: %s: %w", archive, envName, err)
			if errors.Is(err, failure.ErrPolicy) || isClassified(err) {
				return nil, err
			}
			return nil, failure.Classify(failure.ErrVerification, err)
		}
		if p == nil {
			p = []byte{}
		}
		payload, signed = p, true
	case env != nil:
		p, err := envelopePayload(env)
		if err != nil {
			return nil, partsErrorf(archive, "%s: %v", envName, err)
		}
		payload = p
	}
	switch {
	case payload == nil:
		payload = manifest
	case manifest != nil && !bytes.Equal(manifest, payload):
		return nil, partsErrorf(archive, "%s does not match the payload of %s", manifestName, envName)
	}

	m, err := parsePartsManifest(payload, archive)
	if err != nil {
		return nil, err
	}
	if err := checkParts(ctx, dir, m); err != nil {
		return nil, err
	}
	pr := &partsReader{ctx: ctx, dir: dir, m: m}
	s, err := newSource(given, archive, pr, pr, true)
	if err != nil {
		pr.Close()
		return nil, err
	}
	if s.Compression != m.Compression {
		s.Close()
		return nil, fmt.Errorf("%w: %s is %s compressed, but %s says %s", ErrCorrupt, archive, s.Compression, manifestName, m.Compression)
	}
	s.Parts, s.PartsSigned = m, signed
	return s, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("open archive: %w", err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPartsManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxPartsManifestSize {
		return nil, fmt.Errorf("%w %s: larger than %d bytes", ErrParts, filepath.Base(path), maxPartsManifestSize)
	}
	return data, nil
}

// envelopePayload extracts a DSSE envelope's payload without verifying it.
func envelopePayload(env []byte) ([]byte, error) {
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     []byte `json:"payload"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, fmt.Errorf("malformed DSSE envelope: %v", err)
	}
	if e.PayloadType != PartsPayloadType {
		return nil, fmt.Errorf("payloadType %q, expected %q", e.PayloadType, PartsPayloadType)
	}
	return e.Payload, nil
}

func parsePartsManifest(data []byte, archive string) (*PartsManifest, error) {
	bad := func(format string, args ...any) error {
		return partsErrorf(archive, "%s%s is malformed: %s", archive, PartsManifestSuffix, fmt.Sprintf(format, args...))
	}
	var m PartsManifest
	if err := strictjson.Unmarshal(data, &m); err != nil {
		return nil, bad("%v", err)
	}
	switch {
	case m.SchemaVersion != PartsSchemaVersion:
		return nil, bad("unsupported schemaVersion %d", m.SchemaVersion)
	case m.Archive != archive:
		return nil, partsErrorf(archive, "the parts manifest describes %s, not %s; keep the names the export gave the files", quoteName(m.Archive), quoteName(archive))
	case m.Compression != CompressionZstd && m.Compression != CompressionGzip:
		return nil, bad("unknown compression %q", m.Compression)
	case m.PartSize <= 0:
		return nil, bad("partSize %d", m.PartSize)
	case len(m.Parts) == 0 || len(m.Parts) > maxParts:
		return nil, bad("%d parts", len(m.Parts))
	case !isHexDigest(m.SHA256):
		return nil, bad("sha256 is not 64 lowercase hex digits")
	}
	var total int64
	for i, p := range m.Parts {
		switch {
		case p.Index != i+1:
			return nil, bad("parts[%d] has index %d", i, p.Index)
		case p.Name != partName(archive, p.Index):
			return nil, bad("part %d is named %s, expected %s", p.Index, quoteName(p.Name), partName(archive, p.Index))
		case p.Size <= 0 || p.Size > m.PartSize:
			return nil, bad("part %d has size %d", p.Index, p.Size)
		case i < len(m.Parts)-1 && p.Size != m.PartSize:
			return nil, bad("part %d has size %d, but only the last part may be smaller than %d", p.Index, p.Size, m.PartSize)
		case !isHexDigest(p.SHA256):
			return nil, bad("part %d: sha256 is not 64 lowercase hex digits", p.Index)
		}
		total += p.Size
	}
	if total != m.TotalSize {
		return nil, bad("parts add up to %d bytes, totalSize is %d", total, m.TotalSize)
	}
	return &m, nil
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkParts finds missing, unlisted, wrongly sized and corrupt parts,
// hashing every part fully, and reports them all in one *PartsError.
func checkParts(ctx context.Context, dir string, m *PartsManifest) error {
	var problems []PartProblem
	ok := make([]bool, len(m.Parts))
	for i, p := range m.Parts {
		info, err := os.Stat(filepath.Join(dir, p.Name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			problems = append(problems, PartProblem{p.Index, p.Name, "missing"})
		case err != nil:
			return fmt.Errorf("split archive %s: %w", m.Archive, err)
		case !info.Mode().IsRegular():
			problems = append(problems, PartProblem{p.Index, p.Name, "not a regular file"})
		case info.Size() < p.Size:
			problems = append(problems, PartProblem{p.Index, p.Name, fmt.Sprintf("%d bytes, expected %d: the copy on this medium is truncated", info.Size(), p.Size)})
		case info.Size() > p.Size:
			problems = append(problems, PartProblem{p.Index, p.Name, fmt.Sprintf("%d bytes, expected %d: the copy on this medium is too long", info.Size(), p.Size)})
		default:
			ok[i] = true
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("split archive %s: %w", m.Archive, err)
	}
	var extra []PartProblem
	for _, e := range ents {
		if a, idx, isPart := splitPartName(e.Name()); isPart && a == m.Archive && idx > len(m.Parts) {
			extra = append(extra, PartProblem{0, e.Name(), fmt.Sprintf("extra part not listed in %s%s", m.Archive, PartsManifestSuffix)})
		}
	}

	byDigest := map[string]int{}
	for _, p := range m.Parts {
		byDigest[p.SHA256] = p.Index
	}
	whole := sha256.New()
	wholeOK := len(problems) == 0
	buf := make([]byte, readBufferSize)
	for i, p := range m.Parts {
		if !ok[i] {
			continue
		}
		var w io.Writer = io.Discard
		if wholeOK {
			w = whole
		}
		sum, err := hashFile(ctx, filepath.Join(dir, p.Name), p.Size, w, buf)
		if err != nil {
			return err
		}
		if sum == p.SHA256 {
			continue
		}
		wholeOK = false
		msg := "sha256 mismatch: the copy on this medium is corrupt"
		if other, found := byDigest[sum]; found {
			msg = fmt.Sprintf("sha256 mismatch: it holds the data of part %04d (%s); the parts were swapped or renamed", other, partName(m.Archive, other))
		}
		problems = append(problems, PartProblem{p.Index, p.Name, msg})
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Index < problems[j].Index })
	problems = append(problems, extra...)
	if len(problems) > 0 {
		return failure.WithHint(&PartsError{Archive: m.Archive, Problems: problems},
			fmt.Sprintf("copy the named parts again from the export medium; %s%s lists each part's size and SHA-256", m.Archive, PartsManifestSuffix))
	}
	if hex.EncodeToString(whole.Sum(nil)) != m.SHA256 {
		return partsErrorf(m.Archive, "the parts are intact but their concatenation does not match the archive's sha256 in %s%s", m.Archive, PartsManifestSuffix)
	}
	return nil
}

func hashFile(ctx context.Context, path string, size int64, also io.Writer, buf []byte) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(h, also), io.LimitReader(&ctxReader{ctx: ctx, r: f}, size), buf)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctxError(ctx.Err())
		}
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if n != size {
		return "", fmt.Errorf("%w %s: %s shrank while it was checked", ErrParts, filepath.Base(path), filepath.Base(path))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// partsReader streams the parts of a checked split set in order, checking
// each part's size and SHA-256 again as it is read, so a part that changes
// after the check (or a flaky medium) cannot slip through.
type partsReader struct {
	ctx  context.Context
	dir  string
	m    *PartsManifest
	i    int
	f    *os.File
	left int64
	h    hash.Hash
}

func (r *partsReader) Read(p []byte) (int, error) {
	for {
		if err := r.ctx.Err(); err != nil {
			return 0, ctxError(err)
		}
		if r.f == nil {
			if r.i == len(r.m.Parts) {
				return 0, io.EOF
			}
			part := r.m.Parts[r.i]
			f, err := os.Open(filepath.Join(r.dir, part.Name))
			if err != nil {
				return 0, fmt.Errorf("read %s: %w", part.Name, err)
			}
			r.f, r.left, r.h = f, part.Size, sha256.New()
		}
		if r.left == 0 {
			if err := r.finishPart(); err != nil {
				return 0, err
			}
			continue
		}
		q := p
		if int64(len(q)) > r.left {
			q = q[:r.left]
		}
		n, err := r.f.Read(q)
		r.h.Write(q[:n])
		r.left -= int64(n)
		if err != nil && !errors.Is(err, io.EOF) {
			return n, fmt.Errorf("read %s: %w", r.m.Parts[r.i].Name, err)
		}
		if errors.Is(err, io.EOF) && r.left > 0 && n == 0 {
			part := r.m.Parts[r.i]
			return 0, &PartsError{Archive: r.m.Archive, Problems: []PartProblem{{part.Index, part.Name, "shrank after it was checked"}}}
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *partsReader) finishPart() error {
	part := r.m.Parts[r.i]
	var one [1]byte
	n, _ := r.f.Read(one[:])
	r.f.Close()
	r.f = nil
	r.i++
	if n > 0 {
		return &PartsError{Archive: r.m.Archive, Problems: []PartProblem{{part.Index, part.Name, "grew after it was checked"}}}
	}
	if hex.EncodeToString(r.h.Sum(nil)) != part.SHA256 {
		return &PartsError{Archive: r.m.Archive, Problems: []PartProblem{{part.Index, part.Name, "sha256 mismatch on second read: the part changed after it was checked, or the medium is unreliable"}}}
	}
	return nil
}

func (r *partsReader) Close() error {
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}
