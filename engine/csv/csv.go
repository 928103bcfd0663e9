// Package csv encodes activity blocks as RFC 4180 CSV, the export format of
// SPEC §3.
//
// The encoder is pure and append-style: functions take a destination slice,
// append to it and return the extended slice. They do no I/O, start no
// goroutines and keep no state, so they are safe for concurrent use on
// distinct destinations. The caller owns buffering, flushing and pooling.
//
// Output rules:
//   - comma separator, every record ends with CRLF, UTF-8 passed through
//     unchanged, no byte order mark;
//   - a field is quoted only when it contains a comma, a double quote, CR or
//     LF; double quotes inside a quoted field are doubled;
//   - empty text and null values are empty fields;
//   - timestamps are "2006-01-02T15:04:05.000Z" (UTC, exactly three
//     fractional digits), amounts are exact decimals (activity.AppendDecimal);
//   - formula-injection guard: a value of one of the free-text columns
//     counterparty_ref, currency, fee_currency, failure_reason and reference
//     that starts with '=', '+', '-', '@', TAB or CR gets a leading single
//     quote; the quoting rule then applies to the guarded value. Ids, enums,
//     refs, amounts and timestamps are never altered.
//
// In steady state (dst with enough capacity) encoding does not allocate.
package csv

import (
	"slices"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
)

// AppendHeader appends the header record — the names of activity.Columns
// joined by commas, followed by CRLF — to dst and returns the extended slice.
func AppendHeader(dst []byte) []byte {
	for i, name := range activity.Columns {
		if i > 0 {
			dst = append(dst, ',')
		}
		// Column names are fixed lowercase identifiers: never quoted.
		dst = append(dst, name...)
	}
	return append(dst, '\r', '\n')
}

// rowOverhead is an estimate of the bytes per record besides the text
// columns: two timestamps (24 each), two UUIDs (36 each), two typical amounts
// and 16 commas plus CRLF. It only sizes the up-front growth of dst.
const rowOverhead = 2*24 + 2*activity.UUIDLen + 2*16 + 18

// AppendRows appends the records of rows [from, to) of b to dst, each ending
// with CRLF, and returns the extended slice. Columns are written in
// activity.Columns order under the rules of the package comment.
//
// If dst lacks room, AppendRows grows it once up front by an estimate of the
// output size; it does not allocate otherwise. b is only read, and only
// during the call. AppendRows panics if from or to is outside
// 0 <= from <= to <= n, where n is the row count of every column of b.
func AppendRows(dst []byte, b *activity.Block, from, to int) []byte {
	occurred := b.OccurredAt[from:to]
	n := len(occurred)
	if n == 0 {
		return dst
	}
	amount := b.Amount.ColDecimal128[from:to][:n]
	feeValue := b.FeeAmountValues.ColDecimal128[from:to][:n]
	feeNull := b.FeeAmount.Nulls[from:to][:n]
	settledValue := b.SettledAtValues[from:to][:n]
	settledNull := b.SettledAt.Nulls[from:to][:n]

	dst = slices.Grow(dst, estimate(b, from, to))
	for i := range n {
		r := from + i
		dst = activity.AppendTimestamp(dst, occurred[i])
		dst = append(dst, ',')
		dst = appendField(dst, fixedRow(&b.ActivityID, r))
		dst = append(dst, ',')
		dst = appendField(dst, fixedRow(&b.OperationID, r))
		dst = append(dst, ',')
		dst = appendField(dst, strRow(&b.Family, r))
		dst = append(dst, ',')
		dst = appendField(dst, strRow(&b.Status, r))
		dst = append(dst, ',')
		dst = appendField(dst, strRow(&b.EnterpriseRef, r))
		dst = append(dst, ',')
		dst = appendField(dst, strRow(&b.ClientRef, r))
		dst = append(dst, ',')
		dst = appendField(dst, strRow(&b.AccountRef, r))
		dst = append(dst, ',')
		dst = appendText(dst, strRow(&b.CounterpartyRef, r))
		dst = append(dst, ',')
		dst = appendText(dst, strRow(&b.Currency, r))
		dst = append(dst, ',')
		dst = activity.AppendDecimal(dst, amount[i])
		dst = append(dst, ',')
		dst = appendText(dst, strRow(&b.FeeCurrency, r))
		dst = append(dst, ',')
		if feeNull[i] == 0 {
			dst = activity.AppendDecimal(dst, feeValue[i])
		}
		dst = append(dst, ',')
		if settledNull[i] == 0 {
			dst = activity.AppendTimestamp(dst, settledValue[i])
		}
		dst = append(dst, ',')
		dst = appendField(dst, strRow(&b.InitiatedBy, r))
		dst = append(dst, ',')
		dst = appendText(dst, strRow(&b.FailureReason, r))
		dst = append(dst, ',')
		dst = appendText(dst, strRow(&b.Reference, r))
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// estimate returns the approximate size of the records of rows [from, to):
// the text bytes of the string columns plus rowOverhead per row. Quoting and
// guarding may add a little; append covers that.
func estimate(b *activity.Block, from, to int) int {
	n := (to - from) * rowOverhead
	for _, c := range [...]*proto.ColStr{
		&b.Family, &b.Status, &b.EnterpriseRef, &b.ClientRef, &b.AccountRef,
		&b.CounterpartyRef, &b.Currency, &b.FeeCurrency, &b.InitiatedBy,
		&b.FailureReason, &b.Reference,
	} {
		// Rows of a decoded or appended column are contiguous in Buf.
		if span := c.Pos[to-1].End - c.Pos[from].Start; span > 0 {
			n += span
		}
	}
	return n
}

// strRow returns the bytes of row i of c without copying.
func strRow(c *proto.ColStr, i int) []byte {
	p := c.Pos[i]
	return c.Buf[p.Start:p.End:p.End]
}

// fixedRow returns the bytes of row i of c without copying.
func fixedRow(c *proto.ColFixedStr, i int) []byte {
	return c.Buf[i*c.Size : (i+1)*c.Size : (i+1)*c.Size]
}
