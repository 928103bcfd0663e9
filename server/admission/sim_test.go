package admission

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// simServer is a processor-sharing model of the export path (ClickHouse plus the machine): up to
// capacity exports progress at full speed; beyond it they share the capacity and also thrash
// (each export beyond capacity costs the whole server thrash of its speed: cache and memory
// contention), so the best fixed limit is the capacity itself. Jobs are log-uniform in size with
// a fixed overhead and ±20% noise, like exports over ranges of very different sizes.
type simServer struct {
	capacity float64
	thrash   float64
}

// speed is the rate at which each of n running exports progresses (1 = uncontended).
func (s simServer) speed(n int) float64 {
	f := float64(n)
	if f <= s.capacity {
		return 1
	}
	return s.capacity / f / (1 + s.thrash*(f-s.capacity))
}

type simJob struct {
	rows      int64
	work      float64 // uncontended duration, seconds
	remaining float64
	start     float64
	deadline  float64 // arrival + queue timeout
	permit    *Permit
}

type simParams struct {
	server        simServer
	load          float64 // offered load, as a multiple of the server's capacity
	cfg           Config  // Max, Min, Initial, QueueSize, QueueTimeout; Now is set by the simulation
	duration      float64 // simulated seconds
	warmup        float64 // seconds not measured
	seed          uint64
	noise         float64 // each export's work is scaled by a uniform factor in [1-noise, 1+noise]; 0 means 0.2
	traceInterval float64 // when > 0, log the limit every so many seconds
	// At changeAt (when > 0) the server becomes after and every new export's work is scaled by
	// slowdown (when > 0): ClickHouse losing replicas, or the data getting heavier for good.
	changeAt float64
	after    simServer
	slowdown float64
}

type simResult struct {
	goodput         float64 // uncontended work completed per second: at most capacity
	rowsPerSecond   float64
	p99, p99Work    float64 // p99 of admitted exports' durations, and of their uncontended durations
	meanLimit       float64 // time-weighted, after warmup
	meanInFlight    float64
	completed, shed int
}

const (
	simOverhead  = 0.005 // seconds per export
	simPerRow    = 1e-6  // seconds per row: 1M rows/s uncontended
	simMinRows   = 10
	simMaxRows   = 2_000_000
	simQueueSize = 64
)

func simMeanWork() float64 {
	meanRows := (simMaxRows - simMinRows) / math.Log(simMaxRows/simMinRows)
	return simOverhead + meanRows*simPerRow
}

// simulate runs a deterministic discrete-event simulation: Poisson arrivals join a bounded FIFO
// queue with a deadline (the Limiter's queue, modelled here so that the fake clock drives
// everything) and are admitted with TryAcquire whenever the limit allows.
func simulate(t testing.TB, p simParams) simResult {
	t.Helper()
	rng := rand.New(rand.NewPCG(p.seed, 0x5eed))
	epoch := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	now := 0.0
	cfg := p.cfg
	cfg.Now = func() time.Time { return epoch.Add(time.Duration(now * float64(time.Second))) }
	lim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	queueSize, queueTimeout := lim.cfg.QueueSize, lim.cfg.QueueTimeout.Seconds()

	noise := p.noise
	if noise == 0 {
		noise = 0.2
	}
	lambda := p.load * p.server.capacity / simMeanWork()
	nextArrival := rng.ExpFloat64() / lambda
	var (
		running   []*simJob
		queue     []*simJob // FIFO; deadlines are in order
		res       simResult
		durations []float64
		works     []float64
		rows      int64
		nextTrace = p.traceInterval
	)
	newJob := func() *simJob {
		r := int64(simMinRows * math.Exp(rng.Float64()*math.Log(simMaxRows/simMinRows)))
		w := (simOverhead + float64(r)*simPerRow) * (1 - noise + 2*noise*rng.Float64())
		if p.changeAt > 0 && now >= p.changeAt && p.slowdown > 0 {
			w *= p.slowdown
		}
		return &simJob{rows: r, work: w, remaining: w, deadline: now + queueTimeout}
	}
	dispatch := func() {
		for len(queue) > 0 && now >= queue[0].deadline {
			queue = queue[1:] // timed out: shed
			res.shed++
		}
		for len(queue) > 0 {
			pm, ok := lim.TryAcquire()
			if !ok {
				break
			}
			j := queue[0]
			queue = queue[1:]
			j.permit, j.start = pm, now
			running = append(running, j)
		}
	}
	for now < p.duration {
		server := p.server
		if p.changeAt > 0 && now >= p.changeAt && p.after.capacity > 0 {
			server = p.after
		}
		speed := server.speed(len(running))
		next, kind := nextArrival, 'a'
		var first *simJob // the next to complete
		for _, j := range running {
			if first == nil || j.remaining < first.remaining {
				first = j
			}
		}
		if first != nil {
			if tc := now + first.remaining/speed; tc < next {
				next, kind = tc, 'c'
			}
		}
		if len(queue) > 0 {
			if te := queue[0].deadline; te < next {
				next, kind = te, 'e'
			}
		}
		if now < p.changeAt && p.changeAt < next {
			next, kind = p.changeAt, 'x' // speeds change: re-plan
		}
		dt := next - now
		if now >= p.warmup {
			res.meanLimit += float64(lim.Limit()) * dt
			res.meanInFlight += float64(len(running)) * dt
		}
		for _, j := range running {
			j.remaining -= speed * dt
		}
		now = next
		if p.traceInterval > 0 && now >= nextTrace {
			nextTrace += p.traceInterval
			st := lim.Stats()
			t.Logf("t=%6.1fs limit=%2d inflight=%2d queued=%2d probing=%v base=%.3f", now, st.Limit, len(running), len(queue), st.Probing, lim.ctrl.base)
		}
		switch kind {
		case 'c':
			first.remaining = 0 // exactly, whatever the rounding of now
			kept := running[:0]
			for _, j := range running {
				if j.remaining > 1e-9 {
					kept = append(kept, j)
					continue
				}
				d := now - j.start
				j.permit.Release(Outcome{Rows: j.rows, Duration: time.Duration(d * float64(time.Second))})
				if j.start >= p.warmup {
					res.completed++
					res.goodput += j.work
					rows += j.rows
					durations = append(durations, d)
					works = append(works, j.work)
				}
			}
			clear(running[len(kept):])
			running = kept
		case 'a':
			nextArrival = now + rng.ExpFloat64()/lambda
			if len(queue) >= queueSize {
				res.shed++
			} else {
				queue = append(queue, newJob())
			}
		}
		dispatch()
	}
	span := p.duration - p.warmup
	res.goodput /= span
	res.rowsPerSecond = float64(rows) / span
	res.meanLimit /= span
	res.meanInFlight /= span
	res.p99 = percentile(durations, 0.99)
	res.p99Work = percentile(works, 0.99)
	return res
}

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// TestSimulationOverload drives the controller at 10x the capacity of a contended server and
// checks the goals of the admission issue: the limit settles near the capacity, goodput is at
// least 90% of the best fixed limit's and of the goodput at 1x load, and admitted exports' p99 is
// at most twice their uncontended p99.
func TestSimulationOverload(t *testing.T) {
	server := simServer{capacity: 4, thrash: 0.05}
	const maxLimit = 16
	base := simParams{
		server:   server,
		cfg:      Config{Max: maxLimit, QueueSize: simQueueSize},
		duration: 600,
		warmup:   300,
		seed:     1,
	}
	if testing.Verbose() {
		base.traceInterval = 10
	}

	adaptive := base
	adaptive.load = 10
	got := simulate(t, adaptive)
	base.traceInterval = 0
	t.Logf("adaptive at 10x: goodput %.3f (capacity %.0f), %.0f rows/s, mean limit %.2f, mean in flight %.2f, p99 %.3fs (uncontended %.3fs), %d completed, %d shed",
		got.goodput, server.capacity, got.rowsPerSecond, got.meanLimit, got.meanInFlight, got.p99, got.p99Work, got.completed, got.shed)

	oneX := base
	oneX.load = 1
	at1x := simulate(t, oneX)
	t.Logf("adaptive at 1x: goodput %.3f, mean limit %.2f, mean in flight %.2f", at1x.goodput, at1x.meanLimit, at1x.meanInFlight)

	best, bestLimit := 0.0, 0
	for _, fixed := range []int{2, 3, 4, 5, 6, 8, maxLimit} {
		p := base
		p.load = 10
		p.cfg.Max, p.cfg.Min = fixed, fixed
		r := simulate(t, p)
		t.Logf("fixed limit %2d at 10x: goodput %.3f, p99 %.3fs", fixed, r.goodput, r.p99)
		if r.goodput > best {
			best, bestLimit = r.goodput, fixed
		}
	}

	if got.meanLimit < server.capacity-1 || got.meanLimit > server.capacity+2 {
		t.Errorf("mean limit %.2f, want near the capacity %.0f", got.meanLimit, server.capacity)
	}
	if got.goodput < 0.9*best {
		t.Errorf("goodput %.3f < 90%% of the best fixed limit's (%d: %.3f)", got.goodput, bestLimit, best)
	}
	if got.goodput < 0.9*at1x.goodput {
		t.Errorf("goodput at 10x %.3f < 90%% of goodput at 1x %.3f", got.goodput, at1x.goodput)
	}
	if got.p99 > 2*got.p99Work {
		t.Errorf("p99 of admitted exports %.3fs > 2x their uncontended p99 %.3fs", got.p99, got.p99Work)
	}
}

// TestSimulationAdapts changes the server halfway through a run at 10x load and checks that the
// limit follows: the capacity drops or rises, the data gets three times slower or faster for
// good. Over the second half the limit must sit near the new capacity and goodput must reach
// 90% of it.
func TestSimulationAdapts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		before   simServer
		after    simServer // zero: unchanged
		slowdown float64
	}{
		{name: "capacity drops 8 to 2", before: simServer{8, 0.05}, after: simServer{2, 0.05}},
		{name: "capacity rises 2 to 8", before: simServer{2, 0.05}, after: simServer{8, 0.05}},
		{name: "data 3x slower", before: simServer{4, 0.05}, slowdown: 3},
		{name: "data 3x faster", before: simServer{4, 0.05}, slowdown: 1.0 / 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := simParams{
				server:   tc.before,
				after:    tc.after,
				slowdown: tc.slowdown,
				changeAt: 300,
				load:     10,
				cfg:      Config{Max: 16, QueueSize: simQueueSize},
				duration: 900,
				warmup:   300,
				seed:     2,
			}
			capacity := tc.before.capacity
			if tc.after.capacity > 0 {
				capacity = tc.after.capacity
			}
			r := simulate(t, p)
			t.Logf("goodput %.3f (capacity %.0f), mean limit %.2f, p99 %.3fs (uncontended %.3fs)", r.goodput, capacity, r.meanLimit, r.p99, r.p99Work)
			if r.meanLimit < capacity-1 || r.meanLimit > capacity+2 {
				t.Errorf("mean limit %.2f after the change, want near the capacity %.0f", r.meanLimit, capacity)
			}
			if r.goodput < 0.9*capacity {
				t.Errorf("goodput %.3f < 90%% of the capacity %.0f", r.goodput, capacity)
			}
		})
	}
}

// TestSimulationOneSlot is a server that one export saturates (ClickHouse on the same two cores
// as exportd): every export beyond the first only adds latency. At 10x load the limit must stay
// mostly at 1 (with half a slot of cut headroom it averaged 1.55 here), admitted exports' p99
// within twice their uncontended p99, and goodput at 90% of the capacity.
func TestSimulationOneSlot(t *testing.T) {
	r := simulate(t, simParams{
		server:   simServer{capacity: 1, thrash: 0.05},
		load:     10,
		cfg:      Config{Max: 4, QueueSize: simQueueSize},
		duration: 600,
		warmup:   300,
		seed:     3,
	})
	t.Logf("goodput %.3f (capacity 1), mean limit %.2f, p99 %.3fs (uncontended %.3fs)", r.goodput, r.meanLimit, r.p99, r.p99Work)
	if r.meanLimit > 1.5 {
		t.Errorf("mean limit %.2f, want at most 1.5: a second slot doubles latency", r.meanLimit)
	}
	if r.p99 > 2*r.p99Work {
		t.Errorf("p99 of admitted exports %.3fs > 2x their uncontended p99 %.3fs", r.p99, r.p99Work)
	}
	if r.goodput < 0.9 {
		t.Errorf("goodput %.3f < 90%% of the capacity", r.goodput)
	}
}
