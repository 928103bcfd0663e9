package server

import (
	"testing"
	"time"

	"github.com/exportd/exportd/engine/schedules"
)

// FuzzDecodeSchedule: whatever the body, decodeSchedule never panics and
// either refuses it with a 400 invalid_request, or accepts a schedule
// whose every parts are valid (a known period kind, a loadable zone, a
// delay 0-1440, a valid export template) and whose period math holds
// (the first period begins at or after starts_at).
func FuzzDecodeSchedule(f *testing.F) {
	ent := "enterprises/7e0c7d6e-5d1a-4d8e-9d63-0b6b3f3c2a11"
	for _, s := range []string{
		`{"every":"day","export":{"format":"csv","requested_scope":{"kind":"enterprise","ref":"` + ent + `"}}}`,
		`{"every":"month","time_zone":"America/New_York","starts_at_utc":"2026-03-08T07:00:00.5Z","delay_minutes":1440,` +
			`"export":{"format":"jsonl","columns":["amount"],"filter_criteria":{"families":["deposit"]},"requested_scope":{"kind":"enterprise","ref":"` + ent + `"}}}`,
		`{"every":"week","delay_minutes":-0,"export":{"format":"parquet","compression":"zstd","requested_scope":{"kind":"enterprise","ref":"` + ent + `"}}}`,
		`{"every":"day","delay_minutes":1e3,"export":{}}`,
		`{"every":"day","export":{"format":"csv","filter_criteria":{"date_to_utc":"x"}}}`,
		`[]`, `{"every":null}`, `{"every":"day","export":{"format":"csv","requested_scope":{"kind":"enterprise","ref":"` + ent + `"}},"every":"week"}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, e := decodeSchedule(body, now)
		if e != nil {
			if r != nil || e.status != 400 || e.code != codeInvalidRequest || e.reason == "" {
				t.Fatalf("refusal %+v with %v", e, r)
			}
			return
		}
		if !r.Every.Valid() || r.Plan.Zone == nil || r.Plan.Delay < 0 || r.Plan.Delay > schedules.MaxDelayMinutes*time.Minute ||
			r.Export == nil || r.Export.Ref == "" || r.Export.DateFrom != "" {
			t.Fatalf("accepted %q as %+v", body, r)
		}
		if first := r.Plan.First(); first.Start.Before(r.Plan.StartsAt) || !first.End.After(first.Start) {
			t.Fatalf("first period %v of %+v", first, r.Plan)
		}
	})
}
