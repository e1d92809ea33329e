package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stellaops/stellaops-cli/pkg/exportroot"
)

// fakeImporter blocks until released and records its requests.
type fakeImporter struct {
	mu      sync.Mutex
	reqs    []ImportRequest
	started chan struct{}
	release chan error
	done    chan struct{}
}

func newFakeImporter() *fakeImporter {
	return &fakeImporter{started: make(chan struct{}, 4), release: make(chan error), done: make(chan struct{}, 4)}
}

func (f *fakeImporter) run(ctx context.Context, req ImportRequest) error {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	f.started <- struct{}{}
	defer func() { f.done <- struct{}{} }()
	select {
	case err := <-f.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func importEnv(t *testing.T, importer ImportFunc) (*env, string, any) {
	t.Helper()
	e, key, _ := authEnv(t, func(c *Config) {
		c.Mirror.RequireAuthentication = false
		c.Server.EnableImportAPI = true
		c.Server.AdminUsers = []string{"ops"}
		c.Authority.BypassNetworks = []string{"192.0.2.0/24"}
	})
	e.h.importer.run = importer
	tok := sign(t, jose.ES256, key, "", claimsAt(testNow, ScopeConcelierRead+" "+ScopeConcelierAdmin))
	return e, tok, key
}

func TestImportAPIOffByDefault(t *testing.T) {
	e := newEnv(t, nil)
	for _, m := range []string{"POST", "GET"} {
		if w := e.doBody(m, "/api/v1/mirror/import", nil, strings.NewReader(`{}`)); w.Code != 404 {
			t.Errorf("%s import: %d", m, w.Code)
		}
	}
	if w := e.do("GET", "/api/v1/mirror/import/status", nil); w.Code != 404 {
		t.Errorf("status: %d", w.Code)
	}
}

func TestImportAPIAuthorization(t *testing.T) {
	fi := newFakeImporter()
	e, adminToken, key := importEnv(t, fi.run)
	body := `{"bundlePath":"/media/usb/bundle","trustRootsPath":"/etc/stellaops/trust.pem"}`
	for _, tt := range []struct {
		name string
		hdr  map[string]string
		code int
	}{
		// Bypass networks and open domains do not open the import API.
		{"anonymous from a bypass network", nil, 401},
		{"wrong password", map[string]string{"Authorization": basic("ops", "nope")}, 401},
		{"authenticated non-admin", map[string]string{"Authorization": basic("alice", "wonderland")}, 403},
		{"token without admin scope", map[string]string{"Authorization": "Bearer " + sign(t, jose.ES256, key, "", claimsAt(testNow, ScopeConcelierRead))}, 403},
		{"token from another key", map[string]string{"Authorization": "Bearer " + sign(t, jose.ES256, newECKey(t), "", claimsAt(testNow, ScopeConcelierAdmin))}, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.doBody("POST", "/api/v1/mirror/import", tt.hdr, strings.NewReader(body))
			if w.Code != tt.code {
				t.Fatalf("%d, want %d: %s", w.Code, tt.code, w.Body)
			}
			if w.Header().Get("Cache-Control") != CacheNoStore {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
		})
	}
	if w := e.doBody("GET", "/api/v1/mirror/import", map[string]string{"Authorization": basic("ops", "s3cret")}, nil); w.Code != 405 || w.Header().Get("Allow") != "POST" {
		t.Fatalf("GET import: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
	if w := e.do("GET", "/api/v1/mirror/import/status", nil); w.Code != 401 {
		t.Fatalf("anonymous status: %d", w.Code)
	}
	if w := e.do("GET", "/api/v1/mirror/import/status", map[string]string{"Authorization": "Bearer " + adminToken}); w.Code != 200 {
		t.Fatalf("admin token status: %d", w.Code)
	}
}

func TestImportAPIRunsOneAtATime(t *testing.T) {
	fi := newFakeImporter()
	e, adminToken, _ := importEnv(t, fi.run)
	admin := map[string]string{"Authorization": basic("ops", "s3cret"), "Content-Type": "application/json"}
	status := func() map[string]any {
		w := e.do("GET", "/api/v1/mirror/import/status", admin)
		if w.Code != 200 || w.Header().Get("Cache-Control") != CacheNoStore {
			t.Fatalf("status: %d %v", w.Code, w.Header())
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if s := status(); s["state"] != exportroot.StateIdle {
		t.Fatalf("initial status %v", s)
	}
	for _, k := range []string{"state", "exportsImported", "totalBytes", "errors", "warnings", "startedAt", "finishedAt"} {
		if _, ok := status()[k]; !ok {
			t.Errorf("status lacks %s", k)
		}
	}

	w := e.doBody("POST", "/api/v1/mirror/import", admin, strings.NewReader(`{"bundlePath":"/media/usb/bundle","verifyDsse":false,"trustRootsPath":"/etc/trust.pem"}`))
	if w.Code != http.StatusAccepted || w.Header().Get("Location") != "/api/v1/mirror/import/status" {
		t.Fatalf("start: %d %s", w.Code, w.Body)
	}
	<-fi.started
	fi.mu.Lock()
	got := fi.reqs[0]
	fi.mu.Unlock()
	want := ImportRequest{BundlePath: "/media/usb/bundle", VerifyChecksums: true, VerifyDsse: false, TrustRootsPath: "/etc/trust.pem", ExportRoot: e.root}
	if got != want {
		t.Fatalf("importer got %+v, want %+v", got, want)
	}
	if s := status(); s["state"] != exportroot.StateRunning {
		t.Fatalf("status while running: %v", s)
	}
	tokenHdr := map[string]string{"Authorization": "Bearer " + adminToken}
	if w := e.doBody("POST", "/api/v1/mirror/import", tokenHdr, strings.NewReader(`{"bundlePath":"/other"}`)); w.Code != http.StatusConflict {
		t.Fatalf("second import while running: %d", w.Code)
	}
	fi.release <- errors.New("signature by untrusted key")
	e.h.importer.wait(context.Background())
	if s := status(); s["state"] != exportroot.StateFailed || !strings.Contains(strings.Join(toStrings(s["errors"]), " "), "untrusted") {
		t.Fatalf("status after failure: %v", s)
	}

	// The importer's status file wins when present.
	state := filepath.Join(e.root, exportroot.StateDirName)
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	doc := `{"state":"succeeded","exportsImported":1,"totalBytes":1234,"errors":[],"warnings":["w"],"startedAt":"2026-03-01T12:00:00Z","finishedAt":"2026-03-01T12:00:05Z"}`
	writeFile(t, state, exportroot.StatusFile, []byte(doc))
	if s := status(); s["state"] != "succeeded" || s["totalBytes"] != float64(1234) {
		t.Fatalf("status from file: %v", s)
	}

	// A new import may start now.
	if w := e.doBody("POST", "/api/v1/mirror/import", tokenHdr, strings.NewReader(`{"bundlePath":"/media/usb/b2"}`)); w.Code != http.StatusAccepted {
		t.Fatalf("third import: %d %s", w.Code, w.Body)
	}
	<-fi.started
	fi.release <- nil
	<-fi.done
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func TestImportAPIValidation(t *testing.T) {
	fi := newFakeImporter()
	e, _, _ := importEnv(t, fi.run)
	admin := map[string]string{"Authorization": basic("ops", "s3cret")}
	for _, body := range []string{
		``,
		`{}`,
		`{"bundlePath":"relative/path"}`,
		`{"bundlePath":"https://example.com/bundle.tar.zst"}`,
		`{"bundlePath":"-"}`,
		`{"bundlePath":"/ok","trustRootsPath":"rel.pem"}`,
		`{"bundlePath":"/ok","unknown":1}`,
		`{"bundlePath":"/ok"} {"bundlePath":"/again"}`,
		`{"bundlePath":"/ok","pad":"` + strings.Repeat("x", maxImportBody) + `"}`,
	} {
		if w := e.doBody("POST", "/api/v1/mirror/import", admin, strings.NewReader(body)); w.Code != http.StatusBadRequest {
			t.Errorf("body %.60q: %d", body, w.Code)
		}
	}
	// No importer wired in: 501.
	e.h.importer.run = nil
	if w := e.doBody("POST", "/api/v1/mirror/import", admin, strings.NewReader(`{"bundlePath":"/ok"}`)); w.Code != http.StatusNotImplemented {
		t.Fatalf("without importer: %d", w.Code)
	}
}
