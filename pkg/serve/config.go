package serve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// DefaultListen is the address serve listens on when none is configured.
const DefaultListen = "127.0.0.1:8443"

// Config is the operator configuration of serve: what a config file, the
// CONCELIER__* environment variables and the command's flags set. It holds
// file paths and settings only, never secret values.
type Config struct {
	Mirror    MirrorConfig    `json:"mirror" yaml:"mirror"`
	Authority AuthorityConfig `json:"authority" yaml:"authority"`
	Server    ServerConfig    `json:"server" yaml:"server"`
}

// MirrorConfig is the mirror section (CONCELIER__MIRROR__*).
type MirrorConfig struct {
	// Enabled false refuses to start (CONCELIER__MIRROR__ENABLED).
	Enabled bool `json:"enabled" yaml:"enabled"`
	// ExportRoot is the folder holding <exportId>/ folders and latest.
	ExportRoot string `json:"exportRoot" yaml:"exportRoot"`
	// ActiveExportID pins the served export instead of latest.
	ActiveExportID string `json:"activeExportId" yaml:"activeExportId"`
	// RequireAuthentication is the default for every domain and for the
	// routes that belong to no domain (index.json, mirror.json, ...).
	RequireAuthentication bool `json:"requireAuthentication" yaml:"requireAuthentication"`
	// MaxIndexRequestsPerHour is the global index budget per client; 0
	// means unlimited.
	MaxIndexRequestsPerHour int `json:"maxIndexRequestsPerHour" yaml:"maxIndexRequestsPerHour"`
	// MaxDownloadRequestsPerHour is the global download budget per client;
	// 0 means unlimited.
	MaxDownloadRequestsPerHour int `json:"maxDownloadRequestsPerHour" yaml:"maxDownloadRequestsPerHour"`
	// Domains holds per-domain overrides.
	Domains []DomainConfig `json:"domains" yaml:"domains"`
}

// DomainConfig overrides the global settings for one domain. A nil field
// inherits the global value.
type DomainConfig struct {
	ID                         string `json:"id" yaml:"id"`
	DisplayName                string `json:"displayName,omitempty" yaml:"displayName,omitempty"`
	RequireAuthentication      *bool  `json:"requireAuthentication,omitempty" yaml:"requireAuthentication,omitempty"`
	MaxIndexRequestsPerHour    *int   `json:"maxIndexRequestsPerHour,omitempty" yaml:"maxIndexRequestsPerHour,omitempty"`
	MaxDownloadRequestsPerHour *int   `json:"maxDownloadRequestsPerHour,omitempty" yaml:"maxDownloadRequestsPerHour,omitempty"`
}

// AuthorityConfig is the authority section (CONCELIER__AUTHORITY__*):
// offline verification of bearer JWTs, bypass networks and anonymous
// fallback.
type AuthorityConfig struct {
	// Enabled turns bearer JWT verification on. Unset means on exactly when
	// KeysFile is set.
	Enabled *bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// AllowAnonymousFallback lets requests that carry no credentials at all
	// through as anonymous on domains that require authentication.
	// Requests with wrong credentials are still refused.
	AllowAnonymousFallback bool `json:"allowAnonymousFallback" yaml:"allowAnonymousFallback"`
	// BypassNetworks are CIDRs whose clients skip authentication.
	BypassNetworks []string `json:"bypassNetworks" yaml:"bypassNetworks"`
	// KeysFile is a PEM (PUBLIC KEY or CERTIFICATE blocks) or JWKS file
	// with the token signing keys.
	KeysFile string `json:"keysFile" yaml:"keysFile"`
	// Issuer is the required "iss" claim.
	Issuer string `json:"issuer" yaml:"issuer"`
	// Audiences are accepted "aud" values; a token must name one.
	Audiences []string `json:"audiences" yaml:"audiences"`
}

// ServerConfig is the listener and access control of serve itself.
type ServerConfig struct {
	Listen          string   `json:"listen" yaml:"listen"`
	TLSCert         string   `json:"tlsCert" yaml:"tlsCert"`
	TLSKey          string   `json:"tlsKey" yaml:"tlsKey"`
	Htpasswd        string   `json:"htpasswd" yaml:"htpasswd"`
	TrustedProxies  []string `json:"trustedProxies" yaml:"trustedProxies"`
	AdminUsers      []string `json:"adminUsers" yaml:"adminUsers"`
	EnableImportAPI bool     `json:"enableImportApi" yaml:"enableImportApi"`
}

// DefaultConfig returns the configuration before any file, environment
// variable or flag is applied.
func DefaultConfig() Config {
	return Config{
		Mirror: MirrorConfig{Enabled: true},
		Server: ServerConfig{Listen: DefaultListen},
	}
}

// AuthorityEnabled reports whether bearer JWTs are verified.
func (c *Config) AuthorityEnabled() bool {
	if c.Authority.Enabled != nil {
		return *c.Authority.Enabled
	}
	return c.Authority.KeysFile != ""
}

// maxConfigBytes bounds the config file read.
const maxConfigBytes = 1 << 20

// LoadConfigFile applies the YAML or JSON file at path onto cfg: keys present
// in the file replace cfg's values, absent keys keep them. Unknown and
// duplicate keys are refused.
func LoadConfigFile(cfg *Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return failure.Classify(failure.ErrUsage, fmt.Errorf("read config %s: %w", path, err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return failure.Classify(failure.ErrUsage, fmt.Errorf("read config %s: %w", path, err))
	}
	if len(data) > maxConfigBytes {
		return failure.Usagef("config %s: larger than %d bytes", path, maxConfigBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	// YAML 1.2 reads JSON documents too; one decoder gives both formats the
	// same strictness (unknown keys, duplicate keys).
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return failure.Usagef("config %s: %v", path, err)
	}
	return nil
}

// Environment variable names (CONCELIER__MIRROR__*, CONCELIER__AUTHORITY__*).
const (
	EnvMirrorPrefix    = "CONCELIER__MIRROR__"
	EnvAuthorityPrefix = "CONCELIER__AUTHORITY__"
)

// maxEnvIndex bounds the {n} probed in indexed environment variables.
const maxEnvIndex = 100

// ApplyEnv applies the CONCELIER__MIRROR__* and CONCELIER__AUTHORITY__*
// variables read through getenv onto cfg. Indexed variables
// (DOMAINS__{n}__*, BYPASSNETWORKS__{n}, AUDIENCES__{n}) merge by index:
// entry n replaces the fields of cfg's entry n, or appends a new entry.
func ApplyEnv(cfg *Config, getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	var errs []error
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	boolean := func(name string, dst *bool) bool {
		v := getenv(name)
		if v == "" {
			return false
		}
		b, err := parseBool(v)
		if err != nil {
			errs = append(errs, failure.Usagef("environment %s=%q: want true or false", name, v))
			return false
		}
		*dst = b
		return true
	}
	integer := func(name string, dst *int) bool {
		v := getenv(name)
		if v == "" {
			return false
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			errs = append(errs, failure.Usagef("environment %s=%q: want a whole number >= 0", name, v))
			return false
		}
		*dst = n
		return true
	}

	m := EnvMirrorPrefix
	boolean(m+"ENABLED", &cfg.Mirror.Enabled)
	str(m+"EXPORTROOT", &cfg.Mirror.ExportRoot)
	str(m+"ACTIVEEXPORTID", &cfg.Mirror.ActiveExportID)
	boolean(m+"REQUIREAUTHENTICATION", &cfg.Mirror.RequireAuthentication)
	integer(m+"MAXINDEXREQUESTSPERHOUR", &cfg.Mirror.MaxIndexRequestsPerHour)
	integer(m+"MAXDOWNLOADREQUESTSPERHOUR", &cfg.Mirror.MaxDownloadRequestsPerHour)
	for n := 0; n < maxEnvIndex; n++ {
		p := fmt.Sprintf("%sDOMAINS__%d__", m, n)
		names := []string{"ID", "DISPLAYNAME", "REQUIREAUTHENTICATION", "MAXINDEXREQUESTSPERHOUR", "MAXDOWNLOADREQUESTSPERHOUR"}
		present := false
		for _, k := range names {
			if getenv(p+k) != "" {
				present = true
				break
			}
		}
		if !present {
			continue
		}
		var d *DomainConfig
		if n < len(cfg.Mirror.Domains) {
			d = &cfg.Mirror.Domains[n]
		} else {
			cfg.Mirror.Domains = append(cfg.Mirror.Domains, DomainConfig{})
			d = &cfg.Mirror.Domains[len(cfg.Mirror.Domains)-1]
		}
		str(p+"ID", &d.ID)
		str(p+"DISPLAYNAME", &d.DisplayName)
		var b bool
		if boolean(p+"REQUIREAUTHENTICATION", &b) {
			d.RequireAuthentication = &b
		}
		var i int
		if integer(p+"MAXINDEXREQUESTSPERHOUR", &i) {
			v := i
			d.MaxIndexRequestsPerHour = &v
		}
		if integer(p+"MAXDOWNLOADREQUESTSPERHOUR", &i) {
			v := i
			d.MaxDownloadRequestsPerHour = &v
		}
	}

	a := EnvAuthorityPrefix
	var enabled bool
	if boolean(a+"ENABLED", &enabled) {
		cfg.Authority.Enabled = &enabled
	}
	boolean(a+"ALLOWANONYMOUSFALLBACK", &cfg.Authority.AllowAnonymousFallback)
	cfg.Authority.BypassNetworks = envList(getenv, a+"BYPASSNETWORKS__", cfg.Authority.BypassNetworks)
	str(a+"KEYSFILE", &cfg.Authority.KeysFile)
	str(a+"ISSUER", &cfg.Authority.Issuer)
	cfg.Authority.Audiences = envList(getenv, a+"AUDIENCES__", cfg.Authority.Audiences)
	return errors.Join(errs...)
}

// envList merges PREFIX{n} variables into list by index.
func envList(getenv func(string) string, prefix string, list []string) []string {
	for n := 0; n < maxEnvIndex; n++ {
		v := getenv(prefix + strconv.Itoa(n))
		if v == "" {
			continue
		}
		if n < len(list) {
			list[n] = v
		} else {
			list = append(list, v)
		}
	}
	return list
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", v)
}

// Source names where a configuration value came from.
const (
	SourceDefault = "default"
	SourceFile    = "file"
	SourceEnv     = "env"
	SourceFlag    = "flag"
)

// Setting is one effective configuration value, for --print-config.
type Setting struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// ResolveConfig builds the effective configuration from, in increasing
// precedence: DefaultConfig, the config file at path (if path is not
// empty), the environment read through getenv, and flags, a function that
// sets the values of the flags the operator gave. It returns the
// configuration and every setting with its source.
func ResolveConfig(path string, getenv func(string) string, flags func(*Config) error) (Config, []Setting, error) {
	cfg := DefaultConfig()
	sources := map[string]string{}
	mark := func(before []Setting, src string) {
		prev := make(map[string]string, len(before))
		for _, s := range before {
			prev[s.Key] = s.Value
		}
		for _, s := range cfg.Settings() {
			if v, ok := prev[s.Key]; !ok || v != s.Value {
				sources[s.Key] = src
			}
		}
	}
	if path != "" {
		before := cfg.Settings()
		if err := LoadConfigFile(&cfg, path); err != nil {
			return cfg, nil, err
		}
		mark(before, SourceFile)
	}
	before := cfg.Settings()
	if err := ApplyEnv(&cfg, getenv); err != nil {
		return cfg, nil, err
	}
	mark(before, SourceEnv)
	if flags != nil {
		before = cfg.Settings()
		if err := flags(&cfg); err != nil {
			return cfg, nil, err
		}
		mark(before, SourceFlag)
	}
	out := cfg.Settings()
	for i := range out {
		if src, ok := sources[out[i].Key]; ok {
			out[i].Source = src
		} else {
			out[i].Source = SourceDefault
		}
	}
	return cfg, out, nil
}

// Settings lists every configuration value as text, in a fixed order, with
// inherited per-domain values shown as "inherit (<value>)".
func (c *Config) Settings() []Setting {
	var out []Setting
	add := func(k, v string) { out = append(out, Setting{Key: k, Value: v}) }
	b := strconv.FormatBool
	i := strconv.Itoa
	list := func(l []string) string { return strings.Join(l, ",") }
	m := &c.Mirror
	add("mirror.enabled", b(m.Enabled))
	add("mirror.exportRoot", m.ExportRoot)
	add("mirror.activeExportId", m.ActiveExportID)
	add("mirror.requireAuthentication", b(m.RequireAuthentication))
	add("mirror.maxIndexRequestsPerHour", i(m.MaxIndexRequestsPerHour))
	add("mirror.maxDownloadRequestsPerHour", i(m.MaxDownloadRequestsPerHour))
	for n, d := range m.Domains {
		p := fmt.Sprintf("mirror.domains[%d].", n)
		add(p+"id", d.ID)
		add(p+"displayName", d.DisplayName)
		if d.RequireAuthentication != nil {
			add(p+"requireAuthentication", b(*d.RequireAuthentication))
		} else {
			add(p+"requireAuthentication", "inherit ("+b(m.RequireAuthentication)+")")
		}
		if d.MaxIndexRequestsPerHour != nil {
			add(p+"maxIndexRequestsPerHour", i(*d.MaxIndexRequestsPerHour))
		} else {
			add(p+"maxIndexRequestsPerHour", "inherit ("+i(m.MaxIndexRequestsPerHour)+")")
		}
		if d.MaxDownloadRequestsPerHour != nil {
			add(p+"maxDownloadRequestsPerHour", i(*d.MaxDownloadRequestsPerHour))
		} else {
			add(p+"maxDownloadRequestsPerHour", "inherit ("+i(m.MaxDownloadRequestsPerHour)+")")
		}
	}
	a := &c.Authority
	add("authority.enabled", b(c.AuthorityEnabled()))
	add("authority.allowAnonymousFallback", b(a.AllowAnonymousFallback))
	add("authority.bypassNetworks", list(a.BypassNetworks))
	add("authority.keysFile", a.KeysFile)
	add("authority.issuer", a.Issuer)
	add("authority.audiences", list(a.Audiences))
	s := &c.Server
	add("server.listen", s.Listen)
	add("server.tlsCert", s.TLSCert)
	add("server.tlsKey", s.TLSKey)
	add("server.htpasswd", s.Htpasswd)
	add("server.trustedProxies", list(s.TrustedProxies))
	add("server.adminUsers", list(s.AdminUsers))
	add("server.enableImportApi", b(s.EnableImportAPI))
	return out
}

var domainIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidDomainID reports whether id is a domain id (CONTRACT.md §1.1).
func ValidDomainID(id string) bool { return domainIDPattern.MatchString(id) }

// Validate checks the configuration without reading any file. Every
// problem is reported, each as a usage error.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, failure.Usagef(format, args...)) }
	if !c.Mirror.Enabled {
		bad("mirror is disabled (mirror.enabled=false or CONCELIER__MIRROR__ENABLED=false)")
	}
	if c.Mirror.ExportRoot == "" {
		bad("no export root: set --export-root, CONCELIER__MIRROR__EXPORTROOT or mirror.exportRoot")
	}
	if c.Mirror.MaxIndexRequestsPerHour < 0 {
		bad("mirror.maxIndexRequestsPerHour %d: must be >= 0", c.Mirror.MaxIndexRequestsPerHour)
	}
	if c.Mirror.MaxDownloadRequestsPerHour < 0 {
		bad("mirror.maxDownloadRequestsPerHour %d: must be >= 0", c.Mirror.MaxDownloadRequestsPerHour)
	}
	seen := map[string]bool{}
	for n, d := range c.Mirror.Domains {
		if !ValidDomainID(d.ID) {
			bad("mirror.domains[%d].id %q: want ^[a-z0-9][a-z0-9-]{0,62}$", n, d.ID)
		}
		if seen[d.ID] {
			bad("mirror.domains[%d].id %q: listed twice", n, d.ID)
		}
		seen[d.ID] = true
		if d.MaxIndexRequestsPerHour != nil && *d.MaxIndexRequestsPerHour < 0 {
			bad("mirror.domains[%d].maxIndexRequestsPerHour: must be >= 0", n)
		}
		if d.MaxDownloadRequestsPerHour != nil && *d.MaxDownloadRequestsPerHour < 0 {
			bad("mirror.domains[%d].maxDownloadRequestsPerHour: must be >= 0", n)
		}
	}
	if c.Server.Listen == "" {
		bad("no listen address")
	} else if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("listen address %q: %v", c.Server.Listen, err)
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		bad("--tls-cert and --tls-key go together")
	}
	for _, p := range c.Authority.BypassNetworks {
		if _, err := ParsePrefix(p); err != nil {
			bad("bypass network %q: %v", p, err)
		}
	}
	for _, p := range c.Server.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			bad("trusted proxy %q: %v", p, err)
		}
	}
	if c.AuthorityEnabled() {
		if c.Authority.KeysFile == "" {
			bad("authority is enabled but no keys file is set (--authority-keys)")
		}
		if c.Authority.Issuer == "" {
			bad("authority is enabled but no issuer is set (--authority-issuer)")
		}
		if len(c.Authority.Audiences) == 0 {
			bad("authority is enabled but no audience is set (--authority-audience)")
		}
	}
	hasCreds := c.Server.Htpasswd != "" || c.AuthorityEnabled()
	if !hasCreds {
		if c.Mirror.RequireAuthentication {
			bad("authentication is required but neither --htpasswd nor --authority-keys is configured")
		}
		for _, d := range c.Mirror.Domains {
			if d.RequireAuthentication != nil && *d.RequireAuthentication {
				bad("domain %s requires authentication but neither --htpasswd nor --authority-keys is configured", d.ID)
			}
		}
		if c.Server.EnableImportAPI {
			bad("the import API needs an authenticated admin: configure --htpasswd with --admin-user, or --authority-keys")
		}
	}
	return errors.Join(errs...)
}

// ParsePrefix parses a CIDR, or a single address as a one-address prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
