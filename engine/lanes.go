package engine

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
)

// Short exports first (issue 13's fairness between tenants).
//
// The per-enterprise cap and the round-robin dispatcher give every tenant a
// running slot in turn, but on a busy replica a slot is not the machine: a
// tenant's two long exports (ClickHouse sorting two-million-row windows,
// exportd encoding and compressing them) take the cores a small export of
// another tenant needs, which then runs several times slower than alone.
// So a replica runs its short exports first: while a short export (at most
// ShortRows planned rows) runs here, long exports pause before each block,
// and their ClickHouse window queries run at a lower priority (ClickHouse's
// `priority` setting, on 18.16 and current releases alike: a query yields
// while one of a higher priority runs). A short export thus takes about its
// uncontended time whatever the long ones do, and costs them about its own
// duration (shortest job first minimises the mean response time).
//
// A long export is never starved: it waits at most longYield before each
// block however many short exports follow each other, so it still moves at
// least one block (16384 rows) per longYield.
const (
	// defaultShortRows: an export of at most this many planned rows is
	// short (about a third of a second of work on one core).
	defaultShortRows = 100_000
	// longYield bounds one pause of a long export.
	longYield = 250 * time.Millisecond
	// ClickHouse priorities (1 is the highest; 0 would mean none).
	priorityShort = 1
	priorityLong  = 2
)

// lanes counts the short exports running on this replica and lets long
// ones wait until there are none.
type lanes struct {
	mu    sync.Mutex
	short int
	idle  chan struct{} // closed while short == 0
	// sorts holds a token for each long export's window query that
	// ClickHouse is reading and sorting (from its send to its first
	// block): see sortGate.
	sorts chan struct{}
}

// newLanes lets sorting long windows of this replica take at most
// sorting of ClickHouse's cores at once.
func newLanes(sorting int) *lanes {
	idle := make(chan struct{})
	close(idle)
	return &lanes{idle: idle, sorts: make(chan struct{}, max(1, sorting))}
}

// sortGate holds back a long export's window query while short exports
// run (at most longYield), then until fewer than cap(sorts) long windows
// are being sorted by ClickHouse. ClickHouse 18.16 reads and sorts a whole
// window before its first block, on all its cores (max_threads), and its
// priority setting pauses that work only between blocks it reads: two
// long exports each sorting a window, or one sorting its next window
// ahead while another sorts its first, leave a short export's query a
// third of the CPU (measured: its first block 50-145 ms instead of
// 10-25 ms). One long sort at a time (with ClickHouse on the same two
// cores) leaves it a core. A single export is not slowed: its window
// ahead is sent once its current window has sorted. The returned func
// frees the token (the source calls it once, at the first block or the
// query's end).
func (l *lanes) sortGate(ctx context.Context) (sorted func()) {
	l.yield(ctx, longYield)
	select {
	case l.sorts <- struct{}{}:
		return func() { <-l.sorts }
	case <-ctx.Done():
		return func() {} // the query fails on ctx at once
	}
}

// enterShort registers a running short export; leave ends it (once).
func (l *lanes) enterShort() (leave func()) {
	l.mu.Lock()
	if l.short == 0 {
		l.idle = make(chan struct{})
	}
	l.short++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.short--
			if l.short == 0 {
				close(l.idle)
			}
			l.mu.Unlock()
		})
	}
}

// yield waits until no short export runs, at most max or until ctx ends.
func (l *lanes) yield(ctx context.Context, max time.Duration) {
	l.mu.Lock()
	idle := l.idle
	l.mu.Unlock()
	select {
	case <-idle:
		return
	default:
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-ctx.Done():
	}
}

// yieldingReader is a long export's reader: it pauses before each block
// while short exports run.
type yieldingReader struct {
	Reader
	lanes *lanes
	max   time.Duration
}

func (r yieldingReader) Stream(ctx context.Context, q source.Query, plan *source.Plan, fn func(*activity.Block) error) (source.Stats, error) {
	return r.Reader.Stream(ctx, q, plan, func(b *activity.Block) error {
		r.lanes.yield(ctx, r.max)
		return fn(b)
	})
}

// yieldingWriter is a long export's sink: its compressor pauses before
// each write while short exports run (the reader's pause alone would leave
// it compressing the chunks already queued).
type yieldingWriter struct {
	ctx   context.Context
	w     io.Writer
	lanes *lanes
	max   time.Duration
}

func (w yieldingWriter) Write(p []byte) (int, error) {
	w.lanes.yield(w.ctx, w.max)
	return w.w.Write(p)
}

// Urgent marks interactive work in flight on this replica (a create being
// admitted: its scope lookup, count and record) until leave is called:
// long exports yield to it as to a short export.
func (e *Engine) Urgent() (leave func()) { return e.lanes.enterShort() }

// lane puts a job whose plan counted rows in its lane: a short one keeps
// the short lane it entered before planning (leave ends it) and gets the
// high ClickHouse priority; a long one leaves it at once and gets a
// yielding reader and sink and the low priority.
func (e *Engine) lane(ctx context.Context, r Reader, q source.Query, w io.Writer, rows int64, leave func()) (Reader, source.Query, io.Writer) {
	if rows <= e.cfg.ShortRows {
		q.Priority = priorityShort
		return r, q, w
	}
	leave()
	q.Priority = priorityLong
	q.Gate = e.lanes.sortGate
	return yieldingReader{Reader: r, lanes: e.lanes, max: longYield}, q,
		yieldingWriter{ctx: ctx, w: w, lanes: e.lanes, max: longYield}
}

// enterLane enters the short lane for a job about to plan (every job is
// short until its plan says otherwise); lanes off: a no-op.
func (e *Engine) enterLane() func() {
	if e.cfg.ShortRows < 0 {
		return func() {}
	}
	return e.lanes.enterShort()
}
