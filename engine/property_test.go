package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

// awkward are the pieces random text is made of: everything CSV, shells,
// spreadsheets and Unicode make hard.
var awkward = []string{
	",", `"`, `""`, "\r", "\n", "\r\n", "\t", "=", "+", "-", "@", "'", " ", "\\", ";", "\x00", "\x7f", "\x1b[31m",
	"\ufeff", "\u2028", "\u2029", "\u200b", "\u202e", "é", "e\u0301", "漢字", "مرحبا", "🚀", "👩‍💻", "\U0010ffff", "\ufffd",
	"a", "Z", "0", "9", "=SUM(A1)", "=cmd|' /C calc'!A0", "NULL", "\\N", "null", "''", "<script>",
}

func randText(rng *rand.Rand) string {
	var b strings.Builder
	for n := rng.IntN(12); n > 0; n-- {
		b.WriteString(awkward[rng.IntN(len(awkward))])
	}
	return b.String()
}

func randUUID(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff,
		rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff)
}

var (
	two128 = new(big.Int).Lsh(big.NewInt(1), 128)
	mask64 = new(big.Int).SetUint64(^uint64(0))
)

// randDecimal draws a Decimal(38,18) value across its whole range and
// returns its raw form (two's complement, built with math/big) and its
// canonical text (built by string rules), both independent of the product.
func randDecimal(rng *rand.Rand) (proto.Decimal128, string) {
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	var intPart, fracPart string
	switch rng.IntN(6) {
	case 0: // the extremes
		intPart, fracPart = strings.Repeat("9", 20), strings.Repeat("9", 18)
	case 1: // the smallest step
		intPart, fracPart = "0", "000000000000000001"
	case 2:
		intPart, fracPart = "0", ""
	default:
		intPart, fracPart = digits(1+rng.IntN(20)), digits(rng.IntN(19))
	}
	neg := rng.IntN(2) == 0
	raw, _ := new(big.Int).SetString(intPart+fracPart+strings.Repeat("0", 18-len(fracPart)), 10)
	if neg {
		raw.Neg(raw)
	}
	two := new(big.Int).Set(raw)
	if two.Sign() < 0 {
		two.Add(two, two128)
	}
	d := proto.Decimal128{Low: new(big.Int).And(two, mask64).Uint64(), High: new(big.Int).Rsh(two, 64).Uint64()}

	i := strings.TrimLeft(intPart, "0")
	if i == "" {
		i = "0"
	}
	text := i
	if f := strings.TrimRight(fracPart, "0"); f != "" {
		text += "." + f
	}
	if neg && raw.Sign() != 0 {
		text = "-" + text
	}
	return d, text
}

// edges are instants around which timestamps are drawn besides the bulk:
// the epoch, a leap day, the 32-bit and unsigned 32-bit second limits, the
// last representable millisecond.
var edges = []int64{
	activity.MinTimestamp,
	time.Date(2000, 2, 29, 23, 59, 59, 999e6, time.UTC).UnixMilli(),
	time.Date(2038, 1, 19, 3, 14, 7, 999e6, time.UTC).UnixMilli(),
	time.Date(2106, 2, 7, 6, 28, 15, 999e6, time.UTC).UnixMilli(),
	activity.MaxTimestamp,
}

// randOccurredAt draws mostly from two months (each month is a partition:
// a spread across millennia would make thousands of parts) and sometimes
// right at an edge, within a second of it.
func randOccurredAt(rng *rand.Rand) int64 {
	if rng.IntN(10) == 0 {
		e := edges[rng.IntN(len(edges))]
		return min(max(e+rng.Int64N(2001)-1000, activity.MinTimestamp), activity.MaxTimestamp)
	}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	return base + rng.Int64N(61*86_400_000)
}

func isoMillis(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

// parseStrictCSV parses RFC 4180 exactly: CRLF record ends, CR and LF kept
// inside quoted fields, and a field quoted only when it must be.
func parseStrictCSV(t *testing.T, data []byte) [][]string {
	t.Helper()
	var out [][]string
	var rec []string
	for i := 0; i < len(data); {
		var f strings.Builder
		if data[i] == '"' {
			i++
			for {
				if i >= len(data) {
					t.Fatal("unterminated quoted field")
				}
				if data[i] == '"' {
					if i+1 < len(data) && data[i+1] == '"' {
						f.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				f.WriteByte(data[i])
				i++
			}
			if !strings.ContainsAny(f.String(), ",\"\r\n") {
				t.Fatalf("field %q quoted without need", f.String())
			}
		} else {
			for i < len(data) && data[i] != ',' && data[i] != '\r' && data[i] != '\n' {
				if data[i] == '"' {
					t.Fatalf("bare quote in unquoted field at byte %d", i)
				}
				f.WriteByte(data[i])
				i++
			}
		}
		rec = append(rec, f.String())
		switch {
		case i < len(data) && data[i] == ',':
			i++
		case i+1 < len(data) && data[i] == '\r' && data[i+1] == '\n':
			i += 2
			out, rec = append(out, rec), nil
		default:
			t.Fatalf("record not ended by CRLF at byte %d", i)
		}
	}
	if rec != nil {
		t.Fatal("last record not ended by CRLF")
	}
	return out
}

// Random activity rows (awkward text everywhere, decimals across the whole
// Decimal(38,18) range, timestamps with ties and at the edges of 1970-9999,
// nulls and non-nulls) go into a real ClickHouse, out through an export, and parse
// back to exactly the values computed independently here.
// EXPORTD_PROPERTY_SEED replays a run.
func TestPropertyRandomRowsSurviveExport(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EXPORTD_PROPERTY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("EXPORTD_PROPERTY_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ctx := context.Background()
	ent := "enterprises/" + randUUID(rng)
	other := "enterprises/" + randUUID(rng)
	guard := func(s string) string {
		if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
			return "'" + s
		}
		return s
	}
	const n = 2500
	var rows []activity.Row
	var want [][]string
	for i := 0; i < n; i++ {
		at := randOccurredAt(rng)
		if i > 0 && rng.IntN(8) == 0 {
			at = rows[rng.IntN(len(rows))].OccurredAt // ties are ordered by activity_id
		}
		amount, amountText := randDecimal(rng)
		r := activity.Row{OccurredAt: at, ActivityID: randUUID(rng), OperationID: randUUID(rng),
			Family: activity.Families[rng.IntN(len(activity.Families))], Status: activity.Statuses[rng.IntN(len(activity.Statuses))],
			EnterpriseRef: ent, AccountRef: []string{"client-accounts/", "master-accounts/"}[rng.IntN(2)] + randUUID(rng),
			CounterpartyRef: randText(rng), Currency: randText(rng), Amount: amount, FeeCurrency: randText(rng),
			InitiatedBy:   []string{"users/", "service-accounts/"}[rng.IntN(2)] + randUUID(rng),
			FailureReason: randText(rng), Reference: randText(rng)}
		if rng.IntN(2) == 0 {
			r.ClientRef = "clients/" + randUUID(rng)
		}
		feeText, settledText := "", ""
		if rng.IntN(2) == 0 {
			fee, text := randDecimal(rng)
			r.FeeAmount, feeText = &fee, text
		}
		if rng.IntN(2) == 0 {
			s := activity.MinTimestamp + rng.Int64N(activity.MaxTimestamp-activity.MinTimestamp+1)
			r.SettledAt, settledText = &s, isoMillis(s)
		}
		rows = append(rows, r)
		want = append(want, []string{isoMillis(r.OccurredAt), r.ActivityID, r.OperationID, r.Family, r.Status, r.EnterpriseRef,
			r.ClientRef, r.AccountRef, guard(r.CounterpartyRef), guard(r.Currency), amountText, guard(r.FeeCurrency), feeText,
			settledText, r.InitiatedBy, guard(r.FailureReason), guard(r.Reference)})
		if i%10 == 0 { // another tenant's row at the same instant must never appear
			leak := r
			leak.EnterpriseRef, leak.ActivityID, leak.Reference = other, randUUID(rng), "LEAK"
			rows = append(rows, leak)
		}
	}
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	for i := 0; i < len(rows); i += 1000 {
		insert(t, rows[i:min(i+1000, len(rows))])
	}
	sort.SliceStable(want, func(i, j int) bool {
		if want[i][0] != want[j][0] {
			return want[i][0] < want[j][0]
		}
		return want[i][1] < want[j][1]
	})

	compression := []string{engine.CompressionNone, engine.CompressionGzip, engine.CompressionZstd}[rng.IntN(3)]
	dir := t.TempDir()
	store, err := storage.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Small windows: the range is read as many ordered sub-queries.
	eng, err := engine.New(engine.Config{Reader: source.New(chCfg, source.Options{WindowRows: 50 + int64(rng.IntN(400))}),
		Records: records, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown(ctx)
	x, err := eng.Submit(ctx, &engine.Export{Format: "csv", Compression: compression, DateFrom: isoMillis(activity.MinTimestamp),
		DateTo: isoMillis(activity.MaxTimestamp), ScopeKind: engine.KindEnterprise, ScopeRef: ent, EnterpriseRef: ent, GeneratedBy: "users/x"})
	if err != nil {
		t.Fatal(err)
	}
	if x, err = eng.Wait(ctx, x.ID, time.Minute); err != nil || x.Status != engine.StatusReady {
		t.Fatalf("export: %+v %v", x, err)
	}
	obj, err := store.Open(ctx, x.ObjectName())
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, obj.Size())
	_, err = obj.ReadAt(raw, 0)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader = bytes.NewReader(raw)
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
	data, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	got := parseStrictCSV(t, data)
	if strings.Join(got[0], ",") != strings.Join(activity.Columns[:], ",") {
		t.Fatalf("header %q", got[0])
	}
	got = got[1:]
	if len(got) != len(want) || x.RowCount != int64(len(want)) {
		t.Fatalf("%s export: %d rows parsed, row_count %d, want %d", compression, len(got), x.RowCount, len(want))
	}
	bad := 0
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] && bad < 10 {
				bad++
				t.Errorf("row %d %s: got %q, want %q", i, activity.Columns[j], got[i][j], want[i][j])
			}
		}
	}
	t.Logf("%d rows, %s, %d bytes stored, %d CSV bytes", len(want), compression, len(raw), len(data))
}
