package server

import (
	"strings"
	"testing"
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
	}
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
		if r.Format != "csv" || r.From.After(r.To) || r.DateFrom == "" || r.DateTo == "" {
			t.Fatalf("accepted invalid request %+v", r)
		}
	})
}
