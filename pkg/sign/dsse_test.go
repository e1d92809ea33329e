package sign_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

const mirrorPayloadType = "application/vnd.stellaops.mirror+json;version=1"

var dssePayload = []byte("{\n  \"schemaVersion\": 1,\n  \"exportId\": \"20260301T120000Z\"\n}\n")

// protocolVector is testdata/dsse/protocol-v1.json.
type protocolVector struct {
	PayloadType    string        `json:"payloadType"`
	SerializedBody string        `json:"serializedBody"`
	PAE            string        `json:"pae"`
	RawX           string        `json:"x"`
	RawY           string        `json:"y"`
	RawD           string        `json:"d"`
	Envelope       dsse.Envelope `json:"envelope"`
}

func loadProtocolVector(t *testing.T) (protocolVector, *ecdsa.PrivateKey) {
	t.Helper()
	var v protocolVector
	if err := json.Unmarshal(readFile(t, "../../testdata/dsse/protocol-v1.json"), &v); err != nil {
		t.Fatal(err)
	}
	num := func(s string) *big.Int {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			t.Fatalf("bad number %q", s)
		}
		return n
	}
	d := make([]byte, 32)
	num(v.RawD).FillBytes(d)
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		t.Fatal(err)
	}
	if priv.X.Cmp(num(v.RawX)) != 0 || priv.Y.Cmp(num(v.RawY)) != 0 {
		t.Fatal("the vector's d does not give its X, Y")
	}
	return v, priv
}

func rawToDER(t *testing.T, raw []byte) []byte {
	t.Helper()
	half := len(raw) / 2
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:half]), new(big.Int).SetBytes(raw[half:])})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func derToRaw(t *testing.T, der []byte, size int) []byte {
	t.Helper()
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) > 0 {
		t.Fatalf("not an ASN.1 signature: %v", err)
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out
}

func TestDSSEProtocolVector(t *testing.T) {
	v, priv := loadProtocolVector(t)

	if got := string(dsse.PAE(v.PayloadType, []byte(v.SerializedBody))); got != v.PAE {
		t.Fatalf("PAE %q, want %q", got, v.PAE)
	}
	if v.PAE != "DSSEv1 29 http://example.com/HelloWorld 11 hello world" {
		t.Fatalf("vector file changed: %q", v.PAE)
	}
	published, err := base64.StdEncoding.DecodeString(v.Envelope.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(v.PAE))
	if !ecdsa.Verify(&priv.PublicKey, digest[:], new(big.Int).SetBytes(published[:32]), new(big.Int).SetBytes(published[32:])) {
		t.Fatal("the published signature does not verify over the PAE")
	}

	// Our signer is deterministic (RFC 6979), so it reproduces the
	// published signature exactly; it writes it in ASN.1 DER.
	s, err := sign.NewSigner(priv, "", "")
	if err != nil {
		t.Fatal(err)
	}
	envJSON, err := sign.SignDSSE(context.Background(), v.PayloadType, []byte(v.SerializedBody), s)
	if err != nil {
		t.Fatal(err)
	}
	env, err := sign.ParseEnvelope(envJSON)
	if err != nil {
		t.Fatal(err)
	}
	if env.Payload != v.Envelope.Payload || env.PayloadType != v.Envelope.PayloadType {
		t.Errorf("envelope %+v, want payload %s", env, v.Envelope.Payload)
	}
	der, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.StdEncoding.EncodeToString(derToRaw(t, der, 32)); got != v.Envelope.Signatures[0].Sig {
		t.Errorf("signature %s\nwant      %s", got, v.Envelope.Signatures[0].Sig)
	}

	// The published envelope, with its signature in DER and a keyid, verifies.
	roots := windowed(t, &priv.PublicKey, time.Time{}, time.Time{})
	pub := dsse.Envelope{PayloadType: v.PayloadType, Payload: v.Envelope.Payload, Signatures: []dsse.Signature{{
		KeyID: roots.Keys[0].ID, Sig: base64.StdEncoding.EncodeToString(rawToDER(t, published)),
	}}}
	data, err := sign.MarshalEnvelope(&pub)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sign.VerifyDSSE(data, v.PayloadType, roots, testNow, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Payload) != v.SerializedBody {
		t.Errorf("payload %q", res.Payload)
	}
	// In its published raw form the signature is not what DSSE envelopes
	// of this project carry, and it does not count.
	pub.Signatures[0].Sig = v.Envelope.Signatures[0].Sig
	data, _ = sign.MarshalEnvelope(&pub)
	_, err = sign.VerifyDSSE(data, v.PayloadType, roots, testNow, 1)
	wantErrs(t, err, sign.ErrDSSESignature)
}

func TestDSSERoundTrip(t *testing.T) {
	for _, tt := range algKeys {
		t.Run(tt.alg, func(t *testing.T) {
			s := loadSigner(t, tt.file, tt.alg, "")
			envJSON, err := sign.SignDSSE(context.Background(), mirrorPayloadType, dssePayload, s)
			if err != nil {
				t.Fatal(err)
			}
			res, err := sign.VerifyDSSE(envJSON, mirrorPayloadType, rootsOf(t, tt.file), testNow, 1)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Payload) != string(dssePayload) {
				t.Errorf("payload %q", res.Payload)
			}
			if ids := res.KeyIDs(); len(ids) != 1 || ids[0] != opensslKeyIDs[tt.file] {
				t.Errorf("accepted %v", ids)
			}
			env, err := sign.ParseEnvelope(envJSON)
			if err != nil {
				t.Fatal(err)
			}
			if env.Signatures[0].KeyID != opensslKeyIDs[tt.file] {
				t.Errorf("keyid %q", env.Signatures[0].KeyID)
			}
			again, err := sign.SignDSSE(context.Background(), mirrorPayloadType, dssePayload, s)
			if err != nil || string(again) != string(envJSON) {
				t.Errorf("second envelope differs: %v", err)
			}
		})
	}
}

// pkcs1Verifier checks RSA PKCS#1 v1.5 signatures for the DSSE library
// (its own RSA verifier speaks only RSASSA-PSS).
type pkcs1Verifier struct {
	pub  *rsa.PublicKey
	hash crypto.Hash
	id   string
}

func (v pkcs1Verifier) Verify(_ context.Context, data, sig []byte) error {
	h := v.hash.New()
	h.Write(data)
	return rsa.VerifyPKCS1v15(v.pub, v.hash, h.Sum(nil), sig)
}
func (v pkcs1Verifier) KeyID() (string, error)   { return v.id, nil }
func (v pkcs1Verifier) Public() crypto.PublicKey { return v.pub }

// TestDSSEVerifiedBySecuresystemslib verifies our envelopes with the DSSE
// library's own envelope verifier and key verifiers.
func TestDSSEVerifiedBySecuresystemslib(t *testing.T) {
	for _, tt := range algKeys {
		t.Run(tt.alg, func(t *testing.T) {
			s := loadSigner(t, tt.file, tt.alg, "")
			envJSON, err := sign.SignDSSE(context.Background(), mirrorPayloadType, dssePayload, s)
			if err != nil {
				t.Fatal(err)
			}
			var env dsse.Envelope
			if err := json.Unmarshal(envJSON, &env); err != nil {
				t.Fatal(err)
			}
			key, err := signerverifier.LoadKey(readFile(t, keyPath(tt.file+".pub")))
			if err != nil {
				t.Fatal(err)
			}
			key.KeyID = s.KeyID()
			var v dsse.Verifier
			switch pub := s.Public().(type) {
			case *ecdsa.PublicKey:
				v, err = signerverifier.NewECDSASignerVerifierFromSSLibKey(key)
			case *rsa.PublicKey:
				h := crypto.SHA256
				if tt.alg == sign.RS384 {
					h = crypto.SHA384
				}
				v = pkcs1Verifier{pub: pub, hash: h, id: s.KeyID()}
			default:
				v, err = signerverifier.NewED25519SignerVerifierFromSSLibKey(key)
			}
			if err != nil {
				t.Fatal(err)
			}
			ev, err := dsse.NewEnvelopeVerifier(v)
			if err != nil {
				t.Fatal(err)
			}
			accepted, payload, err := ev.VerifyAndDecode(context.Background(), &env)
			if err != nil {
				t.Fatalf("go-securesystemslib: %v", err)
			}
			if len(accepted) != 1 || string(payload) != string(dssePayload) {
				t.Errorf("accepted %d, payload %q", len(accepted), payload)
			}
			env.PayloadType = "application/json"
			if _, err := ev.Verify(context.Background(), &env); err == nil {
				t.Error("go-securesystemslib verified a changed payloadType")
			}
		})
	}
}

// addSig appends a signature of priv over the PAE of env under keyid.
func addSig(t *testing.T, env *dsse.Envelope, priv crypto.Signer, keyid string) {
	t.Helper()
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	h := crypto.SHA256
	if k, ok := priv.Public().(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P384():
			h = crypto.SHA384
		case elliptic.P521():
			h = crypto.SHA512
		}
	}
	sig := rawSign(t, priv, h, dsse.PAE(env.PayloadType, payload), true)
	env.Signatures = append(env.Signatures, dsse.Signature{KeyID: keyid, Sig: base64.StdEncoding.EncodeToString(sig)})
}

func TestDSSEThresholdAndRefusals(t *testing.T) {
	es256 := loadPriv(t, "es256")
	ed := loadPriv(t, "ed25519")
	other := loadPriv(t, "other-es256")
	es384 := loadPriv(t, "es384")
	id := opensslKeyIDs

	// es256 is trusted under a Key-Id alias as well as its derived id.
	aliased := parseRoots(t,
		[]byte(strings.Replace(string(readFile(t, keyPath("es256.pub"))), "-----BEGIN PUBLIC KEY-----\n",
			"-----BEGIN PUBLIC KEY-----\nKey-Id: mirror-2026\n\n", 1)),
		readFile(t, keyPath("ed25519.pub")),
		readFile(t, keyPath("es384.pub")))
	base64Payload := base64.StdEncoding.EncodeToString(dssePayload)
	newEnv := func(sigs ...func(*dsse.Envelope)) *dsse.Envelope {
		env := &dsse.Envelope{PayloadType: mirrorPayloadType, Payload: base64Payload}
		for _, s := range sigs {
			s(env)
		}
		return env
	}
	by := func(priv crypto.Signer, keyid string) func(*dsse.Envelope) {
		return func(env *dsse.Envelope) { addSig(t, env, priv, keyid) }
	}
	dupLast := func(env *dsse.Envelope) {
		env.Signatures = append(env.Signatures, env.Signatures[len(env.Signatures)-1])
	}
	expired := windowed(t, es256.Public(), testNow.Add(-48*time.Hour), testNow.Add(-time.Hour))
	if err := expired.Add(mustKey(t, ed.Public())); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		env       *dsse.Envelope
		raw       []byte
		roots     *trust.Roots
		threshold int
		want      []error
		not       []error
		accepted  []string
	}{
		{name: "one key", env: newEnv(by(es256, id["es256"])), threshold: 1, accepted: []string{"mirror-2026"}},
		{name: "by its Key-Id alias", env: newEnv(by(es256, "mirror-2026")), threshold: 1, accepted: []string{"mirror-2026"}},
		{name: "threshold 0 means 1", env: newEnv(by(es256, id["es256"])), threshold: 0, accepted: []string{"mirror-2026"}},
		{name: "two distinct keys meet a threshold of 2", env: newEnv(by(es256, id["es256"]), by(ed, id["ed25519"])), threshold: 2,
			accepted: []string{"mirror-2026", id["ed25519"]}},
		{name: "three distinct keys meet a threshold of 3", env: newEnv(by(es384, id["es384"]), by(es256, "mirror-2026"), by(ed, id["ed25519"])), threshold: 3,
			accepted: []string{id["es384"], "mirror-2026", id["ed25519"]}},
		{name: "one key under two keyids does not meet 2", env: newEnv(by(es256, id["es256"]), by(es256, "mirror-2026")), threshold: 2,
			want: []error{sign.ErrDSSESignature, failure.ErrVerification}},
		{name: "the same signature twice does not meet 2", env: newEnv(by(es256, id["es256"]), dupLast), threshold: 2,
			want: []error{sign.ErrDSSESignature, failure.ErrVerification}},
		{name: "the same signature three times does not meet 2", env: newEnv(by(ed, id["ed25519"]), dupLast, dupLast), threshold: 2,
			want: []error{sign.ErrDSSESignature}},
		{name: "unknown keyid ignored when another signature suffices", env: newEnv(by(other, id["other-es256"]), by(es256, id["es256"])), threshold: 1,
			accepted: []string{"mirror-2026"}},
		{name: "unknown keyid only", env: newEnv(by(other, id["other-es256"])), threshold: 1,
			want: []error{sign.ErrDSSESignature, failure.ErrVerification}},
		{name: "unknown key claiming a trusted keyid", env: newEnv(by(other, id["es256"])), threshold: 1,
			want: []error{sign.ErrDSSESignature, failure.ErrVerification}},
		{name: "no keyid", env: newEnv(by(es256, "")), threshold: 1, want: []error{sign.ErrDSSESignature}},
		{name: "keyid with path characters", env: newEnv(by(es256, "../keys/es256.pub")), threshold: 1, want: []error{sign.ErrDSSESignature}},
		{name: "wrong payloadType", env: func() *dsse.Envelope {
			env := &dsse.Envelope{PayloadType: "application/vnd.in-toto+json", Payload: base64Payload}
			addSig(t, env, es256, id["es256"])
			return env
		}(), threshold: 1, want: []error{sign.ErrDSSEPayloadType, failure.ErrVerification}},
		{name: "payloadType swapped after signing", env: func() *dsse.Envelope {
			env := newEnv(by(es256, id["es256"]))
			env.PayloadType = "application/vnd.stellaops.mirror+json;version=2"
			return env
		}(), threshold: 1, want: []error{sign.ErrDSSEPayloadType}},
		{name: "payload swapped after signing", env: func() *dsse.Envelope {
			env := newEnv(by(es256, id["es256"]))
			env.Payload = base64.StdEncoding.EncodeToString([]byte("{}"))
			return env
		}(), threshold: 1, want: []error{sign.ErrDSSESignature}},
		{name: "signature over the payload, not the PAE", env: func() *dsse.Envelope {
			env := newEnv()
			h := sha256.Sum256(dssePayload)
			sig, err := ecdsa.SignASN1(nil, es256.(*ecdsa.PrivateKey), h[:])
			if err != nil {
				t.Fatal(err)
			}
			env.Signatures = []dsse.Signature{{KeyID: id["es256"], Sig: base64.StdEncoding.EncodeToString(sig)}}
			return env
		}(), threshold: 1, want: []error{sign.ErrDSSESignature}},
		{name: "P-384 signature with SHA-256", env: func() *dsse.Envelope {
			env := newEnv()
			sig := rawSign(t, es384, crypto.SHA256, dsse.PAE(mirrorPayloadType, dssePayload), true)
			env.Signatures = []dsse.Signature{{KeyID: id["es384"], Sig: base64.StdEncoding.EncodeToString(sig)}}
			return env
		}(), threshold: 1, want: []error{sign.ErrDSSESignature}},
		{name: "expired key is a policy failure", env: newEnv(by(es256, id["es256"])), roots: expired, threshold: 1,
			want: []error{trust.ErrKeyExpired, failure.ErrPolicy}, not: []error{failure.ErrVerification}},
		{name: "expired key does not count toward a threshold", env: newEnv(by(es256, id["es256"]), by(ed, id["ed25519"])), roots: expired, threshold: 2,
			want: []error{trust.ErrKeyExpired, failure.ErrPolicy}, not: []error{failure.ErrVerification}},
		{name: "one expired key signing twice is not a policy failure for a threshold of 2", env: newEnv(by(es256, id["es256"]), dupLast), roots: expired, threshold: 2,
			want: []error{sign.ErrDSSESignature, failure.ErrVerification}, not: []error{failure.ErrPolicy}},
		{name: "one expired key under two keyids is not a policy failure for a threshold of 2", env: newEnv(by(es256, id["es256"]), by(es256, "mirror-2026")),
			roots: func() *trust.Roots {
				k := mustKey(t, es256.Public())
				k.ID, k.NotAfter = "mirror-2026", testNow.Add(-time.Hour)
				return &trust.Roots{Keys: []trust.Key{k}}
			}(), threshold: 2,
			want: []error{sign.ErrDSSESignature, failure.ErrVerification}, not: []error{failure.ErrPolicy}},
		{name: "expired key beside a valid one meets a threshold of 1", env: newEnv(by(es256, id["es256"]), by(ed, id["ed25519"])), roots: expired, threshold: 1,
			accepted: []string{id["ed25519"]}},
		{name: "not yet valid key", env: newEnv(by(es256, id["es256"])), roots: windowed(t, es256.Public(), testNow.Add(time.Minute), time.Time{}), threshold: 1,
			want: []error{trust.ErrNotYetValid, failure.ErrPolicy}},
		{name: "no signatures", raw: []byte(`{"payloadType":"` + mirrorPayloadType + `","payload":"` + base64Payload + `","signatures":[]}`),
			threshold: 1, want: []error{sign.ErrDSSEMalformed, failure.ErrVerification}},
		{name: "payload not standard base64", raw: []byte(`{"payloadType":"` + mirrorPayloadType + `","payload":"` + base64.RawURLEncoding.EncodeToString(dssePayload) + `_","signatures":[{"keyid":"x","sig":"AA=="}]}`),
			threshold: 1, want: []error{sign.ErrDSSEMalformed}},
		{name: "signature not base64", raw: []byte(`{"payloadType":"` + mirrorPayloadType + `","payload":"` + base64Payload + `","signatures":[{"keyid":"x","sig":"%%"}]}`),
			threshold: 1, want: []error{sign.ErrDSSEMalformed}},
		{name: "duplicate payload key", raw: []byte(`{"payloadType":"` + mirrorPayloadType + `","payload":"e30=","payload":"` + base64Payload + `","signatures":[{"keyid":"x","sig":"AA=="}]}`),
			threshold: 1, want: []error{sign.ErrDSSEMalformed, failure.ErrVerification}},
		{name: "case-variant payloadType key", raw: []byte(`{"payloadType":"` + mirrorPayloadType + `","PayloadType":"x","payload":"` + base64Payload + `","signatures":[{"keyid":"x","sig":"AA=="}]}`),
			threshold: 1, want: []error{sign.ErrDSSEMalformed}},
		{name: "unknown field", raw: []byte(`{"payloadType":"` + mirrorPayloadType + `","payload":"` + base64Payload + `","signatures":[{"keyid":"x","sig":"AA==","cert":"x"}]}`),
			threshold: 1, want: []error{sign.ErrDSSEMalformed}},
		{name: "not JSON", raw: []byte("DSSEv1 29 http://example.com/HelloWorld 11 hello world"), threshold: 1, want: []error{sign.ErrDSSEMalformed}},
		{name: "trailing data", raw: []byte(`{"payloadType":"a","payload":"","signatures":[{"keyid":"x","sig":""}]} {}`), threshold: 1, want: []error{sign.ErrDSSEMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.raw
			if data == nil {
				var err error
				data, err = sign.MarshalEnvelope(tt.env)
				if err != nil {
					t.Fatal(err)
				}
			}
			roots := aliased
			if tt.roots != nil {
				roots = tt.roots
			}
			res, err := sign.VerifyDSSE(data, mirrorPayloadType, roots, testNow, tt.threshold)
			wantErrs(t, err, tt.want...)
			wantNot(t, err, tt.not...)
			if err != nil {
				if res.Payload != nil {
					t.Error("a failed verification returned the payload")
				}
				return
			}
			if strings.Join(res.KeyIDs(), ",") != strings.Join(tt.accepted, ",") {
				t.Errorf("accepted %v, want %v", res.KeyIDs(), tt.accepted)
			}
		})
	}
}

func mustKey(t *testing.T, pub crypto.PublicKey) trust.Key {
	t.Helper()
	k, err := trust.NewKey(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignDSSEWithSeveralSigners(t *testing.T) {
	a := loadSigner(t, "es256", "", "")
	b := loadSigner(t, "ed25519", "", "")
	envJSON, err := sign.SignDSSE(context.Background(), mirrorPayloadType, dssePayload, a, b)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sign.VerifyDSSE(envJSON, mirrorPayloadType, rootsOf(t, "es256", "ed25519"), testNow, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Accepted) != 2 {
		t.Errorf("accepted %v", res.KeyIDs())
	}
	_, err = sign.VerifyDSSE(envJSON, mirrorPayloadType, rootsOf(t, "es256", "ed25519"), testNow, 3)
	wantErrs(t, err, sign.ErrDSSESignature)
	if _, err := sign.SignDSSE(context.Background(), mirrorPayloadType, dssePayload); err == nil {
		t.Error("signed with no signer")
	}
}

func TestSHA512DigestForP521(t *testing.T) {
	// DSSE over P-521 uses SHA-512, as go-securesystemslib does.
	s := loadSigner(t, "es512", "", "")
	envJSON, err := sign.SignDSSE(context.Background(), mirrorPayloadType, dssePayload, s)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := sign.ParseEnvelope(envJSON)
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	h := sha512.Sum512(dsse.PAE(mirrorPayloadType, dssePayload))
	if !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), h[:], sig) {
		t.Error("P-521 DSSE signature is not over SHA-512(PAE)")
	}
}
