package schedules

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/exportd/exportd/engine"
)

// Submitter makes exports (*engine.Engine). SubmitWith records the export
// (claiming key in the same transaction) and starts it in turn; it returns
// the bound export with created false when the key is already bound,
// engine.ErrTooManyPending / engine.ErrBusy when the enterprise is at a
// limit (try later), engine.ErrShuttingDown while draining. Get returns
// the current state or engine.ErrNotFound. Both block on the control plane.
type Submitter interface {
	SubmitWith(ctx context.Context, x *engine.Export, key *engine.IdempotencyKey, slot engine.Slot) (*engine.Export, bool, error)
	Get(ctx context.Context, id string) (*engine.Export, error)
}

// ScopeParents finds the (enterprise, client) pairs the activity of a
// client or account scope names (engine.Scopes, on ClickHouse).
type ScopeParents interface {
	ScopeParents(ctx context.Context, kind, ref string) ([][2]string, error)
}

// RunnerConfig configures a Runner. Store and Engine are required.
type RunnerConfig struct {
	Store  Store
	Engine Submitter
	// Scopes, if set, resolves at each run the scope of a schedule whose
	// client or account had no activity when it was created (its
	// EnterpriseRef is empty): see Runner.submit.
	Scopes ScopeParents
	// Now is the clock that decides which periods are due; tests drive
	// period boundaries with it. Default: Clock.
	Now func() time.Time
	// Clock, used when Now is nil, reads the control plane's clock
	// (pgstore.Store.Now), so that a replica whose clock runs ahead never
	// exports a period before it has ended; nil: time.Now.
	Clock func(ctx context.Context) (time.Time, error)
	// Interval is the time between sweeps (default 15s). A sweep also runs
	// at Start (downtime is caught up at once) and on Poke.
	Interval time.Duration
	// PerSweep bounds the runs one sweep submits (default 100) and
	// PerSchedule those of one schedule (default 20): a backfill of 366
	// periods is spread over sweeps, and one schedule's backlog leaves room
	// for the others'.
	PerSweep, PerSchedule int
	// Timeout bounds one sweep (default 1m).
	Timeout time.Duration
	Logger  *zap.Logger
}

func (c *RunnerConfig) setDefaults() {
	if c.Now == nil && c.Clock == nil {
		c.Now = time.Now
	}
	if c.Interval <= 0 {
		c.Interval = 15 * time.Second
	}
	if c.PerSweep <= 0 {
		c.PerSweep = 100
	}
	if c.PerSchedule <= 0 {
		c.PerSchedule = 20
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Minute
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Runner sweeps the schedules: it claims the periods that became due (a
// run row per period, unique per schedule and period, so replicas sweeping
// at once claim each period once) and submits the exports of claimed runs
// whose export does not exist yet, each with the run's export id and its
// idempotency key (schedules/<id>, period start). A replica that dies
// between the claim and the submit, or between the submit and recording
// it, leaves an open run that the next sweep of any replica completes:
// the retry gets the same export back (the key is bound, or the export id
// exists), never a second one.
//
// Start and Stop are idempotent; the sweep goroutine is the Runner's.
type Runner struct {
	cfg  RunnerConfig
	log  *zap.Logger
	poke chan struct{}

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewRunner returns a runner; Start it to sweep in the background.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Store == nil || cfg.Engine == nil {
		return nil, errors.New("schedules: Store and Engine are required")
	}
	cfg.setDefaults()
	return &Runner{cfg: cfg, log: cfg.Logger, poke: make(chan struct{}, 1)}, nil
}

// Start begins sweeping: at once, then every Interval and on Poke.
func (r *Runner) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return
	}
	r.started = true
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.loop(ctx)
	}()
}

// Stop ends the sweeps and waits for the one in progress (its submits are
// the engine's from then on).
func (r *Runner) Stop() {
	r.mu.Lock()
	cancel := r.cancel
	r.cancel = nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	r.wg.Wait()
}

// Poke asks for a sweep soon (a schedule was created). It never blocks.
func (r *Runner) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

func (r *Runner) loop(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		st, err := r.Sweep(sctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("schedule sweep", zap.Error(err), zap.Int("claimed", st.Claimed), zap.Int("submitted", st.Submitted))
		case st.Claimed+st.Submitted > 0:
			r.log.Info("schedule sweep", zap.Int("claimed", st.Claimed), zap.Int("submitted", st.Submitted),
				zap.Int("deferred", st.Deferred))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.poke:
		}
	}
}

// SweepStats counts what one sweep did.
type SweepStats struct {
	Claimed   int // runs recorded
	Submitted int // runs whose export now exists (made now, or found made)
	Created   int // exports this sweep created
	Deferred  int // runs left for a later sweep (enterprise at a limit, or the sweep's budget spent)
	Failed    int // runs whose submit failed (retried by a later sweep)
}

// Sweep claims the due periods of every schedule and submits open runs,
// once. It is safe to run on several replicas at once. A run whose submit
// fails is counted in Failed and left for a later sweep (the first such
// error is returned with the stats); an unreachable control plane or a
// draining engine ends the sweep at once.
func (r *Runner) Sweep(ctx context.Context) (SweepStats, error) {
	var st SweepStats
	var now time.Time
	if r.cfg.Now != nil {
		now = r.cfg.Now()
	} else {
		var err error
		if now, err = r.cfg.Clock(ctx); err != nil {
			return st, err
		}
	}
	after := ""
	for {
		due, err := r.cfg.Store.DueSchedules(ctx, now, after, 200)
		if err != nil {
			return st, err
		}
		for _, s := range due {
			after = s.ID
			p, err := s.Plan()
			if err != nil {
				r.log.Error("schedule with an invalid plan", zap.String("schedule_id", s.ID), zap.Error(err))
				continue
			}
			n, err := r.cfg.Store.Claim(ctx, s.ID, p.Due(now), p.NextRun(now))
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return st, err
			}
			st.Claimed += n
		}
		if len(due) < 200 {
			break
		}
	}
	// More runs are read than may be submitted: runs of enterprises at a
	// limit are passed over, and the others' runs still fill the sweep.
	runs, err := r.cfg.Store.OpenRuns(ctx, r.cfg.PerSchedule, 4*r.cfg.PerSweep)
	if err != nil {
		return st, err
	}
	var firstErr error
	full := map[string]bool{} // enterprises at a limit: the rest of their runs wait
	for _, run := range runs {
		ent := run.Schedule.EnterpriseRef
		if full[ent] || st.Submitted+st.Failed >= r.cfg.PerSweep {
			st.Deferred++
			continue
		}
		created, err := r.submit(ctx, run)
		switch {
		case errors.Is(err, engine.ErrTooManyPending), errors.Is(err, engine.ErrBusy):
			full[ent] = true
			st.Deferred++
			continue
		case errors.Is(err, engine.ErrShuttingDown), errors.Is(err, engine.ErrControlPlaneUnavailable), ctx.Err() != nil:
			return st, err
		case err != nil:
			// This run only: the others go on, it is retried next sweep.
			st.Failed++
			r.log.Warn("submit scheduled export", zap.String("schedule_id", run.Schedule.ID),
				zap.String("export_id", run.ExportID), zap.Error(err))
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		st.Submitted++
		if created {
			st.Created++
		}
	}
	return st, firstErr
}

// submit makes the run's export (or finds it made) and records the run
// submitted.
func (r *Runner) submit(ctx context.Context, run *Run) (created bool, err error) {
	x := run.Schedule.ExportOf(run.ExportID, run.Period)
	if x.EnterpriseRef == "" && x.ScopeKind != engine.KindEnterprise && r.cfg.Scopes != nil {
		// The creator named this client or account itself (the only way a
		// scope without activity is admitted, server resolve), so it
		// covers the scope under any enterprise: as create would now, take
		// the first parent by ref. Until activity appears the export is
		// empty, like an export of the scope made by hand.
		parents, err := r.cfg.Scopes.ScopeParents(ctx, x.ScopeKind, x.ScopeRef)
		if err != nil {
			return false, err
		}
		if len(parents) > 0 {
			first := slices.MinFunc(parents, func(a, b [2]string) int {
				return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
			})
			x.EnterpriseRef = first[0]
			if x.ScopeKind == engine.KindClientAccount {
				x.ClientRef = first[1]
			}
		}
	}
	_, created, err = r.cfg.Engine.SubmitWith(ctx, x, run.Key(), nil)
	switch {
	case errors.Is(err, engine.ErrTooManyPending), errors.Is(err, engine.ErrBusy), errors.Is(err, engine.ErrShuttingDown):
		return false, err
	case err != nil:
		// The key may have been reclaimed (past its window) while the export
		// exists, whose id then refuses a second insert: the run is done.
		if _, gerr := r.cfg.Engine.Get(ctx, run.ExportID); gerr != nil {
			return false, err
		}
	}
	if created {
		r.log.Info("scheduled export", zap.String("schedule_id", run.Schedule.ID), zap.String("export_id", run.ExportID),
			zap.String("date_from_utc", x.DateFrom), zap.String("date_to_utc", x.DateTo))
	}
	return created, r.cfg.Store.MarkSubmitted(ctx, run.Schedule.ID, run.Period.Start)
}
