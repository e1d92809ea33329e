package sign_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

var blob = []byte("{\"schemaVersion\":1,\"domainId\":\"primary\"}\n")

func TestBlobRoundTrip(t *testing.T) {
	keys := []string{"es256", "es384", "es512", "rsa2048", "ed25519", "other-es256"}
	for _, name := range keys {
		t.Run(name, func(t *testing.T) {
			s := loadSigner(t, name, "", "")
			sig, err := s.SignBlob(bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := base64.StdEncoding.Strict().DecodeString(string(sig))
			if err != nil {
				t.Fatalf("not standard base64: %v", err)
			}
			// The form cosign verify-blob --key checks: ASN.1 DER ECDSA and
			// PKCS#1 v1.5 over SHA-256, Ed25519 over the bytes.
			digest := sha256.Sum256(blob)
			switch pub := s.Public().(type) {
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, digest[:], raw) {
					t.Error("not an ASN.1 ECDSA signature over SHA-256")
				}
			case *rsa.PublicKey:
				if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], raw); err != nil {
					t.Errorf("not PKCS#1 v1.5 over SHA-256: %v", err)
				}
			case ed25519.PublicKey:
				if !ed25519.Verify(pub, blob, raw) {
					t.Error("not Ed25519 over the bytes")
				}
			}

			roots := rootsOf(t, "es256", "es384", "es512", "rsa2048", "ed25519", "other-es256")
			k, err := sign.VerifyBlob(sig, bytes.NewReader(blob), roots, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if k.ID != opensslKeyIDs[name] {
				t.Errorf("verified by %s, want %s", k.ID, opensslKeyIDs[name])
			}
			// A trailing newline, as cosign writes with --output-signature, is fine.
			if _, err := sign.VerifyBlob(append(sig, '\n'), bytes.NewReader(blob), roots, testNow); err != nil {
				t.Errorf("with newline: %v", err)
			}
		})
	}
}

func TestBlobRefusals(t *testing.T) {
	s := loadSigner(t, "es256", "", "")
	sig, err := s.SignBlob(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	edSig, err := loadSigner(t, "ed25519", "", "").SignBlob(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), blob...)
	tampered[len(tampered)/2] ^= 1
	pub := s.Public()
	tests := []struct {
		name  string
		sig   []byte
		blob  []byte
		roots *trust.Roots
		want  []error
		not   []error
	}{
		{name: "wrong key", sig: sig, blob: blob, roots: rootsOf(t, "other-es256", "es384", "rsa2048", "ed25519"),
			want: []error{sign.ErrBlobSignature, failure.ErrVerification}},
		{name: "tampered blob", sig: sig, blob: tampered, roots: rootsOf(t, "es256"),
			want: []error{sign.ErrBlobSignature, failure.ErrVerification}},
		{name: "tampered Ed25519 blob", sig: edSig, blob: tampered, roots: rootsOf(t, "ed25519"),
			want: []error{sign.ErrBlobSignature}},
		{name: "truncated blob", sig: sig, blob: blob[:len(blob)-1], roots: rootsOf(t, "es256"),
			want: []error{sign.ErrBlobSignature}},
		{name: "not base64", sig: []byte("!!"), blob: blob, roots: rootsOf(t, "es256"), want: []error{sign.ErrBlobSignature}},
		{name: "URL-safe base64", sig: []byte(base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 70)))), blob: blob,
			roots: rootsOf(t, "es256"), want: []error{sign.ErrBlobSignature}},
		{name: "empty", sig: nil, blob: blob, roots: rootsOf(t, "es256"), want: []error{sign.ErrBlobSignature}},
		{name: "oversized", sig: bytes.Repeat([]byte("A"), sign.MaxBlobSigSize+1), blob: blob, roots: rootsOf(t, "es256"),
			want: []error{sign.ErrBlobSignature}},
		{name: "expired key", sig: sig, blob: blob, roots: windowed(t, pub, time.Time{}, testNow),
			want: []error{trust.ErrKeyExpired, failure.ErrPolicy}, not: []error{failure.ErrVerification}},
		{name: "not yet valid key", sig: sig, blob: blob, roots: windowed(t, pub, testNow.Add(time.Second), time.Time{}),
			want: []error{trust.ErrNotYetValid, failure.ErrPolicy}},
		{name: "expired key, tampered blob", sig: sig, blob: tampered, roots: windowed(t, pub, time.Time{}, testNow),
			want: []error{sign.ErrBlobSignature, failure.ErrVerification}, not: []error{failure.ErrPolicy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sign.VerifyBlob(tt.sig, bytes.NewReader(tt.blob), tt.roots, testNow)
			wantErrs(t, err, tt.want...)
			wantNot(t, err, tt.not...)
		})
	}
}

// TestBlobPrefersAValidKey: a signature by a key outside its window
// does not stop another trusted key from verifying it.
func TestBlobPrefersAValidKey(t *testing.T) {
	s := loadSigner(t, "es256", "", "")
	sig, err := s.SignBlob(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	r := windowed(t, loadPriv(t, "ed25519").Public(), time.Time{}, testNow)
	if err := r.Add(s.TrustKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.VerifyBlob(sig, bytes.NewReader(blob), r, testNow); err != nil {
		t.Fatal(err)
	}
}
