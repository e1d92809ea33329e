package serve

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// startServer runs a Server on a loopback port.
func startServer(t *testing.T, root string, clock *fakeClock, mutate func(*Config, *Options)) (*Server, context.CancelFunc, chan error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Mirror.ExportRoot = root
	cfg.Server.Listen = "127.0.0.1:0"
	opts := Options{Now: clock.Now, DrainTimeout: 30 * time.Second}
	if mutate != nil {
		mutate(&cfg, &opts)
	}
	opts.Config = cfg
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Wait(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, cancel, done
}

// rawGet sends request bytes on a fresh connection and returns the whole
// response.
func rawGet(t *testing.T, addr, request string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		var ne net.Error
		if !errors.As(err, &ne) {
			t.Fatal(err)
		}
	}
	return string(b)
}

func TestTraversalNeverServesCanary(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	const canary = "CANARY-MUST-NEVER-BE-SERVED"
	writeFile(t, base, "canary.txt", []byte(canary))
	writeFile(t, base, "canary.json", []byte(`{"x":"`+canary+`"}`))
	fx := writeExport(t, root, exportA, t0, defaultDomains()...)
	setLatest(t, root, exportA)
	writeFile(t, root, "canary.txt", []byte(canary))
	writeFile(t, fx.dir, "unlisted.txt", []byte(canary))
	// A file listed in the manifest that is a symlink out of the export:
	// os.Root refuses to follow it.
	evil := filepath.Join(fx.dir, "mirror", "primary", "vex", "evil.json")
	if err := os.Symlink(filepath.Join(base, "canary.json"), evil); err != nil {
		t.Fatal(err)
	}
	var m bundle.Manifest
	raw, _ := os.ReadFile(filepath.Join(fx.dir, bundle.ManifestFile))
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m.Files = append(m.Files, bundle.FileEntry{Path: "mirror/primary/vex/evil.json", Size: 40, SHA256: strings.Repeat("a", 64)})
	writeFile(t, fx.dir, bundle.ManifestFile, mustJSON(t, m))

	s, _, _ := startServer(t, root, newClock(testNow), nil)
	targets := []string{
		"/../canary.txt",
		"/../../canary.txt",
		"/concelier/exports/../../canary.txt",
		"/concelier/exports/../../../canary.txt",
		"/concelier/exports/%2e%2e/%2e%2e/canary.txt",
		"/concelier/exports/%2E%2E/%2E%2E/%2E%2E/canary.txt",
		"/concelier/exports/" + exportA + "/%2e%2e/canary.txt",
		"/concelier/exports/" + exportA + "/mirror/primary/%2e%2e/%2e%2e/%2e%2e/canary.txt",
		"/concelier/exports/mirror/primary/..%2f..%2f..%2f..%2fcanary.txt",
		"/concelier/exports/mirror/primary%2F..%2F..%2F..%2F..%2Fcanary.txt",
		"/concelier/exports/" + exportA + "%2F..%2Fcanary.txt",
		"/concelier/exports/" + exportA + "/..%5c..%5ccanary.txt",
		"/concelier/exports/" + exportA + "/..\\..\\canary.txt",
		"/concelier/exports/" + exportA + "//" + base + "/canary.txt",
		"//" + base + "/canary.txt",
		"/concelier/exports//../canary.txt",
		"/concelier/exports/" + exportA + "/unlisted.txt",
		"/concelier/exports/" + exportA + "/unlisted.txt%00",
		"/concelier/exports/" + exportA + "/mirror.json%00/../../canary.txt",
		"/concelier/exports/" + exportA + "/mirror/primary/vex/evil.json",
		"/concelier/exports/" + exportA + "/./mirror.json",
		"/excititor/mirror/primary/download/../../../../../canary",
		"/excititor/mirror/primary/download/..%2F..%2F..%2F..%2Fcanary",
		"/excititor/mirror/primary/download/%2e%2e/%2e%2e/%2e%2e/%2e%2e/canary",
		"/excititor/mirror/primary/download/evil",
		"/concelier/exports/latest/../canary.txt",
		"http://127.0.0.1/../canary.txt",
		"http://127.0.0.1/concelier/exports/%2e%2e/%2e%2e/canary.txt",
		"http://evil.test/concelier/exports/" + exportA + "/..%2F..%2Fcanary.txt",
		"http://evil.test/" + base + "/canary.txt",
		"file://" + base + "/canary.txt",
		"canary.txt",
		"*",
	}
	for _, target := range targets {
		resp := rawGet(t, s.Addr(), "GET "+target+" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		if strings.Contains(resp, "CANARY") {
			t.Fatalf("GET %s served the canary:\n%s", target, resp)
		}
		status := strings.SplitN(resp, " ", 3)
		if len(status) < 2 || !(strings.HasPrefix(status[1], "4")) {
			t.Errorf("GET %s: %q, want a 4xx", target, strings.SplitN(resp, "\r\n", 2)[0])
		}
	}
	// The listed files themselves still work over the same server.
	resp := rawGet(t, s.Addr(), "GET /concelier/exports/index.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 200 ") {
		t.Fatalf("index.json: %q", strings.SplitN(resp, "\r\n", 2)[0])
	}
}

func TestHotSwitchDuringDownload(t *testing.T) {
	root := t.TempDir()
	big := []fxDomain{{id: "primary", bundleSize: 4 << 20, vex: map[string][]byte{"a": []byte("{}\n")}}}
	fxA := writeExport(t, root, exportA, t0, big...)
	setLatest(t, root, exportA)
	clock := newClock(testNow)
	held := make(chan struct{})
	release := make(chan struct{})
	s, _, _ := startServer(t, root, clock, nil)
	s.Handler().afterOpen = func(r *http.Request) {
		if r.Header.Get("X-Test-Hold") != "" {
			close(held)
			<-release
		}
	}
	base := "http://" + s.Addr()
	type result struct {
		body []byte
		etag string
		err  error
	}
	first := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/concelier/exports/mirror/primary/bundle.json", nil)
		req.Header.Set("X-Test-Hold", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		first <- result{body: b, etag: resp.Header.Get("ETag"), err: err}
	}()
	<-held

	// An import activates B and retention deletes A while A is being sent.
	fxB := writeExport(t, root, exportB, t0.Add(24*time.Hour), []fxDomain{{id: "primary", bundleSize: 1 << 20}}...)
	setLatest(t, root, exportB)
	if err := os.RemoveAll(fxA.dir); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)

	get := func(path string) ([]byte, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b, resp.Header.Get("ETag")
	}
	idx, _ := get("/concelier/exports/index.json")
	if string(idx) != string(fxB.files[bundle.IndexPath]) {
		t.Fatalf("new request after the switch got %s", idx)
	}
	b, etag := get("/concelier/exports/mirror/primary/bundle.json")
	if string(b) != string(fxB.files["mirror/primary/bundle.json"]) || etag != etagOf(b) {
		t.Fatal("new download is not export B's bundle")
	}

	close(release)
	r := <-first
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := fxA.files["mirror/primary/bundle.json"]
	if len(r.body) != len(want) || string(r.body) != string(want) || r.etag != etagOf(want) {
		t.Fatalf("in-flight download: %d bytes (want %d of export A)", len(r.body), len(want))
	}
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	root := t.TempDir()
	fx := writeExport(t, root, exportA, t0, []fxDomain{{id: "primary", bundleSize: 2 << 20}}...)
	setLatest(t, root, exportA)
	held := make(chan struct{})
	release := make(chan struct{})
	draining := make(chan struct{})
	s, cancel, done := startServer(t, root, newClock(testNow), nil)
	s.onShutdown = func() { close(draining) }
	s.Handler().afterOpen = func(*http.Request) {
		close(held)
		<-release
	}
	got := make(chan []byte, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/concelier/exports/mirror/primary/bundle.json")
		if err != nil {
			got <- nil
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- b
	}()
	<-held
	cancel() // what SIGTERM does through the command's context
	<-draining
	select {
	case err := <-done:
		t.Fatalf("server returned before the request finished: %v", err)
	default:
	}
	close(release)
	if b := <-got; string(b) != string(fx.files["mirror/primary/bundle.json"]) {
		t.Fatalf("in-flight request got %d bytes", len(b))
	}
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	done <- nil // for the cleanup
	if _, err := net.Dial("tcp", s.Addr()); err == nil {
		t.Fatal("still accepting connections after shutdown")
	}
}

func TestServerSettingsAndTLS(t *testing.T) {
	root := t.TempDir()
	writeExport(t, root, exportA, t0, defaultDomains()...)
	setLatest(t, root, exportA)
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile := writeFile(t, dir, "tls.crt", certPEM)
	keyFile := writeFile(t, dir, "tls.key", keyPEM)
	s, _, _ := startServer(t, root, newClock(testNow), func(c *Config, _ *Options) {
		c.Server.TLSCert, c.Server.TLSKey = certFile, keyFile
	})
	if s.srv.ReadHeaderTimeout == 0 || s.srv.ReadTimeout == 0 || s.srv.IdleTimeout == 0 || s.srv.MaxHeaderBytes == 0 {
		t.Fatalf("server limits unset: %+v", s.srv)
	}
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0") {
		t.Fatalf("URL %s", s.URL())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	resp, err := client.Get(s.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("TLS %+v", resp.TLS)
	}
	// TLS 1.1 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(s.URL() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("TLS 1.1 accepted")
	}
	// HTTP/2 is offered by ALPN.
	h2, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := h2.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("ALPN chose %q", p)
	}
	h2.Close()
	// A header larger than MaxHeaderBytes is refused.
	c, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.Contains(line, "431") {
		t.Fatalf("oversized header: %q", line)
	}
}

func TestReloadKeepsOldCredentialsOnError(t *testing.T) {
	e, _, _ := authEnv(t, nil)
	good := map[string]string{"Authorization": basic("alice", "wonderland")}
	target := "/concelier/exports/index.json"
	if w := e.do("GET", target, good); w.Code != 200 {
		t.Fatal(w.Code)
	}
	// Replace the file with a broken one: reload fails, alice still works.
	writeFile(t, filepath.Dir(e.h.cfg.Server.Htpasswd), "htpasswd", []byte("alice:{SHA}x\n"))
	if err := e.h.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	if w := e.do("GET", target, good); w.Code != 200 {
		t.Fatalf("after failed reload: %d", w.Code)
	}
	// A good new file replaces the users.
	writeHtpasswd(t, filepath.Dir(e.h.cfg.Server.Htpasswd), map[string]string{"bob": "builder"})
	if err := e.h.Reload(); err != nil {
		t.Fatal(err)
	}
	if w := e.do("GET", target, good); w.Code != 401 {
		t.Fatalf("alice after reload: %d", w.Code)
	}
	if w := e.do("GET", target, map[string]string{"Authorization": basic("bob", "builder")}); w.Code != 200 {
		t.Fatalf("bob after reload: %d", w.Code)
	}
}

// selfSigned returns a throwaway certificate and key for localhost (test only).
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}
