package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
)

// Cache-Control values of CONTRACT.md §3.
const (
	CacheIndex   = "public, max-age=60"
	CacheDomain  = "public, max-age=300, immutable"
	CacheExport  = "public, max-age=31536000, immutable"
	CacheNoStore = "no-store"
)

// AuthRealm is the realm of the WWW-Authenticate challenges.
const AuthRealm = "stellaops-mirror"

// Bounds on request bodies and state files the import API reads.
const (
	maxImportBody  = 64 << 10
	maxStatusBytes = 1 << 20
)

// Route names used in metrics labels.
const (
	RouteIndex             = "index"
	RouteDomainFile        = "domain_file"
	RouteExportFile        = "export_file"
	RouteExcititorIndex    = "excititor_index"
	RouteExcititorDownload = "excititor_download"
	RouteHealthz           = "healthz"
	RouteReadyz            = "readyz"
	RouteMetrics           = "metrics"
	RouteImport            = "import"
	RouteImportStatus      = "import_status"
	RouteOther             = "other"
)

// Options configure a Handler or Server. Only Config is required.
type Options struct {
	// Config is the effective configuration (see ResolveConfig).
	Config Config
	// Now is the clock; nil means time.Now. Budgets, token expiry, export
	// expiry and the credential cache all read it.
	Now func() time.Time
	// AccessLog receives one JSON object per request and line; nil
	// disables the access log.
	AccessLog io.Writer
	// Logf receives operator messages (reloads, active export changes,
	// load failures); nil discards them.
	Logf func(format string, args ...any)
	// Import runs an import for the import API. Nil makes the API answer
	// 501 when it is enabled.
	Import ImportFunc
	// MaxClients bounds the number of tracked client budgets
	// (default DefaultMaxClients).
	MaxClients int
	// CredentialCacheSize and CredentialCacheTTL bound the cache of
	// verified Basic credentials (defaults DefaultCredentialCacheSize and
	// DefaultCredentialCacheTTL).
	CredentialCacheSize int
	CredentialCacheTTL  time.Duration
	// BcryptConcurrency bounds concurrent bcrypt comparisons
	// (default GOMAXPROCS).
	BcryptConcurrency int
	// DrainTimeout bounds how long Shutdown waits for in-flight requests
	// (default DefaultDrainTimeout).
	DrainTimeout time.Duration
}

// policy is the access policy of a domain, or of the routes that belong to
// no domain.
type policy struct {
	requireAuth   bool
	indexLimit    int
	downloadLimit int
	indexScope    string
	downloadScope string
}

func (p *policy) budget(index bool) (int, string) {
	if index {
		return p.indexLimit, p.indexScope
	}
	return p.downloadLimit, p.downloadScope
}

// authState is the reloadable part of authentication.
type authState struct {
	htpasswd *htpasswd
	jwt      *jwtVerifier
}

// Handler serves the mirror routes of CONTRACT.md §3 for an export root.
type Handler struct {
	cfg      Config
	now      func() time.Time
	logf     func(string, ...any)
	exports  *exportSet
	limiter  *limiter
	basic    *basicAuth
	tokens   *verifiedCache[*tokenInfo]
	auth     atomic.Pointer[authState]
	metrics  *metrics
	access   *accessLog
	global   policy
	domains  map[string]*policy
	trusted  prefixSet
	bypass   prefixSet
	admins   map[string]bool
	importer *importRunner

	// afterOpen runs after a file is opened, before it is sent (tests).
	afterOpen func(*http.Request)
}

// NewHandler builds the handler: it checks the configuration, reads the
// htpasswd and key files and prepares the export root. It does not require
// an active export; /readyz reports that.
func NewHandler(opts Options) (*Handler, error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	h := &Handler{
		cfg:     cfg,
		now:     now,
		logf:    logf,
		limiter: newLimiter(opts.MaxClients),
		basic:   newBasicAuth(opts.CredentialCacheSize, opts.CredentialCacheTTL, opts.BcryptConcurrency),
		tokens:  newVerifiedCache[*tokenInfo](opts.CredentialCacheSize, opts.CredentialCacheTTL),
		domains: map[string]*policy{},
		admins:  map[string]bool{},
	}
	var err error
	if h.trusted, err = parsePrefixes(cfg.Server.TrustedProxies); err != nil {
		return nil, err
	}
	if h.bypass, err = parsePrefixes(cfg.Authority.BypassNetworks); err != nil {
		return nil, err
	}
	for _, u := range cfg.Server.AdminUsers {
		h.admins[u] = true
	}
	m := cfg.Mirror
	h.global = policy{
		requireAuth: m.RequireAuthentication, indexLimit: m.MaxIndexRequestsPerHour,
		downloadLimit: m.MaxDownloadRequestsPerHour, indexScope: "g|i", downloadScope: "g|d",
	}
	for _, d := range m.Domains {
		p := &policy{
			requireAuth: m.RequireAuthentication, indexLimit: m.MaxIndexRequestsPerHour,
			downloadLimit: m.MaxDownloadRequestsPerHour,
			indexScope:    "d:" + d.ID + "|i", downloadScope: "d:" + d.ID + "|d",
		}
		if d.RequireAuthentication != nil {
			p.requireAuth = *d.RequireAuthentication
		}
		if d.MaxIndexRequestsPerHour != nil {
			p.indexLimit = *d.MaxIndexRequestsPerHour
		}
		if d.MaxDownloadRequestsPerHour != nil {
			p.downloadLimit = *d.MaxDownloadRequestsPerHour
		}
		h.domains[d.ID] = p
	}
	st, err := h.loadAuth()
	if err != nil {
		return nil, err
	}
	h.auth.Store(st)
	h.exports = newExportSet(m.ExportRoot, m.ActiveExportID, now, logf)
	h.metrics = newMetrics(h.exports, now)
	h.basic.compares = h.metrics.bcrypt.Inc
	if opts.AccessLog != nil {
		h.access = newAccessLog(opts.AccessLog)
	}
	h.importer = &importRunner{run: opts.Import, root: m.ExportRoot}
	return h, nil
}

// loadAuth reads the htpasswd and authority key files.
func (h *Handler) loadAuth() (*authState, error) {
	st := &authState{}
	var errs []error
	if p := h.cfg.Server.Htpasswd; p != "" {
		hp, err := loadHtpasswd(p)
		if err != nil {
			errs = append(errs, err)
		}
		st.htpasswd = hp
	}
	if h.cfg.AuthorityEnabled() {
		keys, err := loadJWTKeys(h.cfg.Authority.KeysFile)
		if err != nil {
			errs = append(errs, err)
		}
		st.jwt = &jwtVerifier{path: h.cfg.Authority.KeysFile, keys: keys, issuer: h.cfg.Authority.Issuer, audiences: h.cfg.Authority.Audiences}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return st, nil
}

// Reload re-reads the htpasswd and authority key files (SIGHUP). On error
// the previous credentials stay in force. Verified credentials cached so
// far are forgotten.
func (h *Handler) Reload() error {
	st, err := h.loadAuth()
	if err != nil {
		return err
	}
	h.auth.Store(st)
	h.basic.cache.clear()
	h.tokens.clear()
	h.exports.invalidate()
	return nil
}

// ActiveExport returns the id of the export being served.
func (h *Handler) ActiveExport() (string, error) {
	e, err := h.exports.current()
	if err != nil {
		return "", err
	}
	defer e.release()
	return e.id, nil
}

// Close writes out the access log and releases the open export folders.
func (h *Handler) Close() {
	if h.access != nil {
		h.access.flush()
	}
	h.exports.close()
}

// route is a parsed request target.
type route struct {
	name     string
	domain   string // "" for routes that belong to no domain
	exportID string
	rel      string
	index    bool   // counts against the index budget
	scope    string // bearer scope required
	methods  string // Allow header value
}

// parseRoute maps a request path onto a route. ok is false for paths that
// try to leave the export (400); an unknown path gives RouteOther (404).
func parseRoute(r *http.Request) (route, bool) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.ContainsAny(p, "\\") {
		return route{}, false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return route{}, false
		}
	}
	if raw := r.URL.RawPath; raw != "" && strings.Contains(strings.ToLower(raw), "%2f") {
		return route{}, false
	}
	for rest := p[1:]; ; {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." {
			return route{}, false
		}
		if !more {
			break
		}
		rest = after
	}
	read := "GET, HEAD"
	switch p {
	case "/healthz":
		return route{name: RouteHealthz, methods: read}, true
	case "/readyz":
		return route{name: RouteReadyz, methods: read}, true
	case "/metrics":
		return route{name: RouteMetrics, methods: read}, true
	case "/api/v1/mirror/import":
		return route{name: RouteImport, scope: ScopeConcelierAdmin, methods: "POST"}, true
	case "/api/v1/mirror/import/status":
		return route{name: RouteImportStatus, scope: ScopeConcelierAdmin, methods: read}, true
	case "/concelier/exports/index.json":
		return route{name: RouteIndex, index: true, scope: ScopeConcelierRead, methods: read}, true
	}
	if rest, ok := strings.CutPrefix(p, "/concelier/exports/"); ok {
		if rest, ok := strings.CutPrefix(rest, "mirror/"); ok {
			dom, name, ok := strings.Cut(rest, "/")
			if ok && ValidDomainID(dom) {
				switch name {
				case bundle.DomainManifestName, bundle.DomainBundleName, bundle.DomainJWSName, bundle.DomainSigName:
					return route{name: RouteDomainFile, domain: dom, rel: name, scope: ScopeConcelierRead, methods: read}, true
				}
			}
			return route{name: RouteOther}, true
		}
		id, rel, ok := strings.Cut(rest, "/")
		if ok && exportroot.ValidExportID(id) && safeRelPath(rel) {
			rt := route{name: RouteExportFile, exportID: id, rel: rel, scope: ScopeConcelierRead, methods: read}
			if rel == bundle.IndexPath {
				rt.index = true
			}
			if sub, ok := strings.CutPrefix(rel, bundle.MirrorDir+"/"); ok {
				if dom, _, ok := strings.Cut(sub, "/"); ok && ValidDomainID(dom) {
					rt.domain = dom
				}
			}
			return rt, true
		}
		return route{name: RouteOther}, true
	}
	if rest, ok := strings.CutPrefix(p, "/excititor/mirror/"); ok {
		dom, sub, ok := strings.Cut(rest, "/")
		if ok && ValidDomainID(dom) {
			if sub == "index" {
				return route{name: RouteExcititorIndex, domain: dom, index: true, scope: ScopeExcititorRead, methods: read}, true
			}
			if key, ok := strings.CutPrefix(sub, "download/"); ok && safeRelPath(key) {
				return route{name: RouteExcititorDownload, domain: dom, rel: key, scope: ScopeExcititorRead, methods: read}, true
			}
		}
	}
	return route{name: RouteOther}, true
}

// request is the state of one request, for logging and metrics.
type request struct {
	route     route
	client    netip.Addr
	principal string
	exportID  string
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := h.now()
	w := &responseWriter{ResponseWriter: rw}
	rq := &request{}
	defer func() {
		d := h.now().Sub(start)
		status := w.status
		if status == 0 {
			status = http.StatusOK
		}
		name := rq.route.name
		if name == "" {
			name = RouteOther
		}
		h.metrics.observe(name, status, w.bytes, d)
		if h.access != nil {
			h.access.write(accessEntry{
				Time: start.UTC(), Method: r.Method, Path: r.URL.Path, Status: status, Bytes: w.bytes,
				Duration: d.Seconds(), Client: addrString(rq.client), Principal: rq.principal, Export: rq.exportID,
			})
		}
	}()
	if h.access != nil {
		h.access.begin()
	}
	rq.client = clientAddr(r, h.trusted)
	rt, ok := parseRoute(r)
	if !ok {
		rq.route = route{name: RouteOther}
		writeError(w, http.StatusBadRequest, "invalid request path")
		return
	}
	rq.route = rt
	if rt.name == RouteOther || (!h.cfg.Server.EnableImportAPI && (rt.name == RouteImport || rt.name == RouteImportStatus)) {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if !methodAllowed(rt.methods, r.Method) {
		w.Header().Set("Allow", rt.methods)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+rt.methods)
		return
	}
	switch rt.name {
	case RouteHealthz:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	case RouteReadyz:
		h.serveReady(w)
		return
	case RouteMetrics:
		w.Header().Set("Cache-Control", CacheNoStore)
		h.metrics.handler.ServeHTTP(w, r)
		return
	}
	pol := &h.global
	if rt.domain != "" {
		if p, ok := h.domains[rt.domain]; ok {
			pol = p
		} else {
			// A domain without settings of its own: the global values,
			// with budgets of its own.
			p := h.global
			p.indexScope, p.downloadScope = "d:"+rt.domain+"|i", "d:"+rt.domain+"|d"
			pol = &p
		}
	}
	who, ok := h.authorize(w, r, rt, pol, rq.client)
	if !ok {
		return
	}
	rq.principal = who
	switch rt.name {
	case RouteImport:
		h.serveImport(w, r)
		return
	case RouteImportStatus:
		h.serveImportStatus(w, r)
		return
	}

	var e *export
	var err error
	if rt.exportID != "" {
		e, err = h.exports.byID(rt.exportID)
		if err != nil {
			writeError(w, http.StatusNotFound, "unknown export "+rt.exportID)
			return
		}
	} else {
		e, err = h.exports.current()
		if err != nil {
			w.Header().Set("Retry-After", "60")
			writeError(w, http.StatusServiceUnavailable, "no active export")
			return
		}
	}
	defer e.release()
	rq.exportID = e.id

	switch rt.name {
	case RouteIndex:
		h.serveFile(w, r, e, e.files[bundle.IndexPath], CacheIndex)
	case RouteExportFile:
		h.serveFile(w, r, e, e.files[rt.rel], CacheExport)
	case RouteDomainFile, RouteExcititorIndex, RouteExcititorDownload:
		d := e.domains[rt.domain]
		if d == nil {
			writeError(w, http.StatusNotFound, "unknown domain "+rt.domain)
			return
		}
		switch rt.name {
		case RouteDomainFile:
			h.serveFile(w, r, e, d.files[rt.rel], CacheDomain)
		case RouteExcititorIndex:
			h.serveMemory(w, r, e, d.index, d.index.data, CacheIndex)
		case RouteExcititorDownload:
			v := d.vex[rt.rel]
			if v == nil {
				writeError(w, http.StatusNotFound, "unknown export key "+rt.rel)
				return
			}
			h.serveFile(w, r, e, v.file, CacheDomain)
		}
	}
}

func methodAllowed(allow, m string) bool {
	for rest := allow; ; {
		a, after, more := strings.Cut(rest, ", ")
		if a == m {
			return true
		}
		if !more {
			return false
		}
		rest = after
	}
}

func (h *Handler) serveReady(w http.ResponseWriter) {
	e, err := h.exports.current()
	if err != nil {
		// The cause, with paths, goes to the server log only.
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": "no active export"})
		return
	}
	defer e.release()
	body := map[string]string{"status": "ready", "exportId": e.id, "generatedAt": e.generatedAt.UTC().Format(time.RFC3339)}
	if !e.expiresAt.IsZero() {
		body["expiresAt"] = e.expiresAt.UTC().Format(time.RFC3339)
		if !h.now().Before(e.expiresAt) {
			body["status"] = "not ready"
			body["error"] = "active export " + e.id + " expired at " + body["expiresAt"]
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
	}
	writeJSON(w, http.StatusOK, body)
}

// serveFile sends one listed file of e with its strong ETag, from memory
// for small files and from a reused open handle otherwise.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, e *export, f *fileEntry, cacheControl string) {
	if f == nil {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	data, err := e.cached(f)
	if err == nil && data != nil {
		h.serveMemory(w, r, e, f, data, cacheControl)
		return
	}
	if errors.Is(err, errDigestMismatch) {
		h.logf("export %s: %v; refusing to serve it", e.id, err)
		writeError(w, http.StatusInternalServerError, "file does not match mirror.json")
		return
	}
	fh, err := e.openServed(f)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			writeError(w, http.StatusNotFound, "not found")
		case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ENOMEM):
			h.logf("export %s: open %s: %v", e.id, f.rel, err)
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "server busy")
		case errors.Is(err, syscall.EIO):
			h.logf("export %s: open %s: %v", e.id, f.rel, err)
			writeError(w, http.StatusInternalServerError, "cannot read file")
		case errors.Is(err, errDigestMismatch):
			h.logf("export %s: %v; refusing to serve it", e.id, err)
			writeError(w, http.StatusInternalServerError, "file does not match mirror.json")
		default:
			// Permission, a symlink out of the export, not a regular
			// file: refused as if absent.
			h.logf("export %s: refused to open %s: %v", e.id, f.rel, err)
			writeError(w, http.StatusNotFound, "not found")
		}
		return
	}
	if h.afterOpen != nil {
		h.afterOpen(r)
	}
	if h.sendFile(w, r, e, f, fh, cacheControl) {
		e.handles.put(f, fh)
	} else {
		fh.Close()
	}
}

// sendFile sends fh, an open handle of f. A plain GET or HEAD is answered
// directly, the body going out with sendfile; conditional and range
// requests go through http.ServeContent. It reports whether fh is still
// usable for another response.
func (h *Handler) sendFile(w http.ResponseWriter, r *http.Request, e *export, f *fileEntry, fh *os.File, cacheControl string) bool {
	setFileHeaders(w.Header(), cacheControl, f)
	if conditional(r) {
		http.ServeContent(w, r, "", e.generatedAt, fh)
		return true
	}
	writePlainHeader(w, e, f)
	if r.Method == http.MethodHead {
		return true
	}
	// A client that goes away leaves the handle usable (the next response
	// seeks to the start); a file shorter than listed or a read error does not.
	_, err := io.CopyN(w, fh, f.size)
	return err == nil || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.EIO))
}

// conditionalHeaders are the request headers that need http.ServeContent.
var conditionalHeaders = []string{"Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// serveMemory sends a body held in memory. A plain GET or HEAD is answered
// directly; conditional and range requests go through http.ServeContent.
func (h *Handler) serveMemory(w http.ResponseWriter, r *http.Request, e *export, f *fileEntry, data []byte, cacheControl string) {
	setFileHeaders(w.Header(), cacheControl, f)
	if conditional(r) {
		http.ServeContent(memoryWriter{w}, r, "", e.generatedAt, bytes.NewReader(data))
		return
	}
	writePlainHeader(w, e, f)
	if r.Method != http.MethodHead {
		_, _ = w.Write(data)
	}
}

// conditional reports whether r carries a header that needs
// http.ServeContent (a range or a precondition).
func conditional(r *http.Request) bool {
	for _, k := range conditionalHeaders {
		if _, ok := r.Header[k]; ok {
			return true
		}
	}
	return false
}

// writePlainHeader answers a plain GET or HEAD of f with 200 and the
// headers http.ServeContent would have set.
func writePlainHeader(w http.ResponseWriter, e *export, f *fileEntry) {
	hdr := w.Header()
	hdr["Accept-Ranges"] = acceptRanges
	if e.lastMod != nil {
		hdr["Last-Modified"] = e.lastMod
	}
	hdr["Content-Length"] = f.lenHdr
	w.WriteHeader(http.StatusOK)
}

// Shared response header values.
var (
	acceptRanges = []string{"bytes"}
	nosniff      = []string{"nosniff"}
	cacheHdrs    = map[string][]string{
		CacheIndex: {CacheIndex}, CacheDomain: {CacheDomain}, CacheExport: {CacheExport}, CacheNoStore: {CacheNoStore},
	}
)

func setFileHeaders(hdr http.Header, cacheControl string, f *fileEntry) {
	hdr["Cache-Control"] = cacheHdrs[cacheControl]
	hdr["Etag"] = f.etagHdr
	hdr["Content-Type"] = f.typeHdr
	hdr["X-Content-Type-Options"] = nosniff
}

// authorize authenticates the request when needed and spends its budget.
// It returns the principal's name ("" for anonymous) or writes the refusal
// and returns false. Budgets are checked before any bcrypt work; an attempt
// with missing or wrong credentials is charged to the client address.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, rt route, pol *policy, client netip.Addr) (string, bool) {
	now := h.now()
	limit, scope := pol.budget(rt.index)
	admin := rt.name == RouteImport || rt.name == RouteImportStatus
	need := pol.requireAuth || admin
	addrKey := scope + "|ip:" + addrString(client)
	charged := false
	chargeAddr := func() bool {
		charged = true
		if ok, wait := h.limiter.take(addrKey, limit, now); !ok {
			h.tooMany(w, wait, limit, rt.index)
			return false
		}
		return true
	}
	if !admin && len(h.bypass) > 0 && h.bypass.contains(client) {
		return "", chargeAddr()
	}

	st := h.auth.Load()
	authz := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(authz, " ")
	var name, key string
	var scopes map[string]bool
	var failed error
	switch {
	case authz == "":
		if !chargeAddr() {
			return "", false
		}
		if need && !(h.cfg.Authority.AllowAnonymousFallback && !admin) {
			h.unauthorized(w, rt, "authentication required")
			return "", false
		}
		return "", true
	case strings.EqualFold(scheme, "Basic") && st.htpasswd != nil:
		user, pass, ok := r.BasicAuth()
		if !ok {
			failed = ErrBadCredentials
			break
		}
		if u, hit := h.basic.cached(user, pass, now); hit {
			name, key = u, "|user:"+u
			break
		}
		if !chargeAddr() {
			return "", false
		}
		if err := h.basic.verify(r.Context(), st.htpasswd, user, pass, now); err != nil {
			if errors.Is(err, ErrAuthBusy) {
				w.Header().Set("Retry-After", "1")
				writeError(w, http.StatusServiceUnavailable, "too many password checks in progress; retry")
				return "", false
			}
			failed = err
			break
		}
		name, key = user, "|user:"+user
	case strings.EqualFold(scheme, "Bearer") && st.jwt != nil:
		token := strings.TrimSpace(cred)
		tk := h.tokens.key("bearer", token)
		info, hit := h.tokens.get(tk, now)
		if !hit {
			if !chargeAddr() {
				return "", false
			}
			var err error
			if info, err = st.jwt.verify(token, now); err != nil {
				failed = err
				break
			}
			h.tokens.put(tk, info, now, info.expires.Add(JWTClockSkew))
		}
		name, scopes = info.subject, info.scopes
		key = "|sub:" + info.subject
		if info.subject == "" {
			key = ""
		}
	default:
		failed = ErrBadCredentials
	}
	if failed != nil {
		if !charged && !chargeAddr() {
			return "", false
		}
		if need {
			h.unauthorized(w, rt, "invalid credentials")
			return "", false
		}
		return "", true
	}
	if scopes != nil && need && !scopes[rt.scope] {
		h.forbidden(w, rt, "token lacks scope "+rt.scope)
		return "", false
	}
	if admin {
		isAdmin := (scopes == nil && h.admins[name]) || (scopes != nil && scopes[ScopeConcelierAdmin])
		if !isAdmin {
			h.forbidden(w, rt, "the import API needs an admin")
			return "", false
		}
	}
	if key == "" {
		if !charged && !chargeAddr() {
			return "", false
		}
		return name, true
	}
	if ok, wait := h.limiter.take(scope+key, limit, now); !ok {
		h.tooMany(w, wait, limit, rt.index)
		return "", false
	}
	return name, true
}

func (h *Handler) challenge(w http.ResponseWriter, rt route) {
	scope := rt.scope
	if scope == "" {
		scope = ScopeConcelierRead
	}
	w.Header().Add("WWW-Authenticate", `Bearer realm="`+AuthRealm+`", scope="`+scope+`"`)
	if st := h.auth.Load(); st.htpasswd != nil {
		w.Header().Add("WWW-Authenticate", `Basic realm="`+AuthRealm+`"`)
	}
}

func (h *Handler) unauthorized(w http.ResponseWriter, rt route, msg string) {
	h.challenge(w, rt)
	writeError(w, http.StatusUnauthorized, msg)
}

func (h *Handler) forbidden(w http.ResponseWriter, rt route, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+AuthRealm+`", error="insufficient_scope", scope="`+rt.scope+`"`)
	writeError(w, http.StatusForbidden, msg)
}

func (h *Handler) tooMany(w http.ResponseWriter, wait time.Duration, limit int, index bool) {
	secs := retryAfterSeconds(wait)
	kind := "download"
	if index {
		kind = "index"
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{
		"error":             fmt.Sprintf("budget exceeded: %d %s requests per hour", limit, kind),
		"retryAfterSeconds": secs,
	})
}

// writeJSON writes v as a JSON body with Cache-Control: no-store.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", CacheNoStore)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// responseWriter records the status and body bytes. It keeps io.ReaderFrom
// so file bodies still go out with sendfile.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type writerOnly struct{ io.Writer }

// memoryWriter hides io.ReaderFrom for bodies held in memory: io.Copy then
// uses a buffer the size of the body instead of the connection's generic
// 32 KiB copy.
type memoryWriter struct{ http.ResponseWriter }

// accessLog writes one JSON line per request. Credentials never reach it:
// only the principal's name is logged, and the path without its query.
// While requests are in flight lines are buffered; they are written out
// when the server goes idle, when the buffer fills, and within a second.
type accessLog struct {
	mu       sync.Mutex
	bw       *bufio.Writer
	inflight atomic.Int64
	timer    *time.Timer
}

type accessEntry struct {
	Time      time.Time `json:"time"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	Bytes     int64     `json:"bytes"`
	Duration  float64   `json:"duration"`
	Client    string    `json:"client"`
	Principal string    `json:"principal"`
	Export    string    `json:"export"`
}

// accessLogDelay bounds how long a line waits in the buffer.
const accessLogDelay = time.Second

func newAccessLog(w io.Writer) *accessLog {
	return &accessLog{bw: bufio.NewWriterSize(w, 64<<10)}
}

// begin counts a request in flight.
func (a *accessLog) begin() { a.inflight.Add(1) }

// flush writes out buffered lines.
func (a *accessLog) flush() {
	a.mu.Lock()
	_ = a.bw.Flush()
	a.mu.Unlock()
}

// write logs a finished request.
func (a *accessLog) write(e accessEntry) {
	var buf [512]byte
	b := e.appendJSON(buf[:0])
	idle := a.inflight.Add(-1) == 0
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = a.bw.Write(b)
	switch {
	case idle:
		_ = a.bw.Flush()
	case a.bw.Buffered() > 0 && a.timer == nil:
		a.timer = time.AfterFunc(accessLogDelay, func() {
			a.mu.Lock()
			a.timer = nil
			_ = a.bw.Flush()
			a.mu.Unlock()
		})
	}
}

// appendJSON appends e as one JSON line, the same document json.Marshal
// would produce, without reflection.
func (e *accessEntry) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, e.Duration, 'f', -1, 64)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, e.Client)
	b = append(b, `,"principal":`...)
	b = appendJSONString(b, e.Principal)
	b = append(b, `,"export":`...)
	b = appendJSONString(b, e.Export)
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
