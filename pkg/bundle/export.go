package bundle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
)

// DefaultExpiry is how long an export stays valid unless told otherwise.
const DefaultExpiry = 168 * time.Hour

// ExportOptions configures Export.
type ExportOptions struct {
	Source   string   // the source tree (CONTRACT §1.1)
	Out      string   // the bundle folder to create; must not exist
	Domains  []string // only these domains (default all)
	Signer   *sign.Signer
	Sequence int64         // default: Unix seconds of Created
	Created  time.Time     // default: now
	Expires  time.Duration // default 168h
	Producer string
	// Rotations are rotation statement files placed under keys/.
	Rotations []string
	// Progress is called with bytes written.
	Progress func(n int64)
}

// ExportResult summarises a finished export.
type ExportResult struct {
	SchemaVersion  int            `json:"schemaVersion"`
	Out            string         `json:"out,omitempty"`
	ExportID       string         `json:"exportId"`
	Sequence       int64          `json:"sequence"`
	GeneratedAt    time.Time      `json:"generatedAt"`
	ExpiresAt      time.Time      `json:"expiresAt"`
	KeyID          string         `json:"keyId"`
	Alg            string         `json:"alg"`
	Domains        []DomainResult `json:"domains"`
	Files          int            `json:"files"`
	Bytes          int64          `json:"bytes"`
	ManifestSHA256 string         `json:"manifestSha256"`
	Archive        string         `json:"archive,omitempty"`
	Parts          int            `json:"parts,omitempty"`
}

// DomainResult summarises one exported domain.
type DomainResult struct {
	ID         string `json:"id"`
	Advisories int    `json:"advisories"`
	VEXExports int    `json:"vexExports"`
	BundleSize int64  `json:"bundleSize"`
}

// Export writes a signed bundle of the source tree to opts.Out. It writes
// into a temporary folder beside Out and renames it at the end, so a failed
// export leaves nothing behind.
func Export(ctx context.Context, opts ExportOptions) (*ExportResult, error) {
	if opts.Signer == nil {
		return nil, failure.Usagef("export: no signing key")
	}
	if opts.Created.IsZero() {
		opts.Created = time.Now()
	}
	created := opts.Created.UTC().Truncate(time.Second)
	if opts.Expires == 0 {
		opts.Expires = DefaultExpiry
	}
	if opts.Expires < 0 {
		return nil, failure.Usagef("--expires must be positive")
	}
	if opts.Sequence == 0 {
		opts.Sequence = created.Unix()
	}
	if opts.Sequence < 0 {
		return nil, failure.Usagef("--sequence must be positive")
	}
	if opts.Producer == "" {
		opts.Producer = "stellaops-cli"
	}
	if _, err := os.Lstat(opts.Out); err == nil {
		return nil, failure.WithHint(failure.Usagef("output %s already exists", opts.Out),
			"choose a new --out folder; bundles are never modified in place")
	}
	domains, err := scanSource(opts.Source, opts.Domains, created)
	if err != nil {
		return nil, err
	}
	rotations, err := readRotations(opts.Rotations)
	if err != nil {
		return nil, err
	}

	parent := filepath.Dir(filepath.Clean(opts.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(opts.Out)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("create temporary folder in %s: %w", parent, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}

	w := &bundleWriter{ctx: ctx, dir: tmp, tick: opts.Progress}
	res := &ExportResult{
		SchemaVersion: SchemaVersion,
		Out:           opts.Out,
		ExportID:      created.Format(ExportIDLayout),
		Sequence:      opts.Sequence,
		GeneratedAt:   created,
		ExpiresAt:     created.Add(opts.Expires).UTC().Truncate(time.Second),
		KeyID:         opts.Signer.KeyID(),
		Alg:           opts.Signer.Alg(),
	}
	index := Index{SchemaVersion: SchemaVersion, ExportID: res.ExportID, GeneratedAt: created}
	var ids []string
	for _, d := range domains {
		entry, dr, err := w.writeDomain(d, res.ExportID, created, opts.Signer)
		if err != nil {
			return nil, err
		}
		index.Domains = append(index.Domains, entry)
		res.Domains = append(res.Domains, dr)
		ids = append(ids, d.ID)
	}
	var rotationPaths []string
	for _, r := range rotations {
		p := KeysDir + "/" + r.name
		if err := w.writeBytes(p, r.data); err != nil {
			return nil, err
		}
		rotationPaths = append(rotationPaths, p)
	}
	if err := w.writeJSON(IndexPath, index); err != nil {
		return nil, err
	}

	sort.Slice(w.files, func(i, j int) bool { return w.files[i].Path < w.files[j].Path })
	m := Manifest{
		SchemaVersion: SchemaVersion,
		ExportID:      res.ExportID,
		Sequence:      opts.Sequence,
		GeneratedAt:   created,
		ExpiresAt:     res.ExpiresAt,
		Producer:      opts.Producer,
		Domains:       ids,
		Rotations:     rotationPaths,
		Files:         w.files,
	}
	mjson, err := MarshalDocument(m)
	if err != nil {
		return nil, err
	}
	env, err := sign.SignDSSE(ctx, PayloadType, mjson, opts.Signer)
	if err != nil {
		return nil, err
	}
	for _, f := range w.files {
		res.Files++
		res.Bytes += f.Size
	}
	listed := append([]FileEntry(nil), w.files...)
	if err := w.writeBytes(ManifestFile, mjson); err != nil {
		return nil, err
	}
	if err := w.writeBytes(EnvelopeFile, env); err != nil {
		return nil, err
	}
	sums := append(listed, w.files[len(w.files)-2:]...)
	if err := w.writeBytesUnlisted(ChecksumsFile, FormatChecksums(sums)); err != nil {
		return nil, err
	}
	res.ManifestSHA256 = HashBytes(mjson).SHA256

	if err := atomicfile.SyncTree(tmp); err != nil {
		return nil, fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, failure.Classify(failure.ErrInterrupted, err)
	}
	if err := os.Rename(tmp, opts.Out); err != nil {
		return nil, fmt.Errorf("rename %s to %s: %w", tmp, opts.Out, err)
	}
	ok = true
	_ = atomicfile.SyncDir(parent)
	return res, nil
}

// FormatChecksums writes SHA256SUMS lines ("<hex>  <path>") sorted by path.
func FormatChecksums(files []FileEntry) []byte {
	sorted := append([]FileEntry(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var b bytes.Buffer
	for _, f := range sorted {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Path)
	}
	return b.Bytes()
}

// MarshalDocument encodes a bundle document: two-space indentation, the
// struct's field order, no HTML escaping, a final newline.
func MarshalDocument(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type rotationFile struct {
	name string
	data []byte
}

func readRotations(paths []string) ([]rotationFile, error) {
	var out []rotationFile
	seen := map[string]bool{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read rotation statement %s: %w", p, err))
		}
		if _, err := sign.ParseEnvelope(data); err != nil {
			return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("rotation statement %s: %w", p, err))
		}
		name := filepath.Base(p)
		if !strings.HasSuffix(name, ".json") {
			name += ".json"
		}
		if seen[name] {
			return nil, failure.Usagef("rotation statement %s: another statement has the same file name", p)
		}
		seen[name] = true
		out = append(out, rotationFile{name: name, data: data})
	}
	return out, nil
}

// bundleWriter writes files into the temporary bundle folder and records
// their sizes and digests.
type bundleWriter struct {
	ctx   context.Context
	dir   string
	tick  func(int64)
	files []FileEntry
}

// create opens rel for writing; done records its digest and closes it.
func (w *bundleWriter) create(rel string) (*hashWriter, func() error, error) {
	if err := w.ctx.Err(); err != nil {
		return nil, nil, failure.Classify(failure.ErrInterrupted, err)
	}
	p := filepath.Join(w.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, nil, err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	hw := newHashWriter(bw, w.tick)
	done := func() error {
		if err := bw.Flush(); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", rel, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", rel, err)
		}
		w.files = append(w.files, FileEntry{Path: rel, Size: hw.n, SHA256: hw.sum()})
		return nil
	}
	return hw, done, nil
}

func (w *bundleWriter) writeBytes(rel string, data []byte) error {
	hw, done, err := w.create(rel)
	if err != nil {
		return err
	}
	if _, err := hw.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return done()
}

func (w *bundleWriter) writeBytesUnlisted(rel string, data []byte) error {
	n := len(w.files)
	if err := w.writeBytes(rel, data); err != nil {
		return err
	}
	w.files = w.files[:n]
	return nil
}

func (w *bundleWriter) writeJSON(rel string, v any) error {
	data, err := MarshalDocument(v)
	if err != nil {
		return err
	}
	return w.writeBytes(rel, data)
}

func (w *bundleWriter) last() FileEntry { return w.files[len(w.files)-1] }

func (w *bundleWriter) copyFile(rel, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return failure.Classify(failure.ErrUsage, err)
	}
	defer in.Close()
	hw, done, err := w.create(rel)
	if err != nil {
		return err
	}
	if _, err := copyPooled(hw, in); err != nil {
		done()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return done()
}

func (w *bundleWriter) writeDomain(d sourceDomain, exportID string, created time.Time, s *sign.Signer) (IndexDomain, DomainResult, error) {
	base := MirrorDir + "/" + d.ID
	var exports []VexExport
	formats := map[string]bool{}
	for _, v := range d.VEX {
		rel := "vex/" + v.Key + ".json"
		if err := w.copyFile(base+"/"+rel, v.Path); err != nil {
			return IndexDomain{}, DomainResult{}, err
		}
		f := w.last()
		exports = append(exports, VexExport{
			Key: v.Key, Format: v.Format, CreatedAt: v.CreatedAt,
			ArtifactDigest: "sha256:" + f.SHA256, ArtifactSizeBytes: f.Size, Path: rel,
		})
		formats[v.Format] = true
	}
	if exports == nil {
		exports = []VexExport{}
	}
	if err := w.writeDomainBundle(base+"/"+DomainBundleName, d, created, exports); err != nil {
		return IndexDomain{}, DomainResult{}, err
	}
	bundleEntry := w.last()
	bundlePath := filepath.Join(w.dir, filepath.FromSlash(bundleEntry.Path))

	jws, err := signFile(bundlePath, s.SignJWS)
	if err != nil {
		return IndexDomain{}, DomainResult{}, err
	}
	if err := w.writeBytes(base+"/"+DomainJWSName, []byte(jws)); err != nil {
		return IndexDomain{}, DomainResult{}, err
	}
	sig, err := signFile(bundlePath, func(r io.Reader) (string, error) {
		b, err := s.SignBlob(r)
		return string(b), err
	})
	if err != nil {
		return IndexDomain{}, DomainResult{}, err
	}
	if err := w.writeBytes(base+"/"+DomainSigName, []byte(sig)); err != nil {
		return IndexDomain{}, DomainResult{}, err
	}
	sigInfo := SignatureInfo{Alg: s.Alg(), Kid: s.KeyID()}
	dm := DomainManifest{
		SchemaVersion: SchemaVersion,
		DomainID:      d.ID,
		DisplayName:   d.DisplayName,
		ExportID:      exportID,
		GeneratedAt:   created,
		AdvisoryCount: len(d.Advisories),
		Bundle:        bundleEntry,
		Signature:     sigInfo,
		JWSPath:       base + "/" + DomainJWSName,
		SigPath:       base + "/" + DomainSigName,
		Exports:       exports,
	}
	if err := w.writeJSON(base+"/"+DomainManifestName, dm); err != nil {
		return IndexDomain{}, DomainResult{}, err
	}
	fl := make([]string, 0, len(formats))
	for f := range formats {
		fl = append(fl, f)
	}
	sort.Strings(fl)
	entry := IndexDomain{
		ID: d.ID, DisplayName: d.DisplayName,
		AdvisoryCount: len(d.Advisories), ExportCount: len(exports),
		BundleSize: bundleEntry.Size, BundleSha256: bundleEntry.SHA256,
		ExportFormats: fl, Signed: true, Signature: &sigInfo, LastGenerated: created,
		ManifestPath: base + "/" + DomainManifestName, BundlePath: bundleEntry.Path,
		JWSPath: base + "/" + DomainJWSName, SigPath: base + "/" + DomainSigName,
	}
	return entry, DomainResult{ID: d.ID, Advisories: len(d.Advisories), VEXExports: len(exports), BundleSize: bundleEntry.Size}, nil
}

func signFile(p string, fn func(io.Reader) (string, error)) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return fn(bufio.NewReaderSize(f, copyBuf))
}

// writeDomainBundle streams bundle.json: the header fields, the exports, then
// one compacted advisory per line, sorted by id. Advisories are read one at
// a time.
func (w *bundleWriter) writeDomainBundle(rel string, d sourceDomain, created time.Time, exports []VexExport) error {
	hw, done, err := w.create(rel)
	if err != nil {
		return err
	}
	head := struct {
		SchemaVersion int         `json:"schemaVersion"`
		DomainID      string      `json:"domainId"`
		DisplayName   string      `json:"displayName"`
		GeneratedAt   time.Time   `json:"generatedAt"`
		AdvisoryCount int         `json:"advisoryCount"`
		Exports       []VexExport `json:"exports"`
	}{SchemaVersion, d.ID, d.DisplayName, created, len(d.Advisories), exports}
	hb, err := json.Marshal(head)
	if err != nil {
		done()
		return err
	}
	var buf bytes.Buffer
	buf.Write(hb[:len(hb)-1])
	buf.WriteString(`,"advisories":[`)
	for i, a := range d.Advisories {
		if i%256 == 0 {
			if err := w.ctx.Err(); err != nil {
				done()
				return failure.Classify(failure.ErrInterrupted, err)
			}
		}
		data, err := os.ReadFile(a.Path)
		if err != nil {
			done()
			return failure.Classify(failure.ErrUsage, err)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
		if err := json.Compact(&buf, data); err != nil {
			done()
			return sourceErr(a.Path, "invalid JSON: %v", err)
		}
		if buf.Len() > copyBuf {
			if _, err := hw.Write(buf.Bytes()); err != nil {
				done()
				return fmt.Errorf("write %s: %w", rel, err)
			}
			buf.Reset()
		}
	}
	if len(d.Advisories) > 0 {
		buf.WriteByte('\n')
	}
	buf.WriteString("]}\n")
	if _, err := hw.Write(buf.Bytes()); err != nil {
		done()
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return done()
}
