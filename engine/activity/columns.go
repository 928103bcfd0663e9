package activity

import (
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ClickHouse/ch-go/proto"
)

// Column indices into Columns.
const (
	ColOccurredAt = iota
	ColActivityID
	ColOperationID
	ColFamily
	ColStatus
	ColEnterpriseRef
	ColClientRef
	ColAccountRef
	ColCounterpartyRef
	ColCurrency
	ColAmount
	ColFeeCurrency
	ColFeeAmount
	ColSettledAt
	ColInitiatedBy
	ColFailureReason
	ColReference
	NumColumns
)

// Optional marks the columns that may be empty (null in JSON Lines and
// Parquet): the seven ingest accepts absent, null or "" for.
var Optional = [NumColumns]bool{
	ColClientRef: true, ColCounterpartyRef: true, ColFeeCurrency: true, ColFeeAmount: true,
	ColSettledAt: true, ColFailureReason: true, ColReference: true,
}

// ColumnIndex returns the index of the column named name, or -1.
func ColumnIndex(name string) int {
	for i, c := range Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// AllColumns returns the indices of every column in Columns order (a new slice).
func AllColumns() []int {
	all := make([]int, NumColumns)
	for i := range all {
		all[i] = i
	}
	return all
}

// ValidCurrency reports whether s is a currency as ingest accepts it: 1 to
// 16 characters, none of them whitespace or a control character.
func ValidCurrency(s string) bool {
	n := 0
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
		n++
	}
	return n >= 1 && n <= 16
}

// AppendTimestampIn appends Unix milliseconds as RFC 3339 with exactly three
// fractional digits in loc: the wall clock of loc at that instant followed by
// its offset ("2026-04-01T12:15:30.123+02:00"), or "Z" when the offset is
// zero (as time.Format's "Z07:00"). A nil loc is UTC. Offsets with seconds
// (local mean time before 1900) are truncated to minutes, as time.Format
// does. It does not allocate when dst has room.
func AppendTimestampIn(dst []byte, ms int64, loc *time.Location) []byte {
	if loc == nil || loc == time.UTC {
		return AppendTimestamp(dst, ms)
	}
	t := time.UnixMilli(ms).In(loc)
	_, off := t.Zone()
	if off == 0 {
		return AppendTimestamp(dst, ms)
	}
	wall := ms + int64(off)*1000
	if wall < MinTimestamp-366*86_400_000 || wall > MaxTimestamp {
		// A wall clock outside four-digit years (9999-12-31 east of UTC):
		// time.Format's spelling ("10000-01-01T..."), rare, still no allocation.
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	}
	dst = AppendTimestamp(dst, wall)
	dst = dst[:len(dst)-1] // the 'Z'
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	m := off / 60
	var b [6]byte
	b[0] = sign
	put2(b[1:], int64(m/60))
	b[3] = ':'
	put2(b[4:], int64(m%60))
	return append(dst, b[:]...)
}

// StrColumn returns the string column at index c (of Columns), or nil for the
// columns that are not strings.
func (b *Block) StrColumn(c int) *proto.ColStr {
	switch c {
	case ColFamily:
		return &b.Family
	case ColStatus:
		return &b.Status
	case ColEnterpriseRef:
		return &b.EnterpriseRef
	case ColClientRef:
		return &b.ClientRef
	case ColAccountRef:
		return &b.AccountRef
	case ColCounterpartyRef:
		return &b.CounterpartyRef
	case ColCurrency:
		return &b.Currency
	case ColFeeCurrency:
		return &b.FeeCurrency
	case ColInitiatedBy:
		return &b.InitiatedBy
	case ColFailureReason:
		return &b.FailureReason
	case ColReference:
		return &b.Reference
	}
	return nil
}
