package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// timed sends warmup untimed and n timed requests built by mk, one at a time.
func timed(ctx context.Context, c *client, warmup, n int, want int, mk func(i int) (method, u string, body []byte, hdr map[string]string)) (latency, error) {
	codes := map[string]int{}
	ds := make([]time.Duration, 0, n)
	for i := range warmup + n {
		if err := ctx.Err(); err != nil {
			return latency{}, err
		}
		method, u, body, hdr := mk(i)
		st, b, d := c.do(ctx, method, u, body, hdr)
		if i >= warmup {
			ds = append(ds, d)
			codes[statusKey(st, want, b)]++
		}
	}
	return summarize(ds, codes, want), nil
}

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

// createBody is a create of one millisecond of activity for ent: the export itself is nearly
// free, so the create path (admission, key-free insert, job start) is what is timed.
func createBody(ent string, i int) []byte {
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%200)
	from := day.Format("2006-01-02T15:04:05.000Z")
	to := day.Add(999 * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	return []byte(`{"format":"csv","filter_criteria":{"date_from_utc":"` + from + `","date_to_utc":"` + to +
		`"},"requested_scope":{"kind":"enterprise","ref":"` + ent + `"}}`)
}

var preferWait0 = map[string]string{"Prefer": "wait=0"}

func measureSize(ctx context.Context, cfg config, e *env, g *generator, size int, large bool, logf func(string, ...any)) (*sizeResult, error) {
	logf("== %d records", size)
	res := &sizeResult{}
	from := g.seeded
	took, err := g.seedTo(ctx, size, logf)
	if err != nil {
		return nil, err
	}
	res.Seeded, res.SeedSeconds = g.seeded, took.Seconds()
	res.SeedPerSec = float64(g.seeded-from) / took.Seconds()
	res.SeededByStatus = maps(g.statusN)
	// As autovacuum would after such an insert: without statistics the planner's choices on a
	// freshly loaded table are a matter of luck, which is not what this measures.
	start := time.Now()
	if _, err := e.pool.Exec(ctx, "VACUUM ANALYZE operations_activity_exports"); err != nil {
		return nil, fmt.Errorf("vacuum analyze: %w", err)
	}
	res.AnalyzeSeconds = time.Since(start).Seconds()
	var bytes int64
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE enterprise_ref = $1),
		pg_total_relation_size('operations_activity_exports') FROM operations_activity_exports`, e.large).
		Scan(&res.Records, &res.LargeRecords, &bytes); err != nil {
		return nil, fmt.Errorf("count records: %w", err)
	}
	res.TableMiB = mib(bytes)
	logf("table holds %d records (%d of the large enterprise), %.0f MiB with indexes; vacuum analyze %.1fs",
		res.Records, res.LargeRecords, res.TableMiB, res.AnalyzeSeconds)

	r, err := e.startReplica(ctx, cfg)
	if err != nil {
		return res, err
	}
	c := newClient(e.token, 4)
	rng := rand.New(rand.NewPCG(cfg.seed, uint64(size)))
	first := r.base + exportsPath + "?page_size=100"
	get := func(int) (string, string, []byte, map[string]string) {
		return "GET", r.base + exportsPath + "/" + g.sample[rng.IntN(len(g.sample))], nil, nil
	}
	list := func(int) (string, string, []byte, map[string]string) { return "GET", first, nil, nil }
	create := func(i int) (string, string, []byte, map[string]string) {
		return "POST", r.base + exportsPath, createBody(e.creators[i%len(e.creators)], i), preferWait0
	}

	// Warm-up: every kind of request, untimed, then the RSS reading.
	for _, mk := range []func(int) (string, string, []byte, map[string]string){list, get, create} {
		if _, err := timed(ctx, c, cfg.warmup, 0, 0, mk); err != nil {
			return res, err
		}
	}
	time.Sleep(time.Second) // let the warm-up's exports finish
	rss, err := rssBytes(r.pid())
	if err != nil {
		return res, err
	}
	res.RSSWarmMiB = mib(rss)
	logf("%s warm (RSS %.1f MiB)", r.name, res.RSSWarmMiB)

	if res.ListFirst, err = timed(ctx, c, 0, cfg.requests, http.StatusOK, list); err != nil {
		return res, err
	}
	logf("list first page: p50 %.2f ms, p99 %.2f ms", res.ListFirst.P50Ms, res.ListFirst.P99Ms)

	deep, offset, err := walk(ctx, c, first, cfg.deepPages)
	if err != nil {
		return res, err
	}
	res.DeepPageOffset = offset
	deepURL := first + "&page_token=" + url.QueryEscape(deep)
	if res.ListDeep, err = timed(ctx, c, cfg.warmup/4, cfg.requests, http.StatusOK,
		func(int) (string, string, []byte, map[string]string) { return "GET", deepURL, nil, nil }); err != nil {
		return res, err
	}
	logf("list deep page (after %d records): p50 %.2f ms, p99 %.2f ms", offset, res.ListDeep.P50Ms, res.ListDeep.P99Ms)

	if res.Get, err = timed(ctx, c, 0, cfg.requests, http.StatusOK, get); err != nil {
		return res, err
	}
	logf("get: p50 %.2f ms, p99 %.2f ms", res.Get.P50Ms, res.Get.P99Ms)
	if res.Create, err = timed(ctx, c, 0, cfg.creates, http.StatusCreated, create); err != nil {
		return res, err
	}
	logf("create: p50 %.2f ms, p99 %.2f ms (%d not 201: %v)", res.Create.P50Ms, res.Create.P99Ms, res.Create.Bad, res.Create.Codes)
	time.Sleep(time.Second)
	if rss, err = rssBytes(r.pid()); err != nil {
		return res, err
	}
	res.RSSAfterMiB = mib(rss)
	if hwm, err := procStatus(r.pid(), "VmHWM:"); err == nil {
		res.HWMMiB = mib(hwm)
	}
	logf("%s RSS after the measurements %.1f MiB (high water %.1f MiB)", r.name, res.RSSAfterMiB, res.HWMMiB)

	res.Creates1 = createLoad(ctx, e, []*replica{r}, cfg.clients, cfg.createDuration)
	logf("creates/s, 1 replica, %d clients: %.1f (%v)", cfg.clients, res.Creates1.PerSec, res.Creates1.Codes)
	all := []*replica{r}
	for len(all) < cfg.replicas {
		x, err := e.startReplica(ctx, cfg)
		if err != nil {
			return res, err
		}
		all = append(all, x)
	}
	if len(all) > 1 {
		res.CreatesN = createLoad(ctx, e, all, cfg.clients, cfg.createDuration)
		logf("creates/s, %d replicas, %d clients: %.1f (%v)", len(all), cfg.clients, res.CreatesN.PerSec, res.CreatesN.Codes)
	}
	for _, x := range all {
		n := countLines(x.logPath, `"level":"warn"`, `"level":"error"`)
		res.ReplicaWarnLines += n[`"level":"warn"`]
		res.ReplicaErrorLines += n[`"level":"error"`]
		res.SigtermSeconds = append(res.SigtermSeconds, e.stopReplica(x).Seconds())
	}
	logf("replicas stopped (SIGTERM to exit %v s); their logs hold %d warn and %d error lines", fmtSecs(res.SigtermSeconds),
		res.ReplicaWarnLines, res.ReplicaErrorLines)
	return res, nil
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
	c := newClient(e.token, 2*clients)
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

func measureExpiry(ctx context.Context, cfg config, e *env, logf func(string, ...any)) (*expiryResult, error) {
	logf("== expiry of %d records at once", cfg.expire)
	r, err := e.startReplica(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer e.stopReplica(r)
	c := newClient(e.token, 2)
	first := r.base + exportsPath + "?page_size=100"
	if _, err := timed(ctx, c, cfg.warmup, 0, 0, func(int) (string, string, []byte, map[string]string) { return "GET", first, nil, nil }); err != nil {
		return nil, err
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
	tag, err := e.pool.Exec(ctx, `UPDATE operations_activity_exports SET status = 'ready', expires_at = $2,
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
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM operations_activity_exports WHERE status = 'ready' AND expires_at = $1`,
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

// cpuSeconds reads the user plus system CPU time of pid from /proc, assuming the usual 100 clock
// ticks per second.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return (utime + stime) / 100, nil
}
