package rotation

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// Fixed instants: tests never depend on today's date.
var (
	t0      = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	overlap = 30 * 24 * time.Hour
)

// testKey is a TEST-ONLY key of testdata/keys.
type testKey struct {
	priv crypto.Signer
	key  trust.Key // derived id, unbounded
}

func loadKey(t testing.TB, name string) testKey {
	t.Helper()
	priv, err := sign.LoadPrivateKey(filepath.Join("..", "..", "testdata", "keys", name), nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := trust.NewKey(priv.Public(), "")
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, key: k}
}

func mustRead(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "keys", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (k testKey) signer(t testing.TB) *sign.Signer {
	t.Helper()
	s, err := sign.NewSigner(k.priv, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type keys struct{ k1, k2, k3, k4 testKey }

func testKeys(t testing.TB) keys {
	return keys{
		k1: loadKey(t, "es256.pem"),
		k2: loadKey(t, "other-es256.pem"),
		k3: loadKey(t, "es384.pem"),
		k4: loadKey(t, "ed25519.pem"),
	}
}

func roots(ks ...trust.Key) *trust.Roots {
	r := &trust.Roots{Keys: append([]trust.Key(nil), ks...)}
	for i := range r.Keys {
		if r.Keys[i].Source == "" {
			r.Keys[i].Source = "test"
		}
	}
	return r
}

func pemOf(t testing.TB, r *trust.Roots) string {
	t.Helper()
	b, err := r.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rotateDoc is the statement from old to new issued at t0 with the default overlap.
func rotateDoc(t testing.TB, old, nw testKey) Rotate {
	t.Helper()
	p, err := publicKeyPEM(nw.key)
	if err != nil {
		t.Fatal(err)
	}
	return Rotate{
		SchemaVersion: SchemaVersion, Type: TypeRotate,
		StatementID: statementID("rot", t0, nw.key.DerivedID), IssuedAt: t0,
		OldKeyID: old.key.DerivedID, OldKeyNotAfter: t0.Add(overlap),
		NewKeyID: nw.key.ID, NewPublicKey: p, NewKeyNotBefore: t0, Reason: "test",
	}
}

func revokeDoc(t testing.TB, revoked testKey, withKey bool) Revoke {
	t.Helper()
	d := Revoke{
		SchemaVersion: SchemaVersion, Type: TypeRevoke,
		StatementID: statementID("rev", t0, revoked.key.DerivedID), IssuedAt: t0,
		RevokedKeyID: revoked.key.DerivedID, RevokedKeySHA256: revoked.key.DerivedID, Reason: "leaked",
	}
	if withKey {
		p, err := publicKeyPEM(revoked.key)
		if err != nil {
			t.Fatal(err)
		}
		d.RevokedPublicKey = p
	}
	return d
}

// envelope signs doc (marshalled, or raw bytes) with the given keys.
func envelopeOf(t testing.TB, doc any, by ...testKey) []byte {
	t.Helper()
	var payload []byte
	switch d := doc.(type) {
	case []byte:
		payload = d
	default:
		var err error
		if payload, err = Marshal(d); err != nil {
			t.Fatal(err)
		}
	}
	signers := make([]*sign.Signer, len(by))
	for i, k := range by {
		signers[i] = k.signer(t)
	}
	env, err := sign.SignDSSE(context.Background(), PayloadType, payload, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// wantRefused checks an Apply error: class verification (exit 2), wrapping
// ErrStatement, naming the file and containing want.
func wantRefused(t testing.TB, err error, file, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Apply succeeded, want an error containing %q", want)
	}
	if !errors.Is(err, ErrStatement) || failure.Code(err) != failure.ExitVerification {
		t.Fatalf("error %v: want ErrStatement with exit 2, got exit %d", err, failure.Code(err))
	}
	if !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q: want it to name %s and contain %q", err, file, want)
	}
}
