package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"

	"github.com/exportd/exportd/engine/activity"
)

// optionsBody is a create body of format with the extra top-level members
// and filter members (JSON fragments, "" for none).
func optionsBody(format, ent, extra, filters string) string {
	return `{"format":"` + format + `","filter_criteria":{` + filters + `"date_from_utc":"` + aprFrom + `","date_to_utc":"` + aprTo +
		`"},"requested_scope":{"kind":"enterprise","ref":"` + ent + `"}` + extra + `}`
}

// TestOptionsOverHTTP: the §7 options go from the create body through the
// engine into the file and back out in the resource (columns, time_zone and
// csv_bom always, filter sets exactly as given), and downloads carry each
// format's Content-Type and file name.
func TestOptionsOverHTTP(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	at := time.Date(2026, 4, 10, 12, 0, 0, 0, time.UTC).UnixMilli()
	var in []activity.Row
	for i := range 12 {
		r := row(t, a, a.client, a.acct, at+int64(i)*1000, fmt.Sprintf("%d.5", i), fmt.Sprintf("=ref %d", i))
		r.Family, r.Status = activity.Families[i%6], activity.Statuses[i%10]
		r.Currency = []string{"USDC", "EUR", "BTC"}[i%3]
		in = append(in, r)
	}
	insert(t, in)
	tok := e.token(newUser(), capsAll, a.ent+":subtree")

	// Defaults are echoed.
	m := e.create(tok, optionsBody("csv", a.ent, "", ""), nil)
	checkResource(t, m)
	if fmt.Sprint(m["columns"]) != fmt.Sprint(activity.Columns) || m["time_zone"] != "UTC" || m["csv_bom"] != false {
		t.Fatalf("defaults: %v %v %v", m["columns"], m["time_zone"], m["csv_bom"])
	}
	if fc := m["filter_criteria"].(map[string]any); len(fc) != 2 {
		t.Fatalf("filter_criteria without filters: %v", fc)
	}

	// CSV: columns, filters, zone, BOM.
	m = e.create(tok, optionsBody("csv", a.ent, `,"columns":["reference","amount","occurred_at_utc"],"time_zone":"Europe/Paris","csv_bom":true`,
		`"families":["deposit","withdrawal"],"currencies":["USDC","EUR"],`), nil)
	checkResource(t, m)
	fc := m["filter_criteria"].(map[string]any)
	if m["status"] != "ready" || fmt.Sprint(m["columns"]) != "[reference amount occurred_at_utc]" || m["time_zone"] != "Europe/Paris" ||
		m["csv_bom"] != true || fmt.Sprint(fc["families"]) != "[deposit withdrawal]" || fmt.Sprint(fc["currencies"]) != "[USDC EUR]" ||
		fc["statuses"] != nil {
		t.Fatalf("resource %v", m)
	}
	d := e.do("GET", exportsPath+"/"+m["id"].(string)+"/download", tok, "", nil)
	want := "\ufeffreference,amount,occurred_at_utc\r\n"
	n := 0
	for i, r := range in {
		if (r.Family == "deposit" || r.Family == "withdrawal") && (r.Currency == "USDC" || r.Currency == "EUR") {
			want += fmt.Sprintf("'=ref %d,%d.5,2026-04-10T14:00:%02d.000+02:00\r\n", i, i, i)
			n++
		}
	}
	if string(d.body) != want || num(t, m["row_count"]) != int64(n) || d.header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("CSV download %s:\n%q\nwant\n%q", d.header.Get("Content-Type"), d.body, want)
	}

	// JSON Lines, gzip.
	m = e.create(tok, optionsBody("jsonl", a.ent, `,"columns":["status","amount"],"compression":"gzip"`, `"statuses":["requested","executing"],`), nil)
	checkResource(t, m)
	id := m["id"].(string)
	d = e.do("GET", exportsPath+"/"+id+"/download", tok, "", nil)
	if d.header.Get("Content-Type") != "application/gzip" ||
		d.header.Get("Content-Disposition") != `attachment; filename="operations-activity-`+id+`.jsonl.gz"` ||
		!strings.HasSuffix(m["storage_location"].(string), id+".jsonl.gz") {
		t.Fatalf("jsonl.gz headers %v, location %v", d.header, m["storage_location"])
	}
	zr, err := gzip.NewReader(bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]string
	dec := json.NewDecoder(zr)
	for dec.More() {
		var l map[string]string
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 3 || lines[2]["amount"] != "10.5" || lines[0]["status"] != "requested" || lines[0]["amount"] != "0.5" || len(lines[0]) != 2 {
		t.Fatalf("jsonl lines %v", lines)
	}

	// JSON Lines plain; Parquet zstd.
	for _, c := range []struct{ format, extra, ctype, ext string }{
		{"jsonl", "", "application/x-ndjson", ".jsonl"},
		{"parquet", `,"compression":"zstd"`, "application/vnd.apache.parquet", ".parquet"},
		{"parquet", `,"time_zone":"UTC"`, "application/vnd.apache.parquet", ".parquet"},
	} {
		m = e.create(tok, optionsBody(c.format, a.ent, c.extra, ""), nil)
		checkResource(t, m)
		id := m["id"].(string)
		d = e.do("GET", exportsPath+"/"+id+"/download", tok, "", nil)
		if d.status != 200 || d.header.Get("Content-Type") != c.ctype ||
			d.header.Get("Content-Disposition") != `attachment; filename="operations-activity-`+id+c.ext+`"` || m["time_zone"] != "UTC" {
			t.Fatalf("%s: %d %v", c.format, d.status, d.header)
		}
		if c.format == "parquet" && (!bytes.HasPrefix(d.body, []byte("PAR1")) || !bytes.HasSuffix(d.body, []byte("PAR1"))) {
			t.Fatal("not a Parquet file")
		}
	}

	// Idempotency: explicit defaults replay; another selection is another body.
	key := map[string]string{"Idempotency-Key": "opt-" + uuid.NewString()}
	first := e.create(tok, optionsBody("csv", a.ent, "", ""), key)
	again := e.create(tok, optionsBody("csv", a.ent, `,"columns":`+mustJSON(activity.Columns[:])+`,"time_zone":"UTC","csv_bom":false`, ""), key)
	if first["id"] != again["id"] {
		t.Fatal("explicit defaults must replay the same export")
	}
	r := e.do("POST", exportsPath, tok, optionsBody("csv", a.ent, `,"columns":["amount"]`, ""), key)
	wantError(t, r, 409, codeStateConflict, msgStateConflict, reasonKeyPayloadMismatch)
	r = e.do("POST", exportsPath, tok, optionsBody("csv", a.ent, "", `"families":["deposit"],`), key)
	wantError(t, r, 409, codeStateConflict, msgStateConflict, reasonKeyPayloadMismatch)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
