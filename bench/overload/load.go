package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const exportsPath = "/operations-activity-exports"

// months are the create windows: the calendar months of the generated range
// [2026-01-01, 2026-07-01), each [first day 00:00:00.000, last day 23:59:59.999].
var months = func() [][2]string {
	var m [][2]string
	for mo := time.January; mo <= time.June; mo++ {
		from := time.Date(2026, mo, 1, 0, 0, 0, 0, time.UTC)
		to := from.AddDate(0, 1, 0).Add(-time.Millisecond)
		m = append(m, [2]string{from.Format(time.RFC3339Nano), to.Format("2006-01-02T15:04:05.000Z")})
	}
	return m
}()

// createRec is one create and, if admitted, how its export ended.
type createRec struct {
	start    time.Time
	latency  time.Duration // of the create request itself
	status   int           // HTTP status; 0 for a transport error
	reason   string        // details.reason of an error
	retryMs  int64
	final    string        // final status of an admitted export ("" if never seen final)
	complete time.Duration // create sent → GET saw it final
	doneAt   time.Time
	rows     int64
	pollErrs int // polls answered with anything but 200
	// badEnvelope marks a 429 or 503 whose body or Retry-After header breaks the contract.
	badEnvelope bool
}

// getRec is one timed read of the GET loop.
type getRec struct {
	latency time.Duration
	status  int
	list    bool // a list rather than a get of one export
}

// phase collects what happened while one load ran.
type phase struct {
	name       string
	multiple   float64 // of the capacity; 0 for closed-loop phases
	rate       float64 // offered creates per second (open loop)
	start, end time.Time

	mu       sync.Mutex
	creates  []createRec
	gets     []getRec
	limits   []float64 // exportd_admission_limit samples
	inFlight []float64
	queued   []float64
	// exportd's goroutines and in-use heap bytes (its Go collector)
	goroutines, heapInuse []float64
	overflow              int // arrivals dropped because the harness had too many requests open
	shedBy                map[string]float64
	// CPU cores used by exportd, ClickHouse and the harness, averaged from the phase's start to
	// the end of its drain.
	cores   [3]float64
	healthz []probeRec
	// The burst: creates go through client (nil: the loader's pooled one)
	// and a healthzShare of the arrivals are GET /healthz through the same
	// client, booked to burstHealthz.
	client       *http.Client
	healthzShare float64
	maxOpen      int64 // requests the harness keeps open at once in this phase (0: maxOpenCreates)
	burstHealthz []probeRec
	// metrics before and after the phase (exportd_* series)
	before, after map[string]float64

	rssPeak atomic.Int64
}

func (p *phase) addCreate(r createRec) {
	p.mu.Lock()
	p.creates = append(p.creates, r)
	p.mu.Unlock()
}

// resource is the part of an export resource or error envelope the harness reads.
type resource struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	RowCount int64  `json:"row_count"`
	Code     string `json:"code"`
	Details  struct {
		Reason       string `json:"reason"`
		RetryAfterMs int64  `json:"retry_after_ms"`
	} `json:"details"`
	Message string `json:"message"`

	retryAfter string // the Retry-After header
	malformed  bool   // the body did not decode
}

func final(status string) bool {
	switch status {
	case "ready", "failed", "cancelled", "expired":
		return true
	}
	return false
}

// loader sends the requests. Creates and their polls share one connection pool; the GET loop
// has its own, so that its latency is not that of waiting for a connection.
type loader struct {
	cfg         config
	env         *env
	client      *http.Client
	readClient  *http.Client
	current     atomic.Pointer[phase] // the phase GETs and samples are booked to; nil between phases
	readyID     atomic.Pointer[string]
	chPID       string // the private ClickHouse's pid, "" if not found
	openCreates atomic.Int64
}

func newClient() *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        2048,
			MaxIdleConnsPerHost: 2048,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// newConnClient opens a new TCP connection for every request (and closes it
// after the answer), as issue 17's "measured from outside" client does: the
// connection set-up is part of every figure, the shed answers' and
// /healthz's alike.
func newConnClient() *http.Client {
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	}
}

// healthz times one GET /healthz through c; ok when answered 200.
func (l *loader) healthz(ctx context.Context, c *http.Client) probeRec {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, "GET", l.env.base+"/healthz", nil)
	if err != nil {
		return probeRec{}
	}
	resp, err := c.Do(req)
	ok := false
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ok = resp.StatusCode == http.StatusOK
	}
	return probeRec{latency: time.Since(start), ok: ok}
}

// do sends one request and decodes the JSON body into res (when not nil). It returns the status
// (0 on a transport error) and the time from sending to the end of the body.
func (l *loader) do(ctx context.Context, c *http.Client, method, path string, body []byte, hdr map[string]string, res *resource) (int, time.Duration) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.env.base+path, rd)
	if err != nil {
		return 0, 0
	}
	req.Header.Set("Authorization", "Bearer "+l.env.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, time.Since(start)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, d
	}
	if res != nil {
		*res = resource{retryAfter: resp.Header.Get("Retry-After")}
		res.malformed = json.Unmarshal(b, res) != nil
		if res.malformed && bytes.Contains(b, []byte("MaxConnsPerIP")) {
			// fasthttp's own plain-text 429 for a client address over the server's
			// MaxConnsPerIP: the connection limit, not admission control.
			res.Code = connLimitCode
		}
	}
	return resp.StatusCode, d
}

var preferWait0 = map[string]string{"Prefer": "wait=0"}

// connLimitCode marks fasthttp's plain-text answer to a connection over MaxConnsPerIP.
const connLimitCode = "fasthttp MaxConnsPerIP"

func createBody(rng *rand.Rand, enterprises []string) []byte {
	ent := enterprises[rng.IntN(len(enterprises))]
	m := months[rng.IntN(len(months))]
	return []byte(`{"format":"csv","filter_criteria":{"date_from_utc":"` + m[0] + `","date_to_utc":"` + m[1] +
		`"},"requested_scope":{"kind":"enterprise","ref":"` + ent + `"}}`)
}

// export creates one export through create (nil: the pooled client) and, if admitted, polls it
// until final through the pooled client.
func (l *loader) export(ctx context.Context, create *http.Client, body []byte) createRec {
	if create == nil {
		create = l.client
	}
	var res resource
	rec := createRec{start: time.Now()}
	rec.status, rec.latency = l.do(ctx, create, "POST", exportsPath, body, preferWait0, &res)
	switch rec.status {
	case http.StatusCreated:
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		rec.reason, rec.retryMs = res.Details.Reason, res.Details.RetryAfterMs
		rec.badEnvelope = !retryEnvelopeOK(rec.status, &res)
		if res.Code == connLimitCode {
			rec.reason = connLimitCode
		}
		return rec
	default:
		rec.reason = res.Code
		return rec
	}
	id, status, rows := res.ID, res.Status, res.RowCount
	for !final(status) {
		select {
		case <-ctx.Done():
			return rec
		case <-time.After(l.cfg.poll):
		}
		st, _ := l.do(ctx, l.client, "GET", exportsPath+"/"+id, nil, nil, &res)
		if st != http.StatusOK {
			rec.pollErrs++
			if rec.pollErrs > 100 {
				return rec
			}
			continue
		}
		status, rows = res.Status, res.RowCount
	}
	rec.doneAt = time.Now()
	rec.complete, rec.final, rec.rows = rec.doneAt.Sub(rec.start), status, rows
	if status == "ready" && l.readyID.Load() == nil {
		l.readyID.Store(&id)
	}
	return rec
}

// retryEnvelopeOK checks a 429 or 503 as SPEC §1 and §6 say: the error envelope with a non-empty
// code and message, an integer details.retry_after_ms > 0, and Retry-After its ceiling in seconds,
// at least 1.
func retryEnvelopeOK(status int, res *resource) bool {
	ms := res.Details.RetryAfterMs
	// SPEC §1 gives 503 a details.reason; 429 rate_limited has none, only its retry hint.
	reasonOK := res.Details.Reason != "" || status == http.StatusTooManyRequests
	return !res.malformed && res.Code != "" && res.Message != "" && reasonOK && ms > 0 &&
		res.retryAfter == strconv.FormatInt(max((ms+999)/1000, 1), 10)
}

// closedLoop runs workers that each create an export, wait for it, and start the next, for d. A
// shed worker backs off as the retry hint says (at most 1s), as a well-behaved client does.
func (l *loader) closedLoop(ctx context.Context, p *phase, workers int, d time.Duration, seed uint64) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.start = time.Now()
	deadline := p.start.Add(d)
	l.current.Store(p)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for time.Now().Before(deadline) && ctx.Err() == nil {
				r := l.export(ctx, nil, createBody(rng, l.env.enterprises))
				p.addCreate(r)
				if r.status != http.StatusCreated {
					time.Sleep(min(time.Duration(max(r.retryMs, 10))*time.Millisecond, time.Second))
				}
			}
		})
	}
	wg.Wait()
	p.end = time.Now()
	l.current.Store(nil)
}

// maxOpenCreates bounds the creates the harness keeps open at once; an arrival beyond it is
// counted as overflow rather than sent (the server is not answering: that is a result too).
const maxOpenCreates = 4096

// openLoop offers creates as a Poisson process at p.rate per second for d, then waits (at most
// drainMax) until every admitted export of the level is final.
func (l *loader) openLoop(ctx context.Context, p *phase, d time.Duration, seed uint64, logf func(string, ...any)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rng := rand.New(rand.NewPCG(seed, uint64(p.rate*1000)))
	var wg sync.WaitGroup
	p.start = time.Now()
	end := p.start.Add(d)
	l.current.Store(p)
	next := p.start
	for ctx.Err() == nil {
		next = next.Add(time.Duration(rng.ExpFloat64() / p.rate * float64(time.Second)))
		if next.After(end) {
			break
		}
		if w := time.Until(next); w > 0 {
			time.Sleep(w)
		}
		limit := int64(maxOpenCreates)
		if p.maxOpen > 0 {
			limit = p.maxOpen
		}
		if l.openCreates.Load() >= limit {
			p.mu.Lock()
			p.overflow++
			p.mu.Unlock()
			continue
		}
		if p.healthzShare > 0 && rng.Float64() < p.healthzShare {
			l.openCreates.Add(1)
			wg.Go(func() {
				defer l.openCreates.Add(-1)
				rec := l.healthz(ctx, p.client)
				p.mu.Lock()
				p.burstHealthz = append(p.burstHealthz, rec)
				p.mu.Unlock()
			})
			continue
		}
		body := createBody(rng, l.env.enterprises)
		l.openCreates.Add(1)
		wg.Go(func() {
			defer l.openCreates.Add(-1)
			p.addCreate(l.export(ctx, p.client, body))
		})
	}
	if w := time.Until(end); w > 0 {
		time.Sleep(w)
	}
	p.end = time.Now()
	l.current.Store(nil)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }() // owned here: cancel below ends every export wait
	select {
	case <-done:
	case <-time.After(l.cfg.drainMax):
		logf("%s: exports still open after %s; abandoning them", p.name, l.cfg.drainMax)
		cancel()
		<-done
	case <-ctx.Done():
		<-done
	}
}

// readLoop GETs the known ready export and lists the caller's exports, alternately, at
// cfg.getRate per second (open loop: a slow answer does not delay the next read), booking each
// to the current phase, until ctx ends.
func (l *loader) readLoop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Duration(float64(time.Second) / l.cfg.getRate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		id := l.readyID.Load()
		p := l.current.Load()
		if id == nil || p == nil {
			continue
		}
		path, list := exportsPath+"/"+*id, n%2 == 1
		if list {
			path = exportsPath + "?page_size=20"
		}
		wg.Go(func() {
			st, d := l.do(ctx, l.readClient, "GET", path, nil, nil, nil)
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			p.gets = append(p.gets, getRec{latency: d, status: st, list: list})
			p.mu.Unlock()
		})
	}
}

// sample reads exportd's RSS every 100ms and its admission gauges every 300ms, booking them to
// the current phase, until ctx ends.
func (l *loader) sample(ctx context.Context, logf func(string, ...any)) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := l.current.Load()
		if p == nil {
			continue
		}
		rss, err := rssBytes(l.env.pid())
		if err == nil {
			for {
				old := p.rssPeak.Load()
				if rss <= old || p.rssPeak.CompareAndSwap(old, rss) {
					break
				}
			}
		}
		if n%3 != 0 {
			continue
		}
		g, err := scrape(ctx, l.env.admin)
		if err != nil {
			if ctx.Err() == nil {
				logf("scrape metrics: %v", err)
			}
			continue
		}
		p.mu.Lock()
		p.limits = append(p.limits, g["exportd_admission_limit"])
		p.inFlight = append(p.inFlight, g["exportd_admission_in_flight"])
		p.queued = append(p.queued, g["exportd_admission_queued"])
		p.goroutines = append(p.goroutines, g["go_goroutines"])
		p.heapInuse = append(p.heapInuse, g["go_memstats_heap_inuse_bytes"])
		p.mu.Unlock()
	}
}

// capacityWorkers is the closed-loop concurrency that saturates the server: four per slot, so
// that slots stay busy while workers poll, back off after a shed, or read a finished export.
func capacityWorkers(cfg config) int { return 4 * cfg.maxExports }

// measure runs the phases in order and fills rep.
func measure(ctx context.Context, cfg config, e *env, rep *report, logf func(string, ...any)) error {
	l := &loader{cfg: cfg, env: e, client: newClient(), readClient: newClient(), chPID: e.clickHousePID()}
	bg, stopBg := context.WithCancel(ctx)
	var bgWG sync.WaitGroup
	defer func() { stopBg(); bgWG.Wait() }()
	bgWG.Go(func() { l.readLoop(bg) })
	bgWG.Go(func() { l.sample(bg, logf) })
	bgWG.Go(func() { l.probeLoop(bg, logf) })

	logf("warmup: %s closed loop, 2 workers", cfg.warmupDur)
	l.closedLoop(ctx, &phase{name: "warmup"}, 2, cfg.warmupDur, 1)
	if l.readyID.Load() == nil {
		return fmt.Errorf("no export became ready during the warmup (see %s)", e.logPath())
	}

	idle := &phase{name: "uncontended"}
	logf("uncontended: %s closed loop, 1 worker", cfg.idleDur)
	if err := l.runPhase(ctx, idle, func() { l.closedLoop(ctx, idle, 1, cfg.idleDur, 2) }); err != nil {
		return err
	}
	rep.Uncontended = summarize(idle, 0)
	logf("uncontended: %.1f exports/s, completion p50 %.1fms p99 %.1fms",
		rep.Uncontended.GoodputExportsPerSec, rep.Uncontended.CompletionP50Ms, rep.Uncontended.CompletionP99Ms)

	capa := &phase{name: "capacity"}
	workers := capacityWorkers(cfg)
	logf("capacity: %s closed loop, %d workers", cfg.capacityDur, workers)
	if err := l.runPhase(ctx, capa, func() { l.closedLoop(ctx, capa, workers, cfg.capacityDur, 3) }); err != nil {
		return err
	}
	rep.Capacity = summarize(capa, 0)
	capacity := rep.Capacity.GoodputExportsPerSec
	logf("capacity: %.1f exports/s (%.0f rows/s), completion p99 %.1fms", capacity,
		rep.Capacity.GoodputRowsPerSec, rep.Capacity.CompletionP99Ms)
	if capacity <= 0 {
		return fmt.Errorf("no export completed in the capacity phase (see %s)", e.logPath())
	}
	if cfg.baseRate > 0 {
		logf("levels multiply -base-rate %.1f exports/s, not the measured capacity", cfg.baseRate)
		capacity = cfg.baseRate
	}

	for i, m := range cfg.levels {
		p := &phase{name: strconv.FormatFloat(m, 'g', -1, 64) + "x", multiple: m, rate: m * capacity}
		logf("%s: open loop, %.1f creates/s for %s", p.name, p.rate, cfg.levelDur)
		if err := l.runPhase(ctx, p, func() { l.openLoop(ctx, p, cfg.levelDur, uint64(10+i), logf) }); err != nil {
			return err
		}
		s := summarize(p, m)
		rep.Levels = append(rep.Levels, s)
		logf("%s: goodput %.0f rows/s, completion p99 %.1fms, shed %d (p99 %.2fms), GET p99 %.2fms, other %d, RSS %.1fMiB, limit %.2f",
			p.name, s.GoodputRowsPerSec, s.CompletionP99Ms, s.Shed, s.ShedP99Ms, s.GetP99Ms, s.Outside, s.RSSPeakMiB, s.LimitMean)
		select { // let the server settle between levels
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	if cfg.burst > 0 {
		// The server allows 256 connections per client address
		// (MaxConnsPerIP) and answers one more with fasthttp's plain-text
		// 429 at accept, even on a connection the pool then takes for a
		// poll. The levels leave hundreds of idle keep-alive connections
		// that would count against the burst's: close them first.
		l.client.CloseIdleConnections()
		l.readClient.CloseIdleConnections()
		name := "burst " + strconv.FormatFloat(cfg.burst, 'g', -1, 64) + "x"
		p := &phase{name: name, multiple: cfg.burst, rate: cfg.burst * capacity / (1 - cfg.burstHealth), client: newConnClient(), healthzShare: cfg.burstHealth,
			maxOpen: int64(cfg.burstMaxOpen)}
		// The creates alone arrive at burst x capacity; the /healthz share comes on top.
		logf("%s: open loop, %.1f requests/s for %s, a new connection per request, %.0f%% of them GET /healthz",
			name, p.rate, cfg.burstDur, 100*cfg.burstHealth)
		if err := l.runPhase(ctx, p, func() { l.openLoop(ctx, p, cfg.burstDur, 99, logf) }); err != nil {
			return err
		}
		s := summarize(p, cfg.burst)
		rep.Burst = &s
		logf("%s: %d creates, %d shed 503/429 (p50 %.2fms p99 %.2fms), /healthz p99 %.2fms over %d (new connections), other %d, "+
			"arrivals over %d open requests not sent %d", name, s.Creates, s.ShedAny, s.ShedAnyP50Ms, s.ShedAnyP99Ms, s.HealthzNewConnP99Ms,
			s.HealthzNewConn, s.Outside, cfg.burstMaxOpen, s.Overflow)
	}
	return nil
}

// runPhase runs load and books the shed counters of the phase (from /metrics, before and after).
func (l *loader) runPhase(ctx context.Context, p *phase, load func()) error {
	before, err := scrape(ctx, l.env.admin)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	pids := [3]string{strconv.Itoa(l.env.pid()), l.chPID, "self"}
	var cpu0 [3]float64
	for i, pid := range pids {
		cpu0[i], _ = cpuSeconds(pid)
	}
	load()
	if wall := time.Since(p.start).Seconds(); wall > 0 {
		for i, pid := range pids {
			if c, err := cpuSeconds(pid); err == nil && pid != "" {
				p.cores[i] = (c - cpu0[i]) / wall
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	after, err := scrape(ctx, l.env.admin)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.before, p.after = before, after
	p.shedBy = map[string]float64{}
	for k, v := range after {
		if reason, ok := cutLabel(k, "exportd_admission_shed_total", "reason"); ok {
			if d := v - before[k]; d > 0 {
				p.shedBy[reason] = d
			}
		}
	}
	return nil
}
