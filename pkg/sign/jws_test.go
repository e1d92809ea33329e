package sign_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

var jwsPayload = []byte("{\"schemaVersion\":1,\"domainId\":\"primary\",\"advisories\":[\n{\"id\":\"SAMPLE-1\"}\n]}\n")

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// rawSign signs msg the way a JWS (raw R||S) or DSSE/cosign (ASN.1 DER)
// signer would, independently of pkg/sign.
func rawSign(t testing.TB, priv crypto.Signer, h crypto.Hash, msg []byte, der bool) []byte {
	t.Helper()
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg)
	case *rsa.PrivateKey:
		hw := h.New()
		hw.Write(msg)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, h, hw.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case *ecdsa.PrivateKey:
		hw := h.New()
		hw.Write(msg)
		if der {
			sig, err := ecdsa.SignASN1(rand.Reader, k, hw.Sum(nil))
			if err != nil {
				t.Fatal(err)
			}
			return sig
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, hw.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}
	t.Fatalf("unsupported key %T", priv)
	return nil
}

// craftJWS builds a compact detached JWS with an arbitrary protected header,
// signed over BASE64URL(header) "." payload by sig.
func craftJWS(header string, payload []byte, sig func(input []byte) []byte) []byte {
	h := b64([]byte(header))
	return []byte(h + ".." + b64(sig(append([]byte(h+"."), payload...))))
}

func TestJWSRoundTrip(t *testing.T) {
	for _, tt := range algKeys {
		t.Run(tt.alg, func(t *testing.T) {
			s := loadSigner(t, tt.file, tt.alg, "")
			compact, err := s.SignJWS(bytes.NewReader(jwsPayload))
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(compact, ".")
			if len(parts) != 3 || parts[1] != "" {
				t.Fatalf("not a compact detached JWS: %q", compact)
			}
			hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
			if err != nil {
				t.Fatal(err)
			}
			want := `{"alg":"` + tt.alg + `","kid":"` + opensslKeyIDs[tt.file] + `","b64":false,"crit":["b64"]}`
			if string(hdr) != want {
				t.Errorf("header %s\nwant   %s", hdr, want)
			}
			roots := rootsOf(t, tt.file)
			res, err := sign.VerifyJWS([]byte(compact), bytes.NewReader(jwsPayload), roots, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if res.Alg != tt.alg || res.Key.ID != opensslKeyIDs[tt.file] {
				t.Errorf("verified %s by %s", res.Alg, res.Key.ID)
			}
			// A trailing newline, as editors and echo add, is tolerated.
			if _, err := sign.VerifyJWS([]byte(compact+"\n"), bytes.NewReader(jwsPayload), roots, testNow); err != nil {
				t.Errorf("with trailing newline: %v", err)
			}
			// ECDSA, RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic:
			// the same bundle signed twice is byte-identical.
			again, err := s.SignJWS(bytes.NewReader(jwsPayload))
			if err != nil || again != compact {
				t.Errorf("second signature differs: %v", err)
			}
		})
	}
}

// TestJWSVerifiedByGoJose checks our output with an independent JOSE
// implementation, and that we verify what it signs.
func TestJWSVerifiedByGoJose(t *testing.T) {
	for _, tt := range algKeys {
		t.Run(tt.alg, func(t *testing.T) {
			s := loadSigner(t, tt.file, tt.alg, "")
			compact, err := s.SignJWS(bytes.NewReader(jwsPayload))
			if err != nil {
				t.Fatal(err)
			}
			algs := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tt.alg)}
			obj, err := jose.ParseDetached(compact, jwsPayload, algs)
			if err != nil {
				t.Fatalf("go-jose ParseDetached: %v", err)
			}
			if err := obj.DetachedVerify(jwsPayload, s.Public()); err != nil {
				t.Fatalf("go-jose DetachedVerify: %v", err)
			}
			if got := obj.Signatures[0].Protected.KeyID; got != s.KeyID() {
				t.Errorf("go-jose reads kid %q", got)
			}
			tampered := append([]byte(nil), jwsPayload...)
			tampered[0] ^= 1
			if obj, err := jose.ParseDetached(compact, tampered, algs); err == nil {
				if err := obj.DetachedVerify(tampered, s.Public()); err == nil {
					t.Error("go-jose verified a tampered payload")
				}
			}

			// The other direction: go-jose signs, we verify.
			js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(tt.alg), Key: loadPriv(t, tt.file)},
				(&jose.SignerOptions{}).WithBase64(false).WithHeader("kid", s.KeyID()))
			if err != nil {
				t.Fatal(err)
			}
			signed, err := js.Sign(jwsPayload)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := signed.DetachedCompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sign.VerifyJWS([]byte(theirs), bytes.NewReader(jwsPayload), rootsOf(t, tt.file), testNow); err != nil {
				t.Errorf("go-jose's JWS %s refused: %v", theirs, err)
			}
		})
	}
}

func TestJWSRefusals(t *testing.T) {
	es256 := loadPriv(t, "es256")
	rsaKey := loadPriv(t, "rsa2048")
	edKey := loadPriv(t, "ed25519")
	other := loadPriv(t, "other-es256")
	kid := opensslKeyIDs["es256"]
	rsaKid := opensslKeyIDs["rsa2048"]
	edKid := opensslKeyIDs["ed25519"]
	roots := rootsOf(t, "es256", "rsa2048", "ed25519")
	esPub := readFile(t, keyPath("es256.pub"))

	hdr := func(alg, kid string, extra string) string {
		return `{"alg":"` + alg + `","kid":"` + kid + `"` + extra + `}`
	}
	std := `,"b64":false,"crit":["b64"]`
	es := func(input []byte) []byte { return rawSign(t, es256, crypto.SHA256, input, false) }
	good := func(header string) []byte { return craftJWS(header, jwsPayload, es) }

	tests := []struct {
		name    string
		jws     []byte
		payload []byte
		roots   *trust.Roots
		now     time.Time
		want    []error
		not     []error
	}{
		{name: "valid hand-made JWS", jws: good(hdr("ES256", kid, std))},
		{name: "typ and cty are tolerated", jws: good(`{"alg":"ES256","kid":"` + kid + `","b64":false,"crit":["b64"],"typ":"JOSE","cty":"json"}`)},
		{name: "alg none", jws: []byte(b64([]byte(hdr("none", kid, std))) + ".."),
			want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "alg NONE", jws: []byte(b64([]byte(hdr("NONE", kid, std))) + ".."),
			want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "alg empty", jws: good(hdr("", kid, std)), want: []error{sign.ErrJWSHeader}},
		{name: "HS256 keyed with the public key", jws: craftJWS(hdr("HS256", kid, std), jwsPayload, func(in []byte) []byte {
			m := hmac.New(sha256.New, esPub)
			m.Write(in)
			return m.Sum(nil)
		}), want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "hs512 lower case", jws: good(hdr("hs512", kid, std)), want: []error{sign.ErrJWSHeader}},
		{name: "PS256 unsupported", jws: good(hdr("PS256", kid, std)), want: []error{sign.ErrJWSHeader}},
		{name: "ES384 header on a P-256 key", jws: craftJWS(hdr("ES384", kid, std), jwsPayload, func(in []byte) []byte {
			return rawSign(t, es256, crypto.SHA384, in, false)
		}), want: []error{sign.ErrAlgMismatch, failure.ErrVerification}},
		{name: "RS256 header on an EC key", jws: craftJWS(hdr("RS256", kid, std), jwsPayload, es),
			want: []error{sign.ErrAlgMismatch, failure.ErrVerification}},
		{name: "ES256 header on an RSA key", jws: craftJWS(hdr("ES256", rsaKid, std), jwsPayload, func(in []byte) []byte {
			return rawSign(t, rsaKey, crypto.SHA256, in, false)
		}), want: []error{sign.ErrAlgMismatch, failure.ErrVerification}},
		{name: "ES256 header on an Ed25519 key", jws: craftJWS(hdr("ES256", edKid, std), jwsPayload, func(in []byte) []byte {
			return rawSign(t, edKey, 0, in, false)
		}), want: []error{sign.ErrAlgMismatch, failure.ErrVerification}},
		{name: "DER ECDSA signature instead of raw", jws: craftJWS(hdr("ES256", kid, std), jwsPayload, func(in []byte) []byte {
			return rawSign(t, es256, crypto.SHA256, in, true)
		}), want: []error{sign.ErrJWSSignature, failure.ErrVerification}},
		{name: "raw signature one byte short", jws: craftJWS(hdr("ES256", kid, std), jwsPayload, func(in []byte) []byte {
			return es(in)[1:]
		}), want: []error{sign.ErrJWSSignature}},
		{name: "unknown crit", jws: good(hdr("ES256", kid, `,"b64":false,"crit":["b64","urn:example:exp"]`)),
			want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "crit names another parameter only", jws: good(hdr("ES256", kid, `,"b64":false,"crit":["kid"]`)),
			want: []error{sign.ErrJWSHeader}},
		{name: "crit repeats b64", jws: good(hdr("ES256", kid, `,"b64":false,"crit":["b64","b64"]`)),
			want: []error{sign.ErrJWSHeader}},
		{name: "empty crit", jws: good(hdr("ES256", kid, `,"b64":false,"crit":[]`)),
			want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "b64 without crit", jws: good(hdr("ES256", kid, `,"b64":false`)),
			want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "b64 true", jws: good(hdr("ES256", kid, `,"b64":true,"crit":["b64"]`)),
			want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "b64 as a string", jws: good(hdr("ES256", kid, `,"b64":"false","crit":["b64"]`)),
			want: []error{sign.ErrJWSMalformed, failure.ErrVerification}},
		{name: "missing b64", jws: good(hdr("ES256", kid, `,"crit":["b64"]`)),
			want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "plain RFC 7515 JWS over the base64 payload", jws: craftJWS(hdr("ES256", kid, ""), []byte(b64(jwsPayload)), es),
			want: []error{sign.ErrJWSHeader}},
		{name: "missing kid", jws: good(`{"alg":"ES256","b64":false,"crit":["b64"]}`), want: []error{sign.ErrJWSHeader}},
		{name: "kid with path characters", jws: good(hdr("ES256", "../../testdata/keys/es256.pub", std)),
			want: []error{sign.ErrUntrustedKey, failure.ErrVerification}},
		{name: "kid absolute path", jws: good(hdr("ES256", "/etc/ssl/certs/ca.pem", std)),
			want: []error{sign.ErrUntrustedKey, failure.ErrVerification}},
		{name: "kid of an untrusted key", jws: craftJWS(hdr("ES256", opensslKeyIDs["other-es256"], std), jwsPayload, func(in []byte) []byte {
			return rawSign(t, other, crypto.SHA256, in, false)
		}), want: []error{sign.ErrUntrustedKey, failure.ErrVerification}},
		{name: "trusted kid, signed by another key", jws: craftJWS(hdr("ES256", kid, std), jwsPayload, func(in []byte) []byte {
			return rawSign(t, other, crypto.SHA256, in, false)
		}), want: []error{sign.ErrJWSSignature, failure.ErrVerification}},
		{name: "embedded jwk", jws: good(hdr("ES256", kid, std+`,"jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}`)),
			want: []error{sign.ErrJWSHeader, failure.ErrVerification}},
		{name: "jku", jws: good(hdr("ES256", kid, std+`,"jku":"https://example.com/keys"`)), want: []error{sign.ErrJWSHeader}},
		{name: "x5c", jws: good(hdr("ES256", kid, std+`,"x5c":["MIIB"]`)), want: []error{sign.ErrJWSHeader}},
		{name: "x5u", jws: good(hdr("ES256", kid, std+`,"x5u":"https://example.com/cert.pem"`)), want: []error{sign.ErrJWSHeader}},
		{name: "x5t#S256", jws: good(hdr("ES256", kid, std+`,"x5t#S256":"AA"`)), want: []error{sign.ErrJWSHeader}},
		{name: "unknown header parameter", jws: good(hdr("ES256", kid, std+`,"zip":"DEF"`)), want: []error{sign.ErrJWSHeader}},
		{name: "duplicate alg", jws: good(`{"alg":"ES256","alg":"none","kid":"` + kid + `"` + std + `}`),
			want: []error{sign.ErrJWSMalformed, failure.ErrVerification}},
		{name: "duplicate kid", jws: good(`{"alg":"ES256","kid":"x","kid":"` + kid + `"` + std + `}`),
			want: []error{sign.ErrJWSMalformed}},
		{name: "case-variant duplicate", jws: good(`{"alg":"ES256","Alg":"none","kid":"` + kid + `"` + std + `}`),
			want: []error{sign.ErrJWSMalformed}},
		{name: "escaped duplicate", jws: good(`{"alg":"ES256","\u0061lg":"none","kid":"` + kid + `"` + std + `}`),
			want: []error{sign.ErrJWSMalformed}},
		{name: "case-variant single parameter", jws: good(`{"ALG":"ES256","kid":"` + kid + `"` + std + `}`),
			want: []error{sign.ErrJWSHeader}},
		{name: "header is an array", jws: good(`["ES256"]`), want: []error{sign.ErrJWSMalformed}},
		{name: "header with trailing data", jws: good(hdr("ES256", kid, std) + `{}`), want: []error{sign.ErrJWSMalformed}},
		{name: "non-detached payload", jws: func() []byte {
			h := b64([]byte(hdr("ES256", kid, std)))
			return []byte(h + "." + b64(jwsPayload) + "." + b64(es(append([]byte(h+"."), jwsPayload...))))
		}(), want: []error{sign.ErrJWSMalformed, failure.ErrVerification}},
		{name: "two parts", jws: []byte(b64([]byte(hdr("ES256", kid, std))) + "."), want: []error{sign.ErrJWSMalformed}},
		{name: "JSON serialization", jws: []byte(`{"protected":"e30","signature":"AA"}`), want: []error{sign.ErrJWSMalformed}},
		{name: "padded base64", jws: []byte(base64.URLEncoding.EncodeToString([]byte(hdr("ES256", kid, std)+" ")) + "..AA"),
			want: []error{sign.ErrJWSMalformed}},
		{name: "standard base64 signature", jws: func() []byte {
			h := b64([]byte(hdr("ES256", kid, std)))
			return []byte(h + ".." + base64.StdEncoding.EncodeToString(es(append([]byte(h+"."), jwsPayload...))))
		}(), want: []error{sign.ErrJWSMalformed}},
		{name: "larger than the limit", jws: bytes.Repeat([]byte("A"), sign.MaxJWSSize+1), want: []error{sign.ErrJWSMalformed}},
		{name: "empty", jws: nil, want: []error{sign.ErrJWSMalformed}},
		{name: "JWS over other bytes", jws: good(hdr("ES256", kid, std)), payload: []byte("other bytes"),
			want: []error{sign.ErrJWSSignature, failure.ErrVerification}},
		{name: "payload with an extra byte", jws: good(hdr("ES256", kid, std)), payload: append(append([]byte(nil), jwsPayload...), ' '),
			want: []error{sign.ErrJWSSignature}},
		{name: "key expired", jws: good(hdr("ES256", kid, std)), roots: windowed(t, es256.Public(), testNow.Add(-48*time.Hour), testNow.Add(-time.Hour)),
			want: []error{trust.ErrKeyExpired, failure.ErrPolicy}, not: []error{failure.ErrVerification}},
		{name: "key not yet valid", jws: good(hdr("ES256", kid, std)), roots: windowed(t, es256.Public(), testNow.Add(time.Hour), time.Time{}),
			want: []error{trust.ErrNotYetValid, failure.ErrPolicy}, not: []error{failure.ErrVerification}},
		{name: "expired key and a bad signature is a verification failure", jws: good(hdr("ES256", kid, std)), payload: []byte("x"),
			roots: windowed(t, es256.Public(), testNow.Add(-48*time.Hour), testNow.Add(-time.Hour)),
			want:  []error{sign.ErrJWSSignature, failure.ErrVerification}, not: []error{failure.ErrPolicy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := jwsPayload
			if tt.payload != nil {
				payload = tt.payload
			}
			r := roots
			if tt.roots != nil {
				r = tt.roots
			}
			now := testNow
			if !tt.now.IsZero() {
				now = tt.now
			}
			_, err := sign.VerifyJWS(tt.jws, bytes.NewReader(payload), r, now)
			wantErrs(t, err, tt.want...)
			wantNot(t, err, tt.not...)
		})
	}
}

func TestJWSValidityBoundaries(t *testing.T) {
	s := loadSigner(t, "es256", "", "")
	compact, err := s.SignJWS(bytes.NewReader(jwsPayload))
	if err != nil {
		t.Fatal(err)
	}
	from, until := testNow.Add(-time.Hour), testNow.Add(time.Hour)
	roots := windowed(t, s.Public(), from, until)
	tests := []struct {
		at   time.Time
		want []error
	}{
		{at: from.Add(-time.Nanosecond), want: []error{trust.ErrNotYetValid, failure.ErrPolicy}},
		{at: from},
		{at: until.Add(-time.Nanosecond)},
		{at: until, want: []error{trust.ErrKeyExpired, failure.ErrPolicy}},
	}
	for _, tt := range tests {
		t.Run(tt.at.Format(time.RFC3339Nano), func(t *testing.T) {
			_, err := sign.VerifyJWS([]byte(compact), bytes.NewReader(jwsPayload), roots, tt.at)
			wantErrs(t, err, tt.want...)
		})
	}
}

func TestParseJWSHeader(t *testing.T) {
	s := loadSigner(t, "es384", "", "kid-1")
	compact, err := s.SignJWS(bytes.NewReader(jwsPayload))
	if err != nil {
		t.Fatal(err)
	}
	h, hdrB64, sig, err := sign.ParseJWSHeader([]byte(compact))
	if err != nil {
		t.Fatal(err)
	}
	if h.Alg != sign.ES384 || h.Kid != "kid-1" || h.B64 == nil || *h.B64 || len(h.Crit) != 1 || h.Crit[0] != "b64" {
		raw, _ := json.Marshal(h)
		t.Errorf("header %s", raw)
	}
	if !strings.HasPrefix(compact, hdrB64+"..") || len(sig) != 96 {
		t.Errorf("header %q, signature of %d bytes", hdrB64, len(sig))
	}
	// ES384 signatures are 96 raw bytes: R and S of 48 bytes each.
	r := new(big.Int).SetBytes(sig[:48])
	if r.Sign() == 0 {
		t.Error("R is zero")
	}
}
