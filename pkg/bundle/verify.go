package bundle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
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
	Digests map[string]Digest
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
	ctx     context.Context
	fs      FS
	opts    VerifyOptions
	r       *Report
	roots   *trust.Roots
	m       *Manifest
	listed  map[string]FileEntry
	digests map[string]Digest
	// present are the regular files found, with their sizes.
	present map[string]int64
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

func (v *verifier) run() error {
	r := v.r
	envBytes, envErr := v.readSmall(EnvelopeFile, sign.MaxEnvelopeSize)
	mBytes, mErr := v.readSmall(ManifestFile, MaxManifestSize)
	if mErr != nil {
		r.problem(ManifestFile, CheckManifest, missingOr(mErr), "", "")
		r.check(CheckManifest, statusErr, "cannot read "+ManifestFile)
		return nil
	}
	r.ManifestSHA256 = HashBytes(mBytes).SHA256

	if err := v.applyRotations(); err != nil {
		return err
	}
	r.Roots = v.roots

	// The signature over the exact bytes comes before any parsing.
	if !v.opts.VerifyDSSE {
		r.check(CheckDSSE, "skip", "--verify-dsse=false: the manifest's signature was not checked")
		r.Warnings = append(r.Warnings, "DSSE verification disabled: mirror.json is not authenticated")
	} else if envErr != nil {
		r.problem(EnvelopeFile, CheckDSSE, missingOr(envErr), "", "")
		r.check(CheckDSSE, statusErr, "cannot read "+EnvelopeFile)
	} else {
		res, err := sign.VerifyDSSE(envBytes, PayloadType, v.roots, v.opts.Now, v.opts.Threshold)
		switch {
		case err != nil:
			r.problem(EnvelopeFile, CheckDSSE, err, "", "")
			r.check(CheckDSSE, statusErr, err.Error())
			// A signature refused only for its key's validity window still
			// binds its payload: a mirror.json that differs from it is forged,
			// a verification failure whatever the time.
			if errors.Is(err, failure.ErrPolicy) {
				if p, ok := envelopePayload(envBytes); ok && !bytes.Equal(p, mBytes) {
					err := fmt.Errorf("%w: not the bytes mirror.dsse.json signed (modified after signing)", ErrMalformed)
					r.problem(ManifestFile, CheckDSSE, err, HashBytes(p).SHA256, r.ManifestSHA256)
				}
			}
		case !bytes.Equal(res.Payload, mBytes):
			err := fmt.Errorf("%w: not the bytes mirror.dsse.json signed (modified after signing)", ErrMalformed)
			r.problem(ManifestFile, CheckDSSE, err, HashBytes(res.Payload).SHA256, r.ManifestSHA256)
			r.check(CheckDSSE, statusErr, "mirror.json differs from the signed payload")
		default:
			r.SignerKeyIDs = res.KeyIDs()
			detail := "signed by " + strings.Join(res.KeyIDs(), ", ")
			r.check(CheckDSSE, statusPass, detail)
			for _, ig := range res.Ignored {
				r.Warnings = append(r.Warnings, "mirror.dsse.json: "+ig)
			}
		}
	}

	var m Manifest
	if err := strictjson.Unmarshal(mBytes, &m); err != nil {
		r.problem(ManifestFile, CheckManifest, fmt.Errorf("%w: %v", ErrMalformed, err), "", "")
		r.check(CheckManifest, statusErr, err.Error())
		return nil
	}
	v.m = &m
	r.Manifest = &m
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
	if !v.opts.VerifyChecksums || v.opts.Digests != nil {
		if err := v.checkDigests(nil); err != nil {
			return err
		}
		return v.checkDocuments()
	}
	// The signed documents are hashed first; the document checks then run
	// while the VEX files hash in the background. They record into a
	// scratch report that is appended after the digests check, so the
	// report reads as if the steps had run one after the other.
	var docs, payloads []FileEntry
	for _, f := range v.m.Files {
		if KeepContents(f.Path) {
			docs = append(docs, f)
		} else {
			payloads = append(payloads, f)
		}
	}
	digests, err := v.hashAll(docs)
	if err != nil {
		return err
	}
	type hashed struct {
		digests map[string]Digest
		err     error
	}
	done := make(chan hashed, 1)
	go func() {
		d, err := v.hashAll(payloads)
		done <- hashed{d, err}
	}()
	v.digests = digests
	main := v.r
	v.r = newReport(main.BundlePath, main.Now)
	docErr := v.checkDocuments()
	scratch := v.r
	v.r = main
	h := <-done
	if h.err != nil {
		return h.err
	}
	if docErr != nil {
		return docErr
	}
	maps.Copy(digests, h.digests)
	if err := v.checkDigests(digests); err != nil {
		return err
	}
	main.Checks = append(main.Checks, scratch.Checks...)
	main.Problems = append(main.Problems, scratch.Problems...)
	main.Warnings = append(main.Warnings, scratch.Warnings...)
	return nil
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

// envelopePayload returns the payload an envelope carries, unverified.
func envelopePayload(data []byte) ([]byte, bool) {
	env, err := sign.ParseEnvelope(data)
	if err != nil {
		return nil, false
	}
	p, err := base64.StdEncoding.Strict().DecodeString(env.Payload)
	return p, err == nil
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
	v.listed = map[string]FileEntry{}
	folded := map[string]string{}
	prev := ""
	for _, f := range m.Files {
		if err := CheckPath(f.Path); err != nil {
			r.problem(f.Path, CheckManifest, err, "", "")
			r.check(CheckManifest, statusErr, err.Error())
			return false
		}
		switch f.Path {
		case ManifestFile, EnvelopeFile, ChecksumsFile:
			return bad("lists %s, which cannot list itself", f.Path)
		}
		if f.Path <= prev {
			return bad("files not sorted by path or repeated at %q", f.Path)
		}
		prev = f.Path
		key := FoldPath(f.Path)
		if other, dup := folded[key]; dup {
			err := fmt.Errorf("%w: %q and %q collide on case-insensitive or normalising file systems", ErrUnsafePath, other, f.Path)
			r.problem(f.Path, CheckManifest, err, "", "")
			r.check(CheckManifest, statusErr, err.Error())
			return false
		}
		folded[key] = f.Path
		if f.Size < 0 || len(f.SHA256) != 64 || strings.ToLower(f.SHA256) != f.SHA256 {
			return bad("entry %q: size or sha256 malformed", f.Path)
		}
		if _, err := hex.DecodeString(f.SHA256); err != nil {
			return bad("entry %q: sha256 is not hex", f.Path)
		}
		v.listed[f.Path] = f
		r.Files++
		r.Bytes += f.Size
	}
	if _, ok := v.listed[IndexPath]; !ok {
		return bad("does not list %s", IndexPath)
	}
	r.check(CheckManifest, statusPass, fmt.Sprintf("export %s, sequence %d, %d files, %d domains", m.ExportID, m.Sequence, len(m.Files), len(m.Domains)))
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

// checkFiles compares the folder's files with the listing.
func (v *verifier) checkFiles() error {
	r := v.r
	problems := len(r.Problems)
	present, other, err := v.fs.Files()
	if err != nil {
		return fmt.Errorf("read bundle %s: %w", r.BundlePath, err)
	}
	v.present = present
	for _, rel := range sortedKeys(other) {
		r.problem(rel, CheckFiles, fmt.Errorf("%w: not a regular file (%s)", ErrUnsafePath, other[rel]), "regular file", other[rel])
	}
	for _, f := range v.m.Files {
		if _, ok := present[f.Path]; !ok {
			r.problem(f.Path, CheckFiles, fmt.Errorf("%w: listed in mirror.json but not in the bundle", ErrMissingFile), "present", "missing")
		}
	}
	var extra []string
	for p := range present {
		if _, ok := v.listed[p]; ok {
			continue
		}
		switch p {
		case ManifestFile, EnvelopeFile, ChecksumsFile:
			continue
		}
		extra = append(extra, p)
	}
	sort.Strings(extra)
	for _, p := range extra {
		r.problem(p, CheckFiles, fmt.Errorf("%w: present in the bundle but not listed in mirror.json", ErrExtraFile), "absent", "present")
	}
	if _, ok := present[ChecksumsFile]; !ok {
		r.problem(ChecksumsFile, CheckFiles, fmt.Errorf("%w: file not found", ErrMissingFile), "present", "missing")
	}
	if len(r.Problems) > problems {
		r.check(CheckFiles, statusErr, fmt.Sprintf("%d problem(s)", len(r.Problems)-problems))
	} else {
		r.check(CheckFiles, statusPass, fmt.Sprintf("%d listed files present, none extra", len(v.m.Files)))
	}
	return nil
}

// checkDigests compares the digests of the listed files with mirror.json:
// digests when given, else those computed by the caller (opts.Digests), else
// it hashes every listed file (in parallel, streaming).
func (v *verifier) checkDigests(digests map[string]Digest) error {
	r := v.r
	if !v.opts.VerifyChecksums {
		r.check(CheckDigests, "skip", "--verify-checksums=false: file digests were not checked")
		r.Warnings = append(r.Warnings, "checksum verification disabled: file contents are not checked against mirror.json")
		return nil
	}
	if digests == nil {
		digests = v.opts.Digests
	}
	if digests == nil {
		var err error
		digests, err = v.hashAll(v.m.Files)
		if err != nil {
			return err
		}
	}
	v.digests = digests
	problems := len(r.Problems)
	for _, f := range v.m.Files {
		d, ok := digests[f.Path]
		if !ok {
			continue // reported as missing
		}
		if d.Size != f.Size {
			r.problem(f.Path, CheckDigests, fmt.Errorf("%w: %d bytes, mirror.json lists %d", ErrSizeMismatch, d.Size, f.Size), fmt.Sprint(f.Size), fmt.Sprint(d.Size))
			continue
		}
		if d.SHA256 != f.SHA256 {
			r.problem(f.Path, CheckDigests, fmt.Errorf("%w: sha256 differs from mirror.json", ErrDigestMismatch), f.SHA256, d.SHA256)
		}
	}
	if len(r.Problems) > problems {
		r.check(CheckDigests, statusErr, fmt.Sprintf("%d file(s) differ from mirror.json", len(r.Problems)-problems))
	} else {
		r.check(CheckDigests, statusPass, fmt.Sprintf("%d files, %s, sha256 and sizes match", len(v.m.Files), HumanBytes(v.r.Bytes)))
	}
	return nil
}

func (v *verifier) hashAll(list []FileEntry) (map[string]Digest, error) {
	jobs := make(chan string)
	out := make(map[string]Digest, len(list))
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), 8)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				// A file whose size already differs from the listing is
				// not read: a sparse file of a terabyte would take hours.
				if size, ok := v.present[p]; ok && size != v.listed[p].Size {
					mu.Lock()
					out[p] = Digest{Size: size}
					mu.Unlock()
					continue
				}
				d, err := v.hashFile(p)
				mu.Lock()
				if err != nil {
					// Absent files and ones that are not regular files
					// are reported by checkFiles.
					if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrUnsafePath) && firstErr == nil {
						firstErr = fmt.Errorf("read %s: %w", p, err)
					}
				} else {
					out[p] = d
				}
				mu.Unlock()
			}
		}()
	}
	// Largest first keeps both workers busy to the end.
	files := slices.Clone(list)
	sort.SliceStable(files, func(i, j int) bool { return files[i].Size > files[j].Size })
	for _, f := range files {
		if v.ctx.Err() != nil {
			break
		}
		jobs <- f.Path
	}
	close(jobs)
	wg.Wait()
	if err := v.ctx.Err(); err != nil {
		return nil, failure.Classify(failure.ErrInterrupted, err)
	}
	return out, firstErr
}

// checkChecksums compares SHA256SUMS with mirror.json and the signed files.
func (v *verifier) checkChecksums() {
	r := v.r
	if !v.opts.VerifyChecksums {
		r.check(CheckChecksums, "skip", "--verify-checksums=false")
		return
	}
	data, err := v.readSmall(ChecksumsFile, MaxChecksumsSize)
	if err != nil {
		r.check(CheckChecksums, statusErr, "cannot read SHA256SUMS")
		return
	}
	sums, err := ParseChecksums(data)
	if err != nil {
		r.problem(ChecksumsFile, CheckChecksums, err, "", "")
		r.check(CheckChecksums, statusErr, err.Error())
		return
	}
	want := map[string]string{}
	for _, f := range v.m.Files {
		want[f.Path] = f.SHA256
	}
	for _, name := range []string{ManifestFile, EnvelopeFile} {
		if d, err := v.hashFile(name); err == nil {
			want[name] = d.SHA256
		}
	}
	problems := len(r.Problems)
	for p, sum := range sums {
		w, ok := want[p]
		if !ok {
			r.problem(ChecksumsFile, CheckChecksums, fmt.Errorf("%w: lists %s, which mirror.json does not", failure.ErrVerification, p), "", p)
			continue
		}
		if w != sum {
			r.problem(ChecksumsFile, CheckChecksums, fmt.Errorf("%w: entry for %s disagrees", ErrDigestMismatch, p), w, sum)
		}
	}
	for p := range want {
		if _, ok := sums[p]; !ok {
			r.problem(ChecksumsFile, CheckChecksums, fmt.Errorf("%w: no entry for %s", ErrMissingFile, p), p, "")
		}
	}
	if len(r.Problems) > problems {
		r.check(CheckChecksums, statusErr, fmt.Sprintf("%d disagreement(s) with mirror.json", len(r.Problems)-problems))
	} else {
		r.check(CheckChecksums, statusPass, fmt.Sprintf("%d entries agree with mirror.json", len(sums)))
	}
}

// ParseChecksums reads "<hex>  <path>" lines (the sha256sum format).
func ParseChecksums(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			sum, name, ok = strings.Cut(line, " *")
		}
		if !ok || len(sum) != 64 {
			return nil, fmt.Errorf("%w: line %d is not '<sha256>  <path>'", ErrMalformed, n)
		}
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("%w: line %d: sha256 is not hex", ErrMalformed, n)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: line %d repeats %s", ErrMalformed, n, name)
		}
		out[name] = strings.ToLower(sum)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return out, nil
}

// trusted reports whether a listed file's bytes have been checked against
// mirror.json (or checksum verification is off).
func (v *verifier) trusted(rel string) bool {
	if !v.opts.VerifyChecksums {
		_, listed := v.listed[rel]
		return listed
	}
	d, ok := v.digests[rel]
	f, listed := v.listed[rel]
	return ok && listed && d.SHA256 == f.SHA256 && d.Size == f.Size
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
			b, ok := v.listed[MirrorDir+"/"+d.ID+"/"+DomainBundleName]
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

	var dm DomainManifest
	manifestOK := v.readDoc(base+DomainManifestName, &dm, name)
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
		if b := v.listed[base+DomainBundleName]; dm.Bundle != b {
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
		if err := v.checkDomainBundle(id, base, &notes); err != nil {
			return err
		}
	}
	if len(r.Problems) > problems {
		r.check(name, statusErr, fmt.Sprintf("%d problem(s)", len(r.Problems)-problems))
	} else {
		r.check(name, statusPass, strings.Join(notes, "; "))
	}
	return nil
}

func (v *verifier) checkDomainBundle(id, base string, notes *[]string) error {
	r := v.r
	rel := base + DomainBundleName
	name := CheckDomain + " " + id
	f, err := v.fs.Open(rel)
	if err != nil {
		r.problem(rel, name, missingOr(err), "", "")
		return nil
	}
	lr := &io.LimitedReader{R: f, N: MaxDomainBundleSize + 1}
	b, advisories, err := readDomainBundle(bufio.NewReaderSize(lr, 256<<10))
	f.Close()
	if lr.N <= 0 {
		r.problem(rel, name, missingOr(fmt.Errorf("%s: larger than %d bytes", rel, int64(MaxDomainBundleSize))), "", "")
		return nil
	}
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			r.problem(rel, name, missingOr(fmt.Errorf("%s: %w", rel, err)), "", "")
			return nil
		}
		r.problem(rel, name, fmt.Errorf("%w: %v", ErrMalformed, err), "", "")
		return nil
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
	inBundle := map[string]bool{}
	for _, e := range b.Exports {
		p := base + e.Path
		if err := CheckPath(p); err != nil || !strings.HasPrefix(e.Path, "vex/") {
			bad("export %q has an unsafe path %q", e.Key, e.Path)
			continue
		}
		inBundle[p] = true
		f, ok := v.listed[p]
		if !ok {
			bad("export %q: %s is not listed in mirror.json", e.Key, p)
			continue
		}
		if e.ArtifactDigest != "sha256:"+f.SHA256 || e.ArtifactSizeBytes != f.Size {
			r.problem(p, name, fmt.Errorf("%w: the signed bundle.json vouches for other bytes", ErrDigestMismatch), e.ArtifactDigest, "sha256:"+f.SHA256)
		}
	}
	for p := range v.listed {
		if strings.HasPrefix(p, base+"vex/") && !inBundle[p] {
			r.problem(p, name, fmt.Errorf("%w: VEX file not listed in the signed bundle.json", ErrExtraFile), "", "")
		}
	}
	*notes = append(*notes, fmt.Sprintf("%d advisories, %d VEX exports", advisories, len(b.Exports)))
	return nil
}

func (v *verifier) applyRotations() error {
	if v.opts.Rotate == nil {
		return nil
	}
	present, _, err := v.fs.Files()
	if err != nil {
		return err
	}
	statements := map[string][]byte{}
	for _, rel := range sortedKeys(present) {
		if !strings.HasPrefix(rel, KeysDir+"/") || strings.Count(rel, "/") != 1 {
			continue
		}
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
		if _, ok := v.listed[p]; !ok || !strings.HasPrefix(p, KeysDir+"/") {
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
