package sign_test

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// keysDir holds the TEST-ONLY keys of testdata/keys.
const keysDir = "../../testdata/keys"

// testNow is the trusted time of every test; nothing depends on the clock.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// algKeys pairs every supported JWS algorithm with a fixture key.
var algKeys = []struct {
	alg  string
	file string
}{
	{sign.ES256, "es256"},
	{sign.ES384, "es384"},
	{sign.ES512, "es512"},
	{sign.RS256, "rsa2048"},
	{sign.RS384, "rsa2048"},
	{sign.EdDSA, "ed25519"},
}

func keyPath(name string) string { return filepath.Join(keysDir, name) }

func loadPriv(t testing.TB, name string) crypto.Signer {
	t.Helper()
	priv, err := sign.LoadPrivateKey(keyPath(name+".pem"), nil)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return priv
}

func loadSigner(t testing.TB, name, alg, kid string) *sign.Signer {
	t.Helper()
	s, err := sign.NewSigner(loadPriv(t, name), alg, kid)
	if err != nil {
		t.Fatalf("signer %s/%s: %v", name, alg, err)
	}
	return s
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// parseRoots builds trust roots from PEM text.
func parseRoots(t testing.TB, pems ...[]byte) *trust.Roots {
	t.Helper()
	var all []byte
	for _, p := range pems {
		all = append(all, p...)
	}
	r, err := trust.Parse(all, "test")
	if err != nil {
		t.Fatalf("trust roots: %v", err)
	}
	return r
}

// rootsOf trusts the public keys of the given fixtures under their derived ids.
func rootsOf(t testing.TB, names ...string) *trust.Roots {
	t.Helper()
	var pems [][]byte
	for _, n := range names {
		pems = append(pems, readFile(t, keyPath(n+".pub")))
	}
	return parseRoots(t, pems...)
}

// windowed returns roots trusting one key only between notBefore and notAfter.
func windowed(t testing.TB, pub crypto.PublicKey, notBefore, notAfter time.Time) *trust.Roots {
	t.Helper()
	k, err := trust.NewKey(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	k.NotBefore, k.NotAfter = notBefore, notAfter
	r := &trust.Roots{}
	if err := r.Add(k); err != nil {
		t.Fatal(err)
	}
	return r
}

// wantErrs fails unless err matches every target (or is nil when none is given).
func wantErrs(t testing.TB, err error, targets ...error) {
	t.Helper()
	if len(targets) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v", targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("error %q is not %q", err, target)
		}
	}
}

// wantNot fails if err matches any of targets.
func wantNot(t testing.TB, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			t.Errorf("error %q unexpectedly is %q", err, target)
		}
	}
}
