// Package trust loads trust roots: PEM files of public keys and
// certificates, optionally bounded in time by PEM headers, and answers which
// keys are trusted at a given moment.
package trust

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// PEM headers understood on trust-root blocks.
const (
	HeaderKeyID     = "Key-Id"
	HeaderNotBefore = "Not-Before"
	HeaderNotAfter  = "Not-After"
	HeaderSource    = "Source"
	HeaderRevoked   = "Revoked"
)

// MinRSABits is the smallest RSA modulus accepted anywhere.
const MinRSABits = 2048

// MaxFileSize bounds a trust-roots file.
const MaxFileSize = 4 << 20

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// Errors callers branch on.
var (
	ErrWeakKey        = failure.New(failure.ErrVerification, "key too weak")
	ErrUnsupportedKey = failure.New(failure.ErrVerification, "unsupported key type")
	ErrNotYetValid    = failure.New(failure.ErrPolicy, "key not yet valid")
	ErrKeyExpired     = failure.New(failure.ErrPolicy, "key no longer valid")
	ErrRevoked        = failure.New(failure.ErrVerification, "key revoked")
	ErrNoTrustedKey   = failure.New(failure.ErrVerification, "no trusted key")
	ErrBadTrustRoots  = errors.New("invalid trust roots")
	errNoBlocks       = errors.New("no PUBLIC KEY or CERTIFICATE block found")
)

// Key is one trusted public key.
type Key struct {
	// ID is the key id: the Key-Id header, else the derived id.
	ID string
	// DerivedID is the hex SHA-256 of the DER SubjectPublicKeyInfo.
	DerivedID string
	Public    crypto.PublicKey
	// NotBefore and NotAfter bound when the key is trusted; zero is unbounded.
	NotBefore time.Time
	NotAfter  time.Time
	// Source says where the key came from (a file, a rotation statement).
	Source string
	// Revoked, when set, is when a revocation statement withdrew the key. A
	// revoked key is never trusted; its entry stays so that no replayed
	// statement can add it back.
	Revoked     time.Time
	Certificate *x509.Certificate
}

// Matches reports whether kid names this key (the header id or the derived id).
func (k Key) Matches(kid string) bool {
	return kid != "" && (kid == k.ID || kid == k.DerivedID)
}

// ValidAt returns nil when the key is trusted at t, else ErrRevoked,
// ErrNotYetValid or ErrKeyExpired.
func (k Key) ValidAt(t time.Time) error {
	if !k.Revoked.IsZero() {
		return fmt.Errorf("%w: key %s was revoked at %s", ErrRevoked, k.ID, k.Revoked.UTC().Format(time.RFC3339))
	}
	if !k.NotBefore.IsZero() && t.Before(k.NotBefore) {
		return fmt.Errorf("%w: key %s is trusted from %s", ErrNotYetValid, k.ID, k.NotBefore.UTC().Format(time.RFC3339))
	}
	if !k.NotAfter.IsZero() && !t.Before(k.NotAfter) {
		return fmt.Errorf("%w: key %s was trusted until %s", ErrKeyExpired, k.ID, k.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Algorithm describes the key type ("ecdsa-p256", "rsa-3072", "ed25519").
func (k Key) Algorithm() string { return Describe(k.Public) }

// Roots is a set of trusted keys.
type Roots struct {
	Keys []Key
}

// KeyID returns the hex SHA-256 of the DER SubjectPublicKeyInfo of pub.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// CheckPublicKey refuses key types and sizes the project does not accept.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("%w: RSA key of %d bits (at least %d required)", ErrWeakKey, k.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
	return nil
}

// Describe names a public key's type for messages.
func Describe(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ecdsa-" + strings.ToLower(strings.ReplaceAll(k.Curve.Params().Name, "-", ""))
	case ed25519.PublicKey:
		return "ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// NewKey builds a Key for pub with the derived id, or id when not empty.
func NewKey(pub crypto.PublicKey, id string) (Key, error) {
	if err := CheckPublicKey(pub); err != nil {
		return Key{}, err
	}
	derived, err := KeyID(pub)
	if err != nil {
		return Key{}, err
	}
	if id == "" {
		id = derived
	}
	if !keyIDPattern.MatchString(id) {
		return Key{}, fmt.Errorf("%w: key id %q has characters outside [A-Za-z0-9._:@-]", ErrBadTrustRoots, id)
	}
	return Key{ID: id, DerivedID: derived, Public: pub}, nil
}

// LoadFile reads a trust-roots PEM file. Unreadable or malformed files are
// operator input errors (exit 4); weak keys are refused.
func LoadFile(path string) (*Roots, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read trust roots %s: %w", path, err))
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read trust roots %s: %w", path, err))
	}
	if buf.Len() > MaxFileSize {
		return nil, failure.Usagef("read trust roots %s: larger than %d bytes", path, MaxFileSize)
	}
	r, err := Parse(buf.Bytes(), path)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("trust roots %s: %w", path, err))
	}
	return r, nil
}

// Parse reads PEM blocks of type PUBLIC KEY or CERTIFICATE. Each block may
// carry Key-Id, Not-Before and Not-After headers (RFC 3339).
func Parse(data []byte, source string) (*Roots, error) {
	var roots Roots
	rest := data
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		k, err := parseBlock(block)
		if err != nil {
			return nil, fmt.Errorf("block %d (%s): %w", n, block.Type, err)
		}
		if k == nil {
			continue
		}
		k.Source = source
		if s := block.Headers[HeaderSource]; s != "" {
			k.Source = s
		}
		if err := roots.Add(*k); err != nil {
			return nil, fmt.Errorf("block %d: %w", n, err)
		}
	}
	if len(bytes.TrimSpace(rest)) > 0 && n == 0 {
		return nil, fmt.Errorf("%w: %v", ErrBadTrustRoots, errNoBlocks)
	}
	if len(roots.Keys) == 0 {
		return nil, fmt.Errorf("%w: %v", ErrBadTrustRoots, errNoBlocks)
	}
	return &roots, nil
}

func parseBlock(block *pem.Block) (*Key, error) {
	var pub crypto.PublicKey
	var cert *x509.Certificate
	switch block.Type {
	case "PUBLIC KEY":
		p, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTrustRoots, err)
		}
		pub = p
	case "RSA PUBLIC KEY":
		p, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTrustRoots, err)
		}
		pub = p
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTrustRoots, err)
		}
		cert, pub = c, c.PublicKey
	default:
		return nil, nil // other blocks (comments, private keys by mistake) are ignored
	}
	k, err := NewKey(pub, block.Headers[HeaderKeyID])
	if err != nil {
		return nil, err
	}
	k.Certificate = cert
	if cert != nil {
		k.NotBefore, k.NotAfter = cert.NotBefore.UTC(), cert.NotAfter.UTC()
	}
	for _, h := range []struct {
		name string
		dst  *time.Time
	}{{HeaderNotBefore, &k.NotBefore}, {HeaderNotAfter, &k.NotAfter}, {HeaderRevoked, &k.Revoked}} {
		v, ok := block.Headers[h.name]
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%w: header %s: %v", ErrBadTrustRoots, h.name, err)
		}
		*h.dst = t.UTC()
	}
	if !k.NotBefore.IsZero() && !k.NotAfter.IsZero() && !k.NotBefore.Before(k.NotAfter) {
		return nil, fmt.Errorf("%w: Not-Before %s is not before Not-After %s", ErrBadTrustRoots,
			k.NotBefore.Format(time.RFC3339), k.NotAfter.Format(time.RFC3339))
	}
	return &k, nil
}

// Add adds k, refusing a second key with the same id but another public key.
// The same public key added twice keeps the first entry.
func (r *Roots) Add(k Key) error {
	for _, have := range r.Keys {
		if have.DerivedID == k.DerivedID {
			return nil
		}
		if have.Matches(k.ID) || k.Matches(have.ID) {
			return fmt.Errorf("%w: key id %s names two different keys", ErrBadTrustRoots, k.ID)
		}
	}
	r.Keys = append(r.Keys, k)
	return nil
}

// Lookup returns the keys that kid names.
func (r *Roots) Lookup(kid string) []Key {
	var out []Key
	for _, k := range r.Keys {
		if k.Matches(kid) {
			out = append(out, k)
		}
	}
	return out
}

// Find returns the trusted entry for pub, if any.
func (r *Roots) Find(pub crypto.PublicKey) (Key, bool) {
	id, err := KeyID(pub)
	if err != nil {
		return Key{}, false
	}
	for _, k := range r.Keys {
		if k.DerivedID == id {
			return k, true
		}
	}
	return Key{}, false
}

// Remove drops the keys that kid names and reports how many it removed.
func (r *Roots) Remove(kid string) int {
	kept := r.Keys[:0]
	n := 0
	for _, k := range r.Keys {
		if k.Matches(kid) {
			n++
			continue
		}
		kept = append(kept, k)
	}
	r.Keys = kept
	return n
}

// Clone returns a deep-enough copy (keys are immutable values).
func (r *Roots) Clone() *Roots {
	return &Roots{Keys: append([]Key(nil), r.Keys...)}
}

// MarshalPEM writes the roots as PUBLIC KEY blocks with their headers,
// in a stable order. Times keep their fractional seconds (RFC 3339 allows
// them), so that what Parse read is written back unchanged.
func (r *Roots) MarshalPEM() ([]byte, error) {
	keys := append([]Key(nil), r.Keys...)
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].ID < keys[j].ID })
	var out bytes.Buffer
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return nil, err
		}
		h := map[string]string{HeaderKeyID: k.ID}
		if !k.NotBefore.IsZero() {
			h[HeaderNotBefore] = k.NotBefore.UTC().Format(time.RFC3339Nano)
		}
		if !k.NotAfter.IsZero() {
			h[HeaderNotAfter] = k.NotAfter.UTC().Format(time.RFC3339Nano)
		}
		if !k.Revoked.IsZero() {
			h[HeaderRevoked] = k.Revoked.UTC().Format(time.RFC3339Nano)
		}
		if k.Source != "" && !strings.ContainsAny(k.Source, "\r\n") {
			h[HeaderSource] = k.Source
		}
		if err := pem.Encode(&out, &pem.Block{Type: "PUBLIC KEY", Headers: h, Bytes: der}); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}
