package jsonl

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.jsonl from the encoder's output")

func dec(t testing.TB, s string) proto.Decimal128 {
	t.Helper()
	d, err := activity.ParseDecimal(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic("BUG: " + s)
	}
	return t.UnixMilli()
}

// awkwardRows covers what JSON makes hard: quotes, backslashes, every
// control character, formula starts (never guarded here), Unicode, nulls.
func awkwardRows(t testing.TB) []activity.Row {
	base := activity.Row{OccurredAt: ms("2026-03-29T00:59:59.999Z"), ActivityID: "01970c3a-0000-7000-8000-000000000001",
		OperationID: "01970c3a-0000-7000-8000-000000000002", Family: "deposit", Status: "settled",
		EnterpriseRef: "enterprises/0b7c6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e", AccountRef: "client-accounts/2d9e8f3a-4b5c-4d6e-8f1a-2b3c4d5e6f70",
		Currency: "USDC", Amount: dec(t, "-250.5"), InitiatedBy: "users/4f1a0b5c-6d7e-4f80-8b3c-4d5e6f708192"}
	var ctl strings.Builder
	for c := range 0x20 {
		ctl.WriteByte(byte(c))
	}
	ctl.WriteString("\x7f")
	var rows []activity.Row
	r := base
	r.Reference, r.CounterpartyRef = `He said "hi", \ back\slash`, "=SUM(A1)"
	rows = append(rows, r)
	r = base
	r.OccurredAt = ms("2026-03-29T01:00:00Z")
	r.ClientRef, r.Reference, r.FailureReason = "clients/1c8d7e2f-3a4b-4c5d-9e0f-1a2b3c4d5e6f", ctl.String(), "-insufficient"
	fee, settled := dec(t, "0.000000000000000001"), ms("2026-10-25T00:59:59.999Z")
	r.FeeAmount, r.FeeCurrency, r.SettledAt = &fee, "@EUR", &settled
	rows = append(rows, r)
	r = base
	r.Amount, r.Reference, r.CounterpartyRef = dec(t, "99999999999999999999.999999999999999999"), "支付 💸 👩‍💻 \u2028\u2029 \ufeff é", "+1"
	settled2 := ms("2026-10-25T01:00:00Z")
	r.SettledAt = &settled2
	rows = append(rows, r)
	r = base
	r.Amount, r.Reference = dec(t, "-0.000"), "\tTAB\rCR"
	rows = append(rows, r)
	return rows
}

func blockOf(rows []activity.Row) *activity.Block {
	b := activity.NewBlock()
	for i := range rows {
		b.Append(&rows[i])
	}
	return b
}

// decodeLine parses one line with encoding/json, keeping key order.
func decodeLine(t testing.TB, line []byte) (keys []string, vals []*string) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(line))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("line %q: not an object (%v)", line, err)
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		var v *string
		if err := d.Decode(&v); err != nil {
			t.Fatalf("line %q key %v: %v", line, k, err)
		}
		keys, vals = append(keys, k.(string)), append(vals, v)
	}
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Token(); err != io.EOF {
		t.Fatalf("line %q: trailing data", line)
	}
	return keys, vals
}

func lines(t testing.TB, data []byte) [][]byte {
	t.Helper()
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatal("output must end with LF")
	}
	if bytes.Contains(data, []byte("\r")) {
		t.Fatal("raw CR in output")
	}
	ls := bytes.Split(data, []byte("\n"))
	return ls[:len(ls)-1]
}

func TestGolden(t *testing.T) {
	b := blockOf(awkwardRows(t))
	paris, _ := time.LoadLocation("Europe/Paris")
	got := AppendRows(nil, b, 0, b.Rows(), Layout{})
	cols := []int{activity.ColReference, activity.ColSettledAt, activity.ColAmount, activity.ColClientRef, activity.ColOccurredAt}
	got = AppendRows(got, b, 0, b.Rows(), Layout{Columns: cols, Location: paris})
	path := filepath.Join("testdata", "golden.jsonl")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from %s:\n got %s\nwant %s", path, got, want)
	}
	for _, l := range lines(t, want) {
		if !json.Valid(l) {
			t.Fatalf("invalid JSON line %q", l)
		}
	}
}

// reference renders column c of r as SPEC §7 says, independently: the
// CSV's text without guard, nil for an empty optional value.
func reference(r *activity.Row, c int, loc *time.Location) *string {
	ts := func(ms int64) string { return time.UnixMilli(ms).In(loc).Format("2006-01-02T15:04:05.000Z07:00") }
	var v string
	switch c {
	case activity.ColOccurredAt:
		v = ts(r.OccurredAt)
	case activity.ColActivityID:
		v = r.ActivityID
	case activity.ColOperationID:
		v = r.OperationID
	case activity.ColFamily:
		v = r.Family
	case activity.ColStatus:
		v = r.Status
	case activity.ColEnterpriseRef:
		v = r.EnterpriseRef
	case activity.ColClientRef:
		v = r.ClientRef
	case activity.ColAccountRef:
		v = r.AccountRef
	case activity.ColCounterpartyRef:
		v = r.CounterpartyRef
	case activity.ColCurrency:
		v = r.Currency
	case activity.ColAmount:
		v = string(activity.AppendDecimal(nil, r.Amount))
	case activity.ColFeeCurrency:
		v = r.FeeCurrency
	case activity.ColFeeAmount:
		if r.FeeAmount == nil {
			return nil
		}
		v = string(activity.AppendDecimal(nil, *r.FeeAmount))
	case activity.ColSettledAt:
		if r.SettledAt == nil {
			return nil
		}
		v = ts(*r.SettledAt)
	case activity.ColInitiatedBy:
		v = r.InitiatedBy
	case activity.ColFailureReason:
		v = r.FailureReason
	case activity.ColReference:
		v = r.Reference
	}
	if v == "" && activity.Optional[c] {
		return nil
	}
	// What encoding/json makes of the bytes (invalid UTF-8 → U+FFFD per byte).
	enc, _ := json.Marshal(v)
	var norm string
	_ = json.Unmarshal(enc, &norm)
	return &norm
}

func check(t testing.TB, rows []activity.Row, cols []int, loc *time.Location) {
	t.Helper()
	b := blockOf(rows)
	if cols != nil {
		b.ResetExcept(cols)
	}
	data := AppendRows(nil, b, 0, b.Rows(), Layout{Columns: cols, Location: loc})
	ls := lines(t, data)
	if len(ls) != len(rows) {
		t.Fatalf("%d lines for %d rows", len(ls), len(rows))
	}
	names := cols
	if names == nil {
		names = allColumns[:]
	}
	if loc == nil {
		loc = time.UTC
	}
	for i, l := range ls {
		keys, vals := decodeLine(t, l)
		if len(keys) != len(names) {
			t.Fatalf("line %d: keys %v", i, keys)
		}
		for j, c := range names {
			want := reference(&rows[i], c, loc)
			if keys[j] != activity.Columns[c] || (want == nil) != (vals[j] == nil) || want != nil && *want != *vals[j] {
				t.Fatalf("line %d %s: got %s, want %v (%q)", i, keys[j], l, want, derefOr(want))
			}
		}
	}
}

func derefOr(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

func TestAwkwardValuesParseBack(t *testing.T) {
	rows := awkwardRows(t)
	paris, _ := time.LoadLocation("Europe/Paris")
	check(t, rows, nil, nil)
	check(t, rows, nil, paris)
	check(t, rows, []int{activity.ColFeeAmount}, nil)
	check(t, rows, []int{activity.ColReference, activity.ColOccurredAt, activity.ColSettledAt}, paris)
}

// FuzzRoundTrip encodes fuzzed text and numbers and parses each line back
// with encoding/json: every line is one valid object whose keys are the
// selected columns in order and whose values are the reference rendering.
func FuzzRoundTrip(f *testing.F) {
	f.Add("plain", "", "=x", int64(0), uint64(1), uint64(0), uint8(0), uint16(0))
	f.Add("a\"b\\c\n\r\t\x00\x1f", "\xff\xfe", "é\u2028", int64(1775000000123), uint64(1<<63), uint64(7), uint8(3), uint16(0xffff))
	f.Add("", "", "", int64(-1), uint64(0), uint64(0), uint8(255), uint16(12345))
	zones := []string{"UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu"}
	f.Fuzz(func(t *testing.T, text, cp, cur string, at int64, hi, lo uint64, flags uint8, sel uint16) {
		at = activity.MinTimestamp + (at%(activity.MaxTimestamp-activity.MinTimestamp)+(activity.MaxTimestamp-activity.MinTimestamp))%(activity.MaxTimestamp-activity.MinTimestamp)
		hi &^= 1 << 63 >> 1 // keep |value| < 2^126, inside Decimal(38,18)'s range
		if hi>>63 == 1 {
			hi |= 1 << 62
		}
		r := activity.Row{OccurredAt: at, ActivityID: "01970c3a-0000-7000-8000-000000000001", OperationID: "01970c3a-0000-7000-8000-000000000002",
			Family: "conversion", Status: "failed", EnterpriseRef: "enterprises/0b7c6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e",
			AccountRef: "master-accounts/3e0f9a4b-5c6d-4e7f-9a2b-3c4d5e6f7081", Currency: cur, Amount: proto.Decimal128{High: hi, Low: lo},
			InitiatedBy: "service-accounts/5a2b1c6d-7e8f-4091-9c4d-5e6f708192a3", CounterpartyRef: cp, Reference: text, FailureReason: text + cp}
		if flags&1 != 0 {
			fee := proto.Decimal128{High: lo >> 2, Low: hi}
			r.FeeAmount, r.FeeCurrency = &fee, cp
		}
		if flags&2 != 0 {
			s := min(at+int64(flags)*3_600_000, activity.MaxTimestamp) // ingest bounds every timestamp
			r.SettledAt = &s
		}
		if flags&4 != 0 {
			r.ClientRef = "clients/1c8d7e2f-3a4b-4c5d-9e0f-1a2b3c4d5e6f"
		}
		var cols []int
		for c := range activity.NumColumns {
			if sel>>(c%16)&1 != 0 && (c < 16 || flags&8 != 0) {
				cols = append(cols, c)
			}
		}
		if len(cols) == 0 {
			cols = nil
		} else if flags&16 != 0 {
			slices.Reverse(cols)
		}
		loc, err := time.LoadLocation(zones[int(flags>>5)%len(zones)])
		if err != nil {
			t.Fatal(err)
		}
		check(t, []activity.Row{r, r}, cols, loc)
	})
}

func TestAppendRowsNoAlloc(t *testing.T) {
	b := benchBlock(1024)
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, l := range []Layout{{}, {Location: paris}, {Columns: []int{activity.ColOccurredAt, activity.ColAmount, activity.ColReference}}} {
		dst := AppendRows(nil, b, 0, b.Rows(), l)
		if n := testing.AllocsPerRun(50, func() { dst = AppendRows(dst[:0], b, 0, b.Rows(), l) }); n != 0 {
			t.Fatalf("layout %v: %v allocations per call", l.Columns, n)
		}
	}
}

// benchBlock is n realistic rows: short refs, amounts, mostly ASCII text.
func benchBlock(n int) *activity.Block {
	rng := rand.New(rand.NewPCG(1, 2))
	b := activity.NewBlock()
	refs := []string{"", "invoice 42", "Payout for order #1234, batch \"B\"", "Überweisung März", "INV-2026-04-0001"}
	for i := range n {
		amount := proto.Decimal128{Low: rng.Uint64() >> 4}
		r := activity.Row{OccurredAt: 1_775_000_000_000 + int64(i)*731, ActivityID: fmt.Sprintf("01970c3a-0000-7000-8000-%012x", i),
			OperationID: fmt.Sprintf("01970c3a-0000-7000-9000-%012x", i), Family: "deposit", Status: "settled",
			EnterpriseRef: "enterprises/0b7c6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e", AccountRef: "client-accounts/2d9e8f3a-4b5c-4d6e-8f1a-2b3c4d5e6f70",
			ClientRef: "clients/1c8d7e2f-3a4b-4c5d-9e0f-1a2b3c4d5e6f", CounterpartyRef: "Acme Corp", Currency: "USDC", Amount: amount,
			InitiatedBy: "users/4f1a0b5c-6d7e-4f80-8b3c-4d5e6f708192", Reference: refs[rng.IntN(len(refs))]}
		if i%2 == 0 {
			s := r.OccurredAt + 5000
			r.SettledAt = &s
		}
		b.Append(&r)
	}
	return b
}

func BenchmarkAppendRows(b *testing.B) {
	blk := benchBlock(1024)
	dst := AppendRows(nil, blk, 0, blk.Rows(), Layout{})
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendRows(dst[:0], blk, 0, blk.Rows(), Layout{})
	}
}
