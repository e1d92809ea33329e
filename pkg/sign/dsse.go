package sign

import (
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
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrDSSEMalformed, MaxEnvelopeSize)
	}
	var env dsse.Envelope
	if err := strictjson.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDSSEMalformed, err)
	}
	if len(env.Signatures) == 0 {
		return nil, fmt.Errorf("%w: no signatures", ErrDSSEMalformed)
	}
	return &env, nil
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
	env, err := ParseEnvelope(data)
	if err != nil {
		return res, err
	}
	if env.PayloadType != payloadType {
		return res, fmt.Errorf("%w: %q, want %q", ErrDSSEPayloadType, env.PayloadType, payloadType)
	}
	payload, err := base64.StdEncoding.Strict().DecodeString(env.Payload)
	if err != nil {
		return res, fmt.Errorf("%w: payload is not standard base64: %v", ErrDSSEMalformed, err)
	}
	if threshold < 1 {
		threshold = 1
	}
	pae := dsse.PAE(env.PayloadType, payload)
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
