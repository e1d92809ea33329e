package sign

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// ErrBlobSignature: a .sig does not verify against any trusted key.
var ErrBlobSignature = failure.New(failure.ErrVerification, "blob signature does not verify")

// MaxBlobSigSize bounds a .sig file.
const MaxBlobSigSize = 16 << 10

// SignBlob returns the base64 signature over blob in the form
// `cosign verify-blob --key` accepts: ECDSA ASN.1 DER over SHA-256, RSA
// PKCS#1 v1.5 over SHA-256, Ed25519 over the bytes.
func (s *Signer) SignBlob(blob io.Reader) ([]byte, error) {
	if k, ok := s.priv.(ed25519.PrivateKey); ok {
		data, err := io.ReadAll(blob)
		if err != nil {
			return nil, err
		}
		return []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(k, data))), nil
	}
	hw := crypto.SHA256.New()
	if _, err := io.Copy(hw, blob); err != nil {
		return nil, err
	}
	sig, err := s.priv.Sign(signRand(s.priv), hw.Sum(nil), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign with key %s: %w", s.keyID, err)
	}
	return []byte(base64.StdEncoding.EncodeToString(sig)), nil
}

// VerifyBlob checks a base64 .sig over blob against the trusted keys valid
// at now (a .sig names no key, so each key is tried).
func VerifyBlob(sigFile []byte, blob io.ReadSeeker, roots *trust.Roots, now time.Time) (trust.Key, error) {
	if len(sigFile) > MaxBlobSigSize {
		return trust.Key{}, fmt.Errorf("%w: larger than %d bytes", ErrBlobSignature, MaxBlobSigSize)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(string(bytes.TrimSpace(sigFile)))
	if err != nil {
		return trust.Key{}, fmt.Errorf("%w: not base64: %v", ErrBlobSignature, err)
	}
	var digest []byte
	var expired error
	for _, k := range roots.Keys {
		if _, err := blob.Seek(0, io.SeekStart); err != nil {
			return trust.Key{}, err
		}
		var verr error
		if _, ok := k.Public.(ed25519.PublicKey); ok {
			verr = verifyMessage(EdDSA, k.Public, blob, sig, false)
		} else {
			if digest == nil {
				hw := crypto.SHA256.New()
				if _, err := io.Copy(hw, blob); err != nil {
					return trust.Key{}, err
				}
				digest = hw.Sum(nil)
			}
			verr = verifyDigest(k.Public, crypto.SHA256, digest, sig, false)
		}
		if verr != nil {
			continue
		}
		if err := k.ValidAt(now); err != nil {
			expired = err
			continue
		}
		return k, nil
	}
	if expired != nil {
		return trust.Key{}, expired
	}
	return trust.Key{}, fmt.Errorf("%w: no trusted key verifies it", ErrBlobSignature)
}
