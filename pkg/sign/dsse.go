package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	b64, err := payloadBase64(str)
	if err != nil {
		return nil, nil, err
	}
	n := decodedLen(b64)
	header := paeHeader(payloadType, n)
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

// payloadBase64 returns the base64 text of a payload given as its JSON
// string: the bytes between the quotes, unless the string has escapes.
func payloadBase64(str rawString) ([]byte, error) {
	var b64 []byte // an absent payload is empty
	if len(str) >= 2 {
		b64 = str[1 : len(str)-1]
	}
	if bytes.IndexByte(b64, '\\') >= 0 {
		var s string
		if err := json.Unmarshal(str, &s); err != nil {
			return nil, fmt.Errorf("%w: payload: %v", ErrDSSEMalformed, err)
		}
		b64 = []byte(s)
	}
	return b64, nil
}

// decodedLen is the length b64 decodes to, if it is well formed.
func decodedLen(b64 []byte) int {
	n := base64.StdEncoding.DecodedLen(len(b64))
	for i := len(b64) - 1; i >= 0 && i >= len(b64)-2 && b64[i] == '='; i-- {
		n--
	}
	return max(n, 0)
}

// paeHeader is what precedes a payload of n bytes in its
// pre-authentication encoding.
func paeHeader(payloadType string, n int) string {
	return fmt.Sprintf("DSSEv1 %d %s %d ", len(payloadType), payloadType, n)
}

// decodeChunkChars is how much base64 decodeChunks decodes at a time.
const decodeChunkChars = 4 << 10

// decodeChunks decodes b64 as base64.StdEncoding.Strict().Decode does,
// handing the bytes to fn a few kilobytes at a time instead of into one
// buffer (see base64Stream), and returns how many there were.
func decodeChunks(b64 []byte, fn func([]byte)) (int, error) {
	d := newBase64Stream(fn)
	d.write(b64)
	err := d.close()
	return d.total, err
}

// paeSource is the pre-authentication encoding of an envelope's payload,
// for checking signatures without decoding a payload of several MiB into
// one buffer: a signature over a digest (ECDSA, RSA) is checked against a
// hash computed from the base64 a chunk at a time, and only Ed25519, which
// signs the message itself, needs it whole.
type paeSource struct {
	header string
	b64    []byte
	n      int
	// pae is the encoding decoded whole: from the start when the payload
	// had escapes, else once message needs it.
	pae     []byte
	digests map[crypto.Hash][]byte
	// sum is the SHA-256 of the payload.
	sum [32]byte
	// streamed: the payload was hashed as it was read (VerifyDSSEStream)
	// and only the hashes in digests are known.
	streamed bool
}

// newPAESource checks that the payload is well-formed base64 and hashes it,
// as one pass over its text, together with the SHA-256 of the encoding.
func newPAESource(payloadType string, str rawString) (*paeSource, error) {
	b64, err := payloadBase64(str)
	if err != nil {
		return nil, err
	}
	if len(str) >= 2 && len(b64) != len(str)-2 {
		// Escaped: decoded whole, as before.
		pae, payload, err := decodePAE(payloadType, str)
		if err != nil {
			return nil, err
		}
		p := &paeSource{header: string(pae[:len(pae)-len(payload)]), n: len(payload), pae: pae,
			digests: map[crypto.Hash][]byte{}, sum: sha256.Sum256(payload)}
		return p, nil
	}
	n := decodedLen(b64)
	p := &paeSource{header: paeHeader(payloadType, n), b64: b64, n: n, digests: map[crypto.Hash][]byte{}}
	payloadHash, paeHash := sha256.New(), sha256.New()
	io.WriteString(paeHash, p.header)
	m, err := decodeChunks(b64, func(b []byte) {
		payloadHash.Write(b)
		paeHash.Write(b)
	})
	if err == nil && m != n {
		err = fmt.Errorf("decoded %d bytes, expected %d", m, n)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not standard base64: %v", ErrDSSEMalformed, err)
	}
	payloadHash.Sum(p.sum[:0])
	p.digests[crypto.SHA256] = paeHash.Sum(nil)
	return p, nil
}

// digest returns the hash h of the encoding.
func (p *paeSource) digest(h crypto.Hash) []byte {
	if d, ok := p.digests[h]; ok {
		return d
	}
	if p.streamed {
		// Only the hashes computed while streaming are known: fail closed.
		return nil
	}
	w := h.New()
	if p.pae != nil {
		w.Write(p.pae)
	} else {
		io.WriteString(w, p.header)
		// The text decoded once already, in newPAESource.
		_, _ = decodeChunks(p.b64, func(b []byte) { w.Write(b) })
	}
	d := w.Sum(nil)
	p.digests[h] = d
	return d
}

// message returns the encoding whole (nil, failing closed, for a streamed
// payload, which VerifyDSSEStream does not stream for Ed25519 keys).
func (p *paeSource) message() []byte {
	if p.pae == nil && p.streamed {
		return nil
	}
	if p.pae == nil {
		p.pae = make([]byte, 0, len(p.header)+p.n)
		p.pae = append(p.pae, p.header...)
		_, _ = decodeChunks(p.b64, func(b []byte) { p.pae = append(p.pae, b...) })
	}
	return p.pae
}

// payload returns the decoded payload.
func (p *paeSource) payload() []byte {
	if p.pae != nil {
		return p.pae[len(p.header):]
	}
	out := make([]byte, 0, p.n)
	_, _ = decodeChunks(p.b64, func(b []byte) { out = append(out, b...) })
	return out
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
	// Payload is the verified payload; VerifyDSSEDigest leaves it nil.
	Payload []byte
	// PayloadSize and PayloadSHA256 describe the payload.
	PayloadSize   int64
	PayloadSHA256 [32]byte
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
	return verifyDSSE(data, payloadType, roots, now, threshold, true)
}

// VerifyDSSEDigest is VerifyDSSE for a caller that reads the payload from
// elsewhere (the file it should equal, hashed as it is read): the result
// gives the payload's size and SHA-256 but not its bytes, and a payload of
// several MiB is never held decoded, unless an Ed25519 signature, which
// covers the message itself, needs it.
func VerifyDSSEDigest(data []byte, payloadType string, roots *trust.Roots, now time.Time, threshold int) (DSSEResult, error) {
	return verifyDSSE(data, payloadType, roots, now, threshold, false)
}

func verifyDSSE(data []byte, payloadType string, roots *trust.Roots, now time.Time, threshold int, keepPayload bool) (DSSEResult, error) {
	var res DSSEResult
	env, err := parseEnvelopeView(data)
	if err != nil {
		return res, err
	}
	if env.PayloadType != payloadType {
		return res, fmt.Errorf("%w: %q, want %q", ErrDSSEPayloadType, env.PayloadType, payloadType)
	}
	pae, err := newPAESource(env.PayloadType, env.Payload)
	if err != nil {
		return res, err
	}
	return checkSignatures(env, pae, roots, now, threshold, keepPayload)
}

// checkSignatures counts the signatures of env over pae as VerifyDSSE
// describes.
func checkSignatures(env *envelopeView, pae *paeSource, roots *trust.Roots, now time.Time, threshold int, keepPayload bool) (DSSEResult, error) {
	var res DSSEResult
	res.PayloadSize, res.PayloadSHA256 = int64(pae.n), pae.sum
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
		if keepPayload {
			res.Payload = pae.payload()
		}
		return res, nil
	}
	if policyErr != nil && len(res.Accepted)+len(outside) >= threshold {
		return res, policyErr
	}
	return res, fmt.Errorf("%w: %d of %d required (%s)", ErrDSSESignature, len(res.Accepted), threshold,
		strings.Join(res.Ignored, "; "))
}

func verifyPAE(pub crypto.PublicKey, pae *paeSource, sig []byte) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if !ed25519.Verify(k, pae.message(), sig) {
			return errBadSignature
		}
		return nil
	case *ecdsa.PublicKey:
		alg, _ := DefaultAlg(k)
		h := hashFor(alg)
		return verifyDigest(k, h, pae.digest(h), sig, false)
	}
	// RSA: accept the digests of RS256 and RS384.
	var last error
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		if last = verifyDigest(pub, h, pae.digest(h), sig, false); last == nil {
			return nil
		}
	}
	return last
}
