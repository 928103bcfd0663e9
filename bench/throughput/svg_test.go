package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// svgElement is one start element of a drawn chart, with its attributes.
type svgElement struct {
	Name  string
	Attrs map[string]string
}

// parseSVG decodes the chart as XML and returns its elements in order.
func parseSVG(t *testing.T, b []byte) []svgElement {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var out []svgElement
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed XML: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok {
			e := svgElement{Name: se.Name.Local, Attrs: map[string]string{}}
			for _, a := range se.Attr {
				e.Attrs[a.Name.Local] = a.Value
			}
			out = append(out, e)
		}
	}
	if len(out) == 0 || out[0].Name != "svg" {
		t.Fatalf("root element is not <svg>")
	}
	return out
}

func byClass(els []svgElement, class string) []svgElement {
	var out []svgElement
	for _, e := range els {
		if e.Attrs["class"] == class {
			out = append(out, e)
		}
	}
	return out
}

// crafted is a report with the contenders the targets name, three runs per
// size; secs gives each contender's run times at each size (seconds per
// row, scaled by the size).
func crafted(secs map[string][]float64, sizes ...int64) *report {
	keys := []struct{ key, name, group string }{
		{keyNull, "clickhouse-client FORMAT Null (floor, no file)", "clickhouse"},
		{keyNative, "clickhouse-client FORMAT Native", "clickhouse"},
		{keyCHCSV, "clickhouse-client FORMAT CSVWithNames", "clickhouse"},
		{keyNaive, "naive Go", "baseline"},
		{keyAPINone, "exportd API, compression none", "exportd"},
		{keyAPIZstd, "exportd API, compression zstd", "exportd"},
		{keyAPIGzip, "exportd API, compression gzip", "exportd"},
		{keyAPIS3, "exportd API → S3, compression none", "exportd"},
	}
	r := &report{
		Started:    time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC),
		LoadBefore: "0.50 0.40 0.30", LoadAfter: "0.60 0.50 0.40",
		Machine:    machine{Cores: 2, CPU: "Test CPU", MemBytes: 8 << 30},
		ClickHouse: "18.16.1",
	}
	for _, n := range sizes {
		s := &sizeResult{N: n, Runs: 3, LoadBefore: "0.50 0.40 0.30", LoadAfter: "0.60 0.50 0.40"}
		for _, k := range keys {
			c := &contenderResult{Key: k.key, Name: k.name, Group: k.group}
			for _, v := range secs[k.key] {
				c.Seconds = append(c.Seconds, v*float64(n)/1e6)
			}
			s.Contenders = append(s.Contenders, c)
		}
		s.compute()
		r.Sizes = append(r.Sizes, s)
	}
	return r
}

// tight: every contender's runs within 10 % of each other; Native 1 s per
// 1e6 rows, Null below it. API none 1.05× (meets ≤ 1.10×, and ≤ 0.80× of
// CH CSV's 1.40×), zstd 1.30× (misses ≤ 1.25×), gzip 1.50× (meets ≤ 1.6×),
// S3 1.20× = 1.143× the file export (misses ≤ 1.10×).
func tight() map[string][]float64 {
	return map[string][]float64{
		keyNull:    {0.80, 0.82, 0.78},
		keyNative:  {1.00, 1.02, 0.98},
		keyCHCSV:   {1.40, 1.42, 1.38},
		keyNaive:   {3.00, 3.10, 2.90},
		keyAPINone: {1.05, 1.07, 1.03},
		keyAPIZstd: {1.30, 1.32, 1.28},
		keyAPIGzip: {1.50, 1.55, 1.45},
		keyAPIS3:   {1.20, 1.22, 1.18},
	}
}

func TestChartStructure(t *testing.T) {
	r := crafted(tight(), 1e5, 1e6, 1e7)
	svg := chart(r)
	els := parseSVG(t, svg)

	// One dot per contender × size, each (contender, size) once.
	dots := byClass(els, "dot")
	if want := 8 * 3; len(dots) != want {
		t.Fatalf("%d dots, want %d (8 contenders × 3 sizes)", len(dots), want)
	}
	seen := map[string]bool{}
	for _, d := range dots {
		id := d.Attrs["data-key"] + "@" + d.Attrs["data-rows"]
		if seen[id] {
			t.Errorf("two dots for %s", id)
		}
		seen[id] = true
	}
	for _, n := range []int64{1e5, 1e6, 1e7} {
		for _, k := range []string{keyNative, keyAPINone, keyAPIS3} {
			if !seen[fmt.Sprintf("%s@%d", k, n)] {
				t.Errorf("no dot for %s at %d rows", k, n)
			}
		}
	}
	// Targets per size: API none 2 (Native, CH CSV), zstd, gzip, S3.
	if got, want := len(byClass(els, "target")), 5*3; got != want {
		t.Errorf("%d target ticks, want %d", got, want)
	}
	if got := len(byClass(els, "unity")); got != 3 {
		t.Errorf("%d 1.0× lines, want one per panel (3)", got)
	}
	if got := len(byClass(els, "floor")); got != 3 {
		t.Errorf("%d Null floor lines, want 3", got)
	}
	// Tight runs on a quiet machine with Native above the floor: no warnings.
	for _, c := range []string{"note-spread", "flag-spread", "note-noisy", "noisy", "note-load"} {
		if n := len(byClass(els, c)); n != 0 {
			t.Errorf("%d elements of class %q on a tight, quiet run", n, c)
		}
	}
	// Whiskers: one per point (3 runs each).
	if got := len(byClass(els, "whisker")); got != 8*3 {
		t.Errorf("%d whiskers, want %d", got, 8*3)
	}
	// Self-contained: nothing fetched, nothing run.
	for _, bad := range []string{"<script", "href", "url(", "@import", "@font-face", "<image"} {
		if bytes.Contains(svg, []byte(bad)) {
			t.Errorf("the chart contains %q", bad)
		}
	}
	for _, want := range []string{"target ≤ 1.10× Native, ≤ 0.80× CH client CSV", "target ≤ 1.10× the file export (API, none)",
		"1e6 rows · 3 runs", "Run of 2026-12-07 12:00 UTC", "2 cores, Test CPU", "3 runs per size"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the chart lacks %q", want)
		}
	}
}

func TestChartModelRatiosAndTargets(t *testing.T) {
	m := newChartModel(crafted(tight(), 1e6))
	p := m.Panels[0]
	if p.NativeMedian != 1.00 {
		t.Fatalf("Native median %v s, want 1", p.NativeMedian)
	}
	point := func(key string) chartPoint {
		for i, row := range m.Rows {
			if row.Key == key {
				return p.Points[i]
			}
		}
		t.Fatalf("no row %s", key)
		return chartPoint{}
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %.6f, want %.6f", what, got, want)
		}
	}
	none := point(keyAPINone)
	near("API none median", none.Median, 1.05)
	near("API none fastest", none.Min, 1.03)
	near("API none slowest", none.Max, 1.07)
	near("API none spread", none.Spread, 1.07/1.03)
	if len(none.Marks) != 2 || none.Fail {
		t.Fatalf("API none marks %+v fail %v, want 2 met", none.Marks, none.Fail)
	}
	near("API none Native tick", none.Marks[0].At, 1.10)
	near("API none CH CSV tick", none.Marks[1].At, 0.80*1.40)
	zstd := point(keyAPIZstd)
	if !zstd.Fail || zstd.Marks[0].Pass {
		t.Errorf("zstd at 1.30× meets ≤ 1.25×: %+v", zstd.Marks)
	}
	if gzip := point(keyAPIGzip); gzip.Fail {
		t.Errorf("gzip at 1.50× misses ≤ 1.6×: %+v", gzip.Marks)
	}
	// S3's tick is relative to the file export: 1.10 × 1.05 = 1.155; 1.20 misses.
	s3 := point(keyAPIS3)
	near("S3 tick", s3.Marks[0].At, 1.10*1.05)
	if !s3.Fail {
		t.Errorf("S3 at 1.20× (1.143× the file export) meets ≤ 1.10× the file export")
	}
	if got, want := pointLabel(s3), "1.20× = 1.14× file"; got != want {
		t.Errorf("S3 label %q, want %q", got, want)
	}
	near("Null", p.Null, 0.80)
	if p.Noisy || p.Busy || p.Wide != 0 {
		t.Errorf("quiet tight run flagged: noisy %v busy %v wide %d", p.Noisy, p.Busy, p.Wide)
	}
	if m.Lo > 0.5 || m.Hi < 3.1 || m.Lo <= 0 {
		t.Errorf("axis %v–%v does not hold 0.5×–3.1×", m.Lo, m.Hi)
	}
}

func TestChartFlagsWideSpreadLoadAndNoise(t *testing.T) {
	secs := tight()
	secs[keyAPIGzip] = []float64{1.0, 2.0, 1.5} // slowest 2× the fastest
	r := crafted(secs, 1e5, 1e6)
	// At 1e6 only: Native below the Null floor and a busy machine.
	r.Sizes[1].get(keyNull).Seconds = []float64{1.2, 1.3, 1.25}
	r.Sizes[1].LoadAfter = "3.50 2.00 1.00"
	els := parseSVG(t, chart(r))

	if got := len(byClass(els, "flag-spread")); got != 2 {
		t.Errorf("%d wide-spread flags, want 2 (gzip at both sizes)", got)
	}
	if len(byClass(els, "note-spread")) == 0 {
		t.Errorf("no wide-spread note for a contender whose runs differ by 2×")
	}
	if got := len(byClass(els, "noisy")); got != 1 {
		t.Errorf("%d noisy-run panel headers, want 1 (1e6)", got)
	}
	if len(byClass(els, "note-noisy")) == 0 {
		t.Errorf("no noisy-run note with Native below the Null floor")
	}
	if len(byClass(els, "note-load")) == 0 {
		t.Errorf("no load note with a load average of 3.5 on 2 cores")
	}
	svg := string(chart(r))
	for _, want := range []string{"1e5 rows: 1 of 8, 1e6 rows: 1 of 8", "Noisy run at 1e6 rows", "during the 1e6-row runs"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
	// A spread of exactly 1.5 is not wide.
	secs[keyAPIGzip] = []float64{1.0, 1.5, 1.2}
	if n := len(byClass(parseSVG(t, chart(crafted(secs, 1e6))), "flag-spread")); n != 0 {
		t.Errorf("%d flags for a spread of exactly %.1f", n, wideSpread)
	}
}

func TestChartDeterministicThroughJSON(t *testing.T) {
	r := crafted(tight(), 1e5, 1e6, 1e7)
	first := chart(r)
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if again := chart(&back); !bytes.Equal(first, again) {
		t.Fatalf("the chart differs after a JSON round trip")
	}
}

func TestReplotWritesTheChart(t *testing.T) {
	dir := t.TempDir()
	r := crafted(tight(), 1e5, 1e6)
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.json")
	if err := os.WriteFile(in, j, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"-replot", in, "-out", out}, io.Discard, &stderr); err != nil {
		t.Fatalf("replot: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(out, "throughput.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, chart(r)) {
		t.Errorf("replot wrote a different chart from chart() of the same report")
	}
	if err := os.WriteFile(in, []byte(`{"sizes": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := replot(in, out); err == nil {
		t.Errorf("replot of a results file without sizes succeeded")
	}
}

// TestCommittedChartsMatchTheirJSON: every committed throughput.svg is what
// the current chart code draws from the JSON beside it (make bench-replot
// redraws them after a change to the chart).
func TestCommittedChartsMatchTheirJSON(t *testing.T) {
	files, err := filepath.Glob("../results/throughput.json")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("../results/*/throughput.json")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no bench/results/**/throughput.json")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want := chart(&r)
		parseSVG(t, want)
		got, err := os.ReadFile(filepath.Join(filepath.Dir(f), "throughput.svg"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not the chart of %s: run make bench-replot", filepath.Join(filepath.Dir(f), "throughput.svg"), f)
		}
	}
}
