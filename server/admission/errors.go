package admission

import (
	"errors"
	"time"
)

// ErrOverloaded matches (errors.Is) every error by which [Limiter.Acquire] sheds a create. Callers
// map it to 503 temporarily_unavailable with reason overloaded (SPEC §1); the *[OverloadedError]
// (errors.As) carries the retry hint.
var ErrOverloaded = errors.New("overloaded")

// Reasons for shedding. They are a closed set, safe as metric label values.
const (
	ReasonQueueFull    = "queue_full"    // every slot busy and the queue full: shed at once
	ReasonQueueTimeout = "queue_timeout" // waited QueueTimeout in the queue without a slot
	// ReasonPredictedWait: every slot busy, and the drain rate predicts that a create joining the
	// queue would wait longer than a typical export runs, or likely past QueueTimeout: shed at
	// once rather than queued for a long wait or shed at the deadline.
	ReasonPredictedWait = "predicted_wait"
)

// OverloadedError is returned when a create is shed. It matches [ErrOverloaded].
type OverloadedError struct {
	// RetryAfter is the estimated time until a create joining the back of the queue now would
	// get a slot: the work ahead of it divided by the observed drain rate, within 100ms-60s.
	RetryAfter time.Duration
	// Reason is ReasonQueueFull, ReasonPredictedWait or ReasonQueueTimeout.
	Reason string
}

func (e *OverloadedError) Error() string {
	return "overloaded: " + e.Reason + ", retry after " + e.RetryAfter.String()
}

// Is reports whether target is ErrOverloaded.
func (e *OverloadedError) Is(target error) bool { return target == ErrOverloaded }

// RetryAfterMillis is details.retry_after_ms of the 503 body: RetryAfter in whole milliseconds,
// rounded up, at least 1.
func (e *OverloadedError) RetryAfterMillis() int64 {
	ms := (e.RetryAfter + time.Millisecond - 1) / time.Millisecond
	return max(int64(ms), 1)
}

// RetryAfterSeconds is the Retry-After header value: the ceiling of RetryAfterMillis/1000, at
// least 1 (SPEC §6).
func (e *OverloadedError) RetryAfterSeconds() int64 {
	return (e.RetryAfterMillis() + 999) / 1000
}
