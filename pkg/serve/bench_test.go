package serve

import (
	"io"
	"net/http/httptest"
	"testing"
)

func benchmarkRoute(b *testing.B, target string, hdr map[string]string, mutate func(*Config, *Options)) {
	e := newEnv(b, func(c *Config, o *Options) {
		o.AccessLog = io.Discard
		if mutate != nil {
			mutate(c, o)
		}
	})
	r := httptest.NewRequest("GET", target, nil)
	r.RemoteAddr = "192.0.2.10:40000"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkIndexJSON(b *testing.B) {
	benchmarkRoute(b, "/concelier/exports/index.json", nil, nil)
}

func BenchmarkDomainManifest(b *testing.B) {
	benchmarkRoute(b, "/concelier/exports/mirror/primary/manifest.json", nil, nil)
}

func BenchmarkDomainManifestBasicCached(b *testing.B) {
	dir := b.TempDir()
	hp := writeHtpasswd(b, dir, map[string]string{"alice": "wonderland"})
	benchmarkRoute(b, "/concelier/exports/mirror/primary/manifest.json",
		map[string]string{"Authorization": basic("alice", "wonderland")},
		func(c *Config, _ *Options) {
			c.Mirror.RequireAuthentication = true
			c.Server.Htpasswd = hp
			c.Mirror.MaxIndexRequestsPerHour = 1 << 30
			c.Mirror.MaxDownloadRequestsPerHour = 1 << 30
		})
}
