package server

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/schedules"
	"github.com/exportd/exportd/server/auth"
)

// Scheduled exports (SPEC §9).
//
// Readings where SPEC §9 is silent:
//   - time_zone is optional (default "UTC"), as are starts_at_utc (default:
//     the creation time, so the first period is the next whole one) and
//     delay_minutes (default 60; an integer 0-1440, a JSON number without
//     fraction or exponent). starts_at_utc keeps millisecond precision
//     (rounded up).
//   - The body is checked in decodeCreate's order, top level first (unknown
//     member, missing every/export, types, values: every, time_zone,
//     starts_at_utc, delay_minutes), then the export template exactly as a
//     create request without dates, details.field prefixed "export.".
//   - Coverage is create's (the scope resolved now, and the schedule's
//     exports are made under that resolution); visibility is the exports'
//     (SPEC §6). A schedule the caller may not see is 404
//     schedule_not_found, like one that never existed.
//   - next_run_at_utc is when the next period not yet due becomes due
//     (its end plus the delay). A backfill's periods, already due, are made
//     by the sweep at once.
//   - Creates take a create rate-limit token; reads a read token.
const schedulesPath = "/operations-activity-export-schedules"

// Errors of the schedule routes beyond SPEC §1's table.
const (
	codeScheduleNotFound    = "schedule_not_found"
	msgScheduleNotFound     = "The schedule was not found."
	reasonScheduleNotFound  = "schedule_not_found"
	reasonInvalidScheduleID = "invalid_schedule_id"
)

// Members of a schedule body (details.field).
const (
	fieldEvery        = "every"
	fieldScheduleZone = "time_zone"
	fieldStartsAt     = "starts_at_utc"
	fieldDelay        = "delay_minutes"
	fieldExport       = "export"
)

// Routes of the schedule API: bounded metric and log labels.
const (
	routeScheduleCreate  = "schedule_create"
	routeScheduleGet     = "schedule_get"
	routeScheduleList    = "schedule_list"
	routeScheduleDelete  = "schedule_delete"
	routeScheduleExports = "schedule_exports"
)

// ScheduleStore keeps schedules (engine/pgstore). Methods block on the
// control plane and honour ctx; a missing or deleted schedule is
// schedules.ErrNotFound.
type ScheduleStore interface {
	CreateSchedule(ctx context.Context, s *schedules.Schedule) error
	GetSchedule(ctx context.Context, id string) (*schedules.Schedule, error)
	ListSchedules(ctx context.Context, v engine.Visibility, after *engine.Cursor, limit int) ([]*schedules.Schedule, error)
	DeleteSchedule(ctx context.Context, id string) error
	// ScheduleExports lists the exports a schedule made, newest first.
	ScheduleExports(ctx context.Context, id string, after *engine.Cursor, limit int) ([]*engine.Export, error)
}

func scheduleNotFound() *apiError {
	return &apiError{status: fasthttp.StatusNotFound, code: codeScheduleNotFound, message: msgScheduleNotFound,
		reason: reasonScheduleNotFound}
}

// scheduleRequest is a validated schedule create body.
type scheduleRequest struct {
	Every    schedules.Every
	TimeZone string
	Plan     schedules.Plan
	Export   *createRequest
}

// decodeSchedule strictly decodes and validates a schedule body (order on
// the package comment above); now is the default starts_at.
func decodeSchedule(body []byte, now time.Time) (*scheduleRequest, *apiError) {
	if len(body) > maxCreateBody {
		return nil, invalid(reasonBodyTooLarge, "")
	}
	root, err := parseJSON(body)
	if err != nil || root.kind != jObject {
		return nil, invalid(reasonInvalidJSON, "")
	}
	if e := onlyKnown(root, "", fieldEvery, fieldScheduleZone, fieldStartsAt, fieldDelay, fieldExport); e != nil {
		return nil, e
	}
	every, zone, starts, delay, export := root.get(fieldEvery), root.get(fieldScheduleZone), root.get(fieldStartsAt),
		root.get(fieldDelay), root.get(fieldExport)
	if every == nil {
		return nil, invalid(reasonMissingField, fieldEvery)
	}
	if export == nil {
		return nil, invalid(reasonMissingField, fieldExport)
	}
	for _, c := range []struct {
		v     *jsonValue
		want  jsonKind
		field string
	}{{every, jString, fieldEvery}, {zone, jString, fieldScheduleZone}, {starts, jString, fieldStartsAt},
		{delay, jNumber, fieldDelay}, {export, jObject, fieldExport}} {
		if c.v != nil && c.v.kind != c.want {
			return nil, invalid(reasonInvalidValue, c.field)
		}
	}
	r := &scheduleRequest{Every: schedules.Every(every.str), TimeZone: engine.DefaultTimeZone}
	if !r.Every.Valid() {
		return nil, invalid(reasonInvalidValue, fieldEvery)
	}
	if zone != nil {
		r.TimeZone = zone.str
	}
	loc, err := engine.LoadZone(r.TimeZone)
	if err != nil || r.TimeZone == "" {
		return nil, invalid(reasonInvalidValue, fieldScheduleZone)
	}
	startsAt := now
	if starts != nil {
		if startsAt, err = activity.ParseTimestamp(starts.str); err != nil {
			return nil, invalid(reasonInvalidTimestamp, fieldStartsAt)
		}
	}
	startsAt = time.UnixMilli(engine.MillisCeil(startsAt)).UTC()
	minutes := schedules.DefaultDelayMinutes
	if delay != nil {
		n, err := strconv.Atoi(delay.str)
		if err != nil || n < 0 || n > schedules.MaxDelayMinutes {
			return nil, invalid(reasonInvalidValue, fieldDelay)
		}
		minutes = n
	}
	if r.Plan, err = schedules.NewPlan(r.Every, loc, startsAt, minutes); err != nil {
		return nil, invalid(reasonInvalidValue, fieldDelay) // every was checked: only the delay is left
	}
	req, e := decodeRequest(export, fieldExport+".", false)
	if e != nil {
		return nil, e
	}
	r.Export = req
	return r, nil
}

// scheduleResource is the schedule as the API shows it (SPEC §9).
type scheduleResource struct {
	ID           string         `json:"id"`
	Every        string         `json:"every"`
	TimeZone     string         `json:"time_zone"`
	StartsAtUTC  string         `json:"starts_at_utc"`
	DelayMinutes int            `json:"delay_minutes"`
	Export       exportTemplate `json:"export"`
	CreatedBy    string         `json:"created_by"`
	CreatedAtUTC string         `json:"created_at_utc"`
	NextRunAtUTC string         `json:"next_run_at_utc"`
	LastExportID *string        `json:"last_export_id"`
}

// exportTemplate echoes a schedule's export like the export resource
// echoes a request: the §7 options always (defaults shown), the filter
// sets only when given.
type exportTemplate struct {
	Format         string          `json:"format"`
	Compression    string          `json:"compression"`
	FilterCriteria *templateFilter `json:"filter_criteria,omitempty"`
	RequestedScope requestedScope  `json:"requested_scope"`
	Columns        []string        `json:"columns"`
	TimeZone       string          `json:"time_zone"`
	CSVBOM         bool            `json:"csv_bom"`
}

type templateFilter struct {
	Families   []string `json:"families,omitempty"`
	Statuses   []string `json:"statuses,omitempty"`
	Currencies []string `json:"currencies,omitempty"`
}

func millisUTC(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
}

func toScheduleResource(sc *schedules.Schedule, now time.Time) scheduleResource {
	t := &sc.Export
	r := scheduleResource{ID: sc.ID, Every: string(sc.Every), TimeZone: sc.TimeZone, StartsAtUTC: millisUTC(sc.StartsAt),
		DelayMinutes: sc.DelayMinutes, CreatedBy: sc.CreatedBy, CreatedAtUTC: timestamp(sc.CreatedAt),
		LastExportID: optString(sc.LastExportID),
		Export: exportTemplate{Format: t.Format, Compression: t.Compression,
			RequestedScope: requestedScope{Kind: t.ScopeKind, Ref: t.ScopeRef},
			Columns:        t.Options.ColumnNames(), TimeZone: t.Options.ZoneName(), CSVBOM: t.Options.CSVBOM}}
	if o := t.Options; o.Families != nil || o.Statuses != nil || o.Currencies != nil {
		r.Export.FilterCriteria = &templateFilter{Families: o.Families, Statuses: o.Statuses, Currencies: o.Currencies}
	}
	if p, err := sc.Plan(); err == nil {
		r.NextRunAtUTC = millisUTC(p.NextRun(now))
	}
	return r
}

// routeSchedules serves the schedule routes (path starts with schedulesPath).
func (s *Server) routeSchedules(ctx *fasthttp.RequestCtx, rq *request, path string) {
	if s.cfg.Schedules == nil {
		s.fail(ctx, rq, routeNotFound())
		return
	}
	get, post, del := ctx.IsGet(), ctx.IsPost(), ctx.IsDelete()
	if path == schedulesPath {
		switch {
		case post:
			rq.route = routeScheduleCreate
			s.createSchedule(ctx, rq)
		case get:
			rq.route = routeScheduleList
			s.listSchedules(ctx, rq)
		default:
			s.methodNotAllowed(ctx, rq, "GET, POST")
		}
		return
	}
	id, sub, hasSub := strings.Cut(path[len(schedulesPath)+1:], "/")
	switch {
	case id == "":
		s.fail(ctx, rq, routeNotFound())
	case !hasSub && get:
		rq.route = routeScheduleGet
		s.getSchedule(ctx, rq, id)
	case !hasSub && del:
		rq.route = routeScheduleDelete
		s.deleteSchedule(ctx, rq, id)
	case !hasSub:
		s.methodNotAllowed(ctx, rq, "GET, DELETE")
	case sub == "exports" && get:
		rq.route = routeScheduleExports
		s.scheduleExports(ctx, rq, id)
	case sub == "exports":
		s.methodNotAllowed(ctx, rq, "GET")
	default:
		s.fail(ctx, rq, routeNotFound())
	}
}

// createSchedule handles POST /operations-activity-export-schedules: 401,
// 403 missing_capability, 400 (decodeSchedule), 429, 403
// scope_not_covered (create's resolution and coverage), 201.
func (s *Server) createSchedule(ctx *fasthttp.RequestCtx, rq *request) {
	p, e := s.authenticate(ctx, rq, auth.CapCreate)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	now := s.cfg.Now()
	req, e := decodeSchedule(ctx.PostBody(), now)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	if d, ok := s.limiter.allow(p.Subject, now); !ok {
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.RateLimited.Inc()
		}
		s.fail(ctx, rq, rateLimited((d + time.Millisecond - 1).Milliseconds()))
		return
	}
	opCtx, cancel := s.opContext()
	defer cancel()
	x := req.Export
	enterprise, client, e := s.resolve(opCtx, p, x.Kind, x.Ref)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	first := req.Plan.First()
	sc := &schedules.Schedule{ID: uuid.NewString(), Every: req.Every, TimeZone: req.TimeZone, StartsAt: req.Plan.StartsAt,
		DelayMinutes: int(req.Plan.Delay / time.Minute),
		Export: schedules.Template{Format: x.Format, Compression: x.Compression, ScopeKind: x.Kind, ScopeRef: x.Ref,
			Options: x.Options},
		EnterpriseRef: enterprise, ClientRef: client, CreatedBy: p.Subject, NextDueAt: first.End.Add(req.Plan.Delay)}
	if err := s.cfg.Schedules.CreateSchedule(opCtx, sc); err != nil {
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	if s.cfg.SchedulePoke != nil {
		s.cfg.SchedulePoke() // a backfill is due now
	}
	ctx.Response.Header.Set(fasthttp.HeaderLocation, schedulesPath+"/"+sc.ID)
	s.writeJSON(ctx, fasthttp.StatusCreated, toScheduleResource(sc, now))
}

// scheduleSees reports whether p may see schedule sc: the exports'
// visibility rule on its scope and the parents resolved at creation.
func scheduleSees(p *auth.Principal, sc *schedules.Schedule) bool {
	client := ""
	if sc.Export.ScopeKind == engine.KindClientAccount {
		client = sc.ClientRef
	}
	return covers(p, sc.Export.ScopeKind, sc.Export.ScopeRef, sc.EnterpriseRef, client)
}

// lookupSchedule returns the schedule id names if the caller may see it
// (lookupAs): 400 invalid_schedule_id, 404 schedule_not_found (also for
// another tenant's schedule).
func (s *Server) lookupSchedule(ctx context.Context, rctx *fasthttp.RequestCtx, rq *request, id, capability string) (*auth.Principal, *schedules.Schedule, *apiError) {
	return lookupAs(s, ctx, rctx, rq, id, capability, lookupKind[*schedules.Schedule]{
		badID: invalid(reasonInvalidScheduleID, "schedule_id"), get: s.cfg.Schedules.GetSchedule,
		notFound: schedules.ErrNotFound, missing: scheduleNotFound, sees: scheduleSees})
}

func (s *Server) getSchedule(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	_, sc, e := s.lookupSchedule(opCtx, ctx, rq, id, auth.CapRead)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, toScheduleResource(sc, s.cfg.Now()))
}

// deleteSchedule handles DELETE .../{id}: 204; the exports it made stay.
func (s *Server) deleteSchedule(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	_, sc, e := s.lookupSchedule(opCtx, ctx, rq, id, auth.CapCreate)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	err := s.cfg.Schedules.DeleteSchedule(opCtx, sc.ID)
	switch {
	case errors.Is(err, schedules.ErrNotFound):
		s.fail(ctx, rq, scheduleNotFound())
		return
	case err != nil:
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// pageArgs reads the page arguments of a list: page_size is 1-100
// (default 20; anything else, or given twice, is 400 invalid_field_value);
// page_token is opaque, bound to the caller, and any token not issued by
// this service to this caller is 400 invalid_page_token (an empty one means
// the first page). The exports, schedules and schedule exports lists share
// it (and the token format: a token carries a (time, id) cursor only, so
// one list's token given to another just positions that list).
func (s *Server) pageArgs(ctx *fasthttp.RequestCtx, p *auth.Principal) (int, *engine.Cursor, *apiError) {
	return s.pageArgsIn(ctx, p, "", invalid)
}

// pageArgsIn is pageArgs for a list whose tokens carry namespace before
// the caller (only that list's tokens are accepted) and whose 400s are
// built by bad.
func (s *Server) pageArgsIn(ctx *fasthttp.RequestCtx, p *auth.Principal, namespace string, bad func(reason, field string) *apiError) (int, *engine.Cursor, *apiError) {
	args := ctx.QueryArgs()
	size, ok := pageSize(args)
	if !ok {
		return 0, nil, bad(reasonInvalidValue, "page_size")
	}
	if vals := args.PeekMulti("page_token"); len(vals) > 1 {
		return 0, nil, bad(reasonInvalidPageToken, "page_token")
	} else if len(vals) == 1 && len(vals[0]) > 0 {
		c, err := decodePageToken(s.secret, namespace+p.Subject, string(vals[0]))
		if err != nil {
			return 0, nil, bad(reasonInvalidPageToken, "page_token")
		}
		return size, c, nil
	}
	return size, nil, nil
}

type scheduleListBody struct {
	Items         []scheduleResource `json:"items"`
	NextPageToken *string            `json:"next_page_token"`
}

// listSchedules handles GET /operations-activity-export-schedules: the
// schedules the caller may see, newest first, pages as the exports list.
func (s *Server) listSchedules(ctx *fasthttp.RequestCtx, rq *request) {
	p, e := s.authenticate(ctx, rq, auth.CapRead)
	if e == nil {
		e = s.allowRead(p)
	}
	var size int
	var cursor *engine.Cursor
	if e == nil {
		size, cursor, e = s.pageArgs(ctx, p)
	}
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	body := scheduleListBody{Items: []scheduleResource{}}
	vis := visibility(p)
	if len(vis.Refs)+len(vis.Enterprises)+len(vis.Clients) == 0 {
		s.writeJSON(ctx, fasthttp.StatusOK, body)
		return
	}
	opCtx, cancel := s.opContext()
	defer cancel()
	page, err := s.cfg.Schedules.ListSchedules(opCtx, vis, cursor, size+1)
	if err != nil {
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	now := s.cfg.Now()
	for i, sc := range page {
		if i == size {
			last := page[size-1]
			tok := encodePageToken(s.secret, p.Subject, engine.Cursor{GeneratedAtMs: last.CreatedAt.UnixMilli(), ID: last.ID})
			body.NextPageToken = &tok
			break
		}
		if scheduleSees(p, sc) {
			body.Items = append(body.Items, toScheduleResource(sc, now))
		}
	}
	s.writeJSON(ctx, fasthttp.StatusOK, body)
}

// scheduleExports handles GET .../{id}/exports: the exports the schedule
// made, newest first, pages as the exports list.
func (s *Server) scheduleExports(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	p, sc, e := s.lookupSchedule(opCtx, ctx, rq, id, auth.CapRead)
	var size int
	var cursor *engine.Cursor
	if e == nil {
		size, cursor, e = s.pageArgs(ctx, p)
	}
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	page, err := s.cfg.Schedules.ScheduleExports(opCtx, sc.ID, cursor, size+1)
	if err != nil {
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	body := listBody{Items: []resource{}}
	for i, x := range page {
		if i == size {
			last := page[size-1]
			tok := encodePageToken(s.secret, p.Subject, engine.Cursor{GeneratedAtMs: last.GeneratedAt.UnixMilli(), ID: last.ID})
			body.NextPageToken = &tok
			break
		}
		if sees(p, x) {
			body.Items = append(body.Items, toResource(x))
		}
	}
	s.writeJSON(ctx, fasthttp.StatusOK, body)
}
