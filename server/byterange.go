package server

import (
	"math"
	"strings"
)

// rangeResult is the outcome of parseRange.
type rangeResult int

const (
	// rangeIgnore: serve the whole object with 200 (no Range header, another
	// unit, a malformed or multi-range header; RFC 9110 §14.2 lets a server
	// ignore a Range it does not want to honour).
	rangeIgnore rangeResult = iota
	// rangeOK: serve [start, start+length) with 206.
	rangeOK
	// rangeUnsatisfiable: 416 with "Content-Range: bytes */size".
	rangeUnsatisfiable
)

// parseRange interprets a Range header against an object of size bytes
// (RFC 9110 §14.1.2). Only a single range of unit "bytes" is honoured:
//
//	bytes=a-b  first-last inclusive; b past the end is clamped; a ≥ size is unsatisfiable
//	bytes=a-   from a to the end; a ≥ size is unsatisfiable
//	bytes=-n   the last n bytes (all of them when n ≥ size); n = 0 is unsatisfiable
//
// Multi-range requests are ignored (whole object, 200): serving
// multipart/byteranges buys nothing for a CSV download and its
// overlapping-range pitfalls are a known amplification vector. Numbers too
// large for int64 saturate, so they behave as "very large". An empty object
// satisfies no range. It is pure and never panics.
func parseRange(header string, size int64) (start, length int64, res rangeResult) {
	unit, spec, ok := strings.Cut(header, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return 0, 0, rangeIgnore
	}
	spec = strings.TrimSpace(spec)
	if spec == "" || strings.Contains(spec, ",") {
		return 0, 0, rangeIgnore
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, rangeIgnore
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix range
		n, ok := parseDigits(last)
		if !ok {
			return 0, 0, rangeIgnore
		}
		if n == 0 || size <= 0 {
			return 0, 0, rangeUnsatisfiable
		}
		n = min(n, size)
		return size - n, n, rangeOK
	}
	a, ok := parseDigits(first)
	if !ok {
		return 0, 0, rangeIgnore
	}
	b := int64(math.MaxInt64)
	if last != "" {
		if b, ok = parseDigits(last); !ok || b < a {
			return 0, 0, rangeIgnore
		}
	}
	if a >= size {
		return 0, 0, rangeUnsatisfiable
	}
	b = min(b, size-1)
	return a, b - a + 1, rangeOK
}

// parseDigits parses a non-empty run of ASCII digits, saturating at MaxInt64.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + d
	}
	return n, true
}
