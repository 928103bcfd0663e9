// Package parquet encodes activity blocks as one Apache Parquet file, the
// parquet format of SPEC §7, with github.com/parquet-go/parquet-go.
//
// Schema (one leaf per selected column, in the selected order):
//   - occurred_at_utc, settled_at_utc: INT64 TIMESTAMP(MILLIS,
//     isAdjustedToUTC=true);
//   - amount, fee_amount: FIXED_LEN_BYTE_ARRAY(16) DECIMAL(38,18), the raw
//     Decimal(38,18) value as big-endian two's complement (exact);
//   - every other column: BYTE_ARRAY STRING (UTF-8, as stored; no formula
//     guard, which is a CSV concern);
//   - optional columns (activity.Optional) are OPTIONAL and null when empty;
//     the others REQUIRED.
//
// Low-cardinality text columns (enums, refs, currencies) are
// dictionary-encoded. Rows are buffered in row groups of at most
// Layout.RowGroupRows rows, so the encoder's memory is bounded whatever the
// export size. Output is byte-for-byte deterministic for the same rows and
// layout: fixed created_by, no timestamps or random values in the metadata,
// single-threaded codecs.
//
// Unlike engine/csv the encoder keeps state (the open file): an Encoder is
// used by one goroutine. It still does no I/O of its own: bytes are appended
// to the caller's slices.
package parquet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/gzip"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/exportd/exportd/engine/activity"
)

// DefaultRowGroupRows bounds a row group, the encoder's buffered state:
// 16384 rows of all 17 columns are ~2.5 MB uncompressed for typical
// activity, so a flushed row group fits the pipeline's pooled chunks (which
// drop buffers over 4 MiB) and the export's peak RSS stays flat and well
// under 128 MiB, while groups stay large enough for readers' column pruning.
const DefaultRowGroupRows = 1 << 14

// CreatedBy is the file's created_by: fixed, so the bytes do not depend on
// the build.
const CreatedBy = "exportd"

// Layout configures an Encoder. The zero value is every column, no page
// compression, DefaultRowGroupRows.
type Layout struct {
	// Columns are indices into activity.Columns, in output order; nil is all.
	Columns []int
	// Compression is the page codec: "none" (or ""), "gzip" or "zstd".
	Compression string
	// RowGroupRows caps the rows of a row group (default DefaultRowGroupRows).
	RowGroupRows int
}

// Encoder writes one Parquet file. Append* methods append the bytes the file
// produced so far to dst and return it; AppendFooter ends the file.
type Encoder struct {
	w       *pq.Writer
	out     sink
	cols    []int
	perRow  int // rows per row group
	inGroup int
	rows    []pq.Row
	vals    []pq.Value // backing store of rows
	fixed   []byte     // big-endian decimals of the current batch
	closed  bool
}

// sink is the writer's output: an append target swapped in per call.
type sink struct{ buf []byte }

func (s *sink) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	return len(p), nil
}

// New returns an encoder for l.
func New(l Layout) (*Encoder, error) {
	codec, err := codecOf(l.Compression)
	if err != nil {
		return nil, err
	}
	cols := l.Columns
	if cols == nil {
		cols = activity.AllColumns()
	}
	for _, c := range cols {
		if c < 0 || c >= activity.NumColumns {
			return nil, fmt.Errorf("column index %d out of range", c)
		}
	}
	if l.RowGroupRows <= 0 {
		l.RowGroupRows = DefaultRowGroupRows
	}
	e := &Encoder{cols: cols, perRow: l.RowGroupRows}
	cfg, err := pq.NewWriterConfig(
		pq.NewSchema("operations_activity", Schema(cols)),
		pq.Compression(codec),
		createdBy{},
		pq.MaxRowsPerRowGroup(int64(l.RowGroupRows)),
	)
	if err != nil {
		return nil, fmt.Errorf("parquet writer config: %w", err)
	}
	e.w = pq.NewWriter(&e.out, cfg)
	return e, nil
}

type createdBy struct{}

func (createdBy) ConfigureWriter(c *pq.WriterConfig) { c.CreatedBy = CreatedBy }

func codecOf(name string) (compress.Codec, error) {
	switch name {
	case "", "none":
		return &uncompressed.Codec{}, nil
	case "gzip":
		return &gzip.Codec{Level: gzip.DefaultCompression}, nil
	case "zstd":
		// SpeedFastest and one thread, as the stream compressor (engine):
		// EncodeAll is deterministic at any level.
		return &zstd.Codec{Level: zstd.SpeedFastest, Concurrency: 1}, nil
	}
	return nil, fmt.Errorf("unsupported parquet compression %q", name)
}

// Schema returns the file schema of the columns cols, in that order.
func Schema(cols []int) pq.Node {
	fields := make([]pq.Field, len(cols))
	for i, c := range cols {
		fields[i] = &field{Node: leaf(c), name: activity.Columns[c]}
	}
	return &group{fields: fields}
}

// dictionaryColumns are worth dictionary encoding: few distinct values.
var dictionaryColumns = [activity.NumColumns]bool{
	activity.ColFamily: true, activity.ColStatus: true, activity.ColEnterpriseRef: true, activity.ColClientRef: true,
	activity.ColAccountRef: true, activity.ColCurrency: true, activity.ColFeeCurrency: true, activity.ColInitiatedBy: true,
}

func leaf(c int) pq.Node {
	var n pq.Node
	switch c {
	case activity.ColOccurredAt, activity.ColSettledAt:
		n = pq.TimestampAdjusted(pq.Millisecond, true)
	case activity.ColAmount, activity.ColFeeAmount:
		n = pq.Decimal(activity.Scale, 38, pq.FixedLenByteArrayType(16))
	default:
		n = pq.String()
		if dictionaryColumns[c] {
			n = pq.Encoded(n, &pq.RLEDictionary)
		}
	}
	if activity.Optional[c] {
		return pq.Optional(n)
	}
	return pq.Required(n)
}

// group is a parquet group whose fields keep the given order (pq.Group
// sorts them by name; the file must follow the selection).
type group struct{ fields []pq.Field }

func (g *group) ID() int                           { return 0 }
func (g *group) String() string                    { return "group" }
func (g *group) Type() pq.Type                     { return pq.Group{}.Type() }
func (g *group) Optional() bool                    { return false }
func (g *group) Repeated() bool                    { return false }
func (g *group) Required() bool                    { return true }
func (g *group) Leaf() bool                        { return false }
func (g *group) Fields() []pq.Field                { return g.fields }
func (g *group) Encoding() encoding.Encoding       { return nil }
func (g *group) Compression() compress.Codec       { return nil }
func (g *group) GoType() reflect.Type              { return goType(g.fields) }
func (f *field) Name() string                      { return f.name }
func (f *field) Value(reflect.Value) reflect.Value { return reflect.Value{} } // rows are written as values, never reflected

type field struct {
	pq.Node
	name string
}

// goType is a struct type with one field per column (parquet-go asks for
// it when it needs a Go representation; the encoder never does).
func goType(fields []pq.Field) reflect.Type {
	sf := make([]reflect.StructField, len(fields))
	for i, f := range fields {
		sf[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: f.GoType(), Tag: reflect.StructTag(`parquet:"` + f.Name() + `"`)}
	}
	return reflect.StructOf(sf)
}

// AppendRows adds rows [from, to) of b to the file and appends to dst the
// bytes the file produced meanwhile (a row group when one fills up). Only
// the encoder's columns are read from b.
func (e *Encoder) AppendRows(dst []byte, b *activity.Block, from, to int) ([]byte, error) {
	if e.closed {
		return dst, errors.New("parquet encoder closed")
	}
	e.out.buf = dst
	defer func() { e.out.buf = nil }()
	for from < to {
		n := min(to-from, e.perRow-e.inGroup)
		if err := e.write(b, from, from+n); err != nil {
			return e.out.buf, err
		}
		from += n
		if e.inGroup += n; e.inGroup == e.perRow {
			if err := e.w.Flush(); err != nil {
				return e.out.buf, fmt.Errorf("flush parquet row group: %w", err)
			}
			e.inGroup = 0
		}
	}
	return e.out.buf, nil
}

// write hands rows [from, to) to the writer as values, reusing buffers.
func (e *Encoder) write(b *activity.Block, from, to int) error {
	n, nc := to-from, len(e.cols)
	if cap(e.vals) < n*nc {
		e.vals = make([]pq.Value, n*nc)
		e.rows = make([]pq.Row, n)
	}
	if need := 32 * n; cap(e.fixed) < need {
		e.fixed = make([]byte, need)
	}
	vals, rows, fixed := e.vals[:n*nc], e.rows[:n], e.fixed[:32*n]
	for i := range n {
		rows[i] = vals[i*nc : (i+1)*nc : (i+1)*nc]
	}
	for j, c := range e.cols {
		for i := range n {
			rows[i][j] = value(b, c, from+i, fixed[32*i:32*i+32]).Level(0, 0, j)
		}
		if activity.Optional[c] {
			for i := range n {
				if !rows[i][j].IsNull() {
					rows[i][j] = rows[i][j].Level(0, 1, j)
				}
			}
		}
	}
	if _, err := e.w.WriteRows(rows); err != nil {
		return fmt.Errorf("write parquet rows: %w", err)
	}
	return nil
}

// value returns column c of row r; decimals are written into scratch (32
// bytes: amount, fee_amount), which must stay valid until the rows are written.
func value(b *activity.Block, c, r int, scratch []byte) pq.Value {
	switch c {
	case activity.ColOccurredAt:
		return pq.Int64Value(b.OccurredAt[r])
	case activity.ColSettledAt:
		if b.SettledAt.Nulls[r] != 0 {
			return pq.NullValue()
		}
		return pq.Int64Value(b.SettledAtValues[r])
	case activity.ColAmount:
		d := b.Amount.ColDecimal128[r]
		binary.BigEndian.PutUint64(scratch[0:], d.High)
		binary.BigEndian.PutUint64(scratch[8:], d.Low)
		return pq.FixedLenByteArrayValue(scratch[0:16:16])
	case activity.ColFeeAmount:
		if b.FeeAmount.Nulls[r] != 0 {
			return pq.NullValue()
		}
		d := b.FeeAmountValues.ColDecimal128[r]
		binary.BigEndian.PutUint64(scratch[16:], d.High)
		binary.BigEndian.PutUint64(scratch[24:], d.Low)
		return pq.FixedLenByteArrayValue(scratch[16:32:32])
	case activity.ColActivityID:
		s := b.ActivityID.Size
		return pq.ByteArrayValue(b.ActivityID.Buf[r*s : (r+1)*s : (r+1)*s])
	case activity.ColOperationID:
		s := b.OperationID.Size
		return pq.ByteArrayValue(b.OperationID.Buf[r*s : (r+1)*s : (r+1)*s])
	}
	col := b.StrColumn(c)
	if col == nil {
		panic("BUG: column index out of range")
	}
	p := col.Pos[r]
	if p.End == p.Start && activity.Optional[c] {
		return pq.NullValue()
	}
	return pq.ByteArrayValue(col.Buf[p.Start:p.End:p.End])
}

// AppendFooter ends the file (the last row group, the footer) and appends
// the remaining bytes to dst. The encoder is unusable afterwards.
func (e *Encoder) AppendFooter(dst []byte) ([]byte, error) {
	if e.closed {
		return dst, errors.New("parquet encoder closed")
	}
	e.closed = true
	e.out.buf = dst
	defer func() { e.out.buf = nil }()
	if err := e.w.Close(); err != nil {
		return e.out.buf, fmt.Errorf("close parquet file: %w", err)
	}
	return e.out.buf, nil
}
