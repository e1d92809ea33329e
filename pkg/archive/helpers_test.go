package archive

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// testModTime is a fixed generatedAt for test bundles.
var testModTime = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// testKey is the fixed, test-only Ed25519 key that signs the parts
// manifests of the test fixtures. Never trust it outside tests.
var testKey = ed25519.NewKeyFromSeed(seed("stellaops-cli archive test key (test only)"))

// otherKey is a second test-only key, not trusted by testVerify.
var otherKey = ed25519.NewKeyFromSeed(seed("stellaops-cli archive untrusted test key (test only)"))

func seed(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func keyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

type dsseSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

type dsseEnvelope struct {
	PayloadType string          `json:"payloadType"`
	Payload     string          `json:"payload"`
	Signatures  []dsseSignature `json:"signatures"`
}

func pae(payloadType string, payload []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload)
}

// signerFor returns a DSSE signer with key.
func signerFor(key ed25519.PrivateKey) SignFunc {
	return func(payloadType string, payload []byte) ([]byte, error) {
		sig := ed25519.Sign(key, pae(payloadType, payload))
		env := dsseEnvelope{
			PayloadType: payloadType,
			Payload:     base64.StdEncoding.EncodeToString(payload),
			Signatures:  []dsseSignature{{KeyID: keyID(key.Public().(ed25519.PublicKey)), Sig: base64.StdEncoding.EncodeToString(sig)}},
		}
		out, err := json.MarshalIndent(env, "", "  ")
		return append(out, '\n'), err
	}
}

var testSign = signerFor(testKey)

// testVerify verifies a DSSE envelope signed by testKey.
func testVerify(payloadType string, envelope []byte) ([]byte, error) {
	var env dsseEnvelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, fmt.Errorf("malformed envelope: %w", err)
	}
	if env.PayloadType != payloadType {
		return nil, fmt.Errorf("payloadType %q, expected %q", env.PayloadType, payloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("malformed payload: %w", err)
	}
	pub := testKey.Public().(ed25519.PublicKey)
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err == nil && s.KeyID == keyID(pub) && ed25519.Verify(pub, pae(payloadType, payload), sig) {
			return payload, nil
		}
	}
	return nil, errors.New("no valid signature by a trusted key")
}

var testOpen = OpenOptions{VerifyParts: testVerify}

// bundleFiles is a small bundle tree. The large file is pseudo-random so
// that its archive spans several small parts.
func bundleFiles() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(rng.IntN(256))
	}
	return withManifest(map[string][]byte{
		"mirror.dsse.json":                []byte(`{"payloadType":"application/vnd.stellaops.mirror+json;version=1"}` + "\n"),
		"SHA256SUMS":                      []byte("0000  mirror/index.json\n"),
		"keys/mirror.pub":                 []byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"),
		"mirror/index.json":               []byte(`{"domains":["primary"]}` + "\n"),
		"mirror/primary/manifest.json":    []byte(`{"domainId":"primary"}` + "\n"),
		"mirror/primary/bundle.json":      big,
		"mirror/primary/bundle.json.jws":  []byte("eyJhbGciOiJFUzI1NiJ9..c2ln\n"),
		"mirror/primary/bundle.json.sig":  []byte("MEUCIQ==\n"),
		"mirror/primary/vex/openvex.json": bytes.Repeat([]byte(`{"statement":"not_affected"}`+"\n"), 200),
		"mirror/primary/vex/empty.json":   {},
		"mirror-extra/a.json":             []byte("{}\n"),
	})
}

// withManifest adds a mirror.json that lists the other files, as a real
// bundle's does (Extract derives its limits from it).
func withManifest(files map[string][]byte) map[string][]byte {
	var list []bundle.FileEntry
	for name, data := range files {
		switch name {
		case bundle.ManifestFile, bundle.EnvelopeFile, bundle.ChecksumsFile:
			continue
		}
		sum := sha256.Sum256(data)
		list = append(list, bundle.FileEntry{Path: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	m, err := json.Marshal(bundle.Manifest{SchemaVersion: 1, ExportID: "20250314T150926Z", GeneratedAt: testModTime, Files: list})
	if err != nil {
		panic(err)
	}
	files[bundle.ManifestFile] = append(m, '\n')
	return files
}

// writeTree writes files below a new temp folder and returns it.
func writeTree(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// archiveBytes archives dir in memory.
func archiveBytes(t testing.TB, dir, comp string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, dir, WriteOptions{Compression: comp, ModTime: testModTime}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll walks src and returns each entry's contents; folders map to nil.
func readAll(t testing.TB, src *Source, limits Limits) (map[string][]byte, []string, error) {
	t.Helper()
	got := map[string][]byte{}
	var order []string
	err := src.Walk(context.Background(), limits, func(e EntryInfo, r io.Reader) error {
		order = append(order, e.Name)
		if e.IsDir {
			got[e.Name] = nil
			return nil
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if int64(len(data)) != e.Size {
			return fmt.Errorf("entry %s: read %d of %d bytes", e.Name, len(data), e.Size)
		}
		got[e.Name] = data
		return nil
	})
	return got, order, err
}

// listTree returns the slash paths of everything below dir, sorted.
func listTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// openBytes opens data as stdin.
func openBytes(t testing.TB, data []byte) (*Source, error) {
	t.Helper()
	return Open(context.Background(), "-", bytes.NewReader(data), testOpen)
}

// scrub replaces the temp folder in an error message.
func scrub(msg, dir string) string {
	return strings.ReplaceAll(msg, dir, "$DIR")
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
