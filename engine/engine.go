package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

// Config configures an Engine. Reader, Records and Store are required.
type Config struct {
	Reader  Reader
	Records *Records
	Store   storage.Store
	// Retention is how long a ready file stays downloadable (default 24h).
	Retention time.Duration
	// MaxRows caps the rows of one export; 0 means unlimited.
	MaxRows int64
	// MaxExports bounds concurrently running exports (default 4).
	MaxExports int
	// Owner identifies this replica in export records (default: random).
	Owner string
	// Heartbeat is the interval of progress/liveness records (default 5s).
	Heartbeat time.Duration
	// StaleAfter is when a running export whose owner stopped beating is
	// declared failed/shutdown (default 30s). With the lost-owner check every
	// second heartbeat, a dead replica's exports read failed/shutdown within
	// StaleAfter + 2×Heartbeat (40s by default; SPEC §6 allows 60s), and Get
	// applies the same rule at once when it reads a stale record.
	StaleAfter time.Duration
	Logger     *zap.Logger
	// OnFinish, if set, observes every export that reaches a final state.
	OnFinish func(e *Export, elapsed time.Duration)
	// OnRunning, if set, receives the number of exports running on this
	// replica whenever it changes (called with no lock held, possibly
	// concurrently).
	OnRunning func(running int)
	// OnRead, if set, receives the rows and bytes ClickHouse delivered for
	// each export that read to the end.
	OnRead func(rows, bytes int64)
	Now    func() time.Time
}

func (c *Config) setDefaults() {
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.MaxExports <= 0 {
		c.MaxExports = 4
	}
	if c.Owner == "" {
		c.Owner = uuid.NewString()
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Engine runs exports. Start it once, Shutdown it once.
type Engine struct {
	cfg   Config
	log   *zap.Logger
	slots chan struct{}

	mu       sync.Mutex
	jobs     map[string]*job
	draining bool
	running  int
	// unsaved holds final states whose record could not be written
	// (ClickHouse unreachable). They are served from here and retried by the
	// background loop, so that a job that failed because ClickHouse went
	// away does not later read failed/shutdown (or, if ready, orphan its file).
	unsaved map[string]*Export
	finals  *finalCache // recent final states, see finals.go

	wg           sync.WaitGroup // jobs (registered under mu, see SubmitWith)
	graceOver    chan struct{}  // closed when Shutdown's grace has run out
	shutdownOnce sync.Once
	bgCancel     context.CancelFunc
	bgWG         sync.WaitGroup // janitor, heartbeat
}

type job struct {
	mu     sync.Mutex
	exp    Export // current record (guarded by mu)
	cnt    Counters
	cancel context.CancelCauseFunc
	done   chan struct{}
	start  time.Time
	onDone func(*Export, time.Duration)
}

var (
	errCancelled = errors.New("cancelled by request")
	errShutdown  = errors.New("shutdown")
)

// New returns an engine; call Start before Submit.
func New(cfg Config) (*Engine, error) {
	if cfg.Reader == nil || cfg.Records == nil || cfg.Store == nil {
		return nil, errors.New("engine: Reader, Records and Store are required")
	}
	cfg.setDefaults()
	return &Engine{cfg: cfg, log: cfg.Logger, slots: make(chan struct{}, cfg.MaxExports), jobs: map[string]*job{}, finals: newFinalCache(16384), graceOver: make(chan struct{}),
		unsaved: map[string]*Export{}}, nil
}

// Owner returns this replica's id.
func (e *Engine) Owner() string { return e.cfg.Owner }

// Start recovers exports left unfinished by a crash (SPEC §6: failed/shutdown),
// sweeps stray temp files and starts the background janitor and heartbeat.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.recover(ctx, true); err != nil {
		return err
	}
	if n, err := e.cfg.Store.Sweep(ctx, 2*e.cfg.StaleAfter); err != nil {
		e.log.Warn("sweep storage", zap.Error(err))
	} else if n > 0 {
		e.log.Info("swept stray temp files", zap.Int("files", n))
	}
	bg, cancel := context.WithCancel(context.Background())
	e.bgCancel = cancel
	e.bgWG.Add(1)
	go func() {
		defer e.bgWG.Done()
		e.background(bg)
	}()
	return nil
}

// recover marks failed/shutdown the unfinished exports owned by this replica
// (at start) or whose owner's heartbeat is stale (any time).
func (e *Engine) recover(ctx context.Context, atStart bool) error {
	list, err := e.cfg.Records.Unfinished(ctx)
	if err != nil {
		return fmt.Errorf("find unfinished exports: %w", err)
	}
	now := e.cfg.Now()
	for _, x := range list {
		if e.owns(x.ID) {
			continue
		}
		stale := now.Sub(x.Heartbeat) > e.cfg.StaleAfter
		if !(atStart && x.Owner == e.cfg.Owner) && !stale {
			continue
		}
		if err := e.finishRemote(ctx, x, StatusFailed, ReasonShutdown); err != nil {
			return err
		}
		e.discard(ctx, x)
		e.log.Info("export state", zap.String("export_id", x.ID), zap.String("status", StatusFailed),
			zap.String("failure_reason", ReasonShutdown), zap.String("previous_owner", x.Owner))
	}
	return nil
}

// owns reports whether this replica holds the current state of an export:
// a job of its own, or a final state it has yet to record.
func (e *Engine) owns(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, local := e.jobs[id]
	_, unsaved := e.unsaved[id]
	return local || unsaved
}

// discarder is implemented by stores that can remove what a dead writer of
// an object left behind (the file store: its temp files), at once rather
// than after Sweep's age. It must never touch a committed object.
type discarder interface {
	Discard(ctx context.Context, name string) error
}

// discard removes the leftovers of a lost export's writer (SPEC §6: once
// an export has ended nothing of it remains unless it is ready). The writer
// is gone (its process died or stopped beating); should it still be alive,
// its commit fails instead of exposing a file.
func (e *Engine) discard(ctx context.Context, x *Export) {
	d, ok := e.cfg.Store.(discarder)
	if !ok {
		return
	}
	if err := d.Discard(ctx, x.ObjectName()); err != nil {
		e.log.Warn("discard leftovers of a lost export", zap.String("export_id", x.ID), zap.Error(err))
	}
}

func (e *Engine) finishRemote(ctx context.Context, x *Export, status, reason string) error {
	y := *x
	y.Version = nextVersion(x.Version, e.cfg.Now())
	y.Status, y.FailureReason = status, reason
	y.FinishedAt = e.cfg.Now().UTC()
	return e.cfg.Records.Put(ctx, &y)
}

func nextVersion(prev uint64, now time.Time) uint64 {
	v := uint64(now.UnixNano())
	if v <= prev {
		v = prev + 1
	}
	return v
}

// Submit records a new pending export and starts it in the background.
// x holds the request (Format, Compression, DateFrom, DateTo, Scope*,
// EnterpriseRef, ClientRef, GeneratedBy); ID may be preset (else generated).
func (e *Engine) Submit(ctx context.Context, x *Export) (*Export, error) {
	return e.SubmitWith(ctx, x, nil)
}

// SubmitWith is Submit with a per-job hook called exactly once when the job
// ends in any way (also if Submit fails after taking it: then with nil),
// e.g. to release an admission permit.
func (e *Engine) SubmitWith(ctx context.Context, x *Export, done func(*Export, time.Duration)) (out *Export, err error) {
	defer func() {
		if err != nil && done != nil {
			done(nil, 0)
		}
	}()
	// The draining check and the job's registration with the wait group
	// happen under one lock, so a Submit that passes the check is waited for
	// by Shutdown (and one that comes later is refused): no job can start
	// after Shutdown's Wait returned.
	e.mu.Lock()
	if e.draining {
		e.mu.Unlock()
		return nil, ErrShuttingDown
	}
	e.wg.Add(1)
	e.mu.Unlock()
	registered := false
	defer func() {
		if !registered {
			e.wg.Done()
		}
	}()
	if x.ID == "" {
		x.ID = uuid.NewString()
	}
	now := e.cfg.Now().UTC()
	x.Status = StatusPending
	x.GeneratedAt = now
	x.Owner = e.cfg.Owner
	x.Heartbeat = now
	x.Version = nextVersion(0, now)
	x.StorageLocation = e.cfg.Store.Location(x.ObjectName())
	if err := e.cfg.Records.Put(ctx, x); err != nil {
		return nil, err
	}
	jctx, cancel := context.WithCancelCause(context.Background())
	j := &job{exp: *x, cancel: cancel, done: make(chan struct{}), start: now, onDone: done}
	e.mu.Lock()
	e.jobs[x.ID] = j
	if e.draining {
		// Shutdown began while the record was written: its grace timer
		// cancels only jobs it can see, so this one starts cancelled when the
		// grace is already over (the run loop then records failed/shutdown).
		select {
		case <-e.graceOver:
			cancel(errShutdown)
		default:
		}
	}
	e.mu.Unlock()
	registered = true
	e.log.Info("export state", zap.String("export_id", x.ID), zap.String("status", StatusPending))
	go func() {
		defer e.wg.Done()
		e.run(jctx, j)
	}()
	snap := *x
	return &snap, nil
}

func (e *Engine) run(ctx context.Context, j *job) {
	defer func() {
		e.mu.Lock()
		delete(e.jobs, j.exp.ID)
		e.mu.Unlock()
		close(j.done)
	}()
	// Wait for a slot.
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		e.finish(j, nil, context.Cause(ctx))
		return
	}
	defer func() { <-e.slots }()
	j.mu.Lock()
	j.exp.Status = StatusRunning
	j.exp.Version = nextVersion(j.exp.Version, e.cfg.Now())
	j.exp.Heartbeat = e.cfg.Now().UTC()
	rec := j.exp
	j.mu.Unlock()
	if err := e.cfg.Records.Put(ctx, &rec); err != nil && ctx.Err() == nil {
		e.finish(j, nil, fmt.Errorf("record running: %w", err))
		return
	}
	e.log.Info("export state", zap.String("export_id", rec.ID), zap.String("status", StatusRunning))
	e.addRunning(1)
	defer e.addRunning(-1)
	res, err := e.produce(ctx, &rec, &j.cnt)
	if err != nil && context.Cause(ctx) != nil {
		err = context.Cause(ctx)
	}
	e.finish(j, res, err)
}

// produce writes the artefact; on any error nothing is left in storage.
func (e *Engine) produce(ctx context.Context, x *Export, cnt *Counters) (*Result, error) {
	fromMs, toMs, err := x.Bounds()
	if err != nil {
		return nil, fmt.Errorf("BUG: stored bounds: %w", err)
	}
	q := source.Query{EnterpriseRef: x.EnterpriseRef, FromMs: fromMs, ToMs: toMs}
	switch x.ScopeKind {
	case KindClient:
		q.ClientRef = x.ScopeRef
	case KindClientAccount:
		q.AccountRef = x.ScopeRef
	}
	reader := e.cfg.Reader
	if x.EnterpriseRef == "" {
		reader = EmptyReader{} // a client or account without activity: header only
	}
	plan, err := reader.Plan(ctx, q)
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
	res, err := Pipe(ctx, reader, q, plan, x.Compression, e.cfg.MaxRows, w, cnt)
	if err == nil && e.cfg.OnRead != nil {
		e.cfg.OnRead(res.Rows, res.ReadBytes)
	}
	if err == nil {
		// Another replica may have ended the export while it ran (a cancel
		// sent through it, or a lost-owner verdict); the heartbeat learns of
		// that only every few seconds. Look once more before the artefact
		// becomes visible, so that such an export never turns ready or leaves
		// a file behind.
		err = e.endedElsewhere(ctx, x.ID)
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

// endedElsewhere reports, as the cause to stop a local job with, a final
// state that another replica recorded for it: errCancelled for a cancel
// sent through another replica, errShutdown when another replica declared
// this one lost. Nil when the record is still pending or running, or
// cannot be read (the job goes on; the next look decides).
func (e *Engine) endedElsewhere(ctx context.Context, id string) error {
	stored, err := e.cfg.Records.Get(ctx, id)
	switch {
	case err != nil || !Terminal(stored.Status):
		return nil
	case stored.Status == StatusCancelled:
		return errCancelled
	default:
		return errShutdown
	}
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
	var upstream interface{ IsUpstream() bool }
	if errors.As(err, &upstream) {
		return ReasonUpstream
	}
	// Everything else on the read path is ClickHouse answering with an error.
	return ReasonUpstream
}

func (e *Engine) addRunning(d int) {
	e.mu.Lock()
	e.running += d
	n := e.running
	e.mu.Unlock()
	if e.cfg.OnRunning != nil {
		e.cfg.OnRunning(n)
	}
}

func (e *Engine) finish(j *job, res *Result, err error) {
	now := e.cfg.Now().UTC()
	j.mu.Lock()
	x := &j.exp
	x.Version = nextVersion(x.Version, now)
	x.FinishedAt = now
	x.Heartbeat = now
	switch {
	case err == nil:
		x.Status = StatusReady
		x.RowCount, x.ByteSize, x.Checksum = res.Rows, res.Bytes, res.SHA256
		x.ExpiresAt = now.Add(e.cfg.Retention)
	case errors.Is(err, errCancelled):
		x.Status = StatusCancelled
		x.RowCount, x.ByteSize = j.cnt.Rows.Load(), 0
	default:
		x.Status = StatusFailed
		x.FailureReason = FailureReason(err)
		x.RowCount, x.ByteSize = j.cnt.Rows.Load(), 0
	}
	if x.Status != StatusReady {
		x.Checksum = ""
	}
	rec := *x
	j.mu.Unlock()
	// The final record must land even if the job's context is cancelled.
	pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if perr := e.cfg.Records.Put(pctx, &rec); perr != nil {
		e.log.Warn("record final state; kept to retry", zap.String("export_id", rec.ID), zap.Error(perr))
		saved := rec
		e.mu.Lock()
		e.unsaved[rec.ID] = &saved
		e.mu.Unlock()
	} else if rec.Status == StatusReady {
		// Another replica may have ended the export (cancel, lost owner)
		// between the last check and this record: the first final state
		// wins (newestFirst), so a "ready" that lost takes its file away.
		if won, gerr := e.cfg.Records.Get(pctx, rec.ID); gerr == nil && won.Version != rec.Version {
			if derr := e.cfg.Store.Delete(pctx, rec.ObjectName()); derr != nil {
				e.log.Error("remove artefact of an export ended elsewhere", zap.String("export_id", rec.ID), zap.Error(derr))
			}
			rec = *won
			j.mu.Lock()
			j.exp = rec
			j.mu.Unlock()
		}
	}
	fields := []zap.Field{zap.String("export_id", rec.ID), zap.String("status", rec.Status),
		zap.Int64("row_count", rec.RowCount), zap.Int64("byte_size", rec.ByteSize),
		zap.Duration("elapsed", now.Sub(j.start))}
	if rec.Status == StatusFailed {
		fields = append(fields, zap.String("failure_reason", rec.FailureReason), zap.Error(err))
	}
	e.log.Info("export state", fields...)
	e.finals.put(&rec)
	if e.cfg.OnFinish != nil {
		e.cfg.OnFinish(&rec, now.Sub(j.start))
	}
	if j.onDone != nil {
		j.onDone(&rec, now.Sub(j.start))
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

// Get returns the current state of an export: live progress for a job of
// this replica, else the latest record, with expiry and lost owners applied.
func (e *Engine) Get(ctx context.Context, id string) (*Export, error) {
	if j := e.local(id); j != nil {
		return j.snapshot(), nil
	}
	if x := e.unsavedState(id); x != nil {
		return e.view(ctx, x), nil
	}
	if x := e.finals.get(id); x != nil {
		return e.view(ctx, x), nil
	}
	x, err := e.cfg.Records.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	x = e.view(ctx, x)
	e.finals.put(x)
	return x, nil
}

// unsavedState returns a copy of a final state not yet recorded, or nil.
func (e *Engine) unsavedState(id string) *Export {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.unsaved[id]; x != nil {
		y := *x
		return &y
	}
	return nil
}

// saveUnsaved retries recording the final states kept by finish.
func (e *Engine) saveUnsaved(ctx context.Context) {
	e.mu.Lock()
	list := make([]*Export, 0, len(e.unsaved))
	for _, x := range e.unsaved {
		list = append(list, x)
	}
	e.mu.Unlock()
	for _, x := range list {
		if err := e.cfg.Records.Put(ctx, x); err != nil {
			if ctx.Err() == nil {
				e.log.Warn("record final state", zap.String("export_id", x.ID), zap.Error(err))
			}
			return // still unreachable: try again at the next beat
		}
		e.mu.Lock()
		delete(e.unsaved, x.ID)
		e.mu.Unlock()
		e.log.Info("recorded final state", zap.String("export_id", x.ID), zap.String("status", x.Status))
	}
}

// view applies time-based transitions to a stored record.
func (e *Engine) view(ctx context.Context, x *Export) *Export {
	now := e.cfg.Now()
	switch {
	case x.Status == StatusReady && !x.ExpiresAt.IsZero() && !now.Before(x.ExpiresAt):
		x.Status = StatusExpired
	case !Terminal(x.Status) && now.Sub(x.Heartbeat) > e.cfg.StaleAfter && !e.owns(x.ID):
		if err := e.finishRemote(ctx, x, StatusFailed, ReasonShutdown); err == nil {
			x.Status, x.FailureReason, x.FinishedAt = StatusFailed, ReasonShutdown, now.UTC()
			e.discard(ctx, x)
		}
	}
	return x
}

// List returns visible exports, newest first, with the same view as Get.
func (e *Engine) List(ctx context.Context, v Visibility, after *Cursor, limit int) ([]*Export, error) {
	list, err := e.cfg.Records.List(ctx, v, after, limit)
	if err != nil {
		return nil, err
	}
	for i, x := range list {
		if j := e.local(x.ID); j != nil {
			list[i] = j.snapshot()
			continue
		}
		if u := e.unsavedState(x.ID); u != nil {
			x = u
		}
		list[i] = e.view(ctx, x)
	}
	return list, nil
}

// Wait blocks until the export is final on this replica, d elapses or ctx
// ends, then returns its current state.
func (e *Engine) Wait(ctx context.Context, id string, d time.Duration) (*Export, error) {
	if j := e.local(id); j != nil && d > 0 {
		t := time.NewTimer(d)
		select {
		case <-j.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	return e.Get(ctx, id)
}

// Cancel stops a pending or running export: its query is cancelled, its
// temp file removed, and it ends cancelled. A final export yields
// ErrNotCancellable along with its state.
func (e *Engine) Cancel(ctx context.Context, id string) (*Export, error) {
	if j := e.local(id); j != nil {
		j.cancel(errCancelled)
		select {
		case <-j.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		x := j.snapshot()
		if x.Status != StatusCancelled {
			return x, ErrNotCancellable
		}
		return x, nil
	}
	x, err := e.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if Terminal(x.Status) {
		return x, ErrNotCancellable
	}
	// Owned by another replica: record the cancellation; the owner sees it
	// at its next heartbeat and stops the job.
	if err := e.finishRemote(ctx, x, StatusCancelled, ""); err != nil {
		return nil, err
	}
	return e.cfg.Records.Get(ctx, id)
}

// Draining reports whether Shutdown has begun.
func (e *Engine) Draining() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.draining
}

// Shutdown stops admitting, lets running exports finish until ctx ends,
// then cancels the rest (failed/shutdown) and stops background work.
func (e *Engine) Shutdown(ctx context.Context) {
	e.shutdownOnce.Do(func() { e.shutdown(ctx) })
}

func (e *Engine) shutdown(ctx context.Context) {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		e.mu.Lock()
		close(e.graceOver)
		for _, j := range e.jobs {
			j.cancel(errShutdown)
		}
		e.mu.Unlock()
		<-done
	}
	if e.bgCancel != nil {
		e.bgCancel()
	}
	e.bgWG.Wait()
	// A last try for final states ClickHouse did not take; what is still
	// unsaved after it is declared failed/shutdown by the next replica.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.saveUnsaved(sctx)
}

// background runs heartbeats (progress, liveness, remote cancellation),
// lost-owner detection and expiry.
func (e *Engine) background(ctx context.Context) {
	tick := time.NewTicker(e.cfg.Heartbeat)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n++
		e.saveUnsaved(ctx)
		e.heartbeat(ctx)
		if n%2 == 0 {
			if err := e.recover(ctx, false); err != nil && ctx.Err() == nil {
				e.log.Warn("lost-owner check", zap.Error(err))
			}
		}
		if n%6 == 0 {
			e.expire(ctx)
		}
	}
}

func (e *Engine) heartbeat(ctx context.Context) {
	e.mu.Lock()
	jobs := make([]*job, 0, len(e.jobs))
	for _, j := range e.jobs {
		jobs = append(jobs, j)
	}
	e.mu.Unlock()
	for _, j := range jobs {
		j.mu.Lock()
		if Terminal(j.exp.Status) {
			j.mu.Unlock()
			continue
		}
		id := j.exp.ID
		j.mu.Unlock()
		if cause := e.endedElsewhere(ctx, id); cause != nil {
			j.cancel(cause)
			continue
		}
		j.mu.Lock()
		if Terminal(j.exp.Status) {
			j.mu.Unlock()
			continue
		}
		now := e.cfg.Now()
		j.exp.Version = nextVersion(j.exp.Version, now)
		j.exp.Heartbeat = now.UTC()
		rec := j.exp
		rec.RowCount, rec.ByteSize = j.cnt.Rows.Load(), j.cnt.Bytes.Load()
		j.mu.Unlock()
		if err := e.cfg.Records.Put(ctx, &rec); err != nil && ctx.Err() == nil {
			e.log.Warn("heartbeat", zap.String("export_id", id), zap.Error(err))
		}
	}
}

// expire deletes artefacts past retention and records them expired.
func (e *Engine) expire(ctx context.Context) {
	list, err := e.cfg.Records.Expirable(ctx, e.cfg.Now())
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("find expired exports", zap.Error(err))
		}
		return
	}
	for _, x := range list {
		if err := e.cfg.Store.Delete(ctx, x.ObjectName()); err != nil {
			e.log.Warn("delete expired artefact", zap.String("export_id", x.ID), zap.Error(err))
			continue
		}
		y := *x
		y.Version = nextVersion(x.Version, e.cfg.Now())
		y.Status = StatusExpired
		if err := e.cfg.Records.Put(ctx, &y); err != nil {
			e.log.Warn("record expiry", zap.String("export_id", x.ID), zap.Error(err))
			continue
		}
		e.log.Info("export state", zap.String("export_id", x.ID), zap.String("status", StatusExpired))
	}
}
