package main

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
)

// withTwo adds api-2x (2 exports of N rows, secs per 1e6 rows of each run)
// to every size of r and recomputes the figures.
func withTwo(r *report, secs []float64, maxRunning int) *report {
	for _, s := range r.Sizes {
		c := &contenderResult{Key: keyAPI2x, Name: "exportd API, 2 enterprises at once", Group: "exportd", Exports: 2, MaxRunning: maxRunning}
		for _, v := range secs {
			c.Seconds = append(c.Seconds, v*float64(s.N)/1e6)
		}
		s.Contenders = append(s.Contenders, c)
		s.compute()
	}
	return r
}

func findTarget(t *testing.T, ts []target, id string, rows int64) target {
	t.Helper()
	for _, x := range ts {
		if x.ID == id && x.Rows == rows {
			return x
		}
	}
	t.Fatalf("no target %s at %d rows in %+v", id, rows, ts)
	return target{}
}

func TestEvaluateIssue17Targets(t *testing.T) {
	r := withTwo(crafted(tight(), 1e6, 1e7), []float64{1.90, 1.92, 1.88}, 2)
	big, small := r.Sizes[1], r.Sizes[0]
	small.get(keyAPIZstd).AboveIdle = 70 << 20 // over 64 MiB at the smaller size only
	big.get(keyAPIZstd).AboveIdle = 20 << 20
	small.get(keyAPIS3).PeakRSS = 100 << 20 // over 96 MiB, but not at the largest size
	big.get(keyAPIS3).PeakRSS = 90 << 20
	ts := evaluate(r.Sizes)

	verdict := func(id string, rows int64, want bool) target {
		t.Helper()
		x := findTarget(t, ts, id, rows)
		if x.Pass == nil || *x.Pass != want {
			t.Errorf("%s at %d rows: pass %v, want %v (measured %.3f, limit %.3f)", id, rows, x.Pass, want, x.Measured, x.Limit)
		}
		return x
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %.6f, want %.6f", what, got, want)
		}
	}
	for _, n := range []int64{1e6, 1e7} {
		near("api vs native", verdict("api-vs-native", n, true).Measured, 1.05)
		near("api vs CH CSV", verdict("api-vs-chcsv", n, true).Measured, 1.05/1.40)
		verdict("zstd-vs-native", n, false)
		verdict("gzip-vs-native", n, true)
		near("S3 vs file", verdict("api-s3-vs-file", n, false).Measured, 1.20/1.05)
		agg := verdict("api-2x-aggregate", n, true)
		near("2x aggregate", agg.Measured, 2*1.05/1.90)
		if !agg.AtLeast || agg.Limit != 1 {
			t.Errorf("2x aggregate: limit %v at least %v, want at least 1.0", agg.Limit, agg.AtLeast)
		}
	}
	if got := ts[0]; got.ID != "api-vs-native" || got.Rows != 1e7 {
		t.Errorf("first target %s at %d rows, want api-vs-native at the largest size", got.ID, got.Rows)
	}
	if x := verdict("serve-rss-above-idle-"+keyAPIZstd, 1e6, false); x.Measured != 70 {
		t.Errorf("zstd RSS above idle judged %.1f MiB, want the worst size's 70", x.Measured)
	}
	verdict("serve-rss-above-idle-"+keyAPINone, 1e7, true)
	if x := verdict("s3-serve-peak-rss", 1e7, true); x.Measured != 90 || x.Note != "" {
		t.Errorf("S3 absolute peak judged %.1f MiB (note %q), want the largest size's 90 without a note", x.Measured, x.Note)
	}
	for _, x := range ts {
		if strings.Contains(x.Text, "naive") || x.Limit == 1.3 || x.Limit == 0.4 {
			t.Errorf("an old target survives: %+v", x)
		}
	}
	if c := big.get(keyAPI2x); math.Abs(c.RowsPerSecond-2e7/(1.90*10)) > 1e-6 {
		t.Errorf("api-2x rows/s %.1f, want aggregate 2N over its median", c.RowsPerSecond)
	}

	// Slower than twice one export: aggregate below 1.0×.
	ts = evaluate(withTwo(crafted(tight(), 1e6), []float64{2.3, 2.3, 2.3}, 2).Sizes)
	if x := findTarget(t, ts, "api-2x-aggregate", 1e6); *x.Pass {
		t.Errorf("2 exports in 2.3 s against 1 in 1.05 s passes: %+v", x)
	}
	// Fast but never seen running at once: not evidence of concurrency.
	ts = evaluate(withTwo(crafted(tight(), 1e6), []float64{1.5, 1.5, 1.5}, 1).Sizes)
	if x := findTarget(t, ts, "api-2x-aggregate", 1e6); *x.Pass || !strings.Contains(x.Note, "not concurrent") {
		t.Errorf("2 exports never running at once pass: %+v", x)
	}
	// S3's absolute target stated for 1e7 gets a note at a smaller largest size.
	ts = evaluate(crafted(tight(), 1e5).Sizes)
	if x := findTarget(t, ts, "s3-serve-peak-rss", 1e5); !strings.Contains(x.Note, "stated for 1e7") {
		t.Errorf("S3 RSS at 1e5 only has no note: %+v", x)
	}
}

// TestChartAndReportJudgeAlike: the chart's marks and the report's verdicts
// come from the same definitions, so they agree on every time target.
func TestChartAndReportJudgeAlike(t *testing.T) {
	secs := tight()
	secs[keyAPIZstd] = []float64{1.2, 1.3, 1.25}
	r := withTwo(crafted(secs, 1e5, 1e6), []float64{2.2, 2.0, 2.1}, 2)
	ts := evaluate(r.Sizes)
	m := newChartModel(r)
	n := 0
	for pi, p := range m.Panels {
		for i, row := range m.Rows {
			for _, mk := range p.Points[i].Marks {
				x := findTarget(t, ts, mk.Target.ID, r.Sizes[pi].N)
				if *x.Pass != mk.Pass {
					t.Errorf("%s (%s) at %d rows: chart says %v, report %v", mk.Target.ID, row.Key, p.N, mk.Pass, *x.Pass)
				}
				n++
			}
		}
	}
	if want := 6 * 2; n != want {
		t.Errorf("%d chart marks compared, want %d (6 time targets with contenders × 2 sizes)", n, want)
	}
	// Fast but not concurrent: both say missed.
	r = withTwo(crafted(tight(), 1e6), []float64{1.5, 1.5, 1.5}, 1)
	m = newChartModel(r)
	for i, row := range m.Rows {
		if row.Key == keyAPI2x && !m.Panels[0].Points[i].Fail {
			t.Errorf("the chart marks api-2x met although only 1 of 2 ran at once")
		}
	}
}

// TestEvaluateOlderJSON: results written before api-2x and the CPU split
// still decode and are judged on what they hold.
func TestEvaluateOlderJSON(t *testing.T) {
	b, err := os.ReadFile("../results/quick/throughput.json") // written before api-2x
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	ts := evaluate(r.Sizes)
	ids := map[string]bool{}
	for _, x := range ts {
		ids[x.ID] = true
	}
	if !ids["api-vs-native"] || !ids["serve-rss-above-idle-"+keyAPINone] || ids["api-2x-aggregate"] {
		t.Errorf("targets of the committed results: %v", ids)
	}
	_ = r.markdown()
}
