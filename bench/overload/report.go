package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// result summarises one phase.
type result struct {
	Name           string  `json:"name"`
	Multiple       float64 `json:"offered_multiple,omitempty"`
	OfferedPerSec  float64 `json:"offered_creates_per_s,omitempty"`
	ArrivalsPerSec float64 `json:"sent_creates_per_s"`
	// VsBest is the sent rate over the best throughput (exports/s) any phase of the run reached:
	// the load as a multiple of what the server showed it can do, when the capacity phase ran
	// on a busier or quieter machine than the level did.
	VsBest               float64            `json:"sent_vs_best_throughput,omitempty"`
	DurationS            float64            `json:"duration_s"`
	Creates              int                `json:"creates"`
	Admitted             int                `json:"admitted"`
	Ready                int                `json:"ready"`
	Failed               int                `json:"failed"`
	GoodputRowsPerSec    float64            `json:"goodput_rows_per_s"`
	GoodputExportsPerSec float64            `json:"goodput_exports_per_s"`
	MeanRows             float64            `json:"mean_rows_per_export"`
	CompletionP50Ms      float64            `json:"completion_p50_ms"`
	CompletionP99Ms      float64            `json:"completion_p99_ms"`
	CreateP99Ms          float64            `json:"admitted_create_response_p99_ms"`
	Shed                 int                `json:"shed"`
	ShedP50Ms            float64            `json:"shed_p50_ms"`
	ShedP99Ms            float64            `json:"shed_p99_ms"`
	ShedMaxMs            float64            `json:"shed_max_ms"`
	ShedByReason         map[string]float64 `json:"shed_by_reason,omitempty"`
	RetryAfterP50Ms      float64            `json:"retry_after_p50_ms"`
	RateLimited          int                `json:"rate_limited"`
	Other503             int                `json:"other_503"`
	Outside              int                `json:"responses_outside_201_429_503"` // or a 429/503 that breaks its envelope
	OutsideCodes         map[string]int     `json:"outside_codes,omitempty"`
	PollErrors           int                `json:"poll_errors"`
	Overflow             int                `json:"harness_overflow"`
	Gets                 int                `json:"gets"`
	GetP50Ms             float64            `json:"get_p50_ms"`
	GetP99Ms             float64            `json:"get_p99_ms"`
	GetErrors            int                `json:"get_errors"`
	GetOneP99Ms          float64            `json:"get_one_p99_ms"`
	ListP99Ms            float64            `json:"list_p99_ms"`
	RSSPeakMiB           float64            `json:"rss_peak_mib"`
	HeapInusePeakMiB     float64            `json:"heap_inuse_peak_mib"`
	GoroutinesPeak       float64            `json:"goroutines_peak"`
	LimitMean            float64            `json:"admission_limit_mean"`
	LimitMin             float64            `json:"admission_limit_min"`
	LimitMax             float64            `json:"admission_limit_max"`
	InFlightMean         float64            `json:"admission_in_flight_mean"`
	QueuedMean           float64            `json:"admission_queued_mean"`
	HealthzP99Ms         float64            `json:"healthz_p99_ms"`
	ServerGetP99Ms       float64            `json:"server_get_p99_ms_upper"`
	ServerListP99Ms      float64            `json:"server_list_p99_ms_upper"`
	ServerCreateP99Ms    float64            `json:"server_create_p99_ms_upper"`
	ServiceMeanMs        float64            `json:"export_duration_mean_ms"`
	ServeCores           float64            `json:"exportd_cpu_cores"`
	ClickHouseCores      float64            `json:"clickhouse_cpu_cores"`
	HarnessCores         float64            `json:"harness_cpu_cores"`
	// The burst phase: every request on a new connection; the shed answers (503 overloaded
	// and 429 alike) against GET /healthz sent by the same client among them.
	NewConnections      bool    `json:"new_connection_per_request,omitempty"`
	ShedAny             int     `json:"shed_503_429,omitempty"`
	ShedAnyP50Ms        float64 `json:"shed_503_429_p50_ms,omitempty"`
	ShedAnyP99Ms        float64 `json:"shed_503_429_p99_ms,omitempty"`
	HealthzNewConn      int     `json:"healthz_new_conn,omitempty"`
	HealthzNewConnP50Ms float64 `json:"healthz_new_conn_p50_ms,omitempty"`
	HealthzNewConnP99Ms float64 `json:"healthz_new_conn_p99_ms,omitempty"`
	HealthzNewConnErrs  int     `json:"healthz_new_conn_errors,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct returns the q-quantile (nearest rank) of sorted, 0 if empty.
func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return ms(sorted[min(max(i, 0), len(sorted)-1)])
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// summarize computes a phase's result. Goodput counts the rows of exports that became ready
// within the phase's window, per second of the window.
func summarize(p *phase, multiple float64) result {
	p.mu.Lock()
	defer p.mu.Unlock()
	dur := p.end.Sub(p.start).Seconds()
	r := result{Name: p.name, Multiple: multiple, OfferedPerSec: p.rate, DurationS: dur, Creates: len(p.creates),
		Overflow: p.overflow, ShedByReason: p.shedBy, RSSPeakMiB: float64(p.rssPeak.Load()) / (1 << 20),
		LimitMean: mean(p.limits), InFlightMean: mean(p.inFlight), QueuedMean: mean(p.queued),
		ServeCores: p.cores[0], ClickHouseCores: p.cores[1], HarnessCores: p.cores[2]}
	if len(p.limits) > 0 {
		r.LimitMin, r.LimitMax = slices.Min(p.limits), slices.Max(p.limits)
		r.HeapInusePeakMiB, r.GoroutinesPeak = slices.Max(p.heapInuse)/(1<<20), slices.Max(p.goroutines)
	}
	addOutside := func(code string) {
		r.Outside++
		if r.OutsideCodes == nil {
			r.OutsideCodes = map[string]int{}
		}
		r.OutsideCodes[code]++
	}
	var complete, created, shed, gets, shedAny []time.Duration
	var retry []time.Duration
	var rows, readyRows int64
	sent := 0
	for _, c := range p.creates {
		if !c.start.Before(p.start) && c.start.Before(p.end) {
			sent++
		}
		r.PollErrors += c.pollErrs
		if c.badEnvelope {
			if c.reason == connLimitCode {
				addOutside(strconv.Itoa(c.status) + " from " + connLimitCode)
			} else {
				addOutside(strconv.Itoa(c.status) + " with a malformed envelope or Retry-After")
			}
			continue
		}
		switch {
		case c.status == http.StatusCreated:
			r.Admitted++
			created = append(created, c.latency)
			switch c.final {
			case "ready":
				r.Ready++
				complete = append(complete, c.complete)
				readyRows += c.rows
				if !c.doneAt.Before(p.start) && !c.doneAt.After(p.end) {
					rows += c.rows
					r.GoodputExportsPerSec++
				}
			case "":
			default:
				r.Failed++
			}
		case c.status == http.StatusServiceUnavailable && c.reason == "overloaded":
			r.Shed++
			shed = append(shed, c.latency)
			shedAny = append(shedAny, c.latency)
			retry = append(retry, time.Duration(c.retryMs)*time.Millisecond)
		case c.status == http.StatusServiceUnavailable:
			r.Other503++
			shedAny = append(shedAny, c.latency)
		case c.status == http.StatusTooManyRequests:
			r.RateLimited++
			shedAny = append(shedAny, c.latency)
		case c.status == 0:
			addOutside("transport_error")
		default:
			addOutside(strconv.Itoa(c.status))
		}
	}
	var getOne, lists []time.Duration
	for _, g := range p.gets {
		gets = append(gets, g.latency)
		if g.list {
			lists = append(lists, g.latency)
		} else {
			getOne = append(getOne, g.latency)
		}
		if g.status != http.StatusOK {
			r.GetErrors++
		}
	}
	var hz []time.Duration
	for _, x := range p.healthz {
		hz = append(hz, x.latency)
	}
	for _, s := range [][]time.Duration{getOne, lists, hz} {
		slices.Sort(s)
	}
	r.HealthzP99Ms = pct(hz, 0.99)
	const reqDur = "exportd_http_request_duration_seconds"
	r.ServerGetP99Ms = histQuantile(p.before, p.after, reqDur, "route", "get", 0.99)
	r.ServerListP99Ms = histQuantile(p.before, p.after, reqDur, "route", "list", 0.99)
	r.ServerCreateP99Ms = histQuantile(p.before, p.after, reqDur, "route", "create", 0.99)
	if n := delta(p.before, p.after, "exportd_export_duration_seconds_count"); n > 0 {
		r.ServiceMeanMs = 1000 * delta(p.before, p.after, "exportd_export_duration_seconds_sum") / n
	}
	r.GetOneP99Ms, r.ListP99Ms = pct(getOne, 0.99), pct(lists, 0.99)
	for _, s := range [][]time.Duration{complete, created, shed, gets, retry} {
		slices.Sort(s)
	}
	if dur > 0 {
		r.ArrivalsPerSec = float64(sent) / dur
		r.GoodputRowsPerSec = float64(rows) / dur
		r.GoodputExportsPerSec /= dur
	}
	if r.Ready > 0 {
		r.MeanRows = float64(readyRows) / float64(r.Ready)
	}
	r.CompletionP50Ms, r.CompletionP99Ms = pct(complete, 0.5), pct(complete, 0.99)
	r.CreateP99Ms = pct(created, 0.99)
	r.ShedP50Ms, r.ShedP99Ms, r.ShedMaxMs = pct(shed, 0.5), pct(shed, 0.99), pct(shed, 1)
	r.RetryAfterP50Ms = pct(retry, 0.5)
	r.Gets, r.GetP50Ms, r.GetP99Ms = len(gets), pct(gets, 0.5), pct(gets, 0.99)
	if p.client != nil {
		var bh []time.Duration
		for _, x := range p.burstHealthz {
			bh = append(bh, x.latency)
			if !x.ok {
				r.HealthzNewConnErrs++
			}
		}
		slices.Sort(bh)
		slices.Sort(shedAny)
		r.NewConnections = true
		r.ShedAny, r.ShedAnyP50Ms, r.ShedAnyP99Ms = len(shedAny), pct(shedAny, 0.5), pct(shedAny, 0.99)
		r.HealthzNewConn, r.HealthzNewConnP50Ms, r.HealthzNewConnP99Ms = len(bh), pct(bh, 0.5), pct(bh, 0.99)
	}
	return r
}

type reportConfig struct {
	Rows            int64     `json:"rows"`
	Enterprises     int       `json:"enterprises"`
	Seed            int64     `json:"seed"`
	MaxExports      int       `json:"max_exports"`
	Levels          []float64 `json:"levels"`
	Burst           float64   `json:"burst_multiple,omitempty"`
	BurstDurationS  float64   `json:"burst_duration_s,omitempty"`
	BurstHealthz    float64   `json:"burst_healthz_share,omitempty"`
	BurstMaxOpen    int       `json:"burst_max_open,omitempty"`
	LevelDurationS  float64   `json:"level_duration_s"`
	PollMs          float64   `json:"poll_ms"`
	GetRatePerSec   float64   `json:"get_rate_per_s"`
	CapacityWorkers int       `json:"capacity_workers"`
	// BaseRate, when set, replaced the measured capacity as what the levels multiply.
	BaseRate float64 `json:"base_rate_exports_per_s,omitempty"`
}

func newReportConfig(c config) reportConfig {
	return reportConfig{Rows: c.rows, Enterprises: c.enterprises, Seed: c.seed, MaxExports: c.maxExports,
		Levels: c.levels, Burst: c.burst, BurstDurationS: c.burstDur.Seconds(), BurstHealthz: c.burstHealth, BurstMaxOpen: c.burstMaxOpen, LevelDurationS: c.levelDur.Seconds(), PollMs: ms(c.poll), GetRatePerSec: c.getRate,
		CapacityWorkers: capacityWorkers(c), BaseRate: c.baseRate}
}

// minBurstMultiple is "dozens of times capacity" (issue 17) as a floor on the creates the burst
// actually sent: two dozen.
const minBurstMultiple = 24

// target is one goal and whether the run met it.
type target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

type report struct {
	Started     time.Time    `json:"started_utc"`
	CPUs        int          `json:"cpus"`
	LoadBefore  string       `json:"load_average_before"`
	LoadAfter   string       `json:"load_average_after"`
	Config      reportConfig `json:"config"`
	Uncontended result       `json:"uncontended"`
	Capacity    result       `json:"capacity"`
	Levels      []result     `json:"levels"`
	Burst       *result      `json:"burst,omitempty"`
	Targets     []target     `json:"targets"`
	Pass        bool         `json:"pass"`
}

func (r *report) level(m float64) *result {
	for i := range r.Levels {
		if r.Levels[i].Multiple == m {
			return &r.Levels[i]
		}
	}
	return nil
}

// evaluate checks the targets at the highest level against the 1x level and the uncontended
// phase.
func (r *report) evaluate() {
	best := r.Capacity.GoodputExportsPerSec
	for _, l := range r.Levels {
		best = max(best, l.GoodputExportsPerSec)
	}
	for i := range r.Levels {
		if best > 0 {
			r.Levels[i].VsBest = r.Levels[i].ArrivalsPerSec / best
		}
	}
	r.Targets = nil
	base, top := r.level(1), (*result)(nil)
	if n := len(r.Levels); n > 0 {
		top = &r.Levels[n-1]
	}
	if base == nil || top == nil {
		r.Targets = append(r.Targets, target{Name: "levels", Want: "a 1x level and a higher one", Got: "missing"})
		return
	}
	at := top.Name
	add := func(name, want, got string, pass bool) {
		r.Targets = append(r.Targets, target{Name: name, Want: want, Got: got, Pass: pass})
	}
	g := 0.0
	if base.GoodputRowsPerSec > 0 {
		g = top.GoodputRowsPerSec / base.GoodputRowsPerSec
	}
	add("goodput at "+at, ">= 90% of 1x", fmt.Sprintf("%.0f rows/s = %.0f%% of %.0f", top.GoodputRowsPerSec, 100*g,
		base.GoodputRowsPerSec), g >= 0.9)
	c := 0.0
	if r.Uncontended.CompletionP99Ms > 0 {
		c = top.CompletionP99Ms / r.Uncontended.CompletionP99Ms
	}
	add("admitted completion p99 at "+at, "<= 2x uncontended p99", fmt.Sprintf("%.1fms = %.2fx of %.1fms",
		top.CompletionP99Ms, c, r.Uncontended.CompletionP99Ms), c > 0 && c <= 2)
	add("shed response p99 at "+at, "< 5ms", fmt.Sprintf("%.2fms over %d sheds", top.ShedP99Ms, top.Shed),
		top.Shed > 0 && top.ShedP99Ms < 5)
	add("GET p99 at "+at, "< 10ms", fmt.Sprintf("%.2fms over %d reads (%d not 200)", top.GetP99Ms, top.Gets, top.GetErrors),
		top.Gets > 0 && top.GetP99Ms < 10 && top.GetErrors == 0)
	if b := r.Burst; b != nil {
		ratio := 0.0
		if b.HealthzNewConnP99Ms > 0 {
			ratio = b.ShedAnyP99Ms / b.HealthzNewConnP99Ms
		}
		// "Dozens of times capacity": the creates actually sent must reach two dozen times the
		// measured capacity, or the burst did not happen (the harness could not send it).
		sent := 0.0
		if r.Capacity.GoodputExportsPerSec > 0 {
			sent = b.ArrivalsPerSec / r.Capacity.GoodputExportsPerSec
		}
		add("shed p99 ≤ 1.5x healthz p99 at "+b.Name, "<= 1.5x /healthz p99, new conns", fmt.Sprintf(
			"%.2fms over %d 503/429 vs %.2fms over %d /healthz = %.2fx; creates sent at %.1fx capacity (want >= %d)",
			b.ShedAnyP99Ms, b.ShedAny, b.HealthzNewConnP99Ms, b.HealthzNewConn, ratio, sent, minBurstMultiple),
			b.ShedAny > 0 && b.HealthzNewConn > 0 && b.HealthzNewConnErrs == 0 && ratio <= 1.5 && sent >= minBurstMultiple)
	}
	outside, codes := 0, map[string]int{}
	phases := append([]result{r.Uncontended, r.Capacity}, r.Levels...)
	if r.Burst != nil {
		phases = append(phases, *r.Burst)
	}
	for _, l := range phases {
		outside += l.Outside
		for k, v := range l.OutsideCodes {
			codes[k] += v
		}
	}
	add("creates answered outside 201/429/503 (or malformed)", "0", fmt.Sprintf("%d %v", outside, codes), outside == 0)
	// Memory may grow with the exports running at once, up to the limit; beyond saturation it must
	// not grow with the load. The baseline is the higher peak of the two saturated phases before the
	// overload: the closed-loop capacity phase and 1x.
	satRSS, rss := max(r.Capacity.RSSPeakMiB, base.RSSPeakMiB), 0.0
	if satRSS > 0 {
		rss = top.RSSPeakMiB / satRSS
	}
	add("exportd RSS peak at "+at, "<= 1.25x peak at saturation", fmt.Sprintf("%.1fMiB = %.2fx of %.1fMiB (capacity, 1x)",
		top.RSSPeakMiB, rss, satRSS), rss > 0 && rss <= 1.25)
	r.Pass = true
	for _, t := range r.Targets {
		r.Pass = r.Pass && t.Pass
	}
}

func (r *report) printTable(w io.Writer) {
	fmt.Fprintf(w, "\nexportd overload: %d CPUs, load average %s before, %s after; max exports %d\n", r.CPUs,
		r.LoadBefore, r.LoadAfter, r.Config.MaxExports)
	fmt.Fprintf(w, "uncontended: %.1f exports/s, %.0f rows/export, completion p50 %.1fms p99 %.1fms, GET p99 %.2fms, cores exportd %.2f ClickHouse %.2f\n",
		r.Uncontended.GoodputExportsPerSec, r.Uncontended.MeanRows, r.Uncontended.CompletionP50Ms, r.Uncontended.CompletionP99Ms,
		r.Uncontended.GetP99Ms, r.Uncontended.ServeCores, r.Uncontended.ClickHouseCores)
	fmt.Fprintf(w, "capacity:    %.1f exports/s, %.0f rows/s, completion p50 %.1fms p99 %.1fms, GET p99 %.2fms, cores exportd %.2f ClickHouse %.2f (%d workers)\n\n",
		r.Capacity.GoodputExportsPerSec, r.Capacity.GoodputRowsPerSec, r.Capacity.CompletionP50Ms,
		r.Capacity.CompletionP99Ms, r.Capacity.GetP99Ms, r.Capacity.ServeCores, r.Capacity.ClickHouseCores, r.Config.CapacityWorkers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "level\toffered/s\tsent/s\tx best\tgoodput rows/s\tvs 1x\tadmitted\tdone p50 ms\tdone p99 ms\tshed\tshed p99 ms\tGET p99 ms\tother\tRSS MiB\tlimit\t")
	base := r.level(1)
	for _, l := range r.Levels {
		rel := "-"
		if base != nil && base.GoodputRowsPerSec > 0 {
			rel = fmt.Sprintf("%.0f%%", 100*l.GoodputRowsPerSec/base.GoodputRowsPerSec)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.0f\t%s\t%d\t%.1f\t%.1f\t%d\t%.2f\t%.2f\t%d\t%.1f\t%.2f\t\n", l.Name, l.OfferedPerSec,
			l.ArrivalsPerSec, l.VsBest, l.GoodputRowsPerSec, rel, l.Admitted, l.CompletionP50Ms, l.CompletionP99Ms, l.Shed, l.ShedP99Ms,
			l.GetP99Ms, l.Outside, l.RSSPeakMiB, l.LimitMean)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, l := range r.Levels {
		var reasons []string
		for k, v := range l.ShedByReason {
			reasons = append(reasons, fmt.Sprintf("%s %.0f", k, v))
		}
		slices.Sort(reasons)
		fmt.Fprintf(w, "%s: sheds by reason [%s], retry hint p50 %.0fms, 429 %d, other 503 %d, failed %d, queued mean %.1f, "+
			"export run mean %.0fms; CPU cores: exportd %.2f, ClickHouse %.2f, harness %.2f; peaks: heap in use %.1fMiB, %.0f goroutines\n",
			l.Name, strings.Join(reasons, ", "), l.RetryAfterP50Ms, l.RateLimited, l.Other503, l.Failed, l.QueuedMean,
			l.ServiceMeanMs, l.ServeCores, l.ClickHouseCores, l.HarnessCores, l.HeapInusePeakMiB, l.GoroutinesPeak)
		fmt.Fprintf(w, "    p99 ms: GET one %.1f, list %.1f (in exportd <= %.1f, <= %.1f); create in exportd <= %.1f; "+
			"/healthz %.1f\n",
			l.GetOneP99Ms, l.ListP99Ms, l.ServerGetP99Ms, l.ServerListP99Ms, l.ServerCreateP99Ms, l.HealthzP99Ms)
	}
	if b := r.Burst; b != nil {
		fmt.Fprintf(w, "%s (%.0f requests/s offered, %.1f creates/s sent, a new connection per request): %d creates, admitted %d, "+
			"shed 503/429 %d p50 %.2fms p99 %.2fms; /healthz (same client) %d p50 %.2fms p99 %.2fms (%d not 200); other %d; "+
			"arrivals not sent (over %d open) %d; CPU cores: exportd %.2f, ClickHouse %.2f, harness %.2f; RSS peak %.1fMiB\n",
			b.Name, b.OfferedPerSec, b.ArrivalsPerSec, b.Creates, b.Admitted, b.ShedAny, b.ShedAnyP50Ms, b.ShedAnyP99Ms,
			b.HealthzNewConn, b.HealthzNewConnP50Ms, b.HealthzNewConnP99Ms, b.HealthzNewConnErrs, b.Outside, r.Config.BurstMaxOpen, b.Overflow,
			b.ServeCores, b.ClickHouseCores, b.HarnessCores, b.RSSPeakMiB)
	}
	fmt.Fprintln(w)
	for _, t := range r.Targets {
		v := "PASS"
		if !t.Pass {
			v = "FAIL"
		}
		fmt.Fprintf(w, "%s  %-52s want %-28s got %s\n", v, t.Name, t.Want, t.Got)
	}
}

// write stores overload.json and overload.svg in dir.
func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "overload.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "overload.svg"), r.svg(), 0o644)
}
