package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"
)

type report struct {
	Started    time.Time         `json:"started"`
	Finished   time.Time         `json:"finished"`
	Minutes    float64           `json:"minutes"`
	CPUs       int               `json:"cpus"`
	LoadBefore string            `json:"load_average_before"`
	LoadAfter  string            `json:"load_average_after"`
	Versions   map[string]string `json:"versions"`
	Config     reportConfig      `json:"config"`
	Sizes      []sizeResult      `json:"sizes"`
	Expiry     *expiryResult     `json:"expiry,omitempty"`
	Targets    []target          `json:"targets"`
	Pass       bool              `json:"pass"`
}

type reportConfig struct {
	Small          int     `json:"small"`
	Large          int     `json:"records"`
	Enterprises    int     `json:"small_enterprises"`
	LargeShare     float64 `json:"large_share"`
	HistoryHours   float64 `json:"history_hours"`
	Batch          int     `json:"batch"`
	Seed           uint64  `json:"seed"`
	Warmup         int     `json:"warmup"`
	Requests       int     `json:"requests"`
	Creates        int     `json:"creates"`
	DeepPages      int     `json:"deep_pages"`
	PageSize       int     `json:"page_size"`
	Expire         int     `json:"expire"`
	Clients        int     `json:"clients"`
	CreateDuration string  `json:"create_duration"`
	Replicas       int     `json:"replicas"`
	MaxExports     int     `json:"max_exports"`
}

type target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

func newReport(c config) *report {
	return &report{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), LoadBefore: loadAvg(), Config: reportConfig{
		Small: c.small, Large: c.large, Enterprises: c.enterprises, LargeShare: c.largeShare, HistoryHours: c.history.Hours(),
		Batch: c.batch, Seed: c.seed, Warmup: c.warmup, Requests: c.requests, Creates: c.creates, DeepPages: c.deepPages,
		PageSize: 100, Expire: c.expire, Clients: c.clients, CreateDuration: c.createDuration.String(), Replicas: c.replicas,
		MaxExports: c.maxExports}}
}

func (r *report) finish() {
	r.Finished = time.Now().UTC()
	r.Minutes = r.Finished.Sub(r.Started).Minutes()
	r.LoadAfter = loadAvg()
}

// evaluate checks issue 11's targets: p99s at the large size within 2x or +5 ms of the small
// size's (whichever is looser), RSS within +32 MiB, the mass expiry done within +64 MiB.
func (r *report) evaluate() {
	r.Targets = nil
	add := func(name, want, got string, pass bool) {
		r.Targets = append(r.Targets, target{Name: name, Want: want, Got: got, Pass: pass})
	}
	if len(r.Sizes) < 2 {
		add("sizes", "a small and a large size", fmt.Sprintf("%d measured", len(r.Sizes)), false)
		r.Pass = false
		return
	}
	s, l := r.Sizes[0], r.Sizes[len(r.Sizes)-1]
	at := fmt.Sprintf(" at %s vs %s", human(int64(l.Seeded)), human(int64(s.Seeded)))
	for _, m := range []struct {
		name       string
		small, big latency
	}{
		{"list first page p99", s.ListFirst, l.ListFirst},
		{"list deep page p99", s.ListDeep, l.ListDeep},
		{"get p99", s.Get, l.Get},
		{"create p99", s.Create, l.Create},
	} {
		limit := max(2*m.small.P99Ms, m.small.P99Ms+5)
		bad := m.small.Bad + m.big.Bad
		add(m.name+at, fmt.Sprintf("<= %.2f ms (2x or +5 ms), all answered as expected", limit),
			fmt.Sprintf("%.2f ms vs %.2f ms (%.2fx), %d unexpected statuses", m.big.P99Ms, m.small.P99Ms, m.big.P99Ms/m.small.P99Ms, bad),
			m.big.P99Ms <= limit && bad == 0)
	}
	add("replica RSS after warm-up"+at, fmt.Sprintf("<= %.1f MiB (+32 MiB)", s.RSSWarmMiB+32),
		fmt.Sprintf("%.1f MiB vs %.1f MiB (%+.1f MiB)", l.RSSWarmMiB, s.RSSWarmMiB, l.RSSWarmMiB-s.RSSWarmMiB), l.RSSWarmMiB <= s.RSSWarmMiB+32)
	if x := r.Expiry; x != nil {
		add(fmt.Sprintf("expiry of %s records at once", human(x.Records)), fmt.Sprintf("all expired, RSS peak <= %.1f MiB (+64 MiB)", x.RSSBeforeMiB+64),
			fmt.Sprintf("done %v in %.1fs after the commit, RSS peak %.1f MiB (%+.1f MiB)", x.Done, x.DoneSeconds, x.RSSPeakMiB, x.RSSPeakMiB-x.RSSBeforeMiB),
			x.Done && x.RSSPeakMiB <= x.RSSBeforeMiB+64)
	} else {
		add("expiry", "measured", "skipped (-expire 0)", false)
	}
	r.Pass = true
	for _, t := range r.Targets {
		r.Pass = r.Pass && t.Pass
	}
}

// human writes a record count the way the issue does: 1k, 3M.
func human(n int64) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return fmt.Sprintf("%gM", float64(n)/1e6)
	case n >= 1000 && n%100 == 0:
		return fmt.Sprintf("%gk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func (r *report) printTable(w io.Writer) {
	fmt.Fprintf(w, "\nexportd control plane vs history: %d CPUs, load average %s before, %s after, %.0f min; %v\n",
		r.CPUs, r.LoadBefore, r.LoadAfter, r.Minutes, r.Versions)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "metric\t")
	for _, s := range r.Sizes {
		fmt.Fprintf(tw, "%s seeded\t", human(int64(s.Seeded)))
	}
	fmt.Fprintln(tw, "ratio\t")
	row := func(name string, f func(s sizeResult) float64, unit string) {
		fmt.Fprintf(tw, "%s\t", name)
		var vals []float64
		for _, s := range r.Sizes {
			v := f(s)
			vals = append(vals, v)
			fmt.Fprintf(tw, "%.2f %s\t", v, unit)
		}
		ratio := "-"
		if len(vals) >= 2 && vals[0] > 0 {
			ratio = fmt.Sprintf("%.2fx", vals[len(vals)-1]/vals[0])
		}
		fmt.Fprintf(tw, "%s\t\n", ratio)
	}
	row("records in the table", func(s sizeResult) float64 { return float64(s.Records) }, "")
	row("large enterprise's records", func(s sizeResult) float64 { return float64(s.LargeRecords) }, "")
	row("table + indexes", func(s sizeResult) float64 { return s.TableMiB }, "MiB")
	row("list first page p50", func(s sizeResult) float64 { return s.ListFirst.P50Ms }, "ms")
	row("list first page p99", func(s sizeResult) float64 { return s.ListFirst.P99Ms }, "ms")
	row("list deep page p50", func(s sizeResult) float64 { return s.ListDeep.P50Ms }, "ms")
	row("list deep page p99", func(s sizeResult) float64 { return s.ListDeep.P99Ms }, "ms")
	row("  deep page offset", func(s sizeResult) float64 { return float64(s.DeepPageOffset) }, "records")
	row("list first page p50, 17 scopes", func(s sizeResult) float64 { return s.ListMulti.P50Ms }, "ms")
	row("list first page p99, 17 scopes", func(s sizeResult) float64 { return s.ListMulti.P99Ms }, "ms")
	row("get p50", func(s sizeResult) float64 { return s.Get.P50Ms }, "ms")
	row("get p99", func(s sizeResult) float64 { return s.Get.P99Ms }, "ms")
	row("create p50", func(s sizeResult) float64 { return s.Create.P50Ms }, "ms")
	row("create p99", func(s sizeResult) float64 { return s.Create.P99Ms }, "ms")
	row("  /healthz p99 (floor: HTTP only)", func(s sizeResult) float64 { return s.Healthz.P99Ms }, "ms")
	row("  store List p50 (floor: PostgreSQL)", func(s sizeResult) float64 { return s.StoreList.P50Ms }, "ms")
	row("  store List p99 (floor: PostgreSQL)", func(s sizeResult) float64 { return s.StoreList.P99Ms }, "ms")
	row("  store Get p99 (floor: PostgreSQL)", func(s sizeResult) float64 { return s.StoreGet.P99Ms }, "ms")
	row("replica RSS after warm-up", func(s sizeResult) float64 { return s.RSSWarmMiB }, "MiB")
	row("replica RSS after measurements", func(s sizeResult) float64 { return s.RSSAfterMiB }, "MiB")
	row("creates/s, 1 replica", func(s sizeResult) float64 { return s.Creates1.PerSec }, "/s")
	row(fmt.Sprintf("creates/s, %d replicas", r.Config.Replicas), func(s sizeResult) float64 { return s.CreatesN.PerSec }, "/s")
	row("  create p99 under that load", func(s sizeResult) float64 { return s.CreatesN.P99Ms }, "ms")
	row("seeding", func(s sizeResult) float64 { return s.SeedPerSec }, "records/s")
	tw.Flush()
	for _, s := range r.Sizes {
		fmt.Fprintf(w, "%d records: seeded by status %v; creates statuses 1 replica %v, %d replicas %v; SIGTERM to exit %s s; replica logs %d warn, %d error lines\n",
			s.Records, s.SeededByStatus, s.Creates1.Codes, s.CreatesN.Replicas, s.CreatesN.Codes, fmtSecs(s.SigtermSeconds),
			s.ReplicaWarnLines, s.ReplicaErrorLines)
	}
	if x := r.Expiry; x != nil {
		fmt.Fprintf(w, "expiry: %d records marked ready and past expiry by one UPDATE (%.1fs); first expired %.1fs after the commit, all %.1fs after "+
			"(done %v, %d left), %.0f/s once started; replica RSS %.1f MiB before, peak %.1f MiB, %.1f MiB after; replica CPU %.1fs; "+
			"list p99 meanwhile %.1f ms (%d reads); replica log %d lines (%d warn); SIGTERM to exit %.1fs\n",
			x.Records, x.UpdateSeconds, x.FirstSeconds, x.DoneSeconds, x.Done, x.Left, x.PerSec, x.RSSBeforeMiB, x.RSSPeakMiB,
			x.RSSAfterMiB, x.ReplicaCPU, x.ListP99DuringMs, x.ListDuringN, x.LogLines, x.WarnLines, x.SigtermSeconds)
	}
	fmt.Fprintln(w)
	for _, t := range r.Targets {
		v := "PASS"
		if !t.Pass {
			v = "FAIL"
		}
		fmt.Fprintf(w, "%s  %-44s want %-52s got %s\n", v, t.Name, t.Want, t.Got)
	}
}

// write stores records.json and records.svg in dir.
func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "records.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "records.svg"), r.svg(), 0o644)
}
