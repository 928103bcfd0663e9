package admission

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

// drainAt holds one slot for every, again and again, for the given busy time.
func drainAt(t *testing.T, l *Limiter, clk *fakeClock, every, span time.Duration) {
	t.Helper()
	drainHeld(t, l, clk, every, 0, span)
}

// drainHeld is drainAt with exports that report holding their slot for held (0: every), as if
// held/every slots were draining in turn: a completion every every, each export held long.
func drainHeld(t *testing.T, l *Limiter, clk *fakeClock, every, held, span time.Duration) {
	t.Helper()
	for end := clk.Now().Add(span); clk.Now().Before(end); {
		p, ok := l.TryAcquire()
		if !ok {
			t.Fatal("no free slot")
		}
		clk.Advance(every)
		p.Release(Outcome{Rows: 1000, Bytes: 100_000, Duration: held, Dropped: true})
	}
}

func near(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= 0.05*float64(want)
}

func TestRetryAfterBeforeAnyCompletion(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 2})
	if got := l.RetryAfter(); got != 500*time.Millisecond {
		t.Errorf("idle, no completion: %s, want 1s/2 slots", got)
	}
	p1, _ := l.TryAcquire()
	p2, _ := l.TryAcquire()
	clk.Advance(5 * time.Second)
	if got := l.RetryAfter(); got != 2500*time.Millisecond {
		t.Errorf("5s busy without completions: %s, want 5s/2 slots", got)
	}
	p1.Release(Outcome{})
	p2.Release(Outcome{})
}

func TestRetryAfterFollowsDrainRate(t *testing.T) {
	slow, slowClk := newFakeLimiter(t, Config{Max: 1})
	fast, fastClk := newFakeLimiter(t, Config{Max: 1})
	drainAt(t, slow, slowClk, time.Second, time.Minute)
	drainAt(t, fast, fastClk, 250*time.Millisecond, time.Minute)
	if got := slow.RetryAfter(); !near(got, time.Second) {
		t.Errorf("one completion per second: RetryAfter %s, want about 1s", got)
	}
	if got := fast.RetryAfter(); !near(got, 250*time.Millisecond) {
		t.Errorf("four completions per second: RetryAfter %s, want about 250ms", got)
	}
	if st := fast.Stats(); math.Abs(st.DrainRate-4) > 0.2 || math.Abs(st.RowsPerSecond-4000) > 200 || math.Abs(st.BytesPerSecond-4e5) > 2e4 {
		t.Errorf("stats %+v, want 4 completions, 4000 rows and 400kB per second", st)
	}

	// The rate follows a change within a few time constants, and idle time does not count.
	slowClk.Advance(time.Hour)
	if got := slow.RetryAfter(); !near(got, time.Second) {
		t.Errorf("after an idle hour: RetryAfter %s, want still about 1s", got)
	}
	drainAt(t, slow, slowClk, 250*time.Millisecond, 3*time.Minute)
	if got := slow.RetryAfter(); !near(got, 250*time.Millisecond) {
		t.Errorf("after 3 minutes at 4/s: RetryAfter %s, want about 250ms", got)
	}

	// Busy time without completions lowers the rate.
	p, _ := slow.TryAcquire()
	slowClk.Advance(time.Minute)
	if got := slow.RetryAfter(); got < time.Second {
		t.Errorf("a minute without completions: RetryAfter %s, want it to grow past 1s (4x)", got)
	}
	p.Release(Outcome{Dropped: true})
}

func TestRetryAfterBounds(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 1})
	drainAt(t, l, clk, time.Millisecond, 10*time.Second)
	if got := l.RetryAfter(); got != minRetryAfter {
		t.Errorf("1000 completions per second: %s, want the floor %s", got, minRetryAfter)
	}
	p, _ := l.TryAcquire()
	clk.Advance(30 * time.Minute)
	if got := l.RetryAfter(); got != maxRetryAfter {
		t.Errorf("stalled for 30 minutes: %s, want the ceiling %s", got, maxRetryAfter)
	}
	p.Release(Outcome{Dropped: true})
}

// TestRetryAfterGrowsWithQueue queues waiters behind a drain of 2 per second: each one more
// ahead adds half a second, and a create shed at the full queue is told the whole queue's wait.
// The exports run 10s each, so that the predicted waits are short enough to queue.
func TestRetryAfterGrowsWithQueue(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 1, QueueSize: 3, QueueTimeout: time.Minute})
	drainHeld(t, l, clk, 500*time.Millisecond, 10*time.Second, time.Minute)
	held, _ := l.TryAcquire()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	prev := time.Duration(0)
	for queued := range 4 {
		if queued > 0 {
			queueWaiters(t, l, ctx, &wg, 1)
		}
		got := l.RetryAfter()
		if want := time.Duration(queued+1) * 500 * time.Millisecond; !near(got, want) || got <= prev {
			t.Errorf("%d queued: RetryAfter %s, want about %s and more than %s", queued, got, want, prev)
		}
		prev = got
	}
	_, err := l.Acquire(ctx)
	var oe *OverloadedError
	if !errors.As(err, &oe) || oe.Reason != ReasonQueueFull || !near(oe.RetryAfter, 2*time.Second) {
		t.Errorf("shed at a full queue of 3: %v, want RetryAfter about 2s", err)
	}
	cancel()
	wg.Wait()
	held.Release(Outcome{Dropped: true})
}
