package admission

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

// TestPredictedWaitPastDeadlineShedsAtOnce drains at 2 completions per second, exports running
// 10s each, in front of a 2s queue deadline. A first waiter (mean 0.5s, +2σ 1.5s) is queued; a
// second (mean 1s, +2σ 2.4s) would likely time out, so it is shed at once, with the hint of the
// queue's drain time.
func TestPredictedWaitPastDeadlineShedsAtOnce(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 1, QueueSize: 10, QueueTimeout: 2 * time.Second})
	drainHeld(t, l, clk, 500*time.Millisecond, 10*time.Second, time.Minute)
	held, _ := l.TryAcquire()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	results := queueWaiters(t, l, ctx, &wg, 1)

	start := time.Now()
	_, err := l.Acquire(ctx)
	elapsed := time.Since(start)
	var oe *OverloadedError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOverloaded) || oe.Reason != ReasonPredictedWait {
		t.Fatalf("Acquire behind a waiter at 2 completions/s with a 2s deadline: %v, want a predicted_wait shed", err)
	}
	if elapsed > time.Second {
		t.Errorf("predicted shed took %s: it must not wait", elapsed)
	}
	if !near(oe.RetryAfter, time.Second) {
		t.Errorf("RetryAfter %s, want about 1s (2 ahead at 2/s)", oe.RetryAfter)
	}
	if l.Queued() != 1 {
		t.Errorf("Queued %d after a predicted shed, want 1", l.Queued())
	}

	// The queued waiter is served as usual.
	held.Release(Outcome{Dropped: true})
	r := <-results
	if r.err != nil {
		t.Fatalf("queued waiter: %v", r.err)
	}
	r.permit.Release(Outcome{Dropped: true})
	cancel()
	wg.Wait()
}

// TestPredictedWaitLongerThanExportsShedsAtOnce drains at 20 completions per second, exports
// running 130ms each: two waiters (mean waits 50ms and 100ms) are queued, a third (150ms, longer
// than an export runs) is shed at once although the 2s deadline is far.
func TestPredictedWaitLongerThanExportsShedsAtOnce(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 1, QueueSize: 10, QueueTimeout: 2 * time.Second})
	drainHeld(t, l, clk, 50*time.Millisecond, 130*time.Millisecond, time.Minute)
	held, _ := l.TryAcquire()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	queueWaiters(t, l, ctx, &wg, 2)
	var oe *OverloadedError
	if _, err := l.Acquire(ctx); !errors.As(err, &oe) || oe.Reason != ReasonPredictedWait {
		t.Fatalf("Acquire behind 2 waiters: %v, want a predicted_wait shed", err)
	}
	if !near(oe.RetryAfter, 150*time.Millisecond) {
		t.Errorf("RetryAfter %s, want about 150ms (3 ahead at 20/s)", oe.RetryAfter)
	}
	cancel()
	wg.Wait()
	held.Release(Outcome{Dropped: true})
}

// TestPredictedWaitKeepsShortWaits drains at 20 completions per second, exports running 10s
// each: ten queued creates (at most 0.5s + 2σ ≈ 0.8s) fit within the 2s deadline and are short
// next to the exports, so the queue fills and only the full queue sheds.
func TestPredictedWaitKeepsShortWaits(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 1, QueueSize: 10, QueueTimeout: 2 * time.Second})
	drainHeld(t, l, clk, 50*time.Millisecond, 10*time.Second, time.Minute)
	held, _ := l.TryAcquire()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	queueWaiters(t, l, ctx, &wg, 10)
	var oe *OverloadedError
	if _, err := l.Acquire(ctx); !errors.As(err, &oe) || oe.Reason != ReasonQueueFull {
		t.Fatalf("Acquire at a full queue: %v, want queue_full", err)
	}
	cancel()
	wg.Wait()
	held.Release(Outcome{Dropped: true})
}

// TestPredictedWaitThreshold checks the boundary against the model: with a drain rate of r and
// exports running mean D, a create with q ahead is queued exactly when (q+1)/r <= D and
// (q+1 + 2·sqrt(q+1))/r <= QueueTimeout (2s).
func TestPredictedWaitThreshold(t *testing.T) {
	for _, tc := range []struct{ every, held time.Duration }{
		{100 * time.Millisecond, time.Hour},
		{250 * time.Millisecond, time.Hour},
		{time.Second, time.Hour},
		{20 * time.Millisecond, 110 * time.Millisecond},
		{10 * time.Millisecond, 35 * time.Millisecond},
	} {
		l, clk := newFakeLimiter(t, Config{Max: 1, QueueSize: 100, QueueTimeout: 2 * time.Second})
		drainHeld(t, l, clk, tc.every, tc.held, 2*time.Minute)
		r, _, _ := l.drain.rate()
		d := l.drain.meanHeld()
		want := 0 // the longest queue the model accepts
		for k := 1.0; k/r <= d && (k+2*math.Sqrt(k))/r <= 2; k++ {
			want = int(k)
		}
		held, _ := l.TryAcquire()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		if want > 0 {
			queueWaiters(t, l, ctx, &wg, want)
		}
		var oe *OverloadedError
		if _, err := l.Acquire(ctx); !errors.As(err, &oe) || oe.Reason != ReasonPredictedWait {
			t.Errorf("drain %.2f/s, exports %.3fs, %d queued: %v, want a predicted_wait shed", r, d, want, err)
		}
		cancel()
		wg.Wait()
		held.Release(Outcome{Dropped: true})
		t.Logf("drain %.2f/s, exports %.3fs: %d creates queue within a 2s deadline", r, d, want)
	}
}

// TestNoPredictionBeforeFirstCompletion: with no completion yet there is no rate to predict
// with, however long the running export has been busy; the create queues and the deadline
// sheds it.
func TestNoPredictionBeforeFirstCompletion(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 1, QueueTimeout: 20 * time.Millisecond})
	held, _ := l.TryAcquire()
	clk.Advance(10 * time.Minute)
	var oe *OverloadedError
	if _, err := l.Acquire(context.Background()); !errors.As(err, &oe) || oe.Reason != ReasonQueueTimeout {
		t.Fatalf("Acquire before any completion: %v, want a queue_timeout shed", err)
	}
	held.Release(Outcome{Dropped: true})
}

// TestMeanHeld: the mean slot time follows the reported durations (or the clock when none is
// reported), decayed like the rates.
func TestMeanHeld(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 1})
	drainAt(t, l, clk, 200*time.Millisecond, time.Minute)
	if got := l.drain.meanHeld(); math.Abs(got-0.2) > 1e-9 {
		t.Errorf("exports held 200ms by the clock: mean %.3fs", got)
	}
	drainHeld(t, l, clk, 200*time.Millisecond, 2*time.Second, 5*time.Minute)
	if got := l.drain.meanHeld(); math.Abs(got-2) > 0.01 {
		t.Errorf("after 5 minutes of exports reporting 2s: mean %.3fs, want about 2s", got)
	}
}
