package server

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/server/admission"
	"github.com/exportd/exportd/server/auth"
)

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

// createOrReplay runs steps 3-8 of create up to the submit. Exactly one
// export per (caller, key) across any number of replicas: the key is
// claimed by a unique constraint in the transaction that records the
// export (engine.SubmitWith), and a request that loses the claim starts
// nothing and gets the winner.
func (s *Server) createOrReplay(p *auth.Principal, req *createRequest, key string) (*engine.Export, *apiError) {
	opCtx, cancel := s.opContext()
	defer cancel()
	if key == "" {
		return s.admit(opCtx, p, req, nil)
	}
	k := &engine.IdempotencyKey{Caller: p.Subject, Key: key, RequestHash: req.hash()}
	if e := s.allowRead(p); e != nil { // a replay is a read
		return nil, e
	}
	id, err := s.cfg.Keys.BoundKey(opCtx, k.Caller, k.Key, k.RequestHash)
	switch {
	case errors.Is(err, engine.ErrKeyPayloadMismatch):
		return nil, conflict(reasonKeyPayloadMismatch)
	case err != nil:
		return nil, dependencyError(err)
	case id != "":
		x, err := s.cfg.Engine.Get(opCtx, id)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return nil, dependencyError(err)
		}
		if err == nil {
			return s.replayed(p, x)
		}
		// The record is gone (retention) while the key is not: claim anew.
	}
	return s.admit(opCtx, p, req, k)
}

// replayed answers a create whose key is bound to x.
func (s *Server) replayed(p *auth.Principal, x *engine.Export) (*engine.Export, *apiError) {
	if !sees(p, x) { // the caller's scopes changed since
		return nil, scopeNotCovered()
	}
	return x, nil
}

// admit runs steps 4-8 of create: draining, rate limit, admissibility,
// coverage, submit (claiming key, if any).
func (s *Server) admit(ctx context.Context, p *auth.Principal, req *createRequest, key *engine.IdempotencyKey) (*engine.Export, *apiError) {
	if s.cfg.Engine.Draining() {
		return nil, unavailable(reasonShuttingDown, nil)
	}
	// Long exports of this replica yield while a create is admitted (its
	// scope lookup, count and record take a few round trips that would
	// each queue behind them on a busy machine): engine/lanes.go.
	defer s.cfg.Engine.Urgent()()
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
	enterprise, client, e := s.resolve(ctx, p, req.Kind, req.Ref)
	if e != nil {
		return nil, e
	}
	x := &engine.Export{
		Format:        req.Format,
		Compression:   req.Compression,
		DateFrom:      req.DateFrom,
		DateTo:        req.DateTo,
		ScopeKind:     req.Kind,
		ScopeRef:      req.Ref,
		EnterpriseRef: enterprise,
		ClientRef:     client,
		GeneratedBy:   p.Subject,
		Options:       req.Options,
	}
	// A running slot is taken now unless the enterprise already holds its
	// share here (EXPORTD_MAX_EXPORTS_PER_ENTERPRISE): its further exports
	// wait pending, slot-less, and start in turn, so one tenant's backlog
	// never holds the slots (or the admission queue) other tenants need.
	//
	// While creates are being shed, a slot-less export is shed too: it
	// would wait for a slot behind every queued create, as long as the
	// overload lasts (bench/overload at 5x, 20 tenants each over its
	// share: 1,000 pending exports, admitted completion p99 15 s). Pending
	// remains for an enterprise whose own running exports fill its share
	// while the replica has room for the others' (issue 13's tenant A).
	//
	// Admission comes before the planned count below, so that a shed costs
	// no ClickHouse round trip: under overload that query queues behind the
	// running exports (shed p99 116 ms at 5x with it first).
	var slot engine.Slot
	if s.cfg.Admission != nil {
		if s.cfg.Engine.ClaimShare(enterprise) {
			permit, aerr := s.acquire(ctx)
			if aerr != nil {
				s.cfg.Engine.ReturnShare(enterprise)
				return nil, aerr
			}
			slot = PermitSlot(permit)
		} else if err := s.cfg.Admission.WouldShed(); err != nil {
			return nil, s.shed(err)
		}
	}
	if e := s.plan(ctx, x); e != nil {
		if slot != nil {
			s.cfg.Engine.ReturnShare(enterprise)
			slot.Release(nil, 0)
		}
		return nil, e
	}
	x, created, err := s.cfg.Engine.SubmitWith(ctx, x, key, slot)
	switch {
	case errors.Is(err, engine.ErrShuttingDown):
		return nil, unavailable(reasonShuttingDown, err)
	case errors.Is(err, engine.ErrKeyPayloadMismatch):
		return nil, conflict(reasonKeyPayloadMismatch)
	case errors.Is(err, engine.ErrTooManyPending):
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.RateLimited.Inc()
		}
		return nil, rateLimited(s.pendingRetryMs())
	case errors.Is(err, engine.ErrNotFound):
		// Bound to an export whose record is gone: answer as if the key
		// had been seen bound to nothing a moment ago; a retry claims it.
		return nil, unavailable(reasonServiceUnavailable, err)
	case err != nil:
		return nil, dependencyError(err)
	case !created:
		return s.replayed(p, x)
	}
	return x, nil
}

// plan checks that the export can run now. It needs ClickHouse: say so
// now (503, not a 201 whose export then fails upstream_error). With a row
// cap, the planned count (one count query on the sort key) also refuses up
// front an export already over EXPORTD_MAX_ROWS.
func (s *Server) plan(ctx context.Context, x *engine.Export) *apiError {
	if max := s.cfg.Engine.MaxRows(); max > 0 {
		rows, err := s.cfg.Engine.PlanRows(ctx, x)
		if err != nil {
			return dependencyError(err)
		}
		if rows > max {
			return notAdmissible(reasonRowLimit)
		}
	} else if err := s.cfg.Scopes.Ping(ctx); err != nil {
		return dependencyError(err)
	}
	return nil
}

// resolve finds the enterprise (and, for an account, the client) a client
// or account scope is exported under (SPEC §6): the enterprise of the
// caller's covering scope. Rows of other enterprises may name the same
// client; they are never exported to this caller, and do not make the
// scope ambiguous. When the caller's scopes cover the scope under several
// enterprises (a token naming the client itself, or subtrees of two
// enterprises that both name it), the first by ref is taken: deterministic,
// and within what the caller may see. 403 only when no scope of the caller
// covers it under any enterprise.
func (s *Server) resolve(ctx context.Context, p *auth.Principal, kind, ref string) (enterprise, client string, e *apiError) {
	if kind == engine.KindEnterprise {
		if !covers(p, kind, ref, ref, "") {
			return "", "", scopeNotCovered()
		}
		return ref, "", nil
	}
	parents, err := s.cfg.Scopes.ScopeParents(ctx, kind, ref)
	if err != nil {
		return "", "", dependencyError(err)
	}
	if len(parents) == 0 { // no activity: an empty export, if the caller names the scope
		if !covers(p, kind, ref, "", "") {
			return "", "", scopeNotCovered()
		}
		return "", "", nil
	}
	slices.SortFunc(parents, func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	for _, pr := range parents {
		c := ""
		if kind == engine.KindClientAccount {
			c = pr[1]
		}
		if covers(p, kind, ref, pr[0], c) {
			return pr[0], c, nil
		}
	}
	return "", "", scopeNotCovered()
}

// pendingRetryMs is the retry hint of a create refused because its
// enterprise has its maximum of pending exports: the admission controller's
// estimate of a slot's wait when it has one, else 5 s.
func (s *Server) pendingRetryMs() int64 {
	if s.cfg.Admission != nil {
		if d := s.cfg.Admission.RetryAfter(); d > 0 {
			return d.Milliseconds()
		}
	}
	return 5000
}

// PermitSlot makes an admission permit an engine running slot. The
// controller learns the time the permit was held (Outcome.Duration zero),
// not the engine's elapsed: that runs from the submit, and for an export
// that waited pending, slot-less, it holds the whole wait before its permit
// was taken. Read as a slot's latency, that wait raised the mean held time
// that bounds the queue's predicted wait, so the queue let in more the
// longer the pending backlog waited (bench/overload at 10x: export run
// mean 5.6 s, admitted completion p99 38 s).
func PermitSlot(p *admission.Permit) engine.Slot {
	return engine.SlotFunc(func(x *engine.Export, _ time.Duration) { p.Release(outcome(x)) })
}

// AdmissionSlots makes the admission limiter the engine's slot source:
// pending exports that took no permit at create queue for one (never shed,
// in turn with the creates) when their turn comes.
func AdmissionSlots(l *admission.Limiter) engine.SlotSource { return limiterSlots{l} }

type limiterSlots struct{ l *admission.Limiter }

func (s limiterSlots) TryAcquire() (engine.Slot, bool) {
	p, ok := s.l.TryAcquire()
	if !ok {
		return nil, false
	}
	return PermitSlot(p), true
}

// Reserve queues a pending export for a permit in turn with the creates
// (engine.SlotReserver).
func (s limiterSlots) Reserve(ready func()) engine.Reservation {
	return reservation{s.l.Reserve(ready)}
}

type reservation struct{ r *admission.Reservation }

func (r reservation) Take() (engine.Slot, bool) {
	p, ok := r.r.Take()
	if !ok {
		return nil, false
	}
	return PermitSlot(p), true
}

func (r reservation) Cancel() { r.r.Cancel() }

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
	return nil, s.shed(err)
}

// shed answers a create the admission limiter refused: 503 overloaded with
// its retry hint when shed, 503 service_unavailable otherwise (the wait
// ended with the request).
func (s *Server) shed(err error) *apiError {
	var oe *admission.OverloadedError
	if errors.As(err, &oe) {
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.AdmissionShed.WithLabelValues(oe.Reason).Inc()
		}
		e := unavailable(reasonOverloaded, err)
		e.retryAfterMs = oe.RetryAfterMillis()
		return e
	}
	return unavailable(reasonServiceUnavailable, err)
}

// outcome tells the admission controller how an export went. Only exports
// whose cost says something about load are learned from: cancellations,
// row-limit failures and submits that never ran are dropped.
func outcome(x *engine.Export) admission.Outcome {
	if x == nil {
		return admission.Outcome{Dropped: true}
	}
	o := admission.Outcome{Rows: x.RowCount, Bytes: x.ByteSize}
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
