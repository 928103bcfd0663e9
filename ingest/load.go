package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/chconn"
)

// MaxLineBytes bounds one NDJSON line (without its line ending). The loader's
// memory does not depend on the input size, only on this and the batch size.
const MaxLineBytes = 1 << 20

// StagingPrefix starts the name of every staging table Load creates
// (operations_activity_staging_<16 hex digits>). Load always drops its table;
// one can only be left behind if the process dies mid-load, and is then safe
// to drop by hand.
const StagingPrefix = ActivityTable + "_staging_"

// ErrLineTooLong reports a line longer than MaxLineBytes.
var ErrLineTooLong = errors.New("line longer than 1 MiB")

// ErrPartialCommit marks a Load error after which some rows were loaded:
// the server failed between the statements that attach the staged months
// (see Load). Every other Load error means nothing was loaded.
var ErrPartialCommit = errors.New("load partially committed")

// LineError reports a rejected input line: a *FieldError from ParseLine, or
// ErrLineTooLong. Its message reads "line 12: field amount: ...".
type LineError struct {
	Line int64 // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// LoadOptions configure Load. The zero value is usable.
type LoadOptions struct {
	// BatchRows is the most rows sent to ClickHouse in one block (default 65536).
	BatchRows int
	// BatchBytes closes a block early once its lines add up to this many
	// input bytes (default 32 MiB), bounding memory when rows are large.
	BatchBytes int
	// Progress, if not nil, is called with the cumulative number of rows
	// validated and staged, after each block. It is called from Load's sending
	// goroutine, never concurrently with itself, and must return quickly.
	Progress func(rows int64)
}

func (o *LoadOptions) setDefaults() {
	if o.BatchRows == 0 {
		o.BatchRows = 65536
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 32 << 20
	}
}

// Validate reports options that cannot work.
func (o LoadOptions) Validate() error {
	if o.BatchRows < 0 || o.BatchBytes < 0 {
		return errors.New("load options: BatchRows and BatchBytes must not be negative")
	}
	return nil
}

// LoadStats describe a finished load.
type LoadStats struct {
	Rows       int64 // rows now in operations_activity
	Lines      int64 // input lines read, including skipped trailing blank lines
	Bytes      int64 // input bytes read
	Partitions int   // monthly partitions the rows went into
	Elapsed    time.Duration
	// StagingLeft names a staging table that could not be dropped after a
	// successful load (the rows are loaded; the table is safe to drop).
	// Empty normally.
	StagingLeft string
}

// Load reads NDJSON activity (one object per line, see ParseLine) from r and
// adds it to operations_activity, all or nothing: the first bad line stops
// the load with a *LineError ("line N: field F: reason") and no row of r
// reaches the table. The schema must exist (Migrate).
//
// Rows are validated and streamed into a private staging table created with
// the target's structure; only when the whole input has been read and staged
// are its monthly partitions attached to operations_activity (ALTER TABLE ...
// ATTACH PARTITION ... FROM, a hard-link operation, so committing does not
// copy the data again). The staging table is dropped in every case, also on
// error or cancellation. ClickHouse has no multi-statement transactions: if
// the server fails during the attach step itself, some months may be
// attached and not others; the error then wraps ErrPartialCommit.
//
// Memory is bounded by MaxLineBytes and the batch size, whatever the input
// size. Blank lines are rejected, except at the very end of the input (a
// trailing empty line is common and harmless); a UTF-8 byte order mark at the
// start is skipped. Loading the same file twice adds its rows twice.
//
// ctx cancels the load; a Read blocked on r is not interrupted, so the caller
// should make r return (e.g. the writer of a pipe exits) when it cancels.
func Load(ctx context.Context, cfg chconn.Config, r io.Reader, opts LoadOptions) (stats LoadStats, err error) {
	start := time.Now()
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return stats, err
	}
	client, err := cfg.Dial(ctx)
	if err != nil {
		return stats, err
	}
	defer func() { client.Close() }()
	// Statements other than the INSERT stream go over chconn.Native: ch-go
	// misreads the progress packets ClickHouse 18.16 sends during longer
	// statements (see chconn.Native); an INSERT with client data gets none.
	sc, err := cfg.DialNative(ctx)
	if err != nil {
		return stats, err
	}
	defer func() { sc.Close() }()
	if err := checkTarget(ctx, sc); err != nil {
		return stats, err
	}

	staging := StagingPrefix + randomHex(8)
	if err := sc.Exec(ctx, "CREATE TABLE "+staging+" AS "+ActivityTable); err != nil {
		return stats, fmt.Errorf("create staging table %s: %w", staging, err)
	}
	defer func() {
		dropErr := dropStaging(ctx, cfg, staging)
		switch {
		case dropErr == nil:
		case err == nil:
			stats.StagingLeft = staging
		default:
			err = errors.Join(err, dropErr)
		}
	}()

	l := &lineLoader{br: bufio.NewReaderSize(r, MaxLineBytes+2), opts: opts}
	staged, err := insertStream(ctx, client, staging, l.produce, opts.Progress)
	stats.Lines, stats.Bytes = l.lines, l.bytes
	if err != nil {
		return stats, err
	}
	if staged != l.rows { // cannot happen: every parsed row is flushed and sent
		return stats, fmt.Errorf("internal error: parsed %d rows but sent %d; nothing was loaded", l.rows, staged)
	}
	if err := ctx.Err(); err != nil {
		return stats, err // cancelled before commit: nothing attached
	}
	// From here on the load commits: cancelling now could leave it half
	// attached, so the commit runs to the end under its own deadline.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	parts, err := commitStaging(cctx, sc, staging, staged)
	stats.Partitions = parts
	if err != nil {
		return stats, err
	}
	stats.Rows = staged
	stats.Elapsed = time.Since(start)
	return stats, nil
}

// checkTarget verifies that operations_activity exists and is a plain
// MergeTree, the engine schema.go creates: CREATE TABLE ... AS copies the
// engine, and a replicated one would register the staging table under the
// target's coordination path.
func checkTarget(ctx context.Context, client *chconn.Native) error {
	var engine proto.ColStr
	err := client.Select(ctx, "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = '"+ActivityTable+"'",
		proto.Results{{Name: "engine", Data: &engine}}, func(int) error { return nil }, nil)
	if err != nil {
		return fmt.Errorf("look up table %s: %w", ActivityTable, err)
	}
	if engine.Rows() == 0 {
		return fmt.Errorf("table %s does not exist (run exportd migrate)", ActivityTable)
	}
	if e := engine.Row(0); e != "MergeTree" {
		return fmt.Errorf("table %s has engine %s; loading needs the MergeTree that exportd migrate creates", ActivityTable, e)
	}
	return nil
}

// commitStaging checks the staged row count and attaches every partition of
// staging to operations_activity, returning the number of partitions.
func commitStaging(ctx context.Context, client *chconn.Native, staging string, want int64) (int, error) {
	var count proto.ColUInt64
	if err := client.Select(ctx, "SELECT count() FROM "+staging,
		proto.Results{{Name: "count()", Data: &count}}, func(int) error { return nil }, nil); err != nil {
		return 0, fmt.Errorf("count staged rows: %w", err)
	}
	if count.Rows() != 1 || int64(count.Row(0)) != want {
		got := "no"
		if count.Rows() == 1 {
			got = fmt.Sprint(count.Row(0))
		}
		return 0, fmt.Errorf("staging table %s holds %s rows, want %d; nothing was loaded", staging, got, want)
	}
	// ATTACH PARTITION does not fire materialized views, so the scope
	// parents of the staged rows (see ScopesTable) are recorded explicitly,
	// before the rows become visible: a client or account export must be able
	// to resolve its enterprise as soon as its rows exist.
	if err := client.Exec(ctx, "INSERT INTO "+ScopesTable+" SELECT enterprise_ref, client_ref, account_ref FROM "+staging+
		" GROUP BY enterprise_ref, client_ref, account_ref"); err != nil {
		return 0, fmt.Errorf("record scope parents (nothing was loaded): %w", err)
	}
	var col proto.ColStr
	var ids []string
	if err := client.Select(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE database = currentDatabase() AND table = '"+
		staging+"' AND active ORDER BY partition_id", proto.Results{{Name: "partition_id", Data: &col}}, func(int) error {
		for i := 0; i < col.Rows(); i++ {
			ids = append(ids, col.Row(i))
		}
		return nil
	}, nil); err != nil {
		return 0, fmt.Errorf("list staged partitions: %w", err)
	}
	// One ALTER per chunk of partitions keeps the statement small; ClickHouse
	// applies the clauses of one ALTER in order.
	const chunk = 100
	n := len(ids)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		var q strings.Builder
		q.WriteString("ALTER TABLE " + ActivityTable)
		for i := lo; i < hi; i++ {
			if i > lo {
				q.WriteByte(',')
			}
			q.WriteString(" ATTACH PARTITION ID " + quoteLiteral(ids[i]) + " FROM " + staging)
		}
		if err := client.Exec(ctx, q.String()); err != nil {
			if lo == 0 {
				return 0, fmt.Errorf("attach staged partitions (nothing was loaded): %w", err)
			}
			return lo, fmt.Errorf("attach staged partitions: %w: only %d of %d months were attached (%s..%s): %w",
				ErrPartialCommit, lo, n, ids[0], ids[lo-1], err)
		}
	}
	return n, nil
}

// dropStaging drops the staging table under a fresh deadline, so it also
// runs after ctx was cancelled, over a new connection (after a failure the
// others may be closed or mid-protocol).
func dropStaging(ctx context.Context, cfg chconn.Config, staging string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	c, err := cfg.DialNative(dctx)
	if err != nil {
		return fmt.Errorf("drop staging table %s: %w", staging, err)
	}
	defer c.Close()
	if err := c.Exec(dctx, "DROP TABLE IF EXISTS "+staging); err != nil {
		return fmt.Errorf("drop staging table %s: %w", staging, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b)
}

// quoteLiteral quotes s as a ClickHouse string literal.
func quoteLiteral(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// lineLoader is the producer of Load's pipeline: it reads lines, parses them
// and appends them to the pipe's block. Its counters are read by Load after
// the producer goroutine has been waited for.
type lineLoader struct {
	br    *bufio.Reader
	opts  LoadOptions
	lines int64
	bytes int64
	rows  int64
}

var utf8BOM = []byte("\xef\xbb\xbf")

func (l *lineLoader) produce(p *blockPipe) error {
	var parser lineParser
	var blank int64 // first line of a run of blank lines not yet followed by data
	batchBytes := 0
	for {
		line, err := l.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return &LineError{Line: l.lines + 1, Err: ErrLineTooLong}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read input after line %d: %w", l.lines, err)
		}
		eof := err == io.EOF
		if len(line) == 0 && eof {
			return nil
		}
		l.lines++
		l.bytes += int64(len(line))
		if l.lines == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > MaxLineBytes {
			return &LineError{Line: l.lines, Err: ErrLineTooLong}
		}
		if skipWS(line, 0) == len(line) {
			if blank == 0 {
				blank = l.lines
			}
		} else {
			if blank != 0 {
				return &LineError{Line: blank, Err: &FieldError{Reason: "empty line (want a JSON object)"}}
			}
			if err := parser.parse(line); err != nil {
				return &LineError{Line: l.lines, Err: err}
			}
			parser.appendTo(p.cur)
			l.rows++
			batchBytes += len(line)
			if p.cur.Rows() >= l.opts.BatchRows || batchBytes >= l.opts.BatchBytes {
				if err := p.flush(); err != nil {
					return err
				}
				batchBytes = 0
			}
		}
		if eof {
			return nil
		}
	}
}
