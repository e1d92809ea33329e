// Package sign produces and checks the signatures of a mirror bundle: DSSE
// envelopes over mirror.json, RFC 7797 detached JWS over bundle.json, and
// cosign-compatible blob signatures (.sig).
package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// JWS algorithms the project signs and accepts.
const (
	ES256 = "ES256"
	ES384 = "ES384"
	ES512 = "ES512"
	RS256 = "RS256"
	RS384 = "RS384"
	EdDSA = "EdDSA"
)

// Algorithms lists every supported algorithm.
var Algorithms = []string{ES256, ES384, ES512, RS256, RS384, EdDSA}

// PasswordEnv is the environment variable read for encrypted keys.
const PasswordEnv = "STELLAOPS_KEY_PASSWORD"

// maxKeyFile bounds a private key file.
const maxKeyFile = 1 << 20

// Errors callers branch on.
var (
	ErrAlgMismatch = failure.New(failure.ErrVerification, "algorithm does not match the key")
	ErrBadKey      = failure.New(failure.ErrUsage, "unusable key")
)

// Signer signs with one private key under one key id and JWS algorithm.
type Signer struct {
	priv  crypto.Signer
	alg   string
	keyID string
}

// NewSigner wraps priv. alg may be empty to pick the key's default
// (ES256/ES384/ES512 by curve, RS256 for RSA, EdDSA for Ed25519); keyID may
// be empty for the derived id.
func NewSigner(priv crypto.Signer, alg, keyID string) (*Signer, error) {
	pub := priv.Public()
	if err := trust.CheckPublicKey(pub); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	def, err := DefaultAlg(pub)
	if err != nil {
		return nil, err
	}
	if alg == "" {
		alg = def
	}
	if err := AlgMatchesKey(alg, pub); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	k, err := trust.NewKey(pub, keyID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return &Signer{priv: priv, alg: alg, keyID: k.ID}, nil
}

// Alg returns the JWS algorithm.
func (s *Signer) Alg() string { return s.alg }

// KeyID returns the key id written into signatures.
func (s *Signer) KeyID() string { return s.keyID }

// Public returns the public key.
func (s *Signer) Public() crypto.PublicKey { return s.priv.Public() }

// TrustKey returns the signer's public key as a trust entry.
func (s *Signer) TrustKey() trust.Key {
	k, _ := trust.NewKey(s.Public(), s.keyID)
	return k
}

// DefaultAlg returns the JWS algorithm used for pub unless one is named.
func DefaultAlg(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ES256, nil
		case elliptic.P384():
			return ES384, nil
		case elliptic.P521():
			return ES512, nil
		}
	case *rsa.PublicKey:
		return RS256, nil
	case ed25519.PublicKey:
		return EdDSA, nil
	}
	return "", fmt.Errorf("%w: %s", ErrBadKey, trust.Describe(pub))
}

// AlgMatchesKey checks that alg is the algorithm of pub: the curve decides
// the ECDSA algorithm; RSA allows RS256 and RS384; Ed25519 only EdDSA.
func AlgMatchesKey(alg string, pub crypto.PublicKey) error {
	want, err := DefaultAlg(pub)
	if err != nil {
		return err
	}
	if alg == want || (want == RS256 && alg == RS384) {
		return nil
	}
	return fmt.Errorf("%w: %s with a %s key", ErrAlgMismatch, alg, trust.Describe(pub))
}

// hashFor returns the digest algorithm of a JWS alg (0 for EdDSA).
func hashFor(alg string) crypto.Hash {
	switch alg {
	case ES256, RS256:
		return crypto.SHA256
	case ES384, RS384:
		return crypto.SHA384
	case ES512:
		return crypto.SHA512
	}
	return 0
}

// LoadSigner reads a private key file: PEM PKCS#8, SEC 1 or PKCS#1 as
// openssl writes them, or cosign's encrypted format. password is called
// only for encrypted keys.
func LoadSigner(path, alg, keyID string, password func() ([]byte, error)) (*Signer, error) {
	priv, err := LoadPrivateKey(path, password)
	if err != nil {
		return nil, err
	}
	s, err := NewSigner(priv, alg, keyID)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return s, nil
}

// LoadPrivateKey reads and decodes a private key file.
func LoadPrivateKey(path string, password func() ([]byte, error)) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read key %s: %w", path, err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read key %s: %w", path, err))
	}
	if len(data) > maxKeyFile {
		return nil, failure.Usagef("read key %s: not a key file (larger than %d bytes)", path, maxKeyFile)
	}
	priv, err := ParsePrivateKey(data, password)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return priv, nil
}

// ParsePrivateKey decodes a PEM private key.
func ParsePrivateKey(data []byte, password func() ([]byte, error)) (crypto.Signer, error) {
	encrypted := strings.Contains(string(data), "ENCRYPTED SIGSTORE PRIVATE KEY") ||
		strings.Contains(string(data), "ENCRYPTED COSIGN PRIVATE KEY")
	pf := cryptoutils.SkipPassword
	if encrypted {
		if password == nil {
			return nil, fmt.Errorf("%w: the key is encrypted and no password source is available (set %s)", ErrBadKey, PasswordEnv)
		}
		pf = func(bool) ([]byte, error) { return password() }
	} else if strings.Contains(string(data), "ENCRYPTED PRIVATE KEY") || strings.Contains(string(data), "Proc-Type: 4,ENCRYPTED") {
		return nil, fmt.Errorf("%w: PKCS#8 or OpenSSL-encrypted keys are not supported; decrypt with 'openssl pkey' or use a cosign key", ErrBadKey)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(data, pf)
	if err != nil {
		if encrypted {
			return nil, fmt.Errorf("%w: decrypt: wrong password or damaged key (%v)", ErrBadKey, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	// ed25519 keys come back as a value in some paths; normalise.
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *ed25519.PrivateKey:
		return *k, nil
	case crypto.Signer:
		return k, nil
	}
	return nil, fmt.Errorf("%w: %T is not a signing key", ErrBadKey, priv)
}

// PasswordFromEnv returns a password source: the environment variable if
// set, else prompt (which may be nil when there is no terminal).
func PasswordFromEnv(getenv func(string) string, prompt func() ([]byte, error)) func() ([]byte, error) {
	return func() ([]byte, error) {
		if v, ok := lookup(getenv, PasswordEnv); ok {
			return []byte(v), nil
		}
		if prompt == nil {
			return nil, fmt.Errorf("%w: the key is encrypted: set %s or run on a terminal", ErrBadKey, PasswordEnv)
		}
		return prompt()
	}
}

func lookup(getenv func(string) string, name string) (string, bool) {
	if getenv == nil {
		return os.LookupEnv(name)
	}
	v := getenv(name)
	return v, v != ""
}

// Generate creates a new private key for alg.
func Generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ES384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ES512:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case RS256, RS384:
		return rsa.GenerateKey(rand.Reader, 3072)
	case EdDSA, "Ed25519", "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, failure.Usagef("unknown algorithm %q: use one of %s", alg, strings.Join(Algorithms, ", "))
}

// MarshalPrivateKeyPEM encodes priv as PKCS#8 PEM.
func MarshalPrivateKeyPEM(priv crypto.Signer) ([]byte, error) {
	return cryptoutils.MarshalPrivateKeyToPEM(priv)
}

// MarshalPublicKeyPEM encodes pub as a PUBLIC KEY PEM block.
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

var errShortSig = errors.New("signature has the wrong length")

// PrivatePEM encodes the signer's private key as PKCS#8 PEM.
func (s *Signer) PrivatePEM() ([]byte, error) { return MarshalPrivateKeyPEM(s.priv) }
