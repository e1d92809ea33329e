// Package smoketest serves fake StellaOps mirrors on loopback for tests of
// "mirror smoke" and its callers. A Mirror follows CONTRACT.md §3 (routes,
// Cache-Control, strong ETags, 304, 401 challenges, index budgets, health
// endpoints) unless its Faults say otherwise, and serves documents built
// from the pkg/bundle types.
//
// bundle.json.jws is a real RFC 7797 detached JWS (EdDSA) made with a fixed
// test key; Mirror.VerifyJWS verifies it the way the project's verifier
// would. The keys are for tests only and derive from fixed seeds.
package smoketest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// Faults make a Mirror wrong in one way each. They apply to every domain.
type Faults struct {
	// IndexCacheControl and ManifestCacheControl, when set, replace the
	// contract's Cache-Control values on index.json and manifest.json.
	IndexCacheControl    string
	ManifestCacheControl string
	// NoETag drops the ETag of manifest.json; No304 ignores If-None-Match.
	NoETag bool
	No304  bool
	// NoWWWAuthenticate answers 401 without a challenge.
	NoWWWAuthenticate bool
	// Anonymous serves every route without asking for credentials.
	Anonymous bool
	// TamperBundle serves a bundle.json whose bytes differ from what the
	// manifest, the index and the JWS describe.
	TamperBundle bool
	// IndexDigest puts a wrong bundleSha256 in index.json.
	IndexDigest bool
	// TamperVEX serves VEX downloads whose bytes differ from the excititor index.
	TamperVEX bool
	// JWSOtherKey signs bundle.json.jws with a key VerifyJWS does not trust.
	JWSOtherKey bool
	// NoHealth answers 404 on /healthz and /readyz.
	NoHealth bool
	// NotReady answers 503 on /readyz.
	NotReady bool
}

// Config describes a Mirror.
type Config struct {
	// Domains served; empty means "primary" and "secondary".
	Domains []string
	// GeneratedAt of the export; zero means 2025-03-01T12:00:00Z.
	GeneratedAt time.Time
	// User and Password, or Token, protect every route except the health
	// endpoints. With neither, the mirror is open.
	User     string
	Password string
	Token    string
	// IndexBudget answers 429 once index.json was requested more than this
	// many times; 0 means unlimited.
	IndexBudget int
	// RetryAfter is the Retry-After value of 429 answers; empty means "3600".
	RetryAfter string
	Faults     Faults
}

// DefaultGeneratedAt is the export time of a Mirror whose Config leaves
// GeneratedAt zero.
var DefaultGeneratedAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Mirror is a fake mirror served by an httptest.Server.
type Mirror struct {
	*httptest.Server

	// ExportID and GeneratedAt of the served export.
	ExportID    string
	GeneratedAt time.Time
	// Index is the served index.json.
	Index bundle.Index

	cfg      Config
	trusted  ed25519.PublicKey
	kid      string
	files    map[string][]byte // path below /concelier/exports/ -> bytes
	vex      map[string]map[string][]byte
	vexIndex map[string][]byte

	mu            sync.Mutex
	indexRequests int
}

type testKey struct {
	priv ed25519.PrivateKey
	kid  string
}

func newTestKey(name string) testKey {
	seed := sha256.Sum256([]byte("stellaops smoketest key (test only): " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(der)
	return testKey{priv: priv, kid: hex.EncodeToString(sum[:])}
}

// New starts a Mirror on loopback. Close it when done.
func New(cfg Config) *Mirror {
	m := NewUnstarted(cfg)
	m.Start()
	return m
}

// NewTLS starts a Mirror with TLS on loopback; its Certificate is the CA.
func NewTLS(cfg Config) *Mirror {
	m := NewUnstarted(cfg)
	m.StartTLS()
	return m
}

// NewUnstarted builds a Mirror without starting its server.
func NewUnstarted(cfg Config) *Mirror {
	if len(cfg.Domains) == 0 {
		cfg.Domains = []string{"primary", "secondary"}
	}
	if cfg.GeneratedAt.IsZero() {
		cfg.GeneratedAt = DefaultGeneratedAt
	}
	if cfg.RetryAfter == "" {
		cfg.RetryAfter = "3600"
	}
	trusted, other := newTestKey("trusted"), newTestKey("other")
	m := &Mirror{
		cfg:         cfg,
		ExportID:    cfg.GeneratedAt.UTC().Format(bundle.ExportIDLayout),
		GeneratedAt: cfg.GeneratedAt.UTC(),
		trusted:     trusted.priv.Public().(ed25519.PublicKey),
		kid:         trusted.kid,
		files:       map[string][]byte{},
		vex:         map[string]map[string][]byte{},
		vexIndex:    map[string][]byte{},
	}
	signer := trusted
	if cfg.Faults.JWSOtherKey {
		signer = other
	}
	m.Index = bundle.Index{SchemaVersion: bundle.SchemaVersion, ExportID: m.ExportID, GeneratedAt: m.GeneratedAt}
	for _, d := range cfg.Domains {
		m.addDomain(d, signer)
	}
	m.files["mirror/index.json"] = mustJSON(m.Index)
	m.Server = httptest.NewUnstartedServer(m.handler())
	m.Config.ErrorLog = log.New(io.Discard, "", 0)
	return m
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (m *Mirror) addDomain(id string, signer testKey) {
	gen := m.GeneratedAt
	display := strings.ToUpper(id[:1]) + id[1:]
	vexFiles := map[string][]byte{
		"openvex/stellaops-2025-0001": mustJSON(map[string]any{
			"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://stellaops.example/vex/" + id + "/0001",
			"author": "StellaOps test feed", "timestamp": gen, "version": 1,
			"statements": []map[string]any{{"vulnerability": map[string]string{"name": "CVE-2025-0001"},
				"products": []map[string]string{{"@id": "pkg:golang/example.com/app@1.0.0"}}, "status": "not_affected",
				"justification": "vulnerable_code_not_in_execute_path"}},
		}),
		"openvex/stellaops-2025-0002": mustJSON(map[string]any{
			"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://stellaops.example/vex/" + id + "/0002",
			"author": "StellaOps test feed", "timestamp": gen, "version": 1,
			"statements": []map[string]any{{"vulnerability": map[string]string{"name": "CVE-2025-0002"},
				"products": []map[string]string{{"@id": "pkg:golang/example.com/app@1.0.0"}}, "status": "fixed"}},
		}),
	}
	keys := []string{"openvex/stellaops-2025-0001", "openvex/stellaops-2025-0002"}
	var exports []bundle.VexExport
	type xEntry struct {
		ExportKey string    `json:"exportKey"`
		Format    string    `json:"format"`
		SHA256    string    `json:"sha256"`
		Size      int64     `json:"size"`
		CreatedAt time.Time `json:"createdAt"`
		Href      string    `json:"href"`
	}
	var xEntries []xEntry
	m.vex[id] = map[string][]byte{}
	for _, k := range keys {
		b := vexFiles[k]
		exports = append(exports, bundle.VexExport{Key: k, Format: "openvex", CreatedAt: gen,
			ArtifactDigest: "sha256:" + digest(b), ArtifactSizeBytes: int64(len(b)),
			Path: "mirror/" + id + "/vex/" + k + ".json"})
		xEntries = append(xEntries, xEntry{ExportKey: k, Format: "openvex", SHA256: digest(b), Size: int64(len(b)),
			CreatedAt: gen, Href: "/excititor/mirror/" + id + "/download/" + k})
		served := b
		if m.cfg.Faults.TamperVEX {
			served = bytes.Replace(b, []byte("not_affected"), []byte("affected    "), 1)
		}
		m.vex[id][k] = served
	}
	m.vexIndex[id] = mustJSON(struct {
		DomainID    string    `json:"domainId"`
		ExportID    string    `json:"exportId"`
		GeneratedAt time.Time `json:"generatedAt"`
		Exports     []xEntry  `json:"exports"`
	}{id, m.ExportID, gen, xEntries})

	var advisories []json.RawMessage
	for i := 1; i <= 3; i++ {
		advisories = append(advisories, json.RawMessage(fmt.Sprintf(
			`{"id":"STELLA-%s-%04d","modified":%q,"summary":"test advisory %d of domain %s",`+
				`"affected":[{"package":{"ecosystem":"Go","name":"example.com/app"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.%d"}]}]}]}`,
			strings.ToUpper(id), i, gen.Format(time.RFC3339), i, id, i)))
	}
	db := bundle.DomainBundle{SchemaVersion: bundle.SchemaVersion, DomainID: id, DisplayName: display,
		GeneratedAt: gen, AdvisoryCount: len(advisories), Exports: exports, Advisories: advisories}
	bundleBytes := mustJSON(db)
	bundleSum := digest(bundleBytes)
	jws := detachedJWS(signer, bundleBytes)

	dir := "mirror/" + id + "/"
	manifest := bundle.DomainManifest{SchemaVersion: bundle.SchemaVersion, DomainID: id, DisplayName: display,
		ExportID: m.ExportID, GeneratedAt: gen, AdvisoryCount: len(advisories),
		Bundle:    bundle.FileEntry{Path: dir + bundle.DomainBundleName, Size: int64(len(bundleBytes)), SHA256: bundleSum},
		Signature: bundle.SignatureInfo{Alg: "EdDSA", Kid: signer.kid},
		JWSPath:   dir + bundle.DomainJWSName, SigPath: dir + bundle.DomainSigName, Exports: exports}

	served := bundleBytes
	if m.cfg.Faults.TamperBundle {
		served = bytes.Replace(bundleBytes, []byte("test advisory 1"), []byte("evil advisory 1"), 1)
	}
	indexSum := bundleSum
	if m.cfg.Faults.IndexDigest {
		indexSum = digest([]byte("something else"))
	}
	m.files[dir+bundle.DomainManifestName] = mustJSON(manifest)
	m.files[dir+bundle.DomainBundleName] = served
	m.files[dir+bundle.DomainJWSName] = jws
	m.files[dir+bundle.DomainSigName] = []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(signer.priv, bundleBytes)) + "\n")
	m.Index.Domains = append(m.Index.Domains, bundle.IndexDomain{
		ID: id, DisplayName: display, AdvisoryCount: len(advisories), ExportCount: len(exports),
		BundleSize: int64(len(bundleBytes)), BundleSha256: indexSum, ExportFormats: []string{"openvex"},
		Signed: true, Signature: &bundle.SignatureInfo{Alg: "EdDSA", Kid: signer.kid}, LastGenerated: gen,
		ManifestPath: dir + bundle.DomainManifestName, BundlePath: dir + bundle.DomainBundleName,
		JWSPath: dir + bundle.DomainJWSName, SigPath: dir + bundle.DomainSigName,
	})
}

type jwsHeader struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	B64  *bool    `json:"b64"`
	Crit []string `json:"crit"`
}

func detachedJWS(k testKey, payload []byte) []byte {
	f := false
	h, _ := json.Marshal(jwsHeader{Alg: "EdDSA", Kid: k.kid, B64: &f, Crit: []string{"b64"}})
	eh := base64.RawURLEncoding.EncodeToString(h)
	sig := ed25519.Sign(k.priv, append([]byte(eh+"."), payload...))
	return []byte(eh + ".." + base64.RawURLEncoding.EncodeToString(sig))
}

// PublicKeyPEM returns the key VerifyJWS trusts as a PEM PUBLIC KEY block,
// usable as a --key or --trust-roots file.
func (m *Mirror) PublicKeyPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(m.trusted)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// KeyID is the id of the key VerifyJWS trusts.
func (m *Mirror) KeyID() string { return m.kid }

// VerifyJWS verifies a detached EdDSA JWS over payload with the mirror's
// trusted test key and returns its key id.
func (m *Mirror) VerifyJWS(jws, payload []byte) (string, error) {
	parts := strings.Split(string(jws), ".")
	if len(parts) != 3 || parts[1] != "" {
		return "", errors.New("not a detached compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", fmt.Errorf("JWS header: %v", err)
	}
	var h jwsHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return "", fmt.Errorf("JWS header: %v", err)
	}
	if h.Alg != "EdDSA" || h.B64 == nil || *h.B64 || len(h.Crit) != 1 || h.Crit[0] != "b64" {
		return "", fmt.Errorf("JWS header %s is not an unencoded EdDSA header", hb)
	}
	if h.Kid != m.kid {
		return "", fmt.Errorf("signed by key %s, which is not trusted", h.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", fmt.Errorf("JWS signature: %v", err)
	}
	if !ed25519.Verify(m.trusted, append([]byte(parts[0]+"."), payload...), sig) {
		return "", fmt.Errorf("signature by key %s does not match the payload", h.Kid)
	}
	return h.Kid, nil
}

// IndexRequests returns how many times index.json was requested.
func (m *Mirror) IndexRequests() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.indexRequests
}

func (m *Mirror) authorized(r *http.Request) bool {
	if m.cfg.Faults.Anonymous || (m.cfg.User == "" && m.cfg.Token == "") {
		return true
	}
	if m.cfg.Token != "" && r.Header.Get("Authorization") == "Bearer "+m.cfg.Token {
		return true
	}
	if u, p, ok := r.BasicAuth(); ok && m.cfg.User != "" && u == m.cfg.User && p == m.cfg.Password {
		return true
	}
	return false
}

func (m *Mirror) challenge(w http.ResponseWriter, scope string) {
	if !m.cfg.Faults.NoWWWAuthenticate {
		w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Bearer realm="stellaops-mirror", scope=%q`, scope))
		if m.cfg.User != "" {
			w.Header().Add("WWW-Authenticate", `Basic realm="stellaops-mirror"`)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "authentication required", http.StatusUnauthorized)
}

func (m *Mirror) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /concelier/exports/index.json", func(w http.ResponseWriter, r *http.Request) {
		if !m.authorized(r) {
			m.challenge(w, "concelier.mirror.read")
			return
		}
		m.mu.Lock()
		m.indexRequests++
		n := m.indexRequests
		m.mu.Unlock()
		if m.cfg.IndexBudget > 0 && n > m.cfg.IndexBudget {
			w.Header().Set("Retry-After", m.cfg.RetryAfter)
			http.Error(w, "index request budget exceeded", http.StatusTooManyRequests)
			return
		}
		cc := "public, max-age=60"
		if m.cfg.Faults.IndexCacheControl != "" {
			cc = m.cfg.Faults.IndexCacheControl
		}
		m.serveFile(w, r, m.files["mirror/index.json"], cc, false)
	})
	mux.HandleFunc("GET /concelier/exports/mirror/{domain}/{file}", func(w http.ResponseWriter, r *http.Request) {
		if !m.authorized(r) {
			m.challenge(w, "concelier.mirror.read")
			return
		}
		b, ok := m.files["mirror/"+r.PathValue("domain")+"/"+r.PathValue("file")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		cc := "public, max-age=300, immutable"
		isManifest := r.PathValue("file") == bundle.DomainManifestName
		if isManifest && m.cfg.Faults.ManifestCacheControl != "" {
			cc = m.cfg.Faults.ManifestCacheControl
		}
		m.serveFile(w, r, b, cc, isManifest)
	})
	mux.HandleFunc("GET /excititor/mirror/{domain}/index", func(w http.ResponseWriter, r *http.Request) {
		if !m.authorized(r) {
			m.challenge(w, "excititor.mirror.read")
			return
		}
		b, ok := m.vexIndex[r.PathValue("domain")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		m.serveFile(w, r, b, "public, max-age=60", false)
	})
	mux.HandleFunc("GET /excititor/mirror/{domain}/download/{key...}", func(w http.ResponseWriter, r *http.Request) {
		if !m.authorized(r) {
			m.challenge(w, "excititor.mirror.read")
			return
		}
		b, ok := m.vex[r.PathValue("domain")][r.PathValue("key")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		m.serveFile(w, r, b, "public, max-age=300, immutable", false)
	})
	health := func(ready bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			switch {
			case m.cfg.Faults.NoHealth:
				http.NotFound(w, r)
			case ready && m.cfg.Faults.NotReady:
				http.Error(w, "no active export loaded", http.StatusServiceUnavailable)
			default:
				fmt.Fprintln(w, "ok")
			}
		}
	}
	mux.HandleFunc("GET /healthz", health(false))
	mux.HandleFunc("GET /readyz", health(true))
	return mux
}

// serveFile writes b with a strong ETag (its SHA-256) and answers
// If-None-Match with 304. faulty applies the ETag and 304 faults.
func (m *Mirror) serveFile(w http.ResponseWriter, r *http.Request, b []byte, cacheControl string, faulty bool) {
	h := w.Header()
	h.Set("Cache-Control", cacheControl)
	h.Set("Content-Type", "application/json")
	etag := `"` + digest(b) + `"`
	if !(faulty && m.cfg.Faults.NoETag) {
		h.Set("ETag", etag)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && !(faulty && m.cfg.Faults.No304) {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == etag || t == "*" {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
	}
	h.Set("Content-Length", fmt.Sprint(len(b)))
	_, _ = w.Write(b)
}
