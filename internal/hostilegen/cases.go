package main

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// Generate builds the corpus from the TEST-ONLY keys in keysDir.
func Generate(keysDir string) (Files, error) {
	g, err := newGen(keysDir)
	if err != nil {
		return nil, err
	}
	if g.tmp, err = os.MkdirTemp("", "hostilegen-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(g.tmp)
	if err := g.writeSource(); err != nil {
		return nil, err
	}
	if g.base, err = g.export(g.k, 10, created10, 0); err != nil {
		return nil, err
	}
	if g.next, err = g.export(g.k, 11, created11, 0); err != nil {
		return nil, err
	}
	if err := g.rootsFiles(); err != nil {
		return nil, err
	}
	g.putTree("base/seq10", g.base)
	g.putTree("base/seq11", g.next)
	steps := []func() error{
		g.controlCases, g.flipCases, g.truncateCases, g.missingCases, g.extraCases,
		g.jsonCases, g.manifestCases, g.jwsCases, g.dsseCases, g.policyCases, g.mixCases, g.rootsCases,
		g.archiveCases, g.htpasswdCases,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	g.files["INDEX.tsv"] = indexTSV(g.cases)
	g.files["README.md"] = []byte(readme)
	return g.files, nil
}

// rootsFiles writes the trust-roots files the cases use.
func (g *gen) rootsFiles() error {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(g.keysDir, name)) }
	es256, err := read("es256.pub")
	if err != nil {
		return err
	}
	rsa1024, err := read("rsa1024.pub")
	if err != nil {
		return err
	}
	other, err := read("other-es256.pub")
	if err != nil {
		return err
	}
	priv, err := read("es256.pem")
	if err != nil {
		return err
	}
	withHeaders := func(pub []byte, headers ...string) []byte {
		s := string(pub)
		return []byte(strings.Replace(s, "-----BEGIN PUBLIC KEY-----\n", "-----BEGIN PUBLIC KEY-----\n"+strings.Join(headers, "\n")+"\n\n", 1))
	}
	g.files["roots/es256.pem"] = es256
	g.files["roots/rsa1024.pem"] = rsa1024
	g.files["roots/es256-and-rsa1024.pem"] = append(append([]byte{}, es256...), rsa1024...)
	g.files["roots/es256-and-other.pem"] = append(append([]byte{}, es256...), other...)
	g.files["roots/es256-alias.pem"] = withHeaders(es256, "Key-Id: mirror-signer")
	g.files["roots/es256-until-2026-03-15T12.pem"] = withHeaders(es256, "Not-After: 2026-03-15T12:00:00Z")
	g.files["roots/es256-from-2026-03-20.pem"] = withHeaders(es256, "Not-Before: 2026-03-20T00:00:00Z")
	g.files["roots/es256-revoked.pem"] = withHeaders(es256, "Revoked: 2026-03-15T12:00:00Z")
	g.files["roots/private-key-only.pem"] = priv
	g.files["roots/empty.pem"] = []byte{}
	g.files["roots/garbage.pem"] = []byte("\x00\xff\xfe not PEM at all \x1b[31m\n")
	g.files["roots/same-id-two-keys.pem"] = append(withHeaders(es256, "Key-Id: shared"), withHeaders(other, "Key-Id: shared")...)
	return nil
}

func (g *gen) controlCases() error {
	g.add("control-dir", 0, "verified: export 20260315T010000Z", "the next export as a folder: verifies and imports",
		casePath("base/seq11"), importMsg("imported export 20260315T010000Z"))
	g.add("control-already-active", 0, "verified: export 20260315T000000Z", "the seed export again: already active, nothing changes",
		casePath("base/seq10"), importMsg("already active"))
	return nil
}

// flipCases flips one bit in the middle of every file of the bundle.
func (g *gen) flipCases() error {
	for _, name := range g.base.names() {
		t := g.base.clone()
		t[name][len(t[name])/2] ^= 0x01
		msg := name + ": digests: digest mismatch"
		switch name {
		case bundle.ManifestFile:
			msg = "not the bytes mirror.dsse.json signed"
		case bundle.EnvelopeFile:
			msg = "DSSE signatures do not meet the threshold"
		case bundle.ChecksumsFile:
			msg = "SHA256SUMS: sha256sums: digest mismatch"
		}
		g.dirCase("flip-"+caseName(name), t, 2, msg, "one bit flipped in the middle of "+name)
	}
	return nil
}

func caseName(p string) string {
	p = strings.TrimPrefix(p, "mirror/")
	return strings.NewReplacer("/", "-", ".json", "", ".", "-").Replace(p)
}

func (g *gen) truncateCases() error {
	for _, c := range []struct {
		name string
		keep func(int) int
		msg  string
	}{
		{bundle.ManifestFile, func(n int) int { return n / 2 }, "not the bytes mirror.dsse.json signed"},
		{bundle.EnvelopeFile, func(n int) int { return n / 2 }, "malformed DSSE envelope"},
		{bundle.ChecksumsFile, func(n int) int { return n / 2 }, "is not '<sha256>  <path>'"},
		{"mirror/primary/bundle.json", func(n int) int { return n - 1 }, "mirror/primary/bundle.json: digests: size mismatch"},
		{"mirror/primary/bundle.json.jws", func(n int) int { return n - 2 }, "mirror/primary/bundle.json.jws: digests: size mismatch"},
		{"mirror/primary/vex/openvex/2026-03.json", func(int) int { return 0 }, "2026-03.json: digests: size mismatch"},
	} {
		t := g.base.clone()
		n := c.keep(len(t[c.name]))
		t[c.name] = t[c.name][:n]
		g.dirCase("truncated-"+caseName(c.name), t, 2, c.msg, fmt.Sprintf("%s cut to %d bytes", c.name, n))
	}
	return nil
}

func (g *gen) missingCases() error {
	for _, name := range []string{bundle.ManifestFile, bundle.EnvelopeFile, bundle.ChecksumsFile, bundle.IndexPath,
		"mirror/primary/bundle.json", "mirror/primary/bundle.json.jws", "mirror/primary/bundle.json.sig",
		"mirror/community/manifest.json", "mirror/community/vex/csaf/sample.json"} {
		t := g.base.clone()
		delete(t, name)
		g.dirCase("missing-"+caseName(name), t, 2, name+": ", name+" removed")
	}
	t := g.base.clone()
	for _, name := range t.names() {
		if strings.HasPrefix(name, "mirror/community/") {
			delete(t, name)
		}
	}
	g.dirCase("missing-domain-folder", t, 2, "listed in mirror.json but not in the bundle", "the whole mirror/community folder removed")
	return nil
}

func (g *gen) extraCases() error {
	for _, c := range []struct{ name, file, body, desc string }{
		{"extra-top-file", "README.txt", "read me\n", "an unlisted file beside mirror.json"},
		{"extra-vex-file", "mirror/primary/vex/openvex/2026-04.json", source["primary/vex/openvex/2026-03.json"] + "\n", "an unlisted VEX file in a domain"},
		{"extra-appledouble", "._mirror.json", "\x00\x05\x16\x07", "a macOS AppleDouble file, as a USB stick written on a Mac carries"},
		{"extra-domain-folder", "mirror/evil/bundle.json", "{}\n", "an unlisted domain folder"},
		{"extra-unlisted-rotation", "keys/rotate-evil.json", `{"payloadType":"x","payload":"","signatures":[]}` + "\n", "an unlisted, unsigned rotation statement under keys/"},
	} {
		t := g.base.clone()
		t[c.file] = []byte(c.body)
		msg := c.file + ": file-list: unlisted file"
		if strings.HasPrefix(c.file, "keys/") {
			msg = "rotation statement refused"
		}
		g.dirCase(c.name, t, 2, msg, c.desc)
	}
	return nil
}

// jsonCases hide a second value in every signed JSON document behind a
// duplicate, case-variant or escaped key, and re-sign what covers it, so the
// strict parser is what refuses it.
func (g *gen) jsonCases() error {
	docs := []struct {
		name, file, anchor, key string
	}{
		{"mirror", bundle.ManifestFile, `"sequence": 10,`, "sequence"},
		{"index", bundle.IndexPath, `"exportId": "20260315T000000Z",`, "exportId"},
		{"manifest", "mirror/primary/manifest.json", `"domainId": "primary",`, "domainId"},
	}
	for _, d := range docs {
		other := `"999"`
		if d.key == "sequence" {
			other = "999"
		}
		for _, trick := range []struct {
			kind, key, msg string
		}{
			{"dupkey", d.key, "duplicate key"},
			{"casekey", strings.ToUpper(d.key[:1]) + d.key[1:], "differ only by case"},
			{"escapedkey", `\u00` + fmt.Sprintf("%x", d.key[0]) + d.key[1:], "duplicate key"},
		} {
			t := g.base.clone()
			t[d.file] = insertAfter(t[d.file], d.anchor, "\n  \""+trick.key+"\": "+other+",")
			g.dirCase("json-"+d.name+"-"+trick.kind, g.seal(t, d.file), 2, trick.msg,
				fmt.Sprintf("%s carries a second %q (%s), re-signed", d.file, d.key, trick.kind))
		}
	}
	// bundle.json is one line per advisory; its keys are compact.
	for _, trick := range []struct{ kind, key, msg string }{
		{"dupkey", "domainId", "duplicate key"},
		{"casekey", "DomainId", "differ only by case"},
		{"escapedkey", `\u0064omainId`, "duplicate key"},
	} {
		t := g.base.clone()
		f := "mirror/primary/bundle.json"
		t[f] = insertAfter(t[f], `"domainId":"primary",`, `"`+trick.key+`":"community",`)
		g.dirCase("json-bundle-"+trick.kind, g.seal(t), 2, trick.msg,
			fmt.Sprintf("%s carries a second \"domainId\" (%s), re-signed (JWS, .sig, manifests, mirror.json)", f, trick.kind))
	}
	// mirror.json with a key that differs from the field only by case: Go's
	// encoding/json alone would take it for the field.
	t := g.base.clone()
	t[bundle.ManifestFile] = replaceOnce(t[bundle.ManifestFile], `"sequence":`, `"Sequence":`)
	g.dirCase("json-mirror-case-variant-field", g.seal(t, bundle.ManifestFile), 2, `unknown field "Sequence"`,
		"mirror.json spells \"sequence\" as \"Sequence\" (no duplicate), re-signed")

	// The DSSE envelope: a second payload (a forged mirror.json) behind a
	// duplicate, case-variant or escaped key.
	forged := base64.StdEncoding.EncodeToString(g.next[bundle.ManifestFile])
	for _, trick := range []struct{ kind, key, msg string }{
		{"dupkey", "payload", "duplicate key"},
		{"casekey", "Payload", "differ only by case"},
		{"escapedkey", `p\u0061yload`, "duplicate key"},
	} {
		t := g.base.clone()
		t[bundle.EnvelopeFile] = insertAfter(t[bundle.EnvelopeFile], `"payloadType": "`+bundle.PayloadType+`",`,
			"\n  \""+trick.key+"\": \""+forged+"\",")
		g.dirCase("json-dsse-"+trick.kind, g.seal(t, bundle.EnvelopeFile), 2, trick.msg,
			"mirror.dsse.json carries a second payload (another export's mirror.json) behind a "+trick.kind)
	}

	// The JWS protected header: alg "none" behind a duplicate, case-variant
	// or escaped key; each JWS is signed by the trusted key.
	kid := `"kid":"` + kidOf(g.k) + `"`
	for _, trick := range []struct{ kind, hdr, msg string }{
		{"dupkey", jwsHeader(`"alg":"ES256"`, kid, `"b64":false`, `"crit":["b64"]`, `"alg":"none"`), "duplicate key"},
		{"casekey", jwsHeader(`"alg":"ES256"`, kid, `"b64":false`, `"crit":["b64"]`, `"Alg":"none"`), "differ only by case"},
		{"escapedkey", jwsHeader(`"alg":"ES256"`, kid, `"b64":false`, `"crit":["b64"]`, `"\u0061lg":"none"`), "duplicate key"},
	} {
		g.jwsCase("json-jws-"+trick.kind, jwsSign(g.kPriv, trick.hdr, g.base["mirror/primary/bundle.json"], crypto.SHA256, false),
			trick.msg, "the JWS header hides \"alg\":\"none\" behind a "+trick.kind)
	}

	// Deep nesting, trailing data, invalid UTF-8, a byte-order mark, a
	// number too large, all in mirror.json and re-signed.
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	for _, c := range []struct {
		name string
		edit func([]byte) []byte
		msg  string
		desc string
	}{
		{"json-mirror-deep", func(b []byte) []byte { return insertAfter(b, `"sequence": 10,`, "\n  \"x\": "+deep+",") },
			"nesting deeper than 64", "mirror.json nests 10,000 arrays, re-signed"},
		{"json-mirror-trailing-value", func(b []byte) []byte { return append(b, []byte(`{"sequence": 999}`+"\n")...) },
			"data after the JSON value", "mirror.json is followed by a second JSON object, re-signed"},
		{"json-mirror-invalid-utf8", func(b []byte) []byte {
			return replaceOnce(b, `"producer": "stellaops-cli hostile corpus"`, "\"producer\": \"\xff\xfe\"")
		},
			"invalid UTF-8", "mirror.json holds bytes that are not UTF-8, re-signed"},
		{"json-mirror-bom", func(b []byte) []byte { return append([]byte("\xef\xbb\xbf"), b...) },
			"malformed signed document", "mirror.json starts with a UTF-8 byte-order mark, re-signed"},
		{"json-mirror-huge-number", func(b []byte) []byte {
			return replaceOnce(b, `"sequence": 10,`, `"sequence": 100000000000000000000000000000,`)
		},
			"malformed signed document", "mirror.json's sequence overflows 64 bits, re-signed"},
		{"json-mirror-float-sequence", func(b []byte) []byte { return replaceOnce(b, `"sequence": 10,`, `"sequence": 10.5,`) },
			"malformed signed document", "mirror.json's sequence is not an integer, re-signed"},
		{"json-mirror-null-files", func(b []byte) []byte {
			i := strings.Index(string(b), `"files": [`)
			return append(b[:i:i], []byte("\"files\": null\n}\n")...)
		}, "does not list mirror/index.json", "mirror.json lists no files (null), re-signed"},
	} {
		t := g.base.clone()
		t[bundle.ManifestFile] = c.edit(t[bundle.ManifestFile])
		g.dirCase(c.name, g.seal(t, bundle.ManifestFile), 2, c.msg, c.desc)
	}
	// An oversized JWS (the limit is 64 KiB).
	t = g.base.clone()
	t["mirror/primary/bundle.json.jws"] = append(t["mirror/primary/bundle.json.jws"], []byte(strings.Repeat("A", 70<<10))...)
	g.dirCase("oversized-jws", g.seal(t, "mirror/primary/bundle.json.jws"), 2, "larger than 65536 bytes", "bundle.json.jws padded to 70 KiB, listed in a re-signed mirror.json")
	return nil
}

// manifestCases put unsafe or inconsistent entries in a re-signed
// mirror.json.
func (g *gen) manifestCases() error {
	entry := func(p string, size int, sum string) string {
		return fmt.Sprintf("\n    {\n      \"path\": %q,\n      \"size\": %d,\n      \"sha256\": %q\n    },", p, size, sum)
	}
	zero := sha(nil)
	for _, c := range []struct {
		name string
		edit func([]byte) []byte
		msg  string
		desc string
	}{
		{"manifest-path-dotdot", func(b []byte) []byte { return insertAfter(b, `"files": [`, entry("../outside.json", 0, zero)) },
			"unsafe path", "mirror.json lists ../outside.json"},
		{"manifest-path-absolute", func(b []byte) []byte { return insertAfter(b, `"files": [`, entry("/etc/passwd", 0, zero)) },
			"absolute path", "mirror.json lists /etc/passwd"},
		{"manifest-path-backslash", func(b []byte) []byte {
			return insertAfter(b, `"files": [`, "\n    {\n      \"path\": \"..\\\\..\\\\evil.json\",\n      \"size\": 0,\n      \"sha256\": \""+zero+"\"\n    },")
		}, "backslash or NUL", `mirror.json lists ..\..\evil.json`},
		{"manifest-path-nul", func(b []byte) []byte {
			return insertAfter(b, `"files": [`, "\n    {\n      \"path\": \"SHA256SUMS\\u0000.json\",\n      \"size\": 0,\n      \"sha256\": \""+zero+"\"\n    },")
		}, "backslash or NUL", `mirror.json lists a path with an escaped NUL`},
		{"manifest-path-control", func(b []byte) []byte {
			return insertAfter(b, `"files": [`, "\n    {\n      \"path\": \"\\u001b[31mred.json\",\n      \"size\": 0,\n      \"sha256\": \""+zero+"\"\n    },")
		}, "control character", `mirror.json lists a path with an escape sequence`},
		{"manifest-lists-itself", func(b []byte) []byte { return insertAfter(b, `"files": [`, entry("SHA256SUMS", 0, zero)) },
			"cannot list itself", "mirror.json lists SHA256SUMS"},
		{"manifest-duplicate-entry", func(b []byte) []byte {
			e := entry("mirror/community/bundle.json", len(g.base["mirror/community/bundle.json"]), sha(g.base["mirror/community/bundle.json"]))
			return insertAfter(b, `"files": [`, e+e)
		}, "not sorted by path or repeated", "mirror.json lists one file twice"},
		{"manifest-case-collision", func(b []byte) []byte {
			i := strings.Index(string(b), "\n    {\n      \"path\": \"mirror/community/bundle.json\"")
			return []byte(string(b[:i]) + entry("MIRROR/community/bundle.json", 0, zero) + string(b[i:]))
		}, "collide on case-insensitive", "mirror.json lists MIRROR/community/bundle.json beside mirror/..."},
		{"manifest-negative-size", func(b []byte) []byte {
			return replaceOnce(b, fmt.Sprintf(`"size": %d,`, len(g.base[bundle.IndexPath])), `"size": -1,`)
		}, "size or sha256 malformed", "mirror.json gives index.json a size of -1"},
		{"manifest-uppercase-digest", func(b []byte) []byte {
			s := sha(g.base[bundle.IndexPath])
			return replaceOnce(b, s, strings.ToUpper(s))
		}, "size or sha256 malformed", "mirror.json gives index.json's digest in upper case"},
		{"manifest-schema-version", func(b []byte) []byte { return replaceOnce(b, `"schemaVersion": 1,`, `"schemaVersion": 2,`) },
			"schemaVersion 2", "mirror.json says schemaVersion 2"},
		{"manifest-export-id", func(b []byte) []byte {
			return replaceOnce(b, `"exportId": "20260315T000000Z",`, `"exportId": "../../latest",`)
		},
			"is not YYYYMMDDTHHMMSSZ", "mirror.json names export ../../latest"},
		{"manifest-zero-sequence", func(b []byte) []byte { return replaceOnce(b, `"sequence": 10,`, `"sequence": 0,`) },
			"sequence 0 is not positive", "mirror.json gives sequence 0"},
		{"manifest-domain-traversal", func(b []byte) []byte { return replaceOnce(b, `"primary"`, `"../primary"`) },
			"invalid or repeated", "mirror.json names domain ../primary"},
	} {
		t := g.base.clone()
		t[bundle.ManifestFile] = c.edit(t[bundle.ManifestFile])
		g.dirCase(c.name, g.seal(t, bundle.ManifestFile), 2, c.msg, c.desc+", re-signed")
	}
	return nil
}

// jwsCase replaces primary's JWS with jws and re-signs mirror.json over it.
func (g *gen) jwsCase(name string, jws []byte, msg, desc string, opts ...caseOpt) {
	t := g.base.clone()
	t["mirror/primary/bundle.json.jws"] = jws
	g.dirCase(name, g.seal(t, "mirror/primary/bundle.json.jws"), 2, msg, desc+"; mirror.json re-signed over it", opts...)
}

func (g *gen) jwsCases() error {
	payload := g.base["mirror/primary/bundle.json"]
	kid := `"kid":"` + kidOf(g.k) + `"`
	okCrit := []string{`"b64":false`, `"crit":["b64"]`}
	hdr := func(alg string, rest ...string) string {
		return jwsHeader(append([]string{`"alg":"` + alg + `"`}, rest...)...)
	}
	es := func(h string) []byte { return jwsSign(g.kPriv, h, payload, crypto.SHA256, false) }

	unsigned := func(h string) []byte { return []byte(b64url([]byte(h)) + "..") }
	g.jwsCase("jws-alg-none", unsigned(hdr("none", append([]string{kid}, okCrit...)...)), `alg "none" is never accepted`, "JWS with alg none and no signature")
	g.jwsCase("jws-alg-none-mixed-case", unsigned(hdr("nOnE", append([]string{kid}, okCrit...)...)), `is never accepted`, "JWS with alg nOnE")

	// HS256 keyed with the trusted public key's PEM: a verifier that
	// takes the algorithm from the header would accept it.
	pubPEM := g.files["roots/es256.pem"]
	h := hdr("HS256", append([]string{kid}, okCrit...)...)
	mac := hmac.New(sha256.New, pubPEM)
	mac.Write([]byte(b64url([]byte(h)) + "."))
	mac.Write(payload)
	g.jwsCase("jws-hs256-public-key", []byte(b64url([]byte(h))+".."+b64url(mac.Sum(nil))), `HMAC alg "HS256" is never accepted`,
		"JWS with alg HS256, the MAC keyed with the trusted public key")

	g.jwsCase("jws-alg-mismatch-es384", jwsSign(g.kPriv, hdr("ES384", append([]string{kid}, okCrit...)...), payload, crypto.SHA384, false),
		"algorithm does not match the key", "JWS with alg ES384, signed by the P-256 key over SHA-384")
	g.jwsCase("jws-alg-mismatch-eddsa", es(hdr("EdDSA", append([]string{kid}, okCrit...)...)),
		"algorithm does not match the key", "JWS with alg EdDSA naming the P-256 key")
	g.jwsCase("jws-alg-rs256", es(hdr("RS256", append([]string{kid}, okCrit...)...)),
		"algorithm does not match the key", "JWS with alg RS256 naming the P-256 key")
	g.jwsCase("jws-der-signature", jwsSign(g.kPriv, hdr("ES256", append([]string{kid}, okCrit...)...), payload, crypto.SHA256, true),
		"JWS signature does not verify", "ES256 JWS whose signature is ASN.1 DER instead of raw R||S")
	g.jwsCase("jws-crit-unknown", es(hdr("ES256", kid, `"b64":false`, `"crit":["b64","exp"]`)),
		"unknown critical parameters", `JWS with crit ["b64","exp"]`)
	g.jwsCase("jws-crit-empty", es(hdr("ES256", kid, `"b64":false`, `"crit":[]`)),
		`"crit" must list "b64"`, "JWS with an empty crit")
	g.jwsCase("jws-b64-without-crit", es(hdr("ES256", kid, `"b64":false`)),
		`"crit" must list "b64"`, "JWS with b64 false but no crit")
	g.jwsCase("jws-b64-true", es(hdr("ES256", kid, `"b64":true`, `"crit":["b64"]`)),
		`"b64" must be false`, "JWS with b64 true")
	g.jwsCase("jws-b64-missing", es(hdr("ES256", kid)),
		`missing "b64": false`, "JWS without b64 (an encoded payload)")
	g.jwsCase("jws-kid-path", es(hdr("ES256", `"kid":"../../../../etc/passwd"`, okCrit[0], okCrit[1])),
		"matches no trusted key", "JWS whose kid is a path")
	g.jwsCase("jws-kid-empty", es(hdr("ES256", `"kid":""`, okCrit[0], okCrit[1])),
		"missing kid", "JWS with an empty kid")
	ojwk := g.jwk()
	g.jwsCase("jws-embedded-jwk", jwsSign(g.oPriv, hdr("ES256", `"kid":"`+kidOf(g.o)+`"`, okCrit[0], okCrit[1], `"jwk":`+ojwk), payload, crypto.SHA256, false),
		`header carries a key ("jwk")`, "JWS signed by an untrusted key it embeds as jwk")
	g.jwsCase("jws-embedded-x5u", es(hdr("ES256", kid, okCrit[0], okCrit[1], `"x5u":"https://evil.invalid/key.pem"`)),
		`header carries a key ("x5u")`, "JWS pointing at a key URL")
	g.jwsCase("jws-unknown-param", es(hdr("ES256", kid, okCrit[0], okCrit[1], `"zip":"DEF"`)),
		`unexpected header parameter "zip"`, "JWS with a zip header parameter")
	g.jwsCase("jws-untrusted-key", jwsSign(g.oPriv, hdr("ES256", `"kid":"`+kidOf(g.o)+`"`, okCrit[0], okCrit[1]), payload, crypto.SHA256, false),
		"matches no trusted key", "JWS signed by a key that is not in the trust roots")
	g.jwsCase("jws-untrusted-key-trusted-kid", jwsSign(g.oPriv, hdr("ES256", kid, okCrit[0], okCrit[1]), payload, crypto.SHA256, false),
		"JWS signature does not verify", "JWS signed by an untrusted key under the trusted key's kid")
	attached := es(hdr("ES256", kid, okCrit[0], okCrit[1]))
	parts := strings.SplitN(string(attached), "..", 2)
	g.jwsCase("jws-attached-payload", []byte(parts[0]+"."+b64url(payload)+"."+parts[1]),
		"payload is not detached", "JWS with the payload attached")
	g.jwsCase("jws-json-serialization", []byte(`{"protected":"`+parts[0]+`","signature":"`+parts[1]+`"}`),
		"want 3 dot-separated parts", "JWS in flattened JSON serialization")
	g.jwsCase("jws-padded-base64", []byte(parts[0]+"=.."+parts[1]),
		"header is not base64url", "JWS header with base64 padding")
	g.jwsCase("jws-other-domain", g.base["mirror/community/bundle.json.jws"],
		"JWS signature does not verify", "community's JWS placed in primary")
	return nil
}

// jwk is the untrusted key as a JWK.
func (g *gen) jwk() string {
	pub := g.oPriv.PublicKey
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	x, y := b[1:33], b[33:65]
	out, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)})
	return string(out)
}

func (g *gen) dsseCases() error {
	m := g.base[bundle.ManifestFile]
	kid := kidOf(g.k)
	sigK := dsse.Signature{KeyID: kid, Sig: base64.StdEncoding.EncodeToString(dsseSig(g.kPriv, bundle.PayloadType, m))}
	sigO := dsse.Signature{KeyID: kidOf(g.o), Sig: base64.StdEncoding.EncodeToString(dsseSig(g.oPriv, bundle.PayloadType, m))}
	put := func(name string, env []byte, msg, desc string, opts ...caseOpt) {
		t := g.base.clone()
		t[bundle.EnvelopeFile] = env
		g.dirCase(name, g.seal(t, bundle.EnvelopeFile), 2, msg, desc, opts...)
	}
	const intoto = "application/vnd.in-toto+json"
	put("dsse-payload-type-swapped", envelope(intoto, m, dsse.Signature{KeyID: kid, Sig: base64.StdEncoding.EncodeToString(dsseSig(g.kPriv, intoto, m))}),
		"unexpected DSSE payloadType", "mirror.json signed by the trusted key under the in-toto payloadType")
	put("dsse-payload-type-case", envelope(strings.ToUpper(bundle.PayloadType), m, dsse.Signature{KeyID: kid,
		Sig: base64.StdEncoding.EncodeToString(dsseSig(g.kPriv, strings.ToUpper(bundle.PayloadType), m))}),
		"unexpected DSSE payloadType", "payloadType in upper case, signed by the trusted key")
	put("dsse-payload-type-relabelled", envelope(intoto, m, sigK),
		"unexpected DSSE payloadType", "the trusted signature kept, the payloadType changed")
	put("dsse-threshold-same-signature-twice", envelope(bundle.PayloadType, m, sigK, sigK),
		"1 of 2 required", "the trusted key's signature twice, --threshold 2", args("--threshold 2"))
	sigAlias := sigK
	sigAlias.KeyID = "mirror-signer"
	put("dsse-threshold-key-alias", envelope(bundle.PayloadType, m, sigK, sigAlias),
		"1 of 2 required", "one key under its derived id and under its Key-Id alias, --threshold 2",
		args("--threshold 2"), roots("roots/es256-alias.pem"))
	put("dsse-threshold-untrusted-second", envelope(bundle.PayloadType, m, sigK, sigO),
		"1 of 2 required", "a trusted and an untrusted signature, --threshold 2", args("--threshold 2"))
	put("dsse-untrusted-signer", envelope(bundle.PayloadType, m, sigO),
		"0 of 1 required", "mirror.json signed only by a key that is not trusted")
	put("dsse-untrusted-signer-trusted-keyid", envelope(bundle.PayloadType, m, dsse.Signature{KeyID: kid, Sig: sigO.Sig}),
		"signature does not verify", "an untrusted signature under the trusted key's id")
	put("dsse-no-signatures", envelope(bundle.PayloadType, m),
		"no signatures", "an envelope without signatures")
	put("dsse-empty-keyid", envelope(bundle.PayloadType, m, dsse.Signature{KeyID: "", Sig: sigK.Sig}),
		"has no keyid", "the trusted signature without a keyid")
	put("dsse-other-export-payload", g.next[bundle.EnvelopeFile],
		"not the bytes mirror.dsse.json signed", "the validly signed envelope of the next export beside this export's mirror.json")
	put("dsse-signature-over-other-payload", envelope(bundle.PayloadType, m, dsse.Signature{KeyID: kid,
		Sig: base64.StdEncoding.EncodeToString(dsseSig(g.kPriv, bundle.PayloadType, g.next[bundle.ManifestFile]))}),
		"signature does not verify", "a trusted signature over the next export's mirror.json")
	if len(m)%3 == 0 {
		panic("mirror.json needs base64 padding for dsse-payload-unpadded-base64")
	}
	put("dsse-payload-unpadded-base64", []byte(strings.Replace(string(envelope(bundle.PayloadType, m, sigK)),
		base64.StdEncoding.EncodeToString(m), base64.RawStdEncoding.EncodeToString(m), 1)),
		"payload is not standard base64", "the payload in base64 without its padding")
	return nil
}

func (g *gen) policyCases() error {
	type exp struct {
		dir     string
		seq     int64
		created time.Time
		expires time.Duration
	}
	exports := map[string]tree{}
	for _, e := range []exp{
		{"expired", 20, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 24 * time.Hour},
		{"not-yet-valid", 21, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 0},
		{"rollback", 5, time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC), 0},
		{"replay-same-sequence", 10, time.Date(2026, 3, 15, 0, 30, 0, 0, time.UTC), 0},
		{"rollback-newer-id", 9, time.Date(2026, 3, 15, 2, 0, 0, 0, time.UTC), 0},
	} {
		t, err := g.export(g.k, e.seq, e.created, e.expires)
		if err != nil {
			return err
		}
		exports[e.dir] = t
	}
	g.dirCase("policy-expired", exports["expired"], 3, "bundle expired", "sequence 20, expired on 2026-03-02")
	g.dirCase("policy-not-yet-valid", exports["not-yet-valid"], 3, "bundle not yet valid", "sequence 21, generated on 2026-04-01")
	g.dirCase("policy-rollback", exports["rollback"], 0, "verified: export 20260314T000000Z", "sequence 5 after sequence 10",
		importCode(3), importMsg("rollback refused"))
	g.dirCase("policy-replay-same-sequence", exports["replay-same-sequence"], 0, "verified: export 20260315T003000Z",
		"another export with the seed's sequence 10", importCode(3), importMsg("not above the high-water mark 10"))
	g.dirCase("policy-rollback-newer-id", exports["rollback-newer-id"], 0, "verified: export 20260315T020000Z",
		"a later export id with the lower sequence 9", importCode(3), importMsg("rollback refused"))
	g.add("policy-key-expired", 3, "key no longer valid", "the next export, its key trusted only until 2026-03-15T12:00:00Z",
		casePath("base/seq11"), roots("roots/es256-until-2026-03-15T12.pem"))
	g.add("policy-key-not-yet-trusted", 3, "key not yet valid", "the next export, its key trusted only from 2026-03-20, into an empty root",
		casePath("base/seq11"), roots("roots/es256-from-2026-03-20.pem"), seed("-"))
	g.add("policy-key-revoked", 2, "key revoked", "the next export, its key marked revoked (at 2026-03-15T12:00:00Z) in --trust-roots; the store does not know",
		casePath("base/seq11"), roots("roots/es256-revoked.pem"), seedRoots(defaultRoots))
	g.add("policy-key-not-yet-trusted-store", 3, "key not yet valid", "the next export, its key trusted only from 2026-03-20 in --trust-roots; the store trusts it without a window",
		casePath("base/seq11"), roots("roots/es256-from-2026-03-20.pem"), seedRoots(defaultRoots))
	// Signed by a key the roots do not hold at all.
	t, err := g.export(g.o, 12, time.Date(2026, 3, 15, 3, 0, 0, 0, time.UTC), 0)
	if err != nil {
		return err
	}
	g.dirCase("policy-untrusted-producer", t, 2, "0 of 1 required", "a complete export signed by a key that is not trusted")
	return nil
}

func (g *gen) mixCases() error {
	copyFrom := func(t, from tree, prefix string) {
		for _, n := range t.names() {
			if strings.HasPrefix(n, prefix) {
				delete(t, n)
			}
		}
		for _, n := range from.names() {
			if strings.HasPrefix(n, prefix) {
				t[n] = from[n]
			}
		}
	}
	t := g.base.clone()
	t[bundle.IndexPath] = g.next[bundle.IndexPath]
	g.dirCase("mix-index-from-next-export", t, 2, "digest mismatch", "index.json of the next export")
	t = g.base.clone()
	copyFrom(t, g.next, "mirror/primary/")
	g.dirCase("mix-domain-from-next-export", t, 2, "digest mismatch", "mirror/primary/ of the next export")
	t = g.base.clone()
	for _, n := range []string{bundle.ManifestFile, bundle.EnvelopeFile, bundle.ChecksumsFile} {
		t[n] = g.next[n]
	}
	g.dirCase("mix-signed-manifest-from-next-export", t, 2, "digest mismatch", "mirror.json, its envelope and SHA256SUMS of the next export over this export's files")
	t = g.base.clone()
	t[bundle.IndexPath] = g.next[bundle.IndexPath]
	g.dirCase("mix-index-from-next-export-resealed", g.seal(t), 2, "mixed exports", "index.json of the next export, listed in a re-signed mirror.json")
	t = g.base.clone()
	t["mirror/primary/manifest.json"] = g.next["mirror/primary/manifest.json"]
	g.dirCase("mix-domain-manifest-from-next-export-resealed", g.seal(t, "mirror/primary/manifest.json"), 2, "mixed exports",
		"primary's manifest.json of the next export, listed in a re-signed mirror.json")

	swap := func(t tree) {
		for _, f := range []string{"bundle.json", "bundle.json.jws", "bundle.json.sig", "manifest.json"} {
			a, b := "mirror/primary/"+f, "mirror/community/"+f
			t[a], t[b] = t[b], t[a]
		}
	}
	t = g.base.clone()
	swap(t)
	g.dirCase("mix-domains-swapped", t, 2, "digest mismatch", "primary's and community's documents swapped")
	t = g.base.clone()
	swap(t)
	g.dirCase("mix-domains-swapped-resealed", g.seal(t, "mirror/primary/manifest.json", "mirror/community/manifest.json", bundle.IndexPath), 2,
		"a manifest from another domain", "primary's and community's documents swapped, listed in a re-signed mirror.json")
	t = g.base.clone()
	t["mirror/primary/vex/openvex/2026-03.json"] = g.base["mirror/community/vex/csaf/sample.json"]
	g.dirCase("mix-vex-swapped-resealed", g.seal(t, "mirror/primary/bundle.json", "mirror/primary/bundle.json.jws", "mirror/primary/bundle.json.sig"), 2,
		"the signed bundle.json vouches for other bytes", "community's VEX file in place of primary's, listed in a re-signed mirror.json (bundle.json and its JWS unchanged)")
	t = g.base.clone()
	t[bundle.ManifestFile] = replaceOnce(t[bundle.ManifestFile], "\"community\",\n", "\"community\",\n    \"evil\",\n")
	for _, f := range []string{"bundle.json", "bundle.json.jws", "bundle.json.sig", "manifest.json"} {
		t["mirror/evil/"+f] = g.base["mirror/primary/"+f]
	}
	g.dirCase("mix-domain-added-resealed", g.seal(t), 2, "domains [community primary], mirror.json lists [community evil primary]",
		"a copy of primary named evil, added to a re-signed mirror.json")
	t = g.base.clone()
	t[bundle.ManifestFile] = replaceOnce(t[bundle.ManifestFile], "\"community\",\n", "")
	g.dirCase("mix-domain-dropped-resealed", g.seal(t), 2, "mirror.json lists [primary]",
		"community left out of a re-signed mirror.json's domains, its files still listed")
	return nil
}

func (g *gen) rootsCases() error {
	for _, c := range []struct{ name, file, msg, desc string }{
		{"roots-rsa1024", "roots/rsa1024.pem", "RSA key of 1024 bits", "an RSA-1024 trust root"},
		{"roots-rsa1024-beside-trusted", "roots/es256-and-rsa1024.pem", "RSA key of 1024 bits", "the trusted key and an RSA-1024 key"},
		{"roots-private-key", "roots/private-key-only.pem", "no PUBLIC KEY or CERTIFICATE", "a private key given as trust roots"},
		{"roots-empty", "roots/empty.pem", "no PUBLIC KEY or CERTIFICATE", "an empty trust-roots file"},
		{"roots-garbage", "roots/garbage.pem", "no PUBLIC KEY or CERTIFICATE", "binary garbage as trust roots"},
		{"roots-same-id-two-keys", "roots/same-id-two-keys.pem", "names two different keys", "two keys under one Key-Id"},
		{"roots-missing-file", "roots/does-not-exist.pem", "no such file", "a trust-roots path that does not exist"},
	} {
		g.add(c.name, 4, c.msg, c.desc, casePath("base/seq11"), roots(c.file), seedRoots(defaultRoots))
	}
	return nil
}

// readme describes the corpus.
const readme = `# Hostile corpus

Generated by ` + "`go run ./internal/hostilegen`" + ` (from the module root) with the TEST-ONLY keys of
testdata/keys; never edit by hand. ` + "`go test ./internal/hostilegen`" + ` fails when this folder differs
from what the generator writes.

- ` + "`INDEX.tsv`" + `: every case with the exit status mirror verify and mirror import must give, the
  trust roots and extra flags they run with, and a message their output must contain.
- ` + "`base/seq10`" + `, ` + "`base/seq11`" + `: two clean exports (sequence 10 and 11) of a small feed, signed by
  testdata/keys/es256.pem. Test export roots are seeded with seq10.
- ` + "`cases/NAME/`" + `: a bundle folder with one defect. Cases marked "re-signed" were made consistent
  again and signed with the test key after the defect was introduced, so that the check that refuses
  them is the one named, not a digest or signature in front of it.
- ` + "`cases/NAME.tar.zst`" + `, ` + "`.tar.gz`" + `: archives holding a real signed bundle plus a hostile entry.
  Cases of form "unpacked" are archives whose entries the test writes out as they are (symbolic
  links, FIFOs, colliding names) to make a folder git could not hold.
- ` + "`roots/`" + `: trust-roots files (the trusted key with validity windows, an alias, RSA-1024 ...).
- ` + "`htpasswd/`" + `: htpasswd files mirror serve must refuse at start-up, listed in htpasswd/INDEX.tsv.

The fuzz targets of pkg/bundle, pkg/sign, pkg/trust, pkg/archive, pkg/serve and internal/strictjson
add these files to their seeds.

go test ./internal/hostiletest runs every case through mirror verify and mirror import and checks
the exit status, the message, and that the export root's fingerprint did not change.
`
