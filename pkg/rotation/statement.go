// Package rotation rotates the secrets of a mirror: signing keys, through
// rotation and revocation statements that bundles carry to offline sites,
// re-signing of existing bundles, and htpasswd credentials.
//
// A rotation statement is a DSSE envelope (payloadType PayloadType) over a
// JSON document naming the old key and the new one. It is signed by the old
// key, which the sites trust, and by the new key, which proves that whoever
// wrote the statement holds it. A revocation statement names a key to drop
// at once and is signed by another trusted key. Apply is the
// bundle.RotationFunc that verify and import run over a bundle's keys/
// folder.
package rotation

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// PayloadType is the DSSE payloadType of rotation and revocation statements.
const PayloadType = "application/vnd.stellaops.mirror.rotation+json;version=1"

// SchemaVersion is the version of the statement document.
const SchemaVersion = 1

// Statement types.
const (
	TypeRotate = "rotate"
	TypeRevoke = "revoke"
)

// MaxStatementSize bounds a statement file.
const MaxStatementSize = 256 << 10

// maxReason bounds the free-text reason.
const maxReason = 1024

// Errors callers branch on.
var (
	// ErrStatement: a statement is malformed, fails a signature, or would
	// leave the trust roots without a usable key (exit 2).
	ErrStatement = failure.New(failure.ErrVerification, "rotation statement refused")
)

var (
	statementIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	sha256Pattern      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Rotate is the payload of a rotation statement: the old key is trusted
// until OldKeyNotAfter, the new key from NewKeyNotBefore (until
// NewKeyNotAfter when set). The field order is the document's key order.
type Rotate struct {
	SchemaVersion   int       `json:"schemaVersion"`
	Type            string    `json:"type"`
	StatementID     string    `json:"statementId"`
	IssuedAt        time.Time `json:"issuedAt"`
	OldKeyID        string    `json:"oldKeyId"`
	OldKeyNotAfter  time.Time `json:"oldKeyNotAfter"`
	NewKeyID        string    `json:"newKeyId"`
	NewPublicKey    string    `json:"newPublicKey"`
	NewKeyNotBefore time.Time `json:"newKeyNotBefore"`
	NewKeyNotAfter  time.Time `json:"newKeyNotAfter,omitzero"`
	Reason          string    `json:"reason"`
}

// Revoke is the payload of a revocation statement. RevokedKeySHA256 is the
// hex SHA-256 of the revoked key's DER SubjectPublicKeyInfo (its derived
// key id) and decides which key is revoked; RevokedKeyID is the id as the
// issuer's trust roots name it. RevokedPublicKey, when present, lets sites
// that never trusted the key refuse it in advance.
type Revoke struct {
	SchemaVersion    int       `json:"schemaVersion"`
	Type             string    `json:"type"`
	StatementID      string    `json:"statementId"`
	IssuedAt         time.Time `json:"issuedAt"`
	RevokedKeyID     string    `json:"revokedKeyId"`
	RevokedKeySHA256 string    `json:"revokedKeySha256"`
	RevokedPublicKey string    `json:"revokedPublicKey,omitempty"`
	Reason           string    `json:"reason"`
}

// envelope is a decoded statement: the DSSE bytes, the payload and one of
// the two documents.
type envelope struct {
	data    []byte
	payload []byte
	rotate  *Rotate
	revoke  *Revoke
	// newKey is the rotation's new key, unbounded, for the proof of possession.
	newKey trust.Key
	// revokedKey is the revocation's public key when the statement carries it.
	revokedKey *trust.Key
}

func (e *envelope) id() string {
	if e.rotate != nil {
		return e.rotate.StatementID
	}
	return e.revoke.StatementID
}

// Marshal encodes a statement document with its keys in a fixed order.
func Marshal(doc any) ([]byte, error) {
	return bundle.MarshalDocument(doc)
}

// decode reads a statement envelope strictly: a DSSE envelope with the
// rotation payloadType whose payload is a rotate or revoke document with
// no unknown, duplicate or missing fields. Signatures are checked by the
// caller, which needs the new key the payload names.
func decode(data []byte) (*envelope, error) {
	if len(data) > MaxStatementSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxStatementSize)
	}
	env, err := sign.ParseEnvelope(data)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("payloadType %q, want %q", env.PayloadType, PayloadType)
	}
	payload, err := base64.StdEncoding.Strict().DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload is not standard base64: %v", err)
	}
	if err := strictjson.Check(payload); err != nil {
		return nil, fmt.Errorf("payload: %v", err)
	}
	var head struct {
		SchemaVersion int    `json:"schemaVersion"`
		Type          string `json:"type"`
	}
	if err := json.Unmarshal(payload, &head); err != nil {
		return nil, fmt.Errorf("payload is not a statement object: %v", err)
	}
	if head.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("schemaVersion %d (this tool reads %d)", head.SchemaVersion, SchemaVersion)
	}
	e := &envelope{data: data, payload: payload}
	switch head.Type {
	case TypeRotate:
		var r Rotate
		if err := strictjson.Unmarshal(payload, &r); err != nil {
			return nil, fmt.Errorf("payload: %v", err)
		}
		k, err := r.check()
		if err != nil {
			return nil, err
		}
		e.rotate, e.newKey = &r, k
	case TypeRevoke:
		var r Revoke
		if err := strictjson.Unmarshal(payload, &r); err != nil {
			return nil, fmt.Errorf("payload: %v", err)
		}
		k, err := r.check()
		if err != nil {
			return nil, err
		}
		e.revoke, e.revokedKey = &r, k
	default:
		return nil, fmt.Errorf("type %q, want %q or %q", head.Type, TypeRotate, TypeRevoke)
	}
	return e, nil
}

func checkCommon(id string, issued time.Time, reason string) error {
	if !statementIDPattern.MatchString(id) {
		return fmt.Errorf("statementId %q: want 1-128 characters of [A-Za-z0-9._:-]", id)
	}
	if issued.IsZero() {
		return fmt.Errorf("issuedAt missing")
	}
	if len(reason) > maxReason || strings.ContainsAny(reason, "\x00") {
		return fmt.Errorf("reason longer than %d bytes or with a NUL", maxReason)
	}
	return nil
}

// check validates a rotate document and returns its new key, unbounded.
func (r *Rotate) check() (trust.Key, error) {
	if err := checkCommon(r.StatementID, r.IssuedAt, r.Reason); err != nil {
		return trust.Key{}, err
	}
	if !sha256Pattern.MatchString(r.OldKeyID) {
		return trust.Key{}, fmt.Errorf("oldKeyId %q is not a derived key id (64 lowercase hex)", r.OldKeyID)
	}
	switch {
	case r.OldKeyNotAfter.IsZero():
		return trust.Key{}, fmt.Errorf("oldKeyNotAfter missing")
	case r.NewKeyNotBefore.IsZero():
		return trust.Key{}, fmt.Errorf("newKeyNotBefore missing")
	case r.NewKeyNotBefore.After(r.OldKeyNotAfter):
		return trust.Key{}, fmt.Errorf("newKeyNotBefore %s is after oldKeyNotAfter %s: the site would trust no key in between",
			stamp(r.NewKeyNotBefore), stamp(r.OldKeyNotAfter))
	case !r.NewKeyNotAfter.IsZero() && !r.NewKeyNotAfter.After(r.NewKeyNotBefore):
		return trust.Key{}, fmt.Errorf("newKeyNotAfter %s is not after newKeyNotBefore %s", stamp(r.NewKeyNotAfter), stamp(r.NewKeyNotBefore))
	}
	k, err := parsePublicKey(r.NewPublicKey, r.NewKeyID, "newPublicKey")
	if err != nil {
		return trust.Key{}, err
	}
	if k.DerivedID == r.OldKeyID {
		return trust.Key{}, fmt.Errorf("the new key is the old key")
	}
	return k, nil
}

// check validates a revoke document and returns the revoked key when the
// document carries it.
func (r *Revoke) check() (*trust.Key, error) {
	if err := checkCommon(r.StatementID, r.IssuedAt, r.Reason); err != nil {
		return nil, err
	}
	if !sha256Pattern.MatchString(r.RevokedKeySHA256) {
		return nil, fmt.Errorf("revokedKeySha256 %q is not 64 lowercase hex", r.RevokedKeySHA256)
	}
	if r.RevokedKeyID == "" {
		return nil, fmt.Errorf("revokedKeyId missing")
	}
	if r.RevokedPublicKey == "" {
		return nil, nil
	}
	k, err := parsePublicKey(r.RevokedPublicKey, r.RevokedKeyID, "revokedPublicKey")
	if err != nil {
		return nil, err
	}
	if k.DerivedID != r.RevokedKeySHA256 {
		return nil, fmt.Errorf("revokedPublicKey has the id %s, not revokedKeySha256 %s", k.DerivedID, r.RevokedKeySHA256)
	}
	return &k, nil
}

// parsePublicKey reads exactly one PUBLIC KEY block under the given key id.
func parsePublicKey(text, id, field string) (trust.Key, error) {
	roots, err := trust.Parse([]byte(text), field)
	if err != nil {
		return trust.Key{}, fmt.Errorf("%s: %v", field, err)
	}
	if len(roots.Keys) != 1 || roots.Keys[0].Certificate != nil {
		return trust.Key{}, fmt.Errorf("%s: want exactly one PUBLIC KEY block", field)
	}
	k, err := trust.NewKey(roots.Keys[0].Public, id)
	if err != nil {
		return trust.Key{}, fmt.Errorf("%s: %v", field, err)
	}
	return k, nil
}

// publicKeyPEM encodes a key for a statement.
func publicKeyPEM(k trust.Key) (string, error) {
	b, err := sign.MarshalPublicKeyPEM(k.Public)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ShortID returns the first 16 characters of a key id, for file names and
// messages.
func ShortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// statementID builds a deterministic id from the kind, the time and a key id.
func statementID(kind string, t time.Time, keyID string) string {
	return kind + "-" + t.UTC().Format(bundle.ExportIDLayout) + "-" + ShortID(keyID)
}

// isHexID reports whether id looks like a derived key id.
func isHexID(id string) bool {
	if !sha256Pattern.MatchString(id) {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}
