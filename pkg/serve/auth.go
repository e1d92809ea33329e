package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stellaops/stellaops-cli/pkg/failure"
)

// Defaults of the verified-credential cache and the bcrypt bound.
const (
	DefaultCredentialCacheTTL  = 5 * time.Minute
	DefaultCredentialCacheSize = 4096
	maxHtpasswdBytes           = 4 << 20
	bcryptWaitLimit            = 10 * time.Second
)

// Errors of authentication.
var (
	// ErrBadCredentials reports a wrong user name, password or token.
	ErrBadCredentials = errors.New("invalid credentials")
	// ErrAuthBusy reports that password checks are saturated.
	ErrAuthBusy = errors.New("too many password checks in progress")
)

// htpasswd holds the bcrypt entries of an htpasswd file.
type htpasswd struct {
	path  string
	users map[string][]byte
	// dummy is compared against for unknown users, at the cost of the
	// file's entries, so timing does not tell which names exist.
	dummy []byte
}

// loadHtpasswd reads an htpasswd file of bcrypt entries. Any other hash
// kind (MD5 $apr1$, {SHA}, crypt, plain text) is refused, naming the line.
func loadHtpasswd(path string) (*htpasswd, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read htpasswd %s: %w", path, err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHtpasswdBytes+1))
	if err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read htpasswd %s: %w", path, err))
	}
	if len(data) > maxHtpasswdBytes {
		return nil, failure.Usagef("htpasswd %s: larger than %d bytes", path, maxHtpasswdBytes)
	}
	h, err := parseHtpasswd(path, data)
	if err != nil {
		return nil, err
	}
	cost := bcrypt.DefaultCost
	for _, hash := range h.users {
		if c, err := bcrypt.Cost(hash); err == nil {
			cost = c
		}
		break
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	h.dummy, err = bcrypt.GenerateFromPassword(secret, cost)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// parseHtpasswd reads the entries of an htpasswd file (path names it in
// errors); loadHtpasswd adds the dummy hash.
func parseHtpasswd(path string, data []byte) (*htpasswd, error) {
	h := &htpasswd{path: path, users: map[string][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(strings.TrimSpace(text), "#") {
			continue
		}
		user, hash, ok := strings.Cut(text, ":")
		if !ok || user == "" {
			return nil, failure.Usagef("htpasswd %s line %d: want user:hash", path, line)
		}
		if !isBcrypt(hash) {
			return nil, failure.WithHint(
				failure.Usagef("htpasswd %s line %d: user %q: hash is %s, not bcrypt; only bcrypt entries are accepted", path, line, user, hashKind(hash)),
				"re-create the entry with 'htpasswd -B' or 'stellaops-cli mirror rotate credentials'")
		}
		if _, dup := h.users[user]; dup {
			return nil, failure.Usagef("htpasswd %s line %d: user %q listed twice", path, line, user)
		}
		h.users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, failure.Classify(failure.ErrUsage, fmt.Errorf("read htpasswd %s: %w", path, err))
	}
	return h, nil
}

func isBcrypt(hash string) bool {
	if !(strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")) {
		return false
	}
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil && len(hash) == 60
}

func hashKind(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$apr1$"):
		return "Apache MD5 ($apr1$)"
	case strings.HasPrefix(hash, "{SHA}"):
		return "SHA-1 ({SHA})"
	case strings.HasPrefix(hash, "$1$"):
		return "MD5-crypt ($1$)"
	case strings.HasPrefix(hash, "$5$"):
		return "SHA-256-crypt ($5$)"
	case strings.HasPrefix(hash, "$6$"):
		return "SHA-512-crypt ($6$)"
	case strings.HasPrefix(hash, "$2"):
		return "a malformed bcrypt hash"
	case strings.HasPrefix(hash, "$"):
		return "an unsupported crypt hash"
	case len(hash) == 13:
		return "DES crypt or plain text"
	}
	return "plain text or unknown"
}

// verifiedCache remembers verified credentials (user/password pairs,
// bearer tokens) for a bounded time and number of entries, so repeated
// requests pay for neither bcrypt nor signature checks.
type verifiedCache[V any] struct {
	mu     sync.Mutex
	m      map[[32]byte]cacheEntry[V]
	ttl    time.Duration
	size   int
	secret [32]byte
}

type cacheEntry[V any] struct {
	v       V
	expires time.Time
}

// credCache caches verified Basic credentials: the user name.
type credCache = verifiedCache[string]

func newCredCache(size int, ttl time.Duration) *credCache {
	return newVerifiedCache[string](size, ttl)
}

func newVerifiedCache[V any](size int, ttl time.Duration) *verifiedCache[V] {
	if size <= 0 {
		size = DefaultCredentialCacheSize
	}
	if ttl <= 0 {
		ttl = DefaultCredentialCacheTTL
	}
	c := &verifiedCache[V]{m: make(map[[32]byte]cacheEntry[V]), ttl: ttl, size: size}
	if _, err := rand.Read(c.secret[:]); err != nil {
		panic(err)
	}
	return c
}

// key is an HMAC-SHA-256, under a key drawn at start, of the parts: the
// cache never holds a password, a token or a digest that could be attacked
// offline, and lookups compare digests, not secrets.
func (c *verifiedCache[V]) key(parts ...string) [32]byte {
	m := hmac.New(sha256.New, c.secret[:])
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(p))
	}
	var k [32]byte
	m.Sum(k[:0])
	return k
}

func (c *verifiedCache[V]) get(k [32]byte, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	if !now.Before(e.expires) {
		delete(c.m, k)
		var zero V
		return zero, false
	}
	return e.v, true
}

// put remembers v until now plus the cache's TTL, or until, if sooner.
func (c *verifiedCache[V]) put(k [32]byte, v V, now time.Time, until ...time.Time) {
	expires := now.Add(c.ttl)
	for _, u := range until {
		if u.Before(expires) {
			expires = u
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.size {
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
			}
		}
		// Still full: drop an arbitrary eighth (map order is random).
		for key := range c.m {
			if len(c.m) < c.size*7/8 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = cacheEntry[V]{v: v, expires: expires}
}

func (c *verifiedCache[V]) clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

func (c *verifiedCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// basicAuth checks Basic credentials against the htpasswd file.
type basicAuth struct {
	cache *credCache
	sem   chan struct{}
	// waiting counts the checks waiting for a slot; beyond maxWaiting a
	// check is refused at once instead of holding its request (and its
	// memory) for up to bcryptWaitLimit.
	waiting    atomic.Int64
	maxWaiting int64
	// compares counts bcrypt comparisons (tests, metrics).
	compares func()
}

// bcryptWaitersPerSlot bounds the waiting checks per concurrent one: more
// could not be served within bcryptWaitLimit anyway at any usable cost.
const bcryptWaitersPerSlot = 32

func newBasicAuth(cacheSize int, ttl time.Duration, concurrency int) *basicAuth {
	if concurrency <= 0 {
		concurrency = max(1, runtime.GOMAXPROCS(0))
	}
	return &basicAuth{cache: newCredCache(cacheSize, ttl), sem: make(chan struct{}, concurrency),
		maxWaiting: int64(concurrency) * bcryptWaitersPerSlot, compares: func() {}}
}

// cached returns the user when user/pass were verified recently.
func (b *basicAuth) cached(user, pass string, now time.Time) (string, bool) {
	return b.cache.get(b.cache.key(user, pass), now)
}

// verify checks user/pass with bcrypt, bounded by the semaphore. Unknown
// users cost a comparison against a dummy hash, so timing does not tell
// which names exist.
func (b *basicAuth) verify(ctx context.Context, h *htpasswd, user, pass string, now time.Time) error {
	hash, known := h.users[user]
	if !known {
		hash = h.dummy
	}
	ctx, cancel := context.WithTimeout(ctx, bcryptWaitLimit)
	defer cancel()
	select {
	case b.sem <- struct{}{}:
	default:
		if b.waiting.Add(1) > b.maxWaiting {
			b.waiting.Add(-1)
			return ErrAuthBusy
		}
		select {
		case b.sem <- struct{}{}:
			b.waiting.Add(-1)
		case <-ctx.Done():
			b.waiting.Add(-1)
			return ErrAuthBusy
		}
	}
	b.compares()
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	<-b.sem
	if err != nil || !known {
		return ErrBadCredentials
	}
	b.cache.put(b.cache.key(user, pass), user, now)
	return nil
}

// prefixSet is a list of CIDRs.
type prefixSet []netip.Prefix

func parsePrefixes(list []string) (prefixSet, error) {
	var out prefixSet
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, failure.Usagef("network %q: %v", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func (ps prefixSet) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr returns the address of the client: the connection's peer, or,
// when the peer is a trusted proxy, the right-most X-Forwarded-For entry
// that is not itself a trusted proxy.
func clientAddr(r *http.Request, trusted prefixSet) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	var addr netip.Addr
	if err == nil {
		addr = ap.Addr().Unmap()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		addr = a.Unmap()
	}
	if len(trusted) == 0 || !trusted.contains(addr) {
		return addr
	}
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			p := strings.TrimSpace(parts[j])
			a, err := netip.ParseAddr(p)
			if err != nil {
				if ap, err2 := netip.ParseAddrPort(p); err2 == nil {
					a, err = ap.Addr(), nil
				}
			}
			if err != nil {
				return addr
			}
			addr = a.Unmap()
			if !trusted.contains(addr) {
				return addr
			}
		}
	}
	return addr
}
