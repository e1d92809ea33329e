package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

func TestRoutesServeFilesWithContractHeaders(t *testing.T) {
	e := newEnv(t, nil)
	f := e.fx.files
	tests := []struct {
		target, file, cache, ctype string
	}{
		{"/concelier/exports/index.json", bundle.IndexPath, CacheIndex, "application/json"},
		{"/concelier/exports/mirror/primary/manifest.json", "mirror/primary/manifest.json", CacheDomain, "application/json"},
		{"/concelier/exports/mirror/primary/bundle.json", "mirror/primary/bundle.json", CacheDomain, "application/json"},
		{"/concelier/exports/mirror/primary/bundle.json.jws", "mirror/primary/bundle.json.jws", CacheDomain, "application/jose"},
		{"/concelier/exports/mirror/secure/bundle.json.sig", "mirror/secure/bundle.json.sig", CacheDomain, "application/octet-stream"},
		{"/concelier/exports/" + exportA + "/mirror.json", bundle.ManifestFile, CacheExport, "application/json"},
		{"/concelier/exports/" + exportA + "/mirror.dsse.json", bundle.EnvelopeFile, CacheExport, "application/json"},
		{"/concelier/exports/" + exportA + "/SHA256SUMS", bundle.ChecksumsFile, CacheExport, "text/plain; charset=utf-8"},
		{"/concelier/exports/" + exportA + "/mirror/index.json", bundle.IndexPath, CacheExport, "application/json"},
		{"/concelier/exports/" + exportA + "/mirror/primary/vex/openvex/2026-03.json", "mirror/primary/vex/openvex/2026-03.json", CacheExport, "application/json"},
		{"/excititor/mirror/primary/download/openvex/2026-03", "mirror/primary/vex/openvex/2026-03.json", CacheDomain, "application/json"},
		{"/excititor/mirror/secure/download/openvex/secure", "mirror/secure/vex/openvex/secure.json", CacheDomain, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			w := e.do("GET", tt.target, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			want := f[tt.file]
			if w.Body.String() != string(want) {
				t.Fatalf("body differs from %s", tt.file)
			}
			h := w.Header()
			if got := h.Get("Cache-Control"); got != tt.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tt.cache)
			}
			if got := h.Get("ETag"); got != etagOf(want) {
				t.Errorf("ETag = %q, want %q", got, etagOf(want))
			}
			if got := h.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
			}
			if got := h.Get("Content-Length"); got != strconv.Itoa(len(want)) {
				t.Errorf("Content-Length = %q", got)
			}
			if h.Get("Accept-Ranges") != "bytes" {
				t.Errorf("Accept-Ranges = %q", h.Get("Accept-Ranges"))
			}
		})
	}
}

func TestETagComesFromManifestNotFromDisk(t *testing.T) {
	// The ETag is the manifest's digest; serve never rehashes a file.
	e := newEnv(t, nil)
	var listed string
	for _, f := range e.fx.manifest.Files {
		if f.Path == "mirror/primary/bundle.json" {
			listed = f.SHA256
		}
	}
	w := e.do("GET", "/concelier/exports/mirror/primary/bundle.json", nil)
	if got := w.Header().Get("ETag"); got != `"`+listed+`"` {
		t.Fatalf("ETag %s, manifest %s", got, listed)
	}
}

func TestConditionalRangeAndHead(t *testing.T) {
	e := newEnv(t, nil)
	body := e.fx.files["mirror/primary/bundle.json"]
	target := "/concelier/exports/mirror/primary/bundle.json"
	etag := etagOf(body)

	w := e.do("GET", target, map[string]string{"If-None-Match": etag})
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("If-None-Match: %d %q", w.Code, w.Body)
	}
	if w.Header().Get("ETag") != etag || w.Header().Get("Cache-Control") != CacheDomain {
		t.Fatalf("304 headers: %v", w.Header())
	}
	w = e.do("GET", target, map[string]string{"If-None-Match": `"0000"`})
	if w.Code != http.StatusOK {
		t.Fatalf("non-matching If-None-Match: %d", w.Code)
	}
	w = e.do("GET", target, map[string]string{"If-None-Match": `W/` + etag})
	if w.Code != http.StatusNotModified {
		t.Fatalf("weak If-None-Match (weak comparison applies): %d", w.Code)
	}

	w = e.do("GET", target, map[string]string{"Range": "bytes=2-9"})
	if w.Code != http.StatusPartialContent {
		t.Fatalf("Range: %d", w.Code)
	}
	if w.Body.String() != string(body[2:10]) {
		t.Fatalf("Range body %q", w.Body)
	}
	if got, want := w.Header().Get("Content-Range"), "bytes 2-9/"+strconv.Itoa(len(body)); got != want {
		t.Fatalf("Content-Range %q, want %q", got, want)
	}
	w = e.do("GET", target, map[string]string{"Range": "bytes=2-9", "If-Range": `"other"`})
	if w.Code != http.StatusOK {
		t.Fatalf("If-Range mismatch: %d", w.Code)
	}
	w = e.do("GET", target, map[string]string{"Range": "bytes=999999-"})
	if w.Code != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable range: %d", w.Code)
	}

	w = e.do("HEAD", target, nil)
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d, %d body bytes", w.Code, w.Body.Len())
	}
	if w.Header().Get("Content-Length") != strconv.Itoa(len(body)) || w.Header().Get("ETag") != etag {
		t.Fatalf("HEAD headers: %v", w.Header())
	}
}

func TestExcititorIndex(t *testing.T) {
	e := newEnv(t, nil)
	w := e.do("GET", "/excititor/mirror/primary/index", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w.Header().Get("Cache-Control") != CacheIndex || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", w.Header())
	}
	etag := w.Header().Get("ETag")
	if etag != etagOf(w.Body.Bytes()) {
		t.Fatalf("ETag %s is not the digest of the body", etag)
	}
	var idx struct {
		DomainID    string    `json:"domainId"`
		ExportID    string    `json:"exportId"`
		GeneratedAt time.Time `json:"generatedAt"`
		Exports     []struct {
			ExportKey string    `json:"exportKey"`
			Format    string    `json:"format"`
			SHA256    string    `json:"sha256"`
			Size      int64     `json:"size"`
			CreatedAt time.Time `json:"createdAt"`
			Href      string    `json:"href"`
		} `json:"exports"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.DomainID != "primary" || idx.ExportID != exportA || !idx.GeneratedAt.Equal(t0) || len(idx.Exports) != 2 {
		t.Fatalf("index %+v", idx)
	}
	for _, x := range idx.Exports {
		content := e.fx.files["mirror/primary/vex/"+x.ExportKey+".json"]
		if x.SHA256 != sum(content) || x.Size != int64(len(content)) || x.Format != "openvex" || x.CreatedAt.IsZero() {
			t.Errorf("entry %+v", x)
		}
		if x.Href != "/excititor/mirror/primary/download/"+x.ExportKey {
			t.Errorf("href %s", x.Href)
		}
		d := e.do("GET", x.Href, nil)
		if d.Code != http.StatusOK || d.Body.String() != string(content) {
			t.Errorf("GET %s: %d", x.Href, d.Code)
		}
	}
	if w := e.do("GET", "/excititor/mirror/primary/index", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match on index: %d", w.Code)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t, nil)
	for _, target := range []string{
		"/",
		"/concelier/exports/",
		"/concelier/exports/mirror/unknown/manifest.json",
		"/concelier/exports/mirror/primary/other.json",
		"/concelier/exports/mirror/primary/vex/openvex/2026-03.json",
		"/concelier/exports/mirror/Primary/manifest.json",
		"/concelier/exports/20990101T000000Z/mirror.json",
		"/concelier/exports/" + exportA + "/nope.json",
		"/concelier/exports/" + exportA + "/",
		"/concelier/exports/latest/mirror.json",
		"/excititor/mirror/unknown/index",
		"/excititor/mirror/primary/download/nope",
		"/excititor/mirror/primary/download/",
		"/excititor/mirror/primary",
		"/api/v1/mirror/import",
		"/api/v1/mirror/import/status",
	} {
		w := e.do("GET", target, nil)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, w.Code)
			continue
		}
		jsonError(t, w)
		if w.Header().Get("Cache-Control") != CacheNoStore {
			t.Errorf("GET %s: 404 Cache-Control %q", target, w.Header().Get("Cache-Control"))
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		for _, target := range []string{"/concelier/exports/index.json", "/excititor/mirror/primary/index", "/healthz", "/metrics"} {
			w := e.do(m, target, nil)
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d Allow=%q", m, target, w.Code, w.Header().Get("Allow"))
			}
			jsonError(t, w)
		}
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t, nil)
	w := e.do("GET", "/healthz", nil)
	if w.Code != 200 || w.Header().Get("Cache-Control") != CacheNoStore {
		t.Fatalf("healthz %d %v", w.Code, w.Header())
	}
	w = e.do("GET", "/readyz", nil)
	if w.Code != 200 || w.Header().Get("Cache-Control") != CacheNoStore || !strings.Contains(w.Body.String(), exportA) {
		t.Fatalf("readyz %d %s", w.Code, w.Body)
	}
	e.do("GET", "/concelier/exports/index.json", nil)
	e.do("GET", "/concelier/exports/mirror/nope/bundle.json", nil)

	w = e.do("GET", "/metrics", nil)
	if w.Code != 200 || w.Header().Get("Cache-Control") != CacheNoStore {
		t.Fatalf("metrics %d %v", w.Code, w.Header())
	}
	body := w.Body.String()
	for _, want := range []string{
		`stellaops_mirror_http_requests_total{code="200",route="index"} 1`,
		`stellaops_mirror_http_requests_total{code="404",route="domain_file"} 1`,
		`stellaops_mirror_active_export{export_id="` + exportA + `"} 1`,
		`stellaops_mirror_active_export_age_seconds 7200`,
		`stellaops_mirror_ready 1`,
		`stellaops_mirror_http_response_bytes_total{route="index"} ` + strconv.Itoa(len(e.fx.files[bundle.IndexPath])),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Expired: readyz fails, files are still served.
	e.clock.Advance(validFor)
	w = e.do("GET", "/readyz", nil)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("readyz after expiry: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/concelier/exports/index.json", nil); w.Code != 200 {
		t.Fatalf("index after expiry: %d", w.Code)
	}
	if !strings.Contains(e.do("GET", "/metrics", nil).Body.String(), "stellaops_mirror_ready 0") {
		t.Error("metrics: ready should be 0 after expiry")
	}
}

func TestNoActiveExport(t *testing.T) {
	root := t.TempDir()
	e := newEnvAt(t, root, nil, nil)
	w := e.do("GET", "/readyz", nil)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz on empty root: %d", w.Code)
	}
	w = e.do("GET", "/concelier/exports/index.json", nil)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("index on empty root: %d", w.Code)
	}
	jsonError(t, w)
	if w := e.do("GET", "/healthz", nil); w.Code != 200 {
		t.Fatalf("healthz: %d", w.Code)
	}
	// An export appears: served within a second, without restart.
	writeExport(t, root, exportA, t0, defaultDomains()...)
	setLatest(t, root, exportA)
	e.clock.Advance(time.Second)
	if w := e.do("GET", "/readyz", nil); w.Code != 200 {
		t.Fatalf("readyz after import: %d %s", w.Code, w.Body)
	}
}

func TestActiveExportOverrideAndNewestFallback(t *testing.T) {
	root := t.TempDir()
	writeExport(t, root, exportA, t0, defaultDomains()...)
	fxB := writeExport(t, root, exportB, t0.Add(24*time.Hour), defaultDomains()...)
	// No latest link: the newest folder.
	e := newEnvAt(t, root, fxB, nil)
	if id, _ := e.h.ActiveExport(); id != exportB {
		t.Fatalf("without latest: %s", id)
	}
	// latest wins over newest.
	setLatest(t, root, exportA)
	e2 := newEnvAt(t, root, nil, nil)
	if id, _ := e2.h.ActiveExport(); id != exportA {
		t.Fatalf("with latest: %s", id)
	}
	// ACTIVEEXPORTID wins over latest.
	e3 := newEnvAt(t, root, nil, func(c *Config, _ *Options) { c.Mirror.ActiveExportID = exportB })
	if id, _ := e3.h.ActiveExport(); id != exportB {
		t.Fatalf("with override: %s", id)
	}
	w := e3.do("GET", "/concelier/exports/index.json", nil)
	if !strings.Contains(w.Body.String(), exportB) {
		t.Fatalf("index served from %s", w.Body)
	}
	// Any export present stays reachable by id.
	if w := e3.do("GET", "/concelier/exports/"+exportA+"/mirror.json", nil); w.Code != 200 {
		t.Fatalf("older export by id: %d", w.Code)
	}
}

func TestAccessLogHasNoCredentials(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Options) {})
	e.do("GET", "/concelier/exports/index.json?token=secret-in-query", map[string]string{"Authorization": "Bearer secret-token-value"})
	line := strings.TrimSpace(e.log.String())
	var entry map[string]any
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("access log line %q: %v", line, err)
	}
	for _, k := range []string{"time", "method", "path", "status", "bytes", "duration", "client", "principal", "export"} {
		if _, ok := entry[k]; !ok {
			t.Errorf("access log lacks %s", k)
		}
	}
	if entry["path"] != "/concelier/exports/index.json" || entry["client"] != "192.0.2.10" || entry["export"] != exportA {
		t.Errorf("entry %v", entry)
	}
	if strings.Contains(line, "secret") {
		t.Fatalf("credentials in access log: %s", line)
	}
}

func TestLargeFileFromDiskRangeAndConditional(t *testing.T) {
	root := t.TempDir()
	fx := writeExport(t, root, exportA, t0, fxDomain{id: "primary", bundleSize: maxMemoryFile + 4096})
	setLatest(t, root, exportA)
	e := newEnvAt(t, root, fx, nil)
	body := fx.files["mirror/primary/bundle.json"]
	if len(body) <= maxMemoryFile {
		t.Fatalf("fixture bundle of %d bytes would be served from memory", len(body))
	}
	target := "/concelier/exports/mirror/primary/bundle.json"
	w := e.do("GET", target, nil)
	if w.Code != 200 || w.Body.String() != string(body) || w.Header().Get("ETag") != etagOf(body) || w.Header().Get("Cache-Control") != CacheDomain {
		t.Fatalf("GET: %d, %d bytes, %v", w.Code, w.Body.Len(), w.Header())
	}
	if w := e.do("GET", target, map[string]string{"If-None-Match": etagOf(body)}); w.Code != 304 {
		t.Fatalf("If-None-Match: %d", w.Code)
	}
	w = e.do("GET", target, map[string]string{"Range": "bytes=-100"})
	if w.Code != 206 || w.Body.String() != string(body[len(body)-100:]) {
		t.Fatalf("suffix range: %d %d", w.Code, w.Body.Len())
	}
	w = e.do("GET", target, map[string]string{"Range": "bytes=0-0,10-19"})
	if w.Code != 206 || !strings.HasPrefix(w.Header().Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("multi range: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	w = e.do("HEAD", target, nil)
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Fatalf("HEAD: %d", w.Code)
	}
}

func TestFileChangedOnDiskIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	sig := e.fx.dir + "/mirror/primary/bundle.json.sig"
	var logs []string
	e.h.logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	if err := os.WriteFile(sig, []byte("tampered-signature!"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := e.do("GET", "/concelier/exports/mirror/primary/bundle.json.sig", nil)
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "tampered") {
		t.Fatalf("tampered file: %d %s", w.Code, w.Body)
	}
	if len(logs) == 0 || !strings.Contains(logs[0], "does not match") {
		t.Fatalf("no log line: %v", logs)
	}
}

func TestAccessLogLineIsJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te\back`, "ctl\x00\x01\x1f\x7f\n\r\t", "utf8 é ☃ 𝄞", "bad \xff\xfe utf8", "\u2028"} {
		e := accessEntry{Time: t0, Method: s, Path: "/" + s, Status: 200, Bytes: 12, Duration: 0.000123, Client: s, Principal: s, Export: exportA}
		line := e.appendJSON(nil)
		var got accessEntry
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%q: %s: %v", s, line, err)
		}
		want, _ := json.Marshal(e)
		var back accessEntry
		_ = json.Unmarshal(want, &back)
		if got != back {
			t.Errorf("%q: got %+v, want %+v", s, got, back)
		}
	}
}

func TestLargeFileHandlesAreReused(t *testing.T) {
	root := t.TempDir()
	fx := writeExport(t, root, exportA, t0, fxDomain{id: "primary", bundleSize: maxMemoryFile + 4096})
	setLatest(t, root, exportA)
	e := newEnvAt(t, root, fx, nil)
	body := fx.files["mirror/primary/bundle.json"]
	target := "/concelier/exports/mirror/primary/bundle.json"
	for i := 0; i < 3; i++ {
		if w := e.do("GET", target, nil); w.Code != 200 || w.Body.String() != string(body) {
			t.Fatalf("GET %d: %d, %d bytes", i, w.Code, w.Body.Len())
		}
		// A range after a full response starts from a rewound handle.
		if w := e.do("GET", target, map[string]string{"Range": "bytes=0-9"}); w.Code != 206 || w.Body.String() != string(body[:10]) {
			t.Fatalf("range %d: %d %q", i, w.Code, w.Body)
		}
	}
	ex, err := e.h.exports.current()
	if err != nil {
		t.Fatal(err)
	}
	defer ex.release()
	ex.handles.mu.Lock()
	idle := ex.handles.count
	ex.handles.mu.Unlock()
	if runtime.GOOS != "windows" && idle != 1 {
		t.Fatalf("%d idle handles after sequential requests, want 1", idle)
	}
	ex.handles.close()
	if fh := ex.handles.get(ex.files["mirror/primary/bundle.json"]); fh != nil {
		t.Fatal("closed pool handed out a handle")
	}
	if w := e.do("GET", target, nil); w.Code != 200 || w.Body.String() != string(body) {
		t.Fatalf("GET after close: %d", w.Code)
	}
}

func TestLargeFileOfWrongSizeIsRefused(t *testing.T) {
	root := t.TempDir()
	fx := writeExport(t, root, exportA, t0, fxDomain{id: "primary", bundleSize: maxMemoryFile + 4096})
	setLatest(t, root, exportA)
	e := newEnvAt(t, root, fx, nil)
	var logs []string
	e.h.logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	if err := os.Truncate(fx.dir+"/mirror/primary/bundle.json", maxMemoryFile+100); err != nil {
		t.Fatal(err)
	}
	w := e.do("GET", "/concelier/exports/mirror/primary/bundle.json", nil)
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("truncated file: %d, %d bytes", w.Code, w.Body.Len())
	}
	if len(logs) == 0 || !strings.Contains(logs[0], "mirror.json lists") {
		t.Fatalf("no log line: %v", logs)
	}
}
