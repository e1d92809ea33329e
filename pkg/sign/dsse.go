package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// MaxEnvelopeSize bounds a DSSE envelope file.
const MaxEnvelopeSize = 64 << 20

// DSSE errors callers branch on.
var (
	ErrDSSEMalformed   = failure.New(failure.ErrVerification, "malformed DSSE envelope")
	ErrDSSEPayloadType = failure.New(failure.ErrVerification, "unexpected DSSE payloadType")
	ErrDSSESignature   = failure.New(failure.ErrVerification, "DSSE signatures do not meet the threshold")
)

// dsseSigner adapts a Signer to the DSSE library's signer interface.
type dsseSigner struct{ s *Signer }

func (d dsseSigner) KeyID() (string, error) { return d.s.keyID, nil }

func (d dsseSigner) Sign(_ context.Context, data []byte) ([]byte, error) {
	return d.s.signPAE(data)
}

// signPAE signs DSSE's pre-authentication encoding: ECDSA as ASN.1 DER with
// the curve's digest, RSA PKCS#1 v1.5 with the algorithm's digest, Ed25519
// over the message.
func (s *Signer) signPAE(data []byte) ([]byte, error) {
	if k, ok := s.priv.(ed25519.PrivateKey); ok {
		return ed25519.Sign(k, data), nil
	}
	h := hashFor(s.alg)
	hw := h.New()
	hw.Write(data)
	return s.priv.Sign(signRand(s.priv), hw.Sum(nil), h)
}

// SignDSSE returns the JSON envelope over payload signed by every signer,
// in the order given.
func SignDSSE(ctx context.Context, payloadType string, payload []byte, signers ...*Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, errors.New("sign DSSE: no signer")
	}
	adapters := make([]dsse.Signer, len(signers))
	for i, s := range signers {
		adapters[i] = dsseSigner{s}
	}
	es, err := dsse.NewEnvelopeSigner(adapters...)
	if err != nil {
		return nil, err
	}
	env, err := es.SignPayload(ctx, payloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("sign DSSE: %w", err)
	}
	return MarshalEnvelope(env)
}

// MarshalEnvelope writes an envelope with its fields in a fixed order.
func MarshalEnvelope(env *dsse.Envelope) ([]byte, error) {
	out, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ParseEnvelope decodes an envelope strictly.
func ParseEnvelope(data []byte) (*dsse.Envelope, error) {
	v, err := parseEnvelopeView(data)
	if err != nil {
		return nil, err
	}
	env := &dsse.Envelope{PayloadType: v.PayloadType, Signatures: v.Signatures}
	if len(v.Payload) > 0 {
		if err := json.Unmarshal(v.Payload, &env.Payload); err != nil {
			return nil, fmt.Errorf("%w: payload: %v", ErrDSSEMalformed, err)
		}
	}
	return env, nil
}

// envelopeView is an envelope whose payload stays the JSON string as it
// appears in the envelope's bytes: a payload of several MiB is then held
// once, decoded, instead of also as a Go string.
type envelopeView struct {
	PayloadType string           `json:"payloadType"`
	Payload     rawString        `json:"payload"`
	Signatures  []dsse.Signature `json:"signatures"`
}

// rawString keeps a JSON string's bytes, quotes included, without copying;
// null leaves it empty, as it leaves a Go string.
type rawString []byte

func (r *rawString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = nil
		return nil
	}
	if len(b) < 2 || b[0] != '"' {
		return errors.New("payload is not a string")
	}
	*r = b
	return nil
}

func parseEnvelopeView(data []byte) (*envelopeView, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrDSSEMalformed, MaxEnvelopeSize)
	}
	var env envelopeView
	if err := strictjson.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDSSEMalformed, err)
	}
	if len(env.Signatures) == 0 {
		return nil, fmt.Errorf("%w: no signatures", ErrDSSEMalformed)
	}
	return &env, nil
}

// decodePAE decodes the base64 payload, given as its JSON string, straight
// into the pre-authentication encoding that signatures cover, and returns
// the encoding and the payload inside it.
func decodePAE(payloadType string, str rawString) (pae, payload []byte, err error) {
	var b64 []byte // an absent payload is empty
	if len(str) >= 2 {
		b64 = str[1 : len(str)-1]
	}
	if bytes.IndexByte(b64, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(str, &s); err != nil {
			return nil, nil, fmt.Errorf("%w: payload: %v", ErrDSSEMalformed, err)
		}
		b64 = []byte(s)
	}
	n := base64.StdEncoding.DecodedLen(len(b64))
	for i := len(b64) - 1; i >= 0 && i >= len(b64)-2 && b64[i] == '='; i-- {
		n--
	}
	header := fmt.Sprintf("DSSEv1 %d %s %d ", len(payloadType), payloadType, max(n, 0))
	// Decode may write up to DecodedLen bytes before it finds bad input.
	pae = make([]byte, len(header)+base64.StdEncoding.DecodedLen(len(b64)))
	copy(pae, header)
	m, err := base64.StdEncoding.Strict().Decode(pae[len(header):], b64)
	if err == nil && m != n {
		err = fmt.Errorf("decoded %d bytes, expected %d", m, n)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: payload is not standard base64: %v", ErrDSSEMalformed, err)
	}
	pae = pae[:len(header)+n]
	return pae, pae[len(header):], nil
}

// EnvelopePayload returns the payload an envelope carries, unverified.
func EnvelopePayload(data []byte) ([]byte, error) {
	env, err := parseEnvelopeView(data)
	if err != nil {
		return nil, err
	}
	_, payload, err := decodePAE(env.PayloadType, env.Payload)
	return payload, err
}

// DSSEResult describes a verified envelope.
type DSSEResult struct {
	Payload []byte
	// Accepted are the distinct trusted keys whose signatures verified.
	Accepted []trust.Key
	// Ignored explains signatures that did not count (unknown key, bad signature,
	// key outside its validity window).
	Ignored []string
}

// KeyIDs lists the accepted key ids.
func (r DSSEResult) KeyIDs() []string {
	ids := make([]string, len(r.Accepted))
	for i, k := range r.Accepted {
		ids[i] = k.ID
	}
	return ids
}

// VerifyDSSE checks an envelope's payloadType and counts the signatures of
// distinct trusted keys valid at now; threshold of them must verify. A key
// counts once however many signatures or key ids name it.
func VerifyDSSE(data []byte, payloadType string, roots *trust.Roots, now time.Time, threshold int) (DSSEResult, error) {
	var res DSSEResult
	env, err := parseEnvelopeView(data)
	if err != nil {
		return res, err
	}
	if env.PayloadType != payloadType {
		return res, fmt.Errorf("%w: %q, want %q", ErrDSSEPayloadType, env.PayloadType, payloadType)
	}
	pae, payload, err := decodePAE(env.PayloadType, env.Payload)
	if err != nil {
		return res, err
	}
	if threshold < 1 {
		threshold = 1
	}
	seen := map[string]bool{}
	// outside holds the distinct keys whose signatures verified but that are
	// not trusted at now; like accepted keys, each counts once.
	outside := map[string]bool{}
	var policyErr error
	for i, s := range env.Signatures {
		sig, err := base64.StdEncoding.Strict().DecodeString(s.Sig)
		if err != nil {
			return res, fmt.Errorf("%w: signature %d is not standard base64", ErrDSSEMalformed, i+1)
		}
		if s.KeyID == "" {
			res.Ignored = append(res.Ignored, fmt.Sprintf("signature %d has no keyid", i+1))
			continue
		}
		keys := roots.Lookup(s.KeyID)
		if len(keys) == 0 {
			res.Ignored = append(res.Ignored, fmt.Sprintf("signature %d: keyid %s matches no trusted key", i+1, s.KeyID))
			continue
		}
		k := keys[0]
		if err := verifyPAE(k.Public, pae, sig); err != nil {
			res.Ignored = append(res.Ignored, fmt.Sprintf("signature %d: keyid %s: signature does not verify", i+1, s.KeyID))
			continue
		}
		if err := k.ValidAt(now); err != nil {
			res.Ignored = append(res.Ignored, fmt.Sprintf("signature %d: %v", i+1, err))
			// Only a validity window is policy; a revoked key is simply
			// not trusted, whatever order the signatures come in.
			if errors.Is(err, failure.ErrPolicy) && !errors.Is(err, failure.ErrVerification) {
				if policyErr == nil {
					policyErr = err
				}
				outside[k.DerivedID] = true
			}
			continue
		}
		if seen[k.DerivedID] {
			res.Ignored = append(res.Ignored, fmt.Sprintf("signature %d: key %s already counted", i+1, k.ID))
			continue
		}
		seen[k.DerivedID] = true
		res.Accepted = append(res.Accepted, k)
	}
	if len(res.Accepted) >= threshold {
		res.Payload = payload
		return res, nil
	}
	if policyErr != nil && len(res.Accepted)+len(outside) >= threshold {
		return res, policyErr
	}
	return res, fmt.Errorf("%w: %d of %d required (%s)", ErrDSSESignature, len(res.Accepted), threshold,
		strings.Join(res.Ignored, "; "))
}

func verifyPAE(pub crypto.PublicKey, pae, sig []byte) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if !ed25519.Verify(k, pae, sig) {
			return errBadSignature
		}
		return nil
	case *ecdsa.PublicKey:
		alg, _ := DefaultAlg(k)
		h := hashFor(alg)
		hw := h.New()
		hw.Write(pae)
		return verifyDigest(k, h, hw.Sum(nil), sig, false)
	}
	// RSA: accept the digests of RS256 and RS384.
	var last error
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		hw := h.New()
		hw.Write(pae)
		if last = verifyDigest(pub, h, hw.Sum(nil), sig, false); last == nil {
			return nil
		}
	}
	return last
}
