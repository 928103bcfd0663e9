package webhook

import (
	"errors"
	"time"

	"github.com/exportd/exportd/engine"
)

// Event types of SPEC §8, one per final status of an export.
const (
	EventReady     = "operations_activity_export.ready"
	EventFailed    = "operations_activity_export.failed"
	EventCancelled = "operations_activity_export.cancelled"
	EventExpired   = "operations_activity_export.expired"
)

// Events are every event type, in SPEC order.
var Events = []string{EventReady, EventFailed, EventCancelled, EventExpired}

// KnownEvent reports whether name is an event type of SPEC §8.
func KnownEvent(name string) bool {
	for _, e := range Events {
		if e == name {
			return true
		}
	}
	return false
}

// Delivery states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateAbandoned = "abandoned"
)

// Errors of the endpoint store.
var (
	// ErrNotFound: the endpoint does not exist (or was deleted).
	ErrNotFound = errors.New("webhook endpoint not found")
	// ErrTooManyEndpoints: the tenant has its maximum of live endpoints.
	ErrTooManyEndpoints = errors.New("too many webhook endpoints")
)

// Endpoint is a registered receiver. EnterpriseRef (always) and ClientRef
// (account scopes) are the scope's resolved parents, as on export records.
type Endpoint struct {
	ID            string
	URL           string
	ScopeKind     string
	ScopeRef      string
	EnterpriseRef string
	ClientRef     string
	Events        []string
	Secret        string
	CreatedBy     string
	CreatedAt     time.Time
}

// Delivery is one event for one endpoint, as the deliveries log shows it.
type Delivery struct {
	ID            string // the webhook-id
	EndpointID    string
	Type          string
	ExportID      string
	OccurredAt    time.Time
	State         string
	Attempts      int
	NextAttemptAt time.Time // zero once delivered or abandoned
	LastStatus    int       // 0: no HTTP answer (yet)
	LastError     string
	FinishedAt    time.Time
}

// Claimed is a delivery claimed for one attempt: what the attempt needs,
// and the fencing epoch its outcome must be recorded with.
type Claimed struct {
	Delivery
	URL    string
	Secret string
	Export *engine.Export // the snapshot taken when the event happened
	Epoch  int64
}

// Outcome is the result of one attempt.
type Outcome struct {
	ID     string
	Owner  string
	Epoch  int64
	OK     bool   // a 2xx answer
	Status int    // HTTP status; 0 when there was no answer
	Error  string // a short description when !OK (never the response body)
}

// Backoff is the retry schedule of SPEC §8: first retry after Base (5 s),
// doubling, capped at Max (1 h), for GiveUp (24 h) after the event. The
// store applies it by the database clock (pgstore.RecordDelivery).
type Backoff struct {
	Base, Max, GiveUp time.Duration
}

// DefaultBackoff is SPEC §8's schedule.
var DefaultBackoff = Backoff{Base: 5 * time.Second, Max: time.Hour, GiveUp: 24 * time.Hour}
