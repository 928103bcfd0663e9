package engine_test

import (
	"bytes"
	"context"
	encsv "encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

// optRow is an inserted row with the canonical text of its amounts.
type optRow struct {
	activity.Row
	amount, fee string
}

// optionRows inserts rows of one enterprise across the 2026 European DST
// change (and another tenant's rows at the same instants) and returns the
// enterprise's rows in export order.
func optionRows(t *testing.T, ent string, n int) []optRow {
	t.Helper()
	other := "enterprises/" + uuidN("e0000015", 15)
	amounts := []string{"-250.5", "0", "1000", "0.000000000000000001", "-99999999999999999999.999999999999999999", "12.25"}
	currencies := []string{"USDC", "EUR", "BTC", "=X"}
	base := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC).UnixMilli()
	var rows []optRow
	var ins []activity.Row
	for i := range n {
		r := optRow{amount: amounts[i%len(amounts)]}
		amt, err := activity.ParseDecimal(r.amount)
		if err != nil {
			t.Fatal(err)
		}
		r.Row = activity.Row{OccurredAt: base + int64(i)*997_531, ActivityID: uuidN("a0000014", i), OperationID: uuidN("0b000014", i),
			Family: activity.Families[i%6], Status: activity.Statuses[i%10], EnterpriseRef: ent,
			AccountRef: "client-accounts/" + uuidN("ac000014", i%3), Currency: currencies[i%4], Amount: amt,
			InitiatedBy: "users/" + uuidN("0c000014", 1), Reference: strings.Repeat(fmt.Sprintf("ref %d, \"q\" ", i), 8)}
		if i%3 != 0 {
			r.ClientRef = "clients/" + uuidN("c0000014", i%2)
		}
		if i%4 == 1 {
			f := amounts[(i+2)%len(amounts)]
			fee, _ := activity.ParseDecimal(f)
			r.FeeAmount, r.FeeCurrency, r.fee = &fee, "EUR", f
		}
		if i%5 != 0 {
			s := r.OccurredAt + 3_600_000
			r.SettledAt = &s
		}
		if i%7 == 0 {
			r.Reference, r.FailureReason, r.CounterpartyRef = "", "-insufficient", "@cp"
		}
		rows = append(rows, r)
		ins = append(ins, r.Row)
		leak := r.Row
		leak.EnterpriseRef, leak.ActivityID = other, uuidN("dddd0014", i)
		ins = append(ins, leak)
	}
	insert(t, ins)
	return rows
}

// cells renders r's values for cols in loc, by SPEC rules spelled out
// independently of the encoders: guard is the CSV formula guard (off for
// JSON Lines); null reports the empty optional values.
func cells(r optRow, cols []string, loc *time.Location, guard bool) (vals []string, null []bool) {
	ts := func(ms int64) string { return time.UnixMilli(ms).In(loc).Format("2006-01-02T15:04:05.000Z07:00") }
	g := func(s string) string {
		if guard && s != "" && strings.ContainsAny(s[:1], "=+-@\t\r") {
			return "'" + s
		}
		return s
	}
	for _, c := range cols {
		var v string
		switch c {
		case "occurred_at_utc":
			v = ts(r.OccurredAt)
		case "activity_id":
			v = r.ActivityID
		case "operation_id":
			v = r.OperationID
		case "family":
			v = r.Family
		case "status":
			v = r.Status
		case "enterprise_ref":
			v = r.EnterpriseRef
		case "client_ref":
			v = r.ClientRef
		case "account_ref":
			v = r.AccountRef
		case "counterparty_ref":
			v = g(r.CounterpartyRef)
		case "currency":
			v = g(r.Currency)
		case "amount":
			v = r.amount
		case "fee_currency":
			v = g(r.FeeCurrency)
		case "fee_amount":
			v = r.fee
		case "settled_at_utc":
			if r.SettledAt != nil {
				v = ts(*r.SettledAt)
			}
		case "initiated_by":
			v = r.InitiatedBy
		case "failure_reason":
			v = g(r.FailureReason)
		case "reference":
			v = g(r.Reference)
		default:
			panic("BUG: column " + c)
		}
		vals = append(vals, v)
		null = append(null, v == "" && c != "amount" && slices.Contains([]string{"client_ref", "counterparty_ref",
			"fee_currency", "fee_amount", "settled_at_utc", "failure_reason", "reference"}, c))
	}
	return vals, null
}

// matching returns the rows the options' filters keep, in order.
func matching(rows []optRow, o engine.Options) []optRow {
	in := func(set []string, v string) bool { return set == nil || slices.Contains(set, v) }
	var out []optRow
	for _, r := range rows {
		if in(o.Families, r.Family) && in(o.Statuses, r.Status) && in(o.Currencies, r.Currency) {
			out = append(out, r)
		}
	}
	return out
}

type optionCase struct {
	name string
	opts engine.Options
}

func optionCases() []optionCase {
	return []optionCase{
		{"defaults", engine.Options{}},
		{"three columns, two families, Paris", engine.Options{Columns: []string{"amount", "occurred_at_utc", "reference"},
			Families: []string{"deposit", "on_ramp"}, TimeZone: "Europe/Paris"}},
		{"five columns, statuses and currencies, BOM", engine.Options{Columns: []string{"occurred_at_utc", "activity_id", "family", "currency", "amount"},
			Statuses: []string{"settled", "failed", "requested"}, Currencies: []string{"EUR", "=X"}, CSVBOM: true}},
		{"one optional column", engine.Options{Columns: []string{"fee_amount"}}},
		{"every filter, New York", engine.Options{Families: []string{"withdrawal", "conversion", "off_ramp"},
			Statuses: activity.Statuses[:5], Currencies: []string{"USDC", "BTC", "EUR"}, TimeZone: "America/New_York"}},
		{"no match", engine.Options{Columns: []string{"settled_at_utc", "account_ref"}, Currencies: []string{"XYZ"}}},
	}
}

// TestOptionsPushdownCSV runs each option set against real ClickHouse: the
// plan counts only matching rows, the CSV has exactly the selected columns
// in order (header too) with the zone's offsets and the BOM when asked, and
// no other tenant's row. Reading one column reads far fewer bytes.
func TestOptionsPushdownCSV(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e0000014", 14)
	rows := optionRows(t, ent, 600)
	reader := source.New(chCfg, source.Options{WindowRows: 97})
	base := source.Query{EnterpriseRef: ent, FromMs: rows[0].OccurredAt, ToMs: rows[len(rows)-1].OccurredAt}
	for _, c := range optionCases() {
		t.Run(c.name, func(t *testing.T) {
			if f := c.opts.Invalid(engine.FormatCSV); f != "" {
				t.Fatalf("test options invalid: %s", f)
			}
			q := base
			c.opts.Narrow(&q)
			want := matching(rows, c.opts)
			plan, err := reader.Plan(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Total != int64(len(want)) {
				t.Fatalf("plan counts %d rows, want %d", plan.Total, len(want))
			}
			var buf bytes.Buffer
			res, err := engine.Pipe(ctx, reader, q, plan, engine.Encoding{Format: engine.FormatCSV, Options: c.opts}, 0, &buf, nil)
			if err != nil {
				t.Fatal(err)
			}
			data := buf.Bytes()
			if c.opts.CSVBOM != bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
				t.Fatalf("BOM %v, want %v", !c.opts.CSVBOM, c.opts.CSVBOM)
			}
			data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
			recs, err := encsv.NewReader(bytes.NewReader(data)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			cols := c.opts.ColumnNames()
			if !slices.Equal(recs[0], cols) {
				t.Fatalf("header %v, want %v", recs[0], cols)
			}
			loc, _ := engine.LoadZone(c.opts.TimeZone)
			if res.Rows != int64(len(want)) || len(recs)-1 != len(want) {
				t.Fatalf("%d rows (%d records), want %d", res.Rows, len(recs)-1, len(want))
			}
			for i, r := range want {
				exp, _ := cells(r, cols, loc, true)
				for j := range exp {
					exp[j] = strings.ReplaceAll(exp[j], "\r\n", "\n")
				}
				if !slices.Equal(recs[i+1], exp) {
					t.Fatalf("row %d:\n got %q\nwant %q", i, recs[i+1], exp)
				}
			}
		})
	}

	// Column pushdown: ClickHouse reads a fraction of the bytes for one column.
	read := func(cols []string) int64 {
		q := base
		o := engine.Options{Columns: cols}
		o.Narrow(&q)
		var buf bytes.Buffer
		res, err := engine.Pipe(ctx, reader, q, nil, engine.Encoding{Options: o}, 0, &buf, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.ReadBytes
	}
	full, one := read(nil), read([]string{"amount"})
	t.Logf("ClickHouse read %d bytes for 17 columns, %d for amount alone", full, one)
	if full == 0 || one*3 > full {
		t.Fatalf("one column read %d bytes of %d for all: not pushed down", one, full)
	}
}

// TestOptionsThroughEngine: an export submitted with options stores them
// (PostgreSQL round trip), names its artefact by format and writes the
// narrowed, filtered, zoned file.
func TestOptionsThroughEngine(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e0000016", 16)
	rows := optionRows(t, ent, 120)
	dir := t.TempDir()
	store, err := storage.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Reader: source.New(chCfg, source.Options{}), Records: records, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown(ctx)
	opts := engine.Options{Columns: []string{"settled_at_utc", "family", "amount"}, Families: []string{"deposit", "conversion"},
		TimeZone: "Asia/Kolkata", CSVBOM: true}
	x, err := eng.Submit(ctx, &engine.Export{Format: "csv", Compression: "none", DateFrom: "2026-03-01T00:00:00Z",
		DateTo: "2026-04-30T23:59:59Z", ScopeKind: engine.KindEnterprise, ScopeRef: ent, EnterpriseRef: ent, GeneratedBy: "users/x", Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	if x, err = eng.Wait(ctx, x.ID, 30*time.Second); err != nil || x.Status != engine.StatusReady {
		t.Fatalf("export %+v %v", x, err)
	}
	rec, err := records.Get(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.Options.Columns, opts.Columns) || !slices.Equal(rec.Options.Families, opts.Families) ||
		rec.Options.Statuses != nil || rec.Options.TimeZone != opts.TimeZone || !rec.Options.CSVBOM {
		t.Fatalf("stored options %+v, want %+v", rec.Options, opts)
	}
	if !strings.HasSuffix(x.ObjectName(), ".csv") {
		t.Fatalf("object %s", x.ObjectName())
	}
	obj, err := store.Open(ctx, x.ObjectName())
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, obj.Size())
	_, err = obj.ReadAt(data, 0)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := matching(rows, opts)
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	var sb strings.Builder
	sb.WriteString("\xef\xbb\xbfsettled_at_utc,family,amount\r\n")
	for _, r := range want {
		v, _ := cells(r, opts.Columns, kolkata, true)
		sb.WriteString(strings.Join(v, ",") + "\r\n")
	}
	if string(data) != sb.String() || x.RowCount != int64(len(want)) {
		t.Fatalf("file (%d rows):\n%q\nwant (%d rows):\n%q", x.RowCount, data, len(want), sb.String())
	}
}

// TestOptionsJSONL: the same option sets as JSON Lines, parsed back with
// encoding/json: keys the selected columns in order, values the CSV's text
// without the guard, null for empty optional values; gzip for one of them.
func TestOptionsJSONL(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e0000017", 17)
	rows := optionRows(t, ent, 300)
	reader := source.New(chCfg, source.Options{WindowRows: 61})
	base := source.Query{EnterpriseRef: ent, FromMs: rows[0].OccurredAt, ToMs: rows[len(rows)-1].OccurredAt}
	for i, c := range optionCases() {
		c.opts.CSVBOM = false
		t.Run(c.name, func(t *testing.T) {
			compression := []string{engine.CompressionNone, engine.CompressionGzip, engine.CompressionZstd}[i%3]
			q := base
			c.opts.Narrow(&q)
			var buf bytes.Buffer
			res, err := engine.Pipe(ctx, reader, q, nil, engine.Encoding{Format: engine.FormatJSONL, Compression: compression, Options: c.opts}, 0, &buf, nil)
			if err != nil {
				t.Fatal(err)
			}
			data := decompress(t, compression, buf.Bytes())
			want := matching(rows, c.opts)
			lines := bytes.SplitAfter(data, []byte("\n"))
			lines = lines[:len(lines)-1] // after the last LF (or of an empty file): ""
			if len(lines) != len(want) || res.Rows != int64(len(want)) {
				t.Fatalf("%d lines, %d rows, want %d", len(lines), res.Rows, len(want))
			}
			cols := c.opts.ColumnNames()
			loc, _ := engine.LoadZone(c.opts.TimeZone)
			for i, r := range want {
				d := json.NewDecoder(bytes.NewReader(lines[i]))
				d.Token() // {
				vals, null := cells(r, cols, loc, false)
				for j := range cols {
					k, err := d.Token()
					if err != nil || k != cols[j] {
						t.Fatalf("row %d key %d: %v %v, want %s", i, j, k, err, cols[j])
					}
					var v *string
					if err := d.Decode(&v); err != nil {
						t.Fatal(err)
					}
					if null[j] != (v == nil) || v != nil && *v != vals[j] {
						t.Fatalf("row %d %s: got %v, want %q (null %v)", i, cols[j], v, vals[j], null[j])
					}
				}
				if tok, err := d.Token(); err != nil || tok != json.Delim('}') {
					t.Fatalf("row %d: extra keys", i)
				}
			}
		})
	}
}

func decompress(t *testing.T, compression string, data []byte) []byte {
	t.Helper()
	var rd io.Reader = bytes.NewReader(data)
	var err error
	switch compression {
	case engine.CompressionGzip:
		if rd, err = gzip.NewReader(rd); err != nil {
			t.Fatal(err)
		}
	case engine.CompressionZstd:
		zr, err := zstd.NewReader(rd)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		rd = zr
	}
	out, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
