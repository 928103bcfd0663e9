package main

import (
	"github.com/exportd/exportd/bench/internal/procstat"

	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/exportd/exportd/engine"
)

const exportsPath = "/operations-activity-exports"

// client sends requests as the benchmark's caller.
type client struct {
	http  *http.Client
	token string
}

func newClient(token string, conns int) *client {
	return &client{token: token, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second, DisableCompression: true}}}
}

// do sends one request and returns the status (0 on a transport error), the body and the time
// from sending to the end of the body.
func (c *client) do(ctx context.Context, method, u string, body []byte, hdr map[string]string) (int, []byte, time.Duration) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, 0
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, time.Since(start)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, nil, d
	}
	return resp.StatusCode, b, d
}

// latency summarises timed requests of one kind.
type latency struct {
	N      int            `json:"n"`
	P50Ms  float64        `json:"p50_ms"`
	P99Ms  float64        `json:"p99_ms"`
	MaxMs  float64        `json:"max_ms"`
	MeanMs float64        `json:"mean_ms"`
	Bad    int            `json:"unexpected_status"`
	Codes  map[string]int `json:"statuses"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the nearest-rank percentile q of sorted.
func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return ms(sorted[min(max(i, 0), len(sorted)-1)])
}

// statusKey names an answer: its status, and for an unexpected one the error's details.reason
// (or code), as in "503 overloaded".
func statusKey(st, want int, body []byte) string {
	k := strconv.Itoa(st)
	if st == want || st == 0 {
		return k
	}
	var e struct {
		Code    string `json:"code"`
		Details struct {
			Reason string `json:"reason"`
		} `json:"details"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Details.Reason != "" {
			return k + " " + e.Details.Reason
		} else if e.Code != "" {
			return k + " " + e.Code
		}
	}
	return k
}

func summarize(ds []time.Duration, codes map[string]int, want int) latency {
	slices.Sort(ds)
	l := latency{N: len(ds), P50Ms: pct(ds, 0.50), P99Ms: pct(ds, 0.99), Codes: map[string]int{}}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	if len(ds) > 0 {
		l.MaxMs, l.MeanMs = ms(ds[len(ds)-1]), ms(sum)/float64(len(ds))
	}
	for c, n := range codes {
		l.Codes[c] = n
		if c != strconv.Itoa(want) {
			l.Bad += n
		}
	}
	return l
}

// series collects timed answers of one kind.
type series struct {
	want  int
	ds    []time.Duration
	codes map[string]int
}

func newSeries(want int) *series { return &series{want: want, codes: map[string]int{}} }

func (s *series) add(st int, body []byte, d time.Duration) {
	s.ds = append(s.ds, d)
	s.codes[statusKey(st, s.want, body)]++
}

func (s *series) summary() latency { return summarize(s.ds, s.codes, s.want) }

type listPage struct {
	Items         []json.RawMessage `json:"items"`
	NextPageToken *string           `json:"next_page_token"`
}

// sizeResult is everything measured at one history size.
type sizeResult struct {
	Records           int64          `json:"records"` // rows of operations_activity_exports when measured
	Seeded            int            `json:"seeded"`  // of which seeded by the harness
	LargeRecords      int64          `json:"large_enterprise_records"`
	SeededByStatus    map[string]int `json:"seeded_by_status"`
	SeedSeconds       float64        `json:"seed_seconds"` // for the records added at this size
	SeedPerSec        float64        `json:"seed_records_per_s"`
	AnalyzeSeconds    float64        `json:"analyze_seconds"`
	TableMiB          float64        `json:"table_and_indexes_mib"`
	ListFirst         latency        `json:"list_first_page"`
	ListDeep          latency        `json:"list_deep_page"`
	DeepPageOffset    int            `json:"deep_page_offset"` // records before the deep page
	Get               latency        `json:"get"`
	Create            latency        `json:"create"`
	ListMulti         latency        `json:"list_first_page_many_scopes"` // as a caller with 17 subtree scopes (the large enterprise and 16 small ones)
	Healthz           latency        `json:"healthz"`                     // GET /healthz: the replica's HTTP path without PostgreSQL
	StoreList         latency        `json:"store_list_first"`            // pgstore.Store.List called by the harness: PostgreSQL's part of a list
	StoreGet          latency        `json:"store_get"`                   // pgstore.Store.Get likewise
	RSSWarmMiB        float64        `json:"rss_after_warmup_mib"`
	RSSAfterMiB       float64        `json:"rss_after_measurements_mib"`
	HWMMiB            float64        `json:"rss_high_water_mib"` // VmHWM after the measurements
	Creates1          createRate     `json:"creates_one_replica"`
	CreatesN          createRate     `json:"creates_replicas"`
	SigtermSeconds    []float64      `json:"sigterm_to_exit_seconds"`
	ReplicaWarnLines  int            `json:"replica_warn_lines"`
	ReplicaErrorLines int            `json:"replica_error_lines"`
}

// createRate is a creates/s measurement.
type createRate struct {
	Replicas int            `json:"replicas"`
	Clients  int            `json:"clients"`
	Seconds  float64        `json:"seconds"`
	Created  int            `json:"created"`
	PerSec   float64        `json:"created_per_s"`
	Codes    map[string]int `json:"statuses"`
	P50Ms    float64        `json:"p50_ms"`
	P99Ms    float64        `json:"p99_ms"`
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// createBody is a create of one second of activity for ent: the export itself is nearly
// free, so the create path (admission, key-free insert, job start) is what is timed.
func createBody(ent string, i int) []byte {
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%200)
	from := day.Format("2006-01-02T15:04:05.000Z")
	to := day.Add(999 * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	return []byte(`{"format":"csv","filter_criteria":{"date_from_utc":"` + from + `","date_to_utc":"` + to +
		`"},"requested_scope":{"kind":"enterprise","ref":"` + ent + `"}}`)
}

var preferWait0 = map[string]string{"Prefer": "wait=0"}

// probe is one deployment under measurement: its replica, client and timed series.
type probe struct {
	d       *deployment
	size    int
	r       *replica
	c       *client // as the large enterprise only
	cm      *client // as the large enterprise and the creators: creates, the many-scope list
	rng     *rand.Rand
	res     *sizeResult
	first   string // URL of the first list page
	deepURL string

	listFirst, listDeep, listMulti, get, create, healthz, storeList, storeGet *series
}

func (p *probe) doList(ctx context.Context, c *client, s *series, u string) {
	st, b, d := c.do(ctx, "GET", u, nil, nil)
	s.add(st, b, d)
}

func (p *probe) doGet(ctx context.Context, s *series) {
	st, b, d := p.c.do(ctx, "GET", p.r.base+exportsPath+"/"+p.d.gen.sample[p.rng.IntN(len(p.d.gen.sample))], nil, nil)
	s.add(st, b, d)
}

func (p *probe) doCreate(ctx context.Context, s *series, creators []string, i int) {
	st, b, d := p.cm.do(ctx, "POST", p.r.base+exportsPath, createBody(creators[i%len(creators)], i), preferWait0)
	s.add(st, b, d)
}

func (p *probe) doHealthz(ctx context.Context, s *series) {
	st, b, d := p.c.do(ctx, "GET", p.r.base+"/healthz", nil, nil)
	s.add(st, b, d)
}

// doStore times the store's own List and Get from the harness, without exportd: the floor of the
// API's figures (PostgreSQL and the machine).
func (p *probe) doStore(ctx context.Context, large string) error {
	start := time.Now()
	if _, err := p.d.store.List(ctx, engine.Visibility{Enterprises: []string{large}}, nil, 101); err != nil {
		return fmt.Errorf("store list: %w", err)
	}
	p.storeList.add(200, nil, time.Since(start))
	start = time.Now()
	if _, err := p.d.store.Get(ctx, p.d.gen.sample[p.rng.IntN(len(p.d.gen.sample))]); err != nil {
		return fmt.Errorf("store get: %w", err)
	}
	p.storeGet.add(200, nil, time.Since(start))
	return nil
}

// measureSizes seeds both deployments, then measures them side by side: every timed request
// alternates between the small and the large deployment (which goes first alternates too), so a
// busy moment of the machine weighs on both.
func measureSizes(ctx context.Context, cfg config, e *env, logf func(string, ...any)) ([]sizeResult, error) {
	sizes := []int{cfg.small, cfg.large}
	ps := make([]*probe, len(e.deps))
	for i, d := range e.deps {
		p := &probe{d: d, size: sizes[i], res: &sizeResult{}, rng: rand.New(rand.NewPCG(cfg.seed, uint64(100+i))),
			listFirst: newSeries(200), listDeep: newSeries(200), listMulti: newSeries(200), get: newSeries(200), create: newSeries(201),
			healthz: newSeries(200), storeList: newSeries(200), storeGet: newSeries(200)}
		ps[i] = p
		took, err := d.gen.seedTo(ctx, p.size, logf)
		if err != nil {
			return nil, err
		}
		p.res.Seeded, p.res.SeedSeconds = d.gen.seeded, took.Seconds()
		p.res.SeedPerSec = float64(d.gen.seeded) / took.Seconds()
		p.res.SeededByStatus = maps(d.gen.statusN)
		// As autovacuum would after such an insert: without statistics the planner's choices on
		// a freshly loaded table are a matter of luck, which is not what this measures.
		start := time.Now()
		if _, err := d.pool.Exec(ctx, "VACUUM ANALYZE operations_activity_exports"); err != nil {
			return nil, fmt.Errorf("vacuum analyze: %w", err)
		}
		p.res.AnalyzeSeconds = time.Since(start).Seconds()
		var bytes int64
		if err := d.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE enterprise_ref = $1),
			pg_total_relation_size('operations_activity_exports') FROM operations_activity_exports`, e.large).
			Scan(&p.res.Records, &p.res.LargeRecords, &bytes); err != nil {
			return nil, fmt.Errorf("count records: %w", err)
		}
		p.res.TableMiB = mib(bytes)
		logf("%s holds %d records (%d of the large enterprise), %.0f MiB with indexes; vacuum analyze %.1fs",
			d.db, p.res.Records, p.res.LargeRecords, p.res.TableMiB, p.res.AnalyzeSeconds)
	}
	out := func() []sizeResult {
		var rs []sizeResult
		for _, p := range ps {
			rs = append(rs, *p.res)
		}
		return rs
	}

	for _, p := range ps {
		r, err := e.startReplica(ctx, cfg, p.d)
		if err != nil {
			return nil, err
		}
		p.r, p.c, p.cm = r, newClient(e.token, 4), newClient(e.multi, 4)
		p.first = r.base + exportsPath + "?page_size=100"
	}
	// Warm-up: every kind of request, untimed, then the RSS reading.
	for _, p := range ps {
		w := newSeries(0)
		for i := range cfg.warmup {
			p.doList(ctx, p.c, w, p.first)
			p.doList(ctx, p.cm, w, p.first)
			p.doGet(ctx, w)
			p.doCreate(ctx, w, e.creators, i)
			p.doHealthz(ctx, w)
			if err := p.doStore(ctx, e.large); err != nil {
				return nil, err
			}
		}
		p.storeList, p.storeGet = newSeries(200), newSeries(200)
	}
	time.Sleep(time.Second) // let the warm-up's exports finish
	for _, p := range ps {
		rss, err := rssBytes(p.r.pid())
		if err != nil {
			return nil, err
		}
		p.res.RSSWarmMiB = mib(rss)
		deep, offset, err := walk(ctx, p.c, p.first, cfg.deepPages)
		if err != nil {
			return nil, err
		}
		p.res.DeepPageOffset = offset
		p.deepURL = p.first + "&page_token=" + url.QueryEscape(deep)
		logf("%s warm (RSS %.1f MiB); deep page after %d records", p.r.name, p.res.RSSWarmMiB, offset)
	}

	logf("timing %d rounds of list first page, list deep page, list first page with 17 scopes, get, /healthz, store List and Get, alternating sizes", cfg.requests)
	for i := range cfg.requests {
		for j := range ps {
			p := ps[(i+j)%len(ps)]
			p.doList(ctx, p.c, p.listFirst, p.first)
			p.doList(ctx, p.c, p.listDeep, p.deepURL)
			p.doList(ctx, p.cm, p.listMulti, p.first)
			p.doGet(ctx, p.get)
			p.doHealthz(ctx, p.healthz)
			if err := p.doStore(ctx, e.large); err != nil {
				return nil, err
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	logf("timing %d creates per size, alternating sizes", cfg.creates)
	for i := range cfg.creates {
		for j := range ps {
			p := ps[(i+j)%len(ps)]
			p.doCreate(ctx, p.create, e.creators, i)
		}
	}
	time.Sleep(time.Second)
	for _, p := range ps {
		rss, err := rssBytes(p.r.pid())
		if err != nil {
			return nil, err
		}
		p.res.RSSAfterMiB = mib(rss)
		if hwm, err := procStatus(p.r.pid(), "VmHWM:"); err == nil {
			p.res.HWMMiB = mib(hwm)
		}
		p.res.ListFirst, p.res.ListDeep, p.res.Get, p.res.Create = p.listFirst.summary(), p.listDeep.summary(), p.get.summary(), p.create.summary()
		p.res.Healthz, p.res.StoreList, p.res.StoreGet = p.healthz.summary(), p.storeList.summary(), p.storeGet.summary()
		p.res.ListMulti = p.listMulti.summary()
		logf("%d records: list first p50 %.2f p99 %.2f ms; deep p50 %.2f p99 %.2f ms; 17 scopes p50 %.2f p99 %.2f ms; get p50 %.2f p99 %.2f ms; create p50 %.2f p99 %.2f ms (%v); "+
			"/healthz p99 %.2f ms; store List p99 %.2f ms, Get p99 %.2f ms; RSS %.1f MiB after (high water %.1f)",
			p.size, p.res.ListFirst.P50Ms, p.res.ListFirst.P99Ms, p.res.ListDeep.P50Ms, p.res.ListDeep.P99Ms, p.res.ListMulti.P50Ms, p.res.ListMulti.P99Ms, p.res.Get.P50Ms, p.res.Get.P99Ms,
			p.res.Create.P50Ms, p.res.Create.P99Ms, p.res.Create.Codes, p.res.Healthz.P99Ms, p.res.StoreList.P99Ms, p.res.StoreGet.P99Ms,
			p.res.RSSAfterMiB, p.res.HWMMiB)
	}

	for _, p := range ps {
		p.res.Creates1 = createLoad(ctx, e, []*replica{p.r}, cfg.clients, cfg.createDuration)
		logf("%d records: creates/s, 1 replica, %d clients: %.1f (%v)", p.size, cfg.clients, p.res.Creates1.PerSec, p.res.Creates1.Codes)
		all := []*replica{p.r}
		for len(all) < cfg.replicas {
			x, err := e.startReplica(ctx, cfg, p.d)
			if err != nil {
				return out(), err
			}
			all = append(all, x)
		}
		if len(all) > 1 {
			p.res.CreatesN = createLoad(ctx, e, all, cfg.clients, cfg.createDuration)
			logf("%d records: creates/s, %d replicas, %d clients: %.1f (%v)", p.size, len(all), cfg.clients, p.res.CreatesN.PerSec, p.res.CreatesN.Codes)
		}
		for _, x := range all {
			p.res.SigtermSeconds = append(p.res.SigtermSeconds, e.stopReplica(x).Seconds())
			n := countLines(x.logPath, `"level":"warn"`, `"level":"error"`)
			p.res.ReplicaWarnLines += n[`"level":"warn"`]
			p.res.ReplicaErrorLines += n[`"level":"error"`]
		}
		logf("%d records: replicas stopped (SIGTERM to exit %s s); their logs hold %d warn and %d error lines", p.size,
			fmtSecs(p.res.SigtermSeconds), p.res.ReplicaWarnLines, p.res.ReplicaErrorLines)
	}
	return out(), nil
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func fmtSecs(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strings.Join(s, ", ")
}

// walk follows next_page_token from the first page up to pages times and returns the token of
// the last page reached and how many records lie before it.
func walk(ctx context.Context, c *client, first string, pages int) (string, int, error) {
	tok, offset := "", 0
	for i := 0; i < pages; i++ {
		u := first
		if tok != "" {
			u += "&page_token=" + url.QueryEscape(tok)
		}
		st, body, _ := c.do(ctx, "GET", u, nil, nil)
		if st != http.StatusOK {
			return "", 0, fmt.Errorf("list page %d: status %d: %.200s", i+1, st, body)
		}
		var p listPage
		if err := json.Unmarshal(body, &p); err != nil {
			return "", 0, fmt.Errorf("list page %d: %w", i+1, err)
		}
		if p.NextPageToken == nil {
			break
		}
		tok, offset = *p.NextPageToken, offset+len(p.Items)
	}
	if tok == "" {
		return "", 0, fmt.Errorf("the first list page has no next_page_token (fewer than a page of records?)")
	}
	return tok, offset, nil
}

// createLoad runs clients goroutines that create exports back to back for d, spread round-robin
// over the replicas; only 201s count.
func createLoad(ctx context.Context, e *env, rs []*replica, clients int, d time.Duration) createRate {
	c := newClient(e.multi, 2*clients)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu      sync.Mutex
		codes   = map[string]int{}
		ds      []time.Duration
		created atomic.Int64
		wg      sync.WaitGroup
	)
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rs[w%len(rs)]
			for i := w; ctx.Err() == nil; i += clients {
				st, b, dur := c.do(ctx, "POST", r.base+exportsPath, createBody(e.creators[i%len(e.creators)], i), preferWait0)
				if ctx.Err() != nil {
					return // cut off by the end of the measurement: not counted
				}
				mu.Lock()
				codes[statusKey(st, http.StatusCreated, b)]++
				ds = append(ds, dur)
				mu.Unlock()
				if st == http.StatusCreated {
					created.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	l := summarize(ds, codes, http.StatusCreated)
	time.Sleep(2 * time.Second) // let the last exports finish before anything else is measured
	return createRate{Replicas: len(rs), Clients: clients, Seconds: el.Seconds(), Created: int(created.Load()),
		PerSec: float64(created.Load()) / el.Seconds(), Codes: l.Codes, P50Ms: l.P50Ms, P99Ms: l.P99Ms}
}

// expiryResult is the mass expiry at the large size.
type expiryResult struct {
	Records          int64   `json:"records"`
	UpdateSeconds    float64 `json:"update_seconds"`
	FirstSeconds     float64 `json:"first_expired_after_s"` // from the UPDATE's commit
	DoneSeconds      float64 `json:"all_expired_after_s"`
	Done             bool    `json:"done"`
	Left             int64   `json:"left_unexpired"`
	PerSec           float64 `json:"expired_per_s"` // from the first expired to the last
	RSSBeforeMiB     float64 `json:"rss_before_mib"`
	RSSPeakMiB       float64 `json:"rss_peak_mib"`
	RSSAfterMiB      float64 `json:"rss_after_mib"`
	ReplicaCPU       float64 `json:"replica_cpu_seconds"`
	LogLines         int     `json:"replica_log_lines"`
	WarnLines        int     `json:"replica_warn_lines"`
	SigtermSeconds   float64 `json:"sigterm_to_exit_seconds"`
	ListP99DuringMs  float64 `json:"list_first_page_p99_during_ms"`
	ListDuringN      int     `json:"list_first_page_during_n"`
	SampleIntervalMs int     `json:"rss_sample_interval_ms"`
}

func measureExpiry(ctx context.Context, cfg config, e *env, d *deployment, logf func(string, ...any)) (*expiryResult, error) {
	logf("== expiry of %d records at once (%s)", cfg.expire, d.db)
	r, err := e.startReplica(ctx, cfg, d)
	if err != nil {
		return nil, err
	}
	defer e.stopReplica(r)
	c := newClient(e.token, 2)
	first := r.base + exportsPath + "?page_size=100"
	for range cfg.warmup {
		if st, b, _ := c.do(ctx, "GET", first, nil, nil); st != http.StatusOK {
			return nil, fmt.Errorf("list before the expiry: status %d: %.200s", st, b)
		}
	}
	time.Sleep(time.Second)
	res := &expiryResult{SampleIntervalMs: 100}
	rss, err := rssBytes(r.pid())
	if err != nil {
		return nil, err
	}
	res.RSSBeforeMiB = mib(rss)
	cpu0, _ := cpuSeconds(r.pid())

	// RSS sampler, from before the UPDATE to the end.
	var peak atomic.Int64
	peak.Store(rss)
	sctx, stopSampler := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			if v, err := rssBytes(r.pid()); err == nil && v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	defer func() { stopSampler(); wg.Wait() }()

	// A marker expiry time no seeded record has, so that the count below sees exactly these.
	marker := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	start := time.Now()
	tag, err := d.pool.Exec(ctx, `UPDATE operations_activity_exports SET status = 'ready', expires_at = $2,
		finished_at = coalesce(finished_at, generated_at)
		WHERE id IN (SELECT id FROM operations_activity_exports WHERE status IN ('expired', 'failed', 'cancelled') LIMIT $1)`,
		cfg.expire, marker)
	if err != nil {
		return nil, fmt.Errorf("mark records ready and past expiry: %w", err)
	}
	committed := time.Now()
	res.Records, res.UpdateSeconds = tag.RowsAffected(), committed.Sub(start).Seconds()
	logf("marked %d records ready, past expiry, in %.1fs; waiting for the expiry pass", res.Records, res.UpdateSeconds)

	// Meanwhile a reader lists the first page every 200 ms: is the API responsive during expiry?
	var during []time.Duration
	var dmu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sctx.Err() == nil {
			st, _, d := c.do(sctx, "GET", first, nil, nil)
			if st == http.StatusOK {
				dmu.Lock()
				during = append(during, d)
				dmu.Unlock()
			}
			select {
			case <-sctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	deadline := committed.Add(cfg.expireTimeout)
	lastLog := time.Now()
	var firstAt time.Time
	for {
		var left int64
		if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM operations_activity_exports WHERE status = 'ready' AND expires_at = $1`,
			marker).Scan(&left); err != nil {
			return nil, fmt.Errorf("count unexpired: %w", err)
		}
		now := time.Now()
		if left < res.Records && firstAt.IsZero() {
			firstAt = now
			res.FirstSeconds = now.Sub(committed).Seconds()
			logf("expiry pass started %.1fs after the commit", res.FirstSeconds)
		}
		res.Left = left
		if left == 0 {
			res.Done, res.DoneSeconds = true, now.Sub(committed).Seconds()
			break
		}
		if now.After(deadline) {
			break
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = now
			logf("%d of %d left, RSS %.1f MiB (peak %.1f)", left, res.Records, mib(mustRSS(r.pid())), mib(peak.Load()))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !firstAt.IsZero() && res.Done {
		res.PerSec = float64(res.Records) / max(time.Since(firstAt).Seconds(), 0.001)
	}
	stopSampler()
	wg.Wait()
	res.RSSPeakMiB = mib(peak.Load())
	res.RSSAfterMiB = mib(mustRSS(r.pid()))
	if cpu1, err := cpuSeconds(r.pid()); err == nil {
		res.ReplicaCPU = cpu1 - cpu0
	}
	slices.Sort(during)
	res.ListP99DuringMs, res.ListDuringN = pct(during, 0.99), len(during)
	res.SigtermSeconds = e.stopReplica(r).Seconds()
	n := countLines(r.logPath, "", `"level":"warn"`)
	res.LogLines, res.WarnLines = n[""], n[`"level":"warn"`]
	if res.Done {
		logf("all %d expired %.1fs after the commit (%.0f/s once started); RSS %.1f MiB before, peak %.1f MiB; %d log lines, %d warnings",
			res.Records, res.DoneSeconds, res.PerSec, res.RSSBeforeMiB, res.RSSPeakMiB, res.LogLines, res.WarnLines)
	} else {
		logf("NOT DONE: %d of %d still unexpired after %s", res.Left, res.Records, cfg.expireTimeout)
	}
	return res, nil
}

func mustRSS(pid int) int64 {
	v, _ := rssBytes(pid)
	return v
}

// cpuSeconds is the user plus system CPU time of pid so far.
func cpuSeconds(pid int) (float64, error) { return procstat.CPUSeconds(strconv.Itoa(pid)) }
