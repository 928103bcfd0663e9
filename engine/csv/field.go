package csv

import (
	"bytes"
	"encoding/binary"
)

// quoteMask has bit c set for each byte c that forces a field to be quoted
// (RFC 4180 §2.6): comma, double quote, CR and LF. All are below 64, so one
// shift and test classifies a byte.
const quoteMask uint64 = 1<<',' | 1<<'"' | 1<<'\r' | 1<<'\n'

// SWAR constants: one byte value repeated in every lane of a uint64.
const (
	lanes01    = 0x0101010101010101
	lanes80    = 0x8080808080808080
	lanesComma = ',' * lanes01
	lanesQuote = '"' * lanes01
	lanesCR    = '\r' * lanes01
	lanesLF    = '\n' * lanes01
)

// specialLanes returns, in the high bit of each byte lane, a mark that is
// non-zero exactly when some byte of w is a comma, a double quote, CR or LF.
// It is the zero-byte test of Hacker's Delight §6-1 applied to w XOR each
// target; a borrow may also mark lanes above a true match, which does not
// change whether the result is zero.
func specialLanes(w uint64) uint64 {
	a, b, c, d := w^lanesComma, w^lanesQuote, w^lanesCR, w^lanesLF
	return ((a - lanes01) &^ a) | ((b - lanes01) &^ b) | ((c - lanes01) &^ c) | ((d - lanes01) &^ d)
}

// needsQuote reports whether v contains a comma, a double quote, CR or LF.
// It tests sixteen bytes at a time without branching per byte, the last
// 8..15 bytes as two overlapping words, and strings under 8 bytes byte by byte.
func needsQuote(v []byte) bool {
	for len(v) >= 16 {
		w0 := binary.LittleEndian.Uint64(v)
		w1 := binary.LittleEndian.Uint64(v[8:])
		if (specialLanes(w0)|specialLanes(w1))&lanes80 != 0 {
			return true
		}
		v = v[16:]
	}
	if n := len(v); n >= 8 {
		// 8..15 bytes left: two possibly overlapping words cover them all.
		w0 := binary.LittleEndian.Uint64(v)
		w1 := binary.LittleEndian.Uint64(v[n-8:])
		return (specialLanes(w0)|specialLanes(w1))&lanes80 != 0
	}
	for _, c := range v {
		if c < 64 && quoteMask>>c&1 != 0 {
			return true
		}
	}
	return false
}

// guarded reports whether a text value starting with c must be prefixed
// with a single quote so spreadsheets do not read it as a formula.
func guarded(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// appendField appends v as one CSV field, quoted only if needed.
func appendField(dst, v []byte) []byte {
	if !needsQuote(v) {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	return appendQuoted(dst, v)
}

// appendText appends the free-text value v as one CSV field: guarded with a
// leading single quote if it starts with a formula character, then quoted
// only if needed.
func appendText(dst, v []byte) []byte {
	if len(v) == 0 || !guarded(v[0]) {
		return appendField(dst, v)
	}
	if !needsQuote(v) {
		dst = append(dst, '\'')
		return append(dst, v...)
	}
	dst = append(dst, '"', '\'')
	return appendQuoted(dst, v)
}

// appendQuoted appends the body of a quoted field — v with each double quote
// doubled — and the closing quote. The opening quote is the caller's.
func appendQuoted(dst, v []byte) []byte {
	for {
		i := bytes.IndexByte(v, '"')
		if i < 0 {
			break
		}
		dst = append(dst, v[:i+1]...)
		dst = append(dst, '"')
		v = v[i+1:]
	}
	dst = append(dst, v...)
	return append(dst, '"')
}
