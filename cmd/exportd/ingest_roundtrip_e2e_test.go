package main

import (
	encsv "encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Issue 12: values SPEC §3/§6 allow go in through `exportd ingest` and come
// out of `exportd export` byte for byte; a client or account named under
// several enterprises is exported under the one --enterprise picks.

// e2eAwkwardTexts are text values a careless loader would refuse or alter:
// each C0 control (NUL apart, then NUL alone), line breaks anywhere, leading
// TAB/CR (formula-guarded), formula prefixes, whitespace-only values.
func e2eAwkwardTexts() []string {
	var c0 strings.Builder
	for c := byte(1); c < 0x20; c++ {
		c0.WriteByte(c)
	}
	return []string{
		"plain", "a\tb", "a\rb", "a\nb", "a\r\nb", "\r\n", "\r", "\n", "\t",
		"\tleading tab", "\rleading CR", "\r\nleading CRLF", "\nleading LF", "trailing CR\r",
		c0.String(), "x" + c0.String() + "y", "nul\x00inside",
		"\x7f DEL, C1 \u0085, separators \u2028\u2029", "=1+1", "+41 44", "-5", "@desk", " ", "  padded  ",
		`"quoted", comma`, "🚀 עברית 中文",
	}
}

// activityLine is one NDJSON input line; the zero value of a field means
// "absent", jsonNull "null".
type activityLine map[string]any

var jsonNull = json.RawMessage("null")

func ndjson(t *testing.T, lines []activityLine) string {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		j, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// csvCell renders a value as SPEC §3 says, spelled out independently of
// engine/csv: the formula guard for text columns, then RFC 4180 quoting only
// when needed.
func csvCell(v string, text bool) string {
	if text && v != "" && strings.IndexByte("=+-@\t\r", v[0]) >= 0 {
		v = "'" + v
	}
	if strings.ContainsAny(v, ",\"\r\n") {
		v = `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
	}
	return v
}

const csvHeader = "occurred_at_utc,activity_id,operation_id,family,status,enterprise_ref,client_ref,account_ref," +
	"counterparty_ref,currency,amount,fee_currency,fee_amount,settled_at_utc,initiated_by,failure_reason,reference\r\n"

// textColumns are the columns SPEC §6 formula-guards.
var textColumns = map[string]bool{"counterparty_ref": true, "currency": true, "fee_currency": true,
	"failure_reason": true, "reference": true}

var csvColumns = strings.Split(strings.TrimSuffix(csvHeader, "\r\n"), ",")

// expectedCSV renders rows (column → exported value, "" for empty) as the
// export must hold them, in the order given.
func expectedCSV(rows []map[string]string) string {
	var b strings.Builder
	b.WriteString(csvHeader)
	for _, r := range rows {
		for i, c := range csvColumns {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(csvCell(r[c], textColumns[c]))
		}
		b.WriteString("\r\n")
	}
	return b.String()
}

// firstDiff describes where two exports part, for failure messages.
func firstDiff(got, want string) string {
	g, w := strings.SplitAfter(got, "\r\n"), strings.SplitAfter(want, "\r\n")
	for i := 0; i < min(len(g), len(w)); i++ {
		if g[i] != w[i] {
			return fmt.Sprintf("record line %d:\n got  %q\n want %q", i, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}

func TestE2EIngestAwkwardValuesRoundTrip(t *testing.T) {
	mustExportd(t, nil, "migrate")
	ent := "enterprises/" + uuid.NewString()
	client := "clients/" + uuid.NewString()
	account := "client-accounts/" + uuid.NewString()
	user := "users/" + uuid.NewString()
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	ts := func(ms int64) string {
		return base.Add(time.Duration(ms) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	}
	amounts := [][2]string{ // input, exported
		{"-250.50", "-250.5"}, {"0.000", "0"}, {"-0", "0"}, {"99999999999999999999.999999999999999999", "99999999999999999999.999999999999999999"},
		{"-0.000000000000000001", "-0.000000000000000001"}, {"+12", "12"}, {"1", "1"},
	}

	var lines []activityLine
	var want []map[string]string
	add := func(in activityLine, out map[string]string) {
		lines, want = append(lines, in), append(want, out)
	}
	for i, v := range e2eAwkwardTexts() {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
		amt := amounts[i%len(amounts)]
		cur := v
		if i%4 == 0 {
			cur = "USDC"
		}
		in := activityLine{
			"occurred_at_utc": ts(int64(i) * 1001), "activity_id": id, "operation_id": id,
			"family": "withdrawal", "status": "failed", "enterprise_ref": ent, "client_ref": client,
			"account_ref": account, "counterparty_ref": v, "currency": cur, "amount": amt[0],
			"initiated_by": user, "failure_reason": v, "reference": v,
		}
		out := map[string]string{
			"occurred_at_utc": ts(int64(i) * 1001), "activity_id": id, "operation_id": id,
			"family": "withdrawal", "status": "failed", "enterprise_ref": ent, "client_ref": client,
			"account_ref": account, "counterparty_ref": v, "currency": cur, "amount": amt[1],
			"initiated_by": user, "failure_reason": v, "reference": v,
		}
		// Fees: with and without their currency, a currency without a fee,
		// the empty currency given as absent, null and "".
		switch i % 5 {
		case 0:
			in["fee_amount"], out["fee_amount"] = "0.25", "0.25" // fee_currency absent
		case 1:
			in["fee_amount"], in["fee_currency"], out["fee_amount"] = "1.50", "", "1.5"
		case 2:
			in["fee_amount"], in["fee_currency"], out["fee_amount"] = "-0.000000000000000001", jsonNull, "-0.000000000000000001"
		case 3:
			in["fee_currency"], out["fee_currency"] = v, v // no fee_amount
		case 4:
			in["fee_amount"], in["fee_currency"], out["fee_amount"], out["fee_currency"] = "2", v, "2", v
		}
		if i%2 == 0 {
			in["settled_at_utc"], out["settled_at_utc"] = ts(int64(i)*1001+1), ts(int64(i)*1001+1)
		}
		add(in, out)
	}
	// Optional columns as null and "" on one line each.
	for i, empty := range []any{jsonNull, ""} {
		id := fmt.Sprintf("00000000-0000-4000-9000-%012x", i)
		in := activityLine{"occurred_at_utc": ts(999_999), "activity_id": id, "operation_id": id, "family": "deposit",
			"status": "requested", "enterprise_ref": ent, "client_ref": client, "account_ref": account,
			"currency": "EUR", "amount": "1", "initiated_by": user}
		for _, c := range []string{"counterparty_ref", "fee_currency", "fee_amount", "settled_at_utc", "failure_reason", "reference"} {
			in[c] = empty
		}
		add(in, map[string]string{"occurred_at_utc": ts(999_999), "activity_id": id, "operation_id": id,
			"family": "deposit", "status": "requested", "enterprise_ref": ent, "client_ref": client,
			"account_ref": account, "currency": "EUR", "amount": "1", "initiated_by": user})
	}

	if r := exportd(t, nil, ndjson(t, lines), "ingest", "--file", "-"); r.code != 0 {
		t.Fatalf("ingest refused valid values: exit %d\n%s", r.code, r.stderr)
	}
	expected := expectedCSV(want) // rows are already in (occurred_at, activity_id) order

	from, to := "2026-04-01T00:00:00Z", "2026-04-01T23:59:59.999Z"
	for _, scope := range []string{ent, client, account} {
		got := mustExportd(t, nil, "export", "--scope", scope, "--from", from, "--to", to).stdout
		if got != expected {
			t.Fatalf("export of %s is not byte-exact: %s", scope, firstDiff(got, expected))
		}
	}

	// A CSV reader gets every value back (the guard aside): nothing was
	// normalised on the way, except that encoding/csv itself reads a quoted
	// CRLF as LF.
	recs, err := encsv.NewReader(strings.NewReader(expected)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	refCol := slices.Index(csvColumns, "reference")
	for i, v := range e2eAwkwardTexts() {
		got := recs[i+1][refCol]
		if v != "" && strings.IndexByte("=+-@\t\r", v[0]) >= 0 {
			got = strings.TrimPrefix(got, "'")
		}
		if got != strings.ReplaceAll(v, "\r\n", "\n") {
			t.Errorf("reference %q read back as %q", v, got)
		}
	}
}

// TestE2EIngestStillRefuses: the refusals SPEC §3 implies stay, and a
// refused file loads nothing.
func TestE2EIngestStillRefuses(t *testing.T) {
	mustExportd(t, nil, "migrate")
	ent := "enterprises/" + uuid.NewString()
	good := func() activityLine {
		id := uuid.NewString()
		return activityLine{"occurred_at_utc": "2026-04-02T10:00:00.123Z", "activity_id": id, "operation_id": id,
			"family": "deposit", "status": "settled", "enterprise_ref": ent, "account_ref": "master-accounts/" + uuid.NewString(),
			"currency": "USDC", "amount": "1", "initiated_by": "users/" + uuid.NewString()}
	}
	for _, tt := range []struct{ field, value, reason string }{
		{"activity_id", "not-a-uuid", "not a UUID"},
		{"enterprise_ref", "enterprises/acme", "enterprises/<uuid>"},
		{"client_ref", "client/" + uuid.NewString(), "clients/<uuid>"},
		{"family", "Deposit", "must be one of"},
		{"status", "done", "must be one of"},
		{"amount", "1e3", "exact decimal"},
		{"fee_amount", "0.0000000000000000001", "18 fractional"},
		{"occurred_at_utc", "2026-04-02T12:00:00+02:00", "UTC"},
		{"settled_at_utc", "2026-04-02T10:00:00.1234Z", "millisecond"},
		{"currency", strings.Repeat("X", 65), "longer than 64"},
	} {
		bad := good()
		bad[tt.field] = tt.value
		r := exportd(t, nil, ndjson(t, []activityLine{good(), bad}), "ingest", "--file", "-")
		if r.code == 0 || !strings.Contains(r.stderr, "line 2: field "+tt.field) || !strings.Contains(r.stderr, tt.reason) {
			t.Errorf("%s = %q: exit %d, stderr %q; want line 2, the field and %q", tt.field, tt.value, r.code, r.stderr, tt.reason)
		}
	}
	out := mustExportd(t, nil, "export", "--scope", ent, "--from", "2026-04-01T00:00:00Z", "--to", "2026-04-30T23:59:59Z").stdout
	if out != csvHeader {
		t.Errorf("refused files left rows behind: %q", out)
	}
}

// TestE2EExportEnterpriseFlag: a client (and an account) with activity under
// two enterprises is refused without --enterprise, with an error naming both;
// --enterprise A exports exactly A's rows for it, and B's for B.
func TestE2EExportEnterpriseFlag(t *testing.T) {
	mustExportd(t, nil, "migrate")
	entA, entB := "enterprises/"+uuid.NewString(), "enterprises/"+uuid.NewString()
	client, account := "clients/"+uuid.NewString(), "client-accounts/"+uuid.NewString()
	otherClient, otherAccount := "clients/"+uuid.NewString(), "client-accounts/"+uuid.NewString()
	user := "users/" + uuid.NewString()
	var lines []activityLine
	wantIDs := map[string][]string{} // enterprise + scope → activity ids in export order
	row := func(n int, ent, cl, acc string) {
		id := fmt.Sprintf("00000000-0000-4000-a000-%012x", n)
		lines = append(lines, activityLine{"occurred_at_utc": fmt.Sprintf("2026-05-01T10:00:%02d.000Z", n),
			"activity_id": id, "operation_id": id, "family": "deposit", "status": "settled",
			"enterprise_ref": ent, "client_ref": cl, "account_ref": acc, "currency": "USDC", "amount": fmt.Sprint(n),
			"initiated_by": user, "reference": fmt.Sprintf("row %d of %s", n, ent)})
		wantIDs[ent+" "+cl] = append(wantIDs[ent+" "+cl], id)
		if acc != "" {
			wantIDs[ent+" "+acc] = append(wantIDs[ent+" "+acc], id)
		}
	}
	row(1, entA, client, account)
	row(2, entB, client, account)
	row(3, entA, client, account)
	row(4, entA, otherClient, otherAccount)
	row(5, entB, client, account)
	row(6, entA, client, account)
	mustIngest := exportd(t, nil, ndjson(t, lines), "ingest", "--file", "-")
	if mustIngest.code != 0 {
		t.Fatalf("ingest: %s", mustIngest.stderr)
	}
	rng := []string{"--from", "2026-05-01T00:00:00Z", "--to", "2026-05-01T23:59:59Z"}
	exportIDs := func(args ...string) []string {
		t.Helper()
		recs, err := encsv.NewReader(strings.NewReader(mustExportd(t, nil, append(append([]string{"export"}, args...), rng...)...).stdout)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs[1:] {
			ids = append(ids, r[1])
		}
		return ids
	}

	for _, scope := range []string{client, account} {
		r := exportd(t, nil, "", append([]string{"export", "--scope", scope}, rng...)...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, entA) || !strings.Contains(r.stderr, entB) ||
			!strings.Contains(r.stderr, "--enterprise") {
			t.Errorf("%s under two enterprises without --enterprise: exit %d, stdout %q, stderr %q", scope, r.code, r.stdout, r.stderr)
		}
		for _, ent := range []string{entA, entB} {
			if got, want := exportIDs("--scope", scope, "--enterprise", ent), wantIDs[ent+" "+scope]; !slices.Equal(got, want) {
				t.Errorf("%s --enterprise %s: rows %v, want %v", scope, ent, got, want)
			}
		}
	}
	// An unambiguous client needs no flag; the flag naming its enterprise agrees.
	if got, want := exportIDs("--scope", otherClient), wantIDs[entA+" "+otherClient]; !slices.Equal(got, want) {
		t.Errorf("%s: rows %v, want %v", otherClient, got, want)
	}
	if got, want := exportIDs("--scope", otherAccount, "--enterprise", entA), wantIDs[entA+" "+otherAccount]; !slices.Equal(got, want) {
		t.Errorf("%s --enterprise A: rows %v, want %v", otherAccount, got, want)
	}
	// An enterprise where the client has no activity: header only, and a note.
	r := exportd(t, nil, "", append([]string{"export", "--scope", otherClient, "--enterprise", entB}, rng...)...)
	if r.code != 0 || r.stdout != csvHeader || !strings.Contains(r.stderr, "no activity under "+entB) {
		t.Errorf("client under another enterprise: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Bad uses of the flag are usage errors.
	for _, args := range [][]string{
		{"--scope", client, "--enterprise", "enterprises/acme"},
		{"--scope", client, "--enterprise", otherClient},
		{"--scope", entA, "--enterprise", entB},
	} {
		if r := exportd(t, nil, "", append(append([]string{"export"}, args...), rng...)...); r.code != 2 || !strings.Contains(r.stderr, "--enterprise") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	// An enterprise scope naming itself is fine.
	if got := exportIDs("--scope", entB, "--enterprise", entB); !slices.Equal(got, wantIDs[entB+" "+client]) {
		t.Errorf("%s --enterprise itself: rows %v", entB, got)
	}
}

func TestScopeEnterprise(t *testing.T) {
	a, b := "enterprises/a", "enterprises/b"
	for _, tt := range []struct {
		pick    string
		parents [][2]string
		want    string
		note    string // substring, "" = none
		err     string // substring, "" = none
	}{
		{"", nil, "", "", ""},
		{"", [][2]string{{a, "c1"}}, a, "", ""},
		{"", [][2]string{{a, "c1"}, {a, "c2"}}, a, "", ""}, // one enterprise, two clients: not ambiguous here
		{"", [][2]string{{b, "c"}, {a, "c"}}, "", "", "2 enterprises: enterprises/a, enterprises/b; choose one with --enterprise"},
		{a, [][2]string{{b, "c"}, {a, "c"}}, a, "", ""},
		{b, [][2]string{{a, "c"}}, b, "no activity under enterprises/b (it has under enterprises/a)", ""},
		{b, nil, b, "no activity under enterprises/b", ""},
	} {
		got, note, err := scopeEnterprise("clients/x", tt.pick, tt.parents)
		if got != tt.want || (tt.note == "") != (note == "") || !strings.Contains(note, tt.note) ||
			(tt.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("pick %q parents %v: got %q, note %q, err %v; want %q, %q, %q", tt.pick, tt.parents, got, note, err, tt.want, tt.note, tt.err)
		}
	}
}
