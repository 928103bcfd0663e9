package schedules

import (
	"math/rand/v2"
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func plan(t *testing.T, every Every, zoneName, startsAt string, delay int) Plan {
	t.Helper()
	p, err := NewPlan(every, zone(t, zoneName), utc(startsAt), delay)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPeriodAt checks the period containing an instant: its start and
// end instants, the export's date range, and its length in hours (DST
// days are 23 or 25 hours and still one day).
func TestPeriodAt(t *testing.T) {
	for _, c := range []struct {
		name, zone string
		every      Every
		at         string
		from, to   string // DateFrom, DateTo
		hours      float64
	}{
		{"plain UTC day", "UTC", Day, "2026-04-02T13:14:15.5Z", "2026-04-02T00:00:00Z", "2026-04-02T23:59:59.999Z", 24},
		{"Zurich spring DST day", "Europe/Zurich", Day, "2026-03-29T12:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T21:59:59.999Z", 23},
		{"Zurich autumn DST day", "Europe/Zurich", Day, "2026-10-25T12:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T22:59:59.999Z", 25},
		{"Zurich day before spring DST", "Europe/Zurich", Day, "2026-03-28T22:59:59.999Z", "2026-03-27T23:00:00Z", "2026-03-28T22:59:59.999Z", 24},
		{"New York spring DST day", "America/New_York", Day, "2026-03-08T06:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T03:59:59.999Z", 23},
		{"New York autumn DST day", "America/New_York", Day, "2026-11-01T23:00:00Z", "2026-11-01T04:00:00Z", "2026-11-02T04:59:59.999Z", 25},
		{"New York local evening is the previous UTC date's day", "America/New_York", Day, "2026-11-02T04:30:00Z", "2026-11-01T04:00:00Z", "2026-11-02T04:59:59.999Z", 25},
		{"Sao Paulo day that skipped midnight", "America/Sao_Paulo", Day, "2018-11-04T12:00:00Z", "2018-11-04T03:00:00Z", "2018-11-05T01:59:59.999Z", 23},
		{"New York ISO week with spring DST", "America/New_York", Week, "2026-03-08T12:00:00Z", "2026-03-02T05:00:00Z", "2026-03-09T03:59:59.999Z", 167},
		{"Zurich ISO week with autumn DST", "Europe/Zurich", Week, "2026-10-22T00:00:00Z", "2026-10-18T22:00:00Z", "2026-10-25T22:59:59.999Z", 169},
		{"ISO week 53 of 2026 crosses the year", "UTC", Week, "2027-01-03T23:59:59.999Z", "2026-12-28T00:00:00Z", "2027-01-03T23:59:59.999Z", 168},
		{"Monday belongs to its own week", "UTC", Week, "2026-12-28T00:00:00Z", "2026-12-28T00:00:00Z", "2027-01-03T23:59:59.999Z", 168},
		{"Sunday belongs to the week of the Monday before", "Europe/Zurich", Week, "2026-04-05T21:59:59Z", "2026-03-29T22:00:00Z", "2026-04-05T21:59:59.999Z", 168},
		{"leap February", "UTC", Month, "2024-02-29T12:00:00Z", "2024-02-01T00:00:00Z", "2024-02-29T23:59:59.999Z", 29 * 24},
		{"common February", "UTC", Month, "2026-02-10T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-28T23:59:59.999Z", 28 * 24},
		{"Zurich March holds spring DST", "Europe/Zurich", Month, "2026-03-31T21:59:59.999Z", "2026-02-28T23:00:00Z", "2026-03-31T21:59:59.999Z", 31*24 - 1},
		{"Zurich month starts at local midnight (UTC still in March)", "Europe/Zurich", Month, "2026-03-31T22:00:00Z", "2026-03-31T22:00:00Z", "2026-04-30T21:59:59.999Z", 30 * 24},
		{"New York November holds autumn DST", "America/New_York", Month, "2026-11-15T00:00:00Z", "2026-11-01T04:00:00Z", "2026-12-01T04:59:59.999Z", 30*24 + 1},
		{"December to January", "America/New_York", Month, "2026-12-31T23:00:00Z", "2026-12-01T05:00:00Z", "2027-01-01T04:59:59.999Z", 31 * 24},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := plan(t, c.every, c.zone, "2000-01-01T00:00:00Z", 0)
			q := p.At(utc(c.at))
			if q.DateFrom() != c.from || q.DateTo() != c.to {
				t.Errorf("period = [%s, %s], want [%s, %s]", q.DateFrom(), q.DateTo(), c.from, c.to)
			}
			if h := q.End.Sub(q.Start).Hours(); h != c.hours {
				t.Errorf("length %vh, want %vh", h, c.hours)
			}
		})
	}
}

func dates(ps []Period) []string {
	out := make([]string, len(ps))
	for i, q := range ps {
		out[i] = q.DateFrom() + "/" + q.DateTo()
	}
	return out
}

// TestDue checks which periods are due at an instant (begun at or after
// starts_at, ended delay ago), and the next run time.
func TestDue(t *testing.T) {
	for _, c := range []struct {
		name, zone string
		every      Every
		startsAt   string
		delay      int
		now        string
		want       []string // DateFrom/DateTo, oldest first
		next       string
	}{
		{"one second before the delay is over", "UTC", Day, "2026-04-01T00:00:00Z", 60, "2026-04-04T00:59:59.999Z",
			[]string{"2026-04-01T00:00:00Z/2026-04-01T23:59:59.999Z", "2026-04-02T00:00:00Z/2026-04-02T23:59:59.999Z"},
			"2026-04-04T01:00:00Z"},
		{"the delay is over to the millisecond", "UTC", Day, "2026-04-01T00:00:00Z", 60, "2026-04-04T01:00:00Z",
			[]string{"2026-04-01T00:00:00Z/2026-04-01T23:59:59.999Z", "2026-04-02T00:00:00Z/2026-04-02T23:59:59.999Z",
				"2026-04-03T00:00:00Z/2026-04-03T23:59:59.999Z"},
			"2026-04-05T01:00:00Z"},
		{"delay 0: due at the end", "UTC", Day, "2026-04-01T00:00:00Z", 0, "2026-04-02T00:00:00Z",
			[]string{"2026-04-01T00:00:00Z/2026-04-01T23:59:59.999Z"}, "2026-04-03T00:00:00Z"},
		{"delay 1440 with DST: a day after the 23-hour day ends", "Europe/Zurich", Day, "2026-03-28T23:00:00Z", 1440, "2026-03-30T21:59:59Z",
			nil, "2026-03-30T22:00:00Z"},
		{"starts_at inside a day skips that day", "UTC", Day, "2026-04-01T12:00:00Z", 0, "2026-04-03T00:00:00Z",
			[]string{"2026-04-02T00:00:00Z/2026-04-02T23:59:59.999Z"}, "2026-04-04T00:00:00Z"},
		{"starts_at at a local midnight that is not a UTC one", "America/New_York", Day, "2026-11-01T04:00:00Z", 0, "2026-11-03T05:00:00Z",
			[]string{"2026-11-01T04:00:00Z/2026-11-02T04:59:59.999Z", "2026-11-02T05:00:00Z/2026-11-03T04:59:59.999Z"},
			"2026-11-04T05:00:00Z"},
		{"starts_at in the future", "UTC", Week, "2026-12-30T00:00:00Z", 60, "2026-12-01T00:00:00Z",
			nil, "2027-01-11T01:00:00Z"},
		{"New York DST days in a backfill", "America/New_York", Day, "2026-03-07T05:00:00Z", 0, "2026-03-10T04:00:00Z",
			[]string{"2026-03-07T05:00:00Z/2026-03-08T04:59:59.999Z", "2026-03-08T05:00:00Z/2026-03-09T03:59:59.999Z",
				"2026-03-09T04:00:00Z/2026-03-10T03:59:59.999Z"},
			"2026-03-11T04:00:00Z"},
		{"weeks across ISO week 53", "America/New_York", Week, "2026-12-20T00:00:00Z", 0, "2027-01-10T12:00:00Z",
			[]string{"2026-12-21T05:00:00Z/2026-12-28T04:59:59.999Z", "2026-12-28T05:00:00Z/2027-01-04T04:59:59.999Z"},
			"2027-01-11T05:00:00Z"},
		{"months from mid-December, leap February", "Europe/Zurich", Month, "2023-12-15T00:00:00Z", 60, "2024-04-10T00:00:00Z",
			[]string{"2023-12-31T23:00:00Z/2024-01-31T22:59:59.999Z", "2024-01-31T23:00:00Z/2024-02-29T22:59:59.999Z",
				"2024-02-29T23:00:00Z/2024-03-31T21:59:59.999Z"},
			"2024-04-30T23:00:00Z"},
		{"month due only after its delay", "UTC", Month, "2026-01-01T00:00:00Z", 1440, "2026-02-01T23:59:59.999Z",
			nil, "2026-02-02T00:00:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := plan(t, c.every, c.zone, c.startsAt, c.delay)
			got := dates(p.Due(utc(c.now)))
			if len(got) != len(c.want) {
				t.Fatalf("due = %q, want %q", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("due[%d] = %s, want %s", i, got[i], c.want[i])
				}
			}
			if n := p.NextRun(utc(c.now)); !n.Equal(utc(c.next)) {
				t.Errorf("next run %s, want %s", n.UTC().Format(time.RFC3339Nano), c.next)
			}
		})
	}
}

// TestDueAtMost366 checks the backfill bound: of a long past, only the 366
// most recent periods are due, contiguous and ending with the latest.
func TestDueAtMost366(t *testing.T) {
	for _, c := range []struct {
		every       Every
		zone        string
		startsAt    string
		now         string
		first       string
		last        string
		wantPeriods int
	}{
		{Day, "UTC", "2020-01-01T00:00:00Z", "2026-04-01T01:00:00Z", "2025-03-31T00:00:00Z", "2026-03-31T00:00:00Z", 366},
		{Day, "Europe/Zurich", "2020-01-01T00:00:00Z", "2026-04-01T00:00:00Z", "2025-03-30T22:00:00Z", "2026-03-30T22:00:00Z", 366},
		{Week, "UTC", "2000-01-01T00:00:00Z", "2026-04-07T00:00:00Z", "2019-04-01T00:00:00Z", "2026-03-30T00:00:00Z", 366},
		{Month, "UTC", "1990-01-01T00:00:00Z", "2026-04-02T00:00:00Z", "1995-10-01T00:00:00Z", "2026-03-01T00:00:00Z", 366},
		{Day, "UTC", "2025-04-01T00:00:00Z", "2026-04-01T01:00:00Z", "2025-04-01T00:00:00Z", "2026-03-31T00:00:00Z", 365},
	} {
		p := plan(t, c.every, c.zone, c.startsAt, 60)
		due := p.Due(utc(c.now))
		if len(due) != c.wantPeriods {
			t.Fatalf("%s %s: %d periods, want %d", c.every, c.zone, len(due), c.wantPeriods)
		}
		if f, l := due[0].DateFrom(), due[len(due)-1].DateFrom(); f != c.first || l != c.last {
			t.Errorf("%s %s: periods %s..%s, want %s..%s", c.every, c.zone, f, l, c.first, c.last)
		}
		for i := 1; i < len(due); i++ {
			if !due[i].Start.Equal(due[i-1].End) {
				t.Fatalf("%s: gap between %v and %v", c.every, due[i-1], due[i])
			}
		}
	}
}

// TestPeriodProperties checks, for random instants in several zones and
// years, that the period holding t contains it, starts at the first instant
// of a local date (a Monday for weeks, the 1st for months), and chains with
// its neighbours.
func TestPeriodProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	zones := []string{"UTC", "Europe/Zurich", "America/New_York", "America/Sao_Paulo", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata"}
	lo, hi := utc("1990-01-01T00:00:00Z").Unix(), utc("2040-01-01T00:00:00Z").Unix()
	for i := 0; i < 20000; i++ {
		loc := zone(t, zones[i%len(zones)])
		every := []Every{Day, Week, Month}[i%3]
		p := Plan{Every: every, Zone: loc}
		at := time.Unix(lo+r.Int64N(hi-lo), 0)
		q := p.At(at)
		if at.Before(q.Start) || !at.Before(q.End) {
			t.Fatalf("%s %s: %v not in [%v, %v)", every, loc, at, q.Start, q.End)
		}
		sy, sm, sd := q.Start.In(loc).Date()
		by, bm, bd := q.Start.Add(-time.Nanosecond).In(loc).Date()
		if sy == by && sm == bm && sd == bd {
			t.Fatalf("%s %s: start %v is not the first instant of its local date", every, loc, q.Start)
		}
		switch every {
		case Week:
			if wd := q.Start.In(loc).Weekday(); wd != time.Monday {
				t.Fatalf("week of %v starts on %v", at, wd)
			}
		case Month:
			if sd != 1 {
				t.Fatalf("month of %v starts on day %d", at, sd)
			}
		}
		if n := p.At(q.End); !n.Start.Equal(q.End) {
			t.Fatalf("%s %s: next period of %v starts %v", every, loc, q, n.Start)
		}
		if pr := p.prev(q); !pr.End.Equal(q.Start) || !p.At(pr.Start).Start.Equal(pr.Start) {
			t.Fatalf("%s %s: previous period of %v is %v", every, loc, q, pr)
		}
	}
}

func TestNewPlanRejects(t *testing.T) {
	for _, c := range []struct {
		every Every
		delay int
		want  error
	}{{"hour", 60, ErrEvery}, {"", 60, ErrEvery}, {"Day", 60, ErrEvery}, {Day, -1, ErrDelay}, {Day, 1441, ErrDelay}} {
		if _, err := NewPlan(c.every, time.UTC, time.Now(), c.delay); err != c.want {
			t.Errorf("NewPlan(%q, %d) = %v, want %v", c.every, c.delay, err, c.want)
		}
	}
	for _, d := range []int{0, 1440} {
		if _, err := NewPlan(Month, time.UTC, time.Now(), d); err != nil {
			t.Errorf("delay %d refused: %v", d, err)
		}
	}
}
