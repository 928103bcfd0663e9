// Package pgstore is exportd's control plane on PostgreSQL: export records
// (one row per export, the current state), idempotency keys and the leases
// of running exports. Every state change is a compare-and-set in one
// transaction (UPDATE ... WHERE status IN (...) [AND owner AND epoch]
// RETURNING), and every time it records or judges comes from the
// database's clock (now()), never a replica's: replica clock skew changes
// nothing. SQL lives in this package only.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exportd/exportd/engine"
)

// Store is the PostgreSQL record store. Safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store over a pgx pool (migrated with Migrate).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// DefaultDSN is EXPORTD_POSTGRES_DSN's default (SPEC §4).
const DefaultDSN = "postgres://127.0.0.1:5432/exportd?sslmode=disable"

// errBadDSN never quotes the DSN: pgx's parse errors may, password included.
var errBadDSN = errors.New("invalid PostgreSQL DSN (want postgres://user:password@host:port/database?sslmode=...)")

// CheckDSN reports whether dsn parses, without connecting.
func CheckDSN(dsn string) error {
	if _, err := pgxpool.ParseConfig(dsn); err != nil {
		return errBadDSN
	}
	return nil
}

// Redact returns dsn's host, port and database, for logs.
func Redact(dsn string) string {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return "(invalid DSN)"
	}
	c := cfg.ConnConfig
	return fmt.Sprintf("postgres://%s:%d/%s", c.Host, c.Port, c.Database)
}

// Open parses dsn, connects a pool and checks it answers.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errBadDSN
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fail(err, "open PostgreSQL pool")
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fail(err, "reach PostgreSQL at %s", cfg.ConnConfig.Host)
	}
	return pool, nil
}

var _ engine.RecordStore = (*Store)(nil)

// Errors of the store are the engine's (engine.ErrLost,
// engine.ErrKeyPayloadMismatch, engine.ErrNotFound,
// engine.ErrNotCancellable); a failure to reach PostgreSQL also wraps
// engine.ErrControlPlaneUnavailable.
var (
	ErrLost               = engine.ErrLost
	ErrKeyPayloadMismatch = engine.ErrKeyPayloadMismatch
)

// fail annotates err, marking an outage as engine.ErrControlPlaneUnavailable.
func fail(err error, format string, args ...any) error {
	e := fmt.Errorf(format+": %w", append(args, err)...)
	if Unreachable(err) {
		return fmt.Errorf("%w: %w", engine.ErrControlPlaneUnavailable, e)
	}
	return e
}

// KeyWindow is how long an idempotency key binds (SPEC §1).
const KeyWindow = 24 * time.Hour

const columns = `id::text, status, format, compression, date_from_utc, date_to_utc, scope_kind, scope_ref,
	enterprise_ref, client_ref, options, generated_by, generated_at, finished_at, expires_at, row_count,
	byte_size, checksum_sha256, storage_location, failure_reason, owner, epoch, heartbeat_at`

// viewColumns are columns with the time-based transition applied by the
// database clock: a ready export past its expiry reads expired.
var viewColumns = strings.Replace(columns, "status,",
	"CASE WHEN status = 'ready' AND expires_at <= now() THEN 'expired' ELSE status END,", 1)

func scan(row pgx.Row) (*engine.Export, error) {
	var (
		x        engine.Export
		opts     []byte
		fin, exp *time.Time
		epoch    int64
		gen, hb  time.Time
	)
	err := row.Scan(&x.ID, &x.Status, &x.Format, &x.Compression, &x.DateFrom, &x.DateTo, &x.ScopeKind, &x.ScopeRef,
		&x.EnterpriseRef, &x.ClientRef, &opts, &x.GeneratedBy, &gen, &fin, &exp, &x.RowCount,
		&x.ByteSize, &x.Checksum, &x.StorageLocation, &x.FailureReason, &x.Owner, &epoch, &hb)
	if err != nil {
		return nil, err
	}
	if len(opts) > 0 {
		if err := json.Unmarshal(opts, &x.Options); err != nil {
			return nil, fail(err, "decode options of export %s", x.ID)
		}
	}
	x.GeneratedAt, x.Heartbeat = gen.UTC(), hb.UTC()
	if fin != nil {
		x.FinishedAt = fin.UTC()
	}
	if exp != nil {
		x.ExpiresAt = exp.UTC()
	}
	x.Version = uint64(epoch)
	return &x, nil
}

func collect(rows pgx.Rows, err error) ([]*engine.Export, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*engine.Export
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// Key names an idempotency claim: the caller, its key, and the hash of the
// normalised request.
type Key = engine.IdempotencyKey

// Create inserts x as a new pending export owned by x.Owner. With
// maxPending > 0, an enterprise that already has maxPending pending exports
// gets engine.ErrTooManyPending and nothing is recorded (the count is exact
// across replicas: it runs under the enterprise's advisory lock). With a key, the
// key is claimed in the same transaction: if (caller, key) is already bound
// within KeyWindow, nothing is inserted and Create returns the bound
// export's id with created false (ErrKeyPayloadMismatch when the request
// differs). A binding older than KeyWindow is reclaimed. The database
// assigns generated_at and the heartbeat.
func (s *Store) Create(ctx context.Context, x *engine.Export, key *Key, maxPending int) (created bool, boundID string, err error) {
	opts, err := json.Marshal(x.Options)
	if err != nil {
		return false, "", fail(err, "encode options")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, "", fail(err, "begin create")
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	if key != nil {
		// The upsert takes the row lock: a concurrent claim of the same key
		// waits for this transaction and then sees it committed.
		var got string
		err := tx.QueryRow(ctx, `INSERT INTO operations_activity_export_keys (caller, key, request_hash, export_id)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (caller, key) DO UPDATE
				SET request_hash = EXCLUDED.request_hash, export_id = EXCLUDED.export_id, created_at = now()
				WHERE operations_activity_export_keys.created_at < now() - $5::interval
			RETURNING export_id::text`, key.Caller, key.Key, key.RequestHash, x.ID, KeyWindow.String()).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			var hash, id string
			if err := tx.QueryRow(ctx, `SELECT request_hash, export_id::text FROM operations_activity_export_keys
				WHERE caller = $1 AND key = $2`, key.Caller, key.Key).Scan(&hash, &id); err != nil {
				return false, "", fail(err, "read bound key")
			}
			if hash != key.RequestHash {
				return false, id, ErrKeyPayloadMismatch
			}
			return false, id, nil
		}
		if err != nil {
			return false, "", fail(err, "claim key")
		}
	}
	if maxPending > 0 && x.EnterpriseRef != "" {
		n, err := lockEnterprise(ctx, tx, x.EnterpriseRef, "pending")
		if err != nil {
			return false, "", fail(err, "count pending exports of %s", x.EnterpriseRef)
		}
		if n >= maxPending {
			return false, "", engine.ErrTooManyPending // the key claim rolls back with it
		}
	}
	row := tx.QueryRow(ctx, `INSERT INTO operations_activity_exports (id, status, format, compression, date_from_utc,
		date_to_utc, scope_kind, scope_ref, enterprise_ref, client_ref, options, generated_by, storage_location, owner)
		VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		RETURNING generated_at, heartbeat_at, epoch`,
		x.ID, x.Format, x.Compression, x.DateFrom, x.DateTo, x.ScopeKind, x.ScopeRef, x.EnterpriseRef, x.ClientRef,
		opts, x.GeneratedBy, x.StorageLocation, x.Owner)
	var gen, hb time.Time
	var epoch int64
	if err := row.Scan(&gen, &hb, &epoch); err != nil {
		return false, "", fail(err, "insert export %s", x.ID)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, "", fail(err, "commit create of %s", x.ID)
	}
	x.Status, x.GeneratedAt, x.Heartbeat, x.Version = engine.StatusPending, gen.UTC(), hb.UTC(), uint64(epoch)
	return true, x.ID, nil
}

// BoundKey returns the export id bound to (caller, key) within KeyWindow and
// whether the request hash matches; "" when the key is free.
func (s *Store) BoundKey(ctx context.Context, caller, key, hash string) (id string, err error) {
	var h string
	err = s.pool.QueryRow(ctx, `SELECT request_hash, export_id::text FROM operations_activity_export_keys
		WHERE caller = $1 AND key = $2 AND created_at >= now() - $3::interval`, caller, key, KeyWindow.String()).Scan(&h, &id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fail(err, "read key")
	case h != hash:
		return id, ErrKeyPayloadMismatch
	}
	return id, nil
}

// Get returns the current state of an export (ready past expiry reads
// expired), or engine.ErrNotFound. O(1): a primary-key lookup.
func (s *Store) Get(ctx context.Context, id string) (*engine.Export, error) {
	x, err := scan(s.pool.QueryRow(ctx, "SELECT "+viewColumns+" FROM operations_activity_exports WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, fail(err, "read export %s", id)
	}
	return x, nil
}

// List returns up to limit exports visible under v, newest first, strictly
// after cursor. Each visibility branch is a keyset scan of its own index
// (enterprise, scope or client, then generated_at, id); the union of the
// branches' first pages is ordered and cut, so a page costs O(limit × branches)
// whatever the history.
func (s *Store) List(ctx context.Context, v engine.Visibility, after *engine.Cursor, limit int) ([]*engine.Export, error) {
	var branches []string
	args := []any{limit}
	keyset := ""
	if after != nil {
		args = append(args, time.UnixMilli(after.GeneratedAtMs).UTC(), after.ID)
		keyset = " AND (generated_at, id) < ($2, $3::uuid)"
	}
	for _, c := range []struct {
		col  string
		refs []string
	}{{"enterprise_ref", v.Enterprises}, {"scope_ref", v.Refs}, {"client_ref", v.Clients}} {
		for _, ref := range c.refs {
			args = append(args, ref)
			branches = append(branches, fmt.Sprintf("(SELECT generated_at, id FROM operations_activity_exports WHERE %s = $%d%s ORDER BY generated_at DESC, id DESC LIMIT $1)",
				c.col, len(args), keyset))
		}
	}
	if len(branches) == 0 {
		return nil, nil
	}
	// The branches yield sort keys only (from their indexes); the page is
	// cut from their union first, and only its rows are fetched: a caller
	// with many scopes costs O(limit × branches) index entries, not rows.
	q := "SELECT " + viewColumns + " FROM operations_activity_exports WHERE id IN (SELECT id FROM (" + strings.Join(branches, " UNION ") +
		") AS keys ORDER BY generated_at DESC, id DESC LIMIT $1) ORDER BY generated_at DESC, id DESC LIMIT $1"
	out, err := collect(s.pool.Query(ctx, q, args...))
	if err != nil {
		return nil, fail(err, "list exports")
	}
	return out, nil
}

// lockEnterprise takes the enterprise's transaction-scoped advisory lock
// (creates and starts of one enterprise serialise on it, so the counts
// below are exact across replicas) and counts its exports in status.
func lockEnterprise(ctx context.Context, tx pgx.Tx, enterprise, status string) (int, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 4242))`, enterprise); err != nil {
		return 0, err
	}
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM operations_activity_exports
		WHERE enterprise_ref = $1 AND status = $2 AND status IN ('pending', 'running')`, enterprise, status).Scan(&n)
	return n, err
}

// Start moves a pending export of owner to running (compare-and-set on
// owner and epoch). ErrLost when it ended meanwhile (e.g. cancelled). With
// maxRunning > 0, an enterprise that already runs maxRunning exports (on
// any replica) gets engine.ErrBusy and the export stays pending.
func (s *Store) Start(ctx context.Context, id, owner string, epoch uint64, enterprise string, maxRunning int) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err, "begin start of %s", id)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	if maxRunning > 0 && enterprise != "" {
		n, err := lockEnterprise(ctx, tx, enterprise, "running")
		if err != nil {
			return fail(err, "count running exports of %s", enterprise)
		}
		if n >= maxRunning {
			return engine.ErrBusy
		}
	}
	tag, err := tx.Exec(ctx, `UPDATE operations_activity_exports SET status = 'running', heartbeat_at = now()
		WHERE id = $1 AND status = 'pending' AND owner = $2 AND epoch = $3`, id, owner, int64(epoch))
	if err != nil {
		return fail(err, "start export %s", id)
	}
	if tag.RowsAffected() == 0 {
		return ErrLost
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err, "commit start of %s", id)
	}
	return nil
}

// Heartbeat renews the lease of a live export of owner and records its
// progress. When the export ended elsewhere (or the lease was taken over)
// it returns the current state with ErrLost.
func (s *Store) Heartbeat(ctx context.Context, id, owner string, epoch uint64, rows, bytes int64) (*engine.Export, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE operations_activity_exports SET heartbeat_at = now(), row_count = $4, byte_size = $5
		WHERE id = $1 AND status IN ('pending', 'running') AND owner = $2 AND epoch = $3`, id, owner, int64(epoch), rows, bytes)
	if err != nil {
		return nil, fail(err, "heartbeat export %s", id)
	}
	if tag.RowsAffected() > 0 {
		return nil, nil
	}
	x, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return x, ErrLost
}

// Final is an owner's final state for its export.
type Final = engine.Final

// Finish records the owner's final state, fenced by owner and epoch: the
// first final state committed wins. The loser gets the winning state and
// ErrLost (an owner whose "ready" lost must remove its artefact).
func (s *Store) Finish(ctx context.Context, id, owner string, epoch uint64, f Final) (*engine.Export, error) {
	var expires any
	if f.Status == engine.StatusReady {
		expires = f.Retention.String()
	}
	x, err := scan(s.pool.QueryRow(ctx, `UPDATE operations_activity_exports SET status = $4, failure_reason = $5,
		row_count = $6, byte_size = $7, checksum_sha256 = $8, finished_at = date_trunc('milliseconds', now()),
		expires_at = date_trunc('milliseconds', now()) + $9::interval, heartbeat_at = now()
		WHERE id = $1 AND status IN ('pending', 'running') AND owner = $2 AND epoch = $3
		RETURNING `+columns, id, owner, int64(epoch), f.Status, f.FailureReason, f.RowCount, f.ByteSize, f.Checksum, expires))
	if errors.Is(err, pgx.ErrNoRows) {
		won, gerr := s.Get(ctx, id)
		if gerr != nil {
			return nil, gerr
		}
		return won, ErrLost
	}
	if err != nil {
		return nil, fail(err, "finish export %s", id)
	}
	return x, nil
}

// Cancel ends a pending or running export as cancelled, whoever owns it,
// and bumps the epoch so that its owner can no longer publish. A final
// export yields engine.ErrNotCancellable with its state.
func (s *Store) Cancel(ctx context.Context, id string) (*engine.Export, error) {
	x, err := scan(s.pool.QueryRow(ctx, `UPDATE operations_activity_exports SET status = 'cancelled', failure_reason = '',
		checksum_sha256 = '', byte_size = 0, finished_at = date_trunc('milliseconds', now()), epoch = epoch + 1
		WHERE id = $1 AND status IN ('pending', 'running') RETURNING `+columns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := s.Get(ctx, id)
		if gerr != nil {
			return nil, gerr
		}
		return cur, engine.ErrNotCancellable
	}
	if err != nil {
		return nil, fail(err, "cancel export %s", id)
	}
	return x, nil
}

// ReapLost ends as failed/shutdown up to limit live exports whose lease
// (heartbeat) is older than stale by the database clock, bumping their
// epoch, and returns them (their writers' leftovers are the caller's to
// remove). Replicas reaping at once skip each other's rows.
func (s *Store) ReapLost(ctx context.Context, stale time.Duration, limit int) ([]*engine.Export, error) {
	out, err := collect(s.pool.Query(ctx, `UPDATE operations_activity_exports SET status = 'failed', failure_reason = 'shutdown',
		checksum_sha256 = '', byte_size = 0, finished_at = date_trunc('milliseconds', now()), epoch = epoch + 1
		WHERE id IN (SELECT id FROM operations_activity_exports
			WHERE status IN ('pending', 'running') AND heartbeat_at < now() - $1::interval
			LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING `+columns, stale.String(), limit))
	if err != nil {
		return nil, fail(err, "reap lost exports")
	}
	return out, nil
}

// FailOwned ends as failed/shutdown the live exports of owner (a replica
// restarting under a stable owner id).
func (s *Store) FailOwned(ctx context.Context, owner string) ([]*engine.Export, error) {
	out, err := collect(s.pool.Query(ctx, `UPDATE operations_activity_exports SET status = 'failed', failure_reason = 'shutdown',
		checksum_sha256 = '', byte_size = 0, finished_at = date_trunc('milliseconds', now()), epoch = epoch + 1
		WHERE status IN ('pending', 'running') AND owner = $1 RETURNING `+columns, owner))
	if err != nil {
		return nil, fail(err, "fail exports of %s", owner)
	}
	return out, nil
}

// ExpireDue marks expired up to limit ready exports past their expiry and
// returns them; their artefacts are the caller's to delete (and the
// reconciler's, should the caller die first).
func (s *Store) ExpireDue(ctx context.Context, limit int) ([]*engine.Export, error) {
	out, err := collect(s.pool.Query(ctx, `UPDATE operations_activity_exports SET status = 'expired'
		WHERE id IN (SELECT id FROM operations_activity_exports
			WHERE status = 'ready' AND expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING `+columns, limit))
	if err != nil {
		return nil, fail(err, "expire exports")
	}
	return out, nil
}

// DeleteOld removes up to limit ended records finished before the record
// retention, and idempotency keys past their window. It returns the number of
// records removed (call again while it equals limit).
func (s *Store) DeleteOld(ctx context.Context, retention time.Duration, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM operations_activity_exports WHERE id IN (
		SELECT id FROM operations_activity_exports WHERE status IN ('failed', 'cancelled', 'expired')
			AND finished_at < now() - $1::interval LIMIT $2 FOR UPDATE SKIP LOCKED)`, retention.String(), limit)
	if err != nil {
		return 0, fail(err, "delete old records")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM operations_activity_export_keys WHERE ctid IN (
		SELECT ctid FROM operations_activity_export_keys WHERE created_at < now() - $1::interval LIMIT $2)`,
		KeyWindow.String(), limit); err != nil {
		return 0, fail(err, "delete old keys")
	}
	return int(tag.RowsAffected()), nil
}

// Live returns which of ids are pending, running or ready exports (the
// reconciler keeps their artefacts and removes every other object).
func (s *Store) Live(ctx context.Context, ids []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM operations_activity_exports WHERE id = ANY($1::uuid[]) AND status IN ('pending', 'running', 'ready')`, ids)
	if err != nil {
		return nil, fail(err, "read live exports")
	}
	defer rows.Close()
	out := make(map[string]bool, len(ids))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Unreachable reports whether err means PostgreSQL could not be reached
// (connect failure, lost connection, timeout) as opposed to answering with
// an error: the caller answers 503, never 500 (SPEC §6).
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 (connection exception), 57P (operator intervention:
		// shutdown, cannot connect now), 53 (insufficient resources: too
		// many connections, disk full) and 25006 (read-only: a standby
		// during failover) are outages; other answers are not.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") ||
			strings.HasPrefix(pgErr.Code, "53") || pgErr.Code == "25006"
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "failed to connect")
}
