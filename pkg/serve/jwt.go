package serve

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
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Scopes checked on bearer tokens.
const (
	ScopeConcelierRead  = "concelier.mirror.read"
	ScopeExcititorRead  = "excititor.mirror.read"
	ScopeConcelierAdmin = "concelier.mirror.admin"
)

// JWTClockSkew is the leeway on exp, nbf and iat.
const JWTClockSkew = 60 * time.Second

const (
	maxKeysFileBytes = 1 << 20
	maxTokenBytes    = 16 << 10
)

// asymmetricAlgs are the only token algorithms accepted: never none, never HS*.
var asymmetricAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// jwtKey is one token signing key with the algorithms it may verify.
type jwtKey struct {
	kid  string
	key  crypto.PublicKey
	algs []jose.SignatureAlgorithm
}

// jwtVerifier checks bearer tokens offline.
type jwtVerifier struct {
	path      string
	keys      []jwtKey
	issuer    string
	audiences []string
}

// tokenInfo is what a verified token says about its holder.
type tokenInfo struct {
	subject string
	scopes  map[string]bool
	expires time.Time
}

// loadJWTKeys reads a PEM file (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE
// blocks; a Key-Id header names the key) or a JWKS document.
func loadJWTKeys(path string) ([]jwtKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read authority keys %s: %w", path, err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeysFileBytes+1))
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read authority keys %s: %w", path, err))
	}
	if len(data) > maxKeysFileBytes {
		return nil, failure.Usagef("authority keys %s: larger than %d bytes", path, maxKeysFileBytes)
	}
	var keys []jwtKey
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		keys, err = parseJWKS(t)
	} else {
		keys, err = parsePEMKeys(data)
	}
	if err != nil {
		return nil, failure.Usagef("authority keys %s: %v", path, err)
	}
	if len(keys) == 0 {
		return nil, failure.Usagef("authority keys %s: no public key found", path)
	}
	return keys, nil
}

func parsePEMKeys(data []byte) ([]jwtKey, error) {
	var keys []jwtKey
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub crypto.PublicKey
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				pub = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %d is %q; want PUBLIC KEY or CERTIFICATE (never a private key)", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %v", n, err)
		}
		k, err := newJWTKey(block.Headers["Key-Id"], pub, "")
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %v", n, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func parseJWKS(data []byte) ([]jwtKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil || len(set.Keys) == 0 {
		// A single JWK is accepted too.
		var one jose.JSONWebKey
		if err2 := json.Unmarshal(data, &one); err2 != nil {
			if err != nil {
				return nil, fmt.Errorf("not a JWKS: %v", err)
			}
			return nil, errors.New("JWKS has no keys")
		}
		set.Keys = []jose.JSONWebKey{one}
	}
	var keys []jwtKey
	for i, k := range set.Keys {
		if k.Use == "enc" {
			continue
		}
		if !k.Valid() {
			return nil, fmt.Errorf("JWKS key %d: invalid", i)
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			return nil, fmt.Errorf("JWKS key %d (kid %q): %T keys are refused; want RSA, EC or Ed25519", i, k.KeyID, k.Key)
		}
		jk, err := newJWTKey(k.KeyID, k.Key, k.Algorithm)
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %v", i, k.KeyID, err)
		}
		keys = append(keys, jk)
	}
	return keys, nil
}

// newJWTKey pins the algorithms a key may verify. alg, when not empty,
// restricts them to one.
func newJWTKey(kid string, pub crypto.PublicKey, alg string) (jwtKey, error) {
	var algs []jose.SignatureAlgorithm
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return jwtKey{}, fmt.Errorf("RSA key of %d bits refused; want 2048 or more", k.N.BitLen())
		}
		algs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			algs = []jose.SignatureAlgorithm{jose.ES256}
		case elliptic.P384():
			algs = []jose.SignatureAlgorithm{jose.ES384}
		case elliptic.P521():
			algs = []jose.SignatureAlgorithm{jose.ES512}
		default:
			return jwtKey{}, errors.New("unsupported EC curve")
		}
	case ed25519.PublicKey:
		algs = []jose.SignatureAlgorithm{jose.EdDSA}
	default:
		return jwtKey{}, fmt.Errorf("unsupported key type %T", pub)
	}
	if alg != "" {
		ok := false
		for _, a := range algs {
			if string(a) == alg {
				ok = true
			}
		}
		if !ok {
			return jwtKey{}, fmt.Errorf("alg %q does not match the key", alg)
		}
		algs = []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
	}
	if kid == "" {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return jwtKey{}, err
		}
		sum := sha256.Sum256(der)
		kid = hex.EncodeToString(sum[:])
	}
	return jwtKey{kid: kid, key: pub, algs: algs}, nil
}

// tokenClaims are the claims read beyond the registered ones.
type tokenClaims struct {
	Scope    string          `json:"scope"`
	Scp      json.RawMessage `json:"scp"`
	ClientID string          `json:"client_id"`
}

// verify checks a compact JWS token: algorithm pinned to the key, issuer,
// audience, exp (required) and nbf with JWTClockSkew.
func (v *jwtVerifier) verify(token string, now time.Time) (*tokenInfo, error) {
	if len(token) > maxTokenBytes {
		return nil, fmt.Errorf("%w: token too large", ErrBadCredentials)
	}
	tok, err := jwt.ParseSigned(token, asymmetricAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrBadCredentials)
	}
	h := tok.Headers[0]
	if h.JSONWebKey != nil || h.ExtraHeaders["jku"] != nil || h.ExtraHeaders["x5u"] != nil || h.ExtraHeaders["crit"] != nil {
		return nil, fmt.Errorf("%w: header names its own key or critical extensions", ErrBadCredentials)
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)
	var std jwt.Claims
	var extra tokenClaims
	verified := false
	for _, k := range v.keys {
		if h.KeyID != "" && h.KeyID != k.kid {
			continue
		}
		if !algAllowed(k.algs, alg) {
			continue
		}
		if err := tok.Claims(k.key, &std, &extra); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: signature not verified by any configured key", ErrBadCredentials)
	}
	if std.Expiry == nil {
		return nil, fmt.Errorf("%w: token has no exp", ErrBadCredentials)
	}
	exp := jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience(v.audiences), Time: now}
	if err := std.ValidateWithLeeway(exp, JWTClockSkew); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	info := &tokenInfo{subject: std.Subject, scopes: map[string]bool{}, expires: std.Expiry.Time()}
	if info.subject == "" {
		info.subject = extra.ClientID
	}
	for _, s := range strings.Fields(extra.Scope) {
		info.scopes[s] = true
	}
	if len(extra.Scp) > 0 {
		var list []string
		var one string
		if json.Unmarshal(extra.Scp, &list) == nil {
			for _, s := range list {
				info.scopes[s] = true
			}
		} else if json.Unmarshal(extra.Scp, &one) == nil {
			for _, s := range strings.Fields(one) {
				info.scopes[s] = true
			}
		}
	}
	return info, nil
}

func algAllowed(algs []jose.SignatureAlgorithm, alg jose.SignatureAlgorithm) bool {
	for _, a := range algs {
		if a == alg {
			return true
		}
	}
	return false
}
