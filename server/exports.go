package server

import (
	"context"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/server/auth"
)

// Page sizes of the list (SPEC §1 leaves them open).
const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// lookupKind describes how one kind of resource (export, schedule, webhook
// endpoint) is looked up by id for a caller.
type lookupKind[T any] struct {
	badID    *apiError                                // the id is not a canonical UUID
	get      func(context.Context, string) (T, error) // the stored resource
	notFound error                                    // get's "no such resource"
	missing  func() *apiError                         // the 404 of the kind
	sees     func(*auth.Principal, T) bool            // the caller's scopes cover it
}

// lookupAs authenticates, checks the id and returns the resource if the
// caller may see it. Order: 401, 403 missing_capability, 429 (reads are
// rate-limited), 400 (canonical lowercase UUID only), 404, which is also
// the answer for a resource the caller's scopes do not cover (existence
// never leaks).
func lookupAs[T any](s *Server, ctx context.Context, rctx *fasthttp.RequestCtx, rq *request, id, capability string, r lookupKind[T]) (*auth.Principal, T, *apiError) {
	var zero T
	p, e := s.authenticate(rctx, rq, capability)
	if e != nil {
		return nil, zero, e
	}
	if e := s.allowRead(p); e != nil {
		return nil, zero, e
	}
	if !activity.ValidUUID(id) {
		return nil, zero, r.badID
	}
	x, err := r.get(ctx, id)
	if errors.Is(err, r.notFound) {
		return nil, zero, r.missing()
	}
	if err != nil {
		return nil, zero, dependencyError(err)
	}
	if !r.sees(p, x) {
		return nil, zero, r.missing()
	}
	return p, x, nil
}

// lookup returns the export id names if the caller may see it (lookupAs).
func (s *Server) lookup(ctx context.Context, rctx *fasthttp.RequestCtx, rq *request, id, capability string) (*auth.Principal, *engine.Export, *apiError) {
	p, x, e := lookupAs(s, ctx, rctx, rq, id, capability, lookupKind[*engine.Export]{
		badID: invalid(reasonInvalidExportID, "export_id"), get: s.cfg.Engine.Get, notFound: engine.ErrNotFound,
		missing: notFound, sees: sees})
	if e == nil {
		rq.exportID = x.ID
	}
	return p, x, e
}

// get handles GET /operations-activity-exports/{id}.
func (s *Server) get(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	_, x, e := s.lookup(opCtx, ctx, rq, id, auth.CapRead)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, toResource(x))
}

// cancel handles POST /operations-activity-exports/{id}/cancel: 200 with
// the cancelled export; an export already final is 409
// export_not_cancellable. The request body, if any, is ignored.
func (s *Server) cancel(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	_, x, e := s.lookup(opCtx, ctx, rq, id, auth.CapCreate)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	y, err := s.cfg.Engine.Cancel(opCtx, x.ID)
	switch {
	case errors.Is(err, engine.ErrNotCancellable):
		s.fail(ctx, rq, conflict(reasonNotCancellable))
		return
	case errors.Is(err, engine.ErrNotFound):
		s.fail(ctx, rq, notFound())
		return
	case err != nil:
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, toResource(y))
}

type listBody struct {
	Items         []resource `json:"items"`
	NextPageToken *string    `json:"next_page_token"`
}

// list handles GET /operations-activity-exports?page_size=N&page_token=T:
// the exports the caller may see, newest first (generated_at, then id).
// page_size is 1-100 (default 20; anything else, or given twice, is 400
// invalid_field_value); page_token is opaque, bound to the caller, and any
// token not issued by this service to this caller is 400 invalid_page_token
// (an empty one means the first page). Other query parameters are ignored.
func (s *Server) list(ctx *fasthttp.RequestCtx, rq *request) {
	p, e := s.authenticate(ctx, rq, auth.CapRead)
	if e == nil {
		e = s.allowRead(p)
	}
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	size, cursor, e := s.pageArgs(ctx, p)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}

	body := listBody{Items: []resource{}}
	vis := visibility(p)
	if len(vis.Refs)+len(vis.Enterprises)+len(vis.Clients) == 0 {
		s.writeJSON(ctx, fasthttp.StatusOK, body)
		return
	}
	opCtx, cancel := s.opContext()
	defer cancel()
	page, err := s.cfg.Engine.List(opCtx, vis, cursor, size+1)
	if err != nil {
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	for i, x := range page {
		if i == size {
			last := page[size-1]
			tok := encodePageToken(s.secret, p.Subject, engine.Cursor{GeneratedAtMs: last.GeneratedAt.UnixMilli(), ID: last.ID})
			body.NextPageToken = &tok
			break
		}
		if sees(p, x) { // the record filter and the coverage rule must agree; trust only the latter
			body.Items = append(body.Items, toResource(x))
		}
	}
	s.writeJSON(ctx, fasthttp.StatusOK, body)
}
