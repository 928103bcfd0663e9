package engine

import (
	"fmt"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/csv"
	"github.com/exportd/exportd/engine/jsonl"
	"github.com/exportd/exportd/engine/parquet"
)

// encoder turns blocks into the bytes of one format. Each method appends to
// dst and returns the extended slice; the pipeline owns the buffers. begin
// runs once before any rows, end once after the last (a file footer).
type encoder interface {
	begin(dst []byte) []byte
	rows(dst []byte, b *activity.Block, from, to int) ([]byte, error)
	end(dst []byte) ([]byte, error)
}

// newEncoder returns the encoder of enc's format with its options applied.
func newEncoder(enc Encoding) (encoder, error) {
	loc, err := LoadZone(enc.Options.TimeZone)
	if err != nil {
		return nil, err
	}
	cols := enc.Options.columnIndexes()
	switch enc.Format {
	case FormatCSV, "":
		return &csvEncoder{layout: csv.Layout{Columns: cols, Location: loc}, bom: enc.Options.CSVBOM}, nil
	case FormatJSONL:
		return &jsonlEncoder{layout: jsonl.Layout{Columns: cols, Location: loc}}, nil
	case FormatParquet:
		pe, err := parquet.New(parquet.Layout{Columns: cols, Compression: enc.Compression})
		if err != nil {
			return nil, err
		}
		return parquetEncoder{pe}, nil
	}
	return nil, fmt.Errorf("unsupported format %q", enc.Format)
}

type csvEncoder struct {
	layout csv.Layout
	bom    bool
}

func (e *csvEncoder) begin(dst []byte) []byte {
	if e.bom {
		dst = append(dst, csv.BOM...)
	}
	return csv.AppendHeaderLayout(dst, e.layout)
}

func (e *csvEncoder) rows(dst []byte, b *activity.Block, from, to int) ([]byte, error) {
	return csv.AppendRowsLayout(dst, b, from, to, e.layout), nil
}

func (e *csvEncoder) end(dst []byte) ([]byte, error) { return dst, nil }

type jsonlEncoder struct{ layout jsonl.Layout }

func (e *jsonlEncoder) begin(dst []byte) []byte { return dst } // no header

func (e *jsonlEncoder) rows(dst []byte, b *activity.Block, from, to int) ([]byte, error) {
	return jsonl.AppendRows(dst, b, from, to, e.layout), nil
}

func (e *jsonlEncoder) end(dst []byte) ([]byte, error) { return dst, nil }

// parquetEncoder is the Parquet file: timestamps are instants (no zone) and
// compression is the page codec (newEncoder passes it; Pipe then writes the
// stream as is).
type parquetEncoder struct{ e *parquet.Encoder }

func (p parquetEncoder) begin(dst []byte) []byte { return dst }

func (p parquetEncoder) rows(dst []byte, b *activity.Block, from, to int) ([]byte, error) {
	return p.e.AppendRows(dst, b, from, to)
}

func (p parquetEncoder) end(dst []byte) ([]byte, error) { return p.e.AppendFooter(dst) }
