package csv

import (
	"bytes"
	stdcsv "encoding/csv"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.csv from the encoder's output")

// Valid fixed values for the validated columns (ids, enums, refs).
const (
	entRef  = "enterprises/0b7c6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"
	cliRef  = "clients/1c8d7e2f-3a4b-4c5d-9e0f-1a2b3c4d5e6f"
	accRef  = "client-accounts/2d9e8f3a-4b5c-4d6e-8f1a-2b3c4d5e6f70"
	mAccRef = "master-accounts/3e0f9a4b-5c6d-4e7f-9a2b-3c4d5e6f7081"
	userRef = "users/4f1a0b5c-6d7e-4f80-8b3c-4d5e6f708192"
	svcRef  = "service-accounts/5a2b1c6d-7e8f-4091-9c4d-5e6f708192a3"
)

func mustDec(t testing.TB, s string) proto.Decimal128 {
	t.Helper()
	d, err := activity.ParseDecimal(s)
	if err != nil {
		t.Fatalf("ParseDecimal(%q): %v", s, err)
	}
	return d
}

func decPtr(t testing.TB, s string) *proto.Decimal128 {
	d := mustDec(t, s)
	return &d
}

func msAt(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic("BUG: bad test timestamp " + s)
	}
	return t.UnixMilli()
}

func msPtr(s string) *int64 {
	v := msAt(s)
	return &v
}

func uuidN(n int) string {
	const hex = "0123456789abcdef"
	b := []byte("01970c3a-0000-7000-8000-000000000000")
	for i := len(b) - 1; n > 0; i-- {
		b[i] = hex[n%16]
		n /= 16
	}
	return string(b)
}

// awkwardRows covers every awkward value of SPEC §3 at least once.
func awkwardRows(t testing.TB) []activity.Row {
	base := func(i int, occurred int64) activity.Row {
		return activity.Row{
			OccurredAt: occurred, ActivityID: uuidN(2 * i), OperationID: uuidN(2*i + 1),
			Family: "deposit", Status: "settled", EnterpriseRef: entRef, ClientRef: cliRef,
			AccountRef: accRef, Currency: "USDC", Amount: mustDec(t, "1"), InitiatedBy: userRef,
		}
	}
	var rows []activity.Row

	// 1. Epoch, plain values, negative amount stays unguarded, fee 1.
	r := base(1, 0)
	r.CounterpartyRef, r.Amount, r.FeeCurrency, r.FeeAmount = "Acme Corp", mustDec(t, "-250.5"), "USDC", decPtr(t, "1")
	r.Reference = "invoice 42"
	rows = append(rows, r)

	// 2. Commas and quotes; zero from "-0"; zero fee (not null).
	r = base(2, msAt("2026-04-01T10:15:30.123Z"))
	r.Family, r.Status, r.ClientRef, r.AccountRef = "withdrawal", "failed", "", mAccRef
	r.CounterpartyRef, r.Amount, r.FeeCurrency, r.FeeAmount = "Smith, John", mustDec(t, "-0"), "EUR", decPtr(t, "0")
	r.FailureReason, r.Reference = `insufficient "funds"`, `He said "hi", twice`
	rows = append(rows, r)

	// 3. CR, LF and CRLF inside values.
	r = base(3, msAt("2026-04-01T10:15:30.001Z"))
	r.CounterpartyRef, r.FailureReason, r.Reference = "x\r\ny", "a\rb", "line1\nline2"
	r.SettledAt = msPtr("2026-04-01T10:15:31.010Z")
	rows = append(rows, r)

	// 4. Unicode: accents, CJK, emoji (incl. ZWJ sequence), RTL text.
	r = base(4, msAt("2026-04-02T00:00:00Z"))
	r.Family, r.Status, r.InitiatedBy = "conversion", "executed", svcRef
	r.CounterpartyRef, r.Currency, r.Amount = "Société Générale", "€URO", mustDec(t, "1234.5678")
	r.FailureReason, r.Reference = "مرحبا بالعالم", "支付 💸 emoji 👩‍💻, ok"
	rows = append(rows, r)

	// 5. Leading '=' in each guarded column.
	r = base(5, msAt("2026-04-02T00:00:00.5Z"))
	r.CounterpartyRef, r.Currency, r.FeeCurrency = `=HYPERLINK("http://x")`, "=1+1", "=A1"
	r.FeeAmount, r.FailureReason, r.Reference = decPtr(t, "0.25"), "=cmd|' /C calc'!A0", "=SUM(A1:A9)"
	rows = append(rows, r)

	// 6. Leading '+' in each guarded column.
	r = base(6, msAt("2026-04-03T12:00:00Z"))
	r.CounterpartyRef, r.Currency, r.FeeCurrency = "+33 6 12 34 56 78", "+USD", "+EUR"
	r.FeeAmount, r.FailureReason, r.Reference = decPtr(t, "2"), "+", "+1,5"
	rows = append(rows, r)

	// 7. Leading '-' in each guarded column; negative amounts are not guarded.
	r = base(7, msAt("2026-04-03T12:00:00.010Z"))
	r.Family, r.Status = "internal_transfer", "pending_approval"
	r.CounterpartyRef, r.Currency, r.Amount, r.FeeCurrency = "-x", "-", mustDec(t, "-250.5"), "--"
	r.FeeAmount, r.FailureReason, r.Reference = decPtr(t, "-0.5"), "-1", "-250.5"
	rows = append(rows, r)

	// 8. Leading '@' in each guarded column.
	r = base(8, msAt("2026-04-04T23:59:59.999Z"))
	r.CounterpartyRef, r.Currency, r.FeeCurrency = "@SUM(A1:A2)", "@", "@EUR"
	r.FeeAmount, r.FailureReason, r.Reference = decPtr(t, "3"), "@err", "@user, hi"
	rows = append(rows, r)

	// 9. Leading TAB in each guarded column (TAB alone needs no quoting).
	r = base(9, msAt("2026-04-05T01:02:03.004Z"))
	r.CounterpartyRef, r.Currency, r.FeeCurrency = "\tindent", "\tUSD", "\t"
	r.FeeAmount, r.FailureReason, r.Reference = decPtr(t, "4"), "\t=x", "\t\"q\""
	rows = append(rows, r)

	// 10. Leading CR in each guarded column (guarded, then quoted for the CR).
	r = base(10, msAt("2026-04-06T00:00:00Z"))
	r.CounterpartyRef, r.Currency, r.FeeCurrency = "\r", "\rUSD", "\r\n"
	r.FeeAmount, r.FailureReason, r.Reference = decPtr(t, "5"), "\r\nx", "\r=x"
	rows = append(rows, r)

	// 11. Extremes: max amount, min fee, settled at the last representable millisecond.
	r = base(11, msAt("9999-12-31T23:59:59.999Z"))
	r.Family, r.Status = "on_ramp", "ledger_visible"
	r.Amount = mustDec(t, "99999999999999999999.999999999999999999")
	r.FeeCurrency, r.FeeAmount = "USDC", decPtr(t, "-99999999999999999999.999999999999999999")
	r.SettledAt, r.Reference = msPtr("9999-12-31T23:59:59.999Z"), "max"
	rows = append(rows, r)

	// 12. One ulp each way; settled at the epoch (a set zero is not null).
	r = base(12, msAt("2026-04-07T08:09:10.011Z"))
	r.Family, r.Status = "off_ramp", "partially_settled"
	r.Amount, r.FeeCurrency, r.FeeAmount = mustDec(t, "0.000000000000000001"), "USDC", decPtr(t, "-0.000000000000000001")
	r.SettledAt = msPtr("1970-01-01T00:00:00Z")
	rows = append(rows, r)

	// 13. Every optional value empty or null.
	r = base(13, msAt("2026-04-08T00:00:00Z"))
	r.ClientRef, r.AccountRef, r.Status = "", mAccRef, "requested"
	rows = append(rows, r)

	// 14. Guard characters not in first position, a leading space or quote,
	// a lone double quote: none guarded.
	r = base(14, msAt("2026-04-09T00:00:00Z"))
	r.Status = "cancelled"
	r.CounterpartyRef, r.Currency, r.FeeCurrency = " =x", "a-b", "'EUR"
	r.FeeAmount, r.FailureReason, r.Reference = decPtr(t, "100"), "x=y+z@w", `"`
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

func TestGolden(t *testing.T) {
	b := blockOf(awkwardRows(t))
	got := AppendRows(AppendHeader(nil), b, 0, b.Rows())

	path := filepath.Join("testdata", "golden.csv")
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
		gl, wl := bytes.SplitAfter(got, []byte("\r\n")), bytes.SplitAfter(want, []byte("\r\n"))
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if !bytes.Equal(gl[i], wl[i]) {
				t.Fatalf("output differs from %s at line %d:\n got %q\nwant %q", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("output differs from %s: %d lines, want %d", path, len(gl), len(wl))
	}

	// The golden file is valid strict CSV with 17 fields per record.
	r := stdcsv.NewReader(bytes.NewReader(want))
	r.FieldsPerRecord = len(activity.Columns)
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv rejects the golden file: %v", err)
	}
	if len(recs) != b.Rows()+1 {
		t.Fatalf("golden file has %d records, want %d", len(recs), b.Rows()+1)
	}
	if bytes.HasPrefix(want, []byte("\xef\xbb\xbf")) {
		t.Fatal("golden file starts with a byte order mark")
	}
}

func TestAppendHeader(t *testing.T) {
	want := strings.Join(activity.Columns[:], ",") + "\r\n"
	if got := string(AppendHeader(nil)); got != want {
		t.Fatalf("AppendHeader = %q, want %q", got, want)
	}
	if got := string(AppendHeader([]byte("x"))); got != "x"+want {
		t.Fatalf("AppendHeader does not append: %q", got)
	}
}

// TestAppendRowsRanges checks that encoding any split of the rows gives the
// same bytes as encoding them all at once, and that an empty range appends nothing.
func TestAppendRowsRanges(t *testing.T) {
	b := blockOf(awkwardRows(t))
	n := b.Rows()
	all := AppendRows(nil, b, 0, n)
	for k := 0; k <= n; k++ {
		got := AppendRows(AppendRows([]byte(nil), b, 0, k), b, k, n)
		if !bytes.Equal(got, all) {
			t.Fatalf("split at %d differs from one call", k)
		}
		if got := AppendRows([]byte("p"), b, k, k); string(got) != "p" {
			t.Fatalf("AppendRows(%d, %d) = %q, want nothing appended", k, k, got)
		}
	}
	// Every single-row encoding is one record ending with CRLF.
	for i := range n {
		one := AppendRows(nil, b, i, i+1)
		if !bytes.HasSuffix(one, []byte("\r\n")) {
			t.Fatalf("row %d does not end with CRLF: %q", i, one)
		}
	}
}

func TestFields(t *testing.T) {
	cases := []struct {
		in, field, text string // input, unguarded encoding, guarded-column encoding
	}{
		{"", "", ""},
		{"abc", "abc", "abc"},
		{"a,b", `"a,b"`, `"a,b"`},
		{`a"b`, `"a""b"`, `"a""b"`},
		{`"`, `""""`, `""""`},
		{`""`, `""""""`, `""""""`},
		{"a\rb", "\"a\rb\"", "\"a\rb\""},
		{"a\nb", "\"a\nb\"", "\"a\nb\""},
		{"a\r\nb", "\"a\r\nb\"", "\"a\r\nb\""},
		{"a\tb", "a\tb", "a\tb"},
		{"=x", "=x", "'=x"},
		{"+x", "+x", "'+x"},
		{"-250.5", "-250.5", "'-250.5"},
		{"@x", "@x", "'@x"},
		{"\tx", "\tx", "'\tx"},
		{"\r=x", "\"\r=x\"", "\"'\r=x\""},
		{`=a,"b"`, `"=a,""b"""`, `"'=a,""b"""`},
		{"'=x", "'=x", "'=x"},
		{" =x", " =x", " =x"},
		{"x=", "x=", "x="},
		{"a very long value without specials 0123456789", "a very long value without specials 0123456789", "a very long value without specials 0123456789"},
		{"a very long value with a comma, at byte 29 ok", `"a very long value with a comma, at byte 29 ok"`, `"a very long value with a comma, at byte 29 ok"`},
		{"日本語,€", `"日本語,€"`, `"日本語,€"`},
		{"\xff\xfe", "\xff\xfe", "\xff\xfe"},
	}
	for _, c := range cases {
		if got := string(appendField([]byte("<"), []byte(c.in))); got != "<"+c.field {
			t.Errorf("appendField(%q) = %q, want %q", c.in, got[1:], c.field)
		}
		if got := string(appendText([]byte("<"), []byte(c.in))); got != "<"+c.text {
			t.Errorf("appendText(%q) = %q, want %q", c.in, got[1:], c.text)
		}
	}
}

// TestNeedsQuote checks the word-at-a-time scan against the definition for
// every byte value at every position, around the 8-byte word boundaries.
func TestNeedsQuote(t *testing.T) {
	for n := 0; n <= 40; n++ {
		buf := bytes.Repeat([]byte{'a'}, n)
		if needsQuote(buf) {
			t.Fatalf("needsQuote(%q) = true", buf)
		}
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				buf[pos] = byte(c)
				want := c == ',' || c == '"' || c == '\r' || c == '\n'
				if got := needsQuote(buf); got != want {
					t.Fatalf("needsQuote(%q) = %v, want %v", buf, got, want)
				}
			}
			buf[pos] = 'a'
		}
	}
	// A zero byte next to a special one must not hide it (borrow propagation).
	for _, s := range []string{"\x00,", ",\x00", "\x00\x00\x00\x00\x00\x00\x00\"", "\x01\x00\r\x00\x00\x00\x00\x00\x00"} {
		if !needsQuote([]byte(s)) {
			t.Errorf("needsQuote(%q) = false", s)
		}
	}
}

func TestAppendRowsNoAlloc(t *testing.T) {
	rows := awkwardRows(t)
	b := activity.NewBlock()
	for range 100 {
		for i := range rows {
			b.Append(&rows[i])
		}
	}
	n := b.Rows()
	dst := AppendRows(nil, b, 0, n)
	allocs := testing.AllocsPerRun(50, func() {
		dst = AppendHeader(dst[:0])
		dst = AppendRows(dst, b, 0, n)
	})
	if allocs != 0 {
		t.Fatalf("AppendRows allocates %v times per call on a pre-sized dst", allocs)
	}
	rb := benchBlock(1024)
	dst = AppendRows(dst[:0], rb, 0, rb.Rows())
	allocs = testing.AllocsPerRun(50, func() { dst = AppendRows(dst[:0], rb, 0, rb.Rows()) })
	if allocs != 0 {
		t.Fatalf("AppendRows allocates %v times per call on a realistic block", allocs)
	}
}
