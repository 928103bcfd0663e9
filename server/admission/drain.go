package admission

import (
	"math"
	"time"
)

const (
	// drainTau is the time constant, in busy time, of the drain-rate estimate. Thirty seconds
	// covers dozens of completions of typical exports (tens of milliseconds to seconds), so the
	// estimate is steady, yet it follows a change in load within a minute; for exports that run
	// minutes it still reflects the last few completions.
	drainTau = 30.0 // seconds
	// minRetryAfter and maxRetryAfter bound the hint: under 100ms a client would retry into the
	// same full queue; beyond a minute the hint is a guess and the client should decide.
	minRetryAfter = 100 * time.Millisecond
	maxRetryAfter = 60 * time.Second
	// minWeight keeps the rate finite when completions arrive before any busy time has elapsed
	// (a coarse or fake clock).
	minWeight = 1e-3 // seconds
)

// drain estimates how fast running exports complete (free their slots), as exponentially
// decayed counts over busy time: time during which at least one export runs. Idle time does not
// count, so a quiet hour does not make the next burst look slow, while a stretch of busy time
// without completions does lower the rate, as it should. It is not safe for concurrent use.
type drain struct {
	busy      float64 // total busy seconds, for the estimate before the first completion
	weight    float64 // decayed busy seconds: the denominator of every rate
	completed float64 // decayed completions
	rows      float64 // decayed rows of completed exports
	bytes     float64 // decayed bytes of completed exports
	held      float64 // decayed seconds the completed exports held their slots
}

// advance accounts for secs seconds of busy time.
func (d *drain) advance(secs float64) {
	if secs <= 0 {
		return
	}
	f := math.Exp(-secs / drainTau)
	d.completed *= f
	d.rows *= f
	d.bytes *= f
	d.held *= f
	d.weight = d.weight*f + drainTau*(1-f)
	d.busy += secs
}

// complete records one completion of an export that held its slot for held seconds.
func (d *drain) complete(rows, bytes int64, held float64) {
	d.completed++
	d.rows += float64(max(rows, 0))
	d.bytes += float64(max(bytes, 0))
	d.held += max(held, 0)
}

// meanHeld returns the mean time, in seconds, the recent completions held their slots (decayed
// like the rates); 0 before the first completion.
func (d *drain) meanHeld() float64 {
	if d.completed == 0 {
		return 0
	}
	return d.held / d.completed
}

// rate returns completions, rows and bytes per busy second; all zero before the first completion.
func (d *drain) rate() (completions, rows, bytes float64) {
	if d.completed == 0 {
		return 0, 0, 0
	}
	w := max(d.weight, minWeight)
	return d.completed / w, d.rows / w, d.bytes / w
}

// retryAfter estimates the wait of a create that finds ahead creates queued before it: ahead+1
// slots must free up, at the observed drain rate. Before the first completion the rate is
// unknown; then every running export has taken at least the busy time so far (at least 1s is
// assumed), so limit slots free up at most once per that time each: a cautious estimate that
// grows while nothing completes.
func (d *drain) retryAfter(ahead, limit int) time.Duration {
	var secs float64
	if r, _, _ := d.rate(); r > 0 {
		secs = float64(ahead+1) / r
	} else {
		secs = float64(ahead+1) * max(d.busy, 1) / float64(max(limit, 1))
	}
	return clampDuration(secs, minRetryAfter, maxRetryAfter)
}

// predictedWait returns the mean and the standard deviation, in seconds, of the wait of a create
// that finds ahead creates queued before it, and false before the first completion (no rate to
// predict with). The create needs ahead+1 completions; modelling completions as a Poisson process
// at the drain rate r, its wait is Gamma(ahead+1, r): mean (ahead+1)/r, standard deviation
// sqrt(ahead+1)/r. Many slots finishing exports of varied sizes complete nearly independently,
// which is what makes the Poisson model fit; with one slot and exports of equal size it
// overstates the spread, which errs on the side of shedding early.
func (d *drain) predictedWait(ahead int) (mean, sd float64, ok bool) {
	r, _, _ := d.rate()
	if r <= 0 {
		return 0, 0, false
	}
	k := float64(ahead + 1)
	return k / r, math.Sqrt(k) / r, true
}

func clampDuration(secs float64, lo, hi time.Duration) time.Duration {
	switch {
	case math.IsNaN(secs) || secs >= hi.Seconds():
		return hi
	case secs <= lo.Seconds():
		return lo
	}
	return time.Duration(secs * float64(time.Second))
}
