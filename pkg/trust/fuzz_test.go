package trust_test

import (
	"testing"

	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

func FuzzTrustParse(f *testing.F) {
	for _, name := range []string{"es256", "es384", "es512", "rsa2048", "rsa1024", "ed25519", "cosign"} {
		f.Add(pub(f, name))
	}
	for _, s := range testutil.CorpusSeeds(f, "../..", "roots/*.pem", 1<<20) {
		f.Add(s)
	}
	f.Add(withHeaders(f, pub(f, "es256"), map[string]string{"Key-Id": "k", "Not-Before": "2026-01-01T00:00:00Z", "Not-After": "2027-01-01T00:00:00Z"}))
	f.Add(join(withHeaders(f, pub(f, "es256"), map[string]string{"Key-Id": "k"}), withHeaders(f, pub(f, "ed25519"), map[string]string{"Key-Id": "k"})))
	f.Add(withHeaders(f, pub(f, "es384"), map[string]string{"Not-Before": "2026-01-01T00:00:00.25Z", "Not-After": "2026-01-01T00:00:00.75Z"}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := trust.Parse(data, "fuzz")
		if err != nil {
			return
		}
		if len(r.Keys) == 0 {
			t.Fatal("no keys and no error")
		}
		ids := map[string]bool{}
		for _, k := range r.Keys {
			if err := trust.CheckPublicKey(k.Public); err != nil {
				t.Fatalf("accepted key %s: %v", k.ID, err)
			}
			if derived, err := trust.KeyID(k.Public); err != nil || derived != k.DerivedID {
				t.Fatalf("derived id %s, key has %s", derived, k.DerivedID)
			}
			if !k.NotBefore.IsZero() && !k.NotAfter.IsZero() && !k.NotBefore.Before(k.NotAfter) {
				t.Fatalf("empty window %s..%s", k.NotBefore, k.NotAfter)
			}
			for _, id := range []string{k.ID, k.DerivedID} {
				if len(r.Lookup(id)) != 1 {
					t.Fatalf("id %s names %d keys", id, len(r.Lookup(id)))
				}
			}
			if ids[k.DerivedID] {
				t.Fatalf("key %s listed twice", k.DerivedID)
			}
			ids[k.DerivedID] = true
		}
		// What we accept, we can write and read back unchanged.
		out, err := r.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := trust.Parse(out, "again")
		if err != nil {
			t.Fatalf("written roots refused: %v\n%s", err, out)
		}
		if len(back.Keys) != len(r.Keys) {
			t.Fatalf("%d keys became %d", len(r.Keys), len(back.Keys))
		}
		for _, k := range back.Keys {
			orig := r.Lookup(k.ID)
			if len(orig) != 1 || orig[0].DerivedID != k.DerivedID || !orig[0].NotBefore.Equal(k.NotBefore) || !orig[0].NotAfter.Equal(k.NotAfter) {
				t.Fatalf("key %s changed when written and read back", k.ID)
			}
		}
	})
}
