package bundle

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Limits on what verify reads into memory.
const (
	MaxManifestSize       = 64 << 20
	MaxDocumentSize       = 64 << 20
	MaxDomainBundleSize   = 1 << 30
	MaxChecksumsSize      = 64 << 20
	ClockSkew             = 5 * time.Minute
	reportSchemaVersion   = 1
	statusPass, statusErr = "pass", "fail"
)

// Check names reported by Verify.
const (
	CheckDSSE      = "dsse-signature"
	CheckManifest  = "manifest"
	CheckValidity  = "validity"
	CheckFiles     = "file-list"
	CheckDigests   = "digests"
	CheckChecksums = "sha256sums"
	CheckIndex     = "index"
	CheckJWS       = "jws"
	CheckBlobSig   = "cosign-sig"
	CheckDomain    = "domain"
	CheckRotation  = "rotation"
)

// Errors callers branch on.
var (
	ErrDigestMismatch = failure.New(failure.ErrVerification, "digest mismatch")
	ErrSizeMismatch   = failure.New(failure.ErrVerification, "size mismatch")
	ErrMissingFile    = failure.New(failure.ErrVerification, "missing file")
	ErrExtraFile      = failure.New(failure.ErrVerification, "unlisted file")
	ErrMalformed      = failure.New(failure.ErrVerification, "malformed signed document")
	ErrUnsafePath     = failure.New(failure.ErrVerification, "unsafe path")
	ErrExpired        = failure.New(failure.ErrPolicy, "bundle expired")
	ErrNotYetValid    = failure.New(failure.ErrPolicy, "bundle not yet valid")
)

var exportIDPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z$`)

// RotationFunc applies the rotation statements found under keys/ to roots
// before the bundle's signatures are checked; it returns the roots to use.
type RotationFunc func(roots *trust.Roots, statements map[string][]byte, now time.Time) (*trust.Roots, []string, error)

// VerifyOptions configures Verify.
type VerifyOptions struct {
	Roots           *trust.Roots
	Now             time.Time
	VerifyChecksums bool
	VerifyDSSE      bool
	// Threshold is the number of distinct trusted keys that must sign mirror.json (default 1).
	Threshold int
	// Digests, when set, are the sizes and SHA-256 of the bundle's files as a
	// caller computed them while writing them (import); files are not re-read
	// for hashing then.
	Digests *DigestSet
	// Rotate, when set, applies rotation statements carried in the bundle.
	Rotate RotationFunc
	// Progress is called with bytes hashed.
	Progress func(int64)
}

// Check is one row of a verification report.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // pass, fail, skip, warn
	Detail string `json:"detail"`
}

// Problem is one failed check on one file.
type Problem struct {
	File     string `json:"file"`
	Check    string `json:"check"`
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
	Message  string `json:"message"`
	Class    string `json:"class"` // verification or policy
	err      error
}

// Report is the result of Verify.
type Report struct {
	SchemaVersion  int       `json:"schemaVersion"`
	BundlePath     string    `json:"bundlePath"`
	Verified       bool      `json:"verified"`
	ExportID       string    `json:"exportId,omitempty"`
	Sequence       int64     `json:"sequence,omitempty"`
	GeneratedAt    time.Time `json:"generatedAt,omitzero"`
	ExpiresAt      time.Time `json:"expiresAt,omitzero"`
	Now            time.Time `json:"now"`
	Domains        []string  `json:"domains"`
	Files          int       `json:"files"`
	Bytes          int64     `json:"bytes"`
	ManifestSHA256 string    `json:"manifestSha256,omitempty"`
	SignerKeyIDs   []string  `json:"signerKeyIds"`
	Checks         []Check   `json:"checks"`
	Problems       []Problem `json:"problems"`
	Warnings       []string  `json:"warnings"`

	// Manifest is the parsed mirror.json (nil if it could not be read).
	Manifest *Manifest `json:"-"`
	// Roots are the trust roots after applying the bundle's rotation statements.
	Roots *trust.Roots `json:"-"`
	// RotationNotes describe what the bundle's rotation statements changed.
	RotationNotes []string `json:"rotations,omitempty"`
}

func newReport(dir string, now time.Time) *Report {
	return &Report{SchemaVersion: reportSchemaVersion, BundlePath: dir, Now: now,
		Domains: []string{}, SignerKeyIDs: []string{}, Checks: []Check{}, Problems: []Problem{}, Warnings: []string{}}
}

func (r *Report) check(name, status, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: status, Detail: detail})
}

func (r *Report) problem(file, check string, err error, expected, actual string) {
	class := "verification"
	if errors.Is(err, failure.ErrPolicy) && !errors.Is(err, failure.ErrVerification) {
		class = "policy"
	}
	r.Problems = append(r.Problems, Problem{File: file, Check: check, Expected: expected, Actual: actual,
		Message: err.Error(), Class: class, err: err})
}

func (r *Report) failed(check string) bool {
	for _, p := range r.Problems {
		if p.Check == check {
			return true
		}
	}
	return false
}

// Err summarises the problems: nil when verified; an error wrapping
// failure.ErrVerification when any problem is a verification failure, else
// failure.ErrPolicy.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	verification := false
	for _, p := range r.Problems {
		if p.Class == "verification" {
			verification = true
		}
	}
	first := r.Problems[0]
	for _, p := range r.Problems {
		if (p.Class == "verification") == verification {
			first = p
			break
		}
	}
	class := failure.ErrPolicy
	if verification {
		class = failure.ErrVerification
	}
	msg := fmt.Sprintf("%s: %s: %s", first.File, first.Check, first.Message)
	if n := len(r.Problems); n > 1 {
		msg += fmt.Sprintf(" (and %d more problem(s))", n-1)
	}
	return &reportErr{msg: msg, class: class}
}

type reportErr struct {
	msg   string
	class error
}

func (e *reportErr) Error() string { return e.msg }
func (e *reportErr) Unwrap() error { return e.class }

// VerifyDir checks the bundle folder dir. The returned report lists every
// check and every problem; the error is nil when the bundle verified, a
// classified error otherwise (see Report.Err), or an I/O error.
func VerifyDir(ctx context.Context, dir string, opts VerifyOptions) (*Report, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	r := newReport(dir, opts.Now.UTC())
	if opts.Roots == nil || len(opts.Roots.Keys) == 0 {
		return r, failure.Usagef("verify: no trust roots")
	}
	if st, err := os.Stat(dir); err != nil {
		return r, failure.Classify(failure.ErrUsage, fmt.Errorf("bundle %s: %w", dir, err))
	} else if !st.IsDir() {
		return r, failure.Usagef("bundle %s: not a folder", dir)
	}
	// A bundle path may itself be a symlink (ROOT/latest); what is below it may not.
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved
	}
	return verifyFS(ctx, r, DirFS(dir), opts)
}

// VerifyFS checks a bundle read through fsys (an unpacked archive held in
// memory, say); name is what reports call it. Unless opts.Digests is set,
// every listed file is read through fsys to hash it.
func VerifyFS(ctx context.Context, fsys FS, name string, opts VerifyOptions) (*Report, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	r := newReport(name, opts.Now.UTC())
	if opts.Roots == nil || len(opts.Roots.Keys) == 0 {
		return r, failure.Usagef("verify: no trust roots")
	}
	return verifyFS(ctx, r, fsys, opts)
}

func verifyFS(ctx context.Context, r *Report, fsys FS, opts VerifyOptions) (*Report, error) {
	v := &verifier{ctx: ctx, fs: fsys, opts: opts, r: r, roots: opts.Roots}
	if err := v.run(); err != nil {
		return r, err
	}
	r.Verified = len(r.Problems) == 0
	return r, r.Err()
}

type verifier struct {
	ctx   context.Context
	fs    FS
	opts  VerifyOptions
	r     *Report
	roots *trust.Roots
	// m is mirror.json without its files, which are in files.
	m     *Manifest
	files *fileTable
	// given replaces opts.Digests, which is dropped.
	given *DigestSet
	// envelopeSHA256 is the digest of mirror.dsse.json as checkDSSE read it.
	envelopeSHA256 string
}

func (v *verifier) readSmall(rel string, max int64) ([]byte, error) {
	f, err := v.fs.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Sized from the file when it can be: growing the buffer by doubling
	// left up to three times a large manifest's size on the heap.
	var buf bytes.Buffer
	if st, ok := f.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Size() <= max {
			buf.Grow(int(fi.Size()) + bytes.MinRead)
		}
	}
	n, err := buf.ReadFrom(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if n > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", rel, max)
	}
	return buf.Bytes(), nil
}

// forget lets the FS drop the bytes of rel, which verification reads no
// more, when it holds them in memory (see MemFS.Forget).
func (v *verifier) forget(rel string) {
	if f, ok := v.fs.(interface{ Forget(string) }); ok {
		f.Forget(rel)
	}
}

// digestSmall hashes rel, failing as readSmall would, without keeping its
// bytes.
func (v *verifier) digestSmall(rel string, max int64) (Digest, error) {
	f, err := v.fs.Open(rel)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	d, err := HashReader(io.LimitReader(f, max+1), nil)
	if err != nil {
		return Digest{}, fmt.Errorf("%s: %w", rel, err)
	}
	if d.Size > max {
		return Digest{}, fmt.Errorf("%s: larger than %d bytes", rel, max)
	}
	return d, nil
}

func (v *verifier) run() error {
	r := v.r
	if v.opts.Digests != nil {
		v.given = v.opts.Digests
		v.opts.Digests = nil
	}
	// mirror.json is only hashed here: when its signature verifies, the
	// signed payload is those bytes, and a second copy of them would sit
	// on the heap beside the envelope while the signature is checked.
	file, mErr := v.digestSmall(ManifestFile, MaxManifestSize)
	if mErr != nil {
		r.problem(ManifestFile, CheckManifest, missingOr(mErr), "", "")
		r.check(CheckManifest, statusErr, "cannot read "+ManifestFile)
		return nil
	}
	r.ManifestSHA256 = file.SHA256

	if err := v.applyRotations(); err != nil {
		return err
	}
	r.Roots = v.roots

	// The signature over the exact bytes comes before any parsing.
	var (
		t   *fileTable
		m   Manifest
		err error
	)
	if v.checkDSSE(file) {
		t, m, err = v.decodeSigned(file)
		v.forget(ManifestFile)
	} else {
		mBytes, rerr := v.readSmall(ManifestFile, MaxManifestSize)
		if rerr != nil {
			r.problem(ManifestFile, CheckManifest, missingOr(rerr), "", "")
			r.check(CheckManifest, statusErr, "cannot read "+ManifestFile)
			return nil
		}
		r.ManifestSHA256 = HashBytes(mBytes).SHA256
		t = newFileTable(fileCountHint(mBytes))
		m, err = decodeManifest(mBytes, t.add)
	}
	if err != nil {
		r.problem(ManifestFile, CheckManifest, fmt.Errorf("%w: %v", ErrMalformed, err), "", "")
		r.check(CheckManifest, statusErr, err.Error())
		return nil
	}
	v.m, v.files = &m, t
	r.Manifest = &m
	// The report lists the files as mirror.json does once the checks are
	// done with the file table.
	defer func() { m.Files = t.entries() }()
	r.ExportID, r.Sequence, r.GeneratedAt, r.ExpiresAt, r.Domains = m.ExportID, m.Sequence, m.GeneratedAt, m.ExpiresAt, m.Domains
	if r.Domains == nil {
		r.Domains = []string{}
	}
	if !v.checkManifest() {
		return nil
	}
	v.checkValidity()
	if err := v.checkFiles(); err != nil {
		return err
	}
	if !v.opts.VerifyChecksums || v.given != nil {
		v.checkDigests()
		return v.checkDocuments()
	}
	return v.hashAndCheck()
}

// hashAndCheck hashes the signed documents first; the document checks then
// run while the VEX files hash in the background. They record into a
// scratch report that is appended after the digests check, so the report
// reads as if the steps had run one after the other.
func (v *verifier) hashAndCheck() error {
	var docs, payloads []int
	for i, f := range v.files.files {
		if KeepContents(f.path) {
			docs = append(docs, i)
		} else {
			payloads = append(payloads, i)
		}
	}
	if err := v.hashFiles(docs); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- v.hashFiles(payloads) }()
	main := v.r
	v.r = newReport(main.BundlePath, main.Now)
	docErr := v.checkDocuments()
	scratch := v.r
	v.r = main
	if err := <-done; err != nil {
		return err
	}
	if docErr != nil {
		return docErr
	}
	v.checkDigests()
	main.Checks = append(main.Checks, scratch.Checks...)
	main.Problems = append(main.Problems, scratch.Problems...)
	main.Warnings = append(main.Warnings, scratch.Warnings...)
	return nil
}

// checkDSSE checks mirror.dsse.json and reports whether its signature
// verified over the bytes of mirror.json (file is their digest). The
// envelope is read as a stream (sign.VerifyDSSEStream), never whole.
func (v *verifier) checkDSSE(file Digest) bool {
	r := v.r
	if !v.opts.VerifyDSSE {
		r.check(CheckDSSE, "skip", "--verify-dsse=false: the manifest's signature was not checked")
		r.Warnings = append(r.Warnings, "DSSE verification disabled: mirror.json is not authenticated")
		return false
	}
	env, err := v.digestSmall(EnvelopeFile, sign.MaxEnvelopeSize)
	if err != nil {
		r.problem(EnvelopeFile, CheckDSSE, missingOr(err), "", "")
		r.check(CheckDSSE, statusErr, "cannot read "+EnvelopeFile)
		return false
	}
	v.envelopeSHA256 = env.SHA256
	var want [32]byte
	hex.Decode(want[:], []byte(env.SHA256))
	open := func() (io.ReadCloser, error) { return v.fs.Open(EnvelopeFile) }
	res, err := sign.VerifyDSSEStream(open, want, PayloadType, v.roots, v.opts.Now, v.opts.Threshold)
	v.forget(EnvelopeFile)
	signed := Digest{Size: res.PayloadSize, SHA256: hex.EncodeToString(res.PayloadSHA256[:])}
	switch {
	case err != nil:
		r.problem(EnvelopeFile, CheckDSSE, err, "", "")
		r.check(CheckDSSE, statusErr, err.Error())
		// A signature refused only for its key's validity window still
		// binds its payload: a mirror.json that differs from it is forged,
		// a verification failure whatever the time.
		if errors.Is(err, failure.ErrPolicy) && signed != file {
			err := fmt.Errorf("%w: not the bytes mirror.dsse.json signed (modified after signing)", ErrMalformed)
			r.problem(ManifestFile, CheckDSSE, err, signed.SHA256, r.ManifestSHA256)
		}
		return false
	case signed != file:
		err := fmt.Errorf("%w: not the bytes mirror.dsse.json signed (modified after signing)", ErrMalformed)
		r.problem(ManifestFile, CheckDSSE, err, signed.SHA256, r.ManifestSHA256)
		r.check(CheckDSSE, statusErr, "mirror.json differs from the signed payload")
		return false
	}
	r.SignerKeyIDs = res.KeyIDs()
	r.check(CheckDSSE, statusPass, "signed by "+strings.Join(res.KeyIDs(), ", "))
	for _, ig := range res.Ignored {
		r.Warnings = append(r.Warnings, "mirror.dsse.json: "+ig)
	}
	return true
}

// decodeSigned decodes mirror.json once its signature has verified over
// the digest file. It reads the file again rather than keeping the signed
// payload (12 MiB for 66,000 files, beside the envelope it was decoded
// from), and hashes what it decodes: a file that is no longer the one
// signed is refused, whatever was decoded from it.
func (v *verifier) decodeSigned(file Digest) (*fileTable, Manifest, error) {
	hint, err := v.manifestFileCount()
	if err != nil {
		return nil, Manifest{}, err
	}
	f, err := v.fs.Open(ManifestFile)
	if err != nil {
		return nil, Manifest{}, err
	}
	defer f.Close()
	t := newFileTable(hint)
	add := t.add
	if v.given != nil {
		// One copy of each name, the given digests', rather than two.
		add = func(e FileEntry) {
			e.Path = v.given.intern(e.Path)
			t.add(e)
		}
	}
	h := sha256.New()
	in := &io.LimitedReader{R: f, N: MaxManifestSize + 1}
	m, decErr := decodeManifestFrom(io.TeeReader(in, h), add)
	if _, err := io.Copy(h, in); err != nil {
		return nil, Manifest{}, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	read := Digest{Size: MaxManifestSize + 1 - in.N, SHA256: hex.EncodeToString(h.Sum(nil))}
	if read != file {
		return nil, Manifest{}, fmt.Errorf("%s changed while it was being verified", ManifestFile)
	}
	return t, m, decErr
}

// manifestFileCount is how many files mirror.json lists, for sizing the
// file table: the number of given digests, or else a count of its "path"
// keys (which the decoding pass then checks against the signed digest).
func (v *verifier) manifestFileCount() (int, error) {
	if v.given != nil {
		return v.given.Len(), nil
	}
	f, err := v.fs.Open(ManifestFile)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, size, err := countPathKeys(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	return int(min(int64(n), size/minFileEntryJSON)), nil
}

// checkDocuments runs the checks that read the signed documents: SHA256SUMS,
// the index, each domain and the rotation statements.
func (v *verifier) checkDocuments() error {
	v.checkChecksums()
	v.checkIndex()
	for _, d := range v.m.Domains {
		if err := v.checkDomain(d); err != nil {
			return err
		}
	}
	v.checkRotationsListed()
	return nil
}

func missingOr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: file not found", ErrMissingFile)
	}
	return fmt.Errorf("%w: %v", failure.ErrVerification, err)
}

func (v *verifier) checkManifest() bool {
	r, m := v.r, v.m
	bad := func(format string, args ...any) bool {
		err := fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
		r.problem(ManifestFile, CheckManifest, err, "", "")
		r.check(CheckManifest, statusErr, err.Error())
		return false
	}
	if m.SchemaVersion != SchemaVersion {
		return bad("schemaVersion %d (this tool reads %d)", m.SchemaVersion, SchemaVersion)
	}
	if !exportIDPattern.MatchString(m.ExportID) {
		return bad("exportId %q is not YYYYMMDDTHHMMSSZ", m.ExportID)
	}
	if m.Sequence <= 0 {
		return bad("sequence %d is not positive", m.Sequence)
	}
	if m.GeneratedAt.IsZero() || m.ExpiresAt.IsZero() || !m.ExpiresAt.After(m.GeneratedAt) {
		return bad("generatedAt/expiresAt missing or expiresAt not after generatedAt")
	}
	seenDomain := map[string]bool{}
	for _, d := range m.Domains {
		if !DomainIDPattern.MatchString(d) || seenDomain[d] {
			return bad("domain id %q invalid or repeated", d)
		}
		seenDomain[d] = true
	}
	if !v.checkEntries(bad) {
		return false
	}
	if !v.files.listed(IndexPath) {
		return bad("does not list %s", IndexPath)
	}
	v.files.startDigests()
	r.check(CheckManifest, statusPass, fmt.Sprintf("export %s, sequence %d, %d files, %d domains", m.ExportID, m.Sequence, len(v.files.files), len(m.Domains)))
	return true
}

// checkEntries checks mirror.json's files in order and stops at the first
// problem: a safe path, not one of the three files a listing cannot hold,
// sorted without repeats, no collision with an earlier path on
// case-insensitive or normalising file systems, a size and a lower-case hex
// SHA-256. It counts the files and bytes into the report.
func (v *verifier) checkEntries(bad func(format string, args ...any) bool) bool {
	r, t := v.r, v.files
	first, second, collides := FoldCollision(len(t.files), func(i int) string { return t.files[i].path })
	prev := ""
	for i := range t.files {
		f := &t.files[i]
		if err := CheckPath(f.path); err != nil {
			r.problem(f.path, CheckManifest, err, "", "")
			r.check(CheckManifest, statusErr, err.Error())
			return false
		}
		switch f.path {
		case ManifestFile, EnvelopeFile, ChecksumsFile:
			return bad("lists %s, which cannot list itself", f.path)
		}
		if f.path <= prev {
			return bad("files not sorted by path or repeated at %q", f.path)
		}
		prev = f.path
		if collides && i == second {
			err := fmt.Errorf("%w: %q and %q collide on case-insensitive or normalising file systems", ErrUnsafePath, t.files[first].path, f.path)
			r.problem(f.path, CheckManifest, err, "", "")
			r.check(CheckManifest, statusErr, err.Error())
			return false
		}
		if f.size < 0 || t.marks[i]&markBadSum != 0 {
			return bad("entry %q: size or sha256 malformed", f.path)
		}
		if t.marks[i]&markSumNotHex != 0 {
			return bad("entry %q: sha256 is not hex", f.path)
		}
		r.Files++
		r.Bytes += f.size
	}
	return true
}

func (v *verifier) checkValidity() {
	r, m, now := v.r, v.m, v.opts.Now
	switch {
	case m.GeneratedAt.After(now.Add(ClockSkew)):
		err := fmt.Errorf("%w: generated at %s, after the trusted time %s", ErrNotYetValid, m.GeneratedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		r.problem(ManifestFile, CheckValidity, err, "", "")
		r.check(CheckValidity, statusErr, err.Error())
	case !now.Before(m.ExpiresAt):
		err := fmt.Errorf("%w: expired at %s (trusted time %s)", ErrExpired, m.ExpiresAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		r.problem(ManifestFile, CheckValidity, err, "", "")
		r.check(CheckValidity, statusErr, err.Error())
	default:
		r.check(CheckValidity, statusPass, fmt.Sprintf("valid until %s (%s left)", m.ExpiresAt.Format(time.RFC3339), m.ExpiresAt.Sub(now).Round(time.Minute)))
	}
}

// eachPresent calls fn for every entry of the bundle below the folder sub
// ("" for all): through the FS's own walk when it has one, else from Files.
func (v *verifier) eachPresent(sub string, fn func(rel string, size int64, kind string) error) error {
	if w, ok := v.fs.(fileWalker); ok {
		return w.walkFiles(sub, fn)
	}
	files, other, err := v.fs.Files()
	if err != nil {
		return err
	}
	below := func(rel string) bool { return sub == "" || strings.HasPrefix(rel, sub+"/") }
	for rel, kind := range other {
		if !below(rel) {
			continue
		}
		if err := fn(rel, 0, kind); err != nil {
			return err
		}
	}
	for rel, size := range files {
		if !below(rel) {
			continue
		}
		if err := fn(rel, size, ""); err != nil {
			return err
		}
	}
	return nil
}

// presentNote is a name found in the bundle that checkFiles reports.
type presentNote struct {
	rel, kind string
}

// checkFiles compares the folder's files with the listing. It walks the
// bundle once, marking the listed files it finds.
func (v *verifier) checkFiles() error {
	r, t := v.r, v.files
	problems := len(r.Problems)
	var other []presentNote
	var extra []string
	sums := false
	err := v.eachPresent("", func(rel string, size int64, kind string) error {
		if kind != "" {
			other = append(other, presentNote{rel, kind})
			return nil
		}
		if i, ok := t.find(rel); ok {
			t.marks[i] |= markPresent
			if size != t.files[i].size {
				t.presentSize[i] = size
			}
			return nil
		}
		switch rel {
		case ChecksumsFile:
			sums = true
		case ManifestFile, EnvelopeFile:
		default:
			extra = append(extra, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read bundle %s: %w", r.BundlePath, err)
	}
	slices.SortFunc(other, func(a, b presentNote) int { return strings.Compare(a.rel, b.rel) })
	for _, o := range other {
		r.problem(o.rel, CheckFiles, fmt.Errorf("%w: not a regular file (%s)", ErrUnsafePath, o.kind), "regular file", o.kind)
	}
	for i, f := range t.files {
		if t.marks[i]&markPresent == 0 {
			r.problem(f.path, CheckFiles, fmt.Errorf("%w: listed in mirror.json but not in the bundle", ErrMissingFile), "present", "missing")
		}
	}
	sort.Strings(extra)
	for _, p := range extra {
		r.problem(p, CheckFiles, fmt.Errorf("%w: present in the bundle but not listed in mirror.json", ErrExtraFile), "absent", "present")
	}
	if !sums {
		r.problem(ChecksumsFile, CheckFiles, fmt.Errorf("%w: file not found", ErrMissingFile), "present", "missing")
	}
	if len(r.Problems) > problems {
		r.check(CheckFiles, statusErr, fmt.Sprintf("%d problem(s)", len(r.Problems)-problems))
	} else {
		r.check(CheckFiles, statusPass, fmt.Sprintf("%d listed files present, none extra", len(t.files)))
	}
	return nil
}

// checkDigests compares the digests of the listed files with mirror.json:
// those computed by the caller (opts.Digests) when given, else those
// hashFiles recorded.
func (v *verifier) checkDigests() {
	r, t := v.r, v.files
	if !v.opts.VerifyChecksums {
		r.check(CheckDigests, "skip", "--verify-checksums=false: file digests were not checked")
		r.Warnings = append(r.Warnings, "checksum verification disabled: file contents are not checked against mirror.json")
		return
	}
	if v.given != nil {
		t.recordGiven(v.given)
		v.given = nil
	}
	problems := len(r.Problems)
	for i := range t.files {
		if t.digest[i] != digestDiffers {
			continue // matches, or reported as missing
		}
		f, d := t.files[i].entry(), t.differ[i]
		if d.Size != f.Size {
			r.problem(f.Path, CheckDigests, fmt.Errorf("%w: %d bytes, mirror.json lists %d", ErrSizeMismatch, d.Size, f.Size), fmt.Sprint(f.Size), fmt.Sprint(d.Size))
			continue
		}
		r.problem(f.Path, CheckDigests, fmt.Errorf("%w: sha256 differs from mirror.json", ErrDigestMismatch), f.SHA256, d.SHA256)
	}
	if len(r.Problems) > problems {
		r.check(CheckDigests, statusErr, fmt.Sprintf("%d file(s) differ from mirror.json", len(r.Problems)-problems))
	} else {
		r.check(CheckDigests, statusPass, fmt.Sprintf("%d files, %s, sha256 and sizes match", len(t.files), HumanBytes(v.r.Bytes)))
	}
}

// hashFiles hashes the listed files at the indices list, in parallel and
// streaming, and records what it finds in the file table.
func (v *verifier) hashFiles(list []int) error {
	t := v.files
	jobs := make(chan int)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), 8)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				// A file whose size already differs from the listing is
				// not read: a sparse file of a terabyte would take hours.
				if size, ok := t.presentSize[i]; ok {
					t.record(i, Digest{Size: size})
					continue
				}
				d, err := v.hashFile(t.files[i].path)
				if err == nil {
					t.record(i, d)
					continue
				}
				// Absent files and ones that are not regular files are
				// reported by checkFiles.
				if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrUnsafePath) {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("read %s: %w", t.files[i].path, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	// Largest first keeps both workers busy to the end.
	order := slices.Clone(list)
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(t.files[b].size, t.files[a].size) })
	for _, i := range order {
		if v.ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := v.ctx.Err(); err != nil {
		return failure.Classify(failure.ErrInterrupted, err)
	}
	return firstErr
}

// trusted reports whether a listed file's bytes have been checked against
// mirror.json (or checksum verification is off).
func (v *verifier) trusted(rel string) bool {
	i, listed := v.files.find(rel)
	if !listed {
		return false
	}
	return !v.opts.VerifyChecksums || v.files.matches(i)
}

func (v *verifier) readDoc(rel string, doc any, check string) bool {
	if !v.trusted(rel) {
		return false // already reported
	}
	data, err := v.readSmall(rel, MaxDocumentSize)
	if err != nil {
		v.r.problem(rel, check, missingOr(err), "", "")
		return false
	}
	if err := strictjson.Unmarshal(data, doc); err != nil {
		v.r.problem(rel, check, fmt.Errorf("%w: %v", ErrMalformed, err), "", "")
		return false
	}
	return true
}

// openDoc opens a trusted signed document for a streaming decode, at most
// max bytes of it; it reports why it cannot.
func (v *verifier) openDoc(rel, check string, max int64) (*docReader, bool) {
	f, err := v.fs.Open(rel)
	if err != nil {
		v.r.problem(rel, check, missingOr(err), "", "")
		return nil, false
	}
	if st, ok := f.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Size() > max {
			f.Close()
			v.r.problem(rel, check, missingOr(fmt.Errorf("%s: larger than %d bytes", rel, max)), "", "")
			return nil, false
		}
	}
	return &docReader{f: f, rel: rel, max: max, src: countingReader{r: io.LimitReader(f, max+1)}}, true
}

// docReader streams one signed document and tells read errors and excess
// length from what is wrong with its contents.
type docReader struct {
	f   io.ReadCloser
	rel string
	max int64
	src countingReader
}

// reader returns the buffered stream of the document.
func (d *docReader) reader() io.Reader { return bufio.NewReaderSize(&d.src, 256<<10) }

// close closes the document and returns the problem to report for a
// decode that ended with err: a read error or excess length first, then
// err as malformed contents; nil when there is none.
func (d *docReader) close(err error) error {
	d.f.Close()
	switch {
	case d.src.err != nil:
		return missingOr(fmt.Errorf("%s: %w", d.rel, d.src.err))
	case d.src.n > d.max:
		return missingOr(fmt.Errorf("%s: larger than %d bytes", d.rel, d.max))
	case err != nil:
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// readDomainManifest decodes a domain's trusted manifest.json, checking
// each of its exports as it streams by without keeping them.
func (v *verifier) readDomainManifest(rel, check string) (DomainManifest, bool) {
	if !v.trusted(rel) {
		return DomainManifest{}, false // already reported
	}
	d, ok := v.openDoc(rel, check, MaxDocumentSize)
	if !ok {
		return DomainManifest{}, false
	}
	dm, _, err := streamDomainManifest(d.reader())
	if err := d.close(err); err != nil {
		v.r.problem(rel, check, err, "", "")
		return DomainManifest{}, false
	}
	return dm, true
}

func (v *verifier) checkIndex() {
	r, m := v.r, v.m
	problems := len(r.Problems)
	var idx Index
	if v.readDoc(IndexPath, &idx, CheckIndex) {
		bad := func(format string, args ...any) {
			r.problem(IndexPath, CheckIndex, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...)), "", "")
		}
		if idx.ExportID != m.ExportID {
			bad("exportId %s, mirror.json has %s (mixed exports)", idx.ExportID, m.ExportID)
		}
		var ids []string
		for _, d := range idx.Domains {
			ids = append(ids, d.ID)
			b, ok := v.files.entry(MirrorDir + "/" + d.ID + "/" + DomainBundleName)
			if !ok {
				bad("domain %s has no bundle.json in mirror.json", d.ID)
				continue
			}
			if d.BundleSha256 != b.SHA256 || d.BundleSize != b.Size {
				bad("domain %s: bundleSha256/bundleSize disagree with mirror.json", d.ID)
			}
		}
		if !slices.Equal(ids, m.Domains) {
			bad("domains %v, mirror.json lists %v", ids, m.Domains)
		}
	}
	if len(r.Problems) > problems || !v.trusted(IndexPath) {
		r.check(CheckIndex, statusErr, "index.json does not match mirror.json")
	} else {
		r.check(CheckIndex, statusPass, fmt.Sprintf("%d domains agree with mirror.json", len(idx.Domains)))
	}
}

func (v *verifier) checkDomain(id string) error {
	r, m := v.r, v.m
	base := MirrorDir + "/" + id + "/"
	name := CheckDomain + " " + id
	problems := len(r.Problems)
	var notes []string

	dm, manifestOK := v.readDomainManifest(base+DomainManifestName, name)
	if manifestOK {
		bad := func(format string, args ...any) {
			r.problem(base+DomainManifestName, name, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...)), "", "")
		}
		if dm.DomainID != id {
			bad("domainId %q, expected %q (a manifest from another domain)", dm.DomainID, id)
		}
		if dm.ExportID != m.ExportID {
			bad("exportId %s, mirror.json has %s (mixed exports)", dm.ExportID, m.ExportID)
		}
		if b, _ := v.files.entry(base + DomainBundleName); dm.Bundle != b {
			bad("bundle entry disagrees with mirror.json")
		}
	}

	// JWS over the exact bytes of bundle.json, streamed from disk.
	jwsPath, bundlePath := base+DomainJWSName, base+DomainBundleName
	jws, err := v.readSmall(jwsPath, sign.MaxJWSSize)
	if err != nil {
		r.problem(jwsPath, CheckJWS, missingOr(err), "", "")
	} else if f, err := v.fs.Open(bundlePath); err != nil {
		r.problem(bundlePath, CheckJWS, missingOr(err), "", "")
	} else {
		res, err := sign.VerifyJWS(jws, bufio.NewReaderSize(f, copyBuf), v.roots, v.opts.Now)
		f.Close()
		if err != nil {
			r.problem(jwsPath, CheckJWS, err, "", "")
		} else {
			notes = append(notes, fmt.Sprintf("JWS %s by %s", res.Alg, shortID(res.Key.ID)))
			if manifestOK && (dm.Signature.Kid != "" && !res.Key.Matches(dm.Signature.Kid) || dm.Signature.Alg != res.Alg) {
				r.problem(base+DomainManifestName, name, fmt.Errorf("%w: signature {alg %s, kid %s} does not describe the JWS", ErrMalformed, dm.Signature.Alg, dm.Signature.Kid), res.Alg, dm.Signature.Alg)
			}
		}
	}

	// cosign-compatible .sig over the same bytes.
	sigPath := base + DomainSigName
	if sig, err := v.readSmall(sigPath, sign.MaxBlobSigSize); err != nil {
		r.problem(sigPath, CheckBlobSig, missingOr(err), "", "")
	} else if blob, closeBlob, err := v.openSeekable(bundlePath, MaxDomainBundleSize); err == nil {
		_, err := sign.VerifyBlob(sig, blob, v.roots, v.opts.Now)
		closeBlob()
		if err != nil {
			r.problem(sigPath, CheckBlobSig, err, "", "")
		} else {
			notes = append(notes, "cosign .sig ok")
		}
	}

	// bundle.json's export digests vouch for every VEX file.
	if v.trusted(bundlePath) {
		v.checkDomainBundle(id, base, &notes)
	}
	if len(r.Problems) > problems {
		r.check(name, statusErr, fmt.Sprintf("%d problem(s)", len(r.Problems)-problems))
	} else {
		r.check(name, statusPass, strings.Join(notes, "; "))
	}
	return nil
}

// checkDomainBundle checks a domain's trusted bundle.json: its header, and
// each export against mirror.json as the exports stream by; then that
// every VEX file of the domain is named by an export. What the exports
// show is reported only once the whole document has parsed.
func (v *verifier) checkDomainBundle(id, base string, notes *[]string) {
	r := v.r
	rel := base + DomainBundleName
	name := CheckDomain + " " + id
	d, ok := v.openDoc(rel, name, MaxDomainBundleSize)
	if !ok {
		return
	}
	pending := &Report{}
	exports := 0
	b, advisories, err := streamDomainBundle(d.reader(), func(e VexExport) error {
		exports++
		v.checkExport(e, base, name, pending)
		return nil
	}, nil)
	if err := d.close(err); err != nil {
		r.problem(rel, name, err, "", "")
		return
	}
	bad := func(format string, args ...any) {
		r.problem(rel, name, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...)), "", "")
	}
	if b.DomainID != id {
		bad("domainId %q, expected %q", b.DomainID, id)
	}
	if b.AdvisoryCount != advisories {
		bad("advisoryCount %d but %d advisories", b.AdvisoryCount, advisories)
	}
	r.Problems = append(r.Problems, pending.Problems...)
	t := v.files
	lo, hi := t.prefixRange(base + "vex/")
	for i := lo; i < hi; i++ {
		if t.marks[i]&markInBundle == 0 {
			r.problem(t.files[i].path, name, fmt.Errorf("%w: VEX file not listed in the signed bundle.json", ErrExtraFile), "", "")
		}
	}
	*notes = append(*notes, fmt.Sprintf("%d advisories, %d VEX exports", advisories, exports))
}

// checkExport checks one export of the domain at base against mirror.json
// and marks the file it names; problems go to pending.
func (v *verifier) checkExport(e VexExport, base, name string, pending *Report) {
	rel := base + DomainBundleName
	p := base + e.Path
	if err := CheckPath(p); err != nil || !strings.HasPrefix(e.Path, "vex/") {
		pending.problem(rel, name, fmt.Errorf("%w: export %q has an unsafe path %q", ErrMalformed, e.Key, e.Path), "", "")
		return
	}
	t := v.files
	i, ok := t.find(p)
	if !ok {
		pending.problem(rel, name, fmt.Errorf("%w: export %q: %s is not listed in mirror.json", ErrMalformed, e.Key, p), "", "")
		return
	}
	t.marks[i] |= markInBundle
	f := &t.files[i]
	sum, prefixed := strings.CutPrefix(e.ArtifactDigest, "sha256:")
	if !prefixed || !f.sumIs(sum) || e.ArtifactSizeBytes != f.size {
		pending.problem(p, name, fmt.Errorf("%w: the signed bundle.json vouches for other bytes", ErrDigestMismatch), e.ArtifactDigest, "sha256:"+f.entry().SHA256)
	}
}

// applyRotations applies the rotation statements found directly under
// keys/ before the bundle's signatures are checked.
func (v *verifier) applyRotations() error {
	if v.opts.Rotate == nil {
		return nil
	}
	var names []string
	err := v.eachPresent(KeysDir, func(rel string, _ int64, kind string) error {
		if kind == "" && strings.HasPrefix(rel, KeysDir+"/") && strings.Count(rel, "/") == 1 {
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	statements := map[string][]byte{}
	for _, rel := range names {
		data, err := v.readSmall(rel, sign.MaxEnvelopeSize)
		if err != nil {
			return err
		}
		statements[rel] = data
	}
	if len(statements) == 0 {
		return nil
	}
	roots, notes, err := v.opts.Rotate(v.roots.Clone(), statements, v.opts.Now)
	if err != nil {
		v.r.problem(KeysDir, CheckRotation, err, "", "")
		v.r.check(CheckRotation, statusErr, err.Error())
		return nil
	}
	v.roots = roots
	v.r.RotationNotes = notes
	v.r.check(CheckRotation, statusPass, strings.Join(notes, "; "))
	return nil
}

// checkRotationsListed makes sure every statement used is covered by mirror.json.
func (v *verifier) checkRotationsListed() {
	for _, p := range v.m.Rotations {
		if !v.files.listed(p) || !strings.HasPrefix(p, KeysDir+"/") {
			v.r.problem(p, CheckRotation, fmt.Errorf("%w: rotation statement not listed", ErrMalformed), "", "")
		}
	}
}

// CheckPath refuses bundle paths that could escape or collide: empty,
// absolute, "..", ".", backslash, NUL, control characters, invalid UTF-8.
func CheckPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrUnsafePath, p, why) }
	switch {
	case p == "":
		return bad("empty name")
	case !utf8.ValidString(p):
		return bad("invalid UTF-8")
	case strings.HasPrefix(p, "/"):
		return bad("absolute path")
	case strings.ContainsAny(p, "\\\x00"):
		return bad("backslash or NUL")
	case len(p) > 1024:
		return bad("longer than 1024 bytes")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return bad("control character")
		}
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return bad("empty, '.' or '..' component")
		}
	}
	if path.Clean(p) != p {
		return bad("not a clean path")
	}
	return nil
}

// FoldPath maps a path to the key under which case-insensitive and
// normalising file systems (exFAT, FAT32, APFS, NTFS) would store it.
func FoldPath(p string) string {
	return strings.ToLower(norm.NFC.String(p))
}

// HumanBytes formats n with binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// openSeekable opens rel for reading more than once (a signature check
// per trusted key): the file itself when the bundle is a folder, else its
// bytes read into memory, at most max of them.
func (v *verifier) openSeekable(rel string, max int64) (io.ReadSeeker, func(), error) {
	f, err := v.fs.Open(rel)
	if err != nil {
		return nil, nil, err
	}
	if rs, ok := f.(io.ReadSeeker); ok {
		return rs, func() { f.Close() }, nil
	}
	defer f.Close()
	data, err := sign.ReadAllLimited(f, max)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", rel, err)
	}
	return bytes.NewReader(data), func() {}, nil
}

func (v *verifier) hashFile(rel string) (Digest, error) {
	f, err := v.fs.Open(rel)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	return HashReader(f, v.opts.Progress)
}
