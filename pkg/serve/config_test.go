package serve

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func settingOf(t *testing.T, list []Setting, key string) Setting {
	t.Helper()
	for _, s := range list {
		if s.Key == key {
			return s
		}
	}
	t.Fatalf("no setting %s", key)
	return Setting{}
}

const yamlConfig = `
mirror:
  exportRoot: /from/file
  requireAuthentication: true
  maxIndexRequestsPerHour: 100
  maxDownloadRequestsPerHour: 1000
  domains:
    - id: primary
      displayName: Primary
      maxIndexRequestsPerHour: 10
    - id: secure
      requireAuthentication: true
authority:
  allowAnonymousFallback: true
  bypassNetworks: [10.0.0.0/8, 192.168.1.0/24]
server:
  listen: 0.0.0.0:9000
  htpasswd: /etc/stellaops/htpasswd
  trustedProxies: [127.0.0.1]
  adminUsers: [ops]
`

func TestConfigPrecedenceFlagEnvFile(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "serve.yaml", []byte(yamlConfig))
	env := envMap(map[string]string{
		"CONCELIER__MIRROR__EXPORTROOT":                             "/from/env",
		"CONCELIER__MIRROR__MAXINDEXREQUESTSPERHOUR":                "200",
		"CONCELIER__MIRROR__DOMAINS__0__MAXINDEXREQUESTSPERHOUR":    "20",
		"CONCELIER__MIRROR__DOMAINS__2__ID":                         "extra",
		"CONCELIER__MIRROR__DOMAINS__2__REQUIREAUTHENTICATION":      "false",
		"CONCELIER__MIRROR__DOMAINS__2__MAXDOWNLOADREQUESTSPERHOUR": "7",
		"CONCELIER__AUTHORITY__BYPASSNETWORKS__1":                   "172.16.0.0/12",
		"CONCELIER__AUTHORITY__ALLOWANONYMOUSFALLBACK":              "false",
	})
	flags := func(c *Config) error {
		c.Mirror.ExportRoot = "/from/flag"
		return nil
	}
	cfg, settings, err := ResolveConfig(path, env, flags)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ key, value, source string }{
		{"mirror.exportRoot", "/from/flag", SourceFlag},
		{"mirror.maxIndexRequestsPerHour", "200", SourceEnv},
		{"mirror.maxDownloadRequestsPerHour", "1000", SourceFile},
		{"mirror.requireAuthentication", "true", SourceFile},
		{"mirror.enabled", "true", SourceDefault},
		{"mirror.domains[0].id", "primary", SourceFile},
		{"mirror.domains[0].maxIndexRequestsPerHour", "20", SourceEnv},
		{"mirror.domains[0].maxDownloadRequestsPerHour", "inherit (1000)", SourceFile},
		{"mirror.domains[1].requireAuthentication", "true", SourceFile},
		{"mirror.domains[2].id", "extra", SourceEnv},
		{"mirror.domains[2].requireAuthentication", "false", SourceEnv},
		{"mirror.domains[2].maxDownloadRequestsPerHour", "7", SourceEnv},
		{"authority.bypassNetworks", "10.0.0.0/8,172.16.0.0/12", SourceEnv},
		{"authority.allowAnonymousFallback", "false", SourceEnv},
		{"authority.enabled", "false", SourceDefault},
		{"server.listen", "0.0.0.0:9000", SourceFile},
		{"server.adminUsers", "ops", SourceFile},
	} {
		s := settingOf(t, settings, tt.key)
		if s.Value != tt.value || s.Source != tt.source {
			t.Errorf("%s = %q (%s), want %q (%s)", tt.key, s.Value, s.Source, tt.value, tt.source)
		}
	}
	if cfg.Mirror.ExportRoot != "/from/flag" || len(cfg.Mirror.Domains) != 3 {
		t.Fatalf("config %+v", cfg.Mirror)
	}
}

func TestConfigJSONFileAndStrictness(t *testing.T) {
	dir := t.TempDir()
	js := writeFile(t, dir, "serve.json", []byte(`{"mirror":{"exportRoot":"/srv/mirror","domains":[{"id":"primary","maxDownloadRequestsPerHour":5}]},"server":{"listen":"127.0.0.1:8080"}}`))
	cfg, _, err := ResolveConfig(js, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mirror.ExportRoot != "/srv/mirror" || *cfg.Mirror.Domains[0].MaxDownloadRequestsPerHour != 5 || cfg.Server.Listen != "127.0.0.1:8080" {
		t.Fatalf("%+v", cfg)
	}
	for name, body := range map[string]string{
		"unknown key":   "mirror:\n  exportRot: /x\n",
		"duplicate key": "mirror:\n  exportRoot: /x\n  exportRoot: /y\n",
		"wrong type":    "mirror:\n  maxIndexRequestsPerHour: lots\n",
	} {
		p := writeFile(t, dir, "bad.yaml", []byte(body))
		if _, _, err := ResolveConfig(p, nil, nil); err == nil || failure.Code(err) != failure.ExitUsage {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := ResolveConfig(dir+"/missing.yaml", nil, nil); failure.Code(err) != failure.ExitUsage {
		t.Errorf("missing file: %v", err)
	}
}

func TestConfigEnvErrors(t *testing.T) {
	cfg := DefaultConfig()
	err := ApplyEnv(&cfg, envMap(map[string]string{
		"CONCELIER__MIRROR__REQUIREAUTHENTICATION":   "maybe",
		"CONCELIER__MIRROR__MAXINDEXREQUESTSPERHOUR": "-1",
	}))
	if err == nil || !strings.Contains(err.Error(), "CONCELIER__MIRROR__REQUIREAUTHENTICATION") || !strings.Contains(err.Error(), "MAXINDEXREQUESTSPERHOUR") {
		t.Fatalf("%v", err)
	}
	cfg = DefaultConfig()
	if err := ApplyEnv(&cfg, envMap(map[string]string{"CONCELIER__MIRROR__ENABLED": "false"})); err != nil {
		t.Fatal(err)
	}
	cfg.Mirror.ExportRoot = "/x"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("disabled mirror: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	yes := true
	for name, tt := range map[string]struct {
		mut  func(*Config)
		want string
	}{
		"no export root":   {func(c *Config) { c.Mirror.ExportRoot = "" }, "no export root"},
		"bad listen":       {func(c *Config) { c.Server.Listen = "8443" }, "listen address"},
		"tls half":         {func(c *Config) { c.Server.TLSCert = "/c.pem" }, "go together"},
		"bad cidr":         {func(c *Config) { c.Authority.BypassNetworks = []string{"10.0.0.0/33"} }, "bypass network"},
		"bad proxy":        {func(c *Config) { c.Server.TrustedProxies = []string{"proxy.local"} }, "trusted proxy"},
		"bad domain":       {func(c *Config) { c.Mirror.Domains = []DomainConfig{{ID: "Bad_Domain"}} }, "Bad_Domain"},
		"dup domain":       {func(c *Config) { c.Mirror.Domains = []DomainConfig{{ID: "a"}, {ID: "a"}} }, "twice"},
		"auth, no creds":   {func(c *Config) { c.Mirror.RequireAuthentication = true }, "neither --htpasswd"},
		"domain, no creds": {func(c *Config) { c.Mirror.Domains = []DomainConfig{{ID: "a", RequireAuthentication: &yes}} }, "domain a requires"},
		"import, no creds": {func(c *Config) { c.Server.EnableImportAPI = true }, "import API"},
		"authority, no keys": {func(c *Config) {
			c.Authority.Enabled = &yes
		}, "no keys file"},
		"authority, no issuer": {func(c *Config) {
			c.Authority.KeysFile = "/k.pem"
			c.Authority.Audiences = []string{"a"}
		}, "no issuer"},
		"negative budget": {func(c *Config) { c.Mirror.MaxDownloadRequestsPerHour = -1 }, ">= 0"},
	} {
		cfg := DefaultConfig()
		cfg.Mirror.ExportRoot = "/srv"
		tt.mut(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) || failure.Code(err) != failure.ExitUsage {
			t.Errorf("%s: %v, want %q", name, err, tt.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Mirror.ExportRoot = "/srv"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":    "10.0.0.0/8",
		"10.1.2.3/8":    "10.0.0.0/8",
		"192.0.2.1":     "192.0.2.1/32",
		"::1":           "::1/128",
		"2001:db8::/32": "2001:db8::/32",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("%s: %v %v", in, p, err)
		}
	}
}

func TestExampleConfigsParse(t *testing.T) {
	for _, name := range []string{"serve.example.yaml", "serve.example.json"} {
		cfg, _, err := ResolveConfig(filepath.Join("..", "..", "testdata", "serve", name), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Mirror.ExportRoot != "/srv/stellaops/mirror" || len(cfg.Mirror.Domains) != 2 {
			t.Fatalf("%s: %+v", name, cfg.Mirror)
		}
	}
}
