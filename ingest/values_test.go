package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/exportd/exportd/engine/activity"
)

// AwkwardTexts are text values SPEC §3/§6 allows in every text column and
// that a careless loader would refuse or alter: control characters (each
// C0 control, NUL included), line breaks anywhere, formula prefixes,
// whitespace-only values, separators and non-BMP characters.
func awkwardTexts() []string {
	var c0 strings.Builder
	for c := byte(1); c < 0x20; c++ {
		c0.WriteByte(c)
	}
	return []string{
		"a\tb", "a\rb", "a\nb", "a\r\nb", "\r\n", "\r", "\n", "\t",
		"\tleading tab", "\rleading CR", "\nleading LF", "trailing CRLF\r\n", "trailing CR\r",
		c0.String(), "x" + c0.String() + "y", "nul\x00inside", "\x00",
		"\x7f DEL, C1 \u0080\u0085\u009f", "\u2028line sep\u2029", "\ufeffBOM inside",
		"=1+1", "+41 44", "-5", "@desk", " ", "  padded  ",
		`"quoted", comma`, "🚀 עברית 中文",
	}
}

// jsonString is v as a JSON string literal (control characters escaped).
func jsonString(t testing.TB, v string) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestParseLineAcceptsAnyText: every text column takes every awkward value
// and keeps it byte for byte (SPEC §6: any valid UTF-8, controls included).
func TestParseLineAcceptsAnyText(t *testing.T) {
	fields := map[string]func(activity.Row) string{
		"counterparty_ref": func(r activity.Row) string { return r.CounterpartyRef },
		"currency":         func(r activity.Row) string { return r.Currency },
		"fee_currency":     func(r activity.Row) string { return r.FeeCurrency },
		"failure_reason":   func(r activity.Row) string { return r.FailureReason },
		"reference":        func(r activity.Row) string { return r.Reference },
	}
	for field, get := range fields {
		for _, v := range awkwardTexts() {
			r, err := ParseLine([]byte(lineWith(map[string]string{field: jsonString(t, v)})))
			if err != nil {
				t.Errorf("%s = %q refused: %v", field, v, err)
				continue
			}
			if got := get(r); got != v {
				t.Errorf("%s = %q stored as %q", field, v, got)
			}
		}
	}
}

// TestParseLineFeeColumnsIndependent: fee_amount without fee_currency and
// fee_currency without fee_amount are both stored as given.
func TestParseLineFeeColumnsIndependent(t *testing.T) {
	for _, tt := range []struct {
		name, amount, currency string // raw JSON or omit
		wantFee, wantCur       string // wantFee "" = no fee
	}{
		{"amount, currency absent", `"1.50"`, omit, "1.5", ""},
		{"amount, currency null", `"-0.000000000000000001"`, `null`, "-0.000000000000000001", ""},
		{"amount, currency empty", `"0"`, `""`, "0", ""},
		{"currency, amount absent", omit, `"EUR"`, "", "EUR"},
		{"currency, amount null", `null`, `"\tEUR"`, "", "\tEUR"},
		{"both empty", `""`, `""`, "", ""},
	} {
		r, err := ParseLine([]byte(lineWith(map[string]string{"fee_amount": tt.amount, "fee_currency": tt.currency})))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		fee := ""
		if r.FeeAmount != nil {
			fee = string(activity.AppendDecimal(nil, *r.FeeAmount))
		}
		if fee != tt.wantFee || r.FeeCurrency != tt.wantCur {
			t.Errorf("%s: fee %q currency %q, want %q %q", tt.name, fee, r.FeeCurrency, tt.wantFee, tt.wantCur)
		}
	}
}

// TestSpecMinimumCapsFitALine: values at SPEC §6's minimum caps written
// entirely as \u escapes are accepted and their line stays within
// MaxLineBytes, so Load takes them too.
func TestSpecMinimumCapsFitALine(t *testing.T) {
	esc := func(n int) string { return `"` + strings.Repeat(`\u0001`, n) + `"` }
	line := lineWith(map[string]string{
		"counterparty_ref": esc(1 << 10),
		"currency":         esc(16),
		"fee_currency":     esc(16),
		"failure_reason":   esc(64 << 10),
		"reference":        esc(64 << 10),
	})
	if len(line) > MaxLineBytes {
		t.Fatalf("line of %d bytes, over MaxLineBytes", len(line))
	}
	r, err := ParseLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Reference) != 64<<10 || len(r.CounterpartyRef) != 1<<10 || len(r.Currency) != 16 {
		t.Errorf("lengths %d %d %d", len(r.Reference), len(r.CounterpartyRef), len(r.Currency))
	}
}

// TestLoadAwkwardValuesStoredExactly loads rows holding every awkward value in
// every text column (and fees without currency) into ClickHouse and reads
// them back unchanged.
func TestLoadAwkwardValuesStoredExactly(t *testing.T) {
	cfg := migratedConfig(t)
	ent := "enterprises/" + uuid.NewString() // this run's own rows
	var input bytes.Buffer
	want := activity.NewBlock()
	for i, v := range awkwardTexts() {
		cur := v
		if i%3 == 0 {
			cur = "USDC" // some rows keep a plain currency
		}
		over := map[string]string{
			"activity_id":      fmt.Sprintf(`"00000000-0000-4000-8000-%012x"`, i), // sortLines' key
			"enterprise_ref":   `"` + ent + `"`,
			"counterparty_ref": jsonString(t, v),
			"currency":         jsonString(t, cur),
			"fee_currency":     jsonString(t, v),
			"failure_reason":   jsonString(t, v),
			"reference":        jsonString(t, v),
		}
		if i%2 == 0 {
			over["fee_currency"] = omit // a fee without its currency
		}
		if i%5 == 0 {
			over["fee_amount"] = omit // and a currency without its fee
		}
		line := lineWith(over)
		r, err := ParseLine([]byte(line))
		if err != nil {
			t.Fatalf("value %q: %v", v, err)
		}
		want.Append(&r)
		input.WriteString(line + "\n")
	}
	if _, err := Load(context.Background(), cfg, &input, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	var wantNDJSON []byte
	for i := 0; i < want.Rows(); i++ {
		wantNDJSON = AppendNDJSON(wantNDJSON, want, i)
	}
	got := sortLines(selectNDJSON(t, cfg, ent))
	if !bytes.Equal(got, sortLines(wantNDJSON)) {
		t.Fatalf("stored rows differ:\n got  %s\n want %s", got, sortLines(wantNDJSON))
	}
}
