package rotation

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/stellaops/stellaops-cli/internal/atomicfile"
	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// ResignOptions configures Resign.
type ResignOptions struct {
	// Dir is the bundle folder to re-sign in place.
	Dir    string
	Signer *sign.Signer
	// KeepSignatures keeps the old DSSE signatures beside the new one when
	// mirror.json's bytes do not change.
	KeepSignatures bool
	// Roots, when set, verify the bundle as it is before it is re-signed
	// (at Now, applying Rotate to its statements).
	Roots  *trust.Roots
	Now    time.Time
	Rotate bundle.RotationFunc
}

// ResignResult describes a re-signed bundle.
type ResignResult struct {
	SchemaVersion          int      `json:"schemaVersion"`
	BundlePath             string   `json:"bundlePath"`
	ExportID               string   `json:"exportId"`
	KeyID                  string   `json:"keyId"`
	Alg                    string   `json:"alg"`
	PreviousKeyIDs         []string `json:"previousKeyIds"`
	KeptSignatures         []string `json:"keptSignatures"`
	Rewritten              []string `json:"rewritten"`
	PreviousManifestSHA256 string   `json:"previousManifestSha256"`
	ManifestSHA256         string   `json:"manifestSha256"`
	Warnings               []string `json:"warnings"`
}

// Resign signs an existing bundle folder again with another key without
// changing its content: every domain's bundle.json.jws and bundle.json.sig,
// the signature {alg, kid} of the domain manifests and index.json when they
// change, mirror.json's digests of those files, the DSSE envelope and
// SHA256SUMS. It refuses a bundle whose files do not match mirror.json.
//
// The new bundle is written into a folder beside Dir, verified against the
// new key, and swapped in with two renames; on any failure Dir stays as it
// was.
func Resign(ctx context.Context, opts ResignOptions) (*ResignResult, error) {
	if opts.Signer == nil {
		return nil, failure.Usagef("rotate resign: no signing key")
	}
	dir := filepath.Clean(opts.Dir)
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("bundle %s: %w", dir, err))
	}
	if !st.IsDir() {
		return nil, failure.WithHint(failure.Usagef("bundle %s: not a folder", dir),
			"re-sign an unpacked bundle folder (not an archive or a link such as ROOT/latest)")
	}
	parent := filepath.Dir(dir)
	if _, err := os.Lstat(filepath.Join(parent, ".stellaops")); err == nil {
		return nil, failure.WithHint(failure.Usagef("bundle %s is inside an export root, whose exports are never modified", dir),
			"copy the bundle out, re-sign the copy and import it")
	}
	b, err := readBundle(dir)
	if err != nil {
		return nil, err
	}
	if opts.Roots != nil {
		if _, err := bundle.VerifyDir(ctx, dir, bundle.VerifyOptions{Roots: opts.Roots, Now: opts.Now,
			VerifyChecksums: true, VerifyDSSE: true, Rotate: opts.Rotate}); err != nil {
			return nil, fmt.Errorf("bundle %s does not verify against --trust-roots before re-signing: %w", dir, err)
		}
	}
	s := opts.Signer
	res := &ResignResult{SchemaVersion: 1, BundlePath: dir, ExportID: b.manifest.ExportID, KeyID: s.KeyID(), Alg: s.Alg(),
		PreviousKeyIDs: b.keyIDs, KeptSignatures: []string{}, Rewritten: []string{}, Warnings: []string{},
		PreviousManifestSHA256: bundle.HashBytes(b.manifestBytes).SHA256}

	// New signatures and documents, in memory (all of them are small).
	changed := map[string][]byte{}
	info := bundle.SignatureInfo{Alg: s.Alg(), Kid: s.KeyID()}
	for _, d := range b.manifest.Domains {
		if err := ctx.Err(); err != nil {
			return nil, failure.Classify(failure.ErrInterrupted, err)
		}
		base := bundle.MirrorDir + "/" + d + "/"
		jws, err := signFile(filepath.Join(dir, filepath.FromSlash(base+bundle.DomainBundleName)), func(r io.Reader) ([]byte, error) {
			j, err := s.SignJWS(r)
			return []byte(j), err
		})
		if err != nil {
			return nil, err
		}
		changed[base+bundle.DomainJWSName] = jws
		sig, err := signFile(filepath.Join(dir, filepath.FromSlash(base+bundle.DomainBundleName)), s.SignBlob)
		if err != nil {
			return nil, err
		}
		changed[base+bundle.DomainSigName] = sig
		var dm bundle.DomainManifest
		rel := base + bundle.DomainManifestName
		if err := readDocument(dir, rel, &dm); err != nil {
			return nil, err
		}
		if dm.Signature != info {
			dm.Signature = info
			data, err := bundle.MarshalDocument(dm)
			if err != nil {
				return nil, err
			}
			changed[rel] = data
		}
	}
	var idx bundle.Index
	if err := readDocument(dir, bundle.IndexPath, &idx); err != nil {
		return nil, err
	}
	idxChanged := false
	for i := range idx.Domains {
		d := &idx.Domains[i]
		if d.Signed && (d.Signature == nil || *d.Signature != info) {
			d.Signature = &bundle.SignatureInfo{Alg: info.Alg, Kid: info.Kid}
			idxChanged = true
		}
	}
	if idxChanged {
		data, err := bundle.MarshalDocument(idx)
		if err != nil {
			return nil, err
		}
		changed[bundle.IndexPath] = data
	}

	// mirror.json lists the digests of the rewritten files.
	m := b.manifest
	m.Files = append([]bundle.FileEntry(nil), b.manifest.Files...)
	for i, f := range m.Files {
		data, ok := changed[f.Path]
		if !ok {
			continue
		}
		d := bundle.HashBytes(data)
		if d.SHA256 == f.SHA256 && d.Size == f.Size {
			delete(changed, f.Path)
			continue
		}
		m.Files[i].Size, m.Files[i].SHA256 = d.Size, d.SHA256
	}
	for p := range changed {
		if _, listed := b.manifest.File(p); !listed {
			return nil, fmt.Errorf("%w: %s is not listed in mirror.json", bundle.ErrMissingFile, p)
		}
	}
	manifest, err := bundle.MarshalDocument(m)
	if err != nil {
		return nil, err
	}
	env, err := sign.SignDSSE(ctx, bundle.PayloadType, manifest, s)
	if err != nil {
		return nil, err
	}
	if opts.KeepSignatures {
		oldPayload, _ := base64.StdEncoding.Strict().DecodeString(b.envelope.Payload)
		switch {
		case !bytes.Equal(oldPayload, b.manifestBytes):
			res.Warnings = append(res.Warnings, "--keep-signatures: the old DSSE envelope does not cover this mirror.json; its signatures were dropped")
		case bytes.Equal(manifest, b.manifestBytes):
			env, res.KeptSignatures, err = keepSignatures(env, b.envelope, s.KeyID())
			if err != nil {
				return nil, err
			}
		default:
			res.Warnings = append(res.Warnings, fmt.Sprintf("--keep-signatures: the old DSSE signatures (%s) were dropped: "+
				"mirror.json lists the digests of the new bundle.json.jws and bundle.json.sig, so its bytes changed and the old signatures no longer cover it",
				joinShort(b.keyIDs)))
		}
	}
	if !bytes.Equal(manifest, b.manifestBytes) {
		changed[bundle.ManifestFile] = manifest
	}
	changed[bundle.EnvelopeFile] = env
	sums := append([]bundle.FileEntry(nil), m.Files...)
	for _, name := range []string{bundle.ManifestFile, bundle.EnvelopeFile} {
		data := manifest
		if name == bundle.EnvelopeFile {
			data = env
		}
		d := bundle.HashBytes(data)
		sums = append(sums, bundle.FileEntry{Path: name, Size: d.Size, SHA256: d.SHA256})
	}
	changed[bundle.ChecksumsFile] = bundle.FormatChecksums(sums)
	for p, data := range changed {
		old, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err == nil && bytes.Equal(old, data) {
			delete(changed, p)
			continue
		}
		res.Rewritten = append(res.Rewritten, p)
	}
	sort.Strings(res.Rewritten)
	res.ManifestSHA256 = bundle.HashBytes(manifest).SHA256
	if len(changed) == 0 {
		res.Warnings = append(res.Warnings, "nothing to change: the bundle already carries exactly these signatures")
		return res, nil
	}

	if err := swapIn(ctx, dir, st.Mode().Perm(), b.files, changed, s, m.GeneratedAt); err != nil {
		return nil, err
	}
	return res, nil
}

// existingBundle is what Resign reads before it writes anything.
type existingBundle struct {
	manifestBytes []byte
	manifest      bundle.Manifest
	envelope      *dsse.Envelope
	keyIDs        []string
	// files are the relative paths of every file in the folder.
	files []string
}

// readBundle reads mirror.json and its envelope strictly and checks every
// file of the folder against mirror.json: re-signing must never vouch for
// content that differs from what was signed.
func readBundle(dir string) (*existingBundle, error) {
	b := &existingBundle{}
	data, err := readLimited(filepath.Join(dir, bundle.ManifestFile), bundle.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	b.manifestBytes = data
	if err := strictjson.Unmarshal(data, &b.manifest); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", bundle.ErrMalformed, bundle.ManifestFile, err)
	}
	if err := sameEncoding(bundle.ManifestFile, data, b.manifest); err != nil {
		return nil, err
	}
	envData, err := readLimited(filepath.Join(dir, bundle.EnvelopeFile), sign.MaxEnvelopeSize)
	if err != nil {
		return nil, err
	}
	env, err := sign.ParseEnvelope(envData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bundle.EnvelopeFile, err)
	}
	b.envelope = env
	for _, s := range env.Signatures {
		b.keyIDs = append(b.keyIDs, s.KeyID)
	}
	problems := 0
	var first error
	report := func(err error) {
		problems++
		if first == nil {
			first = err
		}
	}
	seen := map[string]bool{}
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." || e.IsDir() {
			return nil
		}
		if !e.Type().IsRegular() {
			report(fmt.Errorf("%w: %s: not a regular file", bundle.ErrUnsafePath, rel))
			return nil
		}
		b.files = append(b.files, rel)
		switch rel {
		case bundle.ManifestFile, bundle.EnvelopeFile, bundle.ChecksumsFile:
			return nil
		}
		f, listed := b.manifest.File(rel)
		if !listed {
			report(fmt.Errorf("%w: %s is not listed in mirror.json", bundle.ErrExtraFile, rel))
			return nil
		}
		seen[rel] = true
		d, err := bundle.HashFile(p, nil)
		if err != nil {
			return err
		}
		if d.Size != f.Size || d.SHA256 != f.SHA256 {
			report(fmt.Errorf("%w: %s differs from mirror.json", bundle.ErrDigestMismatch, rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", dir, err)
	}
	for _, f := range b.manifest.Files {
		if !seen[f.Path] {
			report(fmt.Errorf("%w: %s is listed in mirror.json but missing", bundle.ErrMissingFile, f.Path))
		}
	}
	if first != nil {
		if problems > 1 {
			first = fmt.Errorf("%w (and %d more problem(s))", first, problems-1)
		}
		return nil, failure.WithHint(fmt.Errorf("bundle %s does not match its mirror.json, so it is not re-signed: %w", dir, first),
			"run 'stellaops-cli mirror verify' on it; re-sign only bundles whose content is intact")
	}
	return b, nil
}

func readLimited(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", bundle.ErrMissingFile, p)
		}
		return nil, err
	}
	defer f.Close()
	data, err := sign.ReadAllLimited(f, max)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

// readDocument reads a bundle document strictly and makes sure that
// encoding it again gives the same bytes, so that changing one field
// changes nothing else.
func readDocument(dir, rel string, v any) error {
	data, err := readLimited(filepath.Join(dir, filepath.FromSlash(rel)), bundle.MaxDocumentSize)
	if err != nil {
		return err
	}
	if err := strictjson.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s: %v", bundle.ErrMalformed, rel, err)
	}
	return sameEncoding(rel, data, v)
}

func sameEncoding(rel string, data []byte, v any) error {
	again, err := bundle.MarshalDocument(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, data) {
		return failure.Verificationf("%s is not in the encoding stellaops-cli writes; re-signing would change more than its signatures", rel)
	}
	return nil
}

func signFile(p string, fn func(io.Reader) ([]byte, error)) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return fn(f)
}

// keepSignatures adds the old envelope's signatures, except those under the
// new key's id, to the new envelope over the same payload.
func keepSignatures(newEnv []byte, old *dsse.Envelope, keyID string) ([]byte, []string, error) {
	env, err := sign.ParseEnvelope(newEnv)
	if err != nil {
		return nil, nil, err
	}
	kept := []string{}
	for _, s := range old.Signatures {
		if s.KeyID == keyID {
			continue
		}
		env.Signatures = append(env.Signatures, s)
		kept = append(kept, s.KeyID)
	}
	out, err := sign.MarshalEnvelope(env)
	return out, kept, err
}

func joinShort(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ", "
		}
		out += ShortID(id)
	}
	return out
}

// swapIn builds the re-signed bundle beside dir (unchanged files hard-linked
// or copied, changed ones written anew), verifies it against the new key
// and replaces dir with it.
func swapIn(ctx context.Context, dir string, mode fs.FileMode, files []string, changed map[string][]byte, s *sign.Signer, generated time.Time) error {
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".resign-")
	if err != nil {
		return fmt.Errorf("create a temporary folder beside %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	for _, rel := range files {
		if err := ctx.Err(); err != nil {
			return failure.Classify(failure.ErrInterrupted, err)
		}
		dst := filepath.Join(tmp, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if data, ok := changed[rel]; ok {
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				return fmt.Errorf("write %s: %w", dst, err)
			}
			continue
		}
		if err := linkOrCopy(filepath.Join(dir, filepath.FromSlash(rel)), dst); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncTree(tmp); err != nil {
		return err
	}
	roots := &trust.Roots{Keys: []trust.Key{s.TrustKey()}}
	if _, err := bundle.VerifyDir(ctx, tmp, bundle.VerifyOptions{Roots: roots, Now: generated,
		VerifyChecksums: true, VerifyDSSE: true}); err != nil {
		return fmt.Errorf("the re-signed bundle does not verify against the new key (%s left unchanged): %w", dir, err)
	}
	if err := ctx.Err(); err != nil {
		return failure.Classify(failure.ErrInterrupted, err)
	}
	// A fresh unused name: os.Rename does not replace a folder, even an
	// empty one.
	backup, err := os.MkdirTemp(parent, "."+base+".resign-old-")
	if err != nil {
		return fmt.Errorf("create a backup name beside %s: %w", dir, err)
	}
	if err := os.Remove(backup); err != nil {
		return err
	}
	if err := os.Rename(dir, backup); err != nil {
		return fmt.Errorf("move %s aside: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if rerr := os.Rename(backup, dir); rerr != nil {
			return fmt.Errorf("put the re-signed bundle in place: %w; and moving the original back from %s failed: %v", err, backup, rerr)
		}
		return fmt.Errorf("put the re-signed bundle in place: %w (%s left unchanged)", err, dir)
	}
	done = true
	_ = atomicfile.SyncDir(parent)
	if err := os.RemoveAll(backup); err != nil {
		return fmt.Errorf("bundle re-signed, but removing the original copy %s failed: %w", backup, err)
	}
	return nil
}

// linkOrCopy hard-links src to dst, copying when the file system refuses.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
