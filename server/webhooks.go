package server

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/webhook"
	"github.com/exportd/exportd/server/auth"
)

// Completion webhook endpoints (SPEC §8).
//
// Readings where SPEC is silent:
//   - events may be omitted (all four); given, it is a non-empty array of
//     distinct event types.
//   - Checks of a create run: 401, 403 missing_capability, 429, 400 (body,
//     then the URL's form and resolution), 403 scope_not_covered.
//   - An unknown, deleted or not covered endpoint is 404 webhook_not_found;
//     a malformed id 400 invalid_field_value (details.field webhook_id).
//   - An enterprise has at most Webhooks.MaxPerEnterprise (25) live
//     endpoints: beyond, 422 not_admissible with reason too_many_webhooks.
//   - The deliveries log holds the latest page_size (1-100, default 20)
//     deliveries, newest event first.

// webhooksPath is the collection path of webhook endpoints.
const webhooksPath = "/operations-activity-export-webhooks"

// Routes of the webhook endpoints (bounded metric and log labels).
const (
	routeWebhookCreate     = "webhook_create"
	routeWebhookGet        = "webhook_get"
	routeWebhookList       = "webhook_list"
	routeWebhookDelete     = "webhook_delete"
	routeWebhookDeliveries = "webhook_deliveries"
)

// WebhookStore keeps webhook endpoints and their deliveries (engine/pgstore).
// Methods block on the database, honour ctx, are safe for concurrent use;
// GetEndpoint and DeleteEndpoint return webhook.ErrNotFound for an endpoint
// that does not exist or was deleted.
type WebhookStore interface {
	CreateEndpoint(ctx context.Context, w *webhook.Endpoint, limit int) error
	GetEndpoint(ctx context.Context, id string) (*webhook.Endpoint, error)
	ListEndpoints(ctx context.Context, v engine.Visibility, after *engine.Cursor, limit int) ([]*webhook.Endpoint, error)
	DeleteEndpoint(ctx context.Context, id string) error
	Deliveries(ctx context.Context, endpointID string, limit int) ([]*webhook.Delivery, error)
}

// URLChecker admits a webhook URL at registration (*webhook.Client): an
// error means 400 invalid_field_value (url).
type URLChecker interface {
	CheckURL(ctx context.Context, url string) error
}

// Webhooks enables the webhook endpoints' routes (Config.Webhooks).
type Webhooks struct {
	Store WebhookStore
	URLs  URLChecker
	// MaxPerEnterprise bounds the live endpoints of one enterprise (default
	// 25; beyond, 422 not_admissible too_many_webhooks): every final state
	// of its exports writes one delivery per endpoint, in that transaction.
	MaxPerEnterprise int
}

// defaultMaxWebhooks is Webhooks.MaxPerEnterprise's default.
const defaultMaxWebhooks = 25

// RenderExport returns the export resource JSON of x, byte for byte what
// GET /operations-activity-exports/{id} answers for the same record: the
// data of a webhook event.
func RenderExport(x *engine.Export) ([]byte, error) { return json.Marshal(toResource(x)) }

const (
	codeWebhookNotFound = "webhook_not_found"
	msgWebhookNotFound  = "The webhook endpoint was not found."
	msgInvalidWebhook   = "The webhook request is invalid."
	fieldWebhookID      = "webhook_id"

	reasonTooManyWebhooks = "too_many_webhooks"
)

func invalidWebhook(reason, field string) *apiError {
	e := invalid(reason, field)
	e.message = msgInvalidWebhook
	return e
}

func webhookNotFound() *apiError {
	return &apiError{status: fasthttp.StatusNotFound, code: codeWebhookNotFound, message: msgWebhookNotFound,
		reason: codeWebhookNotFound}
}

// routeWebhooks serves webhooksPath and below.
func (s *Server) routeWebhooks(ctx *fasthttp.RequestCtx, rq *request, path string) {
	if s.cfg.Webhooks == nil || s.cfg.Webhooks.Store == nil || s.cfg.Webhooks.URLs == nil {
		s.fail(ctx, rq, routeNotFound())
		return
	}
	get, post, del := ctx.IsGet(), ctx.IsPost(), ctx.IsDelete()
	if path == webhooksPath {
		switch {
		case post:
			rq.route = routeWebhookCreate
			s.createWebhook(ctx, rq)
		case get:
			rq.route = routeWebhookList
			s.listWebhooks(ctx, rq)
		default:
			s.methodNotAllowed(ctx, rq, "GET, POST")
		}
		return
	}
	id, sub, _ := strings.Cut(path[len(webhooksPath)+1:], "/")
	switch {
	case id == "":
		s.fail(ctx, rq, routeNotFound())
	case sub == "" && get:
		rq.route = routeWebhookGet
		s.getWebhook(ctx, rq, id)
	case sub == "" && del:
		rq.route = routeWebhookDelete
		s.deleteWebhook(ctx, rq, id)
	case sub == "deliveries" && get:
		rq.route = routeWebhookDeliveries
		s.webhookDeliveries(ctx, rq, id)
	case sub == "":
		s.methodNotAllowed(ctx, rq, "GET, DELETE")
	case sub == "deliveries":
		s.methodNotAllowed(ctx, rq, "GET")
	default:
		s.fail(ctx, rq, routeNotFound())
	}
}

type webhookScope struct {
	Kind string `json:"kind"`
	Ref  string `json:"ref"`
}

// webhookResource is an endpoint as the API shows it; Secret only in the
// answer of its creation.
type webhookResource struct {
	ID           string       `json:"id"`
	URL          string       `json:"url"`
	Scope        webhookScope `json:"scope"`
	Events       []string     `json:"events"`
	Secret       string       `json:"secret,omitempty"`
	CreatedAtUTC string       `json:"created_at_utc"`
}

func toWebhookResource(w *webhook.Endpoint) webhookResource {
	return webhookResource{ID: w.ID, URL: w.URL, Scope: webhookScope{Kind: w.ScopeKind, Ref: w.ScopeRef},
		Events: w.Events, CreatedAtUTC: timestamp(w.CreatedAt)}
}

type webhookRequest struct {
	URL, Kind, Ref string
	Events         []string
}

// decodeWebhook validates a create body: invalid_json, unknown_field,
// missing_required_field (url, scope, scope.kind, scope.ref), wrong types,
// then values in schema order (url form, scope kind and ref, invalid_scope,
// events). The URL's resolution is checked by the caller.
func decodeWebhook(body []byte) (*webhookRequest, *apiError) {
	if len(body) > maxCreateBody {
		return nil, invalidWebhook(reasonBodyTooLarge, "")
	}
	root, err := parseJSON(body)
	if err != nil || root.kind != jObject {
		return nil, invalidWebhook(reasonInvalidJSON, "")
	}
	if e := onlyKnown(root, "", "url", "scope", "events"); e != nil {
		e.message = msgInvalidWebhook
		return nil, e
	}
	u, scope, events := root.get("url"), root.get("scope"), root.get("events")
	if scope != nil && scope.kind == jObject {
		if e := onlyKnown(scope, "scope.", "kind", "ref"); e != nil {
			e.message = msgInvalidWebhook
			return nil, e
		}
	}
	if u == nil {
		return nil, invalidWebhook(reasonMissingField, "url")
	}
	if scope == nil {
		return nil, invalidWebhook(reasonMissingField, "scope")
	}
	var kind, ref *jsonValue
	if scope.kind == jObject {
		if kind = scope.get("kind"); kind == nil {
			return nil, invalidWebhook(reasonMissingField, "scope.kind")
		}
		if ref = scope.get("ref"); ref == nil {
			return nil, invalidWebhook(reasonMissingField, "scope.ref")
		}
	}
	for _, c := range []struct {
		v     *jsonValue
		want  jsonKind
		field string
	}{{u, jString, "url"}, {scope, jObject, "scope"}, {kind, jString, "scope.kind"}, {ref, jString, "scope.ref"},
		{events, jArray, "events"}} {
		if c.v != nil && c.v.kind != c.want {
			return nil, invalidWebhook(reasonInvalidValue, c.field)
		}
	}
	r := &webhookRequest{URL: u.str, Kind: kind.str, Ref: ref.str}
	switch r.Kind {
	case auth.KindEnterprise, auth.KindClient, auth.KindClientAccount:
	default:
		return nil, invalidWebhook(reasonInvalidValue, "scope.kind")
	}
	refKind, ok := auth.KindOf(r.Ref)
	if !ok {
		return nil, invalidWebhook(reasonInvalidValue, "scope.ref")
	}
	if refKind != r.Kind {
		return nil, invalidWebhook(reasonInvalidScope, "scope")
	}
	if events == nil {
		r.Events = append([]string(nil), webhook.Events...)
		return r, nil
	}
	if len(events.elems) == 0 || len(events.elems) > len(webhook.Events) {
		return nil, invalidWebhook(reasonInvalidValue, "events")
	}
	seen := map[string]bool{}
	for _, e := range events.elems {
		if e.kind != jString || !webhook.KnownEvent(e.str) || seen[e.str] {
			return nil, invalidWebhook(reasonInvalidValue, "events")
		}
		seen[e.str] = true
		r.Events = append(r.Events, e.str)
	}
	return r, nil
}

// createWebhook handles POST /operations-activity-export-webhooks.
func (s *Server) createWebhook(ctx *fasthttp.RequestCtx, rq *request) {
	p, e := s.authenticate(ctx, rq, auth.CapCreate)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	if d, ok := s.limiter.allow(p.Subject, s.cfg.Now()); !ok {
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.RateLimited.Inc()
		}
		s.fail(ctx, rq, rateLimited((d + time.Millisecond - 1).Milliseconds()))
		return
	}
	req, e := decodeWebhook(ctx.PostBody())
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	opCtx, cancel := s.opContext()
	defer cancel()
	if err := s.cfg.Webhooks.URLs.CheckURL(opCtx, req.URL); err != nil {
		e := invalidWebhook(reasonInvalidValue, "url")
		e.cause = err
		s.fail(ctx, rq, e)
		return
	}
	enterprise, client, e := s.resolve(opCtx, p, req.Kind, req.Ref)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		s.fail(ctx, rq, internalError(err))
		return
	}
	w := &webhook.Endpoint{ID: uuid.NewString(), URL: req.URL, ScopeKind: req.Kind, ScopeRef: req.Ref,
		EnterpriseRef: enterprise, ClientRef: client, Events: req.Events, Secret: secret, CreatedBy: p.Subject}
	limit := s.cfg.Webhooks.MaxPerEnterprise
	if limit <= 0 {
		limit = defaultMaxWebhooks
	}
	err = s.cfg.Webhooks.Store.CreateEndpoint(opCtx, w, limit)
	if errors.Is(err, webhook.ErrTooManyEndpoints) {
		s.fail(ctx, rq, notAdmissible(reasonTooManyWebhooks))
		return
	}
	if err != nil {
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	res := toWebhookResource(w)
	res.Secret = w.Secret
	ctx.Response.Header.Set(fasthttp.HeaderLocation, webhooksPath+"/"+w.ID)
	s.writeJSON(ctx, fasthttp.StatusCreated, res)
}

// lookupWebhook authenticates and returns the endpoint if the caller's
// scopes cover its scope: 401, 403 missing_capability, 429, 400 bad id,
// 404 (also for another tenant's endpoint).
func (s *Server) lookupWebhook(opCtx context.Context, ctx *fasthttp.RequestCtx, rq *request, id, capability string) (*webhook.Endpoint, *apiError) {
	_, w, e := lookupAs(s, opCtx, ctx, rq, id, capability, lookupKind[*webhook.Endpoint]{
		badID: invalidWebhook(reasonInvalidValue, fieldWebhookID), get: s.cfg.Webhooks.Store.GetEndpoint,
		notFound: webhook.ErrNotFound, missing: webhookNotFound, sees: coversEndpoint})
	return w, e
}

func coversEndpoint(p *auth.Principal, w *webhook.Endpoint) bool {
	client := ""
	if w.ScopeKind == engine.KindClientAccount {
		client = w.ClientRef
	}
	return covers(p, w.ScopeKind, w.ScopeRef, w.EnterpriseRef, client)
}

// getWebhook handles GET /operations-activity-export-webhooks/{id}.
func (s *Server) getWebhook(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	w, e := s.lookupWebhook(opCtx, ctx, rq, id, auth.CapRead)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, toWebhookResource(w))
}

// deleteWebhook handles DELETE /operations-activity-export-webhooks/{id}:
// 204; its undelivered events are abandoned.
func (s *Server) deleteWebhook(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	w, e := s.lookupWebhook(opCtx, ctx, rq, id, auth.CapCreate)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	err := s.cfg.Webhooks.Store.DeleteEndpoint(opCtx, w.ID)
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		s.fail(ctx, rq, webhookNotFound())
	case err != nil:
		s.fail(ctx, rq, dependencyError(err))
	default:
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}
}

// webhookTokens namespaces the webhook list's page tokens.
const webhookTokens = "webhooks\x00"

// pageSize reads page_size (1-100, default 20; false when given twice or
// otherwise bad: 400 invalid_field_value).
func pageSize(args *fasthttp.Args) (int, bool) {
	vals := args.PeekMulti("page_size")
	if len(vals) == 0 {
		return defaultPageSize, true
	}
	n, err := strconv.Atoi(string(vals[0]))
	if len(vals) > 1 || err != nil || n < 1 || n > maxPageSize || vals[0][0] == '+' {
		return 0, false
	}
	return n, true
}

type webhookListBody struct {
	Items         []webhookResource `json:"items"`
	NextPageToken *string           `json:"next_page_token"`
}

// listWebhooks handles GET /operations-activity-export-webhooks: the
// endpoints whose scope the caller's scopes cover, newest first, in pages
// as the exports list.
func (s *Server) listWebhooks(ctx *fasthttp.RequestCtx, rq *request) {
	p, e := s.authenticate(ctx, rq, auth.CapRead)
	if e == nil {
		e = s.allowRead(p)
	}
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	size, cursor, e := s.pageArgsIn(ctx, p, webhookTokens, invalidWebhook)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	body := webhookListBody{Items: []webhookResource{}}
	vis := visibility(p)
	if len(vis.Refs)+len(vis.Enterprises)+len(vis.Clients) == 0 {
		s.writeJSON(ctx, fasthttp.StatusOK, body)
		return
	}
	opCtx, cancel := s.opContext()
	defer cancel()
	page, err := s.cfg.Webhooks.Store.ListEndpoints(opCtx, vis, cursor, size+1)
	if err != nil {
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	for i, w := range page {
		if i == size {
			last := page[size-1]
			tok := encodePageToken(s.secret, webhookTokens+p.Subject, engine.Cursor{GeneratedAtMs: last.CreatedAt.UnixMilli(), ID: last.ID})
			body.NextPageToken = &tok
			break
		}
		if coversEndpoint(p, w) {
			body.Items = append(body.Items, toWebhookResource(w))
		}
	}
	s.writeJSON(ctx, fasthttp.StatusOK, body)
}

type deliveryResource struct {
	EventID          string  `json:"event_id"`
	Type             string  `json:"type"`
	ExportID         string  `json:"export_id"`
	OccurredAtUTC    string  `json:"occurred_at_utc"`
	Attempts         int     `json:"attempts"`
	LastStatusCode   *int    `json:"last_status_code"`
	LastError        *string `json:"last_error"`
	NextAttemptAtUTC *string `json:"next_attempt_at_utc"`
	Delivered        bool    `json:"delivered"`
	State            string  `json:"state"`
}

// webhookDeliveries handles GET /operations-activity-export-webhooks/{id}/deliveries.
func (s *Server) webhookDeliveries(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	w, e := s.lookupWebhook(opCtx, ctx, rq, id, auth.CapRead)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	size, ok := pageSize(ctx.QueryArgs())
	if !ok {
		s.fail(ctx, rq, invalidWebhook(reasonInvalidValue, "page_size"))
		return
	}
	ds, err := s.cfg.Webhooks.Store.Deliveries(opCtx, w.ID, size)
	if err != nil {
		s.fail(ctx, rq, dependencyError(err))
		return
	}
	items := make([]deliveryResource, 0, len(ds))
	for _, d := range ds {
		r := deliveryResource{EventID: d.ID, Type: d.Type, ExportID: d.ExportID, OccurredAtUTC: timestamp(d.OccurredAt),
			Attempts: d.Attempts, LastError: optString(d.LastError), NextAttemptAtUTC: optTimestamp(d.NextAttemptAt),
			Delivered: d.State == webhook.StateDelivered, State: d.State}
		if d.LastStatus != 0 {
			code := d.LastStatus
			r.LastStatusCode = &code
		}
		items = append(items, r)
	}
	s.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"items": items})
}
