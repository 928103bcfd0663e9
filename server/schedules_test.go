package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/schedules"
	"github.com/exportd/exportd/engine/source"
)

// newScheduleEnv is a server env with the schedule routes on the test
// PostgreSQL.
func newScheduleEnv(t *testing.T) *env {
	return newEnv(t, envOptions{tuneSrv: func(c *Config) { c.Schedules = pg.Store }})
}

func scheduleBody(every, zone, startsAt string, delay int, export string) string {
	return `{"every":"` + every + `","time_zone":"` + zone + `","starts_at_utc":"` + startsAt + `","delay_minutes":` +
		itoa(delay) + `,"export":` + export + `}`
}

func itoa(n int) string { return strconv.Itoa(n) }

func exportTemplateJSON(kind, ref string) string {
	return `{"format":"csv","requested_scope":{"kind":"` + kind + `","ref":"` + ref + `"}}`
}

// TestScheduleValidation checks the 400s of a schedule create: the
// schedule's own fields, and the export template validated exactly as a
// create request (same reasons), details.field prefixed "export.".
func TestScheduleValidation(t *testing.T) {
	e := newScheduleEnv(t)
	tn := newTenant()
	tok := e.token(newUser(), capsAll, tn.ent+":subtree")
	okExport := exportTemplateJSON("enterprise", tn.ent)
	for _, c := range []struct {
		name, body, reason, field string
	}{
		{"not JSON", `{"every":`, reasonInvalidJSON, ""},
		{"duplicate key", `{"every":"day","every":"week","export":` + okExport + `}`, reasonInvalidJSON, ""},
		{"unknown member", `{"every":"day","export":` + okExport + `,"cron":"* * *"}`, reasonUnknownField, "cron"},
		{"every missing", `{"export":` + okExport + `}`, reasonMissingField, "every"},
		{"export missing", `{"every":"day"}`, reasonMissingField, "export"},
		{"every not a string", `{"every":1,"export":` + okExport + `}`, reasonInvalidValue, "every"},
		{"every unknown", scheduleBody("hour", "UTC", "2026-01-01T00:00:00Z", 60, okExport), reasonInvalidValue, "every"},
		{"every capitalised", scheduleBody("Day", "UTC", "2026-01-01T00:00:00Z", 60, okExport), reasonInvalidValue, "every"},
		{"zone unknown", scheduleBody("day", "Mars/Olympus", "2026-01-01T00:00:00Z", 60, okExport), reasonInvalidValue, "time_zone"},
		{"zone Local", scheduleBody("day", "Local", "2026-01-01T00:00:00Z", 60, okExport), reasonInvalidValue, "time_zone"},
		{"zone empty", scheduleBody("day", "", "2026-01-01T00:00:00Z", 60, okExport), reasonInvalidValue, "time_zone"},
		{"starts_at not UTC", scheduleBody("day", "UTC", "2026-01-01T00:00:00+01:00", 60, okExport), reasonInvalidTimestamp, "starts_at_utc"},
		{"starts_at a date", scheduleBody("day", "UTC", "2026-01-01", 60, okExport), reasonInvalidTimestamp, "starts_at_utc"},
		{"delay over 1440", scheduleBody("day", "UTC", "2026-01-01T00:00:00Z", 1441, okExport), reasonInvalidValue, "delay_minutes"},
		{"delay negative", scheduleBody("day", "UTC", "2026-01-01T00:00:00Z", -1, okExport), reasonInvalidValue, "delay_minutes"},
		{"delay fractional", `{"every":"day","delay_minutes":60.5,"export":` + okExport + `}`, reasonInvalidValue, "delay_minutes"},
		{"delay exponent", `{"every":"day","delay_minutes":6e1,"export":` + okExport + `}`, reasonInvalidValue, "delay_minutes"},
		{"delay a string", `{"every":"day","delay_minutes":"60","export":` + okExport + `}`, reasonInvalidValue, "delay_minutes"},
		{"export not an object", `{"every":"day","export":[]}`, reasonInvalidValue, "export"},
		{"export format missing", `{"every":"day","export":{"requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonMissingField, "export.format"},
		{"export format unsupported", `{"every":"day","export":{"format":"xml","requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonUnsupportedFormat, "export.format"},
		{"export with dates", `{"every":"day","export":{"format":"csv","filter_criteria":{"date_from_utc":"2026-01-01T00:00:00Z"},"requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonUnknownField, "export.filter_criteria.date_from_utc"},
		{"export scope missing", `{"every":"day","export":{"format":"csv"}}`, reasonMissingField, "export.requested_scope"},
		{"export scope disagrees", `{"every":"day","export":{"format":"csv","requested_scope":{"kind":"client","ref":"` + tn.ent + `"}}}`, reasonInvalidScope, "export.requested_scope"},
		{"export compression", `{"every":"day","export":{"format":"csv","compression":"rar","requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonInvalidValue, "export.compression"},
		{"export columns", `{"every":"day","export":{"format":"csv","columns":["nope"],"requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonInvalidValue, "export.columns"},
		{"export families", `{"every":"day","export":{"format":"csv","filter_criteria":{"families":[]},"requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonInvalidValue, "export.filter_criteria.families"},
		{"export time zone", `{"every":"day","export":{"format":"csv","time_zone":"Nowhere/City","requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonInvalidValue, "export.time_zone"},
		{"export parquet with zone", `{"every":"day","export":{"format":"parquet","time_zone":"Europe/Zurich","requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonInvalidValue, "export.time_zone"},
		{"export bom with jsonl", `{"every":"day","export":{"format":"jsonl","csv_bom":true,"requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonInvalidValue, "export.csv_bom"},
		{"export unknown member", `{"every":"day","export":{"format":"csv","every":"day","requested_scope":{"kind":"enterprise","ref":"` + tn.ent + `"}}}`, reasonUnknownField, "export.every"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := wantError(t, e.do("POST", schedulesPath, tok, c.body, nil), http.StatusBadRequest, codeInvalidRequest, msgInvalidRequest, c.reason)
			if got, _ := d["field"].(string); got != c.field {
				t.Errorf("details.field = %q, want %q", got, c.field)
			}
		})
	}
	// Capability and coverage, as create.
	wantError(t, e.do("POST", schedulesPath, "", `{}`, nil), http.StatusUnauthorized, codeUnauthorized, msgUnauthorized, "")
	wantError(t, e.do("POST", schedulesPath, e.token(newUser(), capsRead, tn.ent+":subtree"), scheduleBody("day", "UTC", "2026-01-01T00:00:00Z", 60, okExport), nil),
		http.StatusForbidden, codeForbidden, msgMissingCap, reasonMissingCapability)
	other := newTenant()
	wantError(t, e.do("POST", schedulesPath, e.token(newUser(), capsAll, other.ent+":subtree"), scheduleBody("day", "UTC", "2026-01-01T00:00:00Z", 60, okExport), nil),
		http.StatusForbidden, codeForbidden, msgScopeNotCovered, reasonScopeNotCovered)
	wantError(t, e.do("GET", schedulesPath+"/not-a-uuid", tok, "", nil), http.StatusBadRequest, codeInvalidRequest, msgInvalidRequest, reasonInvalidScheduleID)
	wantError(t, e.do("GET", schedulesPath+"/0b9a4a3e-2f7c-4a57-9d0e-3a5f5d6a7b8c", tok, "", nil), http.StatusNotFound, codeScheduleNotFound, msgScheduleNotFound, reasonScheduleNotFound)
	if r := e.do("PUT", schedulesPath, tok, "", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT collection: %d", r.status)
	}
}

// TestScheduleDefaultsAndResource checks the 201 body: exactly SPEC §9's
// fields, defaults applied (time zone UTC, delay 60, starts_at = now), the
// template echoed like a resource, next_run_at from the period math.
func TestScheduleDefaultsAndResource(t *testing.T) {
	e := newScheduleEnv(t)
	tn := newTenant()
	user := newUser()
	tok := e.token(user, capsAll, tn.ent+":subtree")
	before := time.Now().Add(-time.Second)
	r := e.do("POST", schedulesPath, tok, `{"every":"week","export":{"format":"jsonl","compression":"zstd","columns":["activity_id","amount"],`+
		`"filter_criteria":{"families":["deposit"]},"requested_scope":{"kind":"enterprise","ref":"`+tn.ent+`"}}}`, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	m := r.json(t)
	want := []string{"created_at_utc", "created_by", "delay_minutes", "every", "export", "id", "last_export_id", "next_run_at_utc", "starts_at_utc", "time_zone"}
	if len(m) != len(want) {
		t.Fatalf("fields %v, want %v", m, want)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %s", k)
		}
	}
	if loc := r.header.Get("Location"); loc != schedulesPath+"/"+m["id"].(string) {
		t.Errorf("Location %q", loc)
	}
	if m["every"] != "week" || m["time_zone"] != "UTC" || num(t, m["delay_minutes"]) != 60 || m["created_by"] != user || m["last_export_id"] != nil {
		t.Errorf("resource %v", m)
	}
	starts, err := time.Parse(time.RFC3339Nano, m["starts_at_utc"].(string))
	if err != nil || starts.Before(before) || starts.After(time.Now().Add(time.Second)) {
		t.Errorf("starts_at_utc %v: not the creation time", m["starts_at_utc"])
	}
	p, _ := schedules.NewPlan(schedules.Week, time.UTC, starts, 60)
	if next := m["next_run_at_utc"]; next != p.First().End.Add(time.Hour).Format(time.RFC3339) {
		t.Errorf("next_run_at_utc %v, want the first whole week's end + 1h (%v)", next, p.First().End.Add(time.Hour))
	}
	x := m["export"].(map[string]any)
	if x["format"] != "jsonl" || x["compression"] != "zstd" || x["time_zone"] != "UTC" || x["csv_bom"] != false ||
		len(x["columns"].([]any)) != 2 || x["filter_criteria"].(map[string]any)["families"].([]any)[0] != "deposit" ||
		x["requested_scope"].(map[string]any)["ref"] != tn.ent || len(x) != 7 {
		t.Errorf("export template %v", x)
	}
	// The same through GET and the list.
	g := e.do("GET", schedulesPath+"/"+m["id"].(string), tok, "", nil)
	if g.status != http.StatusOK || g.json(t)["export"].(map[string]any)["format"] != "jsonl" {
		t.Errorf("get: %d %s", g.status, g.body)
	}
}

// TestScheduleBackfillCatchUpAndLifecycle drives the sweep with an
// injected clock over a Europe/Zurich schedule across the autumn DST day:
// a backfill makes exactly the due periods' exports, with the periods'
// date ranges, the creator's identity and exactly each period's rows
// (boundary milliseconds included); after "downtime" one sweep catches up
// the missed periods; a second sweep makes nothing; the exports list,
// last_export_id, visibility and delete behave as SPEC §9 says.
func TestScheduleBackfillCatchUpAndLifecycle(t *testing.T) {
	e := newScheduleEnv(t)
	tn := newTenant()
	user := newUser()
	tok := e.token(user, capsAll, tn.ent+":subtree")
	zurich, _ := time.LoadLocation("Europe/Zurich")
	// Daily periods from Oct 23 (local) to Oct 29; Oct 25 has 25 hours.
	type day struct {
		from, to string
		rows     int
	}
	days := []day{}
	var rows []activity.Row
	for d := 23; d <= 29; d++ {
		start := time.Date(2026, 10, d, 0, 0, 0, 0, zurich)
		end := time.Date(2026, 10, d+1, 0, 0, 0, 0, zurich)
		n := d - 20 // 3..9 rows, the first at the start, one at the last millisecond
		for i := 0; i < n; i++ {
			at := start.UnixMilli() + int64(i)*3_600_000
			if i == n-1 {
				at = end.UnixMilli() - 1
			}
			rows = append(rows, row(t, tn, tn.client, tn.acct, at, "1.5", "r"))
		}
		days = append(days, day{start.UTC().Format(time.RFC3339Nano), end.Add(-time.Millisecond).UTC().Format(time.RFC3339Nano), n})
	}
	insert(t, rows)

	r := e.do("POST", schedulesPath, tok, scheduleBody("day", "Europe/Zurich", "2026-10-22T22:00:00Z", 60, exportTemplateJSON("enterprise", tn.ent)), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)

	now := time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC) // Oct 25 (ends 23:00Z) + 60 min: Oct 23, 24, 25 due
	clock := func() time.Time { return now }
	sweep := func(wantCreated int) {
		t.Helper()
		run, err := schedules.NewRunner(schedules.RunnerConfig{Store: pg.Store, Engine: e.eng, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		st, err := run.Sweep(context.Background())
		if err != nil || st.Created != wantCreated {
			t.Fatalf("sweep at %v: %+v (%v), want %d created", now, st, err, wantCreated)
		}
	}
	sweep(3)
	sweep(0)
	now = time.Date(2026, 10, 29, 23, 59, 59, 0, time.UTC) // "downtime": Oct 26, 27, 28 due (Oct 29, CET, at Oct 30 00:00Z)
	sweep(3)
	now = now.Add(time.Second)
	sweep(1)

	// One export per period, in PostgreSQL.
	var runs, exports int
	if err := pg.Pool.QueryRow(context.Background(), `SELECT count(*), count(x.id) FROM operations_activity_export_schedule_runs r
		LEFT JOIN operations_activity_exports x ON x.id = r.export_id WHERE r.schedule_id = $1`, id).Scan(&runs, &exports); err != nil {
		t.Fatal(err)
	}
	if runs != 7 || exports != 7 {
		t.Fatalf("%d runs, %d exports, want 7 and 7", runs, exports)
	}
	// The exports list: newest first, pages of 3, each export ready with
	// its period's range and rows.
	var items []map[string]any
	token := ""
	for page := 0; ; page++ {
		path := schedulesPath + "/" + id + "/exports?page_size=3"
		if token != "" {
			path += "&page_token=" + token
		}
		lr := e.do("GET", path, tok, "", nil)
		if lr.status != http.StatusOK {
			t.Fatalf("exports list: %d %s", lr.status, lr.body)
		}
		m := lr.json(t)
		for _, it := range m["items"].([]any) {
			items = append(items, it.(map[string]any))
		}
		next, _ := m["next_page_token"].(string)
		if next == "" {
			break
		}
		token = next
		if page > 5 {
			t.Fatal("pages do not end")
		}
	}
	if len(items) != 7 {
		t.Fatalf("%d exports listed, want 7", len(items))
	}
	seen := map[string]bool{}
	for _, it := range items {
		x := waitReady(t, e, tok, it["id"].(string))
		fc := x["filter_criteria"].(map[string]any)
		var d *day
		for i := range days {
			if days[i].from == fc["date_from_utc"] {
				d = &days[i]
			}
		}
		if d == nil || fc["date_to_utc"] != d.to || seen[d.from] {
			t.Fatalf("export %v has range %v (duplicate or unexpected)", x["id"], fc)
		}
		seen[d.from] = true
		if x["generated_by"] != user || num(t, x["row_count"]) != int64(d.rows) || x["requested_scope"].(map[string]any)["ref"] != tn.ent {
			t.Errorf("export of %s: generated_by %v, row_count %v (want %d)", d.from, x["generated_by"], x["row_count"], d.rows)
		}
	}
	if days[2].from != "2026-10-24T22:00:00Z" || days[2].to != "2026-10-25T22:59:59.999Z" {
		t.Fatalf("DST day range %v", days[2])
	}
	// Newest first: the latest export was generated last (Oct 29).
	if f := items[0]["filter_criteria"].(map[string]any)["date_from_utc"]; f != days[6].from {
		t.Errorf("first listed export is of %v, want the newest (%s)", f, days[6].from)
	}
	g := e.do("GET", schedulesPath+"/"+id, tok, "", nil).json(t)
	if g["last_export_id"] != items[0]["id"] {
		t.Errorf("last_export_id %v, want %v", g["last_export_id"], items[0]["id"])
	}
	// Another tenant sees nothing of it.
	otherTok := e.token(newUser(), capsAll, newTenant().ent+":subtree")
	wantError(t, e.do("GET", schedulesPath+"/"+id, otherTok, "", nil), http.StatusNotFound, codeScheduleNotFound, msgScheduleNotFound, reasonScheduleNotFound)
	wantError(t, e.do("GET", schedulesPath+"/"+id+"/exports", otherTok, "", nil), http.StatusNotFound, codeScheduleNotFound, msgScheduleNotFound, reasonScheduleNotFound)
	wantError(t, e.do("DELETE", schedulesPath+"/"+id, otherTok, "", nil), http.StatusNotFound, codeScheduleNotFound, msgScheduleNotFound, reasonScheduleNotFound)
	if l := e.do("GET", schedulesPath, otherTok, "", nil).json(t); len(l["items"].([]any)) != 0 {
		t.Errorf("other tenant lists %v", l)
	}
	if l := e.do("GET", schedulesPath, tok, "", nil).json(t); len(l["items"].([]any)) != 1 || l["items"].([]any)[0].(map[string]any)["id"] != id {
		t.Errorf("owner lists %v", l)
	}
	// Delete: 204, gone, its exports stay, no more are made.
	wantError(t, e.do("DELETE", schedulesPath+"/"+id, e.token(user, capsRead, tn.ent+":subtree"), "", nil), http.StatusForbidden, codeForbidden, msgMissingCap, reasonMissingCapability)
	if d := e.do("DELETE", schedulesPath+"/"+id, tok, "", nil); d.status != http.StatusNoContent || len(d.body) != 0 {
		t.Fatalf("delete: %d %s", d.status, d.body)
	}
	wantError(t, e.do("GET", schedulesPath+"/"+id, tok, "", nil), http.StatusNotFound, codeScheduleNotFound, msgScheduleNotFound, reasonScheduleNotFound)
	if x := e.do("GET", exportsPath+"/"+items[0]["id"].(string), tok, "", nil); x.status != http.StatusOK {
		t.Errorf("export after schedule delete: %d", x.status)
	}
	now = now.AddDate(0, 0, 5)
	sweep(0)
}

// waitReady polls an export until it is final and requires ready.
func waitReady(t *testing.T, e *env, tok, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := e.do("GET", exportsPath+"/"+id, tok, "", nil).json(t)
		if engine.Terminal(m["status"].(string)) {
			if m["status"] != engine.StatusReady {
				t.Fatalf("export %s ended %v (%v)", id, m["status"], m["failure_reason"])
			}
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s still %v", id, m["status"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestScheduleSweepAfterCrashAndUnderLimits drives the sweep on a real
// engine whose enterprise exports block: a replica that died after
// claiming the periods, and one that died after creating an export but
// before recording the run, leave work the next sweep completes with no
// second export; and a backfill of 10 periods is submitted in turn,
// never beyond the enterprise's limits (2 running + 3 pending here): the
// rest waits for later sweeps, which make exactly the remaining ones.
func TestScheduleSweepAfterCrashAndUnderLimits(t *testing.T) {
	br := &blockingReader{Reader: source.New(chCfg, source.Options{})}
	e := newEnv(t, envOptions{reader: br, tuneSrv: func(c *Config) { c.Schedules = pg.Store },
		tune: func(c *engine.Config) { c.MaxPendingPerEnterprise = 3 }})
	tn := newTenant()
	br.blockEnterprise(tn.ent)
	tok := e.token(newUser(), capsAll, tn.ent+":subtree")
	r := e.do("POST", schedulesPath, tok, scheduleBody("day", "UTC", "2026-03-01T00:00:00Z", 0, exportTemplateJSON("enterprise", tn.ent)), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	ctx := context.Background()
	now := time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC) // March 1-10 due
	sc, err := pg.Store.GetSchedule(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := sc.Plan()
	if err != nil {
		t.Fatal(err)
	}
	// The dead replica claimed all ten and created March 1's export.
	if n, err := pg.Store.Claim(ctx, id, plan.Due(now), plan.NextRun(now)); err != nil || n != 10 {
		t.Fatalf("claim: %d %v", n, err)
	}
	runs, err := pg.Store.OpenRuns(ctx, 20, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var first *schedules.Run
	for _, run := range runs {
		if run.Schedule.ID == id && (first == nil || run.Period.Start.Before(first.Period.Start)) {
			first = run
		}
	}
	if _, created, err := e.eng.SubmitWith(ctx, first.Schedule.ExportOf(first.ExportID, first.Period), first.Key(), nil); err != nil || !created {
		t.Fatalf("dead replica's submit: %v %v", created, err)
	}
	run, err := schedules.NewRunner(schedules.RunnerConfig{Store: pg.Store, Engine: e.eng, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (exports, live int) {
		t.Helper()
		if err := pg.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'running'))
			FROM operations_activity_exports WHERE enterprise_ref = $1`, tn.ent).Scan(&exports, &live); err != nil {
			t.Fatal(err)
		}
		return
	}
	// March 1 is found made (not created again); the enterprise then holds
	// 2 running + 3 pending at most (the blocked exports never end).
	waitRunning := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var running int
			_ = pg.Pool.QueryRow(ctx, `SELECT count(*) FROM operations_activity_exports WHERE enterprise_ref = $1 AND status = 'running'`, tn.ent).Scan(&running)
			if running == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d running, want %d", running, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitRunning(1)
	st, err := run.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(2)
	exports, live := count()
	t.Logf("first sweep %+v: %d exports, %d live", st, exports, live)
	if st.Submitted < 1 || exports > 5 || live != exports || st.Created+1 != exports || st.Deferred == 0 {
		t.Fatalf("first sweep %+v: %d exports (%d live), want at most 2 running + 3 pending and the rest deferred", st, exports, live)
	}
	// Free the enterprise (cancel what it holds) and sweep until done.
	made := exports
	for round := 0; made < 10; round++ {
		if round > 10 {
			t.Fatalf("backfill stuck at %d exports", made)
		}
		rows, err := pg.Pool.Query(ctx, `SELECT id::text FROM operations_activity_exports WHERE enterprise_ref = $1 AND status IN ('pending', 'running')`, tn.ent)
		if err != nil {
			t.Fatal(err)
		}
		var live []string
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			live = append(live, id)
		}
		rows.Close()
		for _, x := range live {
			if _, err := e.eng.Cancel(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		st, err := run.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		made += st.Created
		if n, _ := count(); n != made || n > 10 {
			t.Fatalf("after sweep %+v: %d exports, counted %d made", st, n, made)
		}
	}
	var dup int
	if err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT date_from_utc FROM operations_activity_exports
		WHERE enterprise_ref = $1 GROUP BY date_from_utc HAVING count(*) > 1) d`, tn.ent).Scan(&dup); err != nil || dup != 0 {
		t.Fatalf("%d periods with more than one export (%v)", dup, err)
	}
	if st, err := run.Sweep(ctx); err != nil || st.Created != 0 || st.Submitted != 0 {
		t.Fatalf("sweep after the backfill: %+v %v", st, err)
	}
}

// A schedule of a client that had no activity when it was made (its
// creator names the client itself) exports the client's rows once they
// appear: the runner resolves the scope at each run, not only at creation.
func TestScheduleOfClientWithoutActivityYet(t *testing.T) {
	e := newScheduleEnv(t)
	tn := newTenant()
	user := newUser()
	tok := e.token(user, capsAll, tn.client)
	r := e.do("POST", schedulesPath, tok, scheduleBody("day", "UTC", "2026-09-01T00:00:00Z", 0, exportTemplateJSON("client", tn.client)), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// The client's first activity arrives after the schedule was made.
	day := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	insert(t, []activity.Row{
		row(t, tn, tn.client, tn.acct, day.UnixMilli()+1000, "7.25", "first"),
		row(t, tn, tn.client, tn.acct, day.UnixMilli()+2000, "8", "second"),
	})
	now := day.Add(24 * time.Hour)
	run, err := schedules.NewRunner(schedules.RunnerConfig{Store: pg.Store, Engine: e.eng, Scopes: engine.NewScopes(pool),
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// The sweep also serves the schedules other tests of the package left
	// due (a sweep submits a bounded number of runs): sweep until this
	// schedule's period is made, and look at its exports only.
	id := r.json(t)["id"].(string)
	defer e.do("DELETE", schedulesPath+"/"+id, tok, "", nil) // no due schedule outlives the test
	var items []any
	for i := 0; i < 20 && len(items) == 0; i++ {
		if _, err := run.Sweep(context.Background()); err != nil && !errors.Is(err, engine.ErrTooManyPending) {
			t.Fatalf("sweep: %v", err)
		}
		items = e.do("GET", schedulesPath+"/"+id+"/exports", tok, "", nil).json(t)["items"].([]any)
	}
	if len(items) != 1 {
		t.Fatalf("%d exports", len(items))
	}
	x := waitReady(t, e, tok, items[0].(map[string]any)["id"].(string))
	if fmt.Sprint(x["row_count"]) != "2" {
		t.Fatalf("scheduled export of a client whose activity came later: %v rows, want 2", x["row_count"])
	}
}
