package parquet

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/exportd/exportd/engine/activity"
)

func block(n, seed int) *activity.Block {
	b := activity.NewBlock()
	for i := range n {
		k := i + seed
		r := activity.Row{OccurredAt: 1_775_000_000_000 + int64(k)*731, ActivityID: fmt.Sprintf("01970c3a-0000-7000-8000-%012x", k),
			OperationID: fmt.Sprintf("01970c3a-0000-7000-9000-%012x", k), Family: activity.Families[k%6], Status: activity.Statuses[k%10],
			EnterpriseRef: "enterprises/0b7c6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e", AccountRef: "client-accounts/2d9e8f3a-4b5c-4d6e-8f1a-2b3c4d5e6f70",
			Currency: "USDC", Amount: proto.Decimal128{Low: uint64(k) * 1_000_000_000_000_001, High: ^uint64(0) * uint64(k%2)},
			InitiatedBy: "users/4f1a0b5c-6d7e-4f80-8b3c-4d5e6f708192", Reference: fmt.Sprintf("ref %d =, \"q\"\n", k)}
		if k%3 == 0 {
			s := r.OccurredAt + 1
			r.SettledAt, r.ClientRef = &s, "clients/1c8d7e2f-3a4b-4c5d-9e0f-1a2b3c4d5e6f"
		}
		b.Append(&r)
	}
	return b
}

func encode(t testing.TB, l Layout, blocks ...*activity.Block) []byte {
	t.Helper()
	e, err := New(l)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, b := range blocks {
		for i := 0; i < b.Rows(); i += 700 {
			if out, err = e.AppendRows(out, b, i, min(i+700, b.Rows())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out, err = e.AppendFooter(out); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AppendRows(nil, blocks[0], 0, 1); err == nil {
		t.Fatal("AppendRows after AppendFooter must fail")
	}
	return out
}

// TestRowGroupsBoundedAndReadable: rows are cut into row groups of exactly
// RowGroupRows (the last one shorter), across block and call boundaries, and
// Apache Arrow's reader gets every row back in order.
func TestRowGroupsBoundedAndReadable(t *testing.T) {
	b1, b2 := block(3500, 0), block(1700, 3500)
	cols := []int{activity.ColAmount, activity.ColOccurredAt, activity.ColSettledAt, activity.ColReference, activity.ColClientRef}
	data := encode(t, Layout{Columns: cols, Compression: "zstd", RowGroupRows: 1000}, b1, b2)
	rdr, err := pqfile.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	if rdr.NumRows() != 5200 || rdr.NumRowGroups() != 6 {
		t.Fatalf("%d rows in %d row groups, want 5200 in 6", rdr.NumRows(), rdr.NumRowGroups())
	}
	for g := range 6 {
		if n := rdr.MetaData().RowGroup(g).NumRows(); n != min(1000, 5200-int64(g)*1000) {
			t.Fatalf("row group %d has %d rows", g, n)
		}
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 4096}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	want := block(5200, 0)
	r := 0
	for _, ch := range tbl.Column(0).Data().Chunks() {
		a := ch.(*array.Decimal128)
		for k := 0; k < a.Len(); k, r = k+1, r+1 {
			d := want.Amount.ColDecimal128[r]
			if v := a.Value(k); uint64(v.HighBits()) != d.High || v.LowBits() != d.Low {
				t.Fatalf("row %d amount %v, want %+v", r, v, d)
			}
		}
	}
	r = 0
	for _, ch := range tbl.Column(2).Data().Chunks() {
		for k := 0; k < ch.Len(); k, r = k+1, r+1 {
			if ch.IsNull(k) != (want.SettledAt.Nulls[r] != 0) {
				t.Fatalf("row %d settled null %v", r, ch.IsNull(k))
			}
		}
	}
	r = 0
	for _, ch := range tbl.Column(3).Data().Chunks() {
		a := ch.(*array.String)
		for k := 0; k < a.Len(); k, r = k+1, r+1 {
			p := want.Reference.Pos[r]
			if a.Value(k) != string(want.Reference.Buf[p.Start:p.End]) {
				t.Fatalf("row %d reference %q", r, a.Value(k))
			}
		}
	}
	if r != 5200 {
		t.Fatalf("read %d references", r)
	}
}

// TestDeterministic: the same rows give the same bytes, however the calls
// slice them, for every codec; different codecs give different files.
func TestDeterministic(t *testing.T) {
	seen := map[string]string{}
	for _, c := range []string{"none", "gzip", "zstd"} {
		b := block(3000, 7)
		a := encode(t, Layout{Compression: c, RowGroupRows: 1024}, b)
		e, _ := New(Layout{Compression: c, RowGroupRows: 1024})
		var out []byte
		var err error
		for i := 0; i < 3000; i += 333 {
			if out, err = e.AppendRows(out, b, i, min(i+333, 3000)); err != nil {
				t.Fatal(err)
			}
		}
		out, _ = e.AppendFooter(out)
		if !bytes.Equal(a, out) {
			t.Fatalf("%s: slicing changed the bytes", c)
		}
		if prev, ok := seen[string(a)]; ok {
			t.Fatalf("%s wrote the same file as %s", c, prev)
		}
		seen[string(a)] = c
	}
	if _, err := New(Layout{Compression: "brotli"}); err == nil {
		t.Fatal("unknown codec accepted")
	}
}

// TestEmptyFile: no rows is still a valid file with the schema.
func TestEmptyFile(t *testing.T) {
	e, err := New(Layout{Columns: []int{activity.ColFeeAmount}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := e.AppendFooter(nil)
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := pqfile.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	if rdr.NumRows() != 0 || rdr.MetaData().Schema.Column(0).Name() != "fee_amount" {
		t.Fatalf("empty file: %d rows", rdr.NumRows())
	}
}

// TestMemoryFlat: encoding many row groups keeps the live heap near one
// row group's worth (the output is dropped as it comes, as the pipeline's
// writer stage does).
func TestMemoryFlat(t *testing.T) {
	b := block(16384, 0)
	e, err := New(Layout{Compression: "zstd", RowGroupRows: 1 << 15})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	var peak uint64
	var ms runtime.MemStats
	for round := range 60 { // ~1M rows, 30 row groups
		for i := 0; i < b.Rows(); i += 1024 {
			if out, err = e.AppendRows(out[:0], b, i, i+1024); err != nil {
				t.Fatal(err)
			}
		}
		if round%10 == 9 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if _, err := e.AppendFooter(out[:0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("peak live heap %d MiB over ~1M rows", peak>>20)
	if peak > 96<<20 {
		t.Fatalf("live heap %d MiB: not bounded by the row group", peak>>20)
	}
}

func BenchmarkAppendRows(b *testing.B) {
	blk := block(16384, 0)
	e, err := New(Layout{})
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < blk.Rows(); i += 1024 {
			if out, err = e.AppendRows(out[:0], blk, i, i+1024); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*blk.Rows())/b.Elapsed().Seconds(), "rows/s")
}
