package server

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	hdrRequestID      = "X-Request-Id"
	hdrIdempotencyKey = "Idempotency-Key"
	hdrPrefer         = "Prefer"
	hdrRetryAfter     = "Retry-After"
)

// maxRequestID bounds an echoed X-Request-Id.
const maxRequestID = 128

// saneRequestID reports whether a client's X-Request-Id may be echoed:
// 1-128 characters of [A-Za-z0-9._-], nothing that could split a header or
// a log line.
func saneRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > maxRequestID {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// maxIdempotencyKey is the longest Idempotency-Key (SPEC §1).
const maxIdempotencyKey = 255

// validIdempotencyKey reports whether k is 1-255 visible ASCII characters.
func validIdempotencyKey(k []byte) bool {
	if len(k) == 0 || len(k) > maxIdempotencyKey {
		return false
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// Prefer: wait=N bounds (SPEC §1).
const (
	defaultWait = 10 * time.Second
	maxWaitSecs = 60
)

// parseWait returns the wait preference of the Prefer header values
// (RFC 7240): preferences are comma-separated, names case-insensitive,
// parameters after ';' ignored, other preferences ignored, and only the
// first wait counts. Without one the default (10s) applies. A wait that is
// not a whole number of seconds in 0-60 is an error: ok is false.
func parseWait(values [][]byte) (d time.Duration, ok bool) {
	for _, v := range values {
		for pref := range bytes.SplitSeq(v, []byte{','}) {
			if i := bytes.IndexByte(pref, ';'); i >= 0 {
				pref = pref[:i]
			}
			name, val, hasVal := bytes.Cut(pref, []byte{'='})
			if !strings.EqualFold(string(bytes.TrimSpace(name)), "wait") {
				continue
			}
			if !hasVal {
				return 0, false
			}
			val = bytes.TrimSpace(val)
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			if len(val) == 0 || len(val) > 2 {
				return 0, false
			}
			n, err := strconv.Atoi(string(val))
			if err != nil || n < 0 || n > maxWaitSecs || val[0] == '+' || val[0] == '-' {
				return 0, false
			}
			return time.Duration(n) * time.Second, true
		}
	}
	return defaultWait, true
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header (scheme case-insensitive), or "".
func bearerToken(h []byte) string {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(string(h[:len(scheme)]), scheme) {
		return ""
	}
	return string(bytes.TrimSpace(h[len(scheme):]))
}

// retryAfterSeconds is the Retry-After value for a retry hint in ms: whole
// seconds, rounded up, at least 1 (SPEC §6).
func retryAfterSeconds(ms int64) int64 {
	return max((ms+999)/1000, 1)
}
