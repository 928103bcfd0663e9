package admission

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestSizeClass(t *testing.T) {
	for _, tc := range []struct {
		rows int64
		want int
	}{{-1, 0}, {0, 0}, {1, 0}, {2, 2}, {3, 3}, {4, 4}, {5, 4}, {6, 5}, {7, 5}, {8, 6}, {1 << 20, 40}, {3 << 19, 41}, {1<<63 - 1, 125}} {
		if got := sizeClass(tc.rows); got != tc.want {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.rows, got, tc.want)
		}
	}
	prev := 0
	for rows := int64(1); rows < 1<<40; rows = rows*5/4 + 1 {
		c := sizeClass(rows)
		if c < prev || c >= sizeClasses {
			t.Fatalf("sizeClass(%d) = %d after %d", rows, c, prev)
		}
		prev = c
	}
}

// latencyModel returns an export's duration given how many run at once.
type latencyModel func(inFlight int) time.Duration

// contended is a server that serves capacity exports of rows rows at perRow each and shares
// itself beyond that (processor sharing).
func contended(capacity int, perRow time.Duration, rows int64) latencyModel {
	return func(n int) time.Duration {
		d := perRow * time.Duration(rows)
		if n > capacity {
			d = d * time.Duration(n) / time.Duration(capacity)
		}
		return d
	}
}

const testRows = 100_000

// round admits as many exports as the limit allows (plus the refusal that marks the limit as
// fully used), lets the fake clock run for their duration and releases them all with o.
func round(t *testing.T, l *Limiter, clk *fakeClock, model latencyModel, o Outcome) int {
	t.Helper()
	var held []*Permit
	for {
		p, ok := l.TryAcquire()
		if !ok {
			break
		}
		held = append(held, p)
	}
	if len(held) == 0 {
		t.Fatal("no slot free between rounds")
	}
	d := model(len(held))
	clk.Advance(d)
	for _, p := range held {
		o := o
		o.Rows, o.Duration = testRows, d
		p.Release(o)
	}
	return len(held)
}

// runFor runs rounds for the given fake time and returns the limits seen after each round.
func runFor(t *testing.T, l *Limiter, clk *fakeClock, model latencyModel, o Outcome, span time.Duration) []int {
	t.Helper()
	var limits []int
	for end := clk.Now().Add(span); clk.Now().Before(end); {
		round(t, l, clk, model, o)
		limits = append(limits, l.Limit())
	}
	return limits
}

func newFakeLimiter(t *testing.T, cfg Config) (*Limiter, *fakeClock) {
	clk := newFakeClock()
	cfg.Now = clk.Now
	return mustNew(t, cfg), clk
}

func share(limits []int, pred func(int) bool) float64 {
	n := 0
	for _, v := range limits {
		if pred(v) {
			n++
		}
	}
	return float64(n) / float64(len(limits))
}

// TestLimitFollowsContention starts at Max on a server that sustains 3 exports, then lets the
// server become uncontended: the limit must come down near 3, then recover to Max.
func TestLimitFollowsContention(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 8})
	perRow := time.Microsecond

	limits := runFor(t, l, clk, contended(3, perRow, testRows), Outcome{}, 5*time.Minute)
	last := limits[len(limits)*2/3:]
	if s := share(last, func(v int) bool { return v >= 2 && v <= 4 }); s < 0.9 {
		t.Errorf("capacity 3: the limit was within 2-4 in %.0f%% of the last rounds, want 90%% (%v)", 100*s, last)
	}
	if l.ctrl.base == 0 {
		t.Fatal("no low-concurrency base was measured")
	}

	limits = runFor(t, l, clk, contended(1000, perRow, testRows), Outcome{}, 5*time.Minute)
	last = limits[len(limits)/2:]
	if s := share(last, func(v int) bool { return v == 8 }); s < 0.9 {
		t.Errorf("uncontended: the limit was Max in %.0f%% of the last rounds, want 90%% (%v)", 100*s, last)
	}
}

// TestLimitCutsWhenLatencyInflates inflates per-row latency threefold once the base is known:
// the very next window must cut the limit; when latency returns to normal the limit grows back.
func TestLimitCutsWhenLatencyInflates(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 8})
	normal := contended(1000, time.Microsecond, testRows)
	runFor(t, l, clk, normal, Outcome{}, time.Minute)
	if l.ctrl.base == 0 || l.Limit() != 8 || l.ctrl.probing {
		t.Fatalf("after a minute uncontended: base %v, limit %d, probing %v", l.ctrl.base, l.Limit(), l.ctrl.probing)
	}
	inflated := contended(1000, 3*time.Microsecond, testRows)
	round(t, l, clk, inflated, Outcome{})
	if got := l.Limit(); got >= 8 {
		t.Fatalf("limit %d after a window at 3x latency, want a cut", got)
	}
	low := l.Limit()
	for target(l) < 8 {
		round(t, l, clk, normal, Outcome{})
		if target(l) < low {
			t.Fatalf("limit fell to %d after latency normalised", target(l))
		}
		if clk.Now().Sub(newFakeClock().now) > time.Hour {
			t.Fatalf("limit %d did not recover", target(l))
		}
	}
}

// target is the limit the controller holds, looking through a probe (which halves the limit
// for one window on purpose).
func target(l *Limiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctrl.probing {
		return int(l.ctrl.saved + 0.5)
	}
	return l.ctrl.Limit()
}

func TestFailuresCutLimit(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 8, Min: 2})
	normal := contended(1000, time.Microsecond, testRows)
	prev := l.Limit()
	for range 5 {
		round(t, l, clk, normal, Outcome{Failed: true})
		if got := l.Limit(); got > prev {
			t.Fatalf("limit rose from %d to %d on failures", prev, got)
		}
		prev = l.Limit()
	}
	if prev >= 5 {
		t.Fatalf("limit %d after five windows of failures, want cuts", prev)
	}
	for range 3 {
		round(t, l, clk, normal, Outcome{Failed: true})
	}
	if got := l.Limit(); got != 2 {
		t.Fatalf("limit %d after many failures, want Min 2", got)
	}
}

func TestDroppedOutcomesAreNotLearned(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 8})
	runFor(t, l, clk, contended(1000, time.Microsecond, testRows), Outcome{}, time.Minute)
	huge := contended(1000, time.Millisecond, testRows)
	for range 20 {
		round(t, l, clk, huge, Outcome{Dropped: true, Failed: true})
	}
	if got := l.Limit(); got != 8 {
		t.Fatalf("limit %d after dropped outcomes, want 8", got)
	}
	if len(l.ctrl.win) != 0 {
		t.Fatalf("dropped outcomes entered the window: %v", l.ctrl.win)
	}
}

// TestLimitBounds feeds random latencies and failures and checks every limit the limiter
// reports against [Min, Max].
func TestLimitBounds(t *testing.T) {
	const lo, hi = 2, 6
	var bad []int
	clk := newFakeClock()
	l := mustNew(t, Config{Min: lo, Max: hi, Initial: 3, Now: clk.Now, OnChange: func(limit, _, _ int) {
		if limit < lo || limit > hi {
			bad = append(bad, limit)
		}
	}})
	rng := rand.New(rand.NewPCG(3, 3))
	seen := map[int]bool{}
	for range 20000 {
		var held []*Permit
		for range rng.IntN(hi + 2) {
			if p, ok := l.TryAcquire(); ok {
				held = append(held, p)
			}
		}
		for _, p := range held {
			d := time.Duration(float64(time.Millisecond) * (0.01 + 100*rng.Float64()*rng.Float64()))
			clk.Advance(d / 4)
			p.Release(Outcome{Rows: rng.Int64N(1e7), Duration: d, Failed: rng.IntN(50) == 0})
			seen[l.Limit()] = true
		}
	}
	if len(bad) > 0 {
		t.Fatalf("limits outside [%d, %d]: %v", lo, hi, bad)
	}
	if !seen[lo] || !seen[hi] {
		t.Errorf("random outcomes did not move the limit across its range: %v", seen)
	}
}

// TestProbe checks the probe: after the first saturated windows the limit halves for one
// window, the base is measured, and the limit is restored.
func TestProbe(t *testing.T) {
	l, clk := newFakeLimiter(t, Config{Max: 8})
	normal := contended(1000, time.Microsecond, testRows)
	for range probeFirstWindows {
		round(t, l, clk, normal, Outcome{})
	}
	if st := l.Stats(); !st.Probing || st.Limit != 4 {
		t.Fatalf("after %d windows: %+v, want a probe at 4", probeFirstWindows, st)
	}
	for l.Stats().Probing {
		round(t, l, clk, normal, Outcome{})
	}
	if got := l.Limit(); got != 8 || l.ctrl.base == 0 {
		t.Fatalf("after the probe: limit %d, base %v; want 8 and a base", got, l.ctrl.base)
	}
}
