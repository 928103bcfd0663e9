package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// measurement is one run of one contender.
type measurement struct {
	Elapsed     time.Duration
	Path        string // the output file, removed after checking ("" for S3: checked and deleted by the contender)
	Bytes       int64  // output size
	Rows        int64  // data rows the contender reported (-1: not reported)
	PeakRSS     int64  // bytes: ru_maxrss of a child, or VmHWM of exportd serve
	SampledPeak int64  // exportd serve: peak of the 5 ms VmRSS sampler
	AboveIdle   int64  // exportd serve: PeakRSS minus its idle RSS
	// exportd serve: CPU seconds (utime+stime) of the serve process and of
	// clickhouse-server from the POST to ready; -1: not read.
	ServeCPU, CHCPU float64
	// api-s3: CPU seconds of versitygw over the same span; -1: not read.
	S3CPU      float64
	MaxRunning int // api-2x: most exports seen running at once
}

// contender is one way of exporting the rows.
type contender struct {
	Key   string
	Name  string
	Group string // "clickhouse", "baseline" or "exportd"
	CSV   bool   // uncompressed CSV with a header: its records are counted
	// Exports is the number of exports of N rows the contender runs at
	// once (0 means 1): it must export Exports × N rows.
	Exports int
	run     func(ctx context.Context, out string) (measurement, error)
}

// Contender keys; the targets refer to them.
const (
	keyNull    = "null"
	keyNative  = "native"
	keyCHCSV   = "chcsv"
	keyHTTPCSV = "httpcsv"
	keyNaive   = "naive"
	keyCLI     = "cli"
	keyAPINone = "api-none"
	keyAPIZstd = "api-zstd"
	keyAPIGzip = "api-gzip"
	keyAPIS3   = "api-s3"
	// Two exports of two different enterprises (N rows each) at once
	// through the same serve, file storage, compression none.
	keyAPI2x = "api-2x"
	// SPEC §7 formats and a narrow selection, through the CLI; compared
	// with keyCLI (17-column CSV) in the same run.
	keyCLIJSONL   = "cli-jsonl"
	keyCLIParquet = "cli-parquet"
	keyCLI5       = "cli-5col"
)

// fiveColumns is the narrow selection measured: what a ledger reconciliation
// typically keeps.
const fiveColumns = "occurred_at_utc,activity_id,status,currency,amount"

// isAPI reports whether a contender exports through exportd serve (its RSS
// is the serve process's, with a figure above idle).
func isAPI(key string) bool {
	return key == keyAPINone || key == keyAPIZstd || key == keyAPIGzip || key == keyAPIS3 || key == keyAPI2x
}

// contenders lists them for one prepared database; s3srv (nil: no S3
// contender) is the exportd serve that stores to S3.
func (h *harness) contenders(db, enterprise string, srv, s3srv *server) []contender {
	chArgs := func(format string) []string {
		return []string{"--port", h.chPort(), "--database", db, "--query", exportQuery(enterprise, format)}
	}
	clientTo := func(format string) func(context.Context, string) (measurement, error) {
		return func(ctx context.Context, out string) (measurement, error) {
			return h.toFile(ctx, out, nil, h.chc, chArgs(format)...)
		}
	}
	env := []string{"EXPORTD_CLICKHOUSE_DSN=" + h.dsn(db)}
	api := func(compression string) func(context.Context, string) (measurement, error) {
		return func(ctx context.Context, _ string) (measurement, error) { return srv.export(ctx, compression) }
	}
	httpName := "ClickHouse HTTP CSVWithNames (curl)"
	if h.curl == "" {
		httpName = "ClickHouse HTTP CSVWithNames (Go net/http, no curl)"
	}
	cs := []contender{
		{Key: keyNull, Name: "clickhouse-client FORMAT Null (floor, no file)", Group: "clickhouse", run: clientTo("Null")},
		{Key: keyNative, Name: "clickhouse-client FORMAT Native", Group: "clickhouse", run: clientTo("Native")},
		{Key: keyCHCSV, Name: "clickhouse-client FORMAT CSVWithNames", Group: "clickhouse", CSV: true, run: clientTo("CSVWithNames")},
		{Key: keyHTTPCSV, Name: httpName, Group: "clickhouse", CSV: true, run: func(ctx context.Context, out string) (measurement, error) {
			return h.httpCSV(ctx, db, exportQuery(enterprise, "CSVWithNames"), out)
		}},
		{Key: keyNaive, Name: "naive Go (clickhouse-go Scan + encoding/csv)", Group: "baseline", CSV: true,
			run: func(ctx context.Context, out string) (measurement, error) {
				return h.toFile(ctx, out, nil, h.naive, "--addr", h.ch.TCPAddr, "--database", db, "--enterprise", enterprise,
					"--from-ms", strconv.FormatInt(rangeFrom.UnixMilli(), 10), "--to-ms", strconv.FormatInt(rangeTo.UnixMilli(), 10),
					"--out", out)
			}},
		{Key: keyCLI, Name: "exportd export --out (CLI)", Group: "exportd", CSV: true,
			run: func(ctx context.Context, out string) (measurement, error) {
				return h.toFile(ctx, out, env, h.exportd, "export", "--scope", enterprise,
					"--from", rangeFrom.Format(rfc3339Milli), "--to", rangeTo.Format(rfc3339Milli), "--compression", "none", "--out", out)
			}},
		{Key: keyCLIJSONL, Name: "exportd export --format jsonl (CLI)", Group: "exportd",
			run: func(ctx context.Context, out string) (measurement, error) {
				m, err := h.toFile(ctx, out, env, h.exportd, "export", "--scope", enterprise,
					"--from", rangeFrom.Format(rfc3339Milli), "--to", rangeTo.Format(rfc3339Milli), "--format", "jsonl", "--out", out)
				if err == nil {
					m.Rows, err = countLines(out)
				}
				return m, err
			}},
		{Key: keyCLIParquet, Name: "exportd export --format parquet (CLI)", Group: "exportd",
			run: func(ctx context.Context, out string) (measurement, error) {
				return h.toFile(ctx, out, env, h.exportd, "export", "--scope", enterprise,
					"--from", rangeFrom.Format(rfc3339Milli), "--to", rangeTo.Format(rfc3339Milli), "--format", "parquet", "--out", out)
			}},
		{Key: keyCLI5, Name: "exportd export --columns (5 of 17, CLI)", Group: "exportd", CSV: true,
			run: func(ctx context.Context, out string) (measurement, error) {
				return h.toFile(ctx, out, env, h.exportd, "export", "--scope", enterprise,
					"--from", rangeFrom.Format(rfc3339Milli), "--to", rangeTo.Format(rfc3339Milli), "--columns", fiveColumns, "--out", out)
			}},
		{Key: keyAPINone, Name: "exportd API, compression none", Group: "exportd", CSV: true, run: api("none")},
		{Key: keyAPIZstd, Name: "exportd API, compression zstd", Group: "exportd", run: api("zstd")},
		{Key: keyAPIGzip, Name: "exportd API, compression gzip", Group: "exportd", run: api("gzip")},
	}
	if len(srv.scopes) > 1 {
		cs = append(cs, contender{Key: keyAPI2x, Name: "exportd API, 2 enterprises at once, compression none", Group: "exportd",
			Exports: 2, run: func(ctx context.Context, _ string) (measurement, error) {
				return srv.exportConcurrent(ctx, srv.scopes[:2])
			}})
	}
	if s3srv != nil {
		cs = append(cs, contender{Key: keyAPIS3, Name: "exportd API → S3, compression none", Group: "exportd",
			run: func(ctx context.Context, _ string) (measurement, error) { return s3srv.export(ctx, "none") }})
	}
	return cs
}

// countLines counts the LF-terminated lines of a file (JSON Lines rows:
// raw LF never occurs inside a JSON string).
func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		for _, c := range buf[:k] {
			if c == '\n' {
				n++
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// toFile times a child that produces out: either the child writes out itself
// (its arguments name it) or, when they do not, its stdout is redirected to
// out as a shell's `> out` would.
func (h *harness) toFile(ctx context.Context, out string, env []string, name string, args ...string) (measurement, error) {
	var stdout *os.File
	if !slices.Contains(args, out) {
		f, err := os.Create(out)
		if err != nil {
			return measurement{}, err
		}
		defer f.Close()
		stdout = f
	}
	res, err := runTimed(ctx, env, stdout, name, args...)
	if err != nil {
		return measurement{}, err
	}
	st, err := os.Stat(out)
	if err != nil {
		return measurement{}, fmt.Errorf("%s wrote no %s: %w", filepath.Base(name), out, err)
	}
	return measurement{Elapsed: res.Elapsed, Path: out, Bytes: st.Size(), Rows: -1, PeakRSS: res.MaxRSS}, nil
}

// httpCSV fetches the query through ClickHouse's HTTP interface with curl,
// or with Go's net/http when curl is missing (the timing then includes no
// process start, and the RSS is not measured).
func (h *harness) httpCSV(ctx context.Context, db, query, out string) (measurement, error) {
	u := "http://" + h.ch.HTTPAddr + "/?database=" + db
	if h.curl != "" {
		return h.toFile(ctx, out, nil, h.curl, "-sS", "--fail", "-o", out, "--data-binary", query, u)
	}
	f, err := os.Create(out)
	if err != nil {
		return measurement{}, err
	}
	defer f.Close()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(query))
	if err != nil {
		return measurement{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return measurement{}, fmt.Errorf("ClickHouse HTTP: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return measurement{}, fmt.Errorf("ClickHouse HTTP: status %d: %s", resp.StatusCode, b)
	}
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		return measurement{}, fmt.Errorf("ClickHouse HTTP: %w", err)
	}
	if err := f.Close(); err != nil {
		return measurement{}, err
	}
	return measurement{Elapsed: time.Since(start), Path: out, Bytes: n, Rows: -1}, nil
}
