package sign_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// opener serves data, or other from the second reading on when set.
func opener(data, other []byte) func() (io.ReadCloser, error) {
	n := 0
	return func() (io.ReadCloser, error) {
		n++
		if n > 1 && other != nil {
			return io.NopCloser(bytes.NewReader(other)), nil
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
}

// sameAsWhole checks that VerifyDSSEStream gives for env what
// VerifyDSSEDigest gives.
func sameAsWhole(t *testing.T, name string, env []byte, roots *trust.Roots) {
	t.Helper()
	want, wantErr := sign.VerifyDSSEDigest(env, mirrorPayloadType, roots, testNow, 1)
	got, err := sign.VerifyDSSEStream(opener(env, nil), sha256.Sum256(env), mirrorPayloadType, roots, testNow, 1)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%s: streamed: %v; whole: %v", name, err, wantErr)
	}
	if strings.Join(got.KeyIDs(), ",") != strings.Join(want.KeyIDs(), ",") ||
		strings.Join(got.Ignored, ";") != strings.Join(want.Ignored, ";") ||
		got.PayloadSize != want.PayloadSize || got.PayloadSHA256 != want.PayloadSHA256 || got.Payload != nil {
		t.Fatalf("%s: streamed %+v; whole %+v", name, got, want)
	}
}

// TestVerifyDSSEStream holds the streamed verification to the whole one on
// envelopes signed by every algorithm and on variants of one: reordered,
// spaced, escaped, malformed, tampered.
func TestVerifyDSSEStream(t *testing.T) {
	payload := bytes.Repeat([]byte(`{"path":"mirror/vex/openvex/x.json","size":1234},`), 300) // 14,700 bytes
	for _, tt := range algKeys {
		s := loadSigner(t, tt.file, tt.alg, "")
		env, err := sign.SignDSSE(context.Background(), mirrorPayloadType, payload, s)
		if err != nil {
			t.Fatal(err)
		}
		sameAsWhole(t, tt.alg, env, rootsOf(t, tt.file))
	}

	roots := rootsOf(t, "es256")
	env, err := sign.SignDSSE(context.Background(), mirrorPayloadType, payload, loadSigner(t, "es256", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := sign.ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	b64, sig := parsed.Payload, parsed.Signatures[0]
	sigs := `[{"keyid":"` + sig.KeyID + `","sig":"` + sig.Sig + `"}]`
	typ := `"` + mirrorPayloadType + `"`
	variants := map[string]string{
		"payload first":           `{"payload":"` + b64 + `","payloadType":` + typ + `,"signatures":` + sigs + `}`,
		"payload last, spaced":    "{ \"payloadType\" : " + typ + " ,\n \"signatures\" :\t" + sigs + " ,\r\n \"payload\" :  \"" + b64 + "\" }\n",
		"escaped slash":           `{"payloadType":` + typ + `,"payload":"` + strings.Replace(b64, "/", `\/`, 1) + `","signatures":` + sigs + `}`,
		"key spelled by escape":   `{"payloadType":` + typ + `,"p\u0061yload":"` + b64 + `","signatures":` + sigs + `}`,
		"key in capitals":         `{"payloadType":` + typ + `,"Payload":"` + b64 + `","signatures":` + sigs + `}`,
		"payload twice":           `{"payloadType":` + typ + `,"payload":"` + b64 + `","payload":"` + b64 + `","signatures":` + sigs + `}`,
		"payload null":            `{"payloadType":` + typ + `,"payload":null,"signatures":` + sigs + `}`,
		"payload a number":        `{"payloadType":` + typ + `,"payload":12,"signatures":` + sigs + `}`,
		"payload empty":           `{"payloadType":` + typ + `,"payload":"","signatures":` + sigs + `}`,
		"no payload":              `{"payloadType":` + typ + `,"signatures":` + sigs + `}`,
		"nested payload key":      `{"payloadType":` + typ + `,"payload":"` + b64 + `","signatures":[{"keyid":"` + sig.KeyID + `","sig":"` + sig.Sig + `","payload":"QQ=="}]}`,
		"padding inside":          `{"payloadType":` + typ + `,"payload":"` + b64[:4092] + "QQ==" + b64[4096:] + `","signatures":` + sigs + `}`,
		"bad character":           `{"payloadType":` + typ + `,"payload":"` + b64[:5000] + "!" + b64[5001:] + `","signatures":` + sigs + `}`,
		"control character":       `{"payloadType":` + typ + `,"payload":"` + b64[:5000] + "\x01" + b64[5001:] + `","signatures":` + sigs + `}`,
		"truncated base64":        `{"payloadType":` + typ + `,"payload":"` + b64[:len(b64)-1] + `","signatures":` + sigs + `}`,
		"other payload":           `{"payloadType":` + typ + `,"payload":"` + b64[:len(b64)-8] + "QUFBQUFB" + `","signatures":` + sigs + `}`,
		"other type":              `{"payloadType":"text/plain","payload":"` + b64 + `","signatures":` + sigs + `}`,
		"unknown field":           `{"payloadType":` + typ + `,"payload":"` + b64 + `","signatures":` + sigs + `,"x":1}`,
		"trailing data":           `{"payloadType":` + typ + `,"payload":"` + b64 + `","signatures":` + sigs + `} {}`,
		"unterminated payload":    `{"payloadType":` + typ + `,"payload":"` + b64,
		"not an object":           `["payload","` + b64 + `"]`,
		"payload in key position": `{"payloadType":` + typ + `,"signatures":` + sigs + `,"payload"}`,
	}
	for name, v := range variants {
		sameAsWhole(t, name, []byte(v), roots)
	}
	sameAsWhole(t, "RSA and ECDSA roots", env, rootsOf(t, "es256", "rsa2048", "es512"))
	sameAsWhole(t, "an Ed25519 root among them", env, rootsOf(t, "es256", "ed25519"))
}

// TestVerifyDSSEStreamChanged refuses an envelope that is not the same at
// its second reading, or whose bytes are not those the caller hashed.
func TestVerifyDSSEStreamChanged(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 10000)
	s := loadSigner(t, "es256", "", "")
	env, err := sign.SignDSSE(context.Background(), mirrorPayloadType, payload, s)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sign.SignDSSE(context.Background(), mirrorPayloadType, bytes.Repeat([]byte("y"), 10000), s)
	if err != nil {
		t.Fatal(err)
	}
	roots := rootsOf(t, "es256")
	if _, err := sign.VerifyDSSEStream(opener(env, other), sha256.Sum256(env), mirrorPayloadType, roots, testNow, 1); !errors.Is(err, sign.ErrEnvelopeChanged) || !errors.Is(err, sign.ErrDSSEMalformed) {
		t.Fatalf("replaced after the first reading: %v", err)
	}
	if _, err := sign.VerifyDSSEStream(opener(env, nil), sha256.Sum256(other), mirrorPayloadType, roots, testNow, 1); !errors.Is(err, sign.ErrEnvelopeChanged) {
		t.Fatalf("not the bytes hashed: %v", err)
	}
	if res, err := sign.VerifyDSSEStream(opener(env, nil), sha256.Sum256(env), mirrorPayloadType, roots, testNow, 1); err != nil || res.PayloadSHA256 != sha256.Sum256(payload) {
		t.Fatalf("unchanged: %v", err)
	}
}

// FuzzVerifyDSSEStream holds VerifyDSSEStream to VerifyDSSEDigest on any
// envelope bytes, with ECDSA and RSA roots.
func FuzzVerifyDSSEStream(f *testing.F) {
	s := loadSigner(f, "es256", "", "")
	env, err := sign.SignDSSE(context.Background(), mirrorPayloadType, bytes.Repeat([]byte(`{"a":1},`), 700), s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add(bytes.Replace(env, []byte(`"payload":"`), []byte(`"payload": "`), 1))
	f.Add([]byte(`{"payload":"QQ==","payloadType":"x","signatures":[{"keyid":"k","sig":"AA=="}]}`))
	f.Add([]byte(`{"payload":"QQ==QQ==","payloadType":"x","signatures":[]}`))
	roots := rootsOf(f, "es256", "rsa2048")
	f.Fuzz(func(t *testing.T, env []byte) {
		sameAsWhole(t, "fuzz", env, roots)
	})
}
