package engine_test

import (
	"bytes"
	"context"
	encsv "encoding/csv"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
)

// readParquet reads a file with Apache Arrow's Parquet implementation (not
// the one that wrote it), checks its schema against SPEC §7 and returns the
// rows as cells rendered like the CSV (nil for null), plus the row group count.
func readParquet(t *testing.T, data []byte, cols []string) ([][]*string, int) {
	t.Helper()
	rdr, err := pqfile.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("arrow parquet reader: %v", err)
	}
	defer rdr.Close()
	sc := rdr.MetaData().Schema
	if sc.NumColumns() != len(cols) {
		t.Fatalf("%d columns, want %d", sc.NumColumns(), len(cols))
	}
	for i, name := range cols {
		c := sc.Column(i)
		optional := c.MaxDefinitionLevel() == 1
		if c.Name() != name || optional != activity.Optional[activity.ColumnIndex(name)] || c.MaxDefinitionLevel() > 1 {
			t.Fatalf("column %d: %s (max def %d), want %s optional=%v", i, c.Name(), c.MaxDefinitionLevel(), name, !optional)
		}
		switch lt := c.LogicalType().(type) {
		case pqschema.TimestampLogicalType:
			if !strings.HasSuffix(name, "_at_utc") || c.PhysicalType().String() != "INT64" || !lt.IsAdjustedToUTC() || lt.TimeUnit() != pqschema.TimeUnitMillis {
				t.Fatalf("column %s: %s %s", name, c.PhysicalType(), lt)
			}
		case pqschema.DecimalLogicalType:
			if (name != "amount" && name != "fee_amount") || c.PhysicalType().String() != "FIXED_LEN_BYTE_ARRAY" || c.TypeLength() != 16 ||
				lt.Precision() != 38 || lt.Scale() != 18 {
				t.Fatalf("column %s: %s(%d) %s", name, c.PhysicalType(), c.TypeLength(), lt)
			}
		case pqschema.StringLogicalType:
			if strings.HasSuffix(name, "_at_utc") || strings.HasSuffix(name, "amount") || c.PhysicalType().String() != "BYTE_ARRAY" {
				t.Fatalf("column %s: %s STRING", name, c.PhysicalType())
			}
		default:
			t.Fatalf("column %s: logical type %v", name, c.LogicalType())
		}
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1000}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("read table: %v", err)
	}
	defer tbl.Release()
	n := int(tbl.NumRows())
	out := make([][]*string, n)
	for i := range out {
		out[i] = make([]*string, len(cols))
	}
	for j := range cols {
		r := 0
		for _, chunk := range tbl.Column(j).Data().Chunks() {
			for k := 0; k < chunk.Len(); k, r = k+1, r+1 {
				if chunk.IsNull(k) {
					continue
				}
				var v string
				switch a := chunk.(type) {
				case *array.Timestamp:
					v = time.UnixMilli(int64(a.Value(k))).UTC().Format("2006-01-02T15:04:05.000Z")
				case *array.Decimal128:
					v = decimalText(a.Value(k).BigInt())
				case *array.String:
					v = a.Value(k)
				default:
					t.Fatalf("column %s: arrow type %s", cols[j], chunk.DataType())
				}
				out[r][j] = &v
			}
		}
	}
	return out, rdr.NumRowGroups()
}

// decimalText prints v × 10^-18 by string rules: no exponent, no trailing
// fractional zeros, "0" never "-0".
func decimalText(v *big.Int) string {
	neg := v.Sign() < 0
	s := new(big.Int).Abs(v).String()
	for len(s) < 19 {
		s = "0" + s
	}
	ip, fp := s[:len(s)-18], strings.TrimRight(s[len(s)-18:], "0")
	if fp != "" {
		ip += "." + fp
	}
	if neg {
		ip = "-" + ip
	}
	return ip
}

var _ arrow.Table // the reader's types are arrow's

// TestParquetMatchesCSV: for each option set (no zone: parquet timestamps
// are instants), the Parquet file of a request, read back with Apache
// Arrow's reader, equals the CSV of the same request row by row: decimals
// exact, timestamps the same instants, nulls where the CSV is empty, text
// equal up to the CSV's formula guard. The file is byte-for-byte the same
// when written again, and each page codec reads back.
func TestParquetMatchesCSV(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e0000018", 18)
	rows := optionRows(t, ent, 700)
	reader := source.New(chCfg, source.Options{WindowRows: 89})
	base := source.Query{EnterpriseRef: ent, FromMs: rows[0].OccurredAt, ToMs: rows[len(rows)-1].OccurredAt}
	for i, c := range optionCases() {
		c.opts.CSVBOM, c.opts.TimeZone = false, ""
		compression := []string{engine.CompressionNone, engine.CompressionGzip, engine.CompressionZstd}[i%3]
		t.Run(c.name+" "+compression, func(t *testing.T) {
			q := base
			c.opts.Narrow(&q)
			var csvBuf, pqBuf, again bytes.Buffer
			if _, err := engine.Pipe(ctx, reader, q, nil, engine.Encoding{Format: engine.FormatCSV, Options: c.opts}, 0, &csvBuf, nil); err != nil {
				t.Fatal(err)
			}
			enc := engine.Encoding{Format: engine.FormatParquet, Compression: compression, Options: c.opts}
			res, err := engine.Pipe(ctx, reader, q, nil, enc, 0, &pqBuf, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := engine.Pipe(ctx, reader, q, nil, enc, 0, &again, nil); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pqBuf.Bytes(), again.Bytes()) {
				t.Fatal("the same request wrote different Parquet bytes")
			}
			if int64(pqBuf.Len()) != res.Bytes || !bytes.HasPrefix(pqBuf.Bytes(), []byte("PAR1")) {
				t.Fatalf("%d bytes, result says %d", pqBuf.Len(), res.Bytes)
			}
			recs, err := encsv.NewReader(&csvBuf).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			cols := c.opts.ColumnNames()
			got, _ := readParquet(t, pqBuf.Bytes(), cols)
			if len(got) != len(recs)-1 || res.Rows != int64(len(got)) {
				t.Fatalf("parquet %d rows (result %d), CSV %d", len(got), res.Rows, len(recs)-1)
			}
			for r, rec := range recs[1:] {
				for j, cell := range rec {
					v := got[r][j]
					if v == nil {
						if cell != "" || !activity.Optional[activity.ColumnIndex(cols[j])] {
							t.Fatalf("row %d %s: null, CSV %q", r, cols[j], cell)
						}
						continue
					}
					want := *v
					if strings.ContainsAny(want[:min(1, len(want))], "=+-@\t\r") && slices.Contains(
						[]string{"counterparty_ref", "currency", "fee_currency", "failure_reason", "reference"}, cols[j]) {
						want = "'" + want
					}
					if strings.ReplaceAll(want, "\r\n", "\n") != cell {
						t.Fatalf("row %d %s: parquet %q, CSV %q", r, cols[j], *v, cell)
					}
				}
			}
		})
	}
}
