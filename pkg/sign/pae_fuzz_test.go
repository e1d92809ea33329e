package sign

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"testing"
)

// FuzzPAESource holds the chunked reading of a payload to decoding it
// whole: the same base64 is accepted or refused by both, with the same
// payload, hashes and encoding. The seeds put padding and bad characters on
// either side of a chunk boundary.
func FuzzPAESource(f *testing.F) {
	whole := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("mirror.json "), 700))
	f.Add(`""`)
	f.Add(`"QQ=="`)
	f.Add(`"QQ==QQ=="`)
	f.Add(`"QR=="`)
	f.Add(`"QQ"`)
	f.Add(`"\u0051Q=="`)
	f.Add(`"` + whole + `"`)
	f.Add(`"` + whole[:decodeChunkChars-4] + "QQ==" + whole[decodeChunkChars:] + `"`)
	f.Add(`"` + whole[:decodeChunkChars] + "QQ==" + `"`)
	f.Add(`"` + whole[:decodeChunkChars+1] + `"`)
	f.Add(`"` + whole[:decodeChunkChars-1] + "!" + whole[decodeChunkChars:] + `"`)
	f.Fuzz(comparePAE)
}

// comparePAE compares newPAESource with decodePAE on the JSON string str.
func comparePAE(t *testing.T, str string) {
	if len(str) < 2 || str[0] != '"' || str[len(str)-1] != '"' {
		return
	}
	const typ = "application/vnd.test+json"
	pae, payload, wantErr := decodePAE(typ, rawString(str))
	src, err := newPAESource(typ, rawString(str))
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("decoded whole: %v; in chunks: %v", wantErr, err)
	}
	if err != nil {
		return
	}
	if src.n != len(payload) || src.sum != sha256.Sum256(payload) || !bytes.Equal(src.payload(), payload) {
		t.Fatalf("payload of %d bytes, chunks read %d", len(payload), src.n)
	}
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
		w := h.New()
		w.Write(pae)
		if !bytes.Equal(src.digest(h), w.Sum(nil)) {
			t.Fatalf("%v of the encoding differs", h)
		}
	}
	if !bytes.Equal(src.message(), pae) {
		t.Fatal("encoding differs")
	}
}

// TestPAESourceMatchesWhole runs FuzzPAESource's comparison on payloads of
// lengths around the chunk size, each also with one character replaced by
// padding or by a character outside the alphabet.
func TestPAESourceMatchesWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 3, decodeChunkChars/4*3 - 1, decodeChunkChars / 4 * 3, decodeChunkChars/4*3 + 1, 3 * decodeChunkChars} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(rng.IntN(256))
		}
		b64 := base64.StdEncoding.EncodeToString(payload)
		cases := []string{b64}
		for range 20 {
			if len(b64) == 0 {
				break
			}
			b := []byte(b64)
			b[rng.IntN(len(b))] = "=!A"[rng.IntN(3)]
			cases = append(cases, string(b))
		}
		if len(b64) > decodeChunkChars {
			cases = append(cases, b64[:decodeChunkChars-2]+"=="+b64[decodeChunkChars:])
		}
		for _, c := range cases {
			comparePAE(t, `"`+c+`"`)
		}
	}
}

// TestScanEnvelopeStreamsPayload checks that the plain form is streamed:
// the payload's characters go to the callback and the skeleton keeps only
// the other fields.
func TestScanEnvelopeStreamsPayload(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("mirror.json "), 20000))
	env := []byte(`{"payloadType":"t","payload":"` + b64 + `","signatures":[{"keyid":"k","sig":"AA=="}]}`)
	var streamed []byte
	skel, raw, ok, err := scanEnvelope(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(env)), nil },
		func(p []byte) { streamed = append(streamed, p...) })
	if err != nil || !ok {
		t.Fatalf("not streamed: ok %v, %v", ok, err)
	}
	if string(skel) != `{"payloadType":"t","payload":"","signatures":[{"keyid":"k","sig":"AA=="}]}` {
		t.Fatalf("skeleton %q", skel)
	}
	if string(streamed) != b64 || raw != sha256.Sum256(env) {
		t.Fatalf("streamed %d characters of %d", len(streamed), len(b64))
	}
}
