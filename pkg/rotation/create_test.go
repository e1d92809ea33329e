package rotation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

func TestRotateKey(t *testing.T) {
	ks := testKeys(t)
	ctx := context.Background()
	for _, alg := range sign.Algorithms {
		t.Run(alg, func(t *testing.T) {
			if alg == sign.RS256 || alg == sign.RS384 {
				if testing.Short() {
					t.Skip("RSA key generation is slow")
				}
			}
			priv, err := sign.Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := RotateKey(ctx, KeyOptions{Current: ks.k1.priv, New: priv, Roots: roots(ks.k1.key), Now: t0.Add(90 * time.Second), Reason: "quarterly"})
			if err != nil {
				t.Fatal(err)
			}
			now := t0.Add(2 * time.Minute) // truncated to the second, as written
			if !res.NewKey.NotBefore.Equal(t0.Add(90*time.Second)) || !res.OldKey.NotAfter.Equal(t0.Add(90*time.Second+DefaultOverlap)) {
				t.Fatalf("bounds: new from %s, old until %s", res.NewKey.NotBefore, res.OldKey.NotAfter)
			}
			if res.Payload.Reason != "quarterly" || res.Payload.OldKeyID != ks.k1.key.DerivedID || !strings.HasPrefix(res.FileName, "keys-rotation-") {
				t.Fatalf("payload %+v, file %s", res.Payload, res.FileName)
			}
			// A site that trusts only the old key applies the statement to the same roots.
			site, _, err := Apply(roots(ks.k1.key), map[string][]byte{"keys/" + res.FileName: res.Statement}, now)
			if err != nil {
				t.Fatal(err)
			}
			if pemOf(t, site) != pemOf(t, res.Roots) {
				t.Fatalf("site roots differ from --trust-roots-out:\n%s\n%s", pemOf(t, site), pemOf(t, res.Roots))
			}
		})
	}
}

func TestRotateKeyRefuses(t *testing.T) {
	ks := testKeys(t)
	ctx := context.Background()
	expired := ks.k1.key
	expired.NotAfter = t0
	tests := []struct {
		name string
		opts KeyOptions
		want string
	}{
		{"current key not trusted", KeyOptions{Current: ks.k1.priv, New: ks.k2.priv, Roots: roots(ks.k3.key)}, "is not in the trust roots"},
		{"current key expired", KeyOptions{Current: ks.k1.priv, New: ks.k2.priv, Roots: roots(expired, ks.k3.key)}, "not trusted at"},
		{"new key already trusted", KeyOptions{Current: ks.k1.priv, New: ks.k2.priv, Roots: roots(ks.k1.key, ks.k2.key)}, "already in the trust roots"},
		{"new key is the current key", KeyOptions{Current: ks.k1.priv, New: ks.k1.priv, Roots: roots(ks.k1.key)}, "already in the trust roots"},
		{"new key ends before now", KeyOptions{Current: ks.k1.priv, New: ks.k2.priv, Roots: roots(ks.k1.key), NewKeyNotAfter: t0.Add(-time.Hour)}, "is not after now"},
		{"bad new key id", KeyOptions{Current: ks.k1.priv, New: ks.k2.priv, Roots: roots(ks.k1.key), NewKeyID: "a b"}, "key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = t0.Add(time.Hour)
			_, err := RotateKey(ctx, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	// The old key's earlier Not-After is kept.
	bounded := ks.k1.key
	bounded.NotAfter = t0.Add(48 * time.Hour)
	res, err := RotateKey(ctx, KeyOptions{Current: ks.k1.priv, New: ks.k2.priv, Roots: roots(bounded), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Payload.OldKeyNotAfter.Equal(bounded.NotAfter) || !res.OldKey.NotAfter.Equal(bounded.NotAfter) {
		t.Fatalf("old key until %s, want %s", res.OldKey.NotAfter, bounded.NotAfter)
	}
}

func TestNewRevocation(t *testing.T) {
	ks := testKeys(t)
	ctx := context.Background()
	in := roots(ks.k1.key, ks.k2.key)
	res, err := NewRevocation(ctx, RevokeOptions{Signer: ks.k1.priv, KeyID: ks.k2.key.ID, Roots: in, Now: t0, Reason: "leaked"})
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := res.Roots.Find(ks.k2.key.Public); k.Revoked.IsZero() {
		t.Fatal("K2 not revoked in the output roots")
	}
	if res.Payload.RevokedPublicKey == "" || res.Payload.RevokedKeySHA256 != ks.k2.key.DerivedID {
		t.Fatalf("payload %+v", res.Payload)
	}
	// A site that never trusted K2 refuses it in advance.
	site, _, err := Apply(roots(ks.k1.key), map[string][]byte{"keys/r.json": res.Statement}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := site.Find(ks.k2.key.Public); !ok || !errors.Is(k.ValidAt(t0.Add(time.Hour)), trust.ErrRevoked) {
		t.Fatal("no tombstone for K2")
	}

	// Without roots the id must be a derived id.
	if _, err := NewRevocation(ctx, RevokeOptions{Signer: ks.k1.priv, KeyID: "prod-2025", Now: t0}); err == nil || failure.Code(err) != failure.ExitUsage {
		t.Fatalf("named id without roots: %v", err)
	}
	res, err = NewRevocation(ctx, RevokeOptions{Signer: ks.k1.priv, KeyID: ks.k2.key.DerivedID, Now: t0})
	if err != nil || res.Roots != nil || res.Payload.RevokedPublicKey != "" {
		t.Fatalf("derived id without roots: %v", err)
	}
	for _, tt := range []struct {
		name string
		opts RevokeOptions
		want string
	}{
		{"self-signed", RevokeOptions{Signer: ks.k2.priv, KeyID: ks.k2.key.ID, Roots: in}, "is the key being revoked"},
		{"self-signed without roots", RevokeOptions{Signer: ks.k2.priv, KeyID: ks.k2.key.DerivedID}, "is the key being revoked"},
		{"unknown key", RevokeOptions{Signer: ks.k1.priv, KeyID: ks.k3.key.ID, Roots: in}, "not in the trust roots"},
		{"untrusted signer", RevokeOptions{Signer: ks.k3.priv, KeyID: ks.k2.key.ID, Roots: in}, "signing key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = t0
			if _, err := NewRevocation(ctx, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) || failure.Code(err) != failure.ExitUsage {
				t.Fatalf("error %v, want %q with exit 4", err, tt.want)
			}
		})
	}
}
