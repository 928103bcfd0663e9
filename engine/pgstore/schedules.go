package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/schedules"
)

var _ schedules.Store = (*Store)(nil)

const scheduleColumns = `s.id::text, s.every, s.time_zone, s.starts_at, s.delay_minutes, s.export, s.enterprise_ref,
	s.client_ref, s.created_by, s.created_at, s.next_due_at,
	COALESCE((SELECT r.export_id::text FROM operations_activity_export_schedule_runs r
		WHERE r.schedule_id = s.id AND r.submitted_at IS NOT NULL ORDER BY r.period_start DESC LIMIT 1), '')`

func scanSchedule(row pgx.Row) (*schedules.Schedule, error) {
	var (
		s                       schedules.Schedule
		every                   string
		tmpl                    []byte
		starts, created, nextAt time.Time
	)
	if err := row.Scan(&s.ID, &every, &s.TimeZone, &starts, &s.DelayMinutes, &tmpl, &s.EnterpriseRef, &s.ClientRef,
		&s.CreatedBy, &created, &nextAt, &s.LastExportID); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(tmpl, &s.Export); err != nil {
		return nil, fmt.Errorf("decode export template of schedule %s: %w", s.ID, err)
	}
	s.Every = schedules.Every(every)
	s.StartsAt, s.CreatedAt, s.NextDueAt = starts.UTC(), created.UTC(), nextAt.UTC()
	return &s, nil
}

func collectSchedules(rows pgx.Rows, err error) ([]*schedules.Schedule, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*schedules.Schedule
	for rows.Next() {
		s, err := scanSchedule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// CreateSchedule inserts s (ID, timing, template, resolved scope, creator
// and NextDueAt set by the caller); the database assigns CreatedAt.
func (st *Store) CreateSchedule(ctx context.Context, s *schedules.Schedule) error {
	tmpl, err := json.Marshal(s.Export)
	if err != nil {
		return fail(err, "encode export template")
	}
	var created time.Time
	err = st.pool.QueryRow(ctx, `INSERT INTO operations_activity_export_schedules (id, every, time_zone, starts_at,
		delay_minutes, export, scope_kind, scope_ref, enterprise_ref, client_ref, created_by, next_due_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING created_at`,
		s.ID, string(s.Every), s.TimeZone, s.StartsAt, s.DelayMinutes, tmpl, s.Export.ScopeKind, s.Export.ScopeRef,
		s.EnterpriseRef, s.ClientRef, s.CreatedBy, s.NextDueAt).Scan(&created)
	if err != nil {
		return fail(err, "insert schedule %s", s.ID)
	}
	s.CreatedAt = created.UTC()
	return nil
}

// GetSchedule returns a live schedule, or schedules.ErrNotFound (also once
// deleted).
func (st *Store) GetSchedule(ctx context.Context, id string) (*schedules.Schedule, error) {
	s, err := scanSchedule(st.pool.QueryRow(ctx, "SELECT "+scheduleColumns+
		" FROM operations_activity_export_schedules s WHERE s.id = $1 AND NOT s.deleted", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, schedules.ErrNotFound
	}
	if err != nil {
		return nil, fail(err, "read schedule %s", id)
	}
	return s, nil
}

// DeleteSchedule marks a live schedule deleted: it makes no more exports
// (runs claimed but not yet submitted are dropped with it); the exports it
// made stay. schedules.ErrNotFound when there is no live schedule id.
func (st *Store) DeleteSchedule(ctx context.Context, id string) error {
	tag, err := st.pool.Exec(ctx, `UPDATE operations_activity_export_schedules SET deleted = true WHERE id = $1 AND NOT deleted`, id)
	if err != nil {
		return fail(err, "delete schedule %s", id)
	}
	if tag.RowsAffected() == 0 {
		return schedules.ErrNotFound
	}
	return nil
}

// ListSchedules returns up to limit live schedules visible under v, newest
// first (created_at, id), strictly after cursor (GeneratedAtMs holds the
// created_at). Like List, a keyset scan per visibility branch.
func (st *Store) ListSchedules(ctx context.Context, v engine.Visibility, after *engine.Cursor, limit int) ([]*schedules.Schedule, error) {
	var branches []string
	args := []any{limit}
	keyset := ""
	if after != nil {
		args = append(args, time.UnixMilli(after.GeneratedAtMs).UTC(), after.ID)
		keyset = " AND (created_at, id) < ($2, $3::uuid)"
	}
	for _, c := range []struct {
		col  string
		refs []string
	}{{"enterprise_ref", v.Enterprises}, {"scope_ref", v.Refs}, {"client_ref", v.Clients}} {
		for _, ref := range c.refs {
			args = append(args, ref)
			branches = append(branches, fmt.Sprintf(`(SELECT created_at, id FROM operations_activity_export_schedules
				WHERE %s = $%d AND NOT deleted%s ORDER BY created_at DESC, id DESC LIMIT $1)`, c.col, len(args), keyset))
		}
	}
	if len(branches) == 0 {
		return nil, nil
	}
	q := "SELECT " + scheduleColumns + " FROM operations_activity_export_schedules s WHERE s.id IN (SELECT id FROM (" +
		strings.Join(branches, " UNION ") + ") AS keys ORDER BY created_at DESC, id DESC LIMIT $1) ORDER BY s.created_at DESC, s.id DESC"
	out, err := collectSchedules(st.pool.Query(ctx, q, args...))
	if err != nil {
		return nil, fail(err, "list schedules")
	}
	return out, nil
}

// ScheduleExports returns up to limit exports schedule id made, newest
// first (generated_at, id), strictly after cursor. Runs whose export record
// does not exist (not yet submitted, or deleted by record retention) are
// not shown.
func (st *Store) ScheduleExports(ctx context.Context, id string, after *engine.Cursor, limit int) ([]*engine.Export, error) {
	args := []any{id, limit}
	keyset := ""
	if after != nil {
		args = append(args, time.UnixMilli(after.GeneratedAtMs).UTC(), after.ID)
		keyset = " AND (generated_at, id) < ($3, $4::uuid)"
	}
	out, err := collect(st.pool.Query(ctx, "SELECT "+viewColumns+` FROM operations_activity_exports
		WHERE id IN (SELECT export_id FROM operations_activity_export_schedule_runs WHERE schedule_id = $1)`+keyset+`
		ORDER BY generated_at DESC, id DESC LIMIT $2`, args...))
	if err != nil {
		return nil, fail(err, "list exports of schedule %s", id)
	}
	return out, nil
}

// DueSchedules implements schedules.Store.
func (st *Store) DueSchedules(ctx context.Context, now time.Time, after string, limit int) ([]*schedules.Schedule, error) {
	if after == "" {
		after = "00000000-0000-0000-0000-000000000000"
	}
	out, err := collectSchedules(st.pool.Query(ctx, "SELECT "+scheduleColumns+` FROM operations_activity_export_schedules s
		WHERE NOT s.deleted AND s.next_due_at <= $1 AND s.id > $2::uuid ORDER BY s.id LIMIT $3`, now, after, limit))
	if err != nil {
		return nil, fail(err, "read due schedules")
	}
	return out, nil
}

// Claim implements schedules.Store. Under the schedule's row lock (replicas
// claiming one schedule at once take turns), the periods that start at or
// after claimed_through get a run each (ON CONFLICT DO NOTHING keeps a run
// that exists), with a fresh export id.
func (st *Store) Claim(ctx context.Context, scheduleID string, periods []schedules.Period, next time.Time) (int, error) {
	tx, err := st.pool.Begin(ctx)
	if err != nil {
		return 0, fail(err, "begin claim of schedule %s", scheduleID)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	var through *time.Time
	if err := tx.QueryRow(ctx, `SELECT claimed_through FROM operations_activity_export_schedules
		WHERE id = $1 AND NOT deleted FOR UPDATE`, scheduleID).Scan(&through); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, schedules.ErrNotFound
		}
		return 0, fail(err, "lock schedule %s", scheduleID)
	}
	starts := make([]time.Time, 0, len(periods))
	ends := make([]time.Time, 0, len(periods))
	for _, p := range periods {
		if through != nil && p.Start.Before(*through) {
			continue
		}
		starts, ends = append(starts, p.Start), append(ends, p.End)
	}
	n := int64(0)
	if len(starts) > 0 {
		tag, err := tx.Exec(ctx, `INSERT INTO operations_activity_export_schedule_runs (schedule_id, period_start, period_end, export_id)
			SELECT $1, p.s, p.e, gen_random_uuid() FROM unnest($2::timestamptz[], $3::timestamptz[]) AS p(s, e)
			ON CONFLICT DO NOTHING`, scheduleID, starts, ends)
		if err != nil {
			return 0, fail(err, "claim runs of schedule %s", scheduleID)
		}
		n = tag.RowsAffected()
		last := ends[len(ends)-1]
		through = &last
	}
	if _, err := tx.Exec(ctx, `UPDATE operations_activity_export_schedules SET claimed_through = $2, next_due_at = $3 WHERE id = $1`,
		scheduleID, through, next); err != nil {
		return 0, fail(err, "advance schedule %s", scheduleID)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fail(err, "commit claim of schedule %s", scheduleID)
	}
	return int(n), nil
}

// OpenRuns implements schedules.Store.
func (st *Store) OpenRuns(ctx context.Context, perSchedule, limit int) ([]*schedules.Run, error) {
	rows, err := st.pool.Query(ctx, `SELECT `+scheduleColumns+`, o.period_start, o.period_end, o.export_id::text FROM (
			SELECT r.schedule_id, r.period_start, r.period_end, r.export_id,
				row_number() OVER (PARTITION BY r.schedule_id ORDER BY r.period_start) AS n
			FROM operations_activity_export_schedule_runs r WHERE r.submitted_at IS NULL) AS o
		JOIN operations_activity_export_schedules s ON s.id = o.schedule_id
		WHERE o.n <= $1 AND NOT s.deleted ORDER BY o.period_start, o.schedule_id LIMIT $2`, perSchedule, limit)
	if err != nil {
		return nil, fail(err, "read open runs")
	}
	defer rows.Close()
	var out []*schedules.Run
	byID := map[string]*schedules.Schedule{}
	for rows.Next() {
		var (
			s          schedules.Schedule
			every      string
			tmpl       []byte
			starts, c  time.Time
			next       time.Time
			start, end time.Time
			exportID   string
		)
		if err := rows.Scan(&s.ID, &every, &s.TimeZone, &starts, &s.DelayMinutes, &tmpl, &s.EnterpriseRef, &s.ClientRef,
			&s.CreatedBy, &c, &next, &s.LastExportID, &start, &end, &exportID); err != nil {
			return nil, fail(err, "read open runs")
		}
		sp := byID[s.ID]
		if sp == nil {
			if err := json.Unmarshal(tmpl, &s.Export); err != nil {
				return nil, fmt.Errorf("decode export template of schedule %s: %w", s.ID, err)
			}
			s.Every = schedules.Every(every)
			s.StartsAt, s.CreatedAt, s.NextDueAt = starts.UTC(), c.UTC(), next.UTC()
			sp = &s
			byID[s.ID] = sp
		}
		out = append(out, &schedules.Run{Schedule: sp, Period: schedules.Period{Start: start.UTC(), End: end.UTC()}, ExportID: exportID})
	}
	if err := rows.Err(); err != nil {
		return nil, fail(err, "read open runs")
	}
	return out, nil
}

// MarkSubmitted implements schedules.Store.
func (st *Store) MarkSubmitted(ctx context.Context, scheduleID string, periodStart time.Time) error {
	if _, err := st.pool.Exec(ctx, `UPDATE operations_activity_export_schedule_runs SET submitted_at = now()
		WHERE schedule_id = $1 AND period_start = $2 AND submitted_at IS NULL`, scheduleID, periodStart); err != nil {
		return fail(err, "mark run of schedule %s submitted", scheduleID)
	}
	return nil
}

// Now returns the database's clock: the schedule sweep judges which periods
// have ended by it, like every other time the control plane judges.
func (st *Store) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := st.pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return time.Time{}, fail(err, "read the database clock")
	}
	return now.UTC(), nil
}
