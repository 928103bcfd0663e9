// Package jsonl encodes activity blocks as JSON Lines, the jsonl format of
// SPEC §7.
//
// Like engine/csv it is pure and append-style: functions append to a
// destination slice and return it, do no I/O, start no goroutines and keep no
// state. In steady state (dst with room) encoding does not allocate.
//
// Output rules:
//   - one JSON object per row, LF after each (no CR), UTF-8, no BOM;
//   - keys are the selected columns, in the selected order;
//   - every value is a JSON string holding exactly the CSV's text (amounts
//     exact, timestamps with the layout's zone), without the CSV's formula
//     guard and without CSV quoting;
//   - an empty value of an optional column (activity.Optional) is null; an
//     empty value of another column (never valid at ingest) is "";
//   - strings escape '"', '\\' and the control characters below U+0020
//     (\b \f \n \r \t, else \u00XX); other characters are written as UTF-8.
//     Bytes that are not valid UTF-8 (never valid at ingest) become \ufffd,
//     one per byte, as encoding/json does, so every line is valid JSON.
package jsonl

import (
	"encoding/binary"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/exportd/exportd/engine/activity"
)

// Layout selects the columns and the zone of timestamps. The zero value is
// every column in activity.Columns order, in UTC.
type Layout struct {
	// Columns are indices into activity.Columns, in output order; nil is all.
	Columns []int
	// Location renders timestamps with its offset at each instant; nil is UTC.
	Location *time.Location
}

var allColumns = func() (a [activity.NumColumns]int) {
	for i := range a {
		a[i] = i
	}
	return a
}()

// keys holds `,"name":` for each column (names are fixed lowercase
// identifiers: nothing to escape); the first key of a row drops the comma.
var keys = func() (k [activity.NumColumns]string) {
	for i, name := range activity.Columns {
		k[i] = `,"` + name + `":`
	}
	return k
}()

// AppendRows appends one JSON object and LF per row of [from, to) of b to
// dst. Only the columns of l are read (a narrowed block is fine). It grows
// dst once by an estimate and does not allocate otherwise. It panics if the
// range is outside the block.
func AppendRows(dst []byte, b *activity.Block, from, to int, l Layout) []byte {
	if to <= from {
		return dst
	}
	cols := l.Columns
	if cols == nil {
		cols = allColumns[:]
	}
	dst = slices.Grow(dst, estimate(b, from, to, cols))
	for r := from; r < to; r++ {
		dst = append(dst, '{')
		for i, c := range cols {
			k := keys[c]
			if i == 0 {
				k = k[1:]
			}
			dst = append(dst, k...)
			dst = appendValue(dst, b, c, r, l.Location)
		}
		dst = append(dst, '}', '\n')
	}
	return dst
}

// appendValue appends column c of row r as a JSON string or null.
func appendValue(dst []byte, b *activity.Block, c, r int, loc *time.Location) []byte {
	switch c {
	case activity.ColOccurredAt:
		dst = append(dst, '"')
		dst = activity.AppendTimestampIn(dst, b.OccurredAt[r], loc)
		return append(dst, '"')
	case activity.ColActivityID:
		return appendString(dst, fixedRow(b.ActivityID.Buf, b.ActivityID.Size, r), false)
	case activity.ColOperationID:
		return appendString(dst, fixedRow(b.OperationID.Buf, b.OperationID.Size, r), false)
	case activity.ColAmount:
		dst = append(dst, '"')
		dst = activity.AppendDecimal(dst, b.Amount.ColDecimal128[r])
		return append(dst, '"')
	case activity.ColFeeAmount:
		if b.FeeAmount.Nulls[r] != 0 {
			return append(dst, "null"...)
		}
		dst = append(dst, '"')
		dst = activity.AppendDecimal(dst, b.FeeAmountValues.ColDecimal128[r])
		return append(dst, '"')
	case activity.ColSettledAt:
		if b.SettledAt.Nulls[r] != 0 {
			return append(dst, "null"...)
		}
		dst = append(dst, '"')
		dst = activity.AppendTimestampIn(dst, b.SettledAtValues[r], loc)
		return append(dst, '"')
	}
	s := b.StrColumn(c)
	if s == nil {
		panic("BUG: column index out of range")
	}
	p := s.Pos[r]
	return appendString(dst, s.Buf[p.Start:p.End:p.End], activity.Optional[c])
}

func fixedRow(buf []byte, size, r int) []byte { return buf[r*size : (r+1)*size : (r+1)*size] }

// appendString appends v as a JSON string; an empty v is null when optional.
func appendString(dst, v []byte, optional bool) []byte {
	if len(v) == 0 && optional {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	if plain(v) {
		dst = append(dst, v...)
	} else {
		dst = appendEscaped(dst, v)
	}
	return append(dst, '"')
}

// SWAR constants (one byte value in every lane of a uint64).
const (
	lanes01    = 0x0101010101010101
	lanes80    = 0x8080808080808080
	lanes20    = 0x20 * lanes01
	lanesQuote = '"' * lanes01
	lanesBack  = '\\' * lanes01
)

// special marks, in the high bit of a lane, a byte below 0x20, a '"', a '\\'
// or a byte with the high bit set (non-ASCII: validated on the slow path).
// Borrows may mark lanes above a true mark; only zero versus non-zero counts.
func special(w uint64) uint64 {
	q, s := w^lanesQuote, w^lanesBack
	return ((w - lanes20) &^ w) | ((q - lanes01) &^ q) | ((s - lanes01) &^ s) | w
}

// plain reports whether v is printable ASCII without '"' or '\\', eight
// bytes at a time.
func plain(v []byte) bool {
	for len(v) >= 8 {
		if special(binary.LittleEndian.Uint64(v))&lanes80 != 0 {
			return false
		}
		v = v[8:]
	}
	for _, c := range v {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends the body of a JSON string for v (no quotes).
func appendEscaped(dst, v []byte) []byte {
	start := 0
	for i := 0; i < len(v); {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x80 {
			i++
			continue
		}
		if c >= 0x80 {
			r, size := utf8.DecodeRune(v[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, v[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, v[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	return append(dst, v[start:]...)
}

// estimate sizes the output of rows [from, to): key bytes, the text of the
// string columns, fixed widths for the others, quotes and separators.
func estimate(b *activity.Block, from, to int, cols []int) int {
	per := 3
	n := 0
	for _, c := range cols {
		per += len(activity.Columns[c]) + 6
		if s := b.StrColumn(c); s != nil {
			if span := s.Pos[to-1].End - s.Pos[from].Start; span > 0 {
				n += span
			}
			continue
		}
		switch c {
		case activity.ColOccurredAt, activity.ColSettledAt:
			per += 29
		case activity.ColActivityID, activity.ColOperationID:
			per += activity.UUIDLen
		default:
			per += 16
		}
	}
	return n + (to-from)*per
}
