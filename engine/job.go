package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine/source"
)

type job struct {
	mu     sync.Mutex
	exp    Export // current record (guarded by mu); exp.Version is the lease epoch
	cnt    Counters
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	start  time.Time
	// slot is the running slot the job holds (nil while it waits without
	// one). Owned by the job's goroutine, or by the dispatcher while it has
	// claimed the waiting job; handed over through grant.
	slot Slot
	// res is the job's place in the slot queue while it waits for a slot
	// (SlotReserver); owned as slot is.
	res   Reservation
	grant chan error // the dispatcher's verdict: started (nil) or not
	// admitted is the plan made at admission, if any (see planFor).
	admitted *admittedPlan
	// lane, when set, is the short lane the job entered at submit (left
	// once its final state is recorded; lanes.go).
	lane func()
	// phases: where the job's time went, for its final log line (owned by
	// the job's goroutine).
	phases phases
}

// phases are the durations of a job's steps, logged with its final state:
// waiting for a slot, planning, streaming (read, encode, write), the
// pre-commit look at the record and the artefact's commit.
type phases struct {
	queued, plan, stream, commit time.Duration
}

func (p *phases) fields() []zap.Field {
	return []zap.Field{zap.Duration("queued", p.queued), zap.Duration("plan", p.plan),
		zap.Duration("stream", p.stream), zap.Duration("commit", p.commit)}
}

// Submit records a new pending export and starts it in the background.
// x holds the request (Format, Compression, DateFrom, DateTo, Scope*,
// EnterpriseRef, ClientRef, GeneratedBy, Options); ID may be preset (else
// generated).
func (e *Engine) Submit(ctx context.Context, x *Export) (*Export, error) {
	out, _, err := e.SubmitWith(ctx, x, nil, nil)
	return out, err
}

// SubmitWith is Submit with an idempotency key and a running slot taken at
// admission under a ClaimShare of x.EnterpriseRef (nil: the job waits for
// one in turn). The key is claimed in the
// transaction that records the export: when it is already bound, no export
// is started and SubmitWith returns the bound export with created false
// (ErrKeyPayloadMismatch when the request differs). An enterprise with
// MaxPendingPerEnterprise pending exports gets ErrTooManyPending. slot is
// released exactly once: when the job ends, or at once when no job starts.
func (e *Engine) SubmitWith(ctx context.Context, x *Export, key *IdempotencyKey, slot Slot) (out *Export, created bool, err error) {
	started := false
	defer func() {
		if !started && slot != nil {
			e.sched.hold(x.EnterpriseRef, -1) // the caller's ClaimShare
			slot.Release(nil, 0)
		}
	}()
	// The draining check and the job's registration with the wait group
	// happen under one lock, so a Submit that passes the check is waited for
	// by Shutdown (and one that comes later is refused): no job can start
	// after Shutdown's Wait returned.
	e.mu.Lock()
	if e.draining {
		e.mu.Unlock()
		return nil, false, ErrShuttingDown
	}
	e.wg.Add(1)
	e.mu.Unlock()
	defer func() {
		if !started {
			e.wg.Done()
		}
	}()
	if x.ID == "" {
		x.ID = uuid.NewString()
	}
	x.Status = StatusPending
	x.Owner = e.cfg.Owner
	x.StorageLocation = e.cfg.Store.Location(x.ObjectName())
	created, boundID, err := e.cfg.Records.Create(ctx, x, key, e.cfg.MaxPendingPerEnterprise)
	if err != nil && !errors.Is(err, ErrKeyPayloadMismatch) {
		return nil, false, err
	}
	if !created {
		if err != nil {
			return nil, false, err
		}
		bound, gerr := e.Get(ctx, boundID)
		return bound, false, gerr
	}
	jctx, cancel := context.WithCancelCause(context.Background())
	j := &job{exp: *x, ctx: jctx, cancel: cancel, done: make(chan struct{}), start: time.Now(), slot: slot, grant: make(chan error, 1),
		admitted: x.admitted}
	j.exp.admitted, x.admitted = nil, nil
	if slot != nil && j.admitted != nil && e.cfg.ShortRows >= 0 && j.admitted.plan.Total <= e.cfg.ShortRows {
		// A short export that starts at once is urgent from now until its
		// final state is recorded: its start and finish round trips
		// (PostgreSQL) would otherwise queue behind long exports too.
		j.lane = e.lanes.enterShort()
	}
	e.mu.Lock()
	e.jobs[x.ID] = j
	if e.draining {
		// Shutdown began while the record was written: its grace timer
		// cancels only jobs it can see, so this one starts cancelled when the
		// grace is already over (the job then ends failed/shutdown).
		select {
		case <-e.graceOver:
			cancel(errShutdown)
		default:
		}
	}
	e.mu.Unlock()
	started = true
	e.log.Info("export state", zap.String("export_id", x.ID), zap.String("status", StatusPending))
	go func() {
		defer e.wg.Done()
		e.run(jctx, j)
	}()
	snap := *x
	return &snap, true, nil
}

func (e *Engine) run(ctx context.Context, j *job) {
	if j.lane != nil {
		defer j.lane() // after finish (deferred calls run last in, first out)
	}
	defer func() {
		e.mu.Lock()
		delete(e.jobs, j.exp.ID)
		e.mu.Unlock()
		close(j.done)
	}()
	// Wait for the dispatcher: a slot, the enterprise's turn and its cap.
	e.sched.enqueue(j)
	e.poke()
	var err error
	select {
	case err = <-j.grant:
	case <-ctx.Done():
		if e.sched.claim(j) { // still waiting: it never started
			e.cancelReservation(j)
			e.finish(j, nil, context.Cause(ctx))
			return
		}
		err = <-j.grant // the dispatcher had it: take its verdict
	}
	switch {
	case errors.Is(err, errNotStarted):
		e.finish(j, nil, context.Cause(ctx))
		return
	case errors.Is(err, ErrLost):
		e.finish(j, nil, errCancelled) // ended elsewhere while pending; finish learns which state won
		return
	case err != nil:
		e.finish(j, nil, fmt.Errorf("record running: %w", err))
		return
	}
	j.mu.Lock()
	if !Terminal(j.exp.Status) {
		j.exp.Status = StatusRunning
	}
	rec := j.exp
	j.mu.Unlock()
	rec.Status = StatusRunning
	j.phases.queued = time.Since(j.start)
	e.log.Info("export state", zap.String("export_id", rec.ID), zap.String("status", StatusRunning))
	e.addRunning(1)
	defer e.addRunning(-1)
	// The per-export deadline (EXPORTD_EXPORT_TIMEOUT) runs from the start.
	rctx, cancel := context.WithTimeout(ctx, e.cfg.ExportTimeout)
	defer cancel()
	res, err := e.produce(rctx, &rec, j.admitted, j.lane, &j.cnt, &j.phases)
	if err != nil && context.Cause(ctx) != nil {
		err = context.Cause(ctx)
	} else if err != nil && rctx.Err() != nil {
		err = context.DeadlineExceeded // failed/timeout
	}
	e.finish(j, res, err)
}

// query is the source query of x and the reader that serves it.
func (e *Engine) query(x *Export) (source.Query, Reader, error) {
	fromMs, toMs, err := x.Bounds()
	if err != nil {
		return source.Query{}, nil, fmt.Errorf("bounds of export %s: %w", x.ID, err)
	}
	q := source.Query{EnterpriseRef: x.EnterpriseRef, FromMs: fromMs, ToMs: toMs}
	switch x.ScopeKind {
	case KindClient:
		q.ClientRef = x.ScopeRef
	case KindClientAccount:
		q.AccountRef = x.ScopeRef
	}
	x.Options.Narrow(&q)
	if x.EnterpriseRef == "" {
		return q, EmptyReader{}, nil // a client or account without activity: header only
	}
	return q, e.cfg.Reader, nil
}

// PlanRows returns how many rows the export of x would hold (one count
// query; ClickHouse unreachable shows here).
func (e *Engine) PlanRows(ctx context.Context, x *Export) (int64, error) {
	q, reader, err := e.query(x)
	if err != nil {
		return 0, err
	}
	p, err := reader.Plan(ctx, q)
	if err != nil {
		return 0, err
	}
	x.admitted = &admittedPlan{plan: p, at: time.Now()}
	return p.Total, nil
}

// planReuse is how long a plan made at admission stands in for the job's
// own: a job that starts at once (the common case, and a small export's
// whole budget is a few round trips) skips a second count query, while one
// that waited pending plans afresh, seeing rows that arrived meanwhile.
const planReuse = time.Second

// planFor is the job's plan: the admission's while fresh, else a new one.
func planFor(ctx context.Context, r Reader, q source.Query, admitted *admittedPlan) (*source.Plan, error) {
	if admitted != nil && time.Since(admitted.at) < planReuse {
		return admitted.plan, nil
	}
	return r.Plan(ctx, q)
}

// MaxRows is the row cap of one export (0: none).
func (e *Engine) MaxRows() int64 { return e.cfg.MaxRows }

// produce writes the artefact; on any error nothing is left in storage.
func (e *Engine) produce(ctx context.Context, x *Export, admitted *admittedPlan, leave func(), cnt *Counters, ph *phases) (*Result, error) {
	q, reader, err := e.query(x)
	if err != nil {
		return nil, fmt.Errorf("BUG: %w", err)
	}
	switch {
	case admitted != nil && e.cfg.ShortRows >= 0 && admitted.plan.Total > e.cfg.ShortRows:
		// Long by its admission's count (it waited pending): it plans
		// afresh in the long lane, never ahead of short exports.
		q.Priority = priorityLong
		leave = func() {}
	case leave == nil:
		leave = e.enterLane() // short until the plan says otherwise (lanes.go)
		defer leave()
	}
	t0 := time.Now()
	plan, err := planFor(ctx, reader, q, admitted)
	ph.plan = time.Since(t0)
	if err != nil {
		return nil, err
	}
	if e.cfg.MaxRows > 0 && plan.Total > e.cfg.MaxRows {
		return nil, ErrRowLimit
	}
	w, err := e.cfg.Store.Create(ctx, x.ObjectName())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStorage, err)
	}
	var sink io.Writer = w
	if e.cfg.ShortRows >= 0 {
		reader, q, sink = e.lane(ctx, reader, q, w, plan.Total, leave)
	}
	t0 = time.Now()
	res, err := Pipe(ctx, reader, q, plan, Encoding{Format: x.Format, Compression: x.Compression, Options: x.Options}, e.cfg.MaxRows, sink, cnt)
	ph.stream = time.Since(t0)
	t0 = time.Now()
	defer func() { ph.commit = time.Since(t0) }()
	if err == nil && e.cfg.OnRead != nil {
		e.cfg.OnRead(res.Rows, res.ReadBytes)
	}
	if err == nil {
		// Another replica may have ended the export while it ran (a cancel,
		// a lost-owner verdict); the heartbeat learns of that only every few
		// seconds. Look once more before the artefact is committed, so that
		// such an export rarely leaves a file to remove. (Correctness does
		// not rest on this look: Finish is fenced, see finish.)
		err = e.endedElsewhere(ctx, x)
	}
	if err != nil {
		if aerr := w.Abort(); aerr != nil {
			e.log.Error("abort artefact", zap.String("export_id", x.ID), zap.Error(aerr))
		}
		return nil, err
	}
	if err := w.Commit(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("%w: %w", errStorage, err)
	}
	return &res, nil
}

// endedElsewhere reports, as the cause to stop a local job with, that the
// record no longer belongs to this run of the job (ended by a cancel or a
// lost-owner verdict, or its lease taken over). Nil when it is still ours
// or cannot be read (the job goes on; the fenced Finish decides).
func (e *Engine) endedElsewhere(ctx context.Context, x *Export) error {
	stored, err := e.cfg.Records.Get(ctx, x.ID)
	switch {
	case err != nil:
		return nil
	case stored.Status == StatusCancelled:
		return errCancelled
	case Terminal(stored.Status) || stored.Version != x.Version || stored.Owner != x.Owner:
		return errShutdown
	}
	return nil
}

// FailureReason maps an export error to its failure_reason (SPEC §6).
func FailureReason(err error) string {
	switch {
	case errors.Is(err, errShutdown):
		return ReasonShutdown
	case errors.Is(err, ErrRowLimit):
		return ReasonRowLimit
	case errors.Is(err, errStorage):
		return ReasonStorage
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, source.ErrUnavailable):
		return ReasonUpstream
	}
	// Everything else on the read path is ClickHouse answering with an error.
	return ReasonUpstream
}

// finish records the job's final state with a fenced Finish: the first
// final state committed wins. A job that lost (cancelled or reaped
// elsewhere) takes the winner's state and, if it had committed its
// artefact, removes it: an export that did not end ready leaves nothing.
func (e *Engine) finish(j *job, res *Result, err error) {
	elapsed := time.Since(j.start)
	j.mu.Lock()
	rec := j.exp
	j.mu.Unlock()
	f := Final{RowCount: j.cnt.Rows.Load(), Retention: e.cfg.Retention}
	switch {
	case err == nil:
		f.Status = StatusReady
		f.RowCount, f.ByteSize, f.Checksum = res.Rows, res.Bytes, res.SHA256
	case errors.Is(err, errCancelled):
		f.Status = StatusCancelled
	default:
		f.Status = StatusFailed
		f.FailureReason = FailureReason(err)
	}
	// The final record must land even if the job's context is cancelled.
	pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	won, ferr := e.cfg.Records.Finish(pctx, rec.ID, rec.Owner, rec.Version, f)
	switch {
	case ferr == nil:
		rec = *won
	case errors.Is(ferr, ErrLost):
		if f.Status == StatusReady {
			e.removeArtefact(pctx, &rec)
		}
		rec = *won
	default:
		e.log.Warn("record final state; kept to retry", zap.String("export_id", rec.ID), zap.Error(ferr))
		rec.Status, rec.FailureReason = f.Status, f.FailureReason
		rec.RowCount, rec.ByteSize, rec.Checksum = f.RowCount, f.ByteSize, f.Checksum
		rec.FinishedAt = time.Now().UTC().Truncate(time.Millisecond)
		if f.Status == StatusReady {
			rec.ExpiresAt = rec.FinishedAt.Add(e.cfg.Retention)
		}
		e.mu.Lock()
		e.unsaved[rec.ID] = &unsavedFinal{state: rec, epoch: rec.Version, final: f}
		e.mu.Unlock()
	}
	j.mu.Lock()
	j.exp = rec
	j.mu.Unlock()
	fields := []zap.Field{zap.String("export_id", rec.ID), zap.String("status", rec.Status),
		zap.Int64("row_count", rec.RowCount), zap.Int64("byte_size", rec.ByteSize), zap.Duration("elapsed", elapsed),
		zap.Duration("record", time.Since(j.start)-elapsed)}
	fields = append(fields, j.phases.fields()...)
	if rec.Status == StatusFailed {
		fields = append(fields, zap.String("failure_reason", rec.FailureReason), zap.Error(err))
	}
	e.log.Info("export state", fields...)
	if e.cfg.OnFinish != nil {
		e.cfg.OnFinish(&rec, elapsed)
	}
	if j.slot != nil {
		s := j.slot
		j.slot = nil
		e.sched.hold(rec.EnterpriseRef, -1)
		s.Release(&rec, elapsed)
		e.poke()
	}
}

func (e *Engine) removeArtefact(ctx context.Context, x *Export) {
	if err := e.cfg.Store.Delete(ctx, x.ObjectName()); err != nil {
		// The reconciler removes it after its grace period.
		e.log.Error("remove artefact of an export ended elsewhere", zap.String("export_id", x.ID), zap.Error(err))
	}
}

// snapshot returns the live state of a local job.
func (j *job) snapshot() *Export {
	j.mu.Lock()
	defer j.mu.Unlock()
	x := j.exp
	if !Terminal(x.Status) {
		x.RowCount, x.ByteSize = j.cnt.Rows.Load(), j.cnt.Bytes.Load()
	}
	return &x
}

func (e *Engine) local(id string) *job {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.jobs[id]
}
