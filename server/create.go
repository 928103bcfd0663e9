package server

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/server/admission"
	"github.com/exportd/exportd/server/auth"
)

// idempotencyWindow is how long an Idempotency-Key binds (SPEC §1: 24h).
const idempotencyWindow = 24 * time.Hour

// create handles POST /operations-activity-exports. Checks run in this
// order, each failing with its status and nothing after it running:
//
//  1. bearer token → 401; capability operations_reports.create → 403 missing_capability;
//  2. body (see decodeCreate) → 400; then the Idempotency-Key header
//     (1-255 visible ASCII) and the Prefer header (wait=0..60) → 400
//     invalid_field_value with details.field naming the header;
//  3. Idempotency-Key already bound for this caller within 24h: same
//     request → the bound export, 201, no new work (also while draining,
//     and without taking a rate-limit token); different request → 409
//     key_payload_mismatch;
//  4. engine draining → 503 shutting_down;
//  5. per-caller rate limit → 429;
//  6. admissibility → 422 date_range_too_long, date_range_in_future;
//  7. scope resolution (client and account parents from data) and coverage
//     → 403 scope_not_covered (an ambiguous parent is never guessed: 403);
//  8. submit; then wait up to Prefer: wait for the export to finish → 201.
//
// ClickHouse unreachable at any step → 503; answering with an error → 502.
func (s *Server) create(ctx *fasthttp.RequestCtx, rq *request) {
	p, e := s.authenticate(ctx, rq, auth.CapCreate)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	req, e := decodeCreate(ctx.PostBody())
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	key := ""
	if keys := ctx.Request.Header.PeekAll(hdrIdempotencyKey); len(keys) > 0 {
		if len(keys) > 1 || !validIdempotencyKey(keys[0]) {
			s.fail(ctx, rq, invalid(reasonInvalidValue, hdrIdempotencyKey))
			return
		}
		key = string(keys[0])
	}
	wait, ok := parseWait(ctx.Request.Header.PeekAll(hdrPrefer))
	if !ok {
		s.fail(ctx, rq, invalid(reasonInvalidValue, hdrPrefer))
		return
	}

	x, e := s.createOrReplay(p, req, key)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	rq.exportID = x.ID
	x = s.wait(x, wait)
	ctx.Response.Header.Set(fasthttp.HeaderLocation, exportPath(x.ID))
	s.writeJSON(ctx, fasthttp.StatusCreated, toResource(x))
}

// createOrReplay runs steps 3-8 of create up to the submit.
func (s *Server) createOrReplay(p *auth.Principal, req *createRequest, key string) (*engine.Export, *apiError) {
	opCtx, cancel := s.opContext()
	defer cancel()
	if key == "" {
		return s.admit(opCtx, p, req)
	}
	// One caller's concurrent requests with one key are serialised here;
	// races between replicas are settled by the earliest binding (bindKey).
	mu := s.keyLock(p.Subject, key)
	mu.Lock()
	defer mu.Unlock()
	hash := req.hash()
	x, e := s.replay(opCtx, p, key, hash)
	if e != nil || x != nil {
		return x, e
	}
	x, e = s.admit(opCtx, p, req)
	if e != nil {
		return nil, e
	}
	return s.bindKey(opCtx, p, key, hash, x)
}

var keyLockSeed = maphash.MakeSeed()

func (s *Server) keyLock(caller, key string) *sync.Mutex {
	h := maphash.String(keyLockSeed, caller+"\x00"+key)
	return &s.keyLocks[h%uint64(len(s.keyLocks))]
}

// replay returns the export bound to (caller, key), nil if none.
func (s *Server) replay(ctx context.Context, p *auth.Principal, key, hash string) (*engine.Export, *apiError) {
	k, err := s.cfg.Records.GetKey(ctx, p.Subject, key, s.cfg.Now().Add(-idempotencyWindow))
	if err != nil {
		return nil, dependencyError(err)
	}
	if k == nil {
		return nil, nil
	}
	if k.RequestHash != hash {
		return nil, conflict(reasonKeyPayloadMismatch)
	}
	x, err := s.cfg.Engine.Get(ctx, k.ExportID)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, nil // the record is gone; treat the key as free
	}
	if err != nil {
		return nil, dependencyError(err)
	}
	if !sees(p, x) { // the caller's scopes changed since
		return nil, scopeNotCovered()
	}
	return x, nil
}

// bindKey records (caller, key) → x and settles a race with another replica:
// the earliest binding wins and a losing export is cancelled.
func (s *Server) bindKey(ctx context.Context, p *auth.Principal, key, hash string, x *engine.Export) (*engine.Export, *apiError) {
	if err := s.cfg.Records.PutKey(ctx, p.Subject, key, hash, x.ID, s.cfg.Now()); err != nil {
		s.cancelLoser(x.ID)
		return nil, dependencyError(err)
	}
	k, err := s.cfg.Records.GetKey(ctx, p.Subject, key, s.cfg.Now().Add(-idempotencyWindow))
	if err != nil || k == nil || k.ExportID == x.ID {
		return x, nil // bound (or unverifiable: the binding was written)
	}
	winner, err := s.cfg.Engine.Get(ctx, k.ExportID)
	if errors.Is(err, engine.ErrNotFound) {
		return x, nil
	}
	s.cancelLoser(x.ID)
	switch {
	case err != nil:
		return nil, dependencyError(err)
	case k.RequestHash != hash:
		return nil, conflict(reasonKeyPayloadMismatch)
	case !sees(p, winner):
		return nil, scopeNotCovered()
	}
	return winner, nil
}

func (s *Server) cancelLoser(id string) {
	ctx, cancel := s.opContext()
	defer cancel()
	if _, err := s.cfg.Engine.Cancel(ctx, id); err != nil && !errors.Is(err, engine.ErrNotCancellable) {
		s.log.Warn("cancel export that lost an idempotency race", zap.String("export_id", id), zap.Error(err))
	}
}

// admit runs steps 4-8 of create: draining, rate limit, admissibility,
// coverage, submit.
func (s *Server) admit(ctx context.Context, p *auth.Principal, req *createRequest) (*engine.Export, *apiError) {
	if s.cfg.Engine.Draining() {
		return nil, unavailable(reasonShuttingDown, nil)
	}
	now := s.cfg.Now()
	if d, ok := s.limiter.allow(p.Subject, now); !ok {
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.RateLimited.Inc()
		}
		return nil, rateLimited((d + time.Millisecond - 1).Milliseconds())
	}
	if req.To.Sub(req.From) > s.cfg.MaxRange {
		return nil, notAdmissible(reasonRangeTooLong)
	}
	if req.From.After(now) {
		return nil, notAdmissible(reasonRangeFuture)
	}
	enterprise, client := req.Ref, ""
	if req.Kind != engine.KindEnterprise {
		var err error
		enterprise, client, err = s.cfg.Records.ResolveScope(ctx, req.Kind, req.Ref)
		if errors.Is(err, engine.ErrAmbiguousScope) {
			e := scopeNotCovered()
			e.cause = err
			return nil, e
		}
		if err != nil {
			return nil, dependencyError(err)
		}
	}
	if !covers(p, req.Kind, req.Ref, enterprise, client) {
		return nil, scopeNotCovered()
	}
	permit, aerr := s.acquire(ctx)
	if aerr != nil {
		return nil, aerr
	}
	x, err := s.cfg.Engine.SubmitWith(ctx, &engine.Export{
		Format:        req.Format,
		Compression:   req.Compression,
		DateFrom:      req.DateFrom,
		DateTo:        req.DateTo,
		ScopeKind:     req.Kind,
		ScopeRef:      req.Ref,
		EnterpriseRef: enterprise,
		ClientRef:     client,
		GeneratedBy:   p.Subject,
	}, func(x *engine.Export, elapsed time.Duration) { permit.Release(outcome(x, elapsed)) })
	if errors.Is(err, engine.ErrShuttingDown) {
		return nil, unavailable(reasonShuttingDown, err)
	}
	if err != nil {
		return nil, dependencyError(err)
	}
	return x, nil
}

// acquire takes an admission permit (nil without admission control): at
// most the adaptive limit of exports run at once; excess creates queue
// briefly and are shed with 503 overloaded and a retry hint derived from the
// observed drain rate.
func (s *Server) acquire(ctx context.Context) (*admission.Permit, *apiError) {
	if s.cfg.Admission == nil {
		return nil, nil
	}
	p, err := s.cfg.Admission.Acquire(ctx)
	if err == nil {
		return p, nil
	}
	var oe *admission.OverloadedError
	if errors.As(err, &oe) {
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.AdmissionShed.WithLabelValues(oe.Reason).Inc()
		}
		e := unavailable(reasonOverloaded, err)
		e.retryAfterMs = oe.RetryAfterMillis()
		return nil, e
	}
	return nil, unavailable(reasonServiceUnavailable, err)
}

// outcome tells the admission controller how an export went. Only exports
// whose cost says something about load are learned from: cancellations,
// row-limit failures and submits that never ran are dropped.
func outcome(x *engine.Export, elapsed time.Duration) admission.Outcome {
	if x == nil {
		return admission.Outcome{Dropped: true}
	}
	o := admission.Outcome{Rows: x.RowCount, Bytes: x.ByteSize, Duration: elapsed}
	switch {
	case x.Status == engine.StatusReady:
	case x.Status == engine.StatusFailed && (x.FailureReason == engine.ReasonUpstream || x.FailureReason == engine.ReasonTimeout):
		o.Failed = true
	default:
		o.Dropped = true
	}
	return o
}

// wait holds the response up to d while the export runs (Prefer: wait) and
// returns its latest state. Shutdown ends the wait early; if the state
// cannot be read, the last known one is returned.
func (s *Server) wait(x *engine.Export, d time.Duration) *engine.Export {
	if d <= 0 {
		return x
	}
	wctx, cancel := context.WithTimeout(s.waits, d+s.cfg.DependencyTimeout)
	defer cancel()
	y, err := s.cfg.Engine.Wait(wctx, x.ID, d)
	if err != nil {
		opCtx, cancel := s.opContext()
		defer cancel()
		if y, err = s.cfg.Engine.Get(opCtx, x.ID); err != nil {
			s.log.Warn("read export after wait", zap.String("export_id", x.ID), zap.Error(err))
			return x
		}
	}
	return y
}
