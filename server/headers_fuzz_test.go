package server

import (
	"strings"
	"testing"
	"time"
)

// FuzzRequestHeaders checks the pure header readers against hostile
// values: Prefer's wait is a whole number of seconds in 0-60 or refused;
// an echoed X-Request-Id and an accepted Idempotency-Key can never split a
// header or a log line; a bearer token never keeps the scheme or blanks.
func FuzzRequestHeaders(f *testing.F) {
	for _, s := range []string{"wait=10", "respond-async, wait=60", "WAIT = \"5\"; x=y", "wait=-0", "wait=+1", "wait=1e1",
		"wait=99999999999999999999", "wait", "a\r\nb", "Bearer abc", "bearer\tabc", "BEARER  a.b.c  ", "id-1.2_3", strings.Repeat("k", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseWait([][]byte{[]byte(v)})
		if ok && (d < 0 || d > maxWaitSecs*time.Second || d%time.Second != 0) {
			t.Fatalf("Prefer %q: wait %v", v, d)
		}
		if ok && d != defaultWait && !strings.Contains(strings.ToLower(v), "wait") {
			t.Fatalf("Prefer %q: wait %v without a wait preference", v, d)
		}
		if saneRequestID([]byte(v)) && (len(v) > maxRequestID || strings.ContainsAny(v, "\r\n\t \"\\;,:")) {
			t.Fatalf("X-Request-Id %q would be echoed", v)
		}
		if validIdempotencyKey([]byte(v)) {
			for _, c := range []byte(v) {
				if c <= ' ' || c >= 0x7f {
					t.Fatalf("Idempotency-Key %q accepted with byte %#x", v, c)
				}
			}
		}
		tok := bearerToken([]byte(v))
		if tok != "" && (tok != strings.TrimSpace(tok) || len(tok) >= len(v) || !strings.EqualFold(v[:7], "bearer ")) {
			t.Fatalf("bearer token %q from %q", tok, v)
		}
	})
}
