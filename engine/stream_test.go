package engine_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
)

// The source reads window i+1 ahead on a second connection while window i
// streams (source.Stream): blocks must still come in export order, and an
// error or a cancel in the middle must end both queries and their
// goroutines.
func TestStreamReadsAheadInOrder(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e5000001", 1)
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	const days, perDay = 10, 30
	var rows []activity.Row
	for d := 0; d < days; d++ {
		for i := 0; i < perDay; i++ {
			amt, _ := activity.ParseDecimal(fmt.Sprintf("%d.%02d", d, i))
			rows = append(rows, activity.Row{OccurredAt: day0 + int64(d)*86_400_000 + int64(i)*1000,
				ActivityID: uuidN(fmt.Sprintf("a5%06d", d*perDay+i), i), OperationID: uuidN("0b500000", i),
				Family: activity.Families[0], Status: activity.Statuses[0], EnterpriseRef: ent,
				ClientRef: "clients/" + uuidN("c5000001", 1), AccountRef: "client-accounts/" + uuidN("ac500000", 1),
				Currency: "USDC", Amount: amt, InitiatedBy: "users/" + uuidN("0c500000", 1)})
		}
	}
	insert(t, rows)
	q := source.Query{EnterpriseRef: ent, FromMs: day0, ToMs: day0 + days*86_400_000 - 1}
	src := source.New(chCfg, source.Options{WindowRows: perDay}) // one window a day
	before := runtime.NumGoroutine()

	var got []int64
	st, err := src.Stream(ctx, q, nil, func(b *activity.Block) error {
		for i := 0; i < b.Rows(); i++ {
			got = append(got, b.OccurredAt.Row(i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != days*perDay || len(got) != days*perDay {
		t.Fatalf("streamed %d rows (stats %d), want %d", len(got), st.Rows, days*perDay)
	}
	for i := range got {
		if got[i] != rows[i].OccurredAt {
			t.Fatalf("row %d at %d, want %d: out of order", i, got[i], rows[i].OccurredAt)
		}
	}

	// fn fails in the fourth window while the fifth is read ahead.
	stop := errors.New("stop here")
	n := 0
	_, err = src.Stream(ctx, q, nil, func(b *activity.Block) error {
		n += b.Rows()
		if n > 3*perDay {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("fn's error: got %v", err)
	}
	// A cancel in the middle ends the stream with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	n = 0
	_, err = src.Stream(cctx, q, nil, func(b *activity.Block) error {
		if n += b.Rows(); n > 5*perDay {
			cancel()
		}
		return nil
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled stream: got %v", err)
	}
	// Every query goroutine and connection is gone.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines after the streams, %d before", g, before)
	}
}
