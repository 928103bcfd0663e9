package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Records persists export records in ClickHouse (table
// operations_activity_exports, an append-only log of versions) and
// idempotency keys. Safe for concurrent use.
type Records struct {
	conn driver.Conn
}

// NewRecords returns a record store over a clickhouse-go pool.
func NewRecords(conn driver.Conn) *Records { return &Records{conn: conn} }

const recordColumns = `id, version, status, format, compression, date_from_utc, date_to_utc,
	scope_kind, scope_ref, enterprise_ref, client_ref, generated_by, generated_at_ms, finished_at_ms,
	expires_at_ms, row_count, byte_size, checksum_sha256, storage_location, failure_reason, owner, heartbeat_ms`

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Put appends e as a new version. The caller owns e.Version ordering:
// versions of one export must increase. A final version is never
// superseded by a pending or running one (see newestFirst).
func (r *Records) Put(ctx context.Context, e *Export) error {
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO operations_activity_exports ("+recordColumns+")")
	if err != nil {
		return fmt.Errorf("prepare record insert: %w", err)
	}
	err = batch.Append(e.ID, e.Version, e.Status, e.Format, e.Compression, e.DateFrom, e.DateTo,
		e.ScopeKind, e.ScopeRef, e.EnterpriseRef, e.ClientRef, e.GeneratedBy, ms(e.GeneratedAt), ms(e.FinishedAt),
		ms(e.ExpiresAt), uint64(e.RowCount), uint64(e.ByteSize), e.Checksum, e.StorageLocation, e.FailureReason,
		e.Owner, ms(e.Heartbeat))
	if err != nil {
		batch.Abort()
		return fmt.Errorf("append record %s: %w", e.ID, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert record %s: %w", e.ID, err)
	}
	return nil
}

func (r *Records) query(ctx context.Context, q string, args ...any) ([]*Export, error) {
	rows, err := r.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query records: %w", err)
	}
	defer rows.Close()
	var out []*Export
	for rows.Next() {
		var (
			e                           Export
			gen, fin, exp, hb           int64
			rowCount, byteSize, version uint64
		)
		if err := rows.Scan(&e.ID, &version, &e.Status, &e.Format, &e.Compression, &e.DateFrom, &e.DateTo,
			&e.ScopeKind, &e.ScopeRef, &e.EnterpriseRef, &e.ClientRef, &e.GeneratedBy, &gen, &fin, &exp,
			&rowCount, &byteSize, &e.Checksum, &e.StorageLocation, &e.FailureReason, &e.Owner, &hb); err != nil {
			return nil, fmt.Errorf("scan record: %w", err)
		}
		e.Version, e.RowCount, e.ByteSize = version, int64(rowCount), int64(byteSize)
		e.GeneratedAt, e.FinishedAt, e.ExpiresAt, e.Heartbeat = fromMs(gen), fromMs(fin), fromMs(exp), fromMs(hb)
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	return out, nil
}

// newestFirst orders the versions of one export so that the current one
// comes first: expired (which only follows ready) first, then the EARLIEST
// final version (ready, failed, cancelled), then the latest pending or
// running one. Replicas append versions without coordination: the owner's
// heartbeat can land just after another replica recorded a cancellation or
// a lost-owner failure, and the owner's own "ready" can land just after
// either (its last check and its commit are not atomic). The first final
// state recorded is the truth; an owner whose later "ready" lost removes its
// artefact (Engine.finish).
const newestFirst = `multiIf(status = 'expired', 0, status IN ('pending', 'running'), 2, 1), ` +
	`if(status IN ('pending', 'running'), -toInt64(version), toInt64(version))`

// Get returns the current version of an export (see newestFirst), or ErrNotFound.
func (r *Records) Get(ctx context.Context, id string) (*Export, error) {
	out, err := r.query(ctx, "SELECT "+recordColumns+" FROM operations_activity_exports WHERE id = ? ORDER BY "+newestFirst+" LIMIT 1", id)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out[0], nil
}

// latest is a subquery yielding the current version of every export.
const latest = `SELECT ` + recordColumns + ` FROM operations_activity_exports ORDER BY id, ` + newestFirst + ` LIMIT 1 BY id`

// Visibility is an SQL-free description of what a caller may see: exports
// whose scope_ref is in Refs, whose enterprise_ref is in Enterprises, or
// whose client_ref is in Clients.
type Visibility struct {
	Refs, Enterprises, Clients []string
}

// Cursor positions a page: exports strictly older than (GeneratedAtMs, ID).
type Cursor struct {
	GeneratedAtMs int64
	ID            string
}

// List returns up to limit visible exports, newest first, after cursor.
// Each filter is bound as a clickhouse.GroupSet, rendered "IN ('a', 'b')":
// a []string would become an array literal, which 18.16 rejects in IN.
func (r *Records) List(ctx context.Context, v Visibility, after *Cursor, limit int) ([]*Export, error) {
	var conds []string
	var args []any
	for _, c := range []struct {
		col  string
		refs []string
	}{{"scope_ref", v.Refs}, {"enterprise_ref", v.Enterprises}, {"client_ref", v.Clients}} {
		if len(c.refs) == 0 {
			continue
		}
		set := clickhouse.GroupSet{Value: make([]any, len(c.refs))}
		for i, ref := range c.refs {
			set.Value[i] = ref
		}
		conds = append(conds, c.col+" IN ?")
		args = append(args, set)
	}
	if len(conds) == 0 {
		return nil, nil
	}
	where := "(" + strings.Join(conds, " OR ") + ")"
	if after != nil {
		where += " AND (generated_at_ms < ? OR (generated_at_ms = ? AND id < ?))"
		args = append(args, after.GeneratedAtMs, after.GeneratedAtMs, after.ID)
	}
	// The filter goes inside, before LIMIT 1 BY: scope, enterprise, client
	// and generated_at are the same in every version of an export, so this
	// selects the same exports while sorting only the caller's versions.
	q := "SELECT " + recordColumns + " FROM (SELECT " + recordColumns + " FROM operations_activity_exports WHERE " + where +
		" ORDER BY id, " + newestFirst + " LIMIT 1 BY id)" +
		fmt.Sprintf(" ORDER BY generated_at_ms DESC, id DESC LIMIT %d", limit)
	return r.query(ctx, q, args...)
}

// Unfinished returns the latest versions of exports still pending or running.
func (r *Records) Unfinished(ctx context.Context) ([]*Export, error) {
	return r.query(ctx, "SELECT "+recordColumns+" FROM ("+latest+") WHERE status IN ('pending', 'running')")
}

// Expirable returns ready exports whose expiry is at or before now.
func (r *Records) Expirable(ctx context.Context, now time.Time) ([]*Export, error) {
	return r.query(ctx, "SELECT "+recordColumns+" FROM ("+latest+") WHERE status = 'ready' AND expires_at_ms <= ?", now.UnixMilli())
}

// Key is a stored idempotency key.
type Key struct {
	ExportID    string
	RequestHash string
}

// PutKey records (caller, key) → export. The earliest row wins on races.
func (r *Records) PutKey(ctx context.Context, caller, key, hash, exportID string, now time.Time) error {
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO operations_activity_export_keys (caller, key, request_hash, export_id, created_ms)")
	if err != nil {
		return fmt.Errorf("prepare key insert: %w", err)
	}
	if err := batch.Append(caller, key, hash, exportID, now.UnixMilli()); err != nil {
		batch.Abort()
		return fmt.Errorf("append key: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert key: %w", err)
	}
	return nil
}

// GetKey returns the earliest binding of (caller, key) created after since.
func (r *Records) GetKey(ctx context.Context, caller, key string, since time.Time) (*Key, error) {
	rows, err := r.conn.Query(ctx, "SELECT export_id, request_hash FROM operations_activity_export_keys WHERE caller = ? AND key = ? AND created_ms >= ? ORDER BY created_ms, export_id LIMIT 1",
		caller, key, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("query key: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	var k Key
	if err := rows.Scan(&k.ExportID, &k.RequestHash); err != nil {
		return nil, fmt.Errorf("scan key: %w", err)
	}
	return &k, nil
}

// ScopeParents resolves the enterprise (and client) of a client or account
// ref from operations_activity_scopes. It returns every distinct parent
// pair; none when the scope has no activity.
func (r *Records) ScopeParents(ctx context.Context, kind, ref string) ([][2]string, error) {
	col := "client_ref"
	if kind == KindClientAccount {
		col = "account_ref"
	}
	rows, err := r.conn.Query(ctx, "SELECT DISTINCT enterprise_ref, client_ref FROM operations_activity_scopes WHERE "+col+" = ? LIMIT 10", ref)
	if err != nil {
		return nil, fmt.Errorf("resolve scope: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, fmt.Errorf("scan scope: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Ping checks that ClickHouse answers.
func (r *Records) Ping(ctx context.Context) error { return r.conn.Ping(ctx) }

// ResolveScope returns the enterprise (and, for accounts, the client) that a
// scope belongs to. An enterprise resolves to itself. A client or account
// without any activity resolves to "" (its export is empty); one seen under
// two enterprises is ErrAmbiguousScope, never guessed.
func (r *Records) ResolveScope(ctx context.Context, kind, ref string) (enterprise, client string, err error) {
	if kind == KindEnterprise {
		return ref, "", nil
	}
	parents, err := r.ScopeParents(ctx, kind, ref)
	if err != nil {
		return "", "", err
	}
	if len(parents) == 0 {
		return "", "", nil
	}
	for _, p := range parents[1:] {
		if p[0] != parents[0][0] || (kind == KindClientAccount && p[1] != parents[0][1]) {
			return "", "", ErrAmbiguousScope
		}
	}
	if kind == KindClientAccount {
		return parents[0][0], parents[0][1], nil
	}
	return parents[0][0], "", nil
}

// ScopeKind returns the kind named by a ref's prefix, or "".
func ScopeKind(ref string) string {
	switch {
	case strings.HasPrefix(ref, "enterprises/"):
		return KindEnterprise
	case strings.HasPrefix(ref, "clients/"):
		return KindClient
	case strings.HasPrefix(ref, "client-accounts/"):
		return KindClientAccount
	}
	return ""
}
