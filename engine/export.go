// Package engine runs export jobs: their lifecycle and state machine, the
// store of export records, and the Source → CSV encoder → Sink pipeline
// with backpressure, accounting and cancellation.
package engine

import (
	"errors"
	"time"

	"github.com/exportd/exportd/engine/source"

	"github.com/exportd/exportd/engine/activity"
)

// Export statuses (SPEC §1).
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusReady     = "ready"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
)

// Failure reasons (SPEC §1, §6).
const (
	ReasonUpstream = "upstream_error"
	ReasonStorage  = "storage_error"
	ReasonTimeout  = "timeout"
	ReasonRowLimit = "row_limit_exceeded"
	ReasonShutdown = "shutdown"
	ReasonInternal = "internal_error"
)

// Scope kinds (activity's, the one definition; refs carry them as prefixes).
const (
	KindEnterprise    = activity.KindEnterprise
	KindClient        = activity.KindClient
	KindClientAccount = activity.KindClientAccount
)

// Sentinel errors callers branch on.
var (
	ErrNotFound       = errors.New("export not found")
	ErrNotCancellable = errors.New("export not cancellable")
	ErrShuttingDown   = errors.New("shutting down")
)

// Terminal reports whether status is final for the job (expired follows ready).
func Terminal(status string) bool {
	switch status {
	case StatusReady, StatusFailed, StatusCancelled, StatusExpired:
		return true
	}
	return false
}

// Export is an export record: the current state of one export.
type Export struct {
	ID          string
	Version     uint64
	Status      string
	Format      string
	Compression string
	// DateFrom and DateTo are the requested bounds normalised to RFC 3339 UTC.
	DateFrom, DateTo string
	ScopeKind        string
	ScopeRef         string
	// EnterpriseRef (always) and ClientRef (for account scopes) are the
	// resolved parents of the scope; the read is restricted to EnterpriseRef.
	EnterpriseRef   string
	ClientRef       string
	GeneratedBy     string
	GeneratedAt     time.Time
	FinishedAt      time.Time // zero: null
	ExpiresAt       time.Time // zero: null
	RowCount        int64
	ByteSize        int64
	Checksum        string
	StorageLocation string
	FailureReason   string
	Owner           string
	Heartbeat       time.Time
	// Options are the SPEC §7 settings of the request.
	Options Options

	// admitted is the plan PlanRows made of this request at admission,
	// handed to its job (SubmitWith) so that an export starting at once
	// does not count its rows a second time; never part of a record.
	admitted *admittedPlan
}

// admittedPlan is a plan made at admission and when.
type admittedPlan struct {
	plan *source.Plan
	at   time.Time
}

// ObjectName is the storage name of the export's artefact.
func (e *Export) ObjectName() string { return e.ID + Extension(e.Format, e.Compression) }

// FromMs and ToMs are the inclusive millisecond bounds of the range:
// date_from rounds up and date_to rounds down to a whole millisecond.
func (e *Export) Bounds() (fromMs, toMs int64, err error) {
	from, err := time.Parse(time.RFC3339Nano, e.DateFrom)
	if err != nil {
		return 0, 0, err
	}
	to, err := time.Parse(time.RFC3339Nano, e.DateTo)
	if err != nil {
		return 0, 0, err
	}
	return MillisCeil(from), MillisFloor(to), nil
}

// MillisFloor returns t in whole Unix milliseconds, rounded down.
func MillisFloor(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Before(time.UnixMilli(ms)) {
		ms--
	}
	return ms
}

// MillisCeil returns t in whole Unix milliseconds, rounded up.
func MillisCeil(t time.Time) int64 {
	ms := MillisFloor(t)
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}
