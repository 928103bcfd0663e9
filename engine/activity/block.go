// Package activity defines the operations-activity row: its columns (the CSV
// and ClickHouse contract of SPEC §3), the columnar Block that flows from
// ClickHouse through the encoder, and pure validation of its values.
package activity

import (
	"github.com/ClickHouse/ch-go/proto"
)

// Columns are the activity columns in CSV and SELECT order (SPEC §3).
var Columns = [...]string{
	"occurred_at_utc",
	"activity_id",
	"operation_id",
	"family",
	"status",
	"enterprise_ref",
	"client_ref",
	"account_ref",
	"counterparty_ref",
	"currency",
	"amount",
	"fee_currency",
	"fee_amount",
	"settled_at_utc",
	"initiated_by",
	"failure_reason",
	"reference",
}

// UUIDLen is the length of a UUID in its canonical text form.
const UUIDLen = 36

// Block is a columnar batch of activity rows, laid out exactly as ClickHouse
// sends them (see ingest/schema.go for the column types). Timestamps are
// milliseconds since the Unix epoch in UTC; amounts are Decimal(38,18) raw
// integers (value × 10^18). Text columns hold "" for empty.
//
// A Block handed to a callback is borrowed: it is valid only until the
// callback returns, and is reused for the next batch.
type Block struct {
	OccurredAt      proto.ColInt64
	ActivityID      proto.ColFixedStr
	OperationID     proto.ColFixedStr
	Family          proto.ColStr
	Status          proto.ColStr
	EnterpriseRef   proto.ColStr
	ClientRef       proto.ColStr
	AccountRef      proto.ColStr
	CounterpartyRef proto.ColStr
	Currency        proto.ColStr
	Amount          ColDecimal
	FeeCurrency     proto.ColStr
	FeeAmountValues ColDecimal
	FeeAmount       *proto.ColNullable[proto.Decimal128] // Values is &FeeAmountValues
	SettledAtValues proto.ColInt64
	SettledAt       *proto.ColNullable[int64] // Values is &SettledAtValues
	InitiatedBy     proto.ColStr
	FailureReason   proto.ColStr
	Reference       proto.ColStr
}

// NewBlock returns an empty Block ready for decoding or appending.
func NewBlock() *Block {
	b := &Block{}
	b.ActivityID.SetSize(UUIDLen)
	b.OperationID.SetSize(UUIDLen)
	b.FeeAmount = proto.NewColNullable[proto.Decimal128](&b.FeeAmountValues)
	b.SettledAt = proto.NewColNullable[int64](&b.SettledAtValues)
	return b
}

// Rows returns the number of rows in the block.
func (b *Block) Rows() int {
	if n := b.OccurredAt.Rows(); n > 0 {
		return n
	}
	// A narrowed read (ResultsFor) may leave occurred_at_utc unfilled.
	for _, c := range b.columns() {
		if n := c.Rows(); n > 0 {
			return n
		}
	}
	return 0
}

// columns returns the block's columns in Columns order.
func (b *Block) columns() [len(Columns)]proto.ColInput {
	return [...]proto.ColInput{
		&b.OccurredAt, &b.ActivityID, &b.OperationID, &b.Family, &b.Status,
		&b.EnterpriseRef, &b.ClientRef, &b.AccountRef, &b.CounterpartyRef,
		&b.Currency, &b.Amount, &b.FeeCurrency, b.FeeAmount, b.SettledAt,
		&b.InitiatedBy, &b.FailureReason, &b.Reference,
	}
}

// Results binds the block as the result of a SELECT of Columns, in order.
func (b *Block) Results() proto.Results {
	cols := b.columns()
	res := make(proto.Results, len(cols))
	for i, c := range cols {
		res[i] = proto.ResultColumn{Name: Columns[i], Data: c.(proto.ColResult)}
	}
	return res
}

// ResultsFor binds the block as the result of a SELECT of the columns cols
// (indices into Columns), in that order; the other columns stay empty. A nil
// cols is every column.
func (b *Block) ResultsFor(cols []int) proto.Results {
	if cols == nil {
		return b.Results()
	}
	all := b.columns()
	res := make(proto.Results, len(cols))
	for i, c := range cols {
		res[i] = proto.ResultColumn{Name: Columns[c], Data: all[c].(proto.ColResult)}
	}
	return res
}

// Input binds the block as the data of an INSERT of Columns, in order.
func (b *Block) Input() proto.Input {
	cols := b.columns()
	in := make(proto.Input, len(cols))
	for i, c := range cols {
		in[i] = proto.InputColumn{Name: Columns[i], Data: c}
	}
	return in
}

// Reset empties the block, keeping its buffers for reuse.
func (b *Block) Reset() {
	for _, c := range b.columns() {
		c.(proto.Resettable).Reset()
	}
}

// Append adds one row. It is meant for ingest and tests, not the export hot path.
func (b *Block) Append(r *Row) {
	b.OccurredAt.Append(r.OccurredAt)
	b.ActivityID.Append([]byte(r.ActivityID))
	b.OperationID.Append([]byte(r.OperationID))
	b.Family.Append(r.Family)
	b.Status.Append(r.Status)
	b.EnterpriseRef.Append(r.EnterpriseRef)
	b.ClientRef.Append(r.ClientRef)
	b.AccountRef.Append(r.AccountRef)
	b.CounterpartyRef.Append(r.CounterpartyRef)
	b.Currency.Append(r.Currency)
	b.Amount.Append(r.Amount)
	b.FeeCurrency.Append(r.FeeCurrency)
	if r.FeeAmount != nil {
		b.FeeAmount.Append(proto.NewNullable(*r.FeeAmount))
	} else {
		b.FeeAmount.Append(proto.Null[proto.Decimal128]())
	}
	if r.SettledAt != nil {
		b.SettledAt.Append(proto.NewNullable(*r.SettledAt))
	} else {
		b.SettledAt.Append(proto.Null[int64]())
	}
	b.InitiatedBy.Append(r.InitiatedBy)
	b.FailureReason.Append(r.FailureReason)
	b.Reference.Append(r.Reference)
}

// Row is one activity entry in typed form, used by ingest and tests.
// Timestamps are Unix milliseconds (UTC); amounts are Decimal(38,18) raw values.
type Row struct {
	OccurredAt      int64
	ActivityID      string
	OperationID     string
	Family          string
	Status          string
	EnterpriseRef   string
	ClientRef       string
	AccountRef      string
	CounterpartyRef string
	Currency        string
	Amount          proto.Decimal128
	FeeCurrency     string
	FeeAmount       *proto.Decimal128
	SettledAt       *int64
	InitiatedBy     string
	FailureReason   string
	Reference       string
}

// ColDecimal is a Decimal(38,18) column. ch-go names Decimal128 columns
// "Decimal128", which ClickHouse rejects in INSERT headers; the type must be
// spelled with precision and scale.
type ColDecimal struct{ proto.ColDecimal128 }

// Type implements proto.Column.
func (ColDecimal) Type() proto.ColumnType { return "Decimal(38, 18)" }

// ResetExcept empties every column not in cols (indices into Columns), as a
// read narrowed by ResultsFor leaves them. Tests use it to build such blocks.
func (b *Block) ResetExcept(cols []int) {
	all := b.columns()
	for i, c := range all {
		keep := false
		for _, k := range cols {
			keep = keep || k == i
		}
		if !keep {
			c.(proto.Resettable).Reset()
		}
	}
}
