package schedules

import (
	"context"
	"errors"
	"time"

	"github.com/exportd/exportd/engine"
)

// Schedule is a stored schedule.
type Schedule struct {
	ID           string
	Every        Every
	TimeZone     string // IANA name; "UTC" by default
	StartsAt     time.Time
	DelayMinutes int
	Export       Template
	// EnterpriseRef and ClientRef are the scope's parents, resolved when
	// the schedule was created; its exports are made under them.
	EnterpriseRef, ClientRef string
	CreatedBy                string
	CreatedAt                time.Time
	// LastExportID is the export of the latest period submitted ("" none).
	LastExportID string
	// NextDueAt is when the sweep next has a period to claim.
	NextDueAt time.Time
}

// Template is the export a schedule makes every period: a create request
// without its dates. The json tags are the stored form.
type Template struct {
	Format      string         `json:"format"`
	Compression string         `json:"compression"`
	ScopeKind   string         `json:"scope_kind"`
	ScopeRef    string         `json:"scope_ref"`
	Options     engine.Options `json:"options"`
}

// Plan returns the schedule's timing.
func (s *Schedule) Plan() (Plan, error) {
	loc, err := engine.LoadZone(s.TimeZone)
	if err != nil {
		return Plan{}, err
	}
	return NewPlan(s.Every, loc, s.StartsAt, s.DelayMinutes)
}

// ExportOf returns the export of period q: the template with the period's
// dates, made by the schedule's creator under the scope resolved at
// creation. id is the run's export id.
func (s *Schedule) ExportOf(id string, q Period) *engine.Export {
	t := &s.Export
	return &engine.Export{
		ID:            id,
		Format:        t.Format,
		Compression:   t.Compression,
		DateFrom:      q.DateFrom(),
		DateTo:        q.DateTo(),
		ScopeKind:     t.ScopeKind,
		ScopeRef:      t.ScopeRef,
		EnterpriseRef: s.EnterpriseRef,
		ClientRef:     s.ClientRef,
		GeneratedBy:   s.CreatedBy,
		Options:       t.Options,
	}
}

// Run is a claimed period of a schedule and the export it makes.
type Run struct {
	Schedule *Schedule
	Period   Period
	ExportID string
}

// KeyCaller is the idempotency caller of a schedule's exports:
// "schedules/<id>", a namespace no token subject can have (subjects are
// users/ or service-accounts/ refs), so no API caller's key can collide.
func KeyCaller(scheduleID string) string { return "schedules/" + scheduleID }

// Key is the idempotency key of a run: one per (schedule, period).
func (r *Run) Key() *engine.IdempotencyKey {
	start := r.Period.DateFrom()
	return &engine.IdempotencyKey{Caller: KeyCaller(r.Schedule.ID), Key: start, RequestHash: "period " + start + " " + r.ExportID}
}

// ErrNotFound: no such schedule (or it was deleted).
var ErrNotFound = errors.New("schedule not found")

// Store is what the sweep needs of the control plane (engine/pgstore).
// Methods are safe for concurrent use, also from several replicas; they
// block on the database and honour ctx.
type Store interface {
	// DueSchedules returns up to limit live schedules whose NextDueAt is at
	// or before now, after the schedule id after ("" first), by id.
	DueSchedules(ctx context.Context, now time.Time, after string, limit int) ([]*Schedule, error)
	// Claim records runs for those of periods (oldest first) not claimed
	// before and sets the schedule's NextDueAt to next; a run already
	// claimed (by this or another replica) is left as it is. It reports how
	// many runs it recorded.
	Claim(ctx context.Context, scheduleID string, periods []Period, next time.Time) (int, error)
	// OpenRuns returns up to limit runs of live schedules whose export is
	// not known to exist yet, oldest period first, at most perSchedule of
	// one schedule.
	OpenRuns(ctx context.Context, perSchedule, limit int) ([]*Run, error)
	// MarkSubmitted records that the run's export exists.
	MarkSubmitted(ctx context.Context, scheduleID string, periodStart time.Time) error
}
