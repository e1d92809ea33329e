package serve

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
	"github.com/stellaops/stellaops-cli/pkg/exportroot"
)

// Bounds on what serve reads into memory from an export.
const (
	maxManifestBytes       = 64 << 20
	maxDomainManifestBytes = 16 << 20
	maxSmallFileBytes      = 16 << 20
)

// Small files (index.json, manifest.json, signatures, most VEX files) are
// kept in memory after their first request, checked once against the
// digest in mirror.json; larger ones are sent from disk with sendfile.
const (
	maxMemoryFile   = 256 << 10
	maxMemoryExport = 32 << 20
)

// fileEntry is one servable file of an export.
type fileEntry struct {
	rel         string // path inside the export folder, slash-separated
	size        int64
	sum         string // lowercase hex SHA-256 from mirror.json
	etag        string // `"<sha256 hex>"`
	contentType string
	// Response header values, shared by every response.
	etagHdr, typeHdr, lenHdr []string

	mu   sync.Mutex
	data []byte // the verified content, once read
}

// vexEntry is one Excititor export of a domain.
type vexEntry struct {
	file *fileEntry
	vex  bundle.VexExport
}

// errDigestMismatch reports a file whose bytes on disk differ from mirror.json.
var errDigestMismatch = errors.New("file does not match its digest in mirror.json")

// errNotRegular reports a listed path that is not a regular file.
var errNotRegular = errors.New("not a regular file")

// domain is one domain of a loaded export.
type domain struct {
	id         string
	files      map[string]*fileEntry // manifest.json, bundle.json, bundle.json.jws, bundle.json.sig
	vex        map[string]*vexEntry  // by export key
	index      *fileEntry            // the excititor index document, in memory
	hasExports bool
}

// export is a loaded, immutable export folder. Files are opened through
// root, looked up only through files, never by joining request paths.
type export struct {
	id          string
	dir         string
	root        *os.Root
	manifest    bundle.Manifest
	generatedAt time.Time
	expiresAt   time.Time
	lastMod     []string              // Last-Modified header value (generatedAt)
	files       map[string]*fileEntry // every file of the export by relative path
	domains     map[string]*domain
	refs        atomic.Int64 // open responses, plus one while cached
	closeOnce   sync.Once
	memBytes    atomic.Int64 // bytes of small files held in memory
	handles     handlePool   // open files of the export, reused by responses
}

// loadExport reads the manifests of the export folder rootDir/id. Only
// mirror.json and the domain manifests are parsed; mirror.dsse.json and
// SHA256SUMS are hashed once here because mirror.json does not list them.
func loadExport(rootDir, id string, warn func(string, ...any)) (*export, error) {
	if !exportroot.ValidExportID(id) {
		return nil, fmt.Errorf("export id %q: %w", id, exportroot.ErrInvalidExportID)
	}
	dir := filepath.Join(rootDir, id)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open export %s: %w", dir, err)
	}
	e := &export{id: id, dir: dir, root: root, files: map[string]*fileEntry{}, domains: map[string]*domain{}}
	if err := e.load(warn); err != nil {
		root.Close()
		return nil, err
	}
	e.refs.Store(1)
	return e, nil
}

func (e *export) load(warn func(string, ...any)) error {
	raw, err := readBounded(e.root, bundle.ManifestFile, maxManifestBytes)
	if err != nil {
		return fmt.Errorf("export %s: %w", e.id, err)
	}
	if err := json.Unmarshal(raw, &e.manifest); err != nil {
		return fmt.Errorf("export %s: parse %s: %w", e.id, bundle.ManifestFile, err)
	}
	if e.manifest.ExportID != "" && e.manifest.ExportID != e.id {
		return fmt.Errorf("export %s: %s names export %s", e.id, bundle.ManifestFile, e.manifest.ExportID)
	}
	e.generatedAt = e.manifest.GeneratedAt
	if !e.generatedAt.IsZero() {
		e.lastMod = []string{e.generatedAt.UTC().Format(http.TimeFormat)}
	}
	e.expiresAt = e.manifest.ExpiresAt
	e.add(bundle.ManifestFile, int64(len(raw)), sha256Hex(raw))
	for _, name := range []string{bundle.EnvelopeFile, bundle.ChecksumsFile} {
		b, err := readBounded(e.root, name, maxSmallFileBytes)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("export %s: %w", e.id, err)
		}
		e.add(name, int64(len(b)), sha256Hex(b))
	}
	for _, f := range e.manifest.Files {
		if !safeRelPath(f.Path) {
			return fmt.Errorf("export %s: %s lists unsafe path %q", e.id, bundle.ManifestFile, f.Path)
		}
		if !isHexSHA256(f.SHA256) {
			return fmt.Errorf("export %s: %s: bad sha256 for %s", e.id, bundle.ManifestFile, f.Path)
		}
		e.add(f.Path, f.Size, strings.ToLower(f.SHA256))
	}
	for _, id := range e.manifest.Domains {
		if !ValidDomainID(id) {
			return fmt.Errorf("export %s: %s lists bad domain id %q", e.id, bundle.ManifestFile, id)
		}
		d, err := e.loadDomain(id, warn)
		if err != nil {
			return err
		}
		e.domains[id] = d
	}
	return nil
}

func (e *export) add(rel string, size int64, sum string) {
	e.files[rel] = newFileEntry(rel, size, sum, contentTypeFor(rel))
}

func newFileEntry(rel string, size int64, sum, contentType string) *fileEntry {
	f := &fileEntry{rel: rel, size: size, sum: sum, etag: `"` + sum + `"`, contentType: contentType}
	f.etagHdr = []string{f.etag}
	f.typeHdr = []string{contentType}
	f.lenHdr = []string{strconv.FormatInt(size, 10)}
	return f
}

func (e *export) loadDomain(id string, warn func(string, ...any)) (*domain, error) {
	d := &domain{id: id, files: map[string]*fileEntry{}, vex: map[string]*vexEntry{}}
	base := bundle.MirrorDir + "/" + id + "/"
	for _, name := range []string{bundle.DomainManifestName, bundle.DomainBundleName, bundle.DomainJWSName, bundle.DomainSigName} {
		if f, ok := e.files[base+name]; ok {
			d.files[name] = f
		}
	}
	mf, ok := d.files[bundle.DomainManifestName]
	if !ok {
		return nil, fmt.Errorf("export %s: domain %s has no %s in %s", e.id, id, bundle.DomainManifestName, bundle.ManifestFile)
	}
	raw, err := readBounded(e.root, mf.rel, maxDomainManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", e.id, err)
	}
	var dm bundle.DomainManifest
	if err := json.Unmarshal(raw, &dm); err != nil {
		return nil, fmt.Errorf("export %s: parse %s: %w", e.id, mf.rel, err)
	}
	idx := bundle.ExcititorIndex{DomainID: id, ExportID: e.id, GeneratedAt: dm.GeneratedAt, Exports: []bundle.ExcititorIndexEntry{}}
	if idx.GeneratedAt.IsZero() {
		idx.GeneratedAt = e.generatedAt
	}
	for _, x := range dm.Exports {
		rel := x.Path
		if rel == "" {
			rel = "vex/" + x.Key + ".json"
		}
		if x.Key == "" || !safeRelPath(x.Key) || !safeRelPath(rel) {
			warn("export %s: domain %s: skipping VEX export with unsafe key or path %q", e.id, id, x.Key)
			continue
		}
		f, ok := e.files[base+rel]
		if !ok {
			warn("export %s: domain %s: VEX export %s (%s) is not listed in %s; not served", e.id, id, x.Key, rel, bundle.ManifestFile)
			continue
		}
		d.vex[x.Key] = &vexEntry{file: f, vex: x}
		idx.Exports = append(idx.Exports, bundle.ExcititorIndexEntry{
			ExportKey: x.Key,
			Format:    x.Format,
			SHA256:    strings.Trim(f.etag, `"`),
			Size:      f.size,
			CreatedAt: x.CreatedAt,
			Href:      "/excititor/mirror/" + id + "/download/" + x.Key,
		})
	}
	sort.Slice(idx.Exports, func(i, j int) bool { return idx.Exports[i].ExportKey < idx.Exports[j].ExportKey })
	d.hasExports = len(idx.Exports) > 0
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(idx); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	d.index = newFileEntry("", int64(len(b)), sha256Hex(b), "application/json")
	d.index.data = b
	return d, nil
}

// open opens a listed file of the export.
func (e *export) open(f *fileEntry) (*os.File, error) {
	return e.root.Open(filepath.FromSlash(f.rel))
}

// cached returns the content of a small file, reading and checking it on
// first use. It returns nil, nil for files served from disk.
func (e *export) cached(f *fileEntry) ([]byte, error) {
	if f.size > maxMemoryFile {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.data != nil {
		return f.data, nil
	}
	if e.memBytes.Load()+f.size > maxMemoryExport {
		return nil, nil
	}
	fh, err := e.open(f)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", f.rel)
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxMemoryFile+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != f.size || sha256Hex(b) != f.sum {
		return nil, fmt.Errorf("%s: %w", f.rel, errDigestMismatch)
	}
	e.memBytes.Add(f.size)
	f.data = b
	return b, nil
}

// acquire takes a reference for a response; it fails once the export has
// been dropped from the cache and its last response finished.
func (e *export) acquire() bool {
	for {
		n := e.refs.Load()
		if n <= 0 {
			return false
		}
		if e.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference and closes the root with the last one.
func (e *export) release() {
	if e.refs.Add(-1) == 0 {
		e.closeOnce.Do(func() {
			e.handles.close()
			e.root.Close()
		})
	}
}

func readBounded(root *os.Root, rel string, limit int64) ([]byte, error) {
	f, err := root.Open(filepath.FromSlash(rel))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", rel, limit)
	}
	return b, nil
}

// safeRelPath reports whether p is a clean, relative, slash-separated path
// without "." or ".." elements, backslashes or control characters.
func safeRelPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\") || path.Clean(p) != p {
		return false
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	for _, el := range strings.Split(p, "/") {
		if el == "." || el == ".." || el == "" {
			return false
		}
	}
	return true
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func contentTypeFor(rel string) string {
	switch {
	case strings.HasSuffix(rel, ".json"):
		return "application/json"
	case strings.HasSuffix(rel, ".jws"):
		return "application/jose"
	case path.Base(rel) == bundle.ChecksumsFile:
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// exportSet resolves the active export and caches loaded exports by id.
type exportSet struct {
	rootDir  string
	override string
	now      func() time.Time
	warn     func(string, ...any)
	ttl      time.Duration
	maxCache int

	resolveMu sync.Mutex
	active    atomic.Pointer[activeState]

	mu    sync.Mutex
	cache map[string]*export
	order []string // least recently used first
	// failed remembers exports that did not load, so a broken folder is not
	// re-read on every request.
	failed map[string]time.Time
}

// activeState is the result of the last resolution.
type activeState struct {
	export    *export // nil when none is active
	err       error
	checkedAt time.Time
}

func newExportSet(rootDir, override string, now func() time.Time, warn func(string, ...any)) *exportSet {
	return &exportSet{
		rootDir: rootDir, override: override, now: now, warn: warn,
		ttl: time.Second, maxCache: 4,
		cache: map[string]*export{}, failed: map[string]time.Time{},
	}
}

// current returns the active export, re-resolving it at most once per ttl.
// The caller must release the returned export.
func (s *exportSet) current() (*export, error) {
	for attempt := 0; attempt < 3; attempt++ {
		st := s.active.Load()
		now := s.now()
		if st == nil || now.Sub(st.checkedAt) >= s.ttl || now.Before(st.checkedAt) {
			if st == nil {
				s.resolveMu.Lock()
				st = s.resolveLocked(now)
				s.resolveMu.Unlock()
			} else if s.resolveMu.TryLock() {
				st = s.resolveLocked(now)
				s.resolveMu.Unlock()
			}
		}
		if st.export == nil {
			return nil, st.err
		}
		if st.export.acquire() {
			return st.export, nil
		}
		// Evicted between load and acquire: resolve again.
		s.invalidate()
	}
	return nil, errors.New("active export changed repeatedly; try again")
}

// invalidate forces the next request to resolve the active export again.
func (s *exportSet) invalidate() {
	if st := s.active.Load(); st != nil {
		s.active.Store(&activeState{export: st.export, err: st.err, checkedAt: time.Time{}})
	}
}

func (s *exportSet) resolveLocked(now time.Time) *activeState {
	if st := s.active.Load(); st != nil && now.Sub(st.checkedAt) < s.ttl && !now.Before(st.checkedAt) {
		return st // another goroutine resolved meanwhile
	}
	st := &activeState{checkedAt: now}
	id, err := exportroot.ResolveActive(s.rootDir, s.override)
	if err == nil {
		st.export, err = s.get(id)
	}
	st.err = err
	prev := s.active.Swap(st)
	switch {
	case err != nil && (prev == nil || prev.err == nil || prev.err.Error() != err.Error()):
		s.warn("no active export: %v", err)
	case prev != nil && prev.export != nil && st.export != nil && prev.export.id != st.export.id:
		s.warn("active export is now %s (was %s)", st.export.id, prev.export.id)
	case prev != nil && prev.err != nil && st.export != nil:
		s.warn("active export is now %s", st.export.id)
	}
	return st
}

// byID returns the export named id, loading it if needed. The caller must
// release it.
func (s *exportSet) byID(id string) (*export, error) {
	if st := s.active.Load(); st != nil && st.export != nil && st.export.id == id && st.export.acquire() {
		return st.export, nil
	}
	for attempt := 0; attempt < 3; attempt++ {
		e, err := s.get(id)
		if err != nil {
			return nil, err
		}
		if e.acquire() {
			return e, nil
		}
	}
	return nil, fmt.Errorf("export %s: %w", id, fs.ErrNotExist)
}

// retryFailedAfter is how long a folder that failed to load is left alone.
const retryFailedAfter = 10 * time.Second

// get returns the cached export id or loads it.
func (s *exportSet) get(id string) (*export, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.cache[id]; ok {
		s.touch(id)
		return e, nil
	}
	if t, ok := s.failed[id]; ok && s.now().Sub(t) < retryFailedAfter && !s.now().Before(t) {
		return nil, fmt.Errorf("export %s: failed to load recently", id)
	}
	if !exportroot.ValidExportID(id) {
		return nil, fmt.Errorf("export %s: %w", id, fs.ErrNotExist)
	}
	if fi, err := os.Lstat(filepath.Join(s.rootDir, id)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("export %s: %w", id, fs.ErrNotExist)
	}
	e, err := loadExport(s.rootDir, id, s.warn)
	if err != nil {
		s.warn("%v (retrying in %s)", err, retryFailedAfter)
		if len(s.failed) > 64 {
			clear(s.failed)
		}
		s.failed[id] = s.now()
		return nil, err
	}
	delete(s.failed, id)
	s.cache[id] = e
	s.order = append(s.order, id)
	activeID := ""
	if st := s.active.Load(); st != nil && st.export != nil {
		activeID = st.export.id
	}
	for len(s.order) > s.maxCache {
		i := 0
		for i < len(s.order) && (s.order[i] == activeID || s.order[i] == id) {
			i++
		}
		if i == len(s.order) {
			break
		}
		victim := s.order[i]
		s.order = append(s.order[:i], s.order[i+1:]...)
		old := s.cache[victim]
		delete(s.cache, victim)
		old.release()
	}
	return e, nil
}

func (s *exportSet) touch(id string) {
	for i, v := range s.order {
		if v == id {
			copy(s.order[i:], s.order[i+1:])
			s.order[len(s.order)-1] = id
			return
		}
	}
}

// close releases every cached export.
func (s *exportSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.cache {
		delete(s.cache, id)
		e.release()
	}
	s.order = nil
	s.active.Store(nil)
}
