package rotation

import (
	"context"
	"crypto"
	"fmt"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// DefaultOverlap is how long the old key stays trusted after a rotation.
const DefaultOverlap = 720 * time.Hour

// KeyOptions configures RotateKey.
type KeyOptions struct {
	// Current is the private key being replaced; it must be in Roots.
	Current crypto.Signer
	// New is the replacement private key.
	New crypto.Signer
	// NewKeyID is the id sites record for the new key and the id its
	// signatures carry (default: the derived id).
	NewKeyID string
	// Roots are the trust roots the rotation starts from.
	Roots *trust.Roots
	// Now is when the new key becomes trusted.
	Now time.Time
	// Overlap is how long after Now the old key stays trusted (default 720h).
	Overlap time.Duration
	// NewKeyNotAfter optionally bounds the new key.
	NewKeyNotAfter time.Time
	Reason         string
}

// KeyResult is a signed rotation statement and the trust roots after it.
type KeyResult struct {
	// Statement is the DSSE envelope to carry in bundles (mirror export --rotation).
	Statement []byte
	Payload   Rotate
	// Roots are the input roots with the statement applied: both keys, the
	// old one bounded by OldKeyNotAfter.
	Roots  *trust.Roots
	OldKey trust.Key
	NewKey trust.Key
	// FileName is the statement's default file name.
	FileName string
	Notes    []string
}

// RotateKey writes and signs a rotation statement from the current key to
// the new one, and applies it to the roots exactly as a site will.
func RotateKey(ctx context.Context, opts KeyOptions) (*KeyResult, error) {
	if opts.Current == nil || opts.New == nil || opts.Roots == nil {
		return nil, failure.Usagef("rotate key: the current key, the new key and the trust roots are required")
	}
	if opts.Overlap == 0 {
		opts.Overlap = DefaultOverlap
	}
	if opts.Overlap < 0 {
		return nil, failure.Usagef("rotate key: the overlap must be positive")
	}
	now := opts.Now.UTC().Truncate(time.Second)
	// Both keys sign the statement: the old one under its derived id, which
	// every site can look up whatever Key-Id it gave the key; the new one
	// under the id sites will record.
	oldSigner, err := sign.NewSigner(opts.Current, "", "")
	if err != nil {
		return nil, fmt.Errorf("current key: %w", err)
	}
	newSigner, err := sign.NewSigner(opts.New, "", opts.NewKeyID)
	if err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	old, ok := opts.Roots.Find(opts.Current.Public())
	if !ok {
		return nil, failure.WithHint(failure.Usagef("the current key %s is not in the trust roots", ShortID(oldSigner.KeyID())),
			"pass the trust roots the sites use now; a rotation must be signed by a key they trust")
	}
	if err := old.ValidAt(now); err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("the current key is not trusted at %s, so sites would refuse the statement: %w", stamp(now), err))
	}
	newKey := newSigner.TrustKey()
	if have, ok := opts.Roots.Find(opts.New.Public()); ok {
		return nil, failure.Usagef("the new key %s is already in the trust roots (as %s)", ShortID(newKey.DerivedID), have.ID)
	}
	oldNotAfter := now.Add(opts.Overlap).Truncate(time.Second)
	if !old.NotAfter.IsZero() && old.NotAfter.Before(oldNotAfter) {
		oldNotAfter = old.NotAfter
	}
	newNotAfter := opts.NewKeyNotAfter.UTC().Truncate(time.Second)
	if !newNotAfter.IsZero() && !newNotAfter.After(now) {
		return nil, failure.Usagef("the new key's Not-After %s is not after now (%s)", stamp(newNotAfter), stamp(now))
	}
	pubPEM, err := publicKeyPEM(newKey)
	if err != nil {
		return nil, err
	}
	doc := Rotate{
		SchemaVersion:   SchemaVersion,
		Type:            TypeRotate,
		StatementID:     statementID("rot", now, newKey.DerivedID),
		IssuedAt:        now,
		OldKeyID:        old.DerivedID,
		OldKeyNotAfter:  oldNotAfter,
		NewKeyID:        newKey.ID,
		NewPublicKey:    pubPEM,
		NewKeyNotBefore: now,
		NewKeyNotAfter:  newNotAfter,
		Reason:          opts.Reason,
	}
	if _, err := doc.check(); err != nil {
		return nil, failure.Usagef("rotate key: %v", err)
	}
	payload, err := Marshal(doc)
	if err != nil {
		return nil, err
	}
	env, err := sign.SignDSSE(ctx, PayloadType, payload, oldSigner, newSigner)
	if err != nil {
		return nil, err
	}
	name := "keys-rotation-" + ShortID(newKey.DerivedID) + ".json"
	roots, notes, err := Apply(opts.Roots, map[string][]byte{name: env}, now)
	if err != nil {
		return nil, fmt.Errorf("the new statement does not apply to the trust roots: %w", err)
	}
	res := &KeyResult{Statement: env, Payload: doc, Roots: roots, FileName: name, Notes: notes}
	res.OldKey, _ = roots.Find(opts.Current.Public())
	res.NewKey, _ = roots.Find(opts.New.Public())
	return res, nil
}

// RevokeOptions configures NewRevocation.
type RevokeOptions struct {
	// Signer is the private key that signs the statement; sites must trust
	// it, and it must not be the revoked key.
	Signer crypto.Signer
	// KeyID names the key to revoke: an id in Roots, or a derived key id
	// (64 hex) when Roots is nil.
	KeyID string
	// Roots, when set, resolve KeyID to a public key, check the signer, and
	// are returned with the revocation applied.
	Roots  *trust.Roots
	Now    time.Time
	Reason string
}

// RevokeResult is a signed revocation statement.
type RevokeResult struct {
	Statement []byte
	Payload   Revoke
	// Roots are the input roots with the key revoked (nil without input roots).
	Roots    *trust.Roots
	FileName string
	Notes    []string
}

// NewRevocation writes and signs a statement that revokes a key.
func NewRevocation(ctx context.Context, opts RevokeOptions) (*RevokeResult, error) {
	if opts.Signer == nil || opts.KeyID == "" {
		return nil, failure.Usagef("rotate revoke: the key id and the signing key are required")
	}
	now := opts.Now.UTC().Truncate(time.Second)
	signer, err := sign.NewSigner(opts.Signer, "", "")
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	doc := Revoke{
		SchemaVersion: SchemaVersion,
		Type:          TypeRevoke,
		IssuedAt:      now,
		RevokedKeyID:  opts.KeyID,
		Reason:        opts.Reason,
	}
	signerKey := signer.TrustKey()
	if opts.Roots != nil {
		keys := opts.Roots.Lookup(opts.KeyID)
		if len(keys) == 0 {
			return nil, failure.Usagef("key %s is not in the trust roots", opts.KeyID)
		}
		k := keys[0]
		doc.RevokedKeySHA256 = k.DerivedID
		pubPEM, err := publicKeyPEM(k)
		if err != nil {
			return nil, err
		}
		doc.RevokedPublicKey = pubPEM
		s, ok := opts.Roots.Find(opts.Signer.Public())
		if !ok {
			return nil, failure.WithHint(failure.Usagef("the signing key %s is not in the trust roots", ShortID(signerKey.DerivedID)),
				"sign with another key the sites trust now")
		}
		if err := s.ValidAt(now); err != nil {
			return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("the signing key is not trusted at %s, so sites would refuse the statement: %w", stamp(now), err))
		}
	} else {
		if !isHexID(opts.KeyID) {
			return nil, failure.WithHint(failure.Usagef("--key-id %q is not a derived key id (64 lowercase hex)", opts.KeyID),
				"pass --trust-roots so that the id can be resolved to its public key")
		}
		doc.RevokedKeySHA256 = opts.KeyID
	}
	if doc.RevokedKeySHA256 == signerKey.DerivedID {
		return nil, failure.WithHint(failure.Usagef("the signing key is the key being revoked"),
			"a revocation must be signed by another trusted key")
	}
	doc.StatementID = statementID("rev", now, doc.RevokedKeySHA256)
	if _, err := doc.check(); err != nil {
		return nil, failure.Usagef("rotate revoke: %v", err)
	}
	payload, err := Marshal(doc)
	if err != nil {
		return nil, err
	}
	env, err := sign.SignDSSE(ctx, PayloadType, payload, signer)
	if err != nil {
		return nil, err
	}
	res := &RevokeResult{Statement: env, Payload: doc, FileName: "keys-revocation-" + ShortID(doc.RevokedKeySHA256) + ".json"}
	if opts.Roots != nil {
		roots, notes, err := Apply(opts.Roots, map[string][]byte{res.FileName: env}, now)
		if err != nil {
			return nil, fmt.Errorf("the new statement does not apply to the trust roots: %w", err)
		}
		res.Roots, res.Notes = roots, notes
	}
	return res, nil
}
