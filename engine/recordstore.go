package engine

import (
	"context"
	"errors"
	"time"
)

// RecordStore is the control plane the engine runs on (engine/pgstore on
// PostgreSQL): one record per export holding its current state,
// idempotency keys, and the leases of live exports. Every state change is a
// compare-and-set judged by the store's clock, never a replica's, so replica
// clock skew changes nothing: the engine never compares its own clock with a
// stored time.
type RecordStore interface {
	// Create inserts x as a new pending export owned by x.Owner and, with
	// a key, claims the key in the same transaction. When the key is already
	// bound (within its window) nothing is inserted: created is false and
	// boundID names the bound export (with ErrKeyPayloadMismatch when the
	// request differs). Create sets x.GeneratedAt, x.Heartbeat and
	// x.Version (the lease epoch). With maxPending > 0, an enterprise with
	// maxPending pending exports (all replicas) gets ErrTooManyPending.
	Create(ctx context.Context, x *Export, key *IdempotencyKey, maxPending int) (created bool, boundID string, err error)
	// BoundKey returns the export bound to a key ("" when free), with
	// ErrKeyPayloadMismatch when hash differs from the bound request's.
	BoundKey(ctx context.Context, caller, key, hash string) (string, error)
	// Get returns the current state (a ready export past expiry reads
	// expired) or ErrNotFound.
	Get(ctx context.Context, id string) (*Export, error)
	// List returns up to limit visible exports, newest first, after cursor.
	List(ctx context.Context, v Visibility, after *Cursor, limit int) ([]*Export, error)
	// Start moves the owner's pending export to running; ErrLost when it
	// ended meanwhile or the lease (owner, epoch) is no longer its; ErrBusy
	// (nothing changed) when maxRunning > 0 and the enterprise already runs
	// that many exports on all replicas together.
	Start(ctx context.Context, id, owner string, epoch uint64, enterprise string, maxRunning int) error
	// Heartbeat renews the lease and records progress; when the export
	// ended elsewhere it returns the current state with ErrLost.
	Heartbeat(ctx context.Context, id, owner string, epoch uint64, rows, bytes int64) (*Export, error)
	// Finish records the owner's final state fenced by (owner, epoch): the
	// first final state wins, a loser gets the winner with ErrLost.
	Finish(ctx context.Context, id, owner string, epoch uint64, f Final) (*Export, error)
	// Cancel ends a live export as cancelled whoever owns it (fencing its
	// owner out); a final export yields ErrNotCancellable with its state.
	Cancel(ctx context.Context, id string) (*Export, error)
	// ReapLost ends as failed/shutdown up to limit live exports whose lease
	// is older than stale, and returns them.
	ReapLost(ctx context.Context, stale time.Duration, limit int) ([]*Export, error)
	// FailOwned ends as failed/shutdown the live exports of owner.
	FailOwned(ctx context.Context, owner string) ([]*Export, error)
	// ExpireDue marks expired up to limit ready exports past expiry and
	// returns them (their artefacts are the caller's to delete).
	ExpireDue(ctx context.Context, limit int) ([]*Export, error)
	// DeleteOld removes up to limit ended records older than retention and
	// returns how many it removed.
	DeleteOld(ctx context.Context, retention time.Duration, limit int) (int, error)
	// Live returns which of ids are exports whose artefact must be kept
	// (pending, running or ready).
	Live(ctx context.Context, ids []string) (map[string]bool, error)
	Ping(ctx context.Context) error
}

// IdempotencyKey is a claim on (caller, key) for the request whose
// normalised hash is RequestHash.
type IdempotencyKey struct {
	Caller, Key, RequestHash string
}

// Final is an owner's final state for its export.
type Final struct {
	Status, FailureReason string
	RowCount, ByteSize    int64
	Checksum              string
	// Retention is how long a ready artefact stays downloadable.
	Retention time.Duration
}

// Errors of a RecordStore.
var (
	// ErrLost: a compare-and-set found the export no longer in a state the
	// caller may change (ended elsewhere, or its lease was taken over).
	ErrLost = errors.New("export ended elsewhere or lease lost")
	// ErrKeyPayloadMismatch: the idempotency key is bound to another request.
	ErrKeyPayloadMismatch = errors.New("idempotency key bound to another request")
	// ErrBusy: the enterprise runs its maximum of exports; try later.
	ErrBusy = errors.New("enterprise at its running exports limit")
	// ErrTooManyPending: the enterprise has its maximum of pending exports.
	ErrTooManyPending = errors.New("enterprise at its pending exports limit")
	// ErrControlPlaneUnavailable wraps failures to reach the record store at
	// all (the API answers 503, never 500).
	ErrControlPlaneUnavailable = errors.New("control plane unavailable")
)

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
