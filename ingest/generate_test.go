package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/chconn"
)

// generateNDJSON renders a generated data set as NDJSON.
func generateNDJSON(t testing.TB, opts GenerateOptions) []byte {
	t.Helper()
	var out []byte
	err := Generate(opts, func(b *activity.Block) error {
		for i := 0; i < b.Rows(); i++ {
			out = AppendNDJSON(out, b, i)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGenerateDeterministic(t *testing.T) {
	opts := GenerateOptions{N: 20_000, Seed: 42, Enterprises: 7}
	a := generateNDJSON(t, opts)
	opts.BlockRows = 777 // block size must not matter
	b := generateNDJSON(t, opts)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different block size: different rows")
	}
	if got := bytes.Count(a, []byte("\n")); got != 20_000 {
		t.Fatalf("%d rows, want 20000", got)
	}
	opts.Seed = 43
	if c := generateNDJSON(t, opts); sha256.Sum256(a) == sha256.Sum256(c) {
		t.Fatal("different seeds, same rows")
	}
	// A prefix of a larger data set is the smaller one.
	opts.Seed, opts.N = 42, 30_000
	if d := generateNDJSON(t, opts); !bytes.HasPrefix(d, a) {
		t.Fatal("N=20000 is not a prefix of N=30000")
	}
	if EnterpriseRef(42, 3) != EnterpriseRef(42, 3) || EnterpriseRef(42, 3) == EnterpriseRef(43, 3) ||
		EnterpriseRef(42, 3) == EnterpriseRef(42, 4) {
		t.Fatal("EnterpriseRef is not a function of (seed, i)")
	}
}

// TestGenerateRealism re-parses every generated row with ParseLine (the
// loader's validation) and checks the shape of the data set.
func TestGenerateRealism(t *testing.T) {
	const seed, enterprises, n = 7, 5, 100_000
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)
	data := generateNDJSON(t, GenerateOptions{N: n, Seed: seed, Enterprises: enterprises, From: from, To: to})

	entIndex := map[string]int{}
	clients := map[string]int{} // client ref → enterprise
	for e := 0; e < enterprises; e++ {
		entIndex[EnterpriseRef(seed, e)] = e
		refs := ClientRefs(seed, e)
		if len(refs) < 3 || len(refs) > 20 {
			t.Errorf("enterprise %d has %d clients", e, len(refs))
		}
		for _, c := range refs {
			clients[c] = e
		}
	}
	count := map[string]int{}
	perEnterprise := make([]int, enterprises)
	ids := map[string]bool{}
	fractionDigits := map[int]bool{}
	var minAbs, maxAbs = 1e300, 0.0
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	for i, line := range lines {
		r, err := ParseLine(line)
		if err != nil {
			t.Fatalf("row %d: %v\n%s", i, err, line)
		}
		if ids[r.ActivityID] {
			t.Fatalf("duplicate activity_id %s", r.ActivityID)
		}
		ids[r.ActivityID] = true
		if r.OccurredAt < from.UnixMilli() || r.OccurredAt >= to.UnixMilli() {
			t.Fatalf("row %d: occurred_at %d outside [from, to)", i, r.OccurredAt)
		}
		e, ok := entIndex[r.EnterpriseRef]
		if !ok {
			t.Fatalf("row %d: enterprise %s is not EnterpriseRef(seed, 0..4)", i, r.EnterpriseRef)
		}
		perEnterprise[e]++
		switch {
		case strings.HasPrefix(r.AccountRef, activity.PrefixMasterAccount):
			count["master"]++
			if r.ClientRef != "" {
				t.Fatalf("row %d: master account with client_ref %s", i, r.ClientRef)
			}
		case r.ClientRef == "" || clients[r.ClientRef] != e:
			t.Fatalf("row %d: client %q not a client of enterprise %d", i, r.ClientRef, e)
		}
		count["family:"+r.Family]++
		count["status:"+r.Status]++
		settledStatus := r.Status == "settled" || r.Status == "partially_settled" || r.Status == "ledger_visible"
		if (r.SettledAt != nil) != settledStatus {
			t.Fatalf("row %d: status %s with settled_at %v", i, r.Status, r.SettledAt)
		}
		if r.SettledAt != nil && (*r.SettledAt > r.OccurredAt || *r.SettledAt < from.UnixMilli()) {
			t.Fatalf("row %d: settled_at %d not within the operation (occurred %d)", i, *r.SettledAt, r.OccurredAt)
		}
		if (r.FailureReason != "") != (r.Status == "failed") {
			t.Fatalf("row %d: status %s with failure_reason %q", i, r.Status, r.FailureReason)
		}
		amount := string(activity.AppendDecimal(nil, r.Amount))
		if neg := strings.HasPrefix(amount, "-"); neg != (r.Family == "withdrawal" || r.Family == "off_ramp") && amount != "0" {
			t.Fatalf("row %d: %s amount %s", i, r.Family, amount)
		}
		if dot := strings.IndexByte(amount, '.'); dot >= 0 {
			fractionDigits[len(amount)-dot-1] = true
		} else {
			fractionDigits[0] = true
		}
		var f float64
		for _, c := range strings.TrimPrefix(amount, "-") { // rough magnitude, for the check only
			if c == '.' {
				break
			}
			f = f*10 + float64(c-'0')
		}
		if amount != "0" {
			maxAbs = max(maxAbs, f)
			if strings.HasPrefix(strings.TrimPrefix(amount, "-"), "0.00000000000000000") {
				minAbs = 1e-18
			}
		}
		if r.FeeAmount != nil {
			count["fee"]++
			if int64(r.FeeAmount.High) < 0 {
				t.Fatalf("row %d: negative fee %v", i, r.FeeAmount)
			}
			if r.FeeCurrency == "" {
				count["fee without currency"]++
			}
		} else if r.FeeCurrency != "" {
			count["fee currency without fee"]++
		}
		if strings.ContainsFunc(r.CounterpartyRef, func(c rune) bool { return c < 0x20 }) {
			count["counterparty:control"]++
		}
		if strings.ContainsAny(r.Reference, "\x07\x1f\x7f") {
			count["ref:control"]++
		}
		if r.CounterpartyRef != "" {
			count["counterparty"]++
		}
		if strings.HasPrefix(r.InitiatedBy, activity.PrefixServiceAccount) {
			count["service-account"]++
		}
		ref := r.Reference
		for _, feature := range []struct{ name, substr string }{
			{"comma", ","}, {"quote", `"`}, {"lf", "\n"}, {"crlf", "\r\n"}, {"emoji", "🚀"}, {"accent", "é"},
			{"cjk", "参"}, {"rtl", "ע"}, {"arabic", "ب"},
		} {
			if strings.Contains(ref, feature.substr) {
				count["ref:"+feature.name]++
			}
		}
		if ref != "" && strings.ContainsAny(ref[:1], "=+-@\t\r") {
			count["ref:formula "+ref[:1]]++
		}
		if r.CounterpartyRef != "" && strings.ContainsAny(r.CounterpartyRef[:1], "=+-@") {
			count["counterparty:formula"]++
		}
	}
	for _, f := range activity.Families {
		if share := count["family:"+f] * 100 / n; share < 3 || share > 40 {
			t.Errorf("family %s: %d%% of rows", f, share)
		}
	}
	for _, s := range activity.Statuses {
		if count["status:"+s] < n/500 {
			t.Errorf("status %s: only %d rows", s, count["status:"+s])
		}
	}
	for e, c := range perEnterprise {
		if c < n/enterprises*8/10 || c > n/enterprises*12/10 {
			t.Errorf("enterprise %d: %d rows, want about %d", e, c, n/enterprises)
		}
	}
	if share := count["fee"] * 100 / n; share < 55 || share > 65 {
		t.Errorf("fee on %d%% of rows, want about 60%%", share)
	}
	for _, k := range []string{"fee without currency", "fee currency without fee"} {
		if share := count[k] * 1000 / n; share < 2 || share > 20 {
			t.Errorf("%s on %d‰ of rows, want about 1%%", k, share)
		}
	}
	if share := count["master"] * 100 / n; share < 10 || share > 30 {
		t.Errorf("master accounts on %d%% of rows", share)
	}
	for _, k := range []string{"counterparty", "service-account", "ref:comma", "ref:quote", "ref:lf", "ref:crlf", "ref:emoji",
		"ref:accent", "ref:cjk", "ref:rtl", "ref:arabic", "ref:formula =", "ref:formula +", "ref:formula -",
		"ref:formula @", "ref:formula \t", "ref:formula \r", "counterparty:formula", "counterparty:control", "ref:control"} {
		if count[k] == 0 {
			t.Errorf("no row with %s", k)
		}
	}
	for d := 0; d <= 18; d++ {
		if !fractionDigits[d] {
			t.Errorf("no amount with %d fractional digits", d)
		}
	}
	if minAbs > 1e-18 || maxAbs < 1e15 {
		t.Errorf("amount magnitudes span %g..%g, want 1e-18..1e15", minAbs, maxAbs)
	}
}

func TestGenerateOptionsValidate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, o := range []GenerateOptions{
		{N: -1},
		{Enterprises: -1},
		{BlockRows: MaxGenerateBlockRows + 1},
		{From: t0, To: t0},
		{From: t0.Add(time.Hour), To: t0},
		{From: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), To: t0},
		{From: time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)}, // after the default To
	} {
		if o.Validate() == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if err := (GenerateOptions{N: 1}).Validate(); err != nil {
		t.Error(err)
	}
	// A one-millisecond range puts every row on that millisecond.
	err := Generate(GenerateOptions{N: 100, From: t0, To: t0.Add(time.Millisecond)}, func(b *activity.Block) error {
		for i := 0; i < b.Rows(); i++ {
			if b.OccurredAt.Row(i) != t0.UnixMilli() {
				t.Fatalf("row %d at %d", i, b.OccurredAt.Row(i))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func migratedConfig(t testing.TB) chconn.Config {
	t.Helper()
	ctx := context.Background()
	cfg, err := chconn.ParseDSN(testDSN)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// queryUint64 runs a query returning one UInt64 (e.g. count()).
func queryUint64(t testing.TB, cfg chconn.Config, query string) uint64 {
	t.Helper()
	ctx := context.Background()
	client, err := cfg.DialNative(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var col proto.ColUInt64
	if err := client.Select(ctx, query, proto.Results{{Name: "v", Data: &col}}, func(int) error { return nil }, nil); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if col.Rows() != 1 {
		t.Fatalf("%s: %d rows", query, col.Rows())
	}
	return col.Row(0)
}

func countEnterprise(t testing.TB, cfg chconn.Config, ref string) uint64 {
	return queryUint64(t, cfg, "SELECT count() AS v FROM "+ActivityTable+" WHERE enterprise_ref = '"+ref+"'")
}

func TestGenerateInto(t *testing.T) {
	cfg := migratedConfig(t)
	const seed = 1001 // this test's own enterprises
	opts := GenerateOptions{N: 150_000, Seed: seed, Enterprises: 3, BlockRows: 40_000}
	var calls []int64
	stats, err := GenerateInto(context.Background(), cfg, opts, func(rows int64) { calls = append(calls, rows) })
	if err != nil {
		t.Fatal(err)
	}
	if stats.Rows != opts.N || len(calls) == 0 || calls[len(calls)-1] != opts.N {
		t.Fatalf("stats %+v, progress %v", stats, calls)
	}
	var total uint64
	for e := 0; e < 3; e++ {
		total += countEnterprise(t, cfg, EnterpriseRef(seed, e))
	}
	if total != uint64(opts.N) {
		t.Fatalf("%d rows in ClickHouse, want %d", total, opts.N)
	}
	// What ClickHouse stores is what Generate produced.
	stored := sortLines(selectNDJSON(t, cfg, EnterpriseRef(seed, 0), EnterpriseRef(seed, 1), EnterpriseRef(seed, 2)))
	if !bytes.Equal(stored, sortLines(generateNDJSON(t, opts))) {
		t.Fatal("stored rows differ from generated rows")
	}
}

// selectNDJSON reads the rows of some enterprises back as NDJSON, in storage
// order. (No ORDER BY: ch-go misreads the progress packets ClickHouse 18.16
// sends while a slow query computes, see engine/chconn/native.go.)
func selectNDJSON(t testing.TB, cfg chconn.Config, refs ...string) []byte {
	t.Helper()
	ctx := context.Background()
	client, err := cfg.DialNative(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var out []byte
	b := activity.NewBlock()
	err = client.Select(ctx, "SELECT "+strings.Join(activity.Columns[:], ", ")+" FROM "+ActivityTable+
		" WHERE enterprise_ref IN ('"+strings.Join(refs, "', '")+"')", b.Results(), func(int) error {
		for i := 0; i < b.Rows(); i++ {
			out = AppendNDJSON(out, b, i)
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sortLines sorts NDJSON lines by activity_id.
func sortLines(data []byte) []byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1]
	key := func(l []byte) []byte { i := bytes.Index(l, []byte(`"activity_id":"`)) + 15; return l[i : i+36] }
	slices.SortFunc(lines, func(a, b []byte) int { return bytes.Compare(key(a), key(b)) })
	return bytes.Join(lines, nil)
}

// TestGenerateIntoThroughput measures generate+insert of 1M rows. It runs
// only with EXPORTD_INGEST_THROUGHPUT=1 (it takes a few seconds and the
// number only means something on a quiet machine).
func TestGenerateIntoThroughput(t *testing.T) {
	if os.Getenv("EXPORTD_INGEST_THROUGHPUT") == "" {
		t.Skip("set EXPORTD_INGEST_THROUGHPUT=1 to measure generate+insert throughput")
	}
	cfg := migratedConfig(t)
	opts := GenerateOptions{N: 1_000_000, Seed: 2002, Enterprises: 10}
	stats, err := GenerateInto(context.Background(), cfg, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generate+insert: %d rows in %v = %.0f rows/s", stats.Rows, stats.Elapsed.Round(time.Millisecond),
		float64(stats.Rows)/stats.Elapsed.Seconds())
}
