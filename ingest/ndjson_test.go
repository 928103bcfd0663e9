package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/exportd/exportd/engine/activity"
)

// omit removes a key from a test line.
const omit = "\x00omit"

// baseFields is a valid line: column name → raw JSON value, in column order.
var baseFields = [][2]string{
	{"occurred_at_utc", `"2026-04-01T10:15:30.123Z"`},
	{"activity_id", `"0b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`},
	{"operation_id", `"1b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`},
	{"family", `"withdrawal"`},
	{"status", `"settled"`},
	{"enterprise_ref", `"enterprises/2b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`},
	{"client_ref", `"clients/3b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`},
	{"account_ref", `"client-accounts/4b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`},
	{"counterparty_ref", `"0xabc"`},
	{"currency", `"USDC"`},
	{"amount", `"-250.5"`},
	{"fee_currency", `"USDC"`},
	{"fee_amount", `"1"`},
	{"settled_at_utc", `"2026-04-01T10:15:31Z"`},
	{"initiated_by", `"users/5b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`},
	{"failure_reason", `""`},
	{"reference", `"a,\"b\"\r\n€"`},
}

// lineWith returns the base line with some values replaced (raw JSON) or
// omitted; keys not in the base are appended.
func lineWith(over map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	add := func(k, v string) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(`"` + k + `":` + v)
	}
	seen := map[string]bool{}
	for _, kv := range baseFields {
		v := kv[1]
		if o, ok := over[kv[0]]; ok {
			v = o
			seen[kv[0]] = true
		}
		if v != omit {
			add(kv[0], v)
		}
	}
	for k, v := range over {
		if !seen[k] && v != omit {
			add(k, v)
		}
	}
	b.WriteByte('}')
	return b.String()
}

func TestParseLineValid(t *testing.T) {
	r, err := ParseLine([]byte(lineWith(nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 4, 1, 10, 15, 30, 123e6, time.UTC).UnixMilli()
	if r.OccurredAt != want {
		t.Errorf("occurred_at = %d, want %d", r.OccurredAt, want)
	}
	if got := string(activity.AppendDecimal(nil, r.Amount)); got != "-250.5" {
		t.Errorf("amount = %s", got)
	}
	if r.FeeAmount == nil || string(activity.AppendDecimal(nil, *r.FeeAmount)) != "1" {
		t.Errorf("fee_amount = %v", r.FeeAmount)
	}
	if r.SettledAt == nil || *r.SettledAt != want+877 {
		t.Errorf("settled_at = %v", r.SettledAt)
	}
	if r.Reference != "a,\"b\"\r\n€" || r.FailureReason != "" || r.Family != "withdrawal" || r.Status != "settled" {
		t.Errorf("text fields: %+v", r)
	}
	if r.ClientRef != "clients/3b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b" || r.InitiatedBy != "users/5b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b" {
		t.Errorf("refs: %+v", r)
	}
}

func TestParseLineOptionalEmpty(t *testing.T) {
	optional := []string{"client_ref", "counterparty_ref", "fee_currency", "fee_amount", "settled_at_utc", "failure_reason", "reference"}
	for _, form := range []string{omit, "null", `""`} {
		over := map[string]string{}
		for _, k := range optional {
			over[k] = form
		}
		r, err := ParseLine([]byte(lineWith(over)))
		if err != nil {
			t.Fatalf("optional as %q: %v", form, err)
		}
		if r.ClientRef != "" || r.CounterpartyRef != "" || r.FeeCurrency != "" || r.FeeAmount != nil ||
			r.SettledAt != nil || r.FailureReason != "" || r.Reference != "" {
			t.Errorf("optional as %q: not empty: %+v", form, r)
		}
	}
}

func TestParseLineNormalises(t *testing.T) {
	r, err := ParseLine([]byte(lineWith(map[string]string{
		"activity_id":     `"0B7F5E2A-1C3D-4E5F-8A9B-0C1D2E3F4A5B"`,
		"enterprise_ref":  `"enterprises/2B7F5E2A-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`,
		"account_ref":     `"master-accounts/4B7F5E2A-1C3D-4E5F-8A9B-0C1D2E3F4A5B"`,
		"initiated_by":    `"service-accounts/5B7F5E2A-1C3D-4E5F-8A9B-0C1D2E3F4A5B"`,
		"occurred_at_utc": `"2026-04-01T10:15:30+00:00"`,
		"amount":          `"+0012.500"`,
		"reference":       `"\u00e9\ud83d\ude80\/\t\b\f"`,
		"family":          "\t\"deposit\" ",
	})))
	if err != nil {
		t.Fatal(err)
	}
	if r.ActivityID != "0b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b" || r.EnterpriseRef != "enterprises/2b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b" ||
		r.AccountRef != "master-accounts/4b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b" ||
		r.InitiatedBy != "service-accounts/5b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b" {
		t.Errorf("not lowercased: %+v", r)
	}
	if got := string(activity.AppendDecimal(nil, r.Amount)); got != "12.5" {
		t.Errorf("amount = %s", got)
	}
	if r.Reference != "é🚀/\t\b\f" {
		t.Errorf("reference = %q", r.Reference)
	}
	if r.OccurredAt != time.Date(2026, 4, 1, 10, 15, 30, 0, time.UTC).UnixMilli() {
		t.Errorf("occurred_at = %d", r.OccurredAt)
	}
}

func TestParseLineErrors(t *testing.T) {
	long := func(n int) string { return `"` + strings.Repeat("x", n) + `"` }
	tests := []struct {
		name   string
		line   string
		field  string
		reason string // substring
	}{
		{"empty", ``, "", "empty line"},
		{"array", `[1]`, "", "not a JSON object"},
		{"string", `"x"`, "", "not a JSON object"},
		{"trailing data", lineWith(nil) + ` {}`, "", "trailing data"},
		{"two objects", lineWith(nil) + lineWith(nil), "", "trailing data"},
		{"unterminated", `{"amount":"1"`, "", "unterminated object"},
		{"missing colon", `{"amount" "1"}`, "amount", "expected ':'"},
		{"missing comma", `{"amount":"1" "currency":"x"}`, "", "expected ',' or '}'"},
		{"trailing comma", `{"amount":"1",}`, "", "expected a quoted key"},
		{"unquoted key", `{amount:"1"}`, "", "expected a quoted key"},
		{"unknown key", lineWith(map[string]string{"amount_usd": `"1"`}), "amount_usd", "unknown field"},
		{"unknown key case", lineWith(map[string]string{"Amount": `"1"`}), "Amount", "unknown field"},
		{"duplicate key", `{"amount":"1","amount":"2"}`, "amount", "duplicate key"},
		{"duplicate via escape", `{"amount":"1","\u0061mount":"2"}`, "amount", "duplicate key"},
		{"duplicate null", `{"client_ref":null,"client_ref":null}`, "client_ref", "duplicate key"},
		{"empty object", `{}`, "occurred_at_utc", "missing"},
		{"amount number", lineWith(map[string]string{"amount": `-250.5`}), "amount", "must be a JSON string, got number"},
		{"timestamp number", lineWith(map[string]string{"occurred_at_utc": `1775038530123`}), "occurred_at_utc", "got number"},
		{"family bool", lineWith(map[string]string{"family": `true`}), "family", "got boolean"},
		{"reference object", lineWith(map[string]string{"reference": `{}`}), "reference", "got object"},
		{"fee array", lineWith(map[string]string{"fee_amount": `["1"]`}), "fee_amount", "got array"},
		{"bad null", lineWith(map[string]string{"reference": `nul`}), "reference", "malformed null"},
		{"bad escape", lineWith(map[string]string{"reference": `"\x"`}), "reference", "invalid escape"},
		{"short unicode escape", lineWith(map[string]string{"reference": `"\u12"`}), "reference", "invalid escape"},
		{"lone high surrogate", lineWith(map[string]string{"reference": `"\ud83d"`}), "reference", "surrogate"},
		{"lone low surrogate", lineWith(map[string]string{"reference": `"\ude80"`}), "reference", "surrogate"},
		{"raw control char", lineWith(map[string]string{"reference": "\"a\nb\""}), "reference", "control character"},
		{"invalid utf8", lineWith(map[string]string{"reference": "\"a\xffb\""}), "reference", "invalid UTF-8"},
		{"invalid utf8 key", "{\"a\xff\":\"1\"}", "", "invalid UTF-8"},
		{"unterminated string", `{"amount":"1`, "amount", "unterminated string"},

		{"missing occurred_at", lineWith(map[string]string{"occurred_at_utc": omit}), "occurred_at_utc", "required field is missing"},
		{"null activity_id", lineWith(map[string]string{"activity_id": `null`}), "activity_id", "null or empty"},
		{"empty status", lineWith(map[string]string{"status": `""`}), "status", "null or empty"},
		{"missing currency", lineWith(map[string]string{"currency": omit}), "currency", "missing"},
		{"missing amount", lineWith(map[string]string{"amount": omit}), "amount", "missing"},
		{"missing initiated_by", lineWith(map[string]string{"initiated_by": omit}), "initiated_by", "missing"},
		{"missing account_ref", lineWith(map[string]string{"account_ref": omit}), "account_ref", "missing"},
		{"missing enterprise_ref", lineWith(map[string]string{"enterprise_ref": omit}), "enterprise_ref", "missing"},
		{"missing operation_id", lineWith(map[string]string{"operation_id": omit}), "operation_id", "missing"},
		{"missing family", lineWith(map[string]string{"family": omit}), "family", "missing"},

		{"ts 4 fraction digits", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01T10:15:30.1230Z"`}), "occurred_at_utc", "millisecond"},
		{"ts 9 fraction digits", lineWith(map[string]string{"settled_at_utc": `"2026-04-01T10:15:30.123456789Z"`}), "settled_at_utc", "millisecond"},
		{"ts offset", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01T12:15:30+02:00"`}), "occurred_at_utc", "UTC"},
		{"ts minus zero", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01T10:15:30-00:00"`}), "occurred_at_utc", "UTC"},
		{"ts no zone", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01T10:15:30"`}), "occurred_at_utc", "RFC 3339"},
		{"ts date only", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01"`}), "occurred_at_utc", "RFC 3339"},
		{"ts space", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01 10:15:30Z"`}), "occurred_at_utc", "RFC 3339"},
		{"ts comma fraction", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01T10:15:30,123Z"`}), "occurred_at_utc", "RFC 3339"},
		{"ts empty fraction", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01T10:15:30.Z"`}), "occurred_at_utc", "RFC 3339"},
		{"ts feb 30", lineWith(map[string]string{"occurred_at_utc": `"2026-02-30T10:15:30Z"`}), "occurred_at_utc", "RFC 3339"},
		{"ts feb 29 non leap", lineWith(map[string]string{"occurred_at_utc": `"2026-02-29T00:00:00Z"`}), "occurred_at_utc", "RFC 3339"},
		{"ts hour 24", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01T24:00:00Z"`}), "occurred_at_utc", "RFC 3339"},
		{"ts leap second", lineWith(map[string]string{"occurred_at_utc": `"2016-12-31T23:59:60Z"`}), "occurred_at_utc", "RFC 3339"},
		{"ts before 1970", lineWith(map[string]string{"occurred_at_utc": `"1969-12-31T23:59:59.999Z"`}), "occurred_at_utc", "outside"},
		{"ts lowercase z", lineWith(map[string]string{"occurred_at_utc": `"2026-04-01T10:15:30z"`}), "occurred_at_utc", "RFC 3339"},

		{"uuid short", lineWith(map[string]string{"activity_id": `"0b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5"`}), "activity_id", "not a UUID"},
		{"uuid braces", lineWith(map[string]string{"activity_id": `"{0b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b}"`}), "activity_id", "not a UUID"},
		{"uuid no dashes", lineWith(map[string]string{"operation_id": `"0b7f5e2a1c3d4e5f8a9b0c1d2e3f4a5b"`}), "operation_id", "not a UUID"},
		{"uuid non hex", lineWith(map[string]string{"operation_id": `"0b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5g"`}), "operation_id", "not a UUID"},
		{"family unknown", lineWith(map[string]string{"family": `"Deposit"`}), "family", "must be one of deposit"},
		{"status unknown", lineWith(map[string]string{"status": `"done"`}), "status", "must be one of requested"},
		{"enterprise prefix", lineWith(map[string]string{"enterprise_ref": `"clients/2b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`}), "enterprise_ref", "enterprises/<uuid>"},
		{"enterprise bad uuid", lineWith(map[string]string{"enterprise_ref": `"enterprises/acme"`}), "enterprise_ref", "enterprises/<uuid>"},
		{"client prefix", lineWith(map[string]string{"client_ref": `"client/3b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`}), "client_ref", "clients/<uuid>"},
		{"account prefix", lineWith(map[string]string{"account_ref": `"accounts/4b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`}), "account_ref", "client-accounts/<uuid>"},
		{"initiated_by prefix", lineWith(map[string]string{"initiated_by": `"enterprises/5b7f5e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"`}), "initiated_by", "users/<uuid>"},
		{"counterparty too long", lineWith(map[string]string{"counterparty_ref": long(4<<10 + 1)}), "counterparty_ref", "longer than 4096 bytes"},
		{"currency too long", lineWith(map[string]string{"currency": long(65)}), "currency", "longer than 64 characters"},
		{"fee currency too long", lineWith(map[string]string{"fee_currency": `"` + strings.Repeat("€", 65) + `"`}), "fee_currency", "longer than 64 characters"},
		{"amount 19 fraction digits", lineWith(map[string]string{"amount": `"0.0000000000000000001"`}), "amount", "18 fractional"},
		{"amount 21 integer digits", lineWith(map[string]string{"amount": `"100000000000000000000"`}), "amount", "20 integer"},
		{"amount exponent", lineWith(map[string]string{"amount": `"1e5"`}), "amount", "exact decimal"},
		{"amount float text", lineWith(map[string]string{"amount": `"NaN"`}), "amount", "exact decimal"},
		{"amount spaces", lineWith(map[string]string{"amount": `" 1"`}), "amount", "exact decimal"},
		{"amount trailing dot", lineWith(map[string]string{"amount": `"1."`}), "amount", "exact decimal"},
		{"fee bad", lineWith(map[string]string{"fee_amount": `"1,5"`}), "fee_amount", "exact decimal"},
		{"failure too long", lineWith(map[string]string{"failure_reason": long(64<<10 + 1)}), "failure_reason", "longer than 65536 bytes"},
		{"reference too long", lineWith(map[string]string{"reference": long(256<<10 + 1)}), "reference", "longer than 262144 bytes"},
		{"reference too long in bytes", lineWith(map[string]string{"reference": `"` + strings.Repeat("€", 256<<10/3+1) + `"`}), "reference", "longer than 262144 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLine([]byte(tt.line))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Reason, tt.reason) {
				t.Errorf("got field %q reason %q, want field %q reason containing %q", fe.Field, fe.Reason, tt.field, tt.reason)
			}
		})
	}
}

func TestParseLineLimitsInclusive(t *testing.T) {
	over := map[string]string{
		"counterparty_ref": `"` + strings.Repeat("c", 4<<10) + `"`,
		"failure_reason":   `"` + strings.Repeat("f", 64<<10) + `"`,
		"reference":        `"` + strings.Repeat("r", 256<<10) + `"`,
		"currency":         `"` + strings.Repeat("€", 64) + `"`,
		"fee_currency":     `"` + strings.Repeat(`\t`, 64) + `"`,
		"amount":           `"-99999999999999999999.999999999999999999"`,
		"fee_amount":       `"0.000000000000000001"`,
		"occurred_at_utc":  `"9999-12-31T23:59:59.999Z"`,
		"settled_at_utc":   `"1970-01-01T00:00:00Z"`,
	}
	if _, err := ParseLine([]byte(lineWith(over))); err != nil {
		t.Fatal(err)
	}
}

func TestFieldErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		err  FieldError
		want string
	}{
		{FieldError{Field: "amount", Reason: "bad"}, "field amount: bad"},
		{FieldError{Field: "Amount x", Reason: "unknown field"}, `field "Amount x": unknown field`},
		{FieldError{Reason: "not a JSON object"}, "not a JSON object"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%q, want %q", got, tt.want)
		}
	}
}

// TestParseTimestampAgrees checks the hand-written timestamp parser against
// activity.ParseTimestampMillis, which the API uses.
func TestParseTimestampAgrees(t *testing.T) {
	inputs := []string{
		"2026-04-01T10:15:30Z", "2026-04-01T10:15:30.1Z", "2026-04-01T10:15:30.12Z", "2026-04-01T10:15:30.123Z",
		"2026-04-01T10:15:30.123+00:00", "2024-02-29T23:59:59.999Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2100-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-04-31T00:00:00Z",
		"2026-04-01T23:60:00Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.001Z", "9999-12-31T23:59:59.999Z",
		"2026-4-01T10:15:30Z", "2026-04-01t10:15:30Z", "2026-04-01T10:15:30+00:00 ", "2026-04-01T10:15:30.0Z",
		"0000-01-01T00:00:00Z", "2026-04-01T10:15:30.Z", "+026-04-01T10:15:30Z",
	}
	for _, s := range inputs {
		got, reason := parseTimestamp([]byte(s))
		want, err := activity.ParseTimestampMillis(s)
		if err == nil && (want < activity.MinTimestamp || want > activity.MaxTimestamp) {
			err = errors.New("out of range")
		}
		if (reason == "") != (err == nil) || err == nil && got != want {
			t.Errorf("%q: got %d %q, activity says %d %v", s, got, reason, want, err)
		}
	}
	// Every millisecond-ish instant across the range round-trips.
	for ms := int64(0); ms < activity.MaxTimestamp; ms += 86_399_999_937 {
		s := string(activity.AppendTimestamp(nil, ms))
		if got, reason := parseTimestamp([]byte(s)); reason != "" || got != ms {
			t.Fatalf("%s: got %d %q, want %d", s, got, reason, ms)
		}
	}
}

var strictTimestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|\+00:00)$`)

func FuzzParseTimestamp(f *testing.F) {
	f.Add("2026-04-01T10:15:30.123Z")
	f.Add("2024-02-29T23:59:59+00:00")
	f.Fuzz(func(t *testing.T, s string) {
		got, reason := parseTimestamp([]byte(s))
		want, err := activity.ParseTimestampMillis(s)
		if reason == "" && (err != nil || got != want) {
			t.Fatalf("%q: accepted as %d, activity says %d %v", s, got, want, err)
		}
		// The hand parser is stricter only about the fraction syntax.
		if reason != "" && err == nil && want >= activity.MinTimestamp && strictTimestamp.MatchString(s) {
			t.Fatalf("%q: rejected (%s), activity accepts %d", s, reason, want)
		}
	})
}

// TestParseLineMatchesEncodingJSON cross-checks string decoding with
// encoding/json on valid inputs.
func TestParseLineMatchesEncodingJSON(t *testing.T) {
	for _, raw := range []string{
		`"plain"`, `"\"quoted\" \\ \/ \b\f\n\r\t"`, `"\u0000\u001f\u007f\u00e9\u4e2d\uD834\uDD1E"`,
		`"emoji 🚀 RTL עברית CJK 中文"`, `"ends with backslash \\"`,
	} {
		r, err := ParseLine([]byte(lineWith(map[string]string{"reference": raw})))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var want string
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		if r.Reference != want {
			t.Errorf("%s: got %q, want %q", raw, r.Reference, want)
		}
	}
}

// rowString prints a row with its optional values dereferenced.
func rowString(r activity.Row) string {
	fee, settled := "null", "null"
	if r.FeeAmount != nil {
		fee = string(activity.AppendDecimal(nil, *r.FeeAmount))
	}
	if r.SettledAt != nil {
		settled = fmt.Sprint(*r.SettledAt)
	}
	r.FeeAmount, r.SettledAt = nil, nil
	return fmt.Sprintf("%+v fee=%s settled=%s", r, fee, settled)
}

func TestAppendNDJSONRoundTrip(t *testing.T) {
	r, err := ParseLine([]byte(lineWith(map[string]string{
		"reference":      `"ctl \u0001\u001f \" \\ \n\r\t 🚀"`,
		"failure_reason": `"=1+1"`,
	})))
	if err != nil {
		t.Fatal(err)
	}
	b := activity.NewBlock()
	b.Append(&r)
	line := AppendNDJSON(nil, b, 0)
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	if !json.Valid(line) {
		t.Fatalf("invalid JSON: %s", line)
	}
	r2, err := ParseLine(line[:len(line)-1])
	if err != nil {
		t.Fatalf("re-parse %s: %v", line, err)
	}
	if rowString(r) != rowString(r2) {
		t.Errorf("round trip:\n%+v\n%+v", r, r2)
	}
}

// FuzzParseLine: no panics, and whatever is accepted survives
// AppendNDJSON → ParseLine unchanged.
func FuzzParseLine(f *testing.F) {
	f.Add(lineWith(nil))
	f.Add(lineWith(map[string]string{"reference": `"\ud83d\ude80,\"x\"\n"`, "fee_amount": omit}))
	f.Add(`{"amount":"1","amount":"2"}`)
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseLine([]byte(line))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			return
		}
		b := activity.NewBlock()
		b.Append(&r)
		out := AppendNDJSON(nil, b, 0)
		r2, err := ParseLine(out[:len(out)-1])
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		b2 := activity.NewBlock()
		b2.Append(&r2)
		if out2 := AppendNDJSON(nil, b2, 0); !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}

// TestParserAppendNoAllocs: the loader's per-line path (parse + append to a
// block) does not allocate once buffers have grown.
func TestParserAppendNoAllocs(t *testing.T) {
	line := []byte(lineWith(nil))
	var p lineParser
	b := activity.NewBlock()
	allocs := testing.AllocsPerRun(1000, func() {
		if b.Rows() >= 1024 {
			b.Reset()
		}
		if err := p.parse(line); err != nil {
			t.Fatal(err)
		}
		p.appendTo(b)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per line, want 0", allocs)
	}
}

func ExampleParseLine() {
	_, err := ParseLine([]byte(`{"occurred_at_utc":"2026-04-01T10:15:30.1234Z"}`))
	fmt.Println(err)
	// Output: field occurred_at_utc: not an RFC 3339 UTC timestamp (Z or +00:00) with at most millisecond precision
}
