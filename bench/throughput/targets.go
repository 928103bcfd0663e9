package main

// The targets of issue 17 (and SPEC §7's for the CLI formats), defined once:
// the report judges them (report.go, finish) and the chart draws the time
// targets as ticks on their rows (svg.go, newChartModel) from these same
// lists.

// timeTarget is a limit on a contender's median time: contender Key takes at
// most Limit times the median of contender Base at the same size. On the
// chart, with Base Native the tick sits at Limit; otherwise it sits at Limit
// × Base's ratio and is drawn dashed, so that a target relative to another
// row (S3 to the file export, CSV to clickhouse-client CSV) reads as such.
type timeTarget struct {
	ID    string
	Key   string
	Base  string
	Limit float64
	Text  string // the limit as the chart's row label states it
	Per   string // Base's short name, for the chart point's label (relative targets)
	// Report is the verdict line's sentence.
	Report string
	// Exports > 0: Key runs that many exports at once and the target is
	// stated as aggregate rows/s: Exports × median(Base) / median(Key) ≥
	// Exports / Limit. The report prints that ratio; the chart the time.
	Exports int
}

// timeTargets are issue 17's time targets for the exportd API rows and SPEC
// §7's for the CLI formats (against the CLI's 17-column CSV), evaluated at
// every size measured.
func timeTargets() []timeTarget {
	return []timeTarget{
		{ID: "api-vs-native", Key: keyAPINone, Base: keyNative, Limit: 1.10, Text: "≤ 1.10× Native",
			Report: "exportd API csv (compression none), POST→ready ≤ 1.10× clickhouse-client FORMAT Native"},
		{ID: "api-vs-chcsv", Key: keyAPINone, Base: keyCHCSV, Limit: 0.80, Text: "≤ 0.80× CH client CSV",
			Report: "exportd API csv (compression none) ≤ 0.80× clickhouse-client FORMAT CSVWithNames"},
		{ID: "zstd-vs-native", Key: keyAPIZstd, Base: keyNative, Limit: 1.25, Text: "≤ 1.25× Native",
			Report: "exportd API csv + zstd ≤ 1.25× clickhouse-client FORMAT Native"},
		{ID: "gzip-vs-native", Key: keyAPIGzip, Base: keyNative, Limit: 1.6, Text: "≤ 1.6× Native",
			Report: "exportd API csv + gzip ≤ 1.6× clickhouse-client FORMAT Native"},
		{ID: "api-s3-vs-file", Key: keyAPIS3, Base: keyAPINone, Limit: 1.10, Text: "≤ 1.10× the file export (API, none)", Per: "file",
			Report: "exportd API → S3 (none) ≤ 1.10× exportd API → file (none)"},
		{ID: "api-2x-aggregate", Key: keyAPI2x, Base: keyAPINone, Limit: 2.0, Exports: 2,
			Text: "≤ 2.0× one export's time (aggregate ≥ 1.0×)", Per: "1 export",
			Report: "2 concurrent exports (2 enterprises, same serve): aggregate rows/s ≥ 1.0× of 1 export (API, none)"},
		{ID: "jsonl-vs-csv", Key: keyCLIJSONL, Base: keyCLI, Limit: 1.2, Text: "≤ 1.2× the CLI's CSV", Per: "CLI CSV",
			Report: "exportd export --format jsonl ≤ 1.2× the CSV export (CLI; SPEC §7)"},
		{ID: "parquet-vs-csv", Key: keyCLIParquet, Base: keyCLI, Limit: 1.6, Text: "≤ 1.6× the CLI's CSV", Per: "CLI CSV",
			Report: "exportd export --format parquet ≤ 1.6× the CSV export (CLI; SPEC §7)"},
		{ID: "5col-vs-17col", Key: keyCLI5, Base: keyCLI, Limit: 0.6, Text: "≤ 0.6× the CLI's CSV", Per: "CLI CSV",
			Report: "exportd export of 5 columns ≤ 0.6× the 17-column CSV export (CLI; SPEC §7)"},
	}
}

// memTarget is a limit on a contender's peak RSS.
type memTarget struct {
	ID    string
	Key   string
	Limit int64 // bytes
	// AboveIdle: the limit is on the serve process's peak minus its idle
	// RSS (API contenders); otherwise on the absolute peak.
	AboveIdle bool
	// Largest: judged at the largest size measured only (Rows states the
	// size it is meant for; a smaller largest size gets a note); otherwise
	// the worst over all sizes is judged.
	Largest bool
	Rows    int64
	Report  string
}

// memTargets are issue 17's memory targets (and SPEC §7's for Parquet).
func memTargets() []memTarget {
	var t []memTarget
	for _, k := range []string{keyAPINone, keyAPIZstd, keyAPIGzip, keyAPIS3, keyAPI2x} {
		t = append(t, memTarget{ID: "serve-rss-above-idle-" + k, Key: k, Limit: 64 << 20, AboveIdle: true,
			Report: "exportd serve peak RSS above idle during " + k + " ≤ 64 MiB (worst size)"})
	}
	return append(t,
		memTarget{ID: "s3-serve-peak-rss", Key: keyAPIS3, Limit: 96 << 20, Largest: true, Rows: 1e7,
			Report: "exportd serve (S3 storage) ABSOLUTE peak RSS of the process during the largest export ≤ 96 MiB"},
		memTarget{ID: "parquet-rss", Key: keyCLIParquet, Limit: 128 << 20,
			Report: "exportd export --format parquet peak RSS ≤ 128 MiB (worst size; SPEC §7)"},
	)
}
