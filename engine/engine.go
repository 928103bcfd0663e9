package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine/storage"
)

// Config configures an Engine. Reader, Records and Store are required.
type Config struct {
	Reader  Reader
	Records RecordStore
	Store   storage.Store
	// Retention is how long a ready file stays downloadable (default 24h).
	Retention time.Duration
	// RecordRetention is how long an ended export's record is kept before
	// it is deleted (default 90 days; negative: kept forever).
	RecordRetention time.Duration
	// MaxRows caps the rows of one export; 0 means unlimited.
	MaxRows int64
	// MaxExports bounds concurrently running exports (default 4) when
	// Slots is nil.
	MaxExports int
	// Slots, if set, hands out running slots (server/admission's adaptive
	// limit); the engine then waits on it rather than on MaxExports.
	Slots SlotSource
	// MaxPerEnterprise caps the exports of one enterprise running at once
	// on all replicas together (default 2; negative: no cap). More wait
	// pending and start in turn.
	MaxPerEnterprise int
	// MaxPendingPerEnterprise caps pending exports of one enterprise on all
	// replicas (default 50; negative: no cap): beyond, Submit fails with
	// ErrTooManyPending.
	MaxPendingPerEnterprise int
	// ExportTimeout bounds one export from its start (default 2h): then it
	// ends failed/timeout.
	ExportTimeout time.Duration
	// ShortRows: exports of at most this many planned rows run first on a
	// replica, long ones yielding to them (default 100,000; negative: no
	// lanes). See lanes.go.
	ShortRows int64
	// SortingWindows bounds the long exports' window queries ClickHouse
	// reads and sorts at once for this replica (default 1; lanes.go).
	SortingWindows int
	// Owner identifies this replica in export records (default: random).
	// With a stable owner, Start ends what a previous run left live at once.
	Owner string
	// Heartbeat is the interval of lease renewals and progress (default 5s).
	Heartbeat time.Duration
	// StaleAfter is when a live export whose lease was not renewed is
	// declared failed/shutdown by any replica (default 30s). With the
	// lost-owner check every second heartbeat, a dead replica's exports read
	// failed/shutdown within StaleAfter + 2×Heartbeat (40s by default; SPEC
	// §6 allows 60s). Both are judged by the record store's clock.
	StaleAfter time.Duration
	// ReconcileEvery is the interval of the storage reconciler, which
	// removes objects that no live or ready export names (default 10m).
	ReconcileEvery time.Duration
	// ReconcileGrace is the age under which an object is never reconciled
	// away (default 15m): longer than an owner takes from commit to record.
	ReconcileGrace time.Duration
	Logger         *zap.Logger
	// OnFinish, if set, observes every export that reaches a final state.
	OnFinish func(e *Export, elapsed time.Duration)
	// OnRunning, if set, receives the number of exports running on this
	// replica whenever it changes (called with no lock held, possibly
	// concurrently).
	OnRunning func(running int)
	// OnRead, if set, receives the rows and bytes ClickHouse delivered for
	// each export that read to the end.
	OnRead func(rows, bytes int64)
}

func (c *Config) setDefaults() {
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.RecordRetention == 0 {
		c.RecordRetention = 90 * 24 * time.Hour
	}
	if c.MaxExports <= 0 {
		c.MaxExports = 4
	}
	if c.MaxPerEnterprise == 0 {
		c.MaxPerEnterprise = 2
	}
	if c.MaxPendingPerEnterprise == 0 {
		c.MaxPendingPerEnterprise = 50
	}
	if c.ExportTimeout <= 0 {
		c.ExportTimeout = 2 * time.Hour
	}
	if c.ShortRows == 0 {
		c.ShortRows = defaultShortRows
	}
	if c.SortingWindows <= 0 {
		c.SortingWindows = 1
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
	if c.ReconcileEvery == 0 {
		c.ReconcileEvery = 10 * time.Minute
	}
	if c.ReconcileGrace == 0 {
		c.ReconcileGrace = 15 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Engine runs exports. Start it once, Shutdown it once.
type Engine struct {
	cfg   Config
	log   *zap.Logger
	slots SlotSource
	sched scheduler
	lanes *lanes        // short exports first (lanes.go)
	wake  chan struct{} // pokes the dispatcher (capacity 1)

	mu       sync.Mutex
	jobs     map[string]*job
	draining bool
	running  int
	// unsaved holds final states whose record could not be written (the
	// record store unreachable). They are served from here and retried by
	// the background loop with the same fenced Finish, so a job that ended
	// while PostgreSQL was away is recorded when it returns (or, if its
	// lease was reaped meanwhile, loses and removes its artefact).
	unsaved map[string]*unsavedFinal

	wg           sync.WaitGroup // jobs (registered under mu, see SubmitWith)
	graceOver    chan struct{}  // closed when Shutdown's grace has run out
	shutdownOnce sync.Once
	bgCancel     context.CancelFunc
	bgWG         sync.WaitGroup // background loop
}

type unsavedFinal struct {
	state Export // served while unsaved
	epoch uint64
	final Final
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
	e := &Engine{cfg: cfg, log: cfg.Logger, slots: cfg.Slots, jobs: map[string]*job{}, wake: make(chan struct{}, 1),
		sched:     scheduler{queues: map[string][]*job{}, holding: map[string]int{}, served: map[string]uint64{}, busy: map[string]bool{}},
		graceOver: make(chan struct{}), unsaved: map[string]*unsavedFinal{}, lanes: newLanes(cfg.SortingWindows)}
	if e.slots == nil {
		e.slots = &fixedSlots{free: cfg.MaxExports, poke: e.poke}
	}
	return e, nil
}

// Owner returns this replica's id.
func (e *Engine) Owner() string { return e.cfg.Owner }

// Start ends exports a previous run under this owner left live and those
// whose lease ran out (SPEC §6: failed/shutdown), sweeps stray temp files and starts the background loop.
func (e *Engine) Start(ctx context.Context) error {
	lost, err := e.cfg.Records.FailOwned(ctx, e.cfg.Owner)
	if err != nil {
		return err
	}
	e.discardAll(ctx, lost)
	e.reap(ctx)
	// Well above the time a live writer may go without touching its temp
	// file or uploading a part (a slow read, a large S3 part on a slow
	// link); a dead writer's leftovers of reaped exports are discarded at
	// once anyway (discardAll).
	if n, err := e.cfg.Store.Sweep(ctx, max(2*e.cfg.StaleAfter, 15*time.Minute)); err != nil {
		e.log.Warn("sweep storage", zap.Error(err))
	} else if n > 0 {
		e.log.Info("swept stray temp files", zap.Int("files", n))
	}
	bg, cancel := context.WithCancel(context.Background())
	e.bgCancel = cancel
	e.bgWG.Add(2)
	go func() {
		defer e.bgWG.Done()
		e.background(bg)
	}()
	go func() {
		defer e.bgWG.Done()
		e.dispatchLoop(bg)
	}()
	return nil
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
	// A last try for final states the record store did not take; what is
	// still unsaved after it is reaped as failed/shutdown by another replica.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.saveUnsaved(sctx)
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
