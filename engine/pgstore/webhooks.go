package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/webhook"
)

// Webhook endpoints and the outbox of their deliveries (SPEC §8,
// migration 0003). Deliveries are written by a trigger in the transaction
// that gives an export its final state; this file reads, claims and
// records them.

const endpointColumns = `id::text, url, scope_kind, scope_ref, enterprise_ref, client_ref, events, secret, created_by, created_at`

func scanEndpoint(row pgx.Row) (*webhook.Endpoint, error) {
	var w webhook.Endpoint
	if err := row.Scan(&w.ID, &w.URL, &w.ScopeKind, &w.ScopeRef, &w.EnterpriseRef, &w.ClientRef, &w.Events,
		&w.Secret, &w.CreatedBy, &w.CreatedAt); err != nil {
		return nil, err
	}
	w.CreatedAt = w.CreatedAt.UTC()
	return &w, nil
}

// CreateEndpoint records w (its ID preset by the caller); the database
// stamps CreatedAt. With limit > 0, a tenant that already has limit live
// endpoints gets webhook.ErrTooManyEndpoints and nothing is recorded; the
// tenant is w's enterprise (its scope ref when no enterprise is known), and
// the count is exact across replicas (under the tenant's advisory lock).
func (s *Store) CreateEndpoint(ctx context.Context, w *webhook.Endpoint, limit int) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err, "begin create of webhook endpoint %s", w.ID)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	if limit > 0 {
		tenant := w.EnterpriseRef
		if tenant == "" {
			tenant = w.ScopeRef
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 4343))`, tenant); err != nil {
			return fail(err, "lock webhook endpoints of %s", tenant)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM operations_activity_export_webhooks
			WHERE deleted_at IS NULL AND enterprise_ref = $1 AND ($1 <> '' OR scope_ref = $2)`, w.EnterpriseRef, w.ScopeRef).Scan(&n); err != nil {
			return fail(err, "count webhook endpoints of %s", tenant)
		}
		if n >= limit {
			return webhook.ErrTooManyEndpoints
		}
	}
	err = tx.QueryRow(ctx, `INSERT INTO operations_activity_export_webhooks (id, url, scope_kind, scope_ref,
		enterprise_ref, client_ref, events, secret, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING created_at`, w.ID, w.URL, w.ScopeKind, w.ScopeRef, w.EnterpriseRef, w.ClientRef, w.Events,
		w.Secret, w.CreatedBy).Scan(&w.CreatedAt)
	if err != nil {
		return fail(err, "insert webhook endpoint %s", w.ID)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err, "commit create of webhook endpoint %s", w.ID)
	}
	w.CreatedAt = w.CreatedAt.UTC()
	return nil
}

// GetEndpoint returns a live endpoint, or webhook.ErrNotFound.
func (s *Store) GetEndpoint(ctx context.Context, id string) (*webhook.Endpoint, error) {
	w, err := scanEndpoint(s.pool.QueryRow(ctx, "SELECT "+endpointColumns+
		" FROM operations_activity_export_webhooks WHERE id = $1 AND deleted_at IS NULL", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, webhook.ErrNotFound
	}
	if err != nil {
		return nil, fail(err, "read webhook endpoint %s", id)
	}
	return w, nil
}

// ListEndpoints returns up to limit live endpoints visible under v, newest
// first (created_at, id), strictly after cursor: the keyset scheme of List,
// on the endpoints' own indexes.
func (s *Store) ListEndpoints(ctx context.Context, v engine.Visibility, after *engine.Cursor, limit int) ([]*webhook.Endpoint, error) {
	var branches []string
	args := []any{limit}
	keyset := ""
	if after != nil {
		args = append(args, time.UnixMilli(after.GeneratedAtMs).UTC(), after.ID)
		keyset = " AND (created_at, id) < ($2, $3::uuid)"
	}
	for _, c := range []struct {
		col  string
		refs []string
	}{{"enterprise_ref", v.Enterprises}, {"scope_ref", v.Refs}, {"client_ref", v.Clients}} {
		for _, ref := range c.refs {
			args = append(args, ref)
			branches = append(branches, fmt.Sprintf("(SELECT created_at, id FROM operations_activity_export_webhooks WHERE %s = $%d AND deleted_at IS NULL%s ORDER BY created_at DESC, id DESC LIMIT $1)",
				c.col, len(args), keyset))
		}
	}
	if len(branches) == 0 {
		return nil, nil
	}
	q := "SELECT " + endpointColumns + " FROM operations_activity_export_webhooks WHERE id IN (SELECT id FROM (" +
		strings.Join(branches, " UNION ") + ") AS keys ORDER BY created_at DESC, id DESC LIMIT $1) ORDER BY created_at DESC, id DESC LIMIT $1"
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fail(err, "list webhook endpoints")
	}
	defer rows.Close()
	var out []*webhook.Endpoint
	for rows.Next() {
		w, err := scanEndpoint(rows)
		if err != nil {
			return nil, fail(err, "list webhook endpoints")
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(err, "list webhook endpoints")
	}
	return out, nil
}

// DeleteEndpoint deletes a live endpoint and, in the same transaction,
// abandons its undelivered deliveries (bumping their claim epoch, so an
// attempt under way cannot record them back to pending). webhook.ErrNotFound
// when there is no such live endpoint.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err, "begin delete of webhook endpoint %s", id)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	tag, err := tx.Exec(ctx, `UPDATE operations_activity_export_webhooks SET deleted_at = now()
		WHERE id = $1 AND deleted_at IS NULL`, id)
	if err != nil {
		return fail(err, "delete webhook endpoint %s", id)
	}
	if tag.RowsAffected() == 0 {
		return webhook.ErrNotFound
	}
	if _, err := tx.Exec(ctx, `UPDATE operations_activity_export_webhook_deliveries SET state = 'abandoned',
		last_error = 'endpoint deleted', finished_at = now(), claim_epoch = claim_epoch + 1, claimed_by = NULL, lease_until = NULL
		WHERE endpoint_id = $1 AND state = 'pending'`, id); err != nil {
		return fail(err, "abandon deliveries of webhook endpoint %s", id)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err, "commit delete of webhook endpoint %s", id)
	}
	return nil
}

// claimScan bounds the due deliveries one claim considers: its cost stays
// flat however large the backlog.
const claimScan = 1000

const deliveryColumns = `id::text, endpoint_id::text, event_type, export_id::text, occurred_at, state, attempts,
	next_attempt_at, coalesce(last_status, 0), last_error, finished_at`

func scanDelivery(row pgx.Row, extra ...any) (*webhook.Delivery, error) {
	var (
		d    webhook.Delivery
		next time.Time
		fin  *time.Time
	)
	dst := append([]any{&d.ID, &d.EndpointID, &d.Type, &d.ExportID, &d.OccurredAt, &d.State, &d.Attempts, &next,
		&d.LastStatus, &d.LastError, &fin}, extra...)
	if err := row.Scan(dst...); err != nil {
		return nil, err
	}
	d.OccurredAt = d.OccurredAt.UTC()
	if d.State == webhook.StatePending {
		d.NextAttemptAt = next.UTC()
	}
	if fin != nil {
		d.FinishedAt = fin.UTC()
	}
	return &d, nil
}

// Deliveries returns the latest limit deliveries of an endpoint, newest
// event first.
func (s *Store) Deliveries(ctx context.Context, endpointID string, limit int) ([]*webhook.Delivery, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+deliveryColumns+` FROM operations_activity_export_webhook_deliveries
		WHERE endpoint_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2`, endpointID, limit)
	if err != nil {
		return nil, fail(err, "read deliveries of webhook endpoint %s", endpointID)
	}
	defer rows.Close()
	var out []*webhook.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fail(err, "read deliveries of webhook endpoint %s", endpointID)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(err, "read deliveries of webhook endpoint %s", endpointID)
	}
	return out, nil
}

// ClaimDeliveries claims for owner up to n due deliveries of live
// endpoints, oldest due first, for lease: each gets a new claim epoch, one
// more attempt, and is due again when the lease ends (so a replica that
// dies holding it loses it then). Replicas claiming at once skip each
// other's rows (FOR UPDATE SKIP LOCKED): one replica at a time attempts a
// delivery. An endpoint never has more than perEndpoint deliveries under a
// live lease, across all replicas, so a receiver that hangs holds at most
// that many attempts. Due is judged by the database clock; the candidates
// are the claimScan oldest due deliveries.
func (s *Store) ClaimDeliveries(ctx context.Context, owner string, n, perEndpoint int, lease time.Duration) ([]*webhook.Claimed, error) {
	rows, err := s.pool.Query(ctx, `WITH busy AS (
			SELECT endpoint_id, count(*) AS n FROM operations_activity_export_webhook_deliveries
			WHERE state = 'pending' AND lease_until > now() GROUP BY endpoint_id
		), candidates AS (
			SELECT id, endpoint_id, row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS rank
			FROM (SELECT id, endpoint_id, next_attempt_at FROM operations_activity_export_webhook_deliveries
				WHERE state = 'pending' AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $5) AS due
		), due AS (
			SELECT d.id FROM operations_activity_export_webhook_deliveries d
			WHERE d.id IN (SELECT c.id FROM candidates c LEFT JOIN busy b ON b.endpoint_id = c.endpoint_id
				WHERE c.rank + coalesce(b.n, 0) <= $4)
			  AND d.state = 'pending' AND d.next_attempt_at <= now()
			ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
		), claimed AS (
			UPDATE operations_activity_export_webhook_deliveries d SET claimed_by = $1,
				lease_until = now() + $3::interval, next_attempt_at = now() + $3::interval,
				claim_epoch = d.claim_epoch + 1, attempts = d.attempts + 1, last_attempt_at = now()
			FROM due WHERE d.id = due.id
			RETURNING d.*
		)
		SELECT c.id::text, c.endpoint_id::text, c.event_type, c.export_id::text, c.occurred_at, c.state, c.attempts,
			c.next_attempt_at, coalesce(c.last_status, 0), c.last_error, c.finished_at,
			c.export, c.claim_epoch, w.url, w.secret
		FROM claimed c JOIN operations_activity_export_webhooks w ON w.id = c.endpoint_id
		ORDER BY c.next_attempt_at`, owner, n, lease.String(), perEndpoint, claimScan)
	if err != nil {
		return nil, fail(err, "claim deliveries")
	}
	defer rows.Close()
	var out []*webhook.Claimed
	for rows.Next() {
		var (
			c    webhook.Claimed
			snap []byte
		)
		d, err := scanDelivery(rows, &snap, &c.Epoch, &c.URL, &c.Secret)
		if err != nil {
			return nil, fail(err, "claim deliveries")
		}
		c.Delivery = *d
		if c.Export, err = decodeSnapshot(snap); err != nil {
			return nil, fmt.Errorf("decode export snapshot of delivery %s: %w", d.ID, err)
		}
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(err, "claim deliveries")
	}
	return out, nil
}

// RecordDelivery records an attempt's outcome, fenced by the claim (owner
// and epoch): a 2xx delivers; a failure schedules the next attempt after
// b.Delay(attempts) by the database clock, or abandons the delivery when
// that would be later than b.GiveUp after the event. It returns the new
// state, or ErrLost when the claim was lost (retaken after its lease, or
// the endpoint deleted) and nothing was recorded.
func (s *Store) RecordDelivery(ctx context.Context, o webhook.Outcome, b webhook.Backoff) (string, error) {
	var status any
	if o.Status != 0 {
		status = o.Status
	}
	var state string
	err := s.pool.QueryRow(ctx, `WITH cur AS (
			SELECT id, occurred_at, now() + least($6::interval * power(2, least(attempts - 1, 40)), $7::interval) AS next
			FROM operations_activity_export_webhook_deliveries
			WHERE id = $1 AND claimed_by = $2 AND claim_epoch = $3 AND state = 'pending' FOR UPDATE
		)
		UPDATE operations_activity_export_webhook_deliveries d SET
			state = CASE WHEN $4 THEN 'delivered' WHEN cur.next > cur.occurred_at + $8::interval THEN 'abandoned' ELSE 'pending' END,
			next_attempt_at = CASE WHEN $4 THEN d.next_attempt_at ELSE cur.next END,
			finished_at = CASE WHEN $4 OR cur.next > cur.occurred_at + $8::interval THEN now() END,
			last_status = $5, last_error = $9, claimed_by = NULL, lease_until = NULL
		FROM cur WHERE d.id = cur.id
		RETURNING d.state`, o.ID, o.Owner, o.Epoch, o.OK, status, b.Base.String(), b.Max.String(), b.GiveUp.String(),
		clip(o.Error, 300)).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrLost
	}
	if err != nil {
		return "", fail(err, "record delivery %s", o.ID)
	}
	return state, nil
}

// OldestPending returns the age, by the database clock, of the oldest
// undelivered event (0 when there is none). O(1): the first entry of a
// partial index of pending rows.
func (s *Store) OldestPending(ctx context.Context) (time.Duration, error) {
	var secs float64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8
		FROM operations_activity_export_webhook_deliveries WHERE state = 'pending'`).Scan(&secs)
	if err != nil {
		return 0, fail(err, "read oldest pending delivery")
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// DeleteOldDeliveries removes up to limit delivered or abandoned deliveries
// finished before retention, and up to limit endpoints deleted before
// retention (with whatever deliveries they still have). It returns the
// number of deliveries removed (call again while it equals limit).
func (s *Store) DeleteOldDeliveries(ctx context.Context, retention time.Duration, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM operations_activity_export_webhook_deliveries WHERE id IN (
		SELECT id FROM operations_activity_export_webhook_deliveries WHERE state <> 'pending'
			AND finished_at < now() - $1::interval LIMIT $2 FOR UPDATE SKIP LOCKED)`, retention.String(), limit)
	if err != nil {
		return 0, fail(err, "delete old deliveries")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM operations_activity_export_webhooks WHERE id IN (
		SELECT id FROM operations_activity_export_webhooks WHERE deleted_at < now() - $1::interval
			LIMIT $2 FOR UPDATE SKIP LOCKED)`, retention.String(), limit); err != nil {
		return 0, fail(err, "delete old webhook endpoints")
	}
	return int(tag.RowsAffected()), nil
}

// snapshot is an export record as to_jsonb renders the row (column names,
// timestamps in ISO 8601 with an offset).
type snapshot struct {
	ID              string          `json:"id"`
	Status          string          `json:"status"`
	Format          string          `json:"format"`
	Compression     string          `json:"compression"`
	DateFrom        string          `json:"date_from_utc"`
	DateTo          string          `json:"date_to_utc"`
	ScopeKind       string          `json:"scope_kind"`
	ScopeRef        string          `json:"scope_ref"`
	EnterpriseRef   string          `json:"enterprise_ref"`
	ClientRef       string          `json:"client_ref"`
	Options         json.RawMessage `json:"options"`
	GeneratedBy     string          `json:"generated_by"`
	GeneratedAt     time.Time       `json:"generated_at"`
	FinishedAt      *time.Time      `json:"finished_at"`
	ExpiresAt       *time.Time      `json:"expires_at"`
	RowCount        int64           `json:"row_count"`
	ByteSize        int64           `json:"byte_size"`
	Checksum        string          `json:"checksum_sha256"`
	StorageLocation string          `json:"storage_location"`
	FailureReason   string          `json:"failure_reason"`
	Owner           string          `json:"owner"`
	Epoch           int64           `json:"epoch"`
	Heartbeat       time.Time       `json:"heartbeat_at"`
}

// decodeSnapshot turns a delivery's export snapshot into the record it was.
func decodeSnapshot(b []byte) (*engine.Export, error) {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	x := &engine.Export{ID: s.ID, Version: uint64(s.Epoch), Status: s.Status, Format: s.Format,
		Compression: s.Compression, DateFrom: s.DateFrom, DateTo: s.DateTo, ScopeKind: s.ScopeKind,
		ScopeRef: s.ScopeRef, EnterpriseRef: s.EnterpriseRef, ClientRef: s.ClientRef, GeneratedBy: s.GeneratedBy,
		GeneratedAt: s.GeneratedAt.UTC(), RowCount: s.RowCount, ByteSize: s.ByteSize, Checksum: s.Checksum,
		StorageLocation: s.StorageLocation, FailureReason: s.FailureReason, Owner: s.Owner, Heartbeat: s.Heartbeat.UTC()}
	if s.FinishedAt != nil {
		x.FinishedAt = s.FinishedAt.UTC()
	}
	if s.ExpiresAt != nil {
		x.ExpiresAt = s.ExpiresAt.UTC()
	}
	if len(s.Options) > 0 && string(s.Options) != "null" {
		if err := json.Unmarshal(s.Options, &x.Options); err != nil {
			return nil, fmt.Errorf("options: %w", err)
		}
	}
	return x, nil
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// deliveriesChannel is the NOTIFY channel of migration 0003's trigger.
const deliveriesChannel = "exportd_webhook_deliveries"

// ListenDeliveries calls wake whenever a transaction that wrote deliveries
// commits (LISTEN on a connection of its own, outside the pool), until ctx
// ends or the connection fails; it returns that error (ctx's on a clean
// stop). wake must not block.
func (s *Store) ListenDeliveries(ctx context.Context, wake func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fail(err, "connect for LISTEN")
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+deliveriesChannel); err != nil {
		return fail(err, "LISTEN %s", deliveriesChannel)
	}
	wake() // anything written before the LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fail(err, "wait for %s", deliveriesChannel)
		}
		wake()
	}
}
