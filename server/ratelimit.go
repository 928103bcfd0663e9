package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// defaultMaxCallers bounds the per-caller rate limit table.
const defaultMaxCallers = 10_000

// callerLimiter is a token bucket per caller (SPEC §1 429: "per caller"),
// keyed by the token's subject. The table is bounded: a caller idle long
// enough for its bucket to refill completely is dropped first (it would get
// a full bucket back anyway, so nothing is lost); when every entry is
// active the least recently seen one goes. Safe for concurrent use.
type callerLimiter struct {
	limit    rate.Limit
	burst    int
	max      int
	idleTime time.Duration // time for an empty bucket to refill

	mu      sync.Mutex
	callers map[string]*callerBucket
}

type callerBucket struct {
	lim  *rate.Limiter
	last time.Time
}

// newCallerLimiter returns a limiter of perSecond requests with bursts of
// burst per caller, holding at most maxCallers callers. perSecond < 0
// disables limiting.
func newCallerLimiter(perSecond float64, burst, maxCallers int) *callerLimiter {
	l := &callerLimiter{limit: rate.Limit(perSecond), burst: burst, max: maxCallers, callers: map[string]*callerBucket{}}
	if perSecond < 0 {
		l.limit = rate.Inf
	}
	if l.limit != rate.Inf && perSecond > 0 {
		l.idleTime = time.Duration(float64(burst) / perSecond * float64(time.Second))
	}
	return l
}

// allow takes a token for caller at now. When none is available it takes
// nothing and returns how long until one is.
func (l *callerLimiter) allow(caller string, now time.Time) (wait time.Duration, ok bool) {
	if l.limit == rate.Inf {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.callers[caller]
	if b == nil {
		if len(l.callers) >= l.max {
			l.evict(now)
		}
		b = &callerBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.callers[caller] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() { // burst 0: never
		return time.Second, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// evict drops idle callers, or the least recently seen one if none is idle.
func (l *callerLimiter) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, b := range l.callers {
		if now.Sub(b.last) >= l.idleTime {
			delete(l.callers, k)
			continue
		}
		if oldest == "" || b.last.Before(oldestAt) {
			oldest, oldestAt = k, b.last
		}
	}
	if len(l.callers) >= l.max && oldest != "" {
		delete(l.callers, oldest)
	}
}

// size returns the number of tracked callers (tests).
func (l *callerLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.callers)
}
