package engine_test

import (
	"bytes"
	"context"
	encsv "encoding/csv"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/engine/pgstore/pgtest"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/ingest"
	"github.com/exportd/exportd/ingest/chlocal"
)

var (
	chCfg chconn.Config
	pool  driver.Conn
	pg    *pgtest.Server
	// records is the PostgreSQL control plane every test engine shares.
	records *pgstore.Store
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	dsn, stop, err := chlocal.ForTests(ctx)
	if err == nil {
		chCfg, err = chconn.ParseDSN(dsn)
	}
	if err == nil {
		pool, err = chCfg.Open(ctx)
	}
	if err == nil {
		err = ingest.Migrate(ctx, pool)
	}
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "FAIL: test ClickHouse:", err)
		if stop != nil {
			stop()
		}
		os.Exit(1)
	}
	pg, err = pgtest.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		stop()
		os.Exit(1)
	}
	records = pg.Store
	code := m.Run()
	pool.Close()
	stop()
	pg.Stop()
	os.Exit(code)
}

func insert(t *testing.T, rows []activity.Row) {
	t.Helper()
	ctx := context.Background()
	c, err := chCfg.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := activity.NewBlock()
	for i := range rows {
		b.Append(&rows[i])
	}
	if err := c.Do(ctx, ch.Query{Body: "INSERT INTO operations_activity VALUES", Input: b.Input()}); err != nil {
		t.Fatal(err)
	}
}

func uuidN(prefix string, n int) string { return fmt.Sprintf("%s-0000-4000-8000-%012x", prefix, n) }

// expectRow renders a row the way SPEC §3 says, independently of engine/csv:
// plain string building, guard and quoting spelled out.
func expectRow(r activity.Row, amount, fee string) []string {
	guard := func(s string) string {
		if s != "" && strings.ContainsAny(s[:1], "=+-@\t\r") {
			return "'" + s
		}
		return s
	}
	ts := func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }
	settled := ""
	if r.SettledAt != nil {
		settled = ts(*r.SettledAt)
	}
	return []string{ts(r.OccurredAt), r.ActivityID, r.OperationID, r.Family, r.Status, r.EnterpriseRef,
		r.ClientRef, r.AccountRef, guard(r.CounterpartyRef), guard(r.Currency), amount, guard(r.FeeCurrency),
		fee, settled, r.InitiatedBy, guard(r.FailureReason), guard(r.Reference)}
}

func TestExportBoundsOrderAndAwkwardValues(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e0000001", 1)
	other := "enterprises/" + uuidN("e0000002", 2)
	client := "clients/" + uuidN("c0000001", 1)
	from := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 4, 30, 23, 59, 59, 0, time.UTC)
	fromMs, toMs := from.UnixMilli(), to.UnixMilli()

	type tc struct {
		at              int64
		amount, fee     string
		ref, cp, reason string
		in              bool
	}
	cases := []tc{
		{fromMs - 1, "1", "", "just before from", "", "", false},
		{fromMs, "-250.50", "0.000000000000000001", "at from, comma, \"quote\"", "=cmd", "", true},
		{fromMs, "0", "", "same ms, ordered by id", "+1", "", true},
		{fromMs + 1, "-0.000", "1", "line\nfeed and\r\ncrlf", "-x", "", true},
		{fromMs + 86_400_000, "99999999999999999999.999999999999999999", "", "ünïcødé 🚀 مرحبا 漢字", "@h", "", true},
		{fromMs + 2*86_400_000, "-99999999999999999999.999999999999999999", "", "\ttab lead", "", "=fail", true},
		{toMs, "12.5", "", "at to (…59.000)", "", "", true},
		{toMs + 1, "13", "", "1 ms after to", "", "", false},
	}
	var rows []activity.Row
	var want [][]string
	for i, c := range cases {
		amt, err := activity.ParseDecimal(c.amount)
		if err != nil {
			t.Fatal(err)
		}
		r := activity.Row{OccurredAt: c.at, ActivityID: uuidN(fmt.Sprintf("a%07d", 9-i), i), OperationID: uuidN("0b000000", i),
			Family: activity.Families[i%6], Status: activity.Statuses[i%10], EnterpriseRef: ent, ClientRef: client,
			AccountRef: "client-accounts/" + uuidN("ac000000", i%2), CounterpartyRef: c.cp, Currency: "USDC", Amount: amt,
			InitiatedBy: "users/" + uuidN("0c000000", 1), FailureReason: c.reason, Reference: c.ref}
		feeText := ""
		if c.fee != "" {
			f, _ := activity.ParseDecimal(c.fee)
			r.FeeAmount, r.FeeCurrency = &f, "EUR"
			feeText = strings.TrimRight(strings.TrimRight(c.fee, "0"), ".")
			if !strings.Contains(c.fee, ".") {
				feeText = c.fee
			}
		}
		if i%2 == 0 {
			s := c.at + 5
			r.SettledAt = &s
		}
		rows = append(rows, r)
		if c.in {
			amtText := map[string]string{"-250.50": "-250.5", "-0.000": "0"}[c.amount]
			if amtText == "" {
				amtText = c.amount
			}
			want = append(want, expectRow(r, amtText, feeText))
		}
	}
	// Another tenant's rows inside the range must never appear.
	leak := rows[1]
	leak.EnterpriseRef, leak.ActivityID, leak.Reference = other, uuidN("dddddddd", 1), "OTHER TENANT"
	rows = append(rows, leak)
	insert(t, rows)
	// Expected order: occurred_at, then activity_id text.
	sort.SliceStable(want, func(i, j int) bool {
		if want[i][0] != want[j][0] {
			return want[i][0] < want[j][0]
		}
		return want[i][1] < want[j][1]
	})

	dir := t.TempDir()
	store, err := storage.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{Reader: source.New(chCfg, source.Options{WindowRows: 2}), Records: records, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown(ctx)
	x, err := eng.Submit(ctx, &engine.Export{Format: "csv", Compression: "none", DateFrom: from.Format(time.RFC3339Nano),
		DateTo: to.Format(time.RFC3339Nano), ScopeKind: engine.KindEnterprise, ScopeRef: ent, EnterpriseRef: ent, GeneratedBy: "users/x"})
	if err != nil {
		t.Fatal(err)
	}
	x, err = eng.Wait(ctx, x.ID, 30*time.Second)
	if err != nil || x.Status != engine.StatusReady {
		t.Fatalf("export: %+v, %v", x, err)
	}
	obj, err := store.Open(ctx, x.ObjectName())
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, obj.Size())
	if _, err := obj.ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	obj.Close()
	if int64(len(data)) != x.ByteSize || x.RowCount != int64(len(want)) {
		t.Fatalf("byte_size %d (file %d), row_count %d (want %d)", x.ByteSize, len(data), x.RowCount, len(want))
	}
	rd := encsv.NewReader(bytes.NewReader(data))
	got, err := rd.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got[0], ",") != strings.Join(activity.Columns[:], ",") {
		t.Fatalf("header %v", got[0])
	}
	got = got[1:]
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d:\n%q", len(got), len(want), got)
	}
	for i := range want {
		for j := range want[i] {
			w := strings.ReplaceAll(want[i][j], "\r\n", "\n") // encoding/csv folds CRLF inside quotes
			if got[i][j] != w {
				t.Errorf("row %d col %s: got %q want %q", i, activity.Columns[j], got[i][j], w)
			}
		}
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) || bytes.Count(data, []byte("\r\n")) < len(want)+1 {
		t.Error("rows must end with CRLF")
	}
	// No temp files left; the only file is the artefact.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("storage holds %d entries, want 1", len(entries))
	}
	// The stored record agrees.
	rec, err := records.Get(ctx, x.ID)
	if err != nil || rec.Status != engine.StatusReady || rec.Checksum != x.Checksum {
		t.Fatalf("record %+v %v", rec, err)
	}
}
