package admission

import (
	"math"
	"math/bits"
	"time"
)

// Controller tuning. The reasons are in the package comment (doc.go); the simulation test
// (sim_test.go) checks them against a contended server model.
const (
	// rowFloor is the fewest rows a job is counted as when its latency is normalised per row:
	// below it a job's time is fixed overhead (query start, file creation), not rows.
	rowFloor = 1000
	// minWindow is the fewest samples one decision is made on; a window otherwise holds one
	// sample per slot of the limit (one "round trip" of the limit, as in TCP Vegas). With fewer
	// than 8, the spread of per-row latency within a size class made the limit swing by ±2 slots
	// in the simulation; more than 8 gained little and slows reactions.
	minWindow = 8
	// increaseBelow: a saturated window whose latency inflation is at most this grows the limit
	// by one. Between increaseBelow and decreaseAbove the limit holds.
	increaseBelow = 1.2
	// decreaseAbove: a window whose latency inflation exceeds this cuts the limit to
	// limit/inflation + cutHeadroom (Little's law: the concurrency the system serves without
	// queueing, plus a quarter slot so that rounding does not land below the capacity when the
	// estimate comes out a little low), by a factor within [maxCut, minCut]. A band of 1.2-1.3
	// holds the limit at the capacity or one slot above it; a wider band (1.5) let a thrashing
	// server run one slot too high and lose 15% of its goodput.
	decreaseAbove = 1.3
	// cutHeadroom was half a slot: then a cut from 2 at twice the latency (a server saturated by
	// one export, as ClickHouse sharing two cores with exportd is) lands on 1.5 and is enforced as
	// 2, so the limit sat one slot, 100% of latency, above the capacity for a window more per
	// cycle. With a quarter slot, over 5 simulated seeds at 10x load: capacity 1, mean limit
	// 1.56 → 1.39, p99 1.72x → 1.43x uncontended, goodput 96.7% → 97.6%; capacity 2, goodput
	// 95.5% → 96.4%; capacity 4, goodput 96.0% → 94.8%; capacity 8, 93.7% → 93.1%.
	cutHeadroom = 0.25
	maxCut      = 0.5
	minCut      = 0.9
	// failureBackoff cuts the limit when a window holds a failed export (CUBIC's beta: one
	// failure is weak evidence; two failing windows in a row halve the limit).
	failureBackoff = 0.7
	// probeFirstWindows: while the low-concurrency reference is unknown, the first probe comes
	// after this many saturated windows.
	probeFirstWindows = 4
	// probeEveryWindows and probeEvery: later probes, and rotations of the reference
	// latencies, come after this many windows and this much time, whichever is later. A probe
	// runs one window at half the limit, about as long as one normal window, so its cost is at
	// most a few percent of throughput; a minute keeps it near 1% for short exports.
	probeEveryWindows = 32
	probeEvery        = time.Minute
	// sizeClasses: jobs are grouped in half-octave classes of row count (2 per power of two,
	// 64 powers), each with its own reference latency.
	sizeClasses = 128
)

// sample is one completed export as the controller sees it.
type sample struct {
	class  int
	perRow float64 // seconds per row, rows floored at rowFloor
	failed bool
}

// controller is the adaptive limit. It is not safe for concurrent use: the Limiter calls it
// with its lock held.
type controller struct {
	min, max float64
	limit    float64 // fractional so that cuts compound; the enforced limit is its floor

	// epoch changes whenever the limit is cut or a probe starts or ends: only exports admitted
	// in the current epoch inform the next decision, so the tail of slow exports admitted under a
	// higher limit does not cut the limit twice.
	epoch     uint64
	win       []sample // the current window, capacity max(minWindow, Max): never grows
	saturated bool     // the limit was reached (or a create waited or was shed) in this window

	// cur and prev hold per size class the lowest per-row latency seen in this and in the
	// previous rotation period (0 = none); the reference of a class is the lower of the two, a
	// windowed minimum that can rise again when the workload gets slower for good.
	cur, prev  [sizeClasses]float64
	rotatedAt  time.Time
	sinceRot   int // windows since the last rotation
	sinceProbe int // windows since the last probe
	lastProbe  time.Time

	// base is the mean latency ratio (latency / class reference) of the last window measured at
	// low concurrency: a probe window or a window at Min. 0 = not measured yet. Dividing by it
	// cancels the workload's own spread (the reference is a minimum, so a noise-free ratio is 1
	// but a real one is higher).
	base float64

	probing bool
	saved   float64 // the limit to restore after the probe
}

func newController(cfg *Config) controller {
	return controller{
		min:   float64(cfg.Min),
		max:   float64(cfg.Max),
		limit: float64(cfg.Initial),
		win:   make([]sample, 0, max(minWindow, cfg.Max)),
	}
}

// Limit is the enforced limit: the fractional limit rounded to nearest, so that a cut to, say,
// 1.9 enforces 2 rather than 1.
func (c *controller) Limit() int {
	return int(c.limit + 0.5)
}

// sizeClass maps a row count to its half-octave class.
func sizeClass(rows int64) int {
	if rows < 2 {
		return 0
	}
	b := bits.Len64(uint64(rows)) - 1 // floor(log2(rows)) >= 1
	return 2*b + int(uint64(rows)>>(b-1)&1)
}

// reference returns the reference per-row latency of a class, 0 if none.
func (c *controller) reference(class int) float64 {
	a, b := c.cur[class], c.prev[class]
	switch {
	case a == 0:
		return b
	case b == 0 || a < b:
		return a
	}
	return b
}

// observe feeds one completed export admitted in epoch.
func (c *controller) observe(now time.Time, rows int64, d time.Duration, failed bool, epoch uint64) {
	if c.rotatedAt.IsZero() {
		c.rotatedAt, c.lastProbe = now, now
	}
	s := sample{class: sizeClass(rows), failed: failed}
	if !failed {
		if d <= 0 {
			return // no latency to learn from (a coarse clock); not a failure either
		}
		s.perRow = d.Seconds() / float64(max(rows, rowFloor))
		if ref := c.cur[s.class]; ref == 0 || s.perRow < ref {
			c.cur[s.class] = s.perRow
		}
	}
	if epoch != c.epoch {
		return
	}
	c.win = append(c.win, s)
	if len(c.win) >= max(minWindow, int(math.Ceil(c.limit))) {
		c.endWindow(now)
	}
}

// windowRatio returns the mean latency ratio of the window's successful samples, their number
// and the number of failed samples. Ratios are taken at the end of the window so that all of
// them use the same references.
func (c *controller) windowRatio() (ratio float64, n, failed int) {
	var sum float64
	for _, s := range c.win {
		if s.failed {
			failed++
			continue
		}
		if ref := c.reference(s.class); ref > 0 {
			sum += s.perRow / ref
			n++
		}
	}
	if n > 0 {
		ratio = sum / float64(n)
	}
	return ratio, n, failed
}

func (c *controller) endWindow(now time.Time) {
	ratio, n, failed := c.windowRatio()
	saturated := c.saturated
	c.win = c.win[:0]
	c.saturated = false

	if n > 0 && (c.probing || c.Limit() <= int(c.min)) {
		c.base = ratio // measured at low concurrency
	}
	if c.probing {
		c.probing = false
		c.limit = c.saved
		if failed > 0 {
			c.limit *= failureBackoff
		}
		c.clamp()
		c.epoch++
		return
	}

	c.sinceRot++
	c.sinceProbe++
	inflation := 1.0 // no evidence of queueing until a low-concurrency window was measured
	if c.base > 0 && n > 0 {
		inflation = ratio / c.base
	}
	switch {
	case failed > 0:
		c.cut(failureBackoff)
	case inflation > decreaseAbove:
		c.cut(min(max(1/inflation+cutHeadroom/c.limit, maxCut), minCut))
	case inflation <= increaseBelow && saturated:
		c.limit = min(c.limit+1, c.max)
	}

	if c.sinceRot >= probeEveryWindows && now.Sub(c.rotatedAt) >= probeEvery {
		c.prev, c.cur = c.cur, [sizeClasses]float64{}
		c.rotatedAt, c.sinceRot = now, 0
	}
	due := c.sinceProbe >= probeEveryWindows && now.Sub(c.lastProbe) >= probeEvery
	if c.base == 0 {
		due = c.sinceProbe >= probeFirstWindows
	}
	probe := max(c.min, math.Floor(c.limit/2))
	if due && saturated && int(probe) < c.Limit() {
		c.probing, c.saved, c.limit = true, c.limit, probe
		c.sinceProbe, c.lastProbe = 0, now
		c.epoch++
	}
}

func (c *controller) cut(factor float64) {
	c.limit *= factor
	c.clamp()
	c.epoch++
}

func (c *controller) clamp() {
	c.limit = min(max(c.limit, c.min), c.max)
}
