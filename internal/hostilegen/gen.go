package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/sign"
)

// Times of the corpus. Tests run every case with --now Now; the export
// root they import into is seeded at SeedNow.
var (
	Now     = time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC)
	SeedNow = time.Date(2026, 3, 15, 6, 0, 0, 0, time.UTC)

	created10 = time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	created11 = time.Date(2026, 3, 15, 1, 0, 0, 0, time.UTC)
)

// Files is the corpus: slash-separated paths below testdata/hostile and
// their contents.
type Files map[string][]byte

// WriteTo replaces dir with the corpus.
func (f Files) WriteTo(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, name := range f.Names() {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Names returns the paths in byte order.
func (f Files) Names() []string {
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// tree is a bundle folder held in memory: relative path -> contents.
type tree map[string][]byte

func (t tree) clone() tree {
	c := make(tree, len(t))
	for k, v := range t {
		c[k] = bytes.Clone(v)
	}
	return c
}

func (t tree) names() []string {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func readTree(dir string) (tree, error) {
	t := tree{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		t[filepath.ToSlash(rel)] = data
		return err
	})
	return t, err
}

// gen holds the keys and the clean exports every case starts from.
type gen struct {
	keysDir string
	// k is the trusted key (es256), o an untrusted one (other-es256).
	k, o         *sign.Signer
	kPriv, oPriv *ecdsa.PrivateKey
	// base is export 20260315T000000Z, sequence 10 (the one the test
	// roots are seeded with); next is 20260315T010000Z, sequence 11.
	base, next tree
	src        string
	tmp        string
	files      Files
	cases      []Case
}

func newGen(keysDir string) (*gen, error) {
	g := &gen{keysDir: keysDir, files: Files{}}
	var err error
	if g.k, g.kPriv, err = loadKey(filepath.Join(keysDir, "es256.pem")); err != nil {
		return nil, err
	}
	if g.o, g.oPriv, err = loadKey(filepath.Join(keysDir, "other-es256.pem")); err != nil {
		return nil, err
	}
	return g, nil
}

func loadKey(p string) (*sign.Signer, *ecdsa.PrivateKey, error) {
	priv, err := sign.LoadPrivateKey(p, nil)
	if err != nil {
		return nil, nil, err
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: not an ECDSA key", p)
	}
	s, err := sign.NewSigner(priv, "", "")
	return s, ec, err
}

// source is the feed every export of the corpus is made from: two domains,
// three advisories, one VEX export each; small, so the corpus stays small.
var source = map[string]string{
	"primary/domain.json":                    `{"displayName": "Primary"}`,
	"primary/advisories/HOSTILE-0001.json":   `{"id": "HOSTILE-0001", "summary": "Test advisory of the hostile corpus; describes no real vulnerability."}`,
	"primary/advisories/HOSTILE-0002.json":   `{"id": "HOSTILE-0002", "summary": "Test advisory of the hostile corpus; describes no real vulnerability."}`,
	"primary/vex/openvex/2026-03.json":       `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://vex.example.invalid/hostile/2026-03", "author": "hostile corpus", "timestamp": "2026-03-01T00:00:00Z", "version": 1, "statements": []}`,
	"community/domain.json":                  `{"displayName": "Community"}`,
	"community/advisories/HOSTILE-0101.json": `{"id": "HOSTILE-0101", "summary": "Test advisory of the hostile corpus; describes no real vulnerability."}`,
	"community/vex/csaf/sample.json":         `{"document": {"category": "csaf_vex", "csaf_version": "2.0", "tracking": {"id": "HOSTILE-VEX-1", "current_release_date": "2026-03-01T00:00:00Z"}}, "vulnerabilities": []}`,
}

func (g *gen) writeSource() error {
	g.src = filepath.Join(g.tmp, "src")
	for name, body := range source {
		p := filepath.Join(g.src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// export exports the source with signer s and returns the bundle.
func (g *gen) export(s *sign.Signer, seq int64, created time.Time, expires time.Duration) (tree, error) {
	out := filepath.Join(g.tmp, fmt.Sprintf("export-%d-%s-%s", seq, created.Format(bundle.ExportIDLayout), s.KeyID()[:8]))
	_, err := bundle.Export(context.Background(), bundle.ExportOptions{
		Source: g.src, Out: out, Signer: s, Sequence: seq, Created: created, Expires: expires,
		Producer: "stellaops-cli hostile corpus",
	})
	if err != nil {
		return nil, err
	}
	return readTree(out)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func domainsOf(t tree) []string {
	var m bundle.Manifest
	if json.Unmarshal(t[bundle.ManifestFile], &m) == nil && len(m.Domains) > 0 {
		return m.Domains
	}
	return []string{"community", "primary"}
}

func marshal(v any) []byte {
	b, err := bundle.MarshalDocument(v)
	if err != nil {
		panic(err)
	}
	return b
}

// seal makes every document of t that is not named in raw consistent with
// the others and signs it again with the trusted key, the way a producer
// would: the domain signatures over each bundle.json, the domain manifests
// and index.json, mirror.json's file list, the DSSE envelope and
// SHA256SUMS. A case that tampers with one document and seals the rest
// reaches the check of that document, behind every signature.
func (g *gen) seal(t tree, raw ...string) tree {
	isRaw := map[string]bool{}
	for _, r := range raw {
		isRaw[r] = true
	}
	for _, d := range domainsOf(t) {
		base := bundle.MirrorDir + "/" + d + "/"
		bj, ok := t[base+bundle.DomainBundleName]
		if !ok {
			continue
		}
		if !isRaw[base+bundle.DomainJWSName] {
			jws, err := g.k.SignJWS(bytes.NewReader(bj))
			if err != nil {
				panic(err)
			}
			t[base+bundle.DomainJWSName] = []byte(jws)
		}
		if !isRaw[base+bundle.DomainSigName] {
			sig, err := g.k.SignBlob(bytes.NewReader(bj))
			if err != nil {
				panic(err)
			}
			t[base+bundle.DomainSigName] = sig
		}
		if mp := base + bundle.DomainManifestName; !isRaw[mp] {
			var dm bundle.DomainManifest
			if err := json.Unmarshal(t[mp], &dm); err == nil {
				dm.Bundle = bundle.FileEntry{Path: base + bundle.DomainBundleName, Size: int64(len(bj)), SHA256: sha(bj)}
				t[mp] = marshal(dm)
			}
		}
	}
	if !isRaw[bundle.IndexPath] {
		var idx bundle.Index
		if err := json.Unmarshal(t[bundle.IndexPath], &idx); err == nil {
			for i, d := range idx.Domains {
				if bj, ok := t[d.BundlePath]; ok {
					idx.Domains[i].BundleSize, idx.Domains[i].BundleSha256 = int64(len(bj)), sha(bj)
				}
			}
			t[bundle.IndexPath] = marshal(idx)
		}
	}
	if !isRaw[bundle.ManifestFile] {
		var m bundle.Manifest
		if err := json.Unmarshal(t[bundle.ManifestFile], &m); err != nil {
			panic(err)
		}
		m.Files = listFiles(t)
		t[bundle.ManifestFile] = marshal(m)
	}
	if !isRaw[bundle.EnvelopeFile] {
		t[bundle.EnvelopeFile] = g.dsse(bundle.PayloadType, t[bundle.ManifestFile], g.k)
	}
	if !isRaw[bundle.ChecksumsFile] {
		files := listFiles(t)
		for _, name := range []string{bundle.ManifestFile, bundle.EnvelopeFile} {
			if b, ok := t[name]; ok {
				files = append(files, bundle.FileEntry{Path: name, Size: int64(len(b)), SHA256: sha(b)})
			}
		}
		t[bundle.ChecksumsFile] = bundle.FormatChecksums(files)
	}
	return t
}

// listFiles is mirror.json's file list for t.
func listFiles(t tree) []bundle.FileEntry {
	var files []bundle.FileEntry
	for _, name := range t.names() {
		switch name {
		case bundle.ManifestFile, bundle.EnvelopeFile, bundle.ChecksumsFile:
			continue
		}
		files = append(files, bundle.FileEntry{Path: name, Size: int64(len(t[name])), SHA256: sha(t[name])})
	}
	return files
}

// dsse signs payload with each signer, as export does.
func (g *gen) dsse(payloadType string, payload []byte, signers ...*sign.Signer) []byte {
	env, err := sign.SignDSSE(context.Background(), payloadType, payload, signers...)
	if err != nil {
		panic(err)
	}
	return env
}

// dsseSig is one signature of an envelope over payload with payloadType,
// ASN.1 DER as DSSE uses, deterministic (RFC 6979).
func dsseSig(priv *ecdsa.PrivateKey, payloadType string, payload []byte) []byte {
	d := sha256.Sum256(dsse.PAE(payloadType, payload))
	sig, err := priv.Sign(nil, d[:], crypto.SHA256)
	if err != nil {
		panic(err)
	}
	return sig
}

// envelope writes an envelope from its parts, as export formats it.
func envelope(payloadType string, payload []byte, sigs ...dsse.Signature) []byte {
	env := &dsse.Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload), Signatures: sigs}
	if env.Signatures == nil {
		env.Signatures = []dsse.Signature{}
	}
	out, err := sign.MarshalEnvelope(env)
	if err != nil {
		panic(err)
	}
	return out
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwsSign returns the compact detached JWS with the protected header hdr
// (written as given) over payload, signed by priv: ECDSA P-256 over
// SHA-256, the signature as raw R||S unless der is set.
func jwsSign(priv *ecdsa.PrivateKey, hdr string, payload []byte, h crypto.Hash, der bool) []byte {
	hb := b64url([]byte(hdr))
	hw := h.New()
	hw.Write([]byte(hb + "."))
	hw.Write(payload)
	sig, err := priv.Sign(nil, hw.Sum(nil), h)
	if err != nil {
		panic(err)
	}
	if !der {
		sig = derToRaw(sig, 32)
	}
	return []byte(hb + ".." + b64url(sig))
}

func derToRaw(der []byte, size int) []byte {
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		panic(err)
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out
}

// insertAfter inserts ins after the first occurrence of anchor in doc.
func insertAfter(doc []byte, anchor, ins string) []byte {
	i := bytes.Index(doc, []byte(anchor))
	if i < 0 {
		panic(fmt.Sprintf("anchor %q not found", anchor))
	}
	i += len(anchor)
	return []byte(string(doc[:i]) + ins + string(doc[i:]))
}

func replaceOnce(doc []byte, old, new string) []byte {
	if !bytes.Contains(doc, []byte(old)) {
		panic(fmt.Sprintf("%q not found", old))
	}
	return bytes.Replace(doc, []byte(old), []byte(new), 1)
}

// dirOf returns the folders of the files in t, each once.
func dirsOf(names []string) []string {
	seen := map[string]bool{}
	var dirs []string
	for _, n := range names {
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	sort.Strings(dirs)
	return dirs
}

func kidOf(s *sign.Signer) string { return s.KeyID() }

func jwsHeader(fields ...string) string {
	return "{" + strings.Join(fields, ",") + "}"
}
