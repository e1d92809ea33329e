package sign_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stellaops/stellaops-cli/internal/samplefeed"
	"github.com/stellaops/stellaops-cli/internal/testutil"
	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/sign"
)

// fuzzExport exports the sample feed with each of keys and returns the
// bundle folders, so that fuzzing starts from real signed documents.
func fuzzExport(f *testing.F, keys ...string) []string {
	f.Helper()
	src := filepath.Join(f.TempDir(), "src")
	if err := samplefeed.WriteTo(src); err != nil {
		f.Fatal(err)
	}
	var dirs []string
	for _, k := range keys {
		out := filepath.Join(f.TempDir(), k)
		if _, err := bundle.Export(context.Background(), bundle.ExportOptions{
			Source: src, Out: out, Signer: loadSigner(f, k, "", ""), Created: testNow,
		}); err != nil {
			f.Fatal(err)
		}
		dirs = append(dirs, out)
	}
	return dirs
}

func seedFile(f *testing.F, path string) []byte {
	f.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

func FuzzParseJWSHeader(f *testing.F) {
	for _, dir := range fuzzExport(f, "es256", "ed25519") {
		f.Add(seedFile(f, filepath.Join(dir, "mirror/primary/bundle.json.jws")))
	}
	for _, s := range testutil.CorpusSeeds(f, "../..", "cases/*/mirror/*/bundle.json.jws", 1<<20) {
		f.Add(s)
	}
	f.Add([]byte("eyJhbGciOiJub25lIn0.."))
	f.Add([]byte(b64([]byte(`{"alg":"ES256","kid":"k","b64":false,"crit":["b64"],"jwk":{}}`)) + "..AA"))
	f.Add([]byte(b64([]byte(`{"alg":"ES256","alg":"none","kid":"k","b64":false,"crit":["b64"]}`)) + "..AA"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, hdr, _, err := sign.ParseJWSHeader(data)
		if err != nil {
			return
		}
		if !slices.Contains(sign.Algorithms, h.Alg) || h.Kid == "" || h.B64 == nil || *h.B64 ||
			len(h.Crit) != 1 || h.Crit[0] != "b64" {
			t.Fatalf("accepted header %+v", h)
		}
		raw, err := base64.RawURLEncoding.DecodeString(hdr)
		if err != nil || !bytes.HasPrefix(data, []byte(hdr+"..")) {
			t.Fatalf("header part %q", hdr)
		}
		for _, embedded := range []string{`"jwk"`, `"jku"`, `"x5c"`, `"x5u"`} {
			if bytes.Contains(raw, []byte(embedded)) {
				t.Fatalf("accepted a header with %s: %s", embedded, raw)
			}
		}
	})
}

func FuzzVerifyJWS(f *testing.F) {
	names := []string{"es256", "es384", "es512", "rsa2048", "ed25519"}
	roots := rootsOf(f, names...)
	for _, dir := range fuzzExport(f, names...) {
		f.Add(seedFile(f, filepath.Join(dir, "mirror/primary/bundle.json.jws")), seedFile(f, filepath.Join(dir, "mirror/primary/bundle.json")))
	}
	base := seedFile(f, filepath.Join("..", "..", "testdata", "hostile", "base", "seq10", "mirror", "primary", "bundle.json"))
	for _, s := range testutil.CorpusSeeds(f, "../..", "cases/*/mirror/primary/bundle.json.jws", 1<<20) {
		f.Add(s, base)
	}
	f.Fuzz(func(t *testing.T, jws, payload []byte) {
		res, err := sign.VerifyJWS(jws, bytes.NewReader(payload), roots, testNow)
		if err != nil {
			return
		}
		// Anything accepted is signed by a trusted key with its own algorithm.
		if len(roots.Lookup(res.Key.ID)) != 1 {
			t.Fatalf("verified by untrusted key %s", res.Key.ID)
		}
		if err := sign.AlgMatchesKey(res.Alg, res.Key.Public); err != nil {
			t.Fatalf("verified %s with %s", res.Alg, res.Key.Algorithm())
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	for _, dir := range fuzzExport(f, "es256") {
		f.Add(seedFile(f, filepath.Join(dir, "mirror.dsse.json")))
	}
	for _, s := range testutil.CorpusSeeds(f, "../..", "cases/*/mirror.dsse.json", 1<<20) {
		f.Add(s)
	}
	f.Add([]byte(`{"payloadType":"a","payload":"","signatures":[{"keyid":"","sig":""}]}`))
	f.Add([]byte(`{"payloadType":"a","payloadType":"b","payload":"","signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := sign.ParseEnvelope(data)
		if err != nil {
			return
		}
		if len(env.Signatures) == 0 {
			t.Fatal("accepted an envelope without signatures")
		}
		out, err := sign.MarshalEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		again, err := sign.ParseEnvelope(out)
		if err != nil {
			t.Fatalf("re-marshalled envelope refused: %v\n%s", err, out)
		}
		if again.Payload != env.Payload || again.PayloadType != env.PayloadType || len(again.Signatures) != len(env.Signatures) {
			t.Fatal("envelope changed in a round trip")
		}
	})
}

func FuzzVerifyDSSE(f *testing.F) {
	names := []string{"es256", "es384", "es512", "rsa2048", "ed25519"}
	roots := rootsOf(f, names...)
	for _, dir := range fuzzExport(f, names...) {
		f.Add(seedFile(f, filepath.Join(dir, "mirror.dsse.json")), 1)
	}
	for _, s := range testutil.CorpusSeeds(f, "../..", "cases/*/mirror.dsse.json", 1<<20) {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, data []byte, threshold int) {
		res, err := sign.VerifyDSSE(data, mirrorPayloadType, roots, testNow, threshold)
		if err != nil {
			if res.Payload != nil {
				t.Fatal("payload returned with an error")
			}
			return
		}
		if len(res.Accepted) < max(threshold, 1) {
			t.Fatalf("accepted %d keys for a threshold of %d", len(res.Accepted), threshold)
		}
		seen := map[string]bool{}
		for _, k := range res.Accepted {
			if seen[k.DerivedID] {
				t.Fatalf("key %s counted twice", k.ID)
			}
			seen[k.DerivedID] = true
		}
		env, err := sign.ParseEnvelope(data)
		if err != nil || env.PayloadType != mirrorPayloadType {
			t.Fatalf("accepted envelope: %v", err)
		}
	})
}
