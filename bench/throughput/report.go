package main

import (
	"bufio"
	"bytes"
	"cmp"
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
	Enterprise2            string             `json:"enterprise_2,omitempty"` // api-2x's second enterprise (N rows too)
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
	// Exports of N rows run at once (api-2x: 2); 0 in older JSON means 1.
	Exports int `json:"exports,omitempty"`
	// CPU seconds (utime+stime, /proc/PID/stat) of exportd serve and of
	// clickhouse-server from the POST to ready, per run; API contenders.
	ServeCPU      []float64 `json:"serve_cpu_seconds,omitempty"`
	ClickHouseCPU []float64 `json:"clickhouse_cpu_seconds,omitempty"`
	// api-s3: CPU seconds of versitygw (the S3 server, on the same cores) over the same span.
	S3ServerCPU []float64 `json:"s3_server_cpu_seconds,omitempty"`
	MaxRunning  int       `json:"max_running_at_once,omitempty"` // api-2x: the fewest over runs of the most seen running at once
}

// target is one of the goals, evaluated at one size.
type target struct {
	ID       string  `json:"id"`
	Text     string  `json:"text"`
	Rows     int64   `json:"rows"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	AtLeast  bool    `json:"at_least,omitempty"` // Measured must reach Limit (not stay under it)
	Pass     *bool   `json:"pass"`               // null: reported only
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
	if m.ServeCPU >= 0 && m.CHCPU >= 0 && (m.ServeCPU > 0 || m.CHCPU > 0) {
		c.ServeCPU = append(c.ServeCPU, m.ServeCPU)
		c.ClickHouseCPU = append(c.ClickHouseCPU, m.CHCPU)
	}
	if m.S3CPU >= 0 {
		c.S3ServerCPU = append(c.S3ServerCPU, m.S3CPU)
	}
	if c.Exports > 1 {
		if len(c.Seconds) == 1 {
			c.MaxRunning = m.MaxRunning
		} else {
			c.MaxRunning = min(c.MaxRunning, m.MaxRunning)
		}
	}
}

// exports is how many exports of N rows the contender ran at once.
func (c *contenderResult) exports() int { return max(c.Exports, 1) }

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
		c.RowsPerSecond = float64(s.N) * float64(c.exports()) / c.Median
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

// finish evaluates the targets.
func (r *report) finish() {
	r.Finished = time.Now().UTC()
	r.LoadAfter = loadAverage()
	r.Targets = evaluate(r.Sizes)
}

// evaluate judges timeTargets at every size (largest first) and memTargets
// at the worst or the largest size, in the order of their definitions.
func evaluate(sizes []*sizeResult) []target {
	pass := func(ok bool) *bool { return &ok }
	desc := slices.Clone(sizes)
	slices.SortStableFunc(desc, func(a, b *sizeResult) int { return cmp.Compare(b.N, a.N) })
	var out []target
	for _, d := range timeTargets() {
		for _, s := range desc {
			c, b := s.get(d.Key), s.get(d.Base)
			if c == nil || b == nil || !(c.Median > 0) || !(b.Median > 0) {
				continue
			}
			t := target{ID: d.ID, Text: d.Report, Rows: s.N, Unit: "x"}
			if d.Exports > 0 {
				// Aggregate rows/s of Exports exports over one export's.
				t.Measured = float64(d.Exports) * b.Median / c.Median
				t.Limit, t.AtLeast = float64(d.Exports)/d.Limit, true
				ok := t.Measured >= t.Limit
				t.Text += fmt.Sprintf(" (%.3fs for %d×%s rows vs %.3fs for %s)", c.Median, d.Exports, fmtCount(s.N), b.Median, fmtCount(s.N))
				if c.MaxRunning < d.Exports {
					ok = false
					t.Note = fmt.Sprintf("only %d of %d exports seen running at once in some run: not concurrent", c.MaxRunning, d.Exports)
				}
				t.Pass = pass(ok)
			} else {
				t.Measured, t.Limit = c.Median/b.Median, d.Limit
				t.Pass = pass(t.Measured <= d.Limit)
			}
			out = append(out, t)
		}
	}
	for _, d := range memTargets() {
		cands := desc
		if d.Largest && len(desc) > 0 {
			cands = desc[:1]
		}
		var ws *sizeResult
		var wc *contenderResult
		worst := int64(-1)
		for _, s := range cands {
			c := s.get(d.Key)
			if c == nil {
				continue
			}
			v := c.PeakRSS
			if d.AboveIdle {
				v = c.AboveIdle
			}
			if v > worst {
				worst, ws, wc = v, s, c
			}
		}
		if ws == nil {
			continue
		}
		t := target{ID: d.ID, Text: d.Report, Rows: ws.N, Measured: float64(worst) / (1 << 20),
			Limit: float64(d.Limit) / (1 << 20), Unit: "MiB", Pass: pass(worst <= d.Limit)}
		if d.AboveIdle {
			t.Text += fmt.Sprintf(" (peak %s)", fmtMiB(wc.PeakRSS))
		}
		if d.Largest && d.Rows > ws.N {
			t.Note = fmt.Sprintf("stated for %s rows; the largest size measured is %s", fmtCount(d.Rows), fmtCount(ws.N))
		}
		out = append(out, t)
	}
	return out
}

// cpuSplit is the median CPU seconds of exportd serve and clickhouse-server
// during a contender's runs, "" when not measured.
func cpuSplit(c *contenderResult) string {
	if c == nil || len(c.ServeCPU) == 0 || len(c.ClickHouseCPU) == 0 {
		return ""
	}
	sv, ch := median(c.ServeCPU), median(c.ClickHouseCPU)
	if len(c.S3ServerCPU) > 0 {
		gw := median(c.S3ServerCPU)
		return fmt.Sprintf("exportd serve %.2f s + clickhouse-server %.2f s + versitygw %.2f s (%.0f%% exportd, %.0f%% versitygw) in %.3f s wall",
			sv, ch, gw, 100*sv/math.Max(sv+ch+gw, 1e-9), 100*gw/math.Max(sv+ch+gw, 1e-9), c.Median)
	}
	return fmt.Sprintf("exportd serve %.2f s + clickhouse-server %.2f s (%.0f%% exportd) in %.3f s wall", sv, ch,
		100*sv/math.Max(sv+ch, 1e-9), c.Median)
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
	for _, line := range sizeNotes(s) {
		fmt.Fprintln(w, line)
	}
}

// sizeNotes are the lines under a size's table: S3 against the file API,
// the two concurrent exports against one, and the CPU split.
func sizeNotes(s *sizeResult) []string {
	var out []string
	if a, f := s.get(keyAPIS3), s.get(keyAPINone); a != nil && f != nil {
		out = append(out, fmt.Sprintf("S3 vs file (exportd API, compression none): %.3fs vs %.3fs = %sx; peak RSS above idle +%s vs +%s",
			a.Median, f.Median, fmtRatio(a.VsFileAPI), fmtMiB(a.AboveIdle), fmtMiB(f.AboveIdle)))
	}
	if a, f := s.get(keyAPI2x), s.get(keyAPINone); a != nil && f != nil && a.Median > 0 && f.Median > 0 {
		out = append(out, fmt.Sprintf("2 enterprises at once vs 1 (exportd API, none): %.3fs for 2×%s rows vs %.3fs for %s = "+
			"aggregate %s rows/s vs %s rows/s (%.2fx); at most %d running at once (fewest over runs)",
			a.Median, fmtCount(s.N), f.Median, fmtCount(s.N), fmtRate(a.RowsPerSecond), fmtRate(f.RowsPerSecond),
			a.RowsPerSecond/f.RowsPerSecond, a.MaxRunning))
	}
	for _, c := range s.Contenders {
		if split := cpuSplit(c); split != "" && (c.Key == keyAPINone || c.Key == keyAPI2x || c.Key == keyAPIS3) {
			out = append(out, fmt.Sprintf("CPU split, %s (median of runs): %s", c.Key, split))
		}
	}
	return out
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
		if t.Limit > 0 && t.AtLeast {
			m = fmt.Sprintf("%.2fx (at least %sx)", t.Measured, strconv.FormatFloat(t.Limit, 'f', -1, 64))
		} else if t.Limit > 0 {
			m = fmt.Sprintf("%.2fx (limit %sx)", t.Measured, strconv.FormatFloat(t.Limit, 'f', -1, 64))
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
		if notes := sizeNotes(s); len(notes) > 0 {
			b.WriteString("\n")
			for _, n := range notes {
				b.WriteString("- " + n + "\n")
			}
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
