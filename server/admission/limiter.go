package admission

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Outcome is what a finished export tells the controller through [Permit.Release].
type Outcome struct {
	// Rows and Bytes are the rows and bytes the export wrote. Rows sizes the export for the
	// latency normalisation; both feed the throughput in [Stats].
	Rows  int64
	Bytes int64
	// Duration is how long the export held its slot. Zero means the time since Acquire
	// returned, on the Limiter's clock.
	Duration time.Duration
	// Failed marks an export that failed for a reason that may mean overload: an upstream
	// (ClickHouse) error, a storage error, a timeout. The controller cuts the limit on it.
	Failed bool
	// Dropped marks an outcome the controller must not learn from: a cancelled export, a
	// shutdown, a failure unrelated to load (row limit exceeded, invalid data). The slot is
	// returned all the same. Dropped wins over Failed.
	Dropped bool
}

// Stats is a snapshot of a [Limiter], for metrics and logs.
type Stats struct {
	Limit, InFlight, Queued int
	// Probing is true while the limit is lowered for one window to measure latency at low
	// concurrency (see the package comment).
	Probing bool
	// DrainRate is completions per second while exports run (decayed over about 30s of busy
	// time), RowsPerSecond and BytesPerSecond the rows and bytes of those completions. All are 0
	// before the first completion.
	DrainRate, RowsPerSecond, BytesPerSecond float64
}

// Limiter admits exports up to an adaptive limit and queues the excess for a bounded time. It is
// safe for concurrent use. It owns no goroutines; a waiting Acquire is bounded by its context and
// by Config.QueueTimeout, so there is nothing to close.
type Limiter struct {
	cfg Config

	mu       sync.Mutex
	ctrl     controller
	drain    drain
	inFlight int
	queue    waitQueue
	last     time.Time // last clock reading, for busy-time accounting
	reported [3]int    // last values given to OnChange
}

// New returns a Limiter for cfg, after filling in defaults and validating it.
func New(cfg Config) (*Limiter, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{cfg: cfg, ctrl: newController(&cfg), reported: [3]int{-1, -1, -1}}
	l.last = cfg.Now()
	l.notifyLocked() // initial gauges; nobody else can hold the lock yet
	return l, nil
}

// Permit is one admitted export's slot. Release it exactly once when the export ends, from any
// goroutine; later calls are ignored.
type Permit struct {
	l        *Limiter
	start    time.Time
	epoch    uint64
	released bool // guarded by l.mu
}

// Acquire returns a permit when a slot is free and no create waits before this one. Otherwise
// the create joins the back of a FIFO queue and Acquire blocks until a slot is handed to it, ctx
// ends, or Config.QueueTimeout passes, whichever comes first.
//
// When the queue is full, or when the drain rate predicts that this create would wait too long
// (longer than a typical export runs, or likely past Config.QueueTimeout: see the package
// comment), Acquire returns at once, without blocking. Shedding (queue full, predicted wait or
// timeout) returns an *[OverloadedError] (errors.Is(err, [ErrOverloaded])) whose RetryAfter is
// derived from the observed drain rate. When ctx ends first, the error wraps ctx.Err(). A waiter
// that leaves never takes a slot with it: a slot handed to it as it leaves goes to the next
// waiter. A slot handed over exactly as the queue timeout fires is kept: the create got it within
// its deadline. If ctx ends just as a slot is handed over, either may win; a caller that gets a
// permit must release it in any case.
func (l *Limiter) Acquire(ctx context.Context) (*Permit, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("admission: wait for an export slot: %w", err)
	}
	l.mu.Lock()
	now := l.clockLocked()
	if l.slotFreeLocked() {
		p := l.admitLocked(now)
		l.notifyLocked()
		l.mu.Unlock()
		return p, nil
	}
	l.ctrl.saturated = true
	if reason := l.shedReasonLocked(); reason != "" {
		err := &OverloadedError{RetryAfter: l.retryAfterLocked(), Reason: reason}
		l.mu.Unlock()
		return nil, err
	}
	w := &waiter{ready: make(chan struct{})}
	l.queue.pushBack(w)
	l.notifyLocked()
	l.mu.Unlock()

	timer := time.NewTimer(l.cfg.QueueTimeout)
	defer timer.Stop()
	var ctxErr error
	select {
	case <-w.ready:
		return w.permit, nil // set before ready was closed
	case <-timer.C:
	case <-ctx.Done():
		ctxErr = ctx.Err()
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if p := w.permit; p != nil { // handed a slot while leaving
		if ctxErr == nil {
			return p, nil
		}
		l.abandonLocked(p)
	} else {
		l.queue.remove(w)
		l.notifyLocked()
	}
	if ctxErr != nil {
		return nil, fmt.Errorf("admission: wait for an export slot: %w", ctxErr)
	}
	return nil, &OverloadedError{RetryAfter: l.retryAfterLocked(), Reason: ReasonQueueTimeout}
}

// TryAcquire returns a permit when a slot is free and no create waits, and false otherwise. It
// never blocks or queues. Simulations drive the limiter with it; a caller that cannot wait at all
// may too.
func (l *Limiter) TryAcquire() (*Permit, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clockLocked()
	if l.slotFreeLocked() {
		p := l.admitLocked(now)
		l.notifyLocked()
		return p, true
	}
	l.ctrl.saturated = true
	return nil, false
}

// Reservation is a place in the queue taken with [Limiter.Reserve]: an export already admitted
// (pending, slot-less) waiting for a slot in turn with the creates.
type Reservation struct {
	l      *Limiter
	w      *waiter // nil once granted at once, taken or cancelled
	permit *Permit // granted at once, not yet taken
	done   bool
}

// Reserve takes a slot now if one is free and nobody waits, else joins the back of the queue
// without a deadline and without being shed: the export it stands for has been admitted already.
// ready is called (under the limiter's lock: it must not block or call back) when a queued
// reservation is handed its slot; [Reservation.Take] then returns it. The engine's pending exports
// wait this way, so that a slot freed under sustained load (a queue that never empties) still
// reaches them in their turn; [Limiter.TryAcquire] would only ever find the slot taken.
func (l *Limiter) Reserve(ready func()) *Reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clockLocked()
	r := &Reservation{l: l}
	if l.slotFreeLocked() {
		r.permit = l.admitLocked(now)
		l.notifyLocked()
		return r
	}
	l.ctrl.saturated = true
	r.w = &waiter{ready: make(chan struct{}), onReady: ready}
	l.queue.pushBack(r.w)
	l.notifyLocked()
	return r
}

// Take returns the reservation's permit once its slot has been handed over, false before that
// (and after Take or Cancel).
func (r *Reservation) Take() (*Permit, bool) {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.done {
		return nil, false
	}
	p := r.permit
	if p == nil && r.w != nil {
		p = r.w.permit
	}
	if p == nil {
		return nil, false
	}
	r.done, r.w, r.permit = true, nil, nil
	return p, true
}

// Cancel leaves the queue; a slot handed over but not taken goes to the next waiter, unlearned.
// It does nothing after Take or an earlier Cancel.
func (r *Reservation) Cancel() {
	l := r.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	p := r.permit
	if r.w != nil {
		if p = r.w.permit; p == nil {
			l.queue.remove(r.w)
			l.notifyLocked()
		}
	}
	r.w, r.permit = nil, nil
	if p != nil {
		l.abandonLocked(p)
	}
}

// WouldShed returns the *[OverloadedError] a create calling Acquire now would get at once (the
// queue full, or its predicted wait too long), and nil when it would be admitted or queued. It
// takes nothing. The server asks it before admitting an export that takes no slot now (its
// enterprise holds its share here, so it waits pending): while creates are being shed, such an
// export would wait for a slot behind every queued create, for as long as the overload lasts, so
// it is shed like them instead of being admitted into an unbounded wait.
func (l *Limiter) WouldShed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clockLocked()
	if l.slotFreeLocked() {
		return nil
	}
	reason := l.shedReasonLocked()
	if reason == "" {
		return nil
	}
	return &OverloadedError{RetryAfter: l.retryAfterLocked(), Reason: reason}
}

// Release returns the slot, hands it to the oldest waiter if the limit allows, and feeds the
// outcome to the controller. It never blocks beyond the limiter's lock. It is idempotent: only
// the first call counts. Release on a nil Permit does nothing.
func (p *Permit) Release(o Outcome) {
	if p == nil || p.l == nil {
		return
	}
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.released {
		return
	}
	p.released = true
	now := l.clockLocked()
	l.inFlight--
	d := o.Duration
	if d <= 0 {
		d = now.Sub(p.start)
	}
	l.drain.complete(o.Rows, o.Bytes, d.Seconds())
	if !o.Dropped {
		l.ctrl.observe(now, o.Rows, d, o.Failed, p.epoch)
	}
	l.dispatchLocked(now)
	l.notifyLocked()
}

// Limit returns the current adaptive limit, within [Config.Min, Config.Max]. Running exports
// may exceed it right after it shrinks: they are not preempted, new ones wait.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ctrl.Limit()
}

// InFlight returns the number of permits held.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Queued returns the number of creates waiting in the queue.
func (l *Limiter) Queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queue.len
}

// RetryAfter returns the estimated wait of a create joining the back of the queue now: the same
// estimate shed creates carry. The server may use it for other 503s caused by load.
func (l *Limiter) RetryAfter() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clockLocked()
	return l.retryAfterLocked()
}

// Stats returns a snapshot of the limiter's state.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clockLocked()
	s := Stats{Limit: l.ctrl.Limit(), InFlight: l.inFlight, Queued: l.queue.len, Probing: l.ctrl.probing}
	s.DrainRate, s.RowsPerSecond, s.BytesPerSecond = l.drain.rate()
	return s
}

// clockLocked reads the clock and accounts the busy time since the last reading. A clock that
// goes backwards (a fake one) counts as no time passing.
func (l *Limiter) clockLocked() time.Time {
	now := l.cfg.Now()
	if d := now.Sub(l.last); d > 0 {
		if l.inFlight > 0 {
			l.drain.advance(d.Seconds())
		}
		l.last = now
	}
	return now
}

func (l *Limiter) admitLocked(now time.Time) *Permit {
	l.inFlight++
	if l.inFlight >= l.ctrl.Limit() {
		l.ctrl.saturated = true
	}
	return &Permit{l: l, start: now, epoch: l.ctrl.epoch}
}

// dispatchLocked hands free slots to the oldest waiters, one each: no waiter is woken without a
// slot.
func (l *Limiter) dispatchLocked(now time.Time) {
	for l.queue.len > 0 && l.inFlight < l.ctrl.Limit() {
		w := l.queue.popFront()
		w.permit = l.admitLocked(now)
		close(w.ready)
		if w.onReady != nil {
			w.onReady()
		}
	}
}

// abandonLocked returns the slot of a permit handed to a waiter that left: no learning, no
// completion counted.
func (l *Limiter) abandonLocked(p *Permit) {
	p.released = true
	l.inFlight--
	l.dispatchLocked(l.clockLocked())
	l.notifyLocked()
}

// A create joins the queue only if its predicted wait is short on two counts (see the package
// comment). queueWaitExports bounds the mean predicted wait in mean export durations: one
// duration at most, so that a queued export's completion time at most about doubles while the
// queue still holds the next export for every slot that frees up (at saturation the bound works
// out at about one waiter per running export). predictSigmas is how many standard deviations of
// the predicted wait must still fit within QueueTimeout: a create queued with a mean wait just
// under the deadline would time out about half the time, after holding its connection for the
// whole deadline, a slow shed that an immediate retry hint serves better; with two standard
// deviations of margin a few percent of the queued creates time out (the Gamma wait's upper
// tail), well under 1% of the sheds at 10x load.
const (
	queueWaitExports = 1.0
	predictSigmas    = 2.0
)

// waitTooLongLocked reports whether a create joining the back of the queue now would wait too
// long: its predicted mean wait exceeds queueWaitExports mean export durations, or the mean plus
// predictSigmas standard deviations exceeds Config.QueueTimeout. Before the first completion
// nothing is predicted; the deadline alone decides.
func (l *Limiter) waitTooLongLocked() bool {
	mean, sd, ok := l.drain.predictedWait(l.queue.len)
	if !ok {
		return false
	}
	return mean > queueWaitExports*l.drain.meanHeld() || mean+predictSigmas*sd > l.cfg.QueueTimeout.Seconds()
}

// slotFreeLocked reports whether a create arriving now is admitted at once: a slot is free and
// nobody waits for one.
func (l *Limiter) slotFreeLocked() bool {
	return l.queue.len == 0 && l.inFlight < l.ctrl.Limit()
}

// shedReasonLocked is why a create that finds no free slot is shed at once, or "" when it may
// queue.
func (l *Limiter) shedReasonLocked() string {
	switch {
	case l.queue.len >= l.cfg.QueueSize:
		return ReasonQueueFull
	case l.waitTooLongLocked():
		return ReasonPredictedWait
	}
	return ""
}

func (l *Limiter) retryAfterLocked() time.Duration {
	return l.drain.retryAfter(l.queue.len, l.ctrl.Limit())
}

func (l *Limiter) notifyLocked() {
	if l.cfg.OnChange == nil {
		return
	}
	v := [3]int{l.ctrl.Limit(), l.inFlight, l.queue.len}
	if v != l.reported {
		l.reported = v
		l.cfg.OnChange(v[0], v[1], v[2])
	}
}
