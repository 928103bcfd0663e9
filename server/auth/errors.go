package auth

import (
	"errors"
	"fmt"
)

// ErrUnauthorized is returned by [Verifier.Verify] for every token that is not accepted: missing,
// malformed, oversized, unsigned, signed with an unknown or wrong key, expired, not yet valid, issued
// for another issuer or audience, or carrying malformed claims. Callers map it to 401 `unauthorized`
// and must not show the wrapped reason to the client; [Reason] gives a bounded label for logs and
// metrics.
var ErrUnauthorized = errors.New("unauthorized")

// Reasons for which a token is rejected. They are a closed set, safe as metric label values.
const (
	ReasonMissing     = "missing"       // empty token
	ReasonOversized   = "oversized"     // longer than MaxTokenBytes
	ReasonMalformed   = "malformed"     // not three base64url segments, bad JSON, bad header
	ReasonAlgorithm   = "algorithm"     // alg not EdDSA/RS256/ES256, or not the family of the key
	ReasonUnknownKey  = "unknown_key"   // no trusted key has this kid (or, kid-less, no single key)
	ReasonSignature   = "signature"     // signature does not verify
	ReasonExpired     = "expired"       // exp missing or past (beyond leeway)
	ReasonNotYetValid = "not_yet_valid" // nbf in the future, or iat in the future beyond leeway
	ReasonIssuer      = "issuer"        // iss differs from the configured issuer
	ReasonAudience    = "audience"      // aud does not name the configured audience
	ReasonSubject     = "subject"       // sub not users/<uuid> or service-accounts/<uuid>
	ReasonClaims      = "claims"        // capabilities or scopes malformed, unsupported crit header
)

// unauthorizedError carries the reason label and, for logs, a short detail. It matches ErrUnauthorized
// with errors.Is.
type unauthorizedError struct {
	reason string
	detail string
	err    error
}

func (e *unauthorizedError) Error() string {
	msg := "unauthorized: " + e.reason
	if e.detail != "" {
		msg += ": " + e.detail
	}
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *unauthorizedError) Is(target error) bool { return target == ErrUnauthorized }

func (e *unauthorizedError) Unwrap() error { return e.err }

// reject builds the error returned for a rejected token. detail must not contain token material
// beyond short, quoted header values (a kid, an alg).
func reject(reason, format string, args ...any) error {
	return &unauthorizedError{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// rejectErr is reject with an underlying library error, kept for errors.Is/As and for logs.
func rejectErr(reason string, err error) error {
	return &unauthorizedError{reason: reason, err: err}
}

// Reason returns the reason label of an error returned by [Verifier.Verify] (one of the Reason*
// constants), or "" if err is not such an error.
func Reason(err error) string {
	var ue *unauthorizedError
	if errors.As(err, &ue) {
		return ue.reason
	}
	return ""
}
