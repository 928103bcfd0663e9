package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exportd/exportd/engine"
)

// importColumns are the columns Import writes: those Create writes, plus
// the ones a caller needs to place a record in history (generated_at) and
// in a final state (status, finished_at, expires_at and the outcome).
// Everything else keeps the table's defaults (epoch 1, heartbeat now()).
var importColumns = []string{"id", "status", "format", "compression", "date_from_utc", "date_to_utc",
	"scope_kind", "scope_ref", "enterprise_ref", "client_ref", "options", "generated_by", "storage_location", "owner",
	"generated_at", "finished_at", "expires_at", "row_count", "byte_size", "checksum_sha256", "failure_reason"}

// Import inserts xs as they are, in one COPY: all or nothing. Unlike
// Create it takes generated_at, the status and the final-state fields from
// the caller (a zero FinishedAt or ExpiresAt is stored as null, an empty
// Status as pending), claims no idempotency key and does not touch xs. It
// is for loading history (benchmarks, migrations from another control
// plane), never for the API's creates: the database's clock does not stamp
// these records. An id already present fails the whole import.
func (s *Store) Import(ctx context.Context, xs []*engine.Export) error {
	if len(xs) == 0 {
		return nil
	}
	i := 0
	var rowErr error
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(xs) {
			return nil, nil
		}
		x := xs[i]
		i++
		row, err := importRow(x)
		if err != nil {
			rowErr = err
		}
		return row, err
	})
	n, err := s.pool.CopyFrom(ctx, pgx.Identifier{"operations_activity_exports"}, importColumns, src)
	if rowErr != nil {
		return rowErr
	}
	if err != nil {
		return fail(err, "import %d export records", len(xs))
	}
	if n != int64(len(xs)) {
		return fmt.Errorf("import export records: copied %d of %d", n, len(xs))
	}
	return nil
}

func importRow(x *engine.Export) ([]any, error) {
	opts, err := json.Marshal(x.Options)
	if err != nil {
		return nil, fmt.Errorf("encode options of export %s: %w", x.ID, err)
	}
	if x.GeneratedAt.IsZero() {
		return nil, fmt.Errorf("import export %s: GeneratedAt is required", x.ID)
	}
	status := x.Status
	if status == "" {
		status = engine.StatusPending
	}
	return []any{x.ID, status, x.Format, x.Compression, x.DateFrom, x.DateTo,
		x.ScopeKind, x.ScopeRef, x.EnterpriseRef, x.ClientRef, opts, x.GeneratedBy, x.StorageLocation, x.Owner,
		x.GeneratedAt.UTC().Truncate(time.Millisecond), nullTime(x.FinishedAt), nullTime(x.ExpiresAt),
		x.RowCount, x.ByteSize, x.Checksum, x.FailureReason}, nil
}

// nullTime maps the zero time (engine.Export's "null") to SQL null, and
// otherwise rounds to the milliseconds the API shows.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Millisecond)
}
