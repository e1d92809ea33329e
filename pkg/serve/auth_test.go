package serve

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

const (
	testIssuer   = "https://authority.test"
	testAudience = "stellaops-mirror"
)

func writeHtpasswd(t testing.TB, dir string, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# test credentials, not for production\n")
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":" + string(h) + "\n")
	}
	p := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemPublic(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sign makes a compact JWS of claims.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// handMade builds a token with an arbitrary header and an HMAC or empty
// signature, as an attacker would.
func handMade(header, claims map[string]any, hmacKey []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	if hmacKey == nil {
		return input + "."
	}
	m := hmac.New(sha256.New, hmacKey)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

func claimsAt(now time.Time, scope string) map[string]any {
	return map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": "svc-downstream",
		"exp": now.Add(10 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"scope": scope,
	}
}

func authEnv(t *testing.T, mutate func(*Config)) (*env, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	dir := t.TempDir()
	key := newECKey(t)
	pubPEM := pemPublic(t, key.Public())
	keys := writeFile(t, dir, "authority.pem", pubPEM)
	hp := writeHtpasswd(t, dir, map[string]string{"alice": "wonderland", "ops": "s3cret"})
	e := newEnv(t, func(c *Config, _ *Options) {
		c.Mirror.RequireAuthentication = true
		c.Server.Htpasswd = hp
		c.Authority.KeysFile = keys
		c.Authority.Issuer = testIssuer
		c.Authority.Audiences = []string{testAudience}
		if mutate != nil {
			mutate(c)
		}
	})
	return e, key, pubPEM
}

func TestUnauthenticatedChallenge(t *testing.T) {
	e, _, _ := authEnv(t, nil)
	for _, tt := range []struct{ target, scope string }{
		{"/concelier/exports/index.json", ScopeConcelierRead},
		{"/concelier/exports/mirror/primary/bundle.json", ScopeConcelierRead},
		{"/concelier/exports/" + exportA + "/mirror.json", ScopeConcelierRead},
		{"/excititor/mirror/primary/index", ScopeExcititorRead},
		{"/excititor/mirror/primary/download/openvex/2026-03", ScopeExcititorRead},
	} {
		w := e.do("GET", tt.target, nil)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("%s: %d", tt.target, w.Code)
		}
		got := w.Header().Values("WWW-Authenticate")
		want := []string{`Bearer realm="stellaops-mirror", scope="` + tt.scope + `"`, `Basic realm="stellaops-mirror"`}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tt.target, got, want)
		}
		jsonError(t, w)
	}
	// Health, readiness and metrics stay open.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if w := e.do("GET", p, nil); w.Code != 200 {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
}

func TestNoBasicChallengeWithoutHtpasswd(t *testing.T) {
	e, _, _ := authEnv(t, func(c *Config) { c.Server.Htpasswd = "" })
	w := e.do("GET", "/concelier/exports/index.json", nil)
	if got := w.Header().Values("WWW-Authenticate"); len(got) != 1 || !strings.HasPrefix(got[0], "Bearer ") {
		t.Fatalf("WWW-Authenticate %q", got)
	}
}

func TestBasicAuth(t *testing.T) {
	e, _, _ := authEnv(t, nil)
	target := "/concelier/exports/mirror/primary/manifest.json"
	tests := []struct {
		name, authz string
		code        int
	}{
		{"good", basic("alice", "wonderland"), 200},
		{"bad password", basic("alice", "wrong"), 401},
		{"unknown user", basic("mallory", "wonderland"), 401},
		{"empty password", basic("alice", ""), 401},
		{"malformed", "Basic !!!", 401},
		{"unknown scheme", "Digest username=alice", 401},
		{"lowercase scheme", "basic " + strings.TrimPrefix(basic("alice", "wonderland"), "Basic "), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do("GET", target, map[string]string{"Authorization": tt.authz})
			if w.Code != tt.code {
				t.Fatalf("%d, want %d: %s", w.Code, tt.code, w.Body)
			}
		})
	}
	if !strings.Contains(e.log.String(), `"principal":"alice"`) {
		t.Fatal("access log lacks the principal")
	}
	if strings.Contains(e.log.String(), "wonderland") {
		t.Fatal("password in access log")
	}
}

func TestCredentialCache(t *testing.T) {
	e, _, _ := authEnv(t, nil)
	var compares atomic.Int64
	e.h.basic.compares = func() { compares.Add(1) }
	good := map[string]string{"Authorization": basic("alice", "wonderland")}
	target := "/concelier/exports/index.json"
	for i := 0; i < 5; i++ {
		if w := e.do("GET", target, good); w.Code != 200 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	if n := compares.Load(); n != 1 {
		t.Fatalf("bcrypt ran %d times for 5 requests with the same credentials, want 1", n)
	}
	// Wrong passwords are never cached.
	for i := 0; i < 3; i++ {
		e.do("GET", target, map[string]string{"Authorization": basic("alice", "nope")})
	}
	if n := compares.Load(); n != 4 {
		t.Fatalf("bcrypt ran %d times, want 4", n)
	}
	// The cache entry expires.
	e.clock.Advance(DefaultCredentialCacheTTL)
	e.do("GET", target, good)
	if n := compares.Load(); n != 5 {
		t.Fatalf("after TTL bcrypt ran %d times, want 5", n)
	}
	// A reload forgets cached credentials.
	if err := e.h.Reload(); err != nil {
		t.Fatal(err)
	}
	e.do("GET", target, good)
	if n := compares.Load(); n != 6 {
		t.Fatalf("after reload bcrypt ran %d times, want 6", n)
	}
}

func TestCredentialCacheBounded(t *testing.T) {
	c := newCredCache(16, time.Minute)
	for i := 0; i < 1000; i++ {
		c.put(c.key("u", strings.Repeat("p", i)), "u", testNow)
		if c.len() > 16 {
			t.Fatalf("cache holds %d entries, cap 16", c.len())
		}
	}
}

func TestBcryptConcurrencyBounded(t *testing.T) {
	b := newBasicAuth(0, 0, 1)
	hp := &htpasswd{users: map[string][]byte{}}
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	hp.users["u"] = h
	b.sem <- struct{}{} // the only slot is taken
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.verify(ctx, hp, "u", "pw", testNow); !errors.Is(err, ErrAuthBusy) {
		t.Fatalf("verify with no free slot: %v", err)
	}
	<-b.sem
	if err := b.verify(ctx, hp, "u", "pw", testNow); err != nil {
		// A cancelled context with a free slot may still proceed.
		if !errors.Is(err, ErrAuthBusy) {
			t.Fatal(err)
		}
	}
}

func TestHtpasswdRefusesOtherHashes(t *testing.T) {
	dir := t.TempDir()
	good, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	for _, tt := range []struct{ line, kind string }{
		{"bob:$apr1$abcdefgh$0123456789abcdefghijkl", "$apr1$"},
		{"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{SHA}"},
		{"bob:plaintext", "plain"},
		{"bob:$6$salt$hash", "$6$"},
		{"bob:$2y$05$short", "malformed bcrypt"},
	} {
		p := writeFile(t, dir, "htpasswd", []byte("alice:"+string(good)+"\n"+tt.line+"\n"))
		_, err := loadHtpasswd(p)
		if err == nil {
			t.Fatalf("%s accepted", tt.line)
		}
		msg := err.Error()
		if !strings.Contains(msg, "line 2") || !strings.Contains(msg, `"bob"`) || !strings.Contains(msg, tt.kind) || !strings.Contains(msg, "not bcrypt") {
			t.Errorf("error %q should name line 2, user bob and %s", msg, tt.kind)
		}
		if failure.Code(err) != failure.ExitUsage {
			t.Errorf("exit code %d", failure.Code(err))
		}
	}
	p := writeFile(t, dir, "htpasswd", []byte("alice:"+string(good)+"\nalice:"+string(good)+"\n"))
	if _, err := loadHtpasswd(p); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate user: %v", err)
	}
	// NewHandler refuses to start on such a file.
	p = writeFile(t, dir, "htpasswd", []byte("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"))
	cfg := DefaultConfig()
	cfg.Mirror.ExportRoot = dir
	cfg.Server.Htpasswd = p
	if _, err := NewHandler(Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("NewHandler: %v", err)
	}
}

func TestBearerTokens(t *testing.T) {
	e, key, pubPEM := authEnv(t, nil)
	now := testNow
	other := newECKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(mut func(map[string]any)) map[string]any {
		c := claimsAt(now, ScopeConcelierRead+" "+ScopeExcititorRead)
		mut(c)
		return c
	}
	concelier := "/concelier/exports/index.json"
	excititor := "/excititor/mirror/primary/index"
	tests := []struct {
		name   string
		token  string
		target string
		code   int
	}{
		{"valid", sign(t, jose.ES256, key, "", claimsAt(now, ScopeConcelierRead)), concelier, 200},
		{"valid excititor", sign(t, jose.ES256, key, "", claimsAt(now, ScopeExcititorRead)), excititor, 200},
		{"scp array", sign(t, jose.ES256, key, "", with(func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{ScopeConcelierRead} })), concelier, 200},
		{"audience list", sign(t, jose.ES256, key, "", with(func(c map[string]any) { c["aud"] = []string{"other", testAudience} })), concelier, 200},
		{"expired", sign(t, jose.ES256, key, "", with(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), concelier, 401},
		{"expired within skew", sign(t, jose.ES256, key, "", with(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() })), concelier, 200},
		{"not yet valid", sign(t, jose.ES256, key, "", with(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), concelier, 401},
		{"nbf within skew", sign(t, jose.ES256, key, "", with(func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() })), concelier, 200},
		{"no exp", sign(t, jose.ES256, key, "", with(func(c map[string]any) { delete(c, "exp") })), concelier, 401},
		{"wrong audience", sign(t, jose.ES256, key, "", with(func(c map[string]any) { c["aud"] = "someone-else" })), concelier, 401},
		{"wrong issuer", sign(t, jose.ES256, key, "", with(func(c map[string]any) { c["iss"] = "https://evil.test" })), concelier, 401},
		{"wrong scope", sign(t, jose.ES256, key, "", claimsAt(now, ScopeExcititorRead)), concelier, 403},
		{"wrong scope excititor", sign(t, jose.ES256, key, "", claimsAt(now, ScopeConcelierRead)), excititor, 403},
		{"no scope", sign(t, jose.ES256, key, "", with(func(c map[string]any) { delete(c, "scope") })), concelier, 403},
		{"other key", sign(t, jose.ES256, other, "", claimsAt(now, ScopeConcelierRead)), concelier, 401},
		{"RS256 against an EC key", sign(t, jose.RS256, rsaKey, "", claimsAt(now, ScopeConcelierRead)), concelier, 401},
		{"alg none", handMade(map[string]any{"alg": "none", "typ": "JWT"}, claimsAt(now, ScopeConcelierRead), nil), concelier, 401},
		{"alg None", handMade(map[string]any{"alg": "None"}, claimsAt(now, ScopeConcelierRead), nil), concelier, 401},
		{"HS256 with the public key", handMade(map[string]any{"alg": "HS256", "typ": "JWT"}, claimsAt(now, ScopeConcelierRead), pubPEM), concelier, 401},
		{"HS512 with the public key", handMade(map[string]any{"alg": "HS512"}, claimsAt(now, ScopeConcelierRead), pubPEM), concelier, 401},
		{"ES256 header, signature stripped", strings.Join(strings.Split(sign(t, jose.ES256, key, "", claimsAt(now, ScopeConcelierRead)), ".")[:2], ".") + ".", concelier, 401},
		{"garbage", "not.a.jwt", concelier, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do("GET", tt.target, map[string]string{"Authorization": "Bearer " + tt.token})
			if w.Code != tt.code {
				t.Fatalf("%d, want %d: %s", w.Code, tt.code, w.Body)
			}
			switch tt.code {
			case 401:
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="stellaops-mirror"`) {
					t.Errorf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
				}
			case 403:
				if !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="insufficient_scope"`) {
					t.Errorf("WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
				}
			}
		})
	}
	if !strings.Contains(e.log.String(), `"principal":"svc-downstream"`) {
		t.Error("access log lacks the token subject")
	}
}

func TestJWKSKeysAndKid(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := newECKey(t), newECKey(t)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: k1.Public(), KeyID: "one", Algorithm: "ES256", Use: "sig"},
		{Key: k2.Public(), KeyID: "two", Algorithm: "ES256", Use: "sig"},
	}}
	b, _ := json.Marshal(set)
	p := writeFile(t, dir, "jwks.json", b)
	keys, err := loadJWTKeys(p)
	if err != nil || len(keys) != 2 {
		t.Fatalf("load JWKS: %v %d", err, len(keys))
	}
	v := &jwtVerifier{keys: keys, issuer: testIssuer, audiences: []string{testAudience}}
	if _, err := v.verify(sign(t, jose.ES256, k2, "two", claimsAt(testNow, "x")), testNow); err != nil {
		t.Fatalf("token with kid two: %v", err)
	}
	if _, err := v.verify(sign(t, jose.ES256, k2, "one", claimsAt(testNow, "x")), testNow); err == nil {
		t.Fatal("token signed by two but naming kid one was accepted")
	}
	if _, err := v.verify(sign(t, jose.ES256, k1, "", claimsAt(testNow, "x")), testNow); err != nil {
		t.Fatalf("token without kid: %v", err)
	}

	// Symmetric keys and short RSA keys are refused at start.
	oct, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "h", Algorithm: "HS256"}}})
	if _, err := loadJWTKeys(writeFile(t, dir, "oct.json", oct)); err == nil {
		t.Fatal("oct key accepted")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := loadJWTKeys(writeFile(t, dir, "small.pem", pemPublic(t, small.Public()))); err == nil || !strings.Contains(err.Error(), "1024") {
		t.Fatalf("1024-bit RSA key: %v", err)
	}
	priv, _ := x509.MarshalPKCS8PrivateKey(k1)
	if _, err := loadJWTKeys(writeFile(t, dir, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))); err == nil {
		t.Fatal("private key PEM accepted")
	}
	// An alg that does not match the key is refused at load.
	bad, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k1.Public(), KeyID: "x", Algorithm: "RS256"}}})
	if _, err := loadJWTKeys(writeFile(t, dir, "bad.json", bad)); err == nil {
		t.Fatal("EC key with alg RS256 accepted")
	}
}

func TestPerDomainAuthentication(t *testing.T) {
	yes := true
	e, _, _ := authEnv(t, func(c *Config) {
		c.Mirror.RequireAuthentication = false
		c.Mirror.Domains = []DomainConfig{{ID: "secure", RequireAuthentication: &yes}}
	})
	for _, tt := range []struct {
		target string
		code   int
	}{
		{"/concelier/exports/index.json", 200},
		{"/concelier/exports/mirror/primary/bundle.json", 200},
		{"/excititor/mirror/primary/index", 200},
		{"/concelier/exports/mirror/secure/bundle.json", 401},
		{"/excititor/mirror/secure/index", 401},
		{"/excititor/mirror/secure/download/openvex/secure", 401},
		// The export-id route does not get around a domain's setting.
		{"/concelier/exports/" + exportA + "/mirror/secure/bundle.json", 401},
		{"/concelier/exports/" + exportA + "/mirror/secure/vex/openvex/secure.json", 401},
		{"/concelier/exports/" + exportA + "/mirror/primary/bundle.json", 200},
	} {
		if w := e.do("GET", tt.target, nil); w.Code != tt.code {
			t.Errorf("%s: %d, want %d", tt.target, w.Code, tt.code)
		}
	}
	// Wrong credentials on an open domain: served anonymously.
	if w := e.do("GET", "/concelier/exports/mirror/primary/bundle.json", map[string]string{"Authorization": basic("alice", "bad")}); w.Code != 200 {
		t.Errorf("bad credentials on open domain: %d", w.Code)
	}
	if w := e.do("GET", "/concelier/exports/mirror/secure/bundle.json", map[string]string{"Authorization": basic("alice", "wonderland")}); w.Code != 200 {
		t.Errorf("good credentials on secure domain: %d", w.Code)
	}
}

func TestBypassNetworksAndAnonymousFallback(t *testing.T) {
	e, _, _ := authEnv(t, func(c *Config) { c.Authority.BypassNetworks = []string{"10.1.0.0/16", "192.0.2.77"} })
	target := "/concelier/exports/index.json"
	for _, tt := range []struct {
		addr string
		code int
	}{
		{"10.1.2.3:5000", 200},
		{"192.0.2.77:5000", 200},
		{"[::ffff:10.1.9.9]:5000", 200},
		{"10.2.0.1:5000", 401},
		{"192.0.2.78:5000", 401},
	} {
		if w := e.do("GET", target, map[string]string{"RemoteAddr": tt.addr}); w.Code != tt.code {
			t.Errorf("from %s: %d, want %d", tt.addr, w.Code, tt.code)
		}
	}

	f, _, _ := authEnv(t, func(c *Config) { c.Authority.AllowAnonymousFallback = true })
	if w := f.do("GET", target, nil); w.Code != 200 {
		t.Errorf("fallback without credentials: %d", w.Code)
	}
	if w := f.do("GET", target, map[string]string{"Authorization": basic("alice", "bad")}); w.Code != 401 {
		t.Errorf("fallback with wrong credentials: %d", w.Code)
	}
}

func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	e, _, _ := authEnv(t, func(c *Config) {
		c.Authority.BypassNetworks = []string{"10.9.0.0/16"}
		c.Server.TrustedProxies = []string{"127.0.0.1/32", "172.16.0.0/12"}
	})
	target := "/concelier/exports/index.json"
	for _, tt := range []struct {
		name, peer, xff string
		code            int
	}{
		{"untrusted peer cannot claim a bypass address", "192.0.2.5:1", "10.9.0.1", 401},
		{"trusted proxy forwards a bypass client", "127.0.0.1:1", "10.9.0.1", 200},
		{"proxy chain", "127.0.0.1:1", "10.9.0.1, 172.16.0.2", 200},
		{"client-supplied prefix is ignored", "127.0.0.1:1", "10.9.0.1, 192.0.2.5", 401},
		{"garbage entry stops the walk", "127.0.0.1:1", "10.9.0.1, junk", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do("GET", target, map[string]string{"RemoteAddr": tt.peer, "X-Forwarded-For": tt.xff})
			if w.Code != tt.code {
				t.Fatalf("%d, want %d", w.Code, tt.code)
			}
		})
	}
	if !strings.Contains(e.log.String(), `"client":"10.9.0.1"`) {
		t.Error("access log should name the forwarded client")
	}
}

func TestVerifiedTokenCacheHonoursExpiry(t *testing.T) {
	e, key, _ := authEnv(t, nil)
	c := claimsAt(testNow, ScopeConcelierRead)
	c["exp"] = testNow.Add(90 * time.Second).Unix()
	hdr := map[string]string{"Authorization": "Bearer " + sign(t, jose.ES256, key, "", c)}
	target := "/concelier/exports/index.json"
	if w := e.do("GET", target, hdr); w.Code != 200 {
		t.Fatalf("fresh token: %d", w.Code)
	}
	if e.h.tokens.len() != 1 {
		t.Fatalf("token cache holds %d entries", e.h.tokens.len())
	}
	e.clock.Advance(2 * time.Minute) // past exp, within the skew
	if w := e.do("GET", target, hdr); w.Code != 200 {
		t.Fatalf("within skew: %d", w.Code)
	}
	e.clock.Advance(time.Minute) // past exp + skew: the cached entry is gone too
	if w := e.do("GET", target, hdr); w.Code != 401 {
		t.Fatalf("expired cached token: %d", w.Code)
	}
}
