package main

import (
	"bytes"
	"context"
	encsv "encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/exportd/exportd/ingest"
)

// sourceRows reads an enterprise's rows straight from ClickHouse, with its
// own SQL and formatting (independent of the engine, the source package and
// the encoder): ClickHouse's toString of each column, then the canonical
// forms of SPEC §3 applied in Go with plain string operations.
func sourceRows(t *testing.T, enterprise string, fromMs, toMs int64, extra string) [][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := testCfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := fmt.Sprintf(`SELECT occurred_at_utc, toString(activity_id), toString(operation_id), family, status, enterprise_ref,
		client_ref, account_ref, counterparty_ref, currency, toString(amount), fee_currency,
		ifNull(toString(fee_amount), ''), ifNull(settled_at_utc, -1), initiated_by, failure_reason, reference
		FROM operations_activity WHERE enterprise_ref = '%s' AND occurred_at_utc BETWEEN %d AND %d %s
		ORDER BY occurred_at_utc, activity_id`, enterprise, fromMs, toMs, extra)
	rows, err := conn.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ts := func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }
	num := func(s string) string {
		if strings.Contains(s, ".") {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
		if s == "-0" {
			s = "0"
		}
		return s
	}
	guard := func(s string) string {
		if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
			return "'" + s
		}
		return s
	}
	var out [][]string
	for rows.Next() {
		var (
			at, settled                                               int64
			id, op, fam, st, ent, cl, acc, cp, cur, amt, fc, fee, ini string
			fr, ref                                                   string
		)
		if err := rows.Scan(&at, &id, &op, &fam, &st, &ent, &cl, &acc, &cp, &cur, &amt, &fc, &fee, &settled, &ini, &fr, &ref); err != nil {
			t.Fatal(err)
		}
		s := ""
		if settled >= 0 {
			s = ts(settled)
		}
		if fee != "" {
			fee = num(fee)
		}
		out = append(out, []string{ts(at), id, op, fam, st, ent, cl, acc, guard(cp), guard(cur), num(amt), guard(fc), fee, s, ini, guard(fr),
			strings.ReplaceAll(guard(ref), "\r\n", "\n")})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func parseCSV(t *testing.T, data []byte) [][]string {
	t.Helper()
	recs, err := encsv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("exported CSV does not parse: %v", err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != "occurred_at_utc,activity_id,operation_id,family,status,enterprise_ref,client_ref,account_ref,counterparty_ref,currency,amount,fee_currency,fee_amount,settled_at_utc,initiated_by,failure_reason,reference" {
		t.Fatalf("bad header: %v", recs[:min(1, len(recs))])
	}
	return recs[1:]
}

func compareRows(t *testing.T, got, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("exported %d rows, source has %d", len(got), len(want))
	}
	for i := range want {
		if strings.Join(got[i], "\x00") != strings.Join(want[i], "\x00") {
			t.Fatalf("row %d differs:\n got  %q\n want %q", i, got[i], want[i])
		}
	}
}

func TestE2ECLIIngestExportRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mustExportd(t, nil, "migrate")
	mustExportd(t, nil, "migrate") // idempotent

	const n = 60000
	r := mustExportd(t, nil, "ingest", "--generate", fmt.Sprint(n), "--enterprises", "2", "--seed", "11")
	if !strings.Contains(r.stderr, "rows/s") {
		t.Errorf("generate should report rows/s: %s", r.stderr)
	}
	ent := strings.Fields(mustExportd(t, nil, "ingest", "--print-enterprises", "--enterprises", "2", "--seed", "11").stdout)[0]
	from, to := "2026-01-01T00:00:00Z", "2026-06-30T23:59:59.999Z"
	fromMs := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	toMs := time.Date(2026, 6, 30, 23, 59, 59, 999e6, time.UTC).UnixMilli()

	out := filepath.Join(dir, "e.csv")
	r = mustExportd(t, nil, "export", "--scope", ent, "--from", from, "--to", to, "--out", out)
	if !strings.Contains(r.stderr, "rows") {
		t.Errorf("export should report rows on stderr: %s", r.stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := sourceRows(t, ent, fromMs, toMs, "")
	if len(want) < n/3 {
		t.Fatalf("source has only %d rows for %s", len(want), ent)
	}
	compareRows(t, parseCSV(t, data), want)

	// Deterministic: a second export and stdout give the same bytes.
	again := mustExportd(t, nil, "export", "--scope", ent, "--from", from, "--to", to)
	if again.stdout != string(data) {
		t.Fatal("two exports of the same data differ")
	}
	// Compressed artefacts decompress to the same bytes.
	for _, c := range []string{"gzip", "zstd"} {
		cout := filepath.Join(dir, "e."+c)
		mustExportd(t, nil, "export", "--scope", ent, "--from", from, "--to", to, "--compression", c, "--out", cout)
		f, err := os.Open(cout)
		if err != nil {
			t.Fatal(err)
		}
		var rd io.Reader
		if c == "gzip" {
			rd, err = gzip.NewReader(f)
		} else {
			var zr *zstd.Decoder
			zr, err = zstd.NewReader(f)
			rd = zr
		}
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(rd)
		f.Close()
		if err != nil || !bytes.Equal(plain, data) {
			t.Fatalf("%s artefact does not decompress to the CSV (err %v)", c, err)
		}
	}
	// Client scope: only that client's rows, still of that enterprise.
	client := ingest.ClientRefs(11, 0)[0]
	cr := mustExportd(t, nil, "export", "--scope", client, "--from", from, "--to", to)
	compareRows(t, parseCSV(t, []byte(cr.stdout)), sourceRows(t, ent, fromMs, toMs, "AND client_ref = '"+client+"'"))
}

func TestE2ECLIIngestFileAllOrNothing(t *testing.T) {
	mustExportd(t, nil, "migrate")
	ent := "enterprises/0e2e0000-0000-4000-8000-000000000001"
	line := func(i int, at, amount, ref string) string {
		return fmt.Sprintf(`{"occurred_at_utc":%q,"activity_id":"0e2e0000-0000-4000-8000-%012d","operation_id":"0e2e0000-0000-4000-8000-000000000000","family":"deposit","status":"settled","enterprise_ref":%q,"account_ref":"master-accounts/0e2e0000-0000-4000-8000-000000000002","currency":"USDC","amount":%q,"initiated_by":"users/0e2e0000-0000-4000-8000-000000000003","reference":%q}`,
			at, i, ent, amount, ref)
	}
	good := strings.Join([]string{
		line(1, "2026-04-01T00:00:00Z", "-250.50", "a,b \"q\"\nline2"),
		line(2, "2026-04-30T23:59:59Z", "0.000000000000000001", "=SUM(A1)"),
		line(3, "2026-04-30T23:59:59.001Z", "99999999999999999999.999999999999999999", "after the range"),
		line(4, "2026-03-31T23:59:59.999Z", "1", "before the range"),
		strings.Replace(line(6, "2026-04-30T23:59:59Z", "7", "client row"), `"account_ref"`, `"client_ref":"clients/0e2e0000-0000-4000-8000-0000000000c1","account_ref"`, 1),
	}, "\n") + "\n"
	// A bad line after the good ones: nothing of the file may land.
	bad := good + line(5, "2026-04-02T00:00:00.0001Z", "1", "sub-millisecond") + "\n"
	r := exportd(t, nil, bad, "ingest", "--file", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "line 6") || !strings.Contains(r.stderr, "occurred_at_utc") {
		t.Fatalf("bad file: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := sourceRows(t, ent, 0, 1<<62, ""); len(got) != 0 {
		t.Fatalf("%d rows loaded from a rejected file", len(got))
	}
	f := filepath.Join(t.TempDir(), "good.ndjson")
	if err := os.WriteFile(f, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	mustExportd(t, nil, "ingest", "--file", f)
	r = mustExportd(t, nil, "export", "--scope", ent, "--from", "2026-04-01T00:00:00Z", "--to", "2026-04-30T23:59:59Z")
	want := "occurred_at_utc,activity_id,operation_id,family,status,enterprise_ref,client_ref,account_ref,counterparty_ref,currency,amount,fee_currency,fee_amount,settled_at_utc,initiated_by,failure_reason,reference\r\n" +
		"2026-04-01T00:00:00.000Z,0e2e0000-0000-4000-8000-000000000001,0e2e0000-0000-4000-8000-000000000000,deposit,settled," + ent + ",,master-accounts/0e2e0000-0000-4000-8000-000000000002,,USDC,-250.5,,,,users/0e2e0000-0000-4000-8000-000000000003,,\"a,b \"\"q\"\"\nline2\"\r\n" +
		"2026-04-30T23:59:59.000Z,0e2e0000-0000-4000-8000-000000000002,0e2e0000-0000-4000-8000-000000000000,deposit,settled," + ent + ",,master-accounts/0e2e0000-0000-4000-8000-000000000002,,USDC,0.000000000000000001,,,,users/0e2e0000-0000-4000-8000-000000000003,,'=SUM(A1)\r\n"
	if !strings.HasPrefix(r.stdout, want) || strings.Count(r.stdout, "\r\n") != 4 {
		t.Fatalf("export:\n%q\nwant prefix\n%q and 3 rows", r.stdout, want)
	}
	// Loaded rows resolve their client scope (ATTACH PARTITION fires no views).
	r = mustExportd(t, nil, "export", "--scope", "clients/0e2e0000-0000-4000-8000-0000000000c1", "--from", "2026-04-01T00:00:00Z", "--to", "2026-04-30T23:59:59Z")
	if rows := parseCSV(t, []byte(r.stdout)); len(rows) != 1 || rows[0][16] != "client row" {
		t.Fatalf("client export: %q", r.stdout)
	}
}

func TestE2ECLIBadSettingsAndUsage(t *testing.T) {
	r := exportd(t, []string{"EXPORTD_RETENTION=forever"}, "", "serve")
	if r.code == 0 || !strings.Contains(r.stderr, "EXPORTD_RETENTION") {
		t.Fatalf("bad setting: exit %d, %q", r.code, r.stderr)
	}
	r = exportd(t, nil, "", "export", "--scope", "enterprises/nope", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z")
	if r.code == 0 || !strings.Contains(r.stderr, "--scope") {
		t.Fatalf("bad scope: exit %d, %q", r.code, r.stderr)
	}
	if r := exportd(t, nil, "", "frobnicate"); r.code != 2 {
		t.Fatalf("unknown subcommand: exit %d", r.code)
	}
	if r := mustExportd(t, nil, "version"); !strings.HasPrefix(r.stdout, "exportd ") {
		t.Fatalf("version: %q", r.stdout)
	}
}
