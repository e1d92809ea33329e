package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// MaxJWSSize bounds a compact JWS file.
const MaxJWSSize = 64 << 10

// MaxEdDSAPayload bounds what is buffered to verify an EdDSA JWS (Ed25519
// signs the whole message, so the payload cannot be streamed).
const MaxEdDSAPayload = 512 << 20

// JWS errors callers branch on.
var (
	ErrJWSMalformed = failure.New(failure.ErrVerification, "malformed JWS")
	ErrJWSHeader    = failure.New(failure.ErrVerification, "JWS header refused")
	ErrJWSSignature = failure.New(failure.ErrVerification, "JWS signature does not verify")
	ErrUntrustedKey = failure.New(failure.ErrVerification, "signed by a key that is not trusted")
)

// JWSHeader is the protected header of a detached, unencoded JWS.
type JWSHeader struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	B64  *bool    `json:"b64,omitempty"`
	Crit []string `json:"crit,omitempty"`
	Typ  string   `json:"typ,omitempty"`
	Cty  string   `json:"cty,omitempty"`
}

// jwsHeaderJSON writes the header with keys in the contract's order.
func jwsHeaderJSON(alg, kid string) []byte {
	a, _ := json.Marshal(alg)
	k, _ := json.Marshal(kid)
	return []byte(`{"alg":` + string(a) + `,"kid":` + string(k) + `,"b64":false,"crit":["b64"]}`)
}

// SignJWS returns the RFC 7797 compact detached JWS over payload:
// BASE64URL(header) + ".." + BASE64URL(signature).
func (s *Signer) SignJWS(payload io.Reader) (string, error) {
	hdr := base64.RawURLEncoding.EncodeToString(jwsHeaderJSON(s.alg, s.keyID))
	sig, err := s.signMessage(s.alg, io.MultiReader(strings.NewReader(hdr+"."), payload), true)
	if err != nil {
		return "", err
	}
	return hdr + ".." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// signMessage signs msg with the digest of alg; ECDSA signatures are raw
// R||S when raw is true (JWS) and ASN.1 DER otherwise (DSSE, cosign).
func (s *Signer) signMessage(alg string, msg io.Reader, raw bool) ([]byte, error) {
	if k, ok := s.priv.(ed25519.PrivateKey); ok {
		data, err := io.ReadAll(msg)
		if err != nil {
			return nil, err
		}
		return ed25519.Sign(k, data), nil
	}
	h := hashFor(alg)
	hw := h.New()
	if _, err := io.Copy(hw, msg); err != nil {
		return nil, err
	}
	digest := hw.Sum(nil)
	sig, err := s.priv.Sign(signRand(s.priv), digest, h)
	if err != nil {
		return nil, fmt.Errorf("sign with key %s: %w", s.keyID, err)
	}
	if pub, ok := s.priv.Public().(*ecdsa.PublicKey); ok && raw {
		return derToRaw(sig, curveBytes(pub))
	}
	return sig, nil
}

// signRand returns nil for ECDSA keys, which makes their signatures
// deterministic (RFC 6979): the same bundle signed twice is byte-identical.
// RSA PKCS#1 v1.5 and Ed25519 are deterministic already.
func signRand(priv crypto.Signer) io.Reader {
	if _, ok := priv.(*ecdsa.PrivateKey); ok {
		return nil
	}
	return rand.Reader
}

func curveBytes(pub *ecdsa.PublicKey) int { return (pub.Curve.Params().BitSize + 7) / 8 }

func derToRaw(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("decode ECDSA signature: %v", err)
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}

// JWSResult says which key verified a JWS.
type JWSResult struct {
	Alg string
	Key trust.Key
}

// ParseJWSHeader decodes and checks the protected header of a compact
// detached JWS without verifying it: the algorithm must be supported (never
// none or HS*), b64 must be false and critical, no key may be embedded.
func ParseJWSHeader(compact []byte) (JWSHeader, string, []byte, error) {
	var h JWSHeader
	if len(compact) > MaxJWSSize {
		return h, "", nil, fmt.Errorf("%w: larger than %d bytes", ErrJWSMalformed, MaxJWSSize)
	}
	text := strings.TrimRight(string(compact), "\r\n")
	parts := strings.Split(text, ".")
	if len(parts) != 3 {
		return h, "", nil, fmt.Errorf("%w: want 3 dot-separated parts, got %d", ErrJWSMalformed, len(parts))
	}
	if parts[1] != "" {
		return h, "", nil, fmt.Errorf("%w: payload is not detached", ErrJWSMalformed)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return h, "", nil, fmt.Errorf("%w: header is not base64url: %v", ErrJWSMalformed, err)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return h, "", nil, fmt.Errorf("%w: signature is not base64url: %v", ErrJWSMalformed, err)
	}
	var generic map[string]json.RawMessage
	if err := strictjson.Check(raw); err != nil {
		return h, "", nil, fmt.Errorf("%w: header: %v", ErrJWSMalformed, err)
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		return h, "", nil, fmt.Errorf("%w: header is not a JSON object", ErrJWSMalformed)
	}
	for name := range generic {
		switch name {
		case "alg", "kid", "b64", "crit", "typ", "cty":
		case "jwk", "jku", "x5c", "x5u", "x5t", "x5t#S256":
			return h, "", nil, fmt.Errorf("%w: header carries a key (%q); keys come only from the trust roots", ErrJWSHeader, name)
		default:
			return h, "", nil, fmt.Errorf("%w: unexpected header parameter %q", ErrJWSHeader, name)
		}
	}
	if err := strictjson.Unmarshal(raw, &h); err != nil {
		return h, "", nil, fmt.Errorf("%w: header: %v", ErrJWSMalformed, err)
	}
	switch {
	case h.Alg == "" || strings.EqualFold(h.Alg, "none"):
		return h, "", nil, fmt.Errorf("%w: alg %q is never accepted", ErrJWSHeader, h.Alg)
	case strings.HasPrefix(strings.ToUpper(h.Alg), "HS"):
		return h, "", nil, fmt.Errorf("%w: HMAC alg %q is never accepted", ErrJWSHeader, h.Alg)
	case !slices.Contains(Algorithms, h.Alg):
		return h, "", nil, fmt.Errorf("%w: unsupported alg %q", ErrJWSHeader, h.Alg)
	case h.B64 == nil:
		return h, "", nil, fmt.Errorf("%w: missing \"b64\": false (RFC 7797 unencoded payload)", ErrJWSHeader)
	case *h.B64:
		return h, "", nil, fmt.Errorf("%w: \"b64\" must be false", ErrJWSHeader)
	case len(h.Crit) == 0:
		return h, "", nil, fmt.Errorf("%w: \"crit\" must list \"b64\"", ErrJWSHeader)
	case len(h.Crit) != 1 || h.Crit[0] != "b64":
		return h, "", nil, fmt.Errorf("%w: unknown critical parameters %q", ErrJWSHeader, h.Crit)
	case h.Kid == "":
		return h, "", nil, fmt.Errorf("%w: missing kid", ErrJWSHeader)
	}
	return h, parts[0], sig, nil
}

// VerifyJWS checks a compact detached JWS over payload against the keys of
// roots that are trusted at now. The payload is streamed except for EdDSA.
func VerifyJWS(compact []byte, payload io.Reader, roots *trust.Roots, now time.Time) (JWSResult, error) {
	h, hdrB64, sig, err := ParseJWSHeader(compact)
	if err != nil {
		return JWSResult{}, err
	}
	keys := roots.Lookup(h.Kid)
	if len(keys) == 0 {
		return JWSResult{}, fmt.Errorf("%w: kid %q matches no trusted key", ErrUntrustedKey, h.Kid)
	}
	key := keys[0]
	if err := AlgMatchesKey(h.Alg, key.Public); err != nil {
		return JWSResult{}, fmt.Errorf("%w: kid %q", err, h.Kid)
	}
	if err := verifyMessage(h.Alg, key.Public, io.MultiReader(strings.NewReader(hdrB64+"."), payload), sig, true); err != nil {
		return JWSResult{}, fmt.Errorf("%w: kid %q: %v", ErrJWSSignature, h.Kid, err)
	}
	if err := key.ValidAt(now); err != nil {
		return JWSResult{Alg: h.Alg, Key: key}, err
	}
	return JWSResult{Alg: h.Alg, Key: key}, nil
}

// verifyMessage checks sig over msg with pub under alg's digest.
func verifyMessage(alg string, pub crypto.PublicKey, msg io.Reader, sig []byte, raw bool) error {
	if k, ok := pub.(ed25519.PublicKey); ok {
		data, err := io.ReadAll(io.LimitReader(msg, MaxEdDSAPayload+1))
		if err != nil {
			return err
		}
		if len(data) > MaxEdDSAPayload {
			return fmt.Errorf("EdDSA message larger than %d bytes", MaxEdDSAPayload)
		}
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k, data, sig) {
			return errBadSignature
		}
		return nil
	}
	h := hashFor(alg)
	if h == 0 {
		return fmt.Errorf("unsupported alg %q", alg)
	}
	hw := h.New()
	if _, err := io.Copy(hw, msg); err != nil {
		return err
	}
	return verifyDigest(pub, h, hw.Sum(nil), sig, raw)
}

func verifyDigest(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte, raw bool) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if raw {
			size := curveBytes(k)
			if len(sig) != 2*size {
				return errShortSig
			}
			r := new(big.Int).SetBytes(sig[:size])
			s := new(big.Int).SetBytes(sig[size:])
			if !ecdsa.Verify(k, digest, r, s) {
				return errBadSignature
			}
			return nil
		}
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errBadSignature
		}
		return nil
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, h, digest, sig); err != nil {
			return errBadSignature
		}
		return nil
	}
	return fmt.Errorf("unsupported key %s", trust.Describe(pub))
}

var errBadSignature = fmt.Errorf("signature mismatch")

// ReadAllLimited reads at most max bytes from r, failing beyond.
func ReadAllLimited(r io.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return buf.Bytes(), nil
}
