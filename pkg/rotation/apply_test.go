package rotation

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

func TestApplyRotation(t *testing.T) {
	ks := testKeys(t)
	in := roots(ks.k1.key)
	before := pemOf(t, in)
	doc := rotateDoc(t, ks.k1, ks.k2)
	st := map[string][]byte{"keys/a.json": envelopeOf(t, doc, ks.k1, ks.k2)}
	now := t0.Add(time.Hour)

	out, notes, err := Apply(in, st, now)
	if err != nil {
		t.Fatal(err)
	}
	if pemOf(t, in) != before {
		t.Fatal("Apply modified its input roots")
	}
	k2, ok := out.Find(ks.k2.key.Public)
	if !ok {
		t.Fatal("new key not added")
	}
	if !k2.NotBefore.Equal(t0) || !k2.NotAfter.IsZero() || k2.Source != "rotation:"+doc.StatementID || k2.ID != ks.k2.key.DerivedID {
		t.Fatalf("new key %+v", k2)
	}
	k1, _ := out.Find(ks.k1.key.Public)
	if !k1.NotAfter.Equal(t0.Add(overlap)) {
		t.Fatalf("old key Not-After %s, want %s", k1.NotAfter, t0.Add(overlap))
	}
	want := "key " + ShortID(ks.k2.key.ID) + " added by rotation statement keys/a.json (trusted from 2026-03-01T00:00:00Z, old key " +
		ShortID(ks.k1.key.ID) + " until 2026-03-31T00:00:00Z)"
	if len(notes) != 1 || notes[0] != want {
		t.Fatalf("notes %q, want %q", notes, want)
	}

	// During the overlap both keys are trusted, after it only the new one.
	if k1.ValidAt(now) != nil || k2.ValidAt(now) != nil {
		t.Fatal("both keys should be trusted during the overlap")
	}
	if !errors.Is(k1.ValidAt(t0.Add(overlap)), trust.ErrKeyExpired) || k2.ValidAt(t0.Add(overlap)) != nil {
		t.Fatal("after the overlap only the new key should be trusted")
	}

	// The same statement again changes nothing.
	again, notes, err := Apply(out, st, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if pemOf(t, again) != pemOf(t, out) || !strings.Contains(notes[0], "already applied") {
		t.Fatalf("second apply changed the roots or said %q", notes)
	}
	// Also after the old key's Not-After, when it could not vouch for anything new.
	if _, notes, err = Apply(out, st, t0.Add(2*overlap)); err != nil || !strings.Contains(notes[0], "already applied") {
		t.Fatalf("stale statement: %v %q", err, notes)
	}

	// The trust store keeps everything through PEM.
	parsed, err := trust.Parse([]byte(pemOf(t, out)), "store")
	if err != nil || pemOf(t, parsed) != pemOf(t, out) {
		t.Fatalf("PEM round trip: %v", err)
	}
}

func TestApplyRefusesBadStatements(t *testing.T) {
	ks := testKeys(t)
	now := t0.Add(time.Hour)
	doc := rotateDoc(t, ks.k1, ks.k2)
	payload, _ := Marshal(doc)

	gap := doc
	gap.NewKeyNotBefore = doc.OldKeyNotAfter.Add(time.Hour)
	short := doc
	short.OldKeyNotAfter, short.NewKeyNotBefore, short.NewKeyNotAfter = t0.Add(-2*time.Hour), t0.Add(-3*time.Hour), t0.Add(-time.Hour)
	self := rotateDoc(t, ks.k1, ks.k1)
	badPEM := doc
	badPEM.NewPublicKey = "not a key"
	weak := doc
	weak.NewPublicKey = mustRead(t, "rsa1024.pub")

	expiredK1 := ks.k1.key
	expiredK1.NotAfter = t0.Add(-time.Minute)
	revokedK1 := ks.k1.key
	revokedK1.Revoked = t0.Add(-time.Minute)

	tests := []struct {
		name  string
		roots *trust.Roots
		data  []byte
		want  string
	}{
		{"only the old key", roots(ks.k1.key), envelopeOf(t, doc, ks.k1), "not signed by the new key"},
		{"only the new key", roots(ks.k1.key), envelopeOf(t, doc, ks.k2), "not signed by the old key"},
		{"old and another key", roots(ks.k1.key), envelopeOf(t, doc, ks.k1, ks.k3), "not signed by the new key"},
		{"new key and another trusted key", roots(ks.k1.key, ks.k3.key), envelopeOf(t, doc, ks.k3, ks.k2), "not signed by the old key"},
		{"old key not trusted here", roots(ks.k3.key), envelopeOf(t, doc, ks.k1, ks.k2), "is not in the trust roots"},
		{"old key expired", roots(expiredK1, ks.k3.key), envelopeOf(t, doc, ks.k1, ks.k2), "not trusted at 2026-03-01T01:00:00Z"},
		{"old key revoked", roots(revokedK1, ks.k3.key), envelopeOf(t, doc, ks.k1, ks.k2), "was revoked"},
		{"site left without a key", roots(ks.k1.key), envelopeOf(t, short, ks.k1, ks.k2), "without a usable key"},
		{"gap between the keys", roots(ks.k1.key), envelopeOf(t, gap, ks.k1, ks.k2), "would trust no key in between"},
		{"new key is the old key", roots(ks.k1.key), envelopeOf(t, self, ks.k1), "the new key is the old key"},
		{"new key unreadable", roots(ks.k1.key), envelopeOf(t, badPEM, ks.k1), "newPublicKey"},
		{"new key too weak", roots(ks.k1.key), envelopeOf(t, weak, ks.k1), "too weak"},
		{"duplicate key", roots(ks.k1.key), envelopeOf(t, bytes.Replace(payload, []byte(`"reason"`), []byte(`"type": "rotate", "reason"`), 1), ks.k1, ks.k2), "duplicate key"},
		{"unknown field", roots(ks.k1.key), envelopeOf(t, bytes.Replace(payload, []byte(`"reason"`), []byte(`"extra": 1, "reason"`), 1), ks.k1, ks.k2), "unknown field"},
		{"missing field", roots(ks.k1.key), envelopeOf(t, bytes.Replace(payload, []byte(`"oldKeyNotAfter"`), []byte(`"x"`), 1), ks.k1, ks.k2), "malformed"},
		{"schema version", roots(ks.k1.key), envelopeOf(t, bytes.Replace(payload, []byte(`"schemaVersion": 1`), []byte(`"schemaVersion": 2`), 1), ks.k1, ks.k2), "schemaVersion 2"},
		{"unknown type", roots(ks.k1.key), envelopeOf(t, bytes.Replace(payload, []byte(`"rotate"`), []byte(`"promote"`), 1), ks.k1, ks.k2), `type "promote"`},
		{"not JSON", roots(ks.k1.key), []byte("{"), "malformed DSSE envelope"},
		{"bundle envelope", roots(ks.k1.key), bundleEnvelope(t, ks.k1, payload), "payloadType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := pemOf(t, tt.roots)
			_, _, err := Apply(tt.roots, map[string][]byte{"keys/s.json": tt.data}, now)
			wantRefused(t, err, "keys/s.json", tt.want)
			if pemOf(t, tt.roots) != before {
				t.Fatal("a refused statement changed the input roots")
			}
		})
	}
}

func bundleEnvelope(t testing.TB, k testKey, payload []byte) []byte {
	env, err := sign.SignDSSE(context.Background(), "application/vnd.stellaops.mirror+json;version=1", payload, k.signer(t))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestApplyRefusesWholeSet(t *testing.T) {
	ks := testKeys(t)
	in := roots(ks.k1.key)
	good := envelopeOf(t, rotateDoc(t, ks.k1, ks.k2), ks.k1, ks.k2)
	bad := envelopeOf(t, rotateDoc(t, ks.k1, ks.k3), ks.k1)
	out, notes, err := Apply(in, map[string][]byte{"keys/a.json": good, "keys/b.json": bad}, t0.Add(time.Hour))
	wantRefused(t, err, "keys/b.json", "not signed by the new key")
	if out != nil || notes != nil {
		t.Fatal("a refused set returned roots")
	}
}

func TestApplyChainInAnyOrder(t *testing.T) {
	ks := testKeys(t)
	d12 := rotateDoc(t, ks.k1, ks.k2)
	d23 := rotateDoc(t, ks.k2, ks.k3)
	d23.StatementID = "rot-2"
	// "a" sorts before "b": the K2 -> K3 statement comes first and must wait for K2.
	st := map[string][]byte{
		"keys/a.json": envelopeOf(t, d23, ks.k2, ks.k3),
		"keys/b.json": envelopeOf(t, d12, ks.k1, ks.k2),
	}
	out, notes, err := Apply(roots(ks.k1.key), st, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Keys) != 3 || len(notes) != 2 || !strings.Contains(notes[0], "keys/b.json") {
		t.Fatalf("keys %d, notes %q", len(out.Keys), notes)
	}
	// Without the first link, nothing vouches for K3.
	_, _, err = Apply(roots(ks.k1.key), map[string][]byte{"keys/a.json": st["keys/a.json"]}, t0.Add(time.Hour))
	wantRefused(t, err, "keys/a.json", "is not in the trust roots")
}

func TestApplyNamedKeyIDs(t *testing.T) {
	ks := testKeys(t)
	// The site names K1 "prod-2025"; the statement uses derived ids.
	k1 := ks.k1.key
	k1.ID = "prod-2025"
	doc := rotateDoc(t, ks.k1, ks.k2)
	doc.NewKeyID = "prod-2026"
	s2, err := sign.NewSigner(ks.k2.priv, "", "prod-2026")
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := Marshal(doc)
	env, err := sign.SignDSSE(context.Background(), PayloadType, payload, ks.k1.signer(t), s2)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := Apply(roots(k1), map[string][]byte{"keys/a.json": env}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Lookup("prod-2026"); len(got) != 1 || got[0].DerivedID != ks.k2.key.DerivedID {
		t.Fatalf("new key not recorded as prod-2026: %+v", got)
	}
	// A named id that collides with another trusted key is refused.
	k3 := ks.k3.key
	k3.ID = "prod-2026"
	_, _, err = Apply(roots(k1, k3), map[string][]byte{"keys/a.json": env}, t0.Add(time.Hour))
	wantRefused(t, err, "keys/a.json", "names two different keys")
}

func TestApplyRevocation(t *testing.T) {
	ks := testKeys(t)
	now := t0.Add(2 * time.Hour)
	rot := envelopeOf(t, rotateDoc(t, ks.k1, ks.k2), ks.k1, ks.k2)
	rotated, _, err := Apply(roots(ks.k1.key), map[string][]byte{"keys/rot.json": rot}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rev := envelopeOf(t, revokeDoc(t, ks.k2, false), ks.k1)
	out, notes, err := Apply(rotated, map[string][]byte{"keys/rev.json": rev}, now)
	if err != nil {
		t.Fatal(err)
	}
	k2, ok := out.Find(ks.k2.key.Public)
	if !ok || k2.Revoked.IsZero() || !strings.HasPrefix(k2.Source, "revocation:rev-") {
		t.Fatalf("K2 not marked revoked: %+v", k2)
	}
	if err := k2.ValidAt(now); !errors.Is(err, trust.ErrRevoked) {
		t.Fatalf("revoked key valid: %v", err)
	}
	if !strings.Contains(notes[0], "revoked by revocation statement keys/rev.json (signed by "+ShortID(ks.k1.key.ID)+")") {
		t.Fatalf("note %q", notes[0])
	}
	// The store keeps the revocation.
	parsed, err := trust.Parse([]byte(pemOf(t, out)), "store")
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := parsed.Find(ks.k2.key.Public); k.Revoked.IsZero() {
		t.Fatal("revocation lost through PEM")
	}
	// A bundle signed by K2 no longer verifies, with exit 2.
	sig, _ := sign.SignDSSE(context.Background(), "t", []byte("x"), ks.k2.signer(t))
	if _, err := sign.VerifyDSSE(sig, "t", parsed, now, 1); err == nil || failure.Code(err) != failure.ExitVerification {
		t.Fatalf("revoked key still verifies: %v", err)
	}

	// Replaying the K1 -> K2 statement does not bring K2 back.
	again, notes, err := Apply(out, map[string][]byte{"keys/rot.json": rot}, now)
	if err != nil {
		t.Fatal(err)
	}
	if pemOf(t, again) != pemOf(t, out) || !strings.Contains(notes[0], "changes nothing: key "+ShortID(ks.k2.key.ID)+" was revoked") {
		t.Fatalf("replay: %q", notes)
	}
	// Revoking again is idempotent.
	if again, notes, err = Apply(out, map[string][]byte{"keys/rev.json": rev}, now); err != nil || pemOf(t, again) != pemOf(t, out) || !strings.Contains(notes[0], "already applied") {
		t.Fatalf("second revocation: %v %q", err, notes)
	}
}

func TestApplyRevocationRefused(t *testing.T) {
	ks := testKeys(t)
	now := t0.Add(time.Hour)
	expired := ks.k1.key
	expired.NotAfter = t0
	tests := []struct {
		name  string
		roots *trust.Roots
		data  []byte
		want  string
	}{
		{"signed by the revoked key", roots(ks.k1.key, ks.k2.key), envelopeOf(t, revokeDoc(t, ks.k2, false), ks.k2), "other than the revoked key"},
		{"signed by an unknown key", roots(ks.k1.key, ks.k2.key), envelopeOf(t, revokeDoc(t, ks.k2, false), ks.k3), "other than the revoked key"},
		{"signed by an expired key", roots(expired, ks.k2.key), envelopeOf(t, revokeDoc(t, ks.k2, false), ks.k1), "key no longer valid"},
		{"public key mismatch", roots(ks.k1.key, ks.k2.key), envelopeOf(t, func() Revoke {
			d := revokeDoc(t, ks.k2, true)
			d.RevokedKeySHA256 = ks.k3.key.DerivedID
			return d
		}(), ks.k1), "revokedPublicKey has the id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := pemOf(t, tt.roots)
			_, _, err := Apply(tt.roots, map[string][]byte{"keys/r.json": tt.data}, now)
			wantRefused(t, err, "keys/r.json", tt.want)
			if pemOf(t, tt.roots) != before {
				t.Fatal("input changed")
			}
		})
	}
}

func TestApplyRevocationInTheSameSet(t *testing.T) {
	ks := testKeys(t)
	rot := envelopeOf(t, rotateDoc(t, ks.k1, ks.k2), ks.k1, ks.k2)
	for _, withKey := range []bool{false, true} {
		rev := envelopeOf(t, revokeDoc(t, ks.k2, withKey), ks.k1)
		// The revocation sorts first; the rotation after it must not add K2.
		out, notes, err := Apply(roots(ks.k1.key), map[string][]byte{"keys/keys-revocation.json": rev, "keys/keys-rotation.json": rot}, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := out.Find(ks.k2.key.Public); ok && k.Revoked.IsZero() {
			t.Fatalf("withKey=%v: K2 trusted after its revocation: %q", withKey, notes)
		}
		if withKey {
			// The revoked key is remembered even though the site never trusted it.
			if k, ok := out.Find(ks.k2.key.Public); !ok || k.Revoked.IsZero() || !strings.Contains(notes[0], "revoked in advance") {
				t.Fatalf("no tombstone: %q", notes)
			}
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	ks := testKeys(t)
	env := envelopeOf(t, rotateDoc(t, ks.k1, ks.k2), ks.k1, ks.k2)
	e, err := decode(env)
	if err != nil || e.rotate == nil {
		t.Fatal(err)
	}
	// The payload is encoded with its keys in the documented order.
	var order []string
	for _, line := range strings.Split(string(e.payload), "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			order = append(order, strings.Trim(k, `"`))
		}
	}
	want := "schemaVersion type statementId issuedAt oldKeyId oldKeyNotAfter newKeyId newPublicKey newKeyNotBefore reason"
	if strings.Join(order, " ") != want {
		t.Fatalf("key order %q", order)
	}
	// Non-standard base64 in the envelope is refused.
	bad := bytes.Replace(env, []byte(base64.StdEncoding.EncodeToString(e.payload)), []byte(base64.URLEncoding.EncodeToString(e.payload)+"!"), 1)
	if _, err := decode(bad); err == nil {
		t.Fatal("bad base64 accepted")
	}
	big := make([]byte, MaxStatementSize+1)
	if _, err := decode(big); err == nil {
		t.Fatal("oversized statement accepted")
	}
}

func FuzzApply(f *testing.F) {
	ks := testKeys(f)
	f.Add(envelopeOf(f, rotateDoc(f, ks.k1, ks.k2), ks.k1, ks.k2))
	f.Add(envelopeOf(f, revokeDoc(f, ks.k2, true), ks.k1))
	in := roots(ks.k1.key, ks.k2.key)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := pemOf(t, in)
		out, _, err := Apply(in, map[string][]byte{"keys/f.json": data}, t0.Add(time.Hour))
		if pemOf(t, in) != before {
			t.Fatal("input changed")
		}
		if err == nil && out == nil {
			t.Fatal("nil roots without an error")
		}
		if err != nil && !errors.Is(err, ErrStatement) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
