package sign_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Key ids computed once with
//
//	openssl pkey -pubin -in testdata/keys/NAME.pub -outform DER | sha256sum
var opensslKeyIDs = map[string]string{
	"es256":       "206e212bc795104cb806df223884ab52f78a2728730ecf50dcf5bcb97632c519",
	"es384":       "b407c2322e3f8c20ab662367a6c02c93df63e975de076996e7129e528e7a9c02",
	"es512":       "e3251bb48fee67beee541a0358d60234e66971d05ebf2668fb744ae332f83efc",
	"rsa2048":     "285ffd43f7598dd599af89f4d13a9f31a073b12cb4c7def969181b40a81ed4da",
	"rsa1024":     "e3cabf2114e378504f9842fcd1a7ed7129a9bf5211dc9528d3d35052d44bf737",
	"ed25519":     "451b3d0a193de7cdd4642f1e6d8ea4dd8749939163015aef74e4c381656a5597",
	"other-es256": "0227fc2af2bdd1ca7c8132b13d157c60de1d2c02eedcaa58de1097c689cbde1d",
	"cosign":      "ba10a7e1a694d41450b88c4c9639e51f2c42331e6cada26d778d7270a6c61bf1",
}

func staticPassword(p string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(p), nil }
}

func TestLoadSigner(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.pem", []byte("this is not a key\n"))
	empty := write("empty.pem", nil)
	pkcs8Enc := write("pkcs8-enc.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: bytes.Repeat([]byte{1}, 64)}))
	legacyEnc := write("legacy-enc.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00000000000000000000000000000000"},
		Bytes:   bytes.Repeat([]byte{2}, 64)}))
	damaged := write("damaged.pem", bytes.Replace(readFile(t, keyPath("es256.pem")), []byte("MIGH"), []byte("MIGG"), 1))
	huge := write("huge.pem", bytes.Repeat([]byte("A"), 1<<20+1))
	cosignTruncated := write("cosign-truncated.key", readFile(t, keyPath("cosign.key"))[:200])

	tests := []struct {
		name     string
		path     string
		password func() ([]byte, error)
		alg      string // requested alg ("" = default)
		wantAlg  string
		wantDesc string
		wantID   string
		wantErr  []error
	}{
		{name: "PKCS#8 P-256", path: keyPath("es256.pem"), wantAlg: sign.ES256, wantDesc: "ecdsa-p256", wantID: opensslKeyIDs["es256"]},
		{name: "SEC 1 P-256", path: keyPath("es256-sec1.pem"), wantAlg: sign.ES256, wantDesc: "ecdsa-p256", wantID: opensslKeyIDs["es256"]},
		{name: "PKCS#8 P-384", path: keyPath("es384.pem"), wantAlg: sign.ES384, wantDesc: "ecdsa-p384", wantID: opensslKeyIDs["es384"]},
		{name: "PKCS#8 P-521", path: keyPath("es512.pem"), wantAlg: sign.ES512, wantDesc: "ecdsa-p521", wantID: opensslKeyIDs["es512"]},
		{name: "PKCS#8 RSA-2048", path: keyPath("rsa2048.pem"), wantAlg: sign.RS256, wantDesc: "rsa-2048", wantID: opensslKeyIDs["rsa2048"]},
		{name: "PKCS#8 RSA-2048 as RS384", path: keyPath("rsa2048.pem"), alg: sign.RS384, wantAlg: sign.RS384, wantDesc: "rsa-2048", wantID: opensslKeyIDs["rsa2048"]},
		{name: "PKCS#1 RSA-2048", path: keyPath("rsa2048-pkcs1.pem"), wantAlg: sign.RS256, wantDesc: "rsa-2048", wantID: opensslKeyIDs["rsa2048"]},
		{name: "PKCS#8 Ed25519", path: keyPath("ed25519.pem"), wantAlg: sign.EdDSA, wantDesc: "ed25519", wantID: opensslKeyIDs["ed25519"]},
		{name: "cosign encrypted, right password", path: keyPath("cosign.key"), password: staticPassword("test-password"),
			wantAlg: sign.ES256, wantDesc: "ecdsa-p256", wantID: opensslKeyIDs["cosign"]},
		{name: "cosign encrypted, wrong password", path: keyPath("cosign.key"), password: staticPassword("wrong"),
			wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "cosign encrypted, empty password", path: keyPath("cosign.key"), password: staticPassword(""),
			wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "cosign encrypted, no password source", path: keyPath("cosign.key"),
			wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "cosign encrypted, password source fails", path: keyPath("cosign.key"),
			password: func() ([]byte, error) { return nil, errors.New("no terminal") },
			wantErr:  []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "cosign encrypted, truncated", path: cosignTruncated, password: staticPassword("test-password"),
			wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "RSA-1024 refused", path: keyPath("rsa1024.pem"), wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "alg that does not match the key", path: keyPath("es256.pem"), alg: sign.ES384, wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "RS256 on Ed25519", path: keyPath("ed25519.pem"), alg: sign.RS256, wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "public key instead of private", path: keyPath("es256.pub"), wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "garbage", path: garbage, wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "empty file", path: empty, wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "damaged DER", path: damaged, wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "encrypted PKCS#8", path: pkcs8Enc, password: staticPassword("x"), wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "OpenSSL legacy encryption", path: legacyEnc, password: staticPassword("x"), wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
		{name: "larger than 1 MiB", path: huge, wantErr: []error{failure.ErrUsage}},
		{name: "missing file", path: filepath.Join(dir, "absent.pem"), wantErr: []error{failure.ErrUsage, os.ErrNotExist}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sign.LoadSigner(tt.path, tt.alg, "", tt.password)
			wantErrs(t, err, tt.wantErr...)
			if err != nil {
				if failure.Code(err) != failure.ExitUsage {
					t.Errorf("exit code %d, want %d", failure.Code(err), failure.ExitUsage)
				}
				if !bytes.Contains([]byte(err.Error()), []byte(tt.path)) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if s.Alg() != tt.wantAlg {
				t.Errorf("alg %s, want %s", s.Alg(), tt.wantAlg)
			}
			if got := trust.Describe(s.Public()); got != tt.wantDesc {
				t.Errorf("key %s, want %s", got, tt.wantDesc)
			}
			if s.KeyID() != tt.wantID {
				t.Errorf("key id %s, want %s", s.KeyID(), tt.wantID)
			}
			if k := s.TrustKey(); k.ID != tt.wantID || k.DerivedID != tt.wantID {
				t.Errorf("trust key %s/%s, want %s", k.ID, k.DerivedID, tt.wantID)
			}
		})
	}
}

func TestLoadSignerWithPasswordFromEnv(t *testing.T) {
	env := func(vals map[string]string) func(string) string {
		return func(k string) string { return vals[k] }
	}
	prompted := 0
	prompt := func() ([]byte, error) { prompted++; return []byte("test-password"), nil }
	tests := []struct {
		name     string
		getenv   func(string) string
		prompt   func() ([]byte, error)
		wantErr  []error
		prompted int
	}{
		{name: "from the environment", getenv: env(map[string]string{sign.PasswordEnv: "test-password"}), prompt: prompt},
		{name: "wrong password in the environment", getenv: env(map[string]string{sign.PasswordEnv: "nope"}), prompt: prompt, wantErr: []error{sign.ErrBadKey}},
		{name: "prompt when unset", getenv: env(nil), prompt: prompt, prompted: 1},
		{name: "no environment and no terminal", getenv: env(nil), wantErr: []error{sign.ErrBadKey, failure.ErrUsage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prompted = 0
			_, err := sign.LoadSigner(keyPath("cosign.key"), "", "", sign.PasswordFromEnv(tt.getenv, tt.prompt))
			wantErrs(t, err, tt.wantErr...)
			if prompted != tt.prompted {
				t.Errorf("prompted %d times, want %d", prompted, tt.prompted)
			}
		})
	}
	// A key that is not encrypted never asks for a password.
	prompted = 0
	if _, err := sign.LoadSigner(keyPath("es256.pem"), "", "", sign.PasswordFromEnv(env(nil), prompt)); err != nil || prompted != 0 {
		t.Errorf("plain key: err %v, prompted %d", err, prompted)
	}
}

func TestKeyIDMatchesOpenSSL(t *testing.T) {
	for name, want := range opensslKeyIDs {
		t.Run(name, func(t *testing.T) {
			block, _ := pem.Decode(readFile(t, keyPath(name+".pub")))
			if block == nil {
				t.Fatal("no PEM block")
			}
			roots, err := trust.Parse(readFile(t, keyPath(name+".pub")), "test")
			if name == "rsa1024" {
				wantErrs(t, err, trust.ErrWeakKey)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := trust.KeyID(roots.Keys[0].Public)
			if err != nil {
				t.Fatal(err)
			}
			if got != want || roots.Keys[0].ID != want || roots.Keys[0].DerivedID != want {
				t.Errorf("key id %s (root %s/%s), openssl says %s", got, roots.Keys[0].ID, roots.Keys[0].DerivedID, want)
			}
		})
	}
}

func TestDefaultAlgAndAlgMatchesKey(t *testing.T) {
	all := append(append([]string{}, sign.Algorithms...), "none", "HS256", "PS256", "ES256K", "es256", "")
	tests := []struct {
		key     string
		def     string
		allowed []string
	}{
		{"es256", sign.ES256, []string{sign.ES256}},
		{"es384", sign.ES384, []string{sign.ES384}},
		{"es512", sign.ES512, []string{sign.ES512}},
		{"rsa2048", sign.RS256, []string{sign.RS256, sign.RS384}},
		{"ed25519", sign.EdDSA, []string{sign.EdDSA}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			pub := loadPriv(t, tt.key).Public()
			def, err := sign.DefaultAlg(pub)
			if err != nil || def != tt.def {
				t.Fatalf("DefaultAlg = %q, %v; want %q", def, err, tt.def)
			}
			for _, alg := range all {
				err := sign.AlgMatchesKey(alg, pub)
				ok := false
				for _, a := range tt.allowed {
					ok = ok || a == alg
				}
				if ok {
					wantErrs(t, err)
				} else {
					wantErrs(t, err, sign.ErrAlgMismatch, failure.ErrVerification)
				}
			}
		})
	}

	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.DefaultAlg(p224.Public()); err == nil {
		t.Error("DefaultAlg accepted a P-224 key")
	}
	if err := sign.AlgMatchesKey(sign.ES256, p224.Public()); err == nil {
		t.Error("AlgMatchesKey accepted a P-224 key")
	}
	_, err = sign.NewSigner(p224, "", "")
	wantErrs(t, err, sign.ErrBadKey)
}

func TestNewSignerKeyID(t *testing.T) {
	priv := loadPriv(t, "es256")
	tests := []struct {
		kid     string
		want    string
		wantErr []error
	}{
		{kid: "", want: opensslKeyIDs["es256"]},
		{kid: "mirror-2026.q1", want: "mirror-2026.q1"},
		{kid: "ops@example:1", want: "ops@example:1"},
		{kid: "../keys/es256", wantErr: []error{sign.ErrBadKey}},
		{kid: "a/b", wantErr: []error{sign.ErrBadKey}},
		{kid: "with space", wantErr: []error{sign.ErrBadKey}},
		{kid: "-leading-dash", wantErr: []error{sign.ErrBadKey}},
		{kid: string(bytes.Repeat([]byte("k"), 129)), wantErr: []error{sign.ErrBadKey}},
	}
	for _, tt := range tests {
		t.Run(tt.kid, func(t *testing.T) {
			s, err := sign.NewSigner(priv, "", tt.kid)
			wantErrs(t, err, tt.wantErr...)
			if err != nil {
				return
			}
			if s.KeyID() != tt.want {
				t.Errorf("key id %q, want %q", s.KeyID(), tt.want)
			}
			k := s.TrustKey()
			if k.ID != tt.want || k.DerivedID != opensslKeyIDs["es256"] {
				t.Errorf("trust key %q/%q", k.ID, k.DerivedID)
			}
		})
	}
}

func TestGenerateRoundTrip(t *testing.T) {
	for _, alg := range []string{sign.ES256, sign.ES384, sign.ES512, sign.EdDSA, sign.RS384} {
		t.Run(alg, func(t *testing.T) {
			if alg == sign.RS384 && testing.Short() {
				t.Skip("RSA key generation is slow")
			}
			priv, err := sign.Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sign.NewSigner(priv, alg, "")
			if err != nil {
				t.Fatal(err)
			}
			pemBytes, err := sign.MarshalPrivateKeyPEM(priv)
			if err != nil {
				t.Fatal(err)
			}
			back, err := sign.ParsePrivateKey(pemBytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			id, err := trust.KeyID(back.Public())
			if err != nil || id != s.KeyID() {
				t.Errorf("round trip key id %s (%v), want %s", id, err, s.KeyID())
			}
			pubPEM, err := sign.MarshalPublicKeyPEM(priv.Public())
			if err != nil {
				t.Fatal(err)
			}
			roots := parseRoots(t, pubPEM)
			if roots.Keys[0].ID != s.KeyID() {
				t.Errorf("public PEM key id %s, want %s", roots.Keys[0].ID, s.KeyID())
			}
		})
	}
	_, err := sign.Generate("HS256")
	wantErrs(t, err, failure.ErrUsage)
}
