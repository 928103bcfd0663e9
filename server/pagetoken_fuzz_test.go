package server

import (
	"bytes"
	"testing"

	"github.com/exportd/exportd/engine"
)

// FuzzDecodePageToken feeds arbitrary page tokens (and callers) to the
// decoder. A token is accepted only if it is exactly the one this service
// would issue for that caller and cursor (no malleable spelling, no other
// caller's token), and every cursor round-trips.
func FuzzDecodePageToken(f *testing.F) {
	secret := bytes.Repeat([]byte{0x5a}, 32)
	const caller = "users/b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b"
	good := encodePageToken(secret, caller, engine.Cursor{GeneratedAtMs: 1775001600123, ID: "6f1d1f4e-8d5e-4b8a-9a51-0f2a3b4c5d6e"})
	f.Add(good, caller, int64(1775001600123), "6f1d1f4e-8d5e-4b8a-9a51-0f2a3b4c5d6e")
	f.Add(good, "users/other", int64(0), "")
	f.Add(good+"A", caller, int64(-1), "x")
	f.Add(good[:len(good)-1], caller, int64(1<<62), "../../etc/passwd")
	f.Add("", caller, int64(0), "00000000-0000-0000-0000-000000000000")
	f.Add("AQ", "", int64(0), "'; DROP TABLE operations_activity_exports; --")
	f.Fuzz(func(t *testing.T, tok, who string, ms int64, id string) {
		if c, err := decodePageToken(secret, who, tok); err == nil {
			if encodePageToken(secret, who, *c) != tok {
				t.Fatalf("accepted a token that is not the canonical one for its cursor: %q", tok)
			}
			if who != caller || tok != good {
				t.Fatalf("accepted a token this caller was never issued: %q for %q", tok, who)
			}
		}
		// Any cursor the service issues decodes to itself, for its caller only.
		if len(id) != 36 || !validCursorID(id) {
			return
		}
		c := engine.Cursor{GeneratedAtMs: ms, ID: id}
		issued := encodePageToken(secret, who, c)
		if got, err := decodePageToken(secret, who, issued); err != nil || *got != c {
			t.Fatalf("round trip of %+v for %q: %+v %v", c, who, got, err)
		}
		if _, err := decodePageToken(secret, who+"x", issued); err == nil {
			t.Fatalf("token of %q accepted for another caller", who)
		}
	})
}

// validCursorID mirrors what list puts in a cursor: an export id.
func validCursorID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
