package csv

import (
	"slices"
	"time"

	"github.com/exportd/exportd/engine/activity"
)

// BOM is the UTF-8 byte order mark that starts a CSV with csv_bom (SPEC §7):
// spreadsheet programs then read the file as UTF-8.
const BOM = "\xef\xbb\xbf"

// Layout selects the columns of a CSV and the zone its timestamps are
// rendered in (SPEC §7). The zero value is every column in activity.Columns
// order, in UTC: the output of AppendHeader and AppendRows.
type Layout struct {
	// Columns are indices into activity.Columns, in output order; nil is all.
	Columns []int
	// Location renders timestamps with its offset at each instant
	// (activity.AppendTimestampIn); nil is UTC ("...Z").
	Location *time.Location
}

func (l *Layout) plain() bool {
	return l.Columns == nil && (l.Location == nil || l.Location == time.UTC)
}

// AppendHeaderLayout appends the header record of l — the names of its
// columns joined by commas, followed by CRLF.
func AppendHeaderLayout(dst []byte, l Layout) []byte {
	if l.Columns == nil {
		return AppendHeader(dst)
	}
	for i, c := range l.Columns {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, activity.Columns[c]...)
	}
	return append(dst, '\r', '\n')
}

// AppendRowsLayout is AppendRows for the columns and zone of l: only the
// columns of l are read from b (the others may be empty, as a narrowed read
// leaves them). Same contract otherwise: no allocation once dst has room.
func AppendRowsLayout(dst []byte, b *activity.Block, from, to int, l Layout) []byte {
	if l.plain() {
		return AppendRows(dst, b, from, to)
	}
	if to <= from {
		return dst
	}
	dst = growFor(dst, b, from, to, l.Columns)
	cols := l.Columns
	if cols == nil {
		cols = allColumns[:]
	}
	if len(cols) == 1 {
		// A one-column record with an empty value would be an empty line,
		// which CSV readers skip: it is written as "" (as Python's csv does),
		// so the file keeps one line per row.
		for r := from; r < to; r++ {
			n := len(dst)
			dst = appendCell(dst, b, cols[0], r, l.Location)
			if len(dst) == n {
				dst = append(dst, '"', '"')
			}
			dst = append(dst, '\r', '\n')
		}
		return dst
	}
	for r := from; r < to; r++ {
		for i, c := range cols {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendCell(dst, b, c, r, l.Location)
		}
		dst = append(dst, '\r', '\n')
	}
	return dst
}

var allColumns = func() (a [activity.NumColumns]int) {
	for i := range a {
		a[i] = i
	}
	return a
}()

// appendCell appends column c of row r under the rules of the package comment.
func appendCell(dst []byte, b *activity.Block, c, r int, loc *time.Location) []byte {
	switch c {
	case activity.ColOccurredAt:
		return activity.AppendTimestampIn(dst, b.OccurredAt[r], loc)
	case activity.ColActivityID:
		return appendField(dst, fixedRow(&b.ActivityID, r))
	case activity.ColOperationID:
		return appendField(dst, fixedRow(&b.OperationID, r))
	case activity.ColFamily:
		return appendField(dst, strRow(&b.Family, r))
	case activity.ColStatus:
		return appendField(dst, strRow(&b.Status, r))
	case activity.ColEnterpriseRef:
		return appendField(dst, strRow(&b.EnterpriseRef, r))
	case activity.ColClientRef:
		return appendField(dst, strRow(&b.ClientRef, r))
	case activity.ColAccountRef:
		return appendField(dst, strRow(&b.AccountRef, r))
	case activity.ColCounterpartyRef:
		return appendText(dst, strRow(&b.CounterpartyRef, r))
	case activity.ColCurrency:
		return appendText(dst, strRow(&b.Currency, r))
	case activity.ColAmount:
		return activity.AppendDecimal(dst, b.Amount.ColDecimal128[r])
	case activity.ColFeeCurrency:
		return appendText(dst, strRow(&b.FeeCurrency, r))
	case activity.ColFeeAmount:
		if b.FeeAmount.Nulls[r] == 0 {
			return activity.AppendDecimal(dst, b.FeeAmountValues.ColDecimal128[r])
		}
		return dst
	case activity.ColSettledAt:
		if b.SettledAt.Nulls[r] == 0 {
			return activity.AppendTimestampIn(dst, b.SettledAtValues[r], loc)
		}
		return dst
	case activity.ColInitiatedBy:
		return appendField(dst, strRow(&b.InitiatedBy, r))
	case activity.ColFailureReason:
		return appendText(dst, strRow(&b.FailureReason, r))
	case activity.ColReference:
		return appendText(dst, strRow(&b.Reference, r))
	}
	panic("BUG: column index out of range")
}

// growFor grows dst once by an estimate of the records of rows [from, to)
// of the columns cols (nil: all): the text bytes of the string columns plus
// a fixed width for the others, and separators.
func growFor(dst []byte, b *activity.Block, from, to int, cols []int) []byte {
	if cols == nil {
		return slices.Grow(dst, estimate(b, from, to)+(to-from)*6) // offsets of a zone
	}
	per := len(cols) + 1
	n := 0
	for _, c := range cols {
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
	return slices.Grow(dst, n+(to-from)*per)
}
