package csv

import (
	"bytes"
	stdcsv "encoding/csv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/exportd/exportd/engine/activity"
)

func parseAll(t *testing.T, data []byte) [][]string {
	t.Helper()
	r := stdcsv.NewReader(bytes.NewReader(data))
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv: %v", err)
	}
	return recs
}

// TestLayoutAllColumnsIsAppendRows: the general path with every column in
// order and UTC writes exactly the bytes of the straight-line AppendRows.
func TestLayoutAllColumnsIsAppendRows(t *testing.T) {
	b := blockOf(awkwardRows(t))
	want := AppendRows(AppendHeader(nil), b, 0, b.Rows())
	for _, l := range []Layout{{}, {Columns: activity.AllColumns()}, {Columns: activity.AllColumns(), Location: time.UTC}} {
		got := AppendRowsLayout(AppendHeaderLayout(nil, l), b, 0, b.Rows(), l)
		if !bytes.Equal(got, want) {
			t.Fatalf("layout %+v differs from AppendRows:\n%q\n%q", l, got, want)
		}
	}
}

// TestLayoutSelection: random selections (any order, any size) of a block
// narrowed to them give, cell for cell, the full export's cells of those
// columns, and a header of their names.
func TestLayoutSelection(t *testing.T) {
	rows := awkwardRows(t)
	full := parseAll(t, AppendRows(AppendHeader(nil), blockOf(rows), 0, len(rows)))
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		cols := rng.Perm(activity.NumColumns)[:1+rng.IntN(activity.NumColumns)]
		b := blockOf(rows)
		b.ResetExcept(cols)
		if b.Rows() != len(rows) {
			t.Fatalf("narrowed block has %d rows, want %d", b.Rows(), len(rows))
		}
		l := Layout{Columns: cols}
		got := parseAll(t, AppendRowsLayout(AppendHeaderLayout(nil, l), b, 0, b.Rows(), l))
		for i, rec := range got {
			for j, c := range cols {
				if rec[j] != full[i][c] {
					t.Fatalf("cols %v record %d field %d: got %q want %q", cols, i, j, rec[j], full[i][c])
				}
			}
			if len(rec) != len(cols) {
				t.Fatalf("record %d has %d fields, want %d", i, len(rec), len(cols))
			}
		}
	}
}

// TestLayoutTimeZone: timestamps carry the zone's offset at each instant
// (checked against time.Format), everything else is unchanged.
func TestLayoutTimeZone(t *testing.T) {
	rows := awkwardRows(t)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	full := parseAll(t, AppendRows(AppendHeader(nil), blockOf(rows), 0, len(rows)))
	b := blockOf(rows)
	l := Layout{Location: paris}
	got := parseAll(t, AppendRowsLayout(AppendHeaderLayout(nil, l), b, 0, b.Rows(), l))
	if !slices.Equal(got[0], full[0]) {
		t.Fatalf("header %v", got[0])
	}
	for i, r := range rows {
		rec := got[i+1]
		if want := time.UnixMilli(r.OccurredAt).In(paris).Format("2006-01-02T15:04:05.000Z07:00"); rec[activity.ColOccurredAt] != want {
			t.Fatalf("row %d occurred_at %q, want %q", i, rec[activity.ColOccurredAt], want)
		}
		wantSettled := ""
		if r.SettledAt != nil {
			wantSettled = time.UnixMilli(*r.SettledAt).In(paris).Format("2006-01-02T15:04:05.000Z07:00")
		}
		if rec[activity.ColSettledAt] != wantSettled {
			t.Fatalf("row %d settled_at %q, want %q", i, rec[activity.ColSettledAt], wantSettled)
		}
		for c := range rec {
			if c != activity.ColOccurredAt && c != activity.ColSettledAt && rec[c] != full[i+1][c] {
				t.Fatalf("row %d column %d changed: %q", i, c, rec[c])
			}
		}
	}
}

// TestGoldenLayout pins the bytes of a narrowed, zoned CSV.
func TestGoldenLayout(t *testing.T) {
	cols := []int{activity.ColReference, activity.ColAmount, activity.ColOccurredAt, activity.ColFeeAmount,
		activity.ColSettledAt, activity.ColCurrency}
	tokyo, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	b := blockOf(awkwardRows(t))
	b.ResetExcept(cols)
	l := Layout{Columns: cols, Location: tokyo}
	got := AppendRowsLayout(AppendHeaderLayout(nil, l), b, 0, b.Rows(), l)
	path := filepath.Join("testdata", "golden_layout.csv")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from %s:\n got %q\nwant %q", path, got, want)
	}
}

func TestAppendRowsLayoutNoAlloc(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	rb := benchBlock(1024)
	for _, l := range []Layout{
		{Location: paris},
		{Columns: []int{activity.ColOccurredAt, activity.ColActivityID, activity.ColAmount, activity.ColCurrency, activity.ColReference}},
		{Columns: []int{activity.ColSettledAt, activity.ColFeeAmount}, Location: paris},
	} {
		dst := AppendRowsLayout(nil, rb, 0, rb.Rows(), l)
		allocs := testing.AllocsPerRun(50, func() { dst = AppendRowsLayout(dst[:0], rb, 0, rb.Rows(), l) })
		if allocs != 0 {
			t.Fatalf("layout %v allocates %v times per call", l.Columns, allocs)
		}
	}
}
