package rotation

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// SourcePrefix and RevokedSourcePrefix start the Source of keys that
// statements added or revoked; the statement id follows.
const (
	SourcePrefix        = "rotation:"
	RevokedSourcePrefix = "revocation:"
)

// Apply applies the rotation and revocation statements (file name to
// envelope bytes) to roots at the trusted time now, in the order of their
// names, and returns the resulting roots with one note per statement. It is
// the bundle.RotationFunc of verify and import; roots is not modified.
//
// A rotate statement adds its new key only when it carries a valid
// signature by the old key, trusted at now, and by the new key itself. The
// new key gets the statement's Not-Before and Not-After and the Source
// "rotation:<statementId>"; the old key's Not-After moves to the
// statement's oldKeyNotAfter when that is earlier. A revoke statement
// signed by a key trusted at now, other than the revoked one, revokes the
// key at once; the revoked entry stays so that no replayed statement can
// bring it back. Statements already applied change nothing.
//
// A statement whose old key or signer another statement of the same set
// introduces is applied after it, whatever the names' order. Any statement
// that is malformed, fails a signature, or would leave the roots without a
// usable key refuses the whole set: the error wraps ErrStatement (exit 2)
// and names the file.
func Apply(roots *trust.Roots, statements map[string][]byte, now time.Time) (*trust.Roots, []string, error) {
	a := &applier{now: now, revoked: map[string]string{}}
	if roots != nil {
		a.roots = roots.Clone()
	} else {
		a.roots = &trust.Roots{}
	}
	names := make([]string, 0, len(statements))
	for n := range statements {
		names = append(names, n)
	}
	sort.Strings(names)
	decoded := make(map[string]*envelope, len(names))
	for _, n := range names {
		e, err := decode(statements[n])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: malformed: %v", ErrStatement, n, err)
		}
		decoded[n] = e
	}
	notes := make([]string, 0, len(names))
	pending := names
	for len(pending) > 0 {
		var later []string
		var firstWait error
		for _, n := range pending {
			note, err := a.apply(n, decoded[n])
			var w *waitErr
			switch {
			case errors.As(err, &w):
				later = append(later, n)
				if firstWait == nil {
					firstWait = fmt.Errorf("%w: %s: %v", ErrStatement, n, err)
				}
			case err != nil:
				return nil, nil, fmt.Errorf("%w: %s: %v", ErrStatement, n, err)
			default:
				notes = append(notes, note)
			}
		}
		if len(later) == len(pending) {
			return nil, nil, firstWait
		}
		pending = later
	}
	return a.roots, notes, nil
}

// waitErr marks a statement that no key trusted so far vouches for; another
// statement of the same set may introduce that key.
type waitErr struct{ msg string }

func (w *waitErr) Error() string { return w.msg }

func waitf(format string, args ...any) error { return &waitErr{msg: fmt.Sprintf(format, args...)} }

type applier struct {
	roots *trust.Roots
	now   time.Time
	// revoked maps the derived ids of keys revoked by this set but absent
	// from the roots to the revoking statement's file.
	revoked map[string]string
}

func (a *applier) apply(name string, e *envelope) (string, error) {
	if e.rotate != nil {
		return a.rotate(name, e)
	}
	return a.revoke(name, e)
}

// index returns the position of the key with this derived id, or -1.
func (a *applier) index(derived string) int {
	for i, k := range a.roots.Keys {
		if k.DerivedID == derived {
			return i
		}
	}
	return -1
}

// signedBy reports whether the statement carries a valid signature by k,
// whatever k's validity window.
func signedBy(e *envelope, k trust.Key) bool {
	k.NotBefore, k.NotAfter, k.Revoked = time.Time{}, time.Time{}, time.Time{}
	_, err := sign.VerifyDSSE(e.data, PayloadType, &trust.Roots{Keys: []trust.Key{k}}, time.Time{}, 1)
	return err == nil
}

// usable refuses a state in which no key is, or will become, trusted.
func (a *applier) usable() error {
	for _, k := range a.roots.Keys {
		if k.Revoked.IsZero() && (k.NotAfter.IsZero() || k.NotAfter.After(a.now)) {
			return nil
		}
	}
	return errors.New("it would leave the trust roots without a usable key (a site must never trust nothing)")
}

func (a *applier) rotate(name string, e *envelope) (string, error) {
	r, n := e.rotate, e.newKey
	if !signedBy(e, n) {
		return "", fmt.Errorf("not signed by the new key %s (proof of possession)", ShortID(n.ID))
	}
	oi, ni := a.index(r.OldKeyID), a.index(n.DerivedID)
	var old trust.Key
	if oi >= 0 {
		old = a.roots.Keys[oi]
		if !signedBy(e, old) {
			return "", fmt.Errorf("not signed by the old key %s", ShortID(old.ID))
		}
	}
	if by, ok := a.revoked[n.DerivedID]; ok || (ni >= 0 && !a.roots.Keys[ni].Revoked.IsZero()) {
		if !ok {
			by = a.roots.Keys[ni].Source
		}
		return fmt.Sprintf("rotation statement %s changes nothing: key %s was revoked (%s)", name, ShortID(n.ID), by), nil
	}
	if oi < 0 {
		if ni >= 0 {
			return fmt.Sprintf("rotation statement %s already applied (key %s trusted; old key %s no longer listed)", name, ShortID(n.ID), ShortID(r.OldKeyID)), nil
		}
		return "", waitf("the old key %s is not in the trust roots, so nothing vouches for the new key %s", ShortID(r.OldKeyID), ShortID(n.ID))
	}
	oldNotAfter := r.OldKeyNotAfter.UTC()
	if ni >= 0 {
		if !old.NotAfter.IsZero() && !old.NotAfter.After(oldNotAfter) {
			return fmt.Sprintf("rotation statement %s already applied (key %s trusted, old key %s until %s)", name,
				ShortID(n.ID), ShortID(old.ID), stamp(old.NotAfter)), nil
		}
		// The new key is known already; the statement can only shorten the
		// old key's trust, which needs no more than the old key's signature.
		if err := a.boundOld(oi, oldNotAfter); err != nil {
			return "", err
		}
		return fmt.Sprintf("old key %s trusted until %s by rotation statement %s (key %s already trusted)", ShortID(old.ID),
			stamp(oldNotAfter), name, ShortID(n.ID)), nil
	}
	if err := old.ValidAt(a.now); err != nil {
		return "", fmt.Errorf("signed by the old key %s, which is not trusted at %s: %v", ShortID(old.ID), stamp(a.now), err)
	}
	k := n
	k.NotBefore, k.NotAfter = r.NewKeyNotBefore.UTC(), r.NewKeyNotAfter.UTC()
	k.Source = SourcePrefix + r.StatementID
	if err := a.roots.Add(k); err != nil {
		return "", err
	}
	if err := a.boundOld(oi, oldNotAfter); err != nil {
		return "", err
	}
	if err := a.usable(); err != nil {
		return "", err
	}
	until := ""
	if !k.NotAfter.IsZero() {
		until = " until " + stamp(k.NotAfter)
	}
	return fmt.Sprintf("key %s added by rotation statement %s (trusted from %s%s, old key %s until %s)", ShortID(k.ID), name,
		stamp(k.NotBefore), until, ShortID(old.ID), stamp(a.roots.Keys[oi].NotAfter)), nil
}

// boundOld moves the old key's Not-After to t when t is earlier.
func (a *applier) boundOld(oi int, t time.Time) error {
	old := &a.roots.Keys[oi]
	if !old.NotAfter.IsZero() && !t.Before(old.NotAfter) {
		return nil
	}
	if !old.NotBefore.IsZero() && !old.NotBefore.Before(t) {
		return fmt.Errorf("oldKeyNotAfter %s is not after the old key's Not-Before %s", stamp(t), stamp(old.NotBefore))
	}
	old.NotAfter = t
	return a.usable()
}

func (a *applier) revoke(name string, e *envelope) (string, error) {
	r := e.revoke
	ri := a.index(r.RevokedKeySHA256)
	others := make([]trust.Key, 0, len(a.roots.Keys))
	for _, k := range a.roots.Keys {
		if k.DerivedID != r.RevokedKeySHA256 {
			others = append(others, k)
		}
	}
	if ri >= 0 && !a.roots.Keys[ri].Revoked.IsZero() {
		for _, k := range others {
			if signedBy(e, k) {
				return fmt.Sprintf("revocation statement %s already applied (key %s revoked)", name, ShortID(r.RevokedKeyID)), nil
			}
		}
		return "", fmt.Errorf("not signed by any key in the trust roots other than the revoked key %s", ShortID(r.RevokedKeyID))
	}
	res, err := sign.VerifyDSSE(e.data, PayloadType, &trust.Roots{Keys: others}, a.now, 1)
	if err != nil {
		return "", waitf("not signed by a key trusted at %s other than the revoked key %s: %v", stamp(a.now), ShortID(r.RevokedKeyID), err)
	}
	signer := ShortID(res.Accepted[0].ID)
	revokedAt := r.IssuedAt.UTC()
	source := RevokedSourcePrefix + r.StatementID
	switch {
	case ri >= 0:
		a.roots.Keys[ri].Revoked = revokedAt
		a.roots.Keys[ri].Source = source
	case e.revokedKey != nil:
		k, err := trust.NewKey(e.revokedKey.Public, "")
		if err != nil {
			return "", err
		}
		k.Revoked, k.Source = revokedAt, source
		if err := a.roots.Add(k); err != nil {
			return "", err
		}
	default:
		a.revoked[r.RevokedKeySHA256] = RevokedSourcePrefix + r.StatementID
		return fmt.Sprintf("revocation statement %s: key %s is not in the trust roots; no statement of this bundle may add it", name,
			ShortID(r.RevokedKeyID)), nil
	}
	if err := a.usable(); err != nil {
		return "", err
	}
	if ri < 0 {
		return fmt.Sprintf("key %s revoked in advance by revocation statement %s (signed by %s)", ShortID(r.RevokedKeyID), name, signer), nil
	}
	return fmt.Sprintf("key %s revoked by revocation statement %s (signed by %s)", ShortID(r.RevokedKeyID), name, signer), nil
}
