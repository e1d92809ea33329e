package trust_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

const keysDir = "../../testdata/keys"

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Derived ids of the fixtures, computed once with
//
//	openssl pkey -pubin -in testdata/keys/NAME.pub -outform DER | sha256sum
const (
	es256ID   = "206e212bc795104cb806df223884ab52f78a2728730ecf50dcf5bcb97632c519"
	es384ID   = "b407c2322e3f8c20ab662367a6c02c93df63e975de076996e7129e528e7a9c02"
	rsa2048ID = "285ffd43f7598dd599af89f4d13a9f31a073b12cb4c7def969181b40a81ed4da"
	ed25519ID = "451b3d0a193de7cdd4642f1e6d8ea4dd8749939163015aef74e4c381656a5597"
	cosignID  = "ba10a7e1a694d41450b88c4c9639e51f2c42331e6cada26d778d7270a6c61bf1"
)

func pub(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(keysDir, name+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// withHeaders adds PEM headers to the first block of p.
func withHeaders(t testing.TB, p []byte, headers map[string]string) []byte {
	t.Helper()
	block, _ := pem.Decode(p)
	if block == nil {
		t.Fatal("no PEM block")
	}
	block.Headers = headers
	return pem.EncodeToMemory(block)
}

// selfSigned returns a CERTIFICATE block for key, valid from notBefore to notAfter.
func selfSigned(t testing.TB, key crypto.Signer, notBefore, notAfter time.Time) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "stellaops mirror test signer"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParse(t *testing.T) {
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certID, err := trust.KeyID(certKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, edCertKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certFrom, certUntil := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := selfSigned(t, certKey, certFrom, certUntil)
	rsaPKCS1 := func() []byte {
		block, _ := pem.Decode(pub(t, "rsa2048"))
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(k.(*rsa.PublicKey))})
	}()
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224DER, err := x509.MarshalPKIXPublicKey(p224.Public())
	if err != nil {
		t.Fatal(err)
	}
	type wantKey struct {
		id, derived, alg string
		notBefore        time.Time
		notAfter         time.Time
		cert             bool
	}
	nb := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	na := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		data    []byte
		want    []wantKey
		wantErr []error
	}{
		{name: "one public key", data: pub(t, "es256"), want: []wantKey{{id: es256ID, derived: es256ID, alg: "ecdsa-p256"}}},
		{name: "cosign.pub as is", data: pub(t, "cosign"), want: []wantKey{{id: cosignID, derived: cosignID, alg: "ecdsa-p256"}}},
		{name: "several blocks with text between them",
			data: join([]byte("# production keys\n"), pub(t, "es256"), []byte("\nrotated in 2026:\n"), pub(t, "rsa2048"), pub(t, "ed25519"), pub(t, "es384")),
			want: []wantKey{{id: es256ID, derived: es256ID, alg: "ecdsa-p256"}, {id: rsa2048ID, derived: rsa2048ID, alg: "rsa-2048"},
				{id: ed25519ID, derived: ed25519ID, alg: "ed25519"}, {id: es384ID, derived: es384ID, alg: "ecdsa-p384"}}},
		{name: "PKCS#1 RSA PUBLIC KEY block", data: rsaPKCS1, want: []wantKey{{id: rsa2048ID, derived: rsa2048ID, alg: "rsa-2048"}}},
		{name: "Key-Id header", data: withHeaders(t, pub(t, "es256"), map[string]string{"Key-Id": "mirror-2026"}),
			want: []wantKey{{id: "mirror-2026", derived: es256ID, alg: "ecdsa-p256"}}},
		{name: "validity headers", data: withHeaders(t, pub(t, "ed25519"), map[string]string{
			"Key-Id": "ops@example:2", "Not-Before": "2026-02-01T00:00:00Z", "Not-After": "2026-04-01T02:00:00+02:00"}),
			want: []wantKey{{id: "ops@example:2", derived: ed25519ID, alg: "ed25519", notBefore: nb, notAfter: na}}},
		{name: "Not-After only", data: withHeaders(t, pub(t, "es256"), map[string]string{"Not-After": "2026-04-01T00:00:00Z"}),
			want: []wantKey{{id: es256ID, derived: es256ID, alg: "ecdsa-p256", notAfter: na}}},
		{name: "self-signed certificate", data: cert,
			want: []wantKey{{id: certID, derived: certID, alg: "ecdsa-p256", notBefore: certFrom, notAfter: certUntil, cert: true}}},
		{name: "certificate with headers narrowing its window",
			data: withHeaders(t, cert, map[string]string{"Key-Id": "cert-key", "Not-Before": "2026-02-01T00:00:00Z", "Not-After": "2026-04-01T00:00:00Z"}),
			want: []wantKey{{id: "cert-key", derived: certID, alg: "ecdsa-p256", notBefore: nb, notAfter: na, cert: true}}},
		{name: "Ed25519 certificate beside a public key",
			data: join(selfSigned(t, edCertKey, certFrom, certUntil), pub(t, "es256")),
			want: []wantKey{{alg: "ed25519", notBefore: certFrom, notAfter: certUntil, cert: true}, {id: es256ID, derived: es256ID, alg: "ecdsa-p256"}}},
		{name: "other PEM blocks are ignored", data: join(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), pub(t, "es256")),
			want: []wantKey{{id: es256ID, derived: es256ID, alg: "ecdsa-p256"}}},
		{name: "the same key twice is kept once", data: join(pub(t, "es256"), withHeaders(t, pub(t, "es256"), map[string]string{"Key-Id": "alias"})),
			want: []wantKey{{id: es256ID, derived: es256ID, alg: "ecdsa-p256"}}},
		{name: "RSA-1024 refused", data: join(pub(t, "es256"), pub(t, "rsa1024")),
			wantErr: []error{trust.ErrWeakKey, failure.ErrVerification}},
		{name: "RSA-1024 certificate refused", data: func() []byte {
			k, err := os.ReadFile(filepath.Join(keysDir, "rsa1024.pem"))
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(k)
			priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return selfSigned(t, priv.(crypto.Signer), certFrom, certUntil)
		}(), wantErr: []error{trust.ErrWeakKey}},
		{name: "P-224 refused", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p224DER}),
			wantErr: []error{trust.ErrUnsupportedKey}},
		{name: "bad Not-After", data: withHeaders(t, pub(t, "es256"), map[string]string{"Not-After": "2026-13-01T00:00:00Z"}),
			wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "date without time", data: withHeaders(t, pub(t, "es256"), map[string]string{"Not-Before": "2026-03-01"}),
			wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "time without zone", data: withHeaders(t, pub(t, "es256"), map[string]string{"Not-Before": "2026-03-01T00:00:00"}),
			wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "Unix time", data: withHeaders(t, pub(t, "es256"), map[string]string{"Not-After": "1772366400"}),
			wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "Not-Before after Not-After", data: withHeaders(t, pub(t, "es256"), map[string]string{
			"Not-Before": "2026-04-01T00:00:00Z", "Not-After": "2026-02-01T00:00:00Z"}), wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "empty window", data: withHeaders(t, pub(t, "es256"), map[string]string{
			"Not-Before": "2026-04-01T00:00:00Z", "Not-After": "2026-04-01T00:00:00Z"}), wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "Key-Id with path characters", data: withHeaders(t, pub(t, "es256"), map[string]string{"Key-Id": "../../etc/passwd"}),
			wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "one Key-Id naming two keys", data: join(
			withHeaders(t, pub(t, "es256"), map[string]string{"Key-Id": "mirror"}),
			withHeaders(t, pub(t, "ed25519"), map[string]string{"Key-Id": "mirror"})), wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "Key-Id equal to another key's derived id", data: join(
			pub(t, "es256"), withHeaders(t, pub(t, "ed25519"), map[string]string{"Key-Id": es256ID})), wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "derived id equal to an earlier Key-Id", data: join(
			withHeaders(t, pub(t, "ed25519"), map[string]string{"Key-Id": es256ID}), pub(t, "es256")), wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "damaged public key", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 0x03, 1, 2, 3}}),
			wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "damaged certificate", data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x00}}),
			wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "garbage", data: []byte("not a PEM file\n"), wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "empty", data: nil, wantErr: []error{trust.ErrBadTrustRoots}},
		{name: "only a private key", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}),
			wantErr: []error{trust.ErrBadTrustRoots}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := trust.Parse(tt.data, "roots.pem")
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("accepted: %+v", r.Keys)
				}
				for _, w := range tt.wantErr {
					if !errors.Is(err, w) {
						t.Errorf("error %q is not %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Keys) != len(tt.want) {
				t.Fatalf("%d keys, want %d", len(r.Keys), len(tt.want))
			}
			for i, w := range tt.want {
				k := r.Keys[i]
				if w.id != "" && (k.ID != w.id || k.DerivedID != w.derived) {
					t.Errorf("key %d: id %s / %s, want %s / %s", i, k.ID, k.DerivedID, w.id, w.derived)
				}
				if k.Algorithm() != w.alg {
					t.Errorf("key %d: %s, want %s", i, k.Algorithm(), w.alg)
				}
				if !k.NotBefore.Equal(w.notBefore) || !k.NotAfter.Equal(w.notAfter) {
					t.Errorf("key %d: window %s..%s, want %s..%s", i, k.NotBefore, k.NotAfter, w.notBefore, w.notAfter)
				}
				if (k.Certificate != nil) != w.cert {
					t.Errorf("key %d: certificate %v", i, k.Certificate != nil)
				}
				if k.Source != "roots.pem" {
					t.Errorf("key %d: source %q", i, k.Source)
				}
				if got := r.Lookup(k.ID); len(got) != 1 || got[0].DerivedID != k.DerivedID {
					t.Errorf("Lookup(%s) = %d keys", k.ID, len(got))
				}
				if got := r.Lookup(k.DerivedID); len(got) != 1 {
					t.Errorf("Lookup(derived) = %d keys", len(got))
				}
			}
		})
	}
}

func TestValidAtBoundaries(t *testing.T) {
	from := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	r, err := trust.Parse(withHeaders(t, pub(t, "es256"), map[string]string{
		"Not-Before": from.Format(time.RFC3339), "Not-After": until.Format(time.RFC3339)}), "roots.pem")
	if err != nil {
		t.Fatal(err)
	}
	k := r.Keys[0]
	unbounded, err := trust.Parse(pub(t, "es256"), "roots.pem")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		want error
	}{
		{"long before", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), trust.ErrNotYetValid},
		{"a nanosecond before Not-Before", from.Add(-time.Nanosecond), trust.ErrNotYetValid},
		{"at Not-Before", from, nil},
		{"inside", testNow, nil},
		{"at Not-Before in another zone", from.In(time.FixedZone("CET", 3600)), nil},
		{"a nanosecond before Not-After", until.Add(-time.Nanosecond), nil},
		{"at Not-After", until, trust.ErrKeyExpired},
		{"long after", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), trust.ErrKeyExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k.ValidAt(tt.at)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, failure.ErrPolicy) || errors.Is(err, failure.ErrVerification) {
				t.Errorf("error %v, want %v (policy class)", err, tt.want)
			}
			if failure.Code(err) != failure.ExitPolicy {
				t.Errorf("exit code %d", failure.Code(err))
			}
			if !strings.Contains(err.Error(), k.ID) {
				t.Errorf("error %q does not name the key", err)
			}
			if err := unbounded.Keys[0].ValidAt(tt.at); err != nil {
				t.Errorf("a key without headers is not always valid: %v", err)
			}
		})
	}
}

func TestMarshalPEMRoundTrip(t *testing.T) {
	in := join(
		withHeaders(t, pub(t, "ed25519"), map[string]string{"Key-Id": "b-key", "Not-Before": "2026-02-01T00:00:00Z", "Not-After": "2026-04-01T00:00:00Z"}),
		withHeaders(t, pub(t, "es256"), map[string]string{"Key-Id": "a-key", "Source": "rotation 2026-01"}),
		pub(t, "rsa2048"))
	r, err := trust.Parse(in, "roots.pem")
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := trust.Parse(out, "again.pem")
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Keys) != 3 {
		t.Fatalf("%d keys", len(back.Keys))
	}
	// Sorted by id; headers survive.
	wantIDs := []string{rsa2048ID, "a-key", "b-key"}
	for i, k := range back.Keys {
		if k.ID != wantIDs[i] {
			t.Errorf("key %d: %s, want %s", i, k.ID, wantIDs[i])
		}
		orig := r.Lookup(k.ID)[0]
		if orig.DerivedID != k.DerivedID || !orig.NotBefore.Equal(k.NotBefore) || !orig.NotAfter.Equal(k.NotAfter) {
			t.Errorf("key %s changed: %+v vs %+v", k.ID, orig, k)
		}
	}
	if back.Lookup("a-key")[0].Source != "rotation 2026-01" {
		t.Errorf("source %q", back.Lookup("a-key")[0].Source)
	}
	again, err := back.MarshalPEM()
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("MarshalPEM is not stable: %v", err)
	}
}

func TestMarshalPEMKeepsFractionalSeconds(t *testing.T) {
	in := withHeaders(t, pub(t, "es384"), map[string]string{"Not-Before": "2026-01-01T00:00:00.25Z", "Not-After": "2026-01-01T00:00:00.75Z"})
	r, err := trust.Parse(in, "roots.pem")
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := trust.Parse(out, "again.pem")
	if err != nil {
		t.Fatalf("written roots refused: %v\n%s", err, out)
	}
	if !back.Keys[0].NotBefore.Equal(r.Keys[0].NotBefore) || !back.Keys[0].NotAfter.Equal(r.Keys[0].NotAfter) {
		t.Errorf("window %s..%s became %s..%s", r.Keys[0].NotBefore, r.Keys[0].NotAfter, back.Keys[0].NotBefore, back.Keys[0].NotAfter)
	}
	// Whole seconds are written as before.
	whole, err := trust.Parse(withHeaders(t, pub(t, "es384"), map[string]string{"Not-After": "2026-04-01T00:00:00Z"}), "x")
	if err != nil {
		t.Fatal(err)
	}
	out, err = whole.MarshalPEM()
	if err != nil || !strings.Contains(string(out), "Not-After: 2026-04-01T00:00:00Z\n") {
		t.Errorf("whole-second time written as:\n%s (%v)", out, err)
	}
}

func TestRootsAddRemoveFind(t *testing.T) {
	r, err := trust.Parse(join(pub(t, "es256"), withHeaders(t, pub(t, "ed25519"), map[string]string{"Key-Id": "ed"})), "roots.pem")
	if err != nil {
		t.Fatal(err)
	}
	c := r.Clone()
	if n := c.Remove("ed"); n != 1 || len(c.Keys) != 1 || len(r.Keys) != 2 {
		t.Errorf("Remove: %d removed, %d left, original %d", n, len(c.Keys), len(r.Keys))
	}
	if n := c.Remove(ed25519ID); n != 0 {
		t.Errorf("removed %d twice", n)
	}
	if k, ok := r.Find(r.Keys[1].Public); !ok || k.ID != "ed" {
		t.Errorf("Find: %v %v", k.ID, ok)
	}
	if got := r.Lookup(""); len(got) != 0 {
		t.Errorf("empty kid matched %d keys", len(got))
	}
	for _, kid := range []string{"../ed", "ED", "ed ", es256ID[:16], strings.ToUpper(es256ID)} {
		if got := r.Lookup(kid); len(got) != 0 {
			t.Errorf("Lookup(%q) matched", kid)
		}
	}
	other, err := trust.Parse(withHeaders(t, pub(t, "es384"), map[string]string{"Key-Id": "ed"}), "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(other.Keys[0]); !errors.Is(err, trust.ErrBadTrustRoots) {
		t.Errorf("Add of a second key under id ed: %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		keys    int
		wantErr []error
	}{
		{name: "cosign.pub", path: filepath.Join(keysDir, "cosign.pub"), keys: 1},
		{name: "bundle of keys", path: write("roots.pem", join(pub(t, "es256"), pub(t, "es512"))), keys: 2},
		{name: "missing", path: filepath.Join(dir, "absent.pem"), wantErr: []error{failure.ErrUsage, os.ErrNotExist}},
		{name: "a folder", path: dir, wantErr: []error{failure.ErrUsage}},
		{name: "garbage", path: write("garbage.pem", []byte("hello")), wantErr: []error{failure.ErrUsage, trust.ErrBadTrustRoots}},
		{name: "weak key", path: write("weak.pem", pub(t, "rsa1024")), wantErr: []error{failure.ErrUsage, trust.ErrWeakKey}},
		{name: "too large", path: write("large.pem", bytes.Repeat([]byte("#"), trust.MaxFileSize+1)), wantErr: []error{failure.ErrUsage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := trust.LoadFile(tt.path)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("accepted")
				}
				for _, w := range tt.wantErr {
					if !errors.Is(err, w) {
						t.Errorf("error %q is not %q", err, w)
					}
				}
				if failure.Code(err) != failure.ExitUsage {
					t.Errorf("exit code %d, want %d", failure.Code(err), failure.ExitUsage)
				}
				if !strings.Contains(err.Error(), tt.path) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Keys) != tt.keys || r.Keys[0].Source != tt.path {
				t.Errorf("%d keys from %q", len(r.Keys), r.Keys[0].Source)
			}
		})
	}
}

func TestKeyIDAndDescribe(t *testing.T) {
	for name, want := range map[string]string{"es256": es256ID, "es384": es384ID, "rsa2048": rsa2048ID, "ed25519": ed25519ID, "cosign": cosignID} {
		block, _ := pem.Decode(pub(t, name))
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		id, err := trust.KeyID(k)
		if err != nil || id != want {
			t.Errorf("%s: %s %v, want %s", name, id, err, want)
		}
	}
	if _, err := trust.KeyID(struct{}{}); !errors.Is(err, trust.ErrUnsupportedKey) {
		t.Errorf("KeyID of a non-key: %v", err)
	}
	if err := trust.CheckPublicKey(struct{}{}); !errors.Is(err, trust.ErrUnsupportedKey) {
		t.Errorf("CheckPublicKey of a non-key: %v", err)
	}
	if _, err := trust.NewKey(struct{}{}, ""); err == nil {
		t.Error("NewKey accepted a non-key")
	}
}
