package server

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
)

const (
	tEnt    = "enterprises/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b"
	tClient = "clients/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b"
	tAcct   = "client-accounts/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b"
)

const validBody = `{"format": "csv",
 "filter_criteria": {"date_from_utc": "2026-04-01T00:00:00Z", "date_to_utc": "2026-04-30T23:59:59Z"},
 "requested_scope": {"kind": "enterprise", "ref": "` + tEnt + `"},
 "compression": "none"}`

func TestDecodeCreateValid(t *testing.T) {
	r, e := decodeCreate([]byte(validBody))
	if e != nil {
		t.Fatal(e)
	}
	if r.Format != "csv" || r.Compression != "none" || r.Kind != "enterprise" || r.Ref != tEnt ||
		r.DateFrom != "2026-04-01T00:00:00Z" || r.DateTo != "2026-04-30T23:59:59Z" {
		t.Fatalf("got %+v", r)
	}
	// Defaults, offsets and fractions normalise; the hash follows.
	r2, e := decodeCreate([]byte(`{"requested_scope":{"ref":"` + tEnt + `","kind":"enterprise"},"format":"csv",
		"filter_criteria":{"date_to_utc":"2026-04-30T23:59:59.000+00:00","date_from_utc":"2026-04-01T00:00:00Z"}}`))
	if e != nil {
		t.Fatal(e)
	}
	if r2.DateTo != "2026-04-30T23:59:59Z" || r2.hash() != r.hash() {
		t.Fatalf("normalised %+v, hashes %s %s", r2, r2.hash(), r.hash())
	}
	r3, _ := decodeCreate([]byte(strings.Replace(validBody, `"none"`, `"gzip"`, 1)))
	if r3 == nil || r3.hash() == r.hash() {
		t.Fatal("different compression must hash differently")
	}
	r4, e := decodeCreate([]byte(`{"format":"csv","filter_criteria":{"date_from_utc":"2026-04-01T00:00:00.1234Z","date_to_utc":"2026-04-01T00:00:00.1234Z"},"requested_scope":{"kind":"client_account","ref":"` + tAcct + `"}}`))
	if e != nil || r4.DateFrom != "2026-04-01T00:00:00.1234Z" {
		t.Fatalf("fractional: %+v %v", r4, e)
	}
}

func TestDecodeCreateOptions(t *testing.T) {
	body := func(format, extra, filters string) []byte {
		return []byte(`{"format": "` + format + `", "filter_criteria": {` + filters + `"date_from_utc": "2026-04-01T00:00:00Z",
 "date_to_utc": "2026-04-30T23:59:59Z"}, "requested_scope": {"kind": "enterprise", "ref": "` + tEnt + `"}` + extra + `}`)
	}
	decode := func(b []byte) *createRequest {
		t.Helper()
		r, e := decodeCreate(b)
		if e != nil {
			t.Fatalf("%s: %v", b, e)
		}
		return r
	}
	base := decode(body("csv", "", ""))
	if !slices.Equal(base.Options.ColumnNames(), activity.Columns[:]) || base.Options.ZoneName() != "UTC" ||
		base.Options.CSVBOM || base.Options.Families != nil || base.Options.Columns != nil {
		t.Fatalf("defaults: %+v", base.Options)
	}
	full := decode(body("csv", `, "columns": ["reference", "amount", "occurred_at_utc"], "time_zone": "Europe/Paris", "csv_bom": true`,
		`"families": ["deposit", "on_ramp"], "statuses": ["settled"], "currencies": ["USDC", "EUR"], `))
	want := engine.Options{Columns: []string{"reference", "amount", "occurred_at_utc"}, Families: []string{"deposit", "on_ramp"},
		Statuses: []string{"settled"}, Currencies: []string{"USDC", "EUR"}, TimeZone: "Europe/Paris", CSVBOM: true}
	if !equalOptions(full.Options, want) {
		t.Fatalf("decoded %+v, want %+v", full.Options, want)
	}
	// Explicit defaults are the same request; any non-default is another.
	same := []string{
		`, "columns": [` + allColumnsJSON + `]`,
		`, "time_zone": "UTC"`,
		`, "csv_bom": false`,
		`, "columns": [` + allColumnsJSON + `], "time_zone": "UTC", "csv_bom": false`,
	}
	for _, extra := range same {
		if r := decode(body("csv", extra, "")); r.hash() != base.hash() {
			t.Errorf("%s: hash differs from the defaults", extra)
		}
	}
	seen := map[string]string{base.hash(): "base", full.hash(): "full"}
	for _, c := range []struct{ format, extra, filters string }{
		{"csv", `, "columns": ["amount"]`, ""},
		{"csv", `, "columns": ["currency"]`, ""},
		{"csv", `, "columns": ["amount", "currency"]`, ""},
		{"csv", `, "columns": ["currency", "amount"]`, ""},
		{"csv", `, "time_zone": "Europe/Paris"`, ""},
		{"csv", `, "time_zone": "Etc/UTC"`, ""},
		{"csv", `, "csv_bom": true`, ""},
		{"csv", "", `"families": ["deposit"], `},
		{"csv", "", `"statuses": ["settled"], `},
		{"csv", "", `"currencies": ["deposit"], `},
		{"csv", "", `"families": ["deposit", "on_ramp"], `},
		{"csv", "", `"families": ["on_ramp", "deposit"], `},
		{"jsonl", "", ""},
		{"parquet", "", ""},
		{"parquet", `, "time_zone": "UTC"`, ""}, // the default zone: the same request as parquet alone
	} {
		r := decode(body(c.format, c.extra, c.filters))
		h := r.hash()
		if c.format == "parquet" && c.extra != "" {
			if prev, ok := seen[h]; !ok || prev != "parquet" {
				t.Errorf("parquet with time_zone UTC must hash as parquet alone, got %q", prev)
			}
			continue
		}
		name := c.format + c.extra + c.filters
		if c.format == "parquet" {
			name = "parquet"
		}
		if prev, ok := seen[h]; ok {
			t.Errorf("%s hashes as %s", name, prev)
		}
		seen[h] = name
	}
}

func equalOptions(a, b engine.Options) bool {
	return slices.Equal(a.Columns, b.Columns) && slices.Equal(a.Families, b.Families) && slices.Equal(a.Statuses, b.Statuses) &&
		slices.Equal(a.Currencies, b.Currencies) && a.TimeZone == b.TimeZone && a.CSVBOM == b.CSVBOM
}

// createErrorCase is a create body and the 400 reason and field it must get.
type createErrorCase struct {
	name, body, reason, field string
}

// createErrorCases cover every 400 reason of a create body; the decoder
// test and the HTTP test both run them.
func createErrorCases() []createErrorCase {
	repl := func(old, new string) string {
		if !strings.Contains(validBody, old) {
			panic("test bug: " + old + " not in body")
		}
		return strings.Replace(validBody, old, new, 1)
	}
	return []createErrorCase{
		{"empty", ``, reasonInvalidJSON, ""},
		{"not json", `format=csv`, reasonInvalidJSON, ""},
		{"truncated", validBody[:40], reasonInvalidJSON, ""},
		{"trailing garbage", validBody + `x`, reasonInvalidJSON, ""},
		{"two values", validBody + `{}`, reasonInvalidJSON, ""},
		{"array", `[` + validBody + `]`, reasonInvalidJSON, ""},
		{"string", `"csv"`, reasonInvalidJSON, ""},
		{"null", `null`, reasonInvalidJSON, ""},
		{"bad utf8", repl(`"csv"`, "\"cs\xff\""), reasonInvalidJSON, ""},
		{"bom", "\ufeff" + validBody, reasonInvalidJSON, ""},
		{"duplicate top", repl(`"format": "csv",`, `"format": "csv", "format": "csv",`), reasonInvalidJSON, ""},
		{"duplicate nested", repl(`"kind": "enterprise",`, `"kind": "enterprise", "kind": "client",`), reasonInvalidJSON, ""},
		{"duplicate in unknown", repl(`"format": "csv",`, `"format": "csv", "x": {"a":1,"a":2},`), reasonInvalidJSON, ""},
		{"too deep", repl(`"compression": "none"`, `"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)), reasonInvalidJSON, ""},
		{"too large", repl(`"none"`, `"`+strings.Repeat("a", 70<<10)+`"`), reasonBodyTooLarge, ""},
		{"unknown top", repl(`"format": "csv",`, `"format": "csv", "Format": "csv",`), reasonUnknownField, "Format"},
		{"unknown nested", repl(`"date_to_utc"`, `"date_until_utc"`), reasonUnknownField, "filter_criteria.date_until_utc"},
		{"unknown in scope", repl(`"kind": "enterprise",`, `"kind": "enterprise", "extent": "subtree",`), reasonUnknownField, "requested_scope.extent"},
		{"missing format", repl(`"format": "csv",`, ``), reasonMissingField, "format"},
		{"missing filter", `{"format":"csv","requested_scope":{"kind":"enterprise","ref":"` + tEnt + `"}}`, reasonMissingField, "filter_criteria"},
		{"missing from", repl(`"date_from_utc": "2026-04-01T00:00:00Z", `, ``), reasonMissingField, "filter_criteria.date_from_utc"},
		{"missing to", repl(`, "date_to_utc": "2026-04-30T23:59:59Z"`, ``), reasonMissingField, "filter_criteria.date_to_utc"},
		{"missing scope", `{"format":"csv","filter_criteria":{"date_from_utc":"2026-04-01T00:00:00Z","date_to_utc":"2026-04-01T00:00:00Z"}}`, reasonMissingField, "requested_scope"},
		{"missing kind", repl(`"kind": "enterprise", `, ``), reasonMissingField, "requested_scope.kind"},
		{"missing ref", repl(`, "ref": "`+tEnt+`"`, ``), reasonMissingField, "requested_scope.ref"},
		{"format number", repl(`"format": "csv"`, `"format": 1`), reasonInvalidValue, "format"},
		{"format null", repl(`"format": "csv"`, `"format": null`), reasonInvalidValue, "format"},
		{"filter string", `{"format":"csv","filter_criteria":"2026","requested_scope":{"kind":"enterprise","ref":"` + tEnt + `"}}`, reasonInvalidValue, "filter_criteria"},
		{"from number", repl(`"2026-04-01T00:00:00Z"`, `1775001600`), reasonInvalidValue, "filter_criteria.date_from_utc"},
		{"scope array", `{"format":"csv","filter_criteria":{"date_from_utc":"2026-04-01T00:00:00Z","date_to_utc":"2026-04-01T00:00:00Z"},"requested_scope":[]}`, reasonInvalidValue, "requested_scope"},
		{"ref bool", repl(`"`+tEnt+`"`, `true`), reasonInvalidValue, "requested_scope.ref"},
		{"compression null", repl(`"none"`, `null`), reasonInvalidValue, "compression"},
		{"format xlsx", repl(`"csv"`, `"xlsx"`), reasonUnsupportedFormat, "format"},
		{"format CSV", repl(`"csv"`, `"CSV"`), reasonUnsupportedFormat, "format"},
		{"from not a timestamp", repl(`"2026-04-01T00:00:00Z"`, `"yesterday"`), reasonInvalidTimestamp, "filter_criteria.date_from_utc"},
		{"from with offset", repl(`"2026-04-01T00:00:00Z"`, `"2026-04-01T02:00:00+02:00"`), reasonInvalidTimestamp, "filter_criteria.date_from_utc"},
		{"to date only", repl(`"2026-04-30T23:59:59Z"`, `"2026-04-30"`), reasonInvalidTimestamp, "filter_criteria.date_to_utc"},
		{"to bad day", repl(`"2026-04-30T23:59:59Z"`, `"2026-04-31T23:59:59Z"`), reasonInvalidTimestamp, "filter_criteria.date_to_utc"},
		{"from after to", repl(`"2026-04-01T00:00:00Z"`, `"2026-05-01T00:00:00Z"`), reasonInvalidDateRange, "filter_criteria"},
		{"kind unknown", repl(`"enterprise"`, `"master_account"`), reasonInvalidValue, "requested_scope.kind"},
		{"ref malformed", repl(tEnt, "enterprises/xyz"), reasonInvalidValue, "requested_scope.ref"},
		{"ref uppercase", repl(tEnt, strings.ToUpper(tEnt)), reasonInvalidValue, "requested_scope.ref"},
		{"kind ref mismatch", repl(tEnt, tClient), reasonInvalidScope, "requested_scope"},
		{"compression brotli", repl(`"none"`, `"br"`), reasonInvalidValue, "compression"},
		// SPEC §7 options.
		{"unknown option", repl(`"compression": "none"`, `"compression": "none", "timezone": "UTC"`), reasonUnknownField, "timezone"},
		{"unknown filter", repl(`"date_from_utc"`, `"types": ["deposit"], "date_from_utc"`), reasonUnknownField, "filter_criteria.types"},
		{"columns string", repl(`"compression": "none"`, `"columns": "amount"`), reasonInvalidValue, "columns"},
		{"columns null", repl(`"compression": "none"`, `"columns": null`), reasonInvalidValue, "columns"},
		{"columns number element", repl(`"compression": "none"`, `"columns": ["amount", 1]`), reasonInvalidValue, "columns"},
		{"columns empty", repl(`"compression": "none"`, `"columns": []`), reasonInvalidValue, "columns"},
		{"columns unknown", repl(`"compression": "none"`, `"columns": ["amount", "balance"]`), reasonInvalidValue, "columns"},
		{"columns case", repl(`"compression": "none"`, `"columns": ["Amount"]`), reasonInvalidValue, "columns"},
		{"columns repeated", repl(`"compression": "none"`, `"columns": ["amount", "currency", "amount"]`), reasonInvalidValue, "columns"},
		{"columns 18", repl(`"compression": "none"`, `"columns": [`+allColumnsJSON+`, "amount"]`), reasonInvalidValue, "columns"},
		{"families empty", repl(`"date_from_utc"`, `"families": [], "date_from_utc"`), reasonInvalidValue, "filter_criteria.families"},
		{"families unknown", repl(`"date_from_utc"`, `"families": ["deposit", "refund"], "date_from_utc"`), reasonInvalidValue, "filter_criteria.families"},
		{"families repeated", repl(`"date_from_utc"`, `"families": ["deposit", "deposit"], "date_from_utc"`), reasonInvalidValue, "filter_criteria.families"},
		{"families object", repl(`"date_from_utc"`, `"families": {"deposit": true}, "date_from_utc"`), reasonInvalidValue, "filter_criteria.families"},
		{"families null element", repl(`"date_from_utc"`, `"families": [null], "date_from_utc"`), reasonInvalidValue, "filter_criteria.families"},
		{"statuses unknown", repl(`"date_from_utc"`, `"statuses": ["done"], "date_from_utc"`), reasonInvalidValue, "filter_criteria.statuses"},
		{"statuses null", repl(`"date_from_utc"`, `"statuses": null, "date_from_utc"`), reasonInvalidValue, "filter_criteria.statuses"},
		{"currencies empty", repl(`"date_from_utc"`, `"currencies": [], "date_from_utc"`), reasonInvalidValue, "filter_criteria.currencies"},
		{"currencies blank", repl(`"date_from_utc"`, `"currencies": [""], "date_from_utc"`), reasonInvalidValue, "filter_criteria.currencies"},
		{"currencies space", repl(`"date_from_utc"`, `"currencies": ["US D"], "date_from_utc"`), reasonInvalidValue, "filter_criteria.currencies"},
		{"currencies too long", repl(`"date_from_utc"`, `"currencies": ["ABCDEFGHIJKLMNOPQ"], "date_from_utc"`), reasonInvalidValue, "filter_criteria.currencies"},
		{"currencies 51", repl(`"date_from_utc"`, `"currencies": [`+currencies(51)+`], "date_from_utc"`), reasonInvalidValue, "filter_criteria.currencies"},
		{"currencies repeated", repl(`"date_from_utc"`, `"currencies": ["USDC", "EUR", "USDC"], "date_from_utc"`), reasonInvalidValue, "filter_criteria.currencies"},
		{"time zone unknown", repl(`"compression": "none"`, `"time_zone": "Mars/Olympus"`), reasonInvalidValue, "time_zone"},
		{"time zone empty", repl(`"compression": "none"`, `"time_zone": ""`), reasonInvalidValue, "time_zone"},
		{"time zone local", repl(`"compression": "none"`, `"time_zone": "Local"`), reasonInvalidValue, "time_zone"},
		{"time zone path", repl(`"compression": "none"`, `"time_zone": "../../etc/passwd"`), reasonInvalidValue, "time_zone"},
		{"time zone number", repl(`"compression": "none"`, `"time_zone": 2`), reasonInvalidValue, "time_zone"},
		{"time zone parquet", strings.Replace(repl(`"compression": "none"`, `"time_zone": "Europe/Paris"`), `"csv"`, `"parquet"`, 1), reasonInvalidValue, "time_zone"},
		{"bom string", repl(`"compression": "none"`, `"csv_bom": "true"`), reasonInvalidValue, "csv_bom"},
		{"bom null", repl(`"compression": "none"`, `"csv_bom": null`), reasonInvalidValue, "csv_bom"},
		{"bom jsonl", strings.Replace(repl(`"compression": "none"`, `"csv_bom": true`), `"csv"`, `"jsonl"`, 1), reasonInvalidValue, "csv_bom"},
		{"bom parquet", strings.Replace(repl(`"compression": "none"`, `"csv_bom": true`), `"csv"`, `"parquet"`, 1), reasonInvalidValue, "csv_bom"},
		{"format ndjson", repl(`"csv"`, `"ndjson"`), reasonUnsupportedFormat, "format"},
		// Order: the type check (5) comes before values (6); columns before filters.
		{"bad format before options", strings.Replace(repl(`"compression": "none"`, `"columns": ["x"]`), `"csv"`, `"xml"`, 1), reasonUnsupportedFormat, "format"},
		{"columns before families", strings.Replace(repl(`"compression": "none"`, `"columns": ["x"]`), `"date_from_utc"`, `"families": [], "date_from_utc"`, 1), reasonInvalidValue, "columns"},
		{"option type before values", strings.Replace(repl(`"compression": "none"`, `"columns": ["x"]`), `"date_from_utc"`, `"families": "deposit", "date_from_utc"`, 1), reasonInvalidValue, "filter_criteria.families"},
	}
}

// allColumnsJSON is the 17 column names as JSON array elements.
const allColumnsJSON = `"occurred_at_utc", "activity_id", "operation_id", "family", "status", "enterprise_ref", "client_ref",
 "account_ref", "counterparty_ref", "currency", "amount", "fee_currency", "fee_amount", "settled_at_utc", "initiated_by",
 "failure_reason", "reference"`

// currencies returns n distinct currency codes as JSON array elements.
func currencies(n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(`"C` + strconv.Itoa(i) + `"`)
	}
	return sb.String()
}

func TestDecodeCreateErrors(t *testing.T) {
	for _, c := range createErrorCases() {
		t.Run(c.name, func(t *testing.T) {
			r, e := decodeCreate([]byte(c.body))
			if e == nil {
				t.Fatalf("accepted: %+v", r)
			}
			if e.status != 400 || e.code != codeInvalidRequest || e.message != msgInvalidRequest || e.reason != c.reason || e.field != c.field {
				t.Fatalf("got %d %s %s field %q, want %s field %q", e.status, e.code, e.reason, e.field, c.reason, c.field)
			}
		})
	}
}

func FuzzDecodeCreate(f *testing.F) {
	f.Add([]byte(validBody))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"csv","filter_criteria":{"date_from_utc":"2026-04-01T00:00:00Z","date_to_utc":"2026-04-01T00:00:00.5Z"},"requested_scope":{"kind":"client","ref":"` + tClient + `"},"compression":"zstd"}`))
	f.Add([]byte(`{"a":{"a":{"a":[1,2,{"b":null}]}}}`))
	f.Add([]byte(`{"format":"csv","format":"csv"}`))
	f.Add([]byte("{\"format\":\"\\u0000\"}"))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, e := decodeCreate(body)
		if (r == nil) == (e == nil) {
			t.Fatalf("exactly one of request and error expected: %v %v", r, e)
		}
		if e != nil {
			if e.status != 400 || e.code != codeInvalidRequest || e.message != msgInvalidRequest || e.reason == "" {
				t.Fatalf("bad error %+v", e)
			}
			return
		}
		// An accepted request is fully valid and re-decodes to itself.
		if !engine.ValidFormat(r.Format) || r.Options.Invalid(r.Format) != "" || r.From.After(r.To) || r.DateFrom == "" || r.DateTo == "" {
			t.Fatalf("accepted invalid request %+v", r)
		}
	})
}
