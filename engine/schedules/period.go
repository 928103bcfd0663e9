// Package schedules makes the exports of scheduled export definitions
// (SPEC §9). period.go is the pure part: the periods of a schedule (days,
// ISO weeks from Monday, calendar months in an IANA time zone), which of
// them are due at an instant, and when the next one will be. runner.go is
// the shell that owns the sweep goroutine and talks to the store and the
// engine.
package schedules

import (
	"errors"
	"fmt"
	"time"
)

// Every is a schedule's period kind.
type Every string

// Period kinds (SPEC §9).
const (
	Day   Every = "day"
	Week  Every = "week"
	Month Every = "month"
)

// Valid reports whether e is a known period kind.
func (e Every) Valid() bool { return e == Day || e == Week || e == Month }

// Delay bounds (SPEC §9: default 60 minutes, 0-1440).
const (
	DefaultDelayMinutes = 60
	MaxDelayMinutes     = 1440
)

// MaxBackfill is the most periods a schedule makes in the past (SPEC §9:
// "at most 366 periods in the past"). The reading: at any instant, of the
// periods that are due (begun at or after starts_at and ended at least
// delay ago) only the MaxBackfill most recent are ever made; older ones are
// skipped for good, also when they were never made (a schedule created
// with starts_at two years back, or replicas down for more than 366
// periods). For days that is a year (a leap year's 366 days), for weeks
// seven years, for months thirty years.
const MaxBackfill = 366

// Period is one period of a schedule: [Start, End) in absolute time, Start
// and End being local midnights in the schedule's zone.
type Period struct {
	Start, End time.Time
}

// DateFrom is the period's export date_from_utc: its start, RFC 3339 UTC,
// the same normalised spelling a create request's dates get (trailing
// fractional zeros dropped).
func (p Period) DateFrom() string { return formatMillis(p.Start) }

// DateTo is the period's export date_to_utc: its end minus 1 ms (the
// export's upper bound is inclusive at millisecond precision, SPEC §6).
func (p Period) DateTo() string { return formatMillis(p.End.Add(-time.Millisecond)) }

func formatMillis(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}

// Plan is the pure description of a schedule's timing.
type Plan struct {
	Every    Every
	Zone     *time.Location
	StartsAt time.Time
	Delay    time.Duration
}

// Errors of NewPlan; the field each concerns is named by the caller.
var (
	ErrEvery = errors.New("every must be day, week or month")
	ErrDelay = fmt.Errorf("delay_minutes must be 0-%d", MaxDelayMinutes)
)

// NewPlan validates a schedule's timing.
func NewPlan(every Every, zone *time.Location, startsAt time.Time, delayMinutes int) (Plan, error) {
	if !every.Valid() {
		return Plan{}, ErrEvery
	}
	if delayMinutes < 0 || delayMinutes > MaxDelayMinutes {
		return Plan{}, ErrDelay
	}
	if zone == nil {
		zone = time.UTC
	}
	return Plan{Every: every, Zone: zone, StartsAt: startsAt, Delay: time.Duration(delayMinutes) * time.Minute}, nil
}

// Floor returns the start of the period that contains t.
func (p Plan) Floor(t time.Time) time.Time {
	y, m, d := t.In(p.Zone).Date()
	switch p.Every {
	case Week:
		wd := (int(t.In(p.Zone).Weekday()) + 6) % 7 // Monday 0 (ISO 8601)
		return dayStart(y, m, d-wd, p.Zone)
	case Month:
		return dayStart(y, m, 1, p.Zone)
	}
	return dayStart(y, m, d, p.Zone)
}

// next returns the start of the period after the one starting at start.
func (p Plan) next(start time.Time) time.Time {
	y, m, d := start.In(p.Zone).Date()
	switch p.Every {
	case Week:
		return dayStart(y, m, d+7, p.Zone)
	case Month:
		return dayStart(y, m+1, 1, p.Zone)
	}
	return dayStart(y, m, d+1, p.Zone)
}

// At returns the period that contains t.
func (p Plan) At(t time.Time) Period {
	s := p.Floor(t)
	return Period{Start: s, End: p.next(s)}
}

// prev returns the period before q.
func (p Plan) prev(q Period) Period {
	s := p.Floor(q.Start.Add(-time.Nanosecond))
	return Period{Start: s, End: q.Start}
}

// First is the first period of the schedule: the earliest that begins at
// or after StartsAt (a StartsAt inside a period skips that period: it
// would not be whole).
func (p Plan) First() Period {
	q := p.At(p.StartsAt)
	if q.Start.Before(p.StartsAt) {
		q = Period{Start: q.End, End: p.next(q.End)}
	}
	return q
}

// Due returns, oldest first, the periods due at now: begun at or after
// StartsAt and ended at least Delay before now, the MaxBackfill most
// recent of them only (see MaxBackfill).
func (p Plan) Due(now time.Time) []Period {
	first := p.First()
	// The period containing now-Delay is not due yet (its end is after
	// now-Delay); the one before it is the latest due.
	last := p.prev(p.At(now.Add(-p.Delay)))
	if last.Start.Before(first.Start) {
		return nil
	}
	out := make([]Period, 0, 8)
	for q := last; !q.Start.Before(first.Start) && len(out) < MaxBackfill; q = p.prev(q) {
		out = append(out, q)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// NextRun returns when the next period not yet due at now becomes due: its
// end plus Delay (after now).
func (p Plan) NextRun(now time.Time) time.Time {
	q := p.At(now.Add(-p.Delay))
	if first := p.First(); q.Start.Before(first.Start) {
		q = first
	}
	return q.End.Add(p.Delay)
}

// dayStart returns the first instant of the local date (y, m, d) in loc
// (the date normalised as time.Date does: d may overflow the month). That
// is local midnight, except in zones whose clocks once skipped midnight
// (a DST change at 00:00, e.g. America/Sao_Paulo until 2018): then the
// day begins at the transition, and time.Date, which does not promise which
// side of a gap it picks, may have answered an instant of the day before.
func dayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	ty, tm, td := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Date()
	t := time.Date(ty, tm, td, 0, 0, 0, 0, loc)
	if ly, lm, ld := t.Date(); ly != ty || lm != tm || ld != td {
		_, end := t.ZoneBounds() // t lies before the gap: the day starts where its zone period ends
		if !end.IsZero() {
			t = end
		}
	}
	return t
}
