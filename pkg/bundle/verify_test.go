package bundle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/internal/strictjson"
	"github.com/stellaops/stellaops-cli/pkg/failure"
	"github.com/stellaops/stellaops-cli/pkg/sign"
	"github.com/stellaops/stellaops-cli/pkg/trust"
)

func TestVerifyDirPasses(t *testing.T) {
	src := sampleSource(t)
	for _, key := range []struct{ name, alg string }{
		{"es256", ""}, {"es384", ""}, {"es512", ""}, {"rsa2048", ""}, {"rsa2048", "RS384"}, {"ed25519", ""}, {"cosign", ""},
	} {
		t.Run(key.name+key.alg, func(t *testing.T) {
			s := testSigner(t, key.name, key.alg)
			dir := exportTo(t, src, s, testCreated, 7)
			r, err := VerifyDir(context.Background(), dir, verifyOpts(testRoots(t, key.name), testNow))
			if err != nil {
				t.Fatalf("%v%s", err, describeProblems(r))
			}
			if !r.Verified || len(r.Problems) != 0 || len(r.Warnings) != 0 {
				t.Errorf("verified %v, problems %d, warnings %v", r.Verified, len(r.Problems), r.Warnings)
			}
			if r.ExportID != "20260301T120000Z" || r.Sequence != 7 || strings.Join(r.Domains, ",") != "community,primary" ||
				strings.Join(r.SignerKeyIDs, ",") != s.KeyID() || r.Manifest == nil {
				t.Errorf("report %+v", r)
			}
			for _, c := range r.Checks {
				if c.Status != statusPass {
					t.Errorf("check %s: %s %s", c.Name, c.Status, c.Detail)
				}
			}
			names := map[string]bool{}
			for _, c := range r.Checks {
				names[c.Name] = true
			}
			for _, want := range []string{CheckDSSE, CheckManifest, CheckValidity, CheckFiles, CheckDigests, CheckChecksums, CheckIndex,
				CheckDomain + " primary", CheckDomain + " community"} {
				if !names[want] {
					t.Errorf("no %q check in the report", want)
				}
			}
		})
	}
}

// TestVerifyTamper is the tamper matrix at library level: each case changes
// a good bundle, and verify must fail with the right class and name the file.
func TestVerifyTamper(t *testing.T) {
	src := sampleSource(t)
	s := testSigner(t, "es256", "")
	good := exportTo(t, src, s, testCreated, 10)
	other := exportTo(t, src, s, testCreated.Add(6*time.Hour), 11)
	roots := testRoots(t, "es256")
	const (
		primary   = "mirror/primary/"
		community = "mirror/community/"
		vexFile   = primary + "vex/openvex/2026-03.json"
	)

	flip := func(rel string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, rel)
			data := readFile(t, p)
			data[len(data)/2] ^= 0x01
			writeFile(t, p, data)
		}
	}
	replaceIn := func(rel, old, new string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, rel)
			data := readFile(t, p)
			if !bytes.Contains(data, []byte(old)) {
				t.Fatalf("%s does not contain %q", rel, old)
			}
			writeFile(t, p, bytes.Replace(data, []byte(old), []byte(new), 1))
		}
	}
	copyFrom := func(from string, pairs ...string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			for i := 0; i < len(pairs); i += 2 {
				writeFile(t, filepath.Join(dir, pairs[i+1]), readFile(t, filepath.Join(from, pairs[i])))
			}
		}
	}
	remove := func(rel string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, rel)); err != nil {
				t.Fatal(err)
			}
		}
	}
	then := func(fs ...func(t *testing.T, dir string)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			for _, f := range fs {
				f(t, dir)
			}
		}
	}
	resigned := func(edit func([]byte) []byte) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) { resign(t, dir, s, edit) }
	}
	manifestEdit := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte {
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("mirror.json does not contain %q", old)
			}
			return bytes.Replace(b, []byte(old), []byte(new), 1)
		}
	}
	expiredRoot := func() *trust.Roots {
		r := testRoots(t, "es256")
		r.Keys[0].NotAfter = testNow.Add(-time.Minute)
		return r
	}()
	futureRoot := func() *trust.Roots {
		r := testRoots(t, "es256")
		r.Keys[0].NotBefore = testNow.Add(time.Minute)
		return r
	}()

	type want struct {
		file string
		err  error // nil: any problem on file
	}
	tests := []struct {
		name       string
		mutate     func(t *testing.T, dir string)
		roots      *trust.Roots
		now        time.Time
		noChecksum bool
		threshold  int
		policy     bool // the class is policy, not verification
		want       []want
	}{
		// A flipped byte in each kind of file.
		{name: "flip mirror.json", mutate: flip(ManifestFile),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "flip mirror.dsse.json", mutate: flip(EnvelopeFile),
			want: []want{{EnvelopeFile, failure.ErrVerification}}},
		{name: "flip SHA256SUMS", mutate: flip(ChecksumsFile),
			want: []want{{ChecksumsFile, failure.ErrVerification}}},
		{name: "flip index.json", mutate: flip(IndexPath),
			want: []want{{IndexPath, ErrDigestMismatch}}},
		{name: "flip manifest.json", mutate: flip(primary + DomainManifestName),
			want: []want{{primary + DomainManifestName, ErrDigestMismatch}}},
		{name: "flip bundle.json", mutate: flip(primary + DomainBundleName),
			want: []want{{primary + DomainBundleName, ErrDigestMismatch}, {primary + DomainJWSName, sign.ErrJWSSignature},
				{primary + DomainSigName, sign.ErrBlobSignature}}},
		{name: "flip bundle.json.jws", mutate: flip(community + DomainJWSName),
			want: []want{{community + DomainJWSName, ErrDigestMismatch}, {community + DomainJWSName, failure.ErrVerification}}},
		{name: "flip bundle.json.sig", mutate: flip(community + DomainSigName),
			want: []want{{community + DomainSigName, ErrDigestMismatch}, {community + DomainSigName, sign.ErrBlobSignature}}},
		{name: "flip a VEX file", mutate: flip(vexFile), want: []want{{vexFile, ErrDigestMismatch}}},

		// Without digests, the signatures alone still catch these.
		{name: "flip bundle.json, checksums off", mutate: flip(primary + DomainBundleName), noChecksum: true,
			want: []want{{primary + DomainJWSName, sign.ErrJWSSignature}, {primary + DomainSigName, sign.ErrBlobSignature}}},
		{name: "JWS from another domain, checksums off", mutate: copyFrom(good, community+DomainJWSName, primary+DomainJWSName), noChecksum: true,
			want: []want{{primary + DomainJWSName, sign.ErrJWSSignature}}},
		{name: "domain files from another export, checksums off", noChecksum: true,
			mutate: copyFrom(other, primary+DomainManifestName, primary+DomainManifestName, primary+DomainBundleName, primary+DomainBundleName,
				primary+DomainJWSName, primary+DomainJWSName, primary+DomainSigName, primary+DomainSigName),
			want: []want{{primary + DomainManifestName, ErrMalformed}}},

		// Truncated, missing and extra files.
		{name: "truncated bundle.json", mutate: func(t *testing.T, dir string) {
			p := filepath.Join(dir, primary+DomainBundleName)
			if err := os.Truncate(p, int64(len(readFile(t, p))/2)); err != nil {
				t.Fatal(err)
			}
		}, want: []want{{primary + DomainBundleName, ErrSizeMismatch}, {primary + DomainJWSName, sign.ErrJWSSignature}}},
		{name: "empty VEX file", mutate: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, vexFile), nil) },
			want: []want{{vexFile, ErrSizeMismatch}}},
		{name: "missing VEX file", mutate: remove(vexFile), want: []want{{vexFile, ErrMissingFile}}},
		{name: "missing bundle.json.jws", mutate: remove(primary + DomainJWSName), want: []want{{primary + DomainJWSName, ErrMissingFile}}},
		{name: "missing index.json", mutate: remove(IndexPath), want: []want{{IndexPath, ErrMissingFile}}},
		{name: "missing mirror.dsse.json", mutate: remove(EnvelopeFile), want: []want{{EnvelopeFile, ErrMissingFile}}},
		{name: "missing mirror.json", mutate: remove(ManifestFile), want: []want{{ManifestFile, ErrMissingFile}}},
		{name: "missing SHA256SUMS", mutate: remove(ChecksumsFile), want: []want{{ChecksumsFile, ErrMissingFile}}},
		{name: "extra VEX file", mutate: copyFrom(good, vexFile, primary+"vex/openvex/2026-05.json"),
			want: []want{{primary + "vex/openvex/2026-05.json", ErrExtraFile}}},
		{name: "extra file at the top", mutate: copyFrom(good, ChecksumsFile, "SHA256SUMS.orig"),
			want: []want{{"SHA256SUMS.orig", ErrExtraFile}}},
		{name: "extra symlink", mutate: func(t *testing.T, dir string) {
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, primary+"vex/passwd.json")); err != nil {
				t.Fatal(err)
			}
		}, want: []want{{primary + "vex/passwd.json", ErrUnsafePath}}},
		{name: "listed file replaced by a symlink", mutate: func(t *testing.T, dir string) {
			p := filepath.Join(dir, vexFile)
			if err := os.Rename(p, p+".real"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Base(p)+".real", p); err != nil {
				t.Fatal(err)
			}
		}, want: []want{{vexFile, ErrUnsafePath}}},

		// Mix-and-match between domains and exports.
		{name: "JWS from another domain", mutate: copyFrom(good, community+DomainJWSName, primary+DomainJWSName),
			want: []want{{primary + DomainJWSName, ErrDigestMismatch}, {primary + DomainJWSName, sign.ErrJWSSignature}}},
		{name: ".sig from another domain", mutate: copyFrom(good, community+DomainSigName, primary+DomainSigName),
			want: []want{{primary + DomainSigName, sign.ErrBlobSignature}}},
		{name: "bundle.json with its signatures from another domain", mutate: copyFrom(good,
			community+DomainBundleName, primary+DomainBundleName, community+DomainJWSName, primary+DomainJWSName,
			community+DomainSigName, primary+DomainSigName),
			want: []want{{primary + DomainBundleName, ErrSizeMismatch}}},
		{name: "bundle.json with its signatures from another domain, checksums off", noChecksum: true, mutate: copyFrom(good,
			community+DomainBundleName, primary+DomainBundleName, community+DomainJWSName, primary+DomainJWSName,
			community+DomainSigName, primary+DomainSigName),
			want: []want{{primary + DomainBundleName, ErrMalformed}}},
		{name: "mirror.json and envelope from another export", mutate: copyFrom(other, ManifestFile, ManifestFile, EnvelopeFile, EnvelopeFile),
			want: []want{{IndexPath, ErrDigestMismatch}, {ChecksumsFile, failure.ErrVerification}}},
		{name: "mirror.json alone from another export", mutate: copyFrom(other, ManifestFile, ManifestFile),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "envelope alone from another export", mutate: copyFrom(other, EnvelopeFile, EnvelopeFile),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "domain from another export", mutate: copyFrom(other, primary+DomainManifestName, primary+DomainManifestName,
			primary+DomainBundleName, primary+DomainBundleName, primary+DomainJWSName, primary+DomainJWSName,
			primary+DomainSigName, primary+DomainSigName),
			want: []want{{primary + DomainBundleName, ErrDigestMismatch}, {primary + DomainManifestName, ErrDigestMismatch}}},

		// Time and keys.
		{name: "expired", now: testCreated.Add(DefaultExpiry), policy: true, want: []want{{ManifestFile, ErrExpired}}},
		{name: "not yet valid", now: testCreated.Add(-ClockSkew - time.Second), policy: true, want: []want{{ManifestFile, ErrNotYetValid}}},
		{name: "untrusted key", roots: testRoots(t, "other-es256"),
			want: []want{{EnvelopeFile, sign.ErrDSSESignature}, {primary + DomainJWSName, sign.ErrUntrustedKey}, {primary + DomainSigName, sign.ErrBlobSignature}}},
		{name: "trusted key expired", roots: expiredRoot, policy: true,
			want: []want{{EnvelopeFile, trust.ErrKeyExpired}, {primary + DomainJWSName, trust.ErrKeyExpired}, {primary + DomainSigName, trust.ErrKeyExpired}}},
		{name: "trusted key expired and mirror.json forged", roots: expiredRoot,
			mutate: then(replaceIn(ManifestFile, `"sequence": 10,`, `"sequence": 99,`), rewriteChecksums),
			want:   []want{{EnvelopeFile, trust.ErrKeyExpired}, {ManifestFile, ErrMalformed}}},
		{name: "trusted key not yet valid and mirror.json forged", roots: futureRoot,
			mutate: then(replaceIn(ManifestFile, `"sequence": 10,`, `"sequence": 99,`), rewriteChecksums),
			want:   []want{{ManifestFile, ErrMalformed}}},
		{name: "trusted key not yet valid", roots: futureRoot, policy: true,
			want: []want{{EnvelopeFile, trust.ErrNotYetValid}}},
		{name: "expired bundle and untrusted key is verification", roots: testRoots(t, "other-es256"), now: testCreated.Add(DefaultExpiry),
			want: []want{{EnvelopeFile, sign.ErrDSSESignature}, {ManifestFile, ErrExpired}}},
		{name: "threshold of two distinct keys", threshold: 2, want: []want{{EnvelopeFile, sign.ErrDSSESignature}}},

		// Signed documents that are malformed, re-signed so that only their content is wrong.
		{name: "re-signed mirror.json with a duplicate key", mutate: resigned(manifestEdit(`"sequence": 10,`, `"sequence": 10, "sequence": 99,`)),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "re-signed mirror.json with a case-variant key", mutate: resigned(manifestEdit(`"sequence": 10,`, `"sequence": 10, "Sequence": 99,`)),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "re-signed mirror.json with an escaped duplicate", mutate: resigned(manifestEdit(`"sequence": 10,`, `"sequence": 10, "\u0073equence": 99,`)),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "re-signed mirror.json with a case-variant field", mutate: resigned(manifestEdit(`"exportId"`, `"ExportID"`)),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "re-signed mirror.json with an unknown field", mutate: resigned(manifestEdit(`"sequence": 10,`, `"sequence": 10, "trustAll": true,`)),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "re-signed mirror.json with trailing data", mutate: resigned(func(b []byte) []byte { return append(b, "{}"...) }),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "re-signed mirror.json listing a path with ..", mutate: resigned(manifestEdit(`"path": "mirror/index.json"`, `"path": "mirror/../mirror/index.json"`)),
			want: []want{{"mirror/../mirror/index.json", ErrUnsafePath}}},
		{name: "re-signed mirror.json listing an absolute path", mutate: resigned(manifestEdit(`"path": "mirror/community/bundle.json"`, `"path": "/etc/passwd"`)),
			want: []want{{"/etc/passwd", ErrUnsafePath}}},
		{name: "re-signed mirror.json with case-colliding paths", mutate: then(copyFrom(good, vexFile, primary+"vex/OpenVEX/2026-03.json"), resigned(nil)),
			want: []want{{primary + "vex/openvex/2026-03.json", ErrUnsafePath}}},
		{name: "re-signed mirror.json with a bad exportId", mutate: resigned(manifestEdit(`"exportId": "20260301T120000Z"`, `"exportId": "../../latest"`)),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "re-signed mirror.json with schemaVersion 2", mutate: resigned(manifestEdit(`"schemaVersion": 1`, `"schemaVersion": 2`)),
			want: []want{{ManifestFile, ErrMalformed}}},
		{name: "re-signed bundle.json with a duplicate key", mutate: then(
			replaceIn(primary+DomainBundleName, `"domainId":"primary",`, `"domainId":"primary","domainId":"community",`), resigned(nil)),
			want: []want{{primary + DomainBundleName, ErrMalformed}}},
		{name: "re-signed bundle.json with a case-variant key", mutate: then(
			replaceIn(primary+DomainBundleName, `"domainId":"primary",`, `"domainId":"primary","DomainId":"community",`), resigned(nil)),
			want: []want{{primary + DomainBundleName, ErrMalformed}}},
		{name: "re-signed bundle.json of another domain id", mutate: then(
			replaceIn(primary+DomainBundleName, `"domainId":"primary",`, `"domainId":"community",`), resigned(nil)),
			want: []want{{primary + DomainBundleName, ErrMalformed}}},
		{name: "re-signed bundle.json vouching for other VEX bytes", mutate: then(flip(vexFile), resigned(nil)),
			want: []want{{vexFile, ErrDigestMismatch}}},
		{name: "re-signed bundle.json with an export path escaping", mutate: then(
			replaceIn(primary+DomainBundleName, `"path":"vex/openvex/2026-03.json"`, `"path":"vex/../../community/bundle.json"`), resigned(nil)),
			want: []want{{primary + DomainBundleName, ErrMalformed}, {vexFile, ErrExtraFile}}},
		{name: "re-signed manifest.json with an unknown field", mutate: then(
			replaceIn(primary+DomainManifestName, `"jwsPath"`, `"trusted": true, "jwsPath"`), resigned(nil)),
			want: []want{{primary + DomainManifestName, ErrMalformed}}},
		{name: "re-signed index.json from another export", mutate: then(copyFrom(other, IndexPath, IndexPath), resigned(nil)),
			want: []want{{IndexPath, ErrMalformed}}},
		{name: "alg none JWS with mirror.json re-signed", mutate: then(func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, primary+DomainJWSName), []byte("eyJhbGciOiJub25lIiwia2lkIjoiayIsImI2NCI6ZmFsc2UsImNyaXQiOlsiYjY0Il19.."))
		}, func(t *testing.T, dir string) { resignManifestOnly(t, dir, s) }),
			want: []want{{primary + DomainJWSName, sign.ErrJWSHeader}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyTree(t, good)
			if tt.mutate != nil {
				tt.mutate(t, dir)
			}
			r := tt.roots
			if r == nil {
				r = roots
			}
			now := testNow
			if !tt.now.IsZero() {
				now = tt.now
			}
			opts := verifyOpts(r, now)
			opts.VerifyChecksums = !tt.noChecksum
			opts.Threshold = tt.threshold
			rep, err := VerifyDir(context.Background(), dir, opts)
			if err == nil {
				t.Fatal("verified")
			}
			if rep.Verified {
				t.Error("report says verified")
			}
			if !errors.Is(err, rep.Err()) && err.Error() != rep.Err().Error() {
				t.Errorf("returned %v, report says %v", err, rep.Err())
			}
			wantClass, wantCode := failure.ErrVerification, failure.ExitVerification
			if tt.policy {
				wantClass, wantCode = failure.ErrPolicy, failure.ExitPolicy
			}
			if !errors.Is(err, wantClass) || failure.Code(err) != wantCode {
				t.Errorf("error %q: exit code %d, want %d%s", err, failure.Code(err), wantCode, describeProblems(rep))
			}
			for _, w := range tt.want {
				if !hasProblem(rep, w.file, w.err) {
					t.Errorf("no problem on %s matching %v%s", w.file, w.err, describeProblems(rep))
				}
			}
			if strings.HasPrefix(tt.name, "re-signed") && hasProblem(rep, EnvelopeFile, nil) {
				t.Errorf("re-signing left the envelope invalid%s", describeProblems(rep))
			}
			for _, p := range rep.Problems {
				if p.File == "" || p.Check == "" || p.Message == "" {
					t.Errorf("problem without file, check or message: %+v", p)
				}
				if (p.Class == "policy") != (errors.Is(p.err, failure.ErrPolicy) && !errors.Is(p.err, failure.ErrVerification)) {
					t.Errorf("problem %s classed %s: %v", p.File, p.Class, p.err)
				}
			}
		})
	}
}

// rewriteChecksums makes SHA256SUMS agree with the files as they are, as
// anyone can: it is a convenience, not a signature.
func rewriteChecksums(t *testing.T, dir string) {
	t.Helper()
	var sums []FileEntry
	for rel, data := range readTree(t, dir) {
		if rel != ChecksumsFile {
			d := HashBytes(data)
			sums = append(sums, FileEntry{Path: rel, Size: d.Size, SHA256: d.SHA256})
		}
	}
	writeFile(t, filepath.Join(dir, ChecksumsFile), FormatChecksums(sums))
}

// resignManifestOnly lists the current files in mirror.json and signs it,
// leaving every domain's signatures as they are.
func resignManifestOnly(t *testing.T, dir string, s *sign.Signer) {
	t.Helper()
	var m Manifest
	if err := strictjson.Unmarshal(readFile(t, filepath.Join(dir, ManifestFile)), &m); err != nil {
		t.Fatal(err)
	}
	for i, f := range m.Files {
		d := HashBytes(readFile(t, filepath.Join(dir, f.Path)))
		m.Files[i].Size, m.Files[i].SHA256 = d.Size, d.SHA256
	}
	mjson, err := MarshalDocument(m)
	if err != nil {
		t.Fatal(err)
	}
	env, err := sign.SignDSSE(context.Background(), PayloadType, mjson, s)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, ManifestFile), mjson)
	writeFile(t, filepath.Join(dir, EnvelopeFile), env)
	sums := append([]FileEntry(nil), m.Files...)
	for _, name := range []string{ManifestFile, EnvelopeFile} {
		d := HashBytes(readFile(t, filepath.Join(dir, name)))
		sums = append(sums, FileEntry{Path: name, Size: d.Size, SHA256: d.SHA256})
	}
	writeFile(t, filepath.Join(dir, ChecksumsFile), FormatChecksums(sums))
}

func TestVerifyBoundaries(t *testing.T) {
	s := testSigner(t, "ed25519", "")
	dir := exportTo(t, sampleSource(t), s, testCreated, 0)
	roots := testRoots(t, "ed25519")
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"at generatedAt minus the clock skew", testCreated.Add(-ClockSkew), nil},
		{"a second earlier", testCreated.Add(-ClockSkew - time.Second), ErrNotYetValid},
		{"at generatedAt", testCreated, nil},
		{"a second before expiresAt", testCreated.Add(DefaultExpiry - time.Second), nil},
		{"at expiresAt", testCreated.Add(DefaultExpiry), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyDir(context.Background(), dir, verifyOpts(roots, tt.now))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, failure.ErrPolicy) || errors.Is(err, failure.ErrVerification) {
				t.Errorf("error %v, want policy", err)
			}
		})
	}
}

func TestVerifyOptionsAndInvocation(t *testing.T) {
	s := testSigner(t, "es256", "")
	dir := exportTo(t, sampleSource(t), s, testCreated, 0)
	roots := testRoots(t, "es256")

	// Turning a check off is reported as a skip and a warning.
	opts := verifyOpts(roots, testNow)
	opts.VerifyDSSE, opts.VerifyChecksums = false, false
	r, err := VerifyDir(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) != 2 {
		t.Errorf("warnings %v", r.Warnings)
	}

	// Digests computed by the caller replace hashing; a wrong one is caught.
	digests := NewDigestSet(0)
	for rel, data := range readTree(t, dir) {
		digests.AddDigest(rel, HashBytes(data))
	}
	opts = verifyOpts(roots, testNow)
	opts.Digests = digests
	if _, err := VerifyDir(context.Background(), dir, opts); err != nil {
		t.Fatal(err)
	}
	digests.AddDigest("mirror/index.json", HashBytes([]byte("x")))
	r, err = VerifyDir(context.Background(), dir, opts)
	if !errors.Is(err, failure.ErrVerification) || !hasProblem(r, "mirror/index.json", ErrSizeMismatch) {
		t.Errorf("wrong caller digest: %v%s", err, describeProblems(r))
	}

	for _, tt := range []struct {
		name string
		dir  string
		opts VerifyOptions
	}{
		{"no trust roots", dir, verifyOpts(nil, testNow)},
		{"empty trust roots", dir, verifyOpts(&trust.Roots{}, testNow)},
		{"missing folder", filepath.Join(t.TempDir(), "absent"), verifyOpts(roots, testNow)},
		{"a file", filepath.Join(dir, ManifestFile), verifyOpts(roots, testNow)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyDir(context.Background(), tt.dir, tt.opts)
			if !errors.Is(err, failure.ErrUsage) {
				t.Errorf("error %v, want usage", err)
			}
		})
	}

	// A cancelled context interrupts hashing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := VerifyDir(ctx, dir, verifyOpts(roots, testNow)); !errors.Is(err, failure.ErrInterrupted) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestParseChecksums(t *testing.T) {
	h := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		in   string
		want map[string]string
		bad  bool
	}{
		{name: "text mode", in: h + "  mirror.json\n", want: map[string]string{"mirror.json": h}},
		{name: "binary mode", in: h + " *mirror.json\n", want: map[string]string{"mirror.json": h}},
		{name: "upper-case hex", in: strings.ToUpper(h) + "  a\n", want: map[string]string{"a": h}},
		{name: "blank lines", in: "\n" + h + "  a\n\n", want: map[string]string{"a": h}},
		{name: "name with spaces", in: h + "  a b\n", want: map[string]string{"a b": h}},
		{name: "no final newline", in: h + "  a", want: map[string]string{"a": h}},
		{name: "empty", in: "", want: map[string]string{}},
		{name: "short digest", in: h[:62] + "  a\n", bad: true},
		{name: "not hex", in: strings.Repeat("zz", 32) + "  a\n", bad: true},
		{name: "one space", in: h + " a\n", bad: true},
		{name: "repeated name", in: h + "  a\n" + h + "  a\n", bad: true},
		{name: "BSD format", in: "SHA256 (a) = " + h + "\n", bad: true},
		{name: "line too long", in: h + "  " + strings.Repeat("a", 70<<10) + "\n", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseChecksums([]byte(tt.in))
			if tt.bad {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("got %v, %v; want ErrMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v", got)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"mirror.json", "mirror/primary/vex/openvex/2026-03.json", "a/b.c-d_e", "vex/é.json"} {
		if err := CheckPath(p); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
	for _, p := range []string{"", "/abs", "a/../b", "..", ".", "a/./b", "a//b", "a/", "a\\b", "a\x00b", "a\nb", "a\x7fb",
		"\xff", strings.Repeat("a", 1025)} {
		if err := CheckPath(p); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%q accepted (%v)", p, err)
		}
	}
	if FoldPath("Mirror/VEX/Caf\u00e9.json") != FoldPath("mirror/vex/cafe\u0301.json") {
		t.Error("FoldPath does not fold case and normalisation together")
	}
}
