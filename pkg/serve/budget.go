package serve

import (
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"time"
)

// limiterShards spreads clients over independently locked maps.
const limiterShards = 64

// DefaultMaxClients bounds how many client budgets are tracked at once.
const DefaultMaxClients = 65536

// limiter keeps one token bucket per (scope, client): a budget of N
// requests per hour is a bucket of N tokens refilled at N/3600 per second.
// A bucket that has refilled completely is the same as no bucket, so idle
// entries are dropped first when a shard is full; then the least recently
// seen ones.
type limiter struct {
	seed     maphash.Seed
	shardCap int
	shards   [limiterShards]limiterShard
}

type limiterShard struct {
	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix nanos of the last refill
	limit  int   // tokens per hour
}

func newLimiter(maxClients int) *limiter {
	if maxClients <= 0 {
		maxClients = DefaultMaxClients
	}
	l := &limiter{seed: maphash.MakeSeed(), shardCap: max(8, maxClients/limiterShards)}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*bucket)
	}
	return l
}

// take spends one request of key's budget of perHour requests. It reports
// whether the request may proceed and, if not, how long until it may.
// perHour <= 0 means unlimited.
func (l *limiter) take(key string, perHour int, now time.Time) (bool, time.Duration) {
	if perHour <= 0 {
		return true, 0
	}
	sh := &l.shards[maphash.String(l.seed, key)%limiterShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := now.UnixNano()
	b, ok := sh.m[key]
	if !ok {
		if len(sh.m) >= l.shardCap {
			l.evict(sh, t)
		}
		b = &bucket{tokens: float64(perHour), last: t, limit: perHour}
		sh.m[key] = b
	}
	b.refill(t, perHour)
	// The epsilon absorbs floating-point error in the refill, so a client
	// that waited exactly Retry-After seconds gets its token.
	const epsilon = 1e-9
	if b.tokens >= 1-epsilon {
		b.tokens = max(0, b.tokens-1)
		return true, 0
	}
	rate := float64(perHour) / 3600 // tokens per second
	wait := (1 - b.tokens) / rate
	// Whole microseconds, for the same reason.
	return false, time.Duration(math.Round(wait*1e6)) * time.Microsecond
}

func (b *bucket) refill(t int64, perHour int) {
	if b.limit != perHour {
		// The budget changed (configuration): keep the fill ratio.
		b.tokens = b.tokens / float64(b.limit) * float64(perHour)
		b.limit = perHour
	}
	if t > b.last {
		b.tokens += float64(t-b.last) / float64(time.Hour) * float64(perHour)
		if b.tokens > float64(perHour) {
			b.tokens = float64(perHour)
		}
		b.last = t
	}
}

// evict makes room in a full shard: first drop buckets that have refilled
// completely, then the least recently refilled quarter.
func (l *limiter) evict(sh *limiterShard, t int64) {
	for k, b := range sh.m {
		full := b.tokens + float64(t-b.last)/float64(time.Hour)*float64(b.limit)
		if full >= float64(b.limit) {
			delete(sh.m, k)
		}
	}
	if len(sh.m) < l.shardCap*7/8 {
		return
	}
	lasts := make([]int64, 0, len(sh.m))
	for _, b := range sh.m {
		lasts = append(lasts, b.last)
	}
	slices.Sort(lasts)
	cut := lasts[len(lasts)/4]
	for k, b := range sh.m {
		if b.last <= cut {
			delete(sh.m, k)
		}
	}
}

// size returns the number of tracked buckets.
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// retryAfterSeconds renders a wait as a whole number of seconds, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}
