package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The generated data set spans [2026-01-01, 2026-07-01) (exportd ingest's
// default); every contender exports all of it.
var (
	rangeFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rangeTo   = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC).Add(-time.Millisecond) // inclusive
)

const rfc3339Milli = "2006-01-02T15:04:05.000Z"

// columns are the 17 activity columns in CSV order (SPEC §3).
const columns = "occurred_at_utc, activity_id, operation_id, family, status, enterprise_ref, client_ref, " +
	"account_ref, counterparty_ref, currency, amount, fee_currency, fee_amount, settled_at_utc, " +
	"initiated_by, failure_reason, reference"

// exportQuery is the query ClickHouse's tools run: the same rows, columns and
// order as an exportd export of the enterprise over the generated range.
func exportQuery(enterprise, format string) string {
	q := "SELECT " + columns + " FROM operations_activity WHERE enterprise_ref = '" + enterprise +
		"' AND occurred_at_utc BETWEEN " + strconv.FormatInt(rangeFrom.UnixMilli(), 10) +
		" AND " + strconv.FormatInt(rangeTo.UnixMilli(), 10) + " ORDER BY occurred_at_utc, activity_id"
	if format != "" {
		q += " FORMAT " + format
	}
	return q
}

func (h *harness) chPort() string {
	_, port, _ := net.SplitHostPort(h.ch.TCPAddr)
	return port
}

// chQuery runs one statement with clickhouse-client and returns its output.
func (h *harness) chQuery(ctx context.Context, db, query string) (string, error) {
	args := []string{"--port", h.chPort(), "--query", query}
	if db != "" {
		args = append(args, "--database", db)
	}
	res, err := runTimed(ctx, nil, nil, h.chc, args...)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(res.Stdout), nil
}

func (h *harness) clickhouseVersion(ctx context.Context) string {
	v, err := h.chQuery(ctx, "", "SELECT version()")
	if err != nil {
		return "unknown"
	}
	return v
}

// dsn is exportd's DSN for database db of the private server.
func (h *harness) dsn(db string) string { return "clickhouse://" + h.ch.TCPAddr + "/" + db }

// prepare creates database db, applies exportd's schema, generates n rows
// for one enterprise, merges the parts and waits until no merge runs, so
// that background work does not disturb the measurements. With second, a
// second `exportd ingest --generate n --enterprises 1` with the next seed
// adds n rows of another enterprise (for api-2x): the generator spreads rows
// over enterprises at random, so one run with --enterprises 2 would not give
// both exactly n. It returns the enterprise refs (the single-export one
// first) and the number of rows of each in the export range.
func (h *harness) prepare(ctx context.Context, db string, n int64, second bool) ([]string, int64, error) {
	if _, err := h.chQuery(ctx, "", "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		return nil, 0, fmt.Errorf("create database %s: %w", db, err)
	}
	env := []string{"EXPORTD_CLICKHOUSE_DSN=" + h.dsn(db), "EXPORTD_POSTGRES_DSN=" + h.pgDSN}
	if _, err := runTimed(ctx, env, nil, h.exportd, "migrate"); err != nil {
		return nil, 0, fmt.Errorf("exportd migrate: %w", err)
	}
	seeds := []int64{h.cfg.seed}
	if second {
		seeds = append(seeds, h.cfg.seed+1)
	}
	var enterprises []string
	for _, sd := range seeds {
		seed := strconv.FormatInt(sd, 10)
		res, err := runTimed(ctx, env, nil, h.exportd, "ingest", "--print-enterprises", "--enterprises", "1", "--seed", seed)
		if err != nil {
			return nil, 0, fmt.Errorf("exportd ingest --print-enterprises: %w", err)
		}
		enterprise := strings.TrimSpace(res.Stdout)
		if !strings.HasPrefix(enterprise, "enterprises/") || strings.ContainsAny(enterprise, "'\\\n") {
			return nil, 0, fmt.Errorf("exportd ingest --print-enterprises printed %q, want one enterprises/<uuid>", enterprise)
		}
		if slices.Contains(enterprises, enterprise) {
			return nil, 0, fmt.Errorf("seeds %v give the same enterprise %s", seeds, enterprise)
		}
		enterprises = append(enterprises, enterprise)
		h.logf("generating %s rows for %s into %s (seed %s)", fmtCount(n), enterprise, db, seed)
		res, err = runTimed(ctx, env, nil, h.exportd, "ingest", "--generate", strconv.FormatInt(n, 10),
			"--enterprises", "1", "--seed", seed)
		if err != nil {
			return nil, 0, fmt.Errorf("exportd ingest --generate: %w", err)
		}
		h.logf("generated in %.1fs", res.Elapsed.Seconds())
	}

	parts, err := h.chQuery(ctx, "", "SELECT DISTINCT partition FROM system.parts WHERE active AND database = '"+db+
		"' AND table = 'operations_activity' ORDER BY partition")
	if err != nil {
		return nil, 0, fmt.Errorf("list partitions: %w", err)
	}
	start := time.Now()
	for _, p := range strings.Fields(parts) {
		if _, err := h.chQuery(ctx, db, "OPTIMIZE TABLE operations_activity PARTITION "+p+" FINAL"); err != nil {
			return nil, 0, fmt.Errorf("optimize partition %s: %w", p, err)
		}
	}
	for {
		m, err := h.chQuery(ctx, "", "SELECT count() FROM system.merges")
		if err != nil {
			return nil, 0, fmt.Errorf("read system.merges: %w", err)
		}
		if m == "0" {
			break
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	h.logf("merged %d partitions in %.1fs", len(strings.Fields(parts)), time.Since(start).Seconds())

	for _, enterprise := range enterprises {
		cnt, err := h.chQuery(ctx, db, "SELECT count() FROM operations_activity WHERE enterprise_ref = '"+enterprise+
			"' AND occurred_at_utc BETWEEN "+strconv.FormatInt(rangeFrom.UnixMilli(), 10)+" AND "+strconv.FormatInt(rangeTo.UnixMilli(), 10))
		if err != nil {
			return nil, 0, fmt.Errorf("count rows: %w", err)
		}
		rows, err := strconv.ParseInt(cnt, 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("count rows: unexpected answer %q", cnt)
		}
		if rows != n {
			return nil, 0, fmt.Errorf("generated %d rows for %s but %d are in the export range [%s, %s]", n, enterprise, rows,
				rangeFrom.Format(rfc3339Milli), rangeTo.Format(rfc3339Milli))
		}
	}
	return enterprises, n, nil
}
