package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
)

// Page tokens are opaque and tamper-proof: base64url (no padding) of
//
//	version (1 byte) | generated_at_ms (8 bytes, big endian) | export id (36 bytes) | HMAC-SHA256 (32 bytes)
//
// where the MAC, keyed by Config.PageSecret, covers a domain label, the
// caller's subject and the cursor. A token is therefore only good for the
// caller it was issued to; any change to it fails the MAC.
const (
	pageTokenVersion = 1
	pageCursorLen    = 1 + 8 + activity.UUIDLen
	pageTokenLen     = pageCursorLen + sha256.Size
	pageTokenMaxText = 128 // base64 of pageTokenLen is 103 characters
)

var errPageToken = errors.New("invalid page token")

func pageMAC(secret []byte, caller string, cursor []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("exportd page token\x00"))
	m.Write([]byte(caller))
	m.Write([]byte{0})
	m.Write(cursor)
	return m.Sum(nil)
}

// encodePageToken returns the token for the page after c, for caller.
func encodePageToken(secret []byte, caller string, c engine.Cursor) string {
	b := make([]byte, 0, pageTokenLen)
	b = append(b, pageTokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(c.GeneratedAtMs))
	b = append(b, c.ID...)
	b = append(b, pageMAC(secret, caller, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken verifies a token issued to caller and returns its cursor.
func decodePageToken(secret []byte, caller, tok string) (*engine.Cursor, error) {
	if len(tok) == 0 || len(tok) > pageTokenMaxText {
		return nil, errPageToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) != pageTokenLen || b[0] != pageTokenVersion {
		return nil, errPageToken
	}
	cursor, mac := b[:pageCursorLen], b[pageCursorLen:]
	if !hmac.Equal(mac, pageMAC(secret, caller, cursor)) {
		return nil, errPageToken
	}
	id := string(cursor[9:])
	if !activity.ValidUUID(id) {
		return nil, errPageToken
	}
	return &engine.Cursor{GeneratedAtMs: int64(binary.BigEndian.Uint64(cursor[1:9])), ID: id}, nil
}
