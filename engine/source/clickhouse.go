// Package source reads activity rows out of ClickHouse as reused columnar
// blocks, in export order, for one enterprise and an inclusive time range.
package source

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/chconn"
)

// Table is the activity table (SPEC §3).
const Table = "operations_activity"

// Query selects the rows of one export. EnterpriseRef is mandatory: every
// read is restricted to one enterprise (tenant isolation). ClientRef and
// AccountRef narrow it further when set. FromMs and ToMs are inclusive Unix
// milliseconds.
//
// Columns (indices into activity.Columns, nil for all) are the only columns
// read; the block's other columns stay empty. Families, Statuses and
// Currencies, when non-nil, keep only rows whose value is in the set (SQL
// predicates, so the plan counts only matching rows).
type Query struct {
	EnterpriseRef string
	ClientRef     string
	AccountRef    string
	FromMs, ToMs  int64
	Columns       []int
	Families      []string
	Statuses      []string
	Currencies    []string
	// Priority, when positive, is the window queries' ClickHouse priority
	// (1 the highest): a query yields while one of a higher priority runs.
	Priority int
	// Gate, if set, is called before each window's query is sent and may
	// hold it back; the func it returns is called once the window is
	// sorted (its first block arrived, or the query ended). A window query
	// once sent reads and sorts on the server's cores whatever its
	// priority, so long exports pass a gate (engine/lanes.go).
	Gate func(ctx context.Context) (sorted func())
}

// ErrUnavailable wraps failures to reach ClickHouse at all (chconn's).
var ErrUnavailable = chconn.ErrUnavailable

// Options configure a ClickHouse source.
type Options struct {
	// WindowRows bounds the rows of one ordered sub-query (default 500,000).
	// ClickHouse 18.16 cannot read in primary-key order, so ORDER BY sorts the
	// whole result in server memory; reading the range as consecutive time
	// windows of bounded size keeps that memory flat whatever the export size.
	WindowRows int64
	// MaxExecution, if set, is ClickHouse's max_execution_time for each
	// query (whole seconds, rounded up): a runaway query ends on the server
	// even if exportd's own deadline were missed.
	MaxExecution time.Duration
}

// ClickHouse streams activity from a ClickHouse server.
type ClickHouse struct {
	cfg  chconn.Config
	opts Options
}

// New returns a source for the server of cfg.
func New(cfg chconn.Config, opts Options) *ClickHouse {
	if opts.WindowRows <= 0 {
		opts.WindowRows = defaultWindowRows
	}
	return &ClickHouse{cfg: cfg, opts: opts}
}

// Stats are what a stream read.
type Stats struct {
	Rows  int64 // rows delivered
	Bytes int64 // bytes ClickHouse reported reading
}

// Plan is the number of matching rows per window, computed before streaming.
type Plan struct {
	Total   int64
	windows []window
}

type window struct {
	from, to int64 // [from, to) in ms
	rows     int64
}

const dayMs = 86_400_000

// defaultWindowRows: windows small enough that an export of a million rows
// has several (the next one's sort overlaps the current one's stream, see
// Stream), large enough that a query's fixed cost stays negligible.
const defaultWindowRows = 500_000

// blockRows caps the rows of a result block. The block is the largest live
// allocation of an export (~400 B a row): 16384 rows keep it near 6 MiB,
// where ClickHouse's default (65536) costs 26 MiB and a heap twice that,
// for no measurable gain in throughput. (The SETTINGS clause of a SELECT
// works on 18.16 and current releases; ch-go-level settings do not reach
// 18.16.)
const blockRows = 16384

// Plan counts matching rows per day and groups days into windows of at most
// WindowRows rows (a single day larger than that is one window). It reads
// only the sort-key columns of the enterprise's granules, at the highest
// ClickHouse priority: a plan is short, and long exports' windows (priority
// 2, see Query.Priority) yield to it, so a new export's first step does not
// queue behind them.
func (s *ClickHouse) Plan(ctx context.Context, q Query) (*Plan, error) {
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return s.plan(ctx, c, q)
}

func (s *ClickHouse) plan(ctx context.Context, c *chconn.Native, q Query) (*Plan, error) {
	var day, cnt proto.ColInt64
	var days []window
	body := "SELECT intDiv(occurred_at_utc, " + strconv.Itoa(dayMs) + ") AS d, toInt64(count()) AS c FROM " + Table +
		" WHERE " + where(q, q.FromMs, q.ToMs+1) + " GROUP BY d ORDER BY d SETTINGS priority = " + strconv.Itoa(planPriority(q)) + s.settings(true)
	err := c.Select(ctx, body, proto.Results{{Name: "d", Data: &day}, {Name: "c", Data: &cnt}}, func(int) error {
		for i := 0; i < day.Rows(); i++ {
			days = append(days, window{from: day.Row(i) * dayMs, to: (day.Row(i) + 1) * dayMs, rows: cnt.Row(i)})
		}
		return nil
	}, nil)
	if err != nil {
		return nil, classify(fmt.Errorf("plan export: %w", err))
	}
	p := &Plan{}
	for _, d := range days {
		p.Total += d.rows
		n := len(p.windows)
		if n > 0 && p.windows[n-1].rows+d.rows <= s.opts.WindowRows {
			p.windows[n-1].to = d.to
			p.windows[n-1].rows += d.rows
			continue
		}
		p.windows = append(p.windows, d)
	}
	// Clamp the outer windows to the requested range.
	if len(p.windows) > 0 {
		p.windows[0].from = max(p.windows[0].from, q.FromMs)
		last := &p.windows[len(p.windows)-1]
		last.to = min(last.to, q.ToMs+1)
	}
	return p, nil
}

// Stream calls fn with consecutive blocks of the rows of q, ordered by
// occurred_at_utc then activity_id. The block is borrowed: valid only until
// fn returns. Cancelling ctx cancels the ClickHouse query. If plan is nil it
// is computed first. fn's error stops the stream and is returned as is.
//
// Windows are read one after the other, fn always called from one window
// at a time and in order, but the next window's query is sent while the
// current one streams, on a second connection: ClickHouse 18.16 reads and
// sorts a whole window before it sends its first block, so that sort (on
// the server's other cores) overlaps with the decoding and encoding of the
// current window instead of following it. At most two queries of an export
// are in flight; the one ahead waits, sorted, in the server until its turn
// (its first block blocks in the socket), so exportd holds two blocks.
func (s *ClickHouse) Stream(ctx context.Context, q Query, plan *Plan, fn func(*activity.Block) error) (Stats, error) {
	var st Stats
	if q.EnterpriseRef == "" {
		return st, errors.New("BUG: source query without enterprise")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := s.dial(ctx)
	if err != nil {
		return st, err
	}
	conns := [2]*chconn.Native{c}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if plan == nil {
		if plan, err = s.plan(ctx, c, q); err != nil {
			return st, err
		}
	}
	blocks := [2]*activity.Block{activity.NewBlock()}
	start := func(i int) *windowRead {
		k := i % 2
		if conns[k] == nil {
			if conns[k], err = s.dial(ctx); err != nil {
				return &windowRead{err: err}
			}
		}
		if blocks[k] == nil {
			blocks[k] = activity.NewBlock()
		}
		return s.startWindow(ctx, conns[k], q, plan.windows[i], blocks[k], fn)
	}
	var ahead *windowRead
	for i := range plan.windows {
		cur := ahead
		if cur == nil {
			cur = start(i)
		}
		ahead = nil
		if i+1 < len(plan.windows) {
			ahead = start(i + 1)
		}
		res := cur.run()
		st.Rows += res.rows
		st.Bytes += res.bytes
		if res.err != nil {
			cancel()
			if ahead != nil {
				ahead.abandon()
			}
			return st, res.err
		}
	}
	return st, nil
}

// windowRead is one window's query, started ahead of its turn.
type windowRead struct {
	turn chan struct{} // closed when the window may call fn
	done chan windowResult
	err  error // the query could not start
}

type windowResult struct {
	rows, bytes int64
	err         error
}

// startWindow sends w's query on c at once; its blocks go to fn only after
// run is called.
func (s *ClickHouse) startWindow(ctx context.Context, c *chconn.Native, q Query, w window, b *activity.Block, fn func(*activity.Block) error) *windowRead {
	wr := &windowRead{turn: make(chan struct{}), done: make(chan windowResult, 1)}
	results := b.ResultsFor(q.Columns)
	go func() { // owned by Stream: it waits for done in run or abandon
		var res windowResult
		var fnErr error
		sorted := func() {}
		if q.Gate != nil {
			sorted = sync.OnceFunc(q.Gate(ctx))
		}
		defer sorted()
		err := c.Select(ctx, selectSQL(q, w.from, w.to)+s.settings(true)+priority(q), results, func(int) error {
			sorted() // its first block: the server has sorted the window
			select {
			case <-wr.turn:
			case <-ctx.Done():
				return ctx.Err()
			}
			res.rows += int64(b.Rows())
			if err := fn(b); err != nil {
				fnErr = err
				return err
			}
			return nil
		}, func(p proto.Progress) { res.bytes += int64(p.Bytes) })
		switch {
		case fnErr != nil:
			res.err = fnErr
		case err != nil && ctx.Err() != nil:
			res.err = ctx.Err()
		case err != nil:
			res.err = classify(fmt.Errorf("read activity window [%d, %d): %w", w.from, w.to, err))
		}
		wr.done <- res
	}()
	return wr
}

// run gives the window its turn and waits for its end.
func (wr *windowRead) run() windowResult {
	if wr.err != nil {
		return windowResult{err: wr.err}
	}
	close(wr.turn)
	return <-wr.done
}

// abandon waits for a window read ahead whose turn never came (its context
// is cancelled).
func (wr *windowRead) abandon() {
	if wr.err == nil {
		<-wr.done
	}
}

func (s *ClickHouse) dial(ctx context.Context) (*chconn.Native, error) {
	c, err := s.cfg.DialNative(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return c, nil
}

// classify marks connection-level failures as ErrUnavailable; server
// exceptions stay as they are (an upstream error).
func classify(err error) error {
	var exc *chconn.Exception
	if errors.As(err, &exc) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

var selectAll = strings.Join(activity.Columns[:], ", ")

// selectList is the SELECT list of q: its columns, or all of them.
func selectList(q Query) string {
	if q.Columns == nil {
		return selectAll
	}
	var sb strings.Builder
	for i, c := range q.Columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(activity.Columns[c])
	}
	return sb.String()
}

func selectSQL(q Query, from, to int64) string {
	return "SELECT " + selectList(q) + " FROM " + Table + " WHERE " + where(q, from, to) +
		" ORDER BY occurred_at_utc, activity_id SETTINGS max_block_size = " + strconv.Itoa(blockRows)
}

// settings renders the query settings of Options (after a SETTINGS clause
// when more is true, else as one).
func (s *ClickHouse) settings(more bool) string {
	if s.opts.MaxExecution <= 0 {
		return ""
	}
	sec := int64((s.opts.MaxExecution + time.Second - 1) / time.Second)
	sep := " SETTINGS "
	if more {
		sep = ", "
	}
	return sep + "max_execution_time = " + strconv.FormatInt(sec, 10)
}

// planPriority is the ClickHouse priority of q's plan: q's own when set
// (a job already known to be long plans at its lane's priority), else the
// highest (a plan is usually one round trip of an interactive create).
func planPriority(q Query) int {
	if q.Priority > 0 {
		return q.Priority
	}
	return 1
}

// priority renders q's ClickHouse priority setting (after a SETTINGS
// clause), or nothing.
func priority(q Query) string {
	if q.Priority <= 0 {
		return ""
	}
	return ", priority = " + strconv.Itoa(q.Priority)
}

// where renders the filter; refs are validated by the caller and quoted
// here anyway (ch-go has no client-side binding for 18.16, which lacks
// server-side parameters).
func where(q Query, from, to int64) string {
	var sb strings.Builder
	sb.WriteString("enterprise_ref = ")
	sb.WriteString(Quote(q.EnterpriseRef))
	sb.WriteString(" AND occurred_at_utc >= ")
	sb.WriteString(strconv.FormatInt(from, 10))
	sb.WriteString(" AND occurred_at_utc < ")
	sb.WriteString(strconv.FormatInt(to, 10))
	if q.ClientRef != "" {
		sb.WriteString(" AND client_ref = ")
		sb.WriteString(Quote(q.ClientRef))
	}
	if q.AccountRef != "" {
		sb.WriteString(" AND account_ref = ")
		sb.WriteString(Quote(q.AccountRef))
	}
	in(&sb, "family", q.Families)
	in(&sb, "status", q.Statuses)
	in(&sb, "currency", q.Currencies)
	return sb.String()
}

// in appends " AND col IN ('a', 'b')" for a non-nil set. An empty set
// matches nothing (callers refuse one before; this keeps it safe anyway).
func in(sb *strings.Builder, col string, set []string) {
	if set == nil {
		return
	}
	if len(set) == 0 {
		sb.WriteString(" AND 0")
		return
	}
	sb.WriteString(" AND ")
	sb.WriteString(col)
	sb.WriteString(" IN (")
	for i, v := range set {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(Quote(v))
	}
	sb.WriteByte(')')
}

// Quote renders s as a ClickHouse string literal.
func Quote(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) + 2)
	sb.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case 0:
			sb.WriteString(`\0`)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('\'')
	return sb.String()
}
