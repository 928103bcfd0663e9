package server

import (
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/chconn"
)

// Error codes and messages of SPEC §1. The messages of the seed are binding
// word for word (SPEC §6); specifics go in details, never in the message.
const (
	codeInvalidRequest      = "invalid_request"
	codeUnauthorized        = "unauthorized"
	codeForbidden           = "forbidden_capability_scope"
	codeNotFound            = "export_not_found"
	codeStateConflict       = "state_conflict"
	codeNotAdmissible       = "not_admissible"
	codeRateLimited         = "rate_limited"
	codeUpstream            = "upstream_error"
	codeUnavailable         = "temporarily_unavailable"
	codeRouteNotFound       = "not_found"
	codeMethodNotAllowed    = "method_not_allowed"
	codeRangeNotSatisfiable = "range_not_satisfiable"
	codeHeaderTooLarge      = "request_header_too_large"
	codeRequestTimeout      = "request_timeout"
	codeInternal            = "internal_error"

	msgInvalidRequest   = "The export request is invalid."
	msgUnauthorized     = "Authentication required."
	msgMissingCap       = "Insufficient capability for this operation."
	msgScopeNotCovered  = "The caller's scopes do not cover the requested scope."
	msgNotFound         = "The export was not found."
	msgExpired          = "The export has expired; its file is no longer available."
	msgStateConflict    = "The request cannot be applied to the current resource state."
	msgNotAdmissible    = "The operation is not admissible in the current state."
	msgRateLimited      = "Too many requests."
	msgUpstream         = "An upstream service returned an unexpected error."
	msgUnavailable      = "Service is temporarily unavailable."
	msgRouteNotFound    = "No such route."
	msgMethodNotAllowed = "The method is not allowed on this resource."
	msgRange            = "The requested range is not satisfiable."
	msgHeaderTooLarge   = "The request headers are too large."
	msgRequestTimeout   = "The request was not received in time."
	msgInternal         = "An internal error occurred."
)

// details.reason values (SPEC §1 error table).
const (
	reasonInvalidJSON       = "invalid_json"
	reasonUnknownField      = "unknown_field"
	reasonMissingField      = "missing_required_field"
	reasonInvalidValue      = "invalid_field_value"
	reasonInvalidTimestamp  = "invalid_timestamp"
	reasonInvalidDateRange  = "invalid_date_range"
	reasonInvalidScope      = "invalid_scope"
	reasonUnsupportedFormat = "unsupported_format"
	reasonBodyTooLarge      = "body_too_large"
	reasonInvalidExportID   = "invalid_export_id"
	reasonInvalidPageToken  = "invalid_page_token"

	reasonMissingCapability = "missing_capability"
	reasonScopeNotCovered   = "scope_not_covered"

	reasonExportNotFound = "export_not_found"
	reasonExportExpired  = "export_expired"

	reasonKeyPayloadMismatch = "key_payload_mismatch"
	reasonExportNotReady     = "export_not_ready"
	reasonExportFailed       = "export_failed"
	reasonNotCancellable     = "export_not_cancellable"

	reasonRangeTooLong = "date_range_too_long"
	reasonRangeFuture  = "date_range_in_future"
	reasonRowLimit     = "row_limit_exceeded"

	reasonServiceUnavailable = "service_temporarily_unavailable"
	reasonShuttingDown       = "shutting_down"
	reasonOverloaded         = "overloaded"

	reasonRouteNotFound    = "route_not_found"
	reasonMethodNotAllowed = "method_not_allowed"
	reasonRange            = "range_not_satisfiable"
)

// unavailableRetryMs is the retry hint of a 503: long enough for a client not
// to hammer a draining replica or a restarting ClickHouse, short enough that a
// load balancer's next pick is tried promptly.
const unavailableRetryMs = 1000

// apiError is an error response. It is a plain value: building one does no
// I/O, so the pure decoders can return it.
type apiError struct {
	status  int
	code    string
	message string
	reason  string // details.reason; "" omits it
	field   string // details.field; "" omits it
	// retryAfterMs > 0 adds details.retry_after_ms and a Retry-After header.
	retryAfterMs int64
	// allow is the Allow header of a 405.
	allow string
	// cause is the underlying error, logged and never shown.
	cause error
}

func (e *apiError) Error() string {
	s := e.code
	if e.reason != "" {
		s += "/" + e.reason
	}
	if e.field != "" {
		s += " (" + e.field + ")"
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *apiError) Unwrap() error { return e.cause }

// invalid is a 400 invalid_request.
func invalid(reason, field string) *apiError {
	return &apiError{status: fasthttp.StatusBadRequest, code: codeInvalidRequest, message: msgInvalidRequest,
		reason: reason, field: field}
}

func unauthorized(cause error) *apiError {
	return &apiError{status: fasthttp.StatusUnauthorized, code: codeUnauthorized, message: msgUnauthorized, cause: cause}
}

func missingCapability() *apiError {
	return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, message: msgMissingCap,
		reason: reasonMissingCapability}
}

func scopeNotCovered() *apiError {
	return &apiError{status: fasthttp.StatusForbidden, code: codeForbidden, message: msgScopeNotCovered,
		reason: reasonScopeNotCovered}
}

func notFound() *apiError {
	return &apiError{status: fasthttp.StatusNotFound, code: codeNotFound, message: msgNotFound,
		reason: reasonExportNotFound}
}

func expired() *apiError {
	return &apiError{status: fasthttp.StatusNotFound, code: codeNotFound, message: msgExpired,
		reason: reasonExportExpired}
}

func conflict(reason string) *apiError {
	return &apiError{status: fasthttp.StatusConflict, code: codeStateConflict, message: msgStateConflict, reason: reason}
}

func notAdmissible(reason string) *apiError {
	return &apiError{status: fasthttp.StatusUnprocessableEntity, code: codeNotAdmissible, message: msgNotAdmissible,
		reason: reason}
}

func rateLimited(retryAfterMs int64) *apiError {
	return &apiError{status: fasthttp.StatusTooManyRequests, code: codeRateLimited, message: msgRateLimited,
		retryAfterMs: max(retryAfterMs, 1)}
}

func unavailable(reason string, cause error) *apiError {
	return &apiError{status: fasthttp.StatusServiceUnavailable, code: codeUnavailable, message: msgUnavailable,
		reason: reason, retryAfterMs: unavailableRetryMs, cause: cause}
}

func upstream(cause error) *apiError {
	return &apiError{status: fasthttp.StatusBadGateway, code: codeUpstream, message: msgUpstream, cause: cause}
}

func internalError(cause error) *apiError {
	return &apiError{status: fasthttp.StatusInternalServerError, code: codeInternal, message: msgInternal, cause: cause}
}

// dependencyError maps an error of ClickHouse, PostgreSQL or storage met
// while serving a request (SPEC §6): unreachable (ClickHouse by
// chconn.Unreachable, the control plane by engine.ErrControlPlaneUnavailable)
// → 503 service_temporarily_unavailable with retry_after_ms, anything else
// → 502 upstream_error. Never a 500 for a dependency's fault.
func dependencyError(err error) *apiError {
	if errors.Is(err, engine.ErrControlPlaneUnavailable) || chconn.Unreachable(err) {
		return unavailable(reasonServiceUnavailable, err)
	}
	return upstream(err)
}
