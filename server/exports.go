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

// lookup authenticates, checks the id and returns the export if the caller
// may see it. Order: 401, 403 missing_capability, 400 invalid_export_id
// (canonical lowercase UUID only), 404 export_not_found, which is also the
// answer for an export the caller's scopes do not cover (existence never
// leaks).
func (s *Server) lookup(ctx context.Context, rctx *fasthttp.RequestCtx, rq *request, id, capability string) (*auth.Principal, *engine.Export, *apiError) {
	p, e := s.authenticate(rctx, rq, capability)
	if e != nil {
		return nil, nil, e
	}
	if e := s.allowRead(p); e != nil {
		return nil, nil, e
	}
	if !activity.ValidUUID(id) {
		return nil, nil, invalid(reasonInvalidExportID, "export_id")
	}
	x, err := s.cfg.Engine.Get(ctx, id)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, nil, notFound()
	}
	if err != nil {
		return nil, nil, dependencyError(err)
	}
	if !sees(p, x) {
		return nil, nil, notFound()
	}
	rq.exportID = x.ID
	return p, x, nil
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
