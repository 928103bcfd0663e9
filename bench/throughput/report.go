package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is everything a harness run measured; it is written as JSON.
type report struct {
	Started    time.Time     `json:"started"`
	Finished   time.Time     `json:"finished"`
	LoadBefore string        `json:"load_average_before"`
	LoadAfter  string        `json:"load_average_after"`
	Sizes      []*sizeResult `json:"sizes"`
	Targets    []target      `json:"targets"`
	Machine    machine       `json:"machine"`
	ClickHouse string        `json:"clickhouse_version"`
	S3         string        `json:"s3_server,omitempty"` // the S3 contender's server; empty: not measured
	Method     string        `json:"method"`
}

type machine struct {
	Cores    int    `json:"cores"`
	CPU      string `json:"cpu"`
	MemBytes int64  `json:"mem_bytes"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

type sizeResult struct {
	N                      int64              `json:"rows"`
	Runs                   int                `json:"runs"`
	Database               string             `json:"database"`
	Enterprise             string             `json:"enterprise"`
	LoadBefore             string             `json:"load_average_before"`
	LoadAfter              string             `json:"load_average_after"`
	ServeIdleRSS           int64              `json:"serve_idle_rss_bytes"`
	ServeS3IdleRSS         int64              `json:"serve_s3_idle_rss_bytes,omitempty"` // the second serve, S3 storage
	SameRowsAsCSVWithNames bool               `json:"exportd_rows_equal_csvwithnames_rows"`
	Contenders             []*contenderResult `json:"contenders"`
}

type contenderResult struct {
	Key            string    `json:"key"`
	Name           string    `json:"name"`
	Group          string    `json:"group"`
	Seconds        []float64 `json:"seconds"`
	Median         float64   `json:"median_seconds"`
	Rows           int64     `json:"rows"` // -1: not checked (Native)
	Bytes          int64     `json:"output_bytes"`
	RowsPerSecond  float64   `json:"rows_per_second"`
	MBPerSecond    float64   `json:"output_mb_per_second"`
	PeakRSS        int64     `json:"peak_rss_bytes"`                      // max over runs
	AboveIdle      int64     `json:"peak_rss_above_idle_bytes,omitempty"` // exportd serve
	SampledPeak    int64     `json:"sampled_peak_rss_bytes,omitempty"`    // exportd serve, 5 ms VmRSS sampler
	VsNative       float64   `json:"ratio_to_native"`
	VsCSVWithNames float64   `json:"ratio_to_csvwithnames"`
	VsNaive        float64   `json:"ratio_to_naive"`
	VsFileAPI      float64   `json:"ratio_to_file_api,omitempty"` // API contenders: median / api-none's
}

// target is one of the goals, evaluated at one size.
type target struct {
	ID       string  `json:"id"`
	Text     string  `json:"text"`
	Rows     int64   `json:"rows"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	Pass     *bool   `json:"pass"` // null: reported only
	Note     string  `json:"note,omitempty"`
}

const method = "Per size: fresh database, N generated rows of one enterprise (exportd ingest --generate N --enterprises 1 " +
	"--seed 42), parts merged (OPTIMIZE FINAL) and no merge running; one untimed Native warm-up query; then every contender " +
	"exports all N rows (17 columns, ordered by occurred_at_utc, activity_id) to a local file, contenders alternating within " +
	"each run with the order rotated between runs, sync(2) before each; figures are medians over the runs. Child RSS is " +
	"ru_maxrss; exportd serve's peak is VmHWM reset via /proc/PID/clear_refs before each export (cross-checked by a 5 ms " +
	"VmRSS sampler), minus its idle RSS measured 1 s after /readyz. With versitygw found (-s3, on by default), \"exportd API → " +
	"S3\" is a second exportd serve on the same database whose storage is a bucket of a private versitygw (POSIX backend on " +
	"the same disk, loopback, started once per harness run); it exports with compression none, is timed and measured like " +
	"the file API (the object's size checked with HeadObject, then deleted, untimed), and ×file API is its median over the " +
	"file API's (compression none)."

func newReport() *report {
	return &report{Started: time.Now().UTC(), LoadBefore: loadAverage(), Method: method}
}

func (c *contenderResult) add(m measurement) {
	c.Seconds = append(c.Seconds, m.Elapsed.Seconds())
	c.Bytes = m.Bytes
	if m.Rows >= 0 {
		c.Rows = m.Rows
	}
	c.PeakRSS = max(c.PeakRSS, m.PeakRSS)
	c.AboveIdle = max(c.AboveIdle, m.AboveIdle)
	c.SampledPeak = max(c.SampledPeak, m.SampledPeak)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (s *sizeResult) get(key string) *contenderResult {
	for _, c := range s.Contenders {
		if c.Key == key {
			return c
		}
	}
	return nil
}

func (s *sizeResult) compute() {
	for _, c := range s.Contenders {
		c.Median = median(c.Seconds)
		c.RowsPerSecond = float64(s.N) / c.Median
		c.MBPerSecond = float64(c.Bytes) / c.Median / 1e6
	}
	ratio := func(c *contenderResult, key string) float64 {
		if b := s.get(key); b != nil && b.Median > 0 {
			return c.Median / b.Median
		}
		return 0 // printed n/a
	}
	for _, c := range s.Contenders {
		c.VsNative = ratio(c, keyNative)
		c.VsCSVWithNames = ratio(c, keyCHCSV)
		c.VsNaive = ratio(c, keyNaive)
		if isAPI(c.Key) {
			c.VsFileAPI = ratio(c, keyAPINone)
		}
	}
}

// finish evaluates the targets at every size.
func (r *report) finish() {
	r.Finished = time.Now().UTC()
	r.LoadAfter = loadAverage()
	pass := func(ok bool) *bool { return &ok }
	for _, s := range r.Sizes {
		none, zstd, gzip := s.get(keyAPINone), s.get(keyAPIZstd), s.get(keyAPIGzip)
		r.Targets = append(r.Targets,
			target{ID: "api-vs-native", Text: "exportd API (none), POST→ready ≤ 1.3× clickhouse-client FORMAT Native", Rows: s.N,
				Measured: none.VsNative, Limit: 1.3, Unit: "x", Pass: pass(none.VsNative <= 1.3)},
			target{ID: "api-vs-csv", Text: "exportd API (none) ≤ 0.6× clickhouse-client FORMAT CSVWithNames", Rows: s.N,
				Measured: none.VsCSVWithNames, Limit: 0.6, Unit: "x", Pass: pass(none.VsCSVWithNames <= 0.6)},
			target{ID: "api-vs-naive", Text: "exportd API (none) ≤ 0.4× naive Go baseline", Rows: s.N,
				Measured: none.VsNaive, Limit: 0.4, Unit: "x", Pass: pass(none.VsNaive <= 0.4)},
			target{ID: "zstd-vs-native", Text: "exportd API (zstd) ≤ 1.5× clickhouse-client FORMAT Native", Rows: s.N,
				Measured: zstd.VsNative, Limit: 1.5, Unit: "x", Pass: pass(zstd.VsNative <= 1.5)},
			target{ID: "gzip-vs-native", Text: "exportd API (gzip) vs clickhouse-client FORMAT Native (reported)", Rows: s.N,
				Measured: gzip.VsNative, Unit: "x"},
		)
		// SPEC §7 formats against the 17-column CSV of the same CLI, same run.
		if cli := s.get(keyCLI); cli != nil && cli.Median > 0 {
			vsCLI := func(key string) float64 {
				if c := s.get(key); c != nil {
					return c.Median / cli.Median
				}
				return 0
			}
			jl, pq, five := vsCLI(keyCLIJSONL), vsCLI(keyCLIParquet), vsCLI(keyCLI5)
			r.Targets = append(r.Targets,
				target{ID: "jsonl-vs-csv", Text: "exportd export --format jsonl ≤ 1.2× the CSV export (CLI)", Rows: s.N,
					Measured: jl, Limit: 1.2, Unit: "x", Pass: pass(jl > 0 && jl <= 1.2)},
				target{ID: "parquet-vs-csv", Text: "exportd export --format parquet ≤ 1.6× the CSV export (CLI)", Rows: s.N,
					Measured: pq, Limit: 1.6, Unit: "x", Pass: pass(pq > 0 && pq <= 1.6)},
				target{ID: "5col-vs-17col", Text: "exportd export of 5 columns ≤ 0.6× the 17-column CSV export (CLI)", Rows: s.N,
					Measured: five, Limit: 0.6, Unit: "x", Pass: pass(five > 0 && five <= 0.6)},
			)
			if p := s.get(keyCLIParquet); p != nil {
				r.Targets = append(r.Targets, target{ID: "parquet-rss", Text: "exportd export --format parquet peak RSS ≤ 128 MiB", Rows: s.N,
					Measured: float64(p.PeakRSS) / (1 << 20), Limit: 128, Unit: "MiB", Pass: pass(p.PeakRSS <= 128<<20)})
			}
		}
		if s3 := s.get(keyAPIS3); s3 != nil {
			r.Targets = append(r.Targets,
				target{ID: "api-s3-vs-file", Text: fmt.Sprintf("exportd API → S3 (none) vs exportd API → file (none), POST→ready "+
					"(reported; %.3fs vs %.3fs)", s3.Median, none.Median), Rows: s.N, Measured: s3.VsFileAPI, Unit: "x"},
				target{ID: "api-s3-rss-above-idle", Text: fmt.Sprintf("exportd serve (S3) peak RSS above idle during the export "+
					"(reported; file API +%s)", fmtMiB(none.AboveIdle)), Rows: s.N, Measured: float64(s3.AboveIdle) / (1 << 20), Unit: "MiB"},
			)
		}
	}
	// Headline first: each time target at the largest size, then smaller ones.
	order := map[string]int{}
	for _, t := range r.Targets {
		if _, ok := order[t.ID]; !ok {
			order[t.ID] = len(order)
		}
	}
	slices.SortStableFunc(r.Targets, func(a, b target) int {
		if d := order[a.ID] - order[b.ID]; d != 0 {
			return d
		}
		return int(b.Rows - a.Rows)
	})
	// Memory: at 1e7 rows (or the largest size measured, with a note).
	serveAbove := func(s *sizeResult) (above, peak int64) {
		for _, k := range []string{keyAPINone, keyAPIZstd, keyAPIGzip} {
			if c := s.get(k); c != nil {
				above, peak = max(above, c.AboveIdle), max(peak, c.PeakRSS)
			}
		}
		return above, peak
	}
	bySize := map[int64]*sizeResult{}
	var sizes []int64
	for _, s := range r.Sizes {
		bySize[s.N] = s
		sizes = append(sizes, s.N)
	}
	slices.Sort(sizes)
	big, small := int64(1e7), int64(1e6)
	note := ""
	if bySize[big] == nil || bySize[small] == nil {
		note = "stated for 1e7 vs 1e6; evaluated on the sizes measured"
		big = sizes[len(sizes)-1]
		small = 0
		if len(sizes) > 1 {
			small = sizes[len(sizes)-2]
		}
	}
	above, peakBig := serveAbove(bySize[big])
	noneAbove := int64(0)
	if c := bySize[big].get(keyAPINone); c != nil {
		noneAbove = c.AboveIdle
	}
	r.Targets = append(r.Targets, target{ID: "serve-rss-above-idle",
		Text: fmt.Sprintf("exportd serve peak RSS above idle during a %s-row export ≤ 64 MiB (worst of none/zstd/gzip; none alone +%s)",
			fmtCount(big), fmtMiB(noneAbove)), Rows: big,
		Measured: float64(above) / (1 << 20), Limit: 64, Unit: "MiB", Pass: pass(above <= 64<<20), Note: note})
	if small > 0 {
		_, peakSmall := serveAbove(bySize[small])
		ratio := float64(peakBig) / float64(peakSmall)
		r.Targets = append(r.Targets, target{ID: "serve-rss-flat",
			Text: fmt.Sprintf("exportd serve peak RSS at %s rows within 10%% of its peak at %s rows (%s vs %s)",
				fmtCount(big), fmtCount(small), fmtMiB(peakBig), fmtMiB(peakSmall)),
			Rows: big, Measured: ratio, Limit: 1.1, Unit: "x", Pass: pass(ratio <= 1.1 && ratio >= 0.9), Note: note})
	}
}

// ---- text output ----

var tableHeader = []string{"contender", "median s", "rows/s", "MB/s out", "output", "peak RSS", "×Native", "×CSVWithNames", "×naive"}

// tableHeaderFor adds the "×file API" column when the size has the S3
// contender.
func tableHeaderFor(s *sizeResult) []string {
	if s.get(keyAPIS3) == nil {
		return tableHeader
	}
	return append(slices.Clone(tableHeader), "×file API")
}

func tableRows(s *sizeResult) [][]string {
	withS3 := s.get(keyAPIS3) != nil
	var out [][]string
	for _, c := range s.Contenders {
		rss := fmtMiB(c.PeakRSS)
		if c.Group == "exportd" && c.AboveIdle > 0 {
			rss = fmt.Sprintf("%s (+%s)", fmtMiB(c.PeakRSS), fmtMiB(c.AboveIdle))
		} else if c.PeakRSS == 0 {
			rss = "n/a"
		}
		mbs, size := fmt.Sprintf("%.1f", c.MBPerSecond), fmtBytes(c.Bytes)
		if c.Bytes == 0 {
			mbs, size = "-", "-"
		}
		row := []string{c.Name, fmt.Sprintf("%.3f", c.Median), fmtRate(c.RowsPerSecond),
			mbs, size, rss,
			fmtRatio(c.VsNative), fmtRatio(c.VsCSVWithNames), fmtRatio(c.VsNaive)}
		if withS3 {
			v := "-"
			if isAPI(c.Key) {
				v = fmtRatio(c.VsFileAPI)
			}
			row = append(row, v)
		}
		out = append(out, row)
	}
	return out
}

func sizeTitle(s *sizeResult) string {
	idle := fmtMiB(s.ServeIdleRSS)
	if s.ServeS3IdleRSS > 0 {
		idle += fmt.Sprintf(" (S3 storage: %s)", fmtMiB(s.ServeS3IdleRSS))
	}
	return fmt.Sprintf("%s rows (%d), one enterprise, median of %d run(s); exportd serve idle RSS %s; load average %s → %s",
		fmtCount(s.N), s.N, s.Runs, idle, s.LoadBefore, s.LoadAfter)
}

func printSizeTable(w io.Writer, s *sizeResult) {
	fmt.Fprintf(w, "\n## %s\n\n", sizeTitle(s))
	header := tableHeaderFor(s)
	rows := append([][]string{header}, tableRows(s)...)
	widths := make([]int, len(header))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for k, r := range rows {
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i == 0 {
				fmt.Fprint(w, c+pad)
			} else {
				fmt.Fprint(w, "  "+pad+c)
			}
		}
		fmt.Fprintln(w)
		if k == 0 {
			total := len(widths)*2 - 2
			for _, x := range widths {
				total += x
			}
			fmt.Fprintln(w, strings.Repeat("-", total))
		}
	}
	fmt.Fprintf(w, "RSS of exportd API rows: peak of the serve process (+ above idle). Sanity: exportd data rows == CSVWithNames data rows: %v\n",
		s.SameRowsAsCSVWithNames)
	if a, f := s.get(keyAPIS3), s.get(keyAPINone); a != nil && f != nil {
		fmt.Fprintf(w, "S3 vs file (exportd API, compression none): %.3fs vs %.3fs = %sx; peak RSS above idle +%s vs +%s\n",
			a.Median, f.Median, fmtRatio(a.VsFileAPI), fmtMiB(a.AboveIdle), fmtMiB(f.AboveIdle))
	}
}

func targetLine(t target) string {
	verdict := "REPORTED"
	if t.Pass != nil {
		verdict = map[bool]string{true: "PASS", false: "FAIL"}[*t.Pass]
	}
	var m string
	switch t.Unit {
	case "MiB":
		if t.Limit > 0 {
			m = fmt.Sprintf("%.1f MiB (limit %.0f MiB)", t.Measured, t.Limit)
		} else {
			m = fmt.Sprintf("%.1f MiB", t.Measured)
		}
	default:
		if t.Limit > 0 {
			m = fmt.Sprintf("%.2fx (limit %.2gx)", t.Measured, t.Limit)
		} else {
			m = fmt.Sprintf("%.2fx", t.Measured)
		}
	}
	line := fmt.Sprintf("%-8s %s — at %s rows: %s", verdict, t.Text, fmtCount(t.Rows), m)
	if t.Note != "" {
		line += " [" + t.Note + "]"
	}
	return line
}

func printSummary(w io.Writer, r *report) {
	fmt.Fprintf(w, "\n## Targets\n\n")
	for _, t := range r.Targets {
		fmt.Fprintln(w, targetLine(t))
	}
	fmt.Fprintf(w, "\nload average: %s before, %s after\n", r.LoadBefore, r.LoadAfter)
}

// markdown renders the tables and targets for bench/README.md.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s (%.0f min): %d cores, %s, %.1f GiB RAM, Linux %s, %s, ClickHouse %s. Load average %s before, %s after.\n",
		r.Started.Format("2006-01-02 15:04 MST"), r.Finished.Sub(r.Started).Minutes(), r.Machine.Cores, r.Machine.CPU,
		float64(r.Machine.MemBytes)/(1<<30), r.Machine.Kernel, r.Machine.Go, r.ClickHouse, r.LoadBefore, r.LoadAfter)
	for _, s := range r.Sizes {
		fmt.Fprintf(&b, "\n**%s**\n\n", sizeTitle(s))
		header := tableHeaderFor(s)
		b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
		for i := range header {
			if i == 0 {
				b.WriteString("---|")
			} else {
				b.WriteString("---:|")
			}
		}
		b.WriteString("\n")
		for _, row := range tableRows(s) {
			b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
	}
	b.WriteString("\nTargets:\n\n")
	for _, t := range r.Targets {
		b.WriteString("- " + targetLine(t) + "\n")
	}
	return b.String()
}

func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	files := map[string][]byte{
		"throughput.json": append(j, '\n'),
		"throughput.md":   []byte(r.markdown()),
		"throughput.svg":  chart(r),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// ---- machine ----

func machineInfo() machine {
	m := machine{Cores: runtime.NumCPU(), CPU: "unknown", Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.MemBytes = kb * 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = string(bytes.TrimSpace(b))
	}
	return m
}

// ---- formatting ----

// fmtCount prints 1e5, 1e6, 2.5e6 ... for round counts and the number otherwise.
func fmtCount(n int64) string {
	if n <= 0 {
		return strconv.FormatInt(n, 10)
	}
	e := int(math.Floor(math.Log10(float64(n))))
	m := float64(n) / math.Pow(10, float64(e))
	if e >= 3 && math.Abs(m*10-math.Round(m*10)) < 1e-9 {
		return strconv.FormatFloat(m, 'f', -1, 64) + "e" + strconv.Itoa(e)
	}
	return strconv.FormatInt(n, 10)
}

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func fmtBytes(b int64) string {
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(b)/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(b)/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d B", b)
}

func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.0fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

func fmtRatio(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}
