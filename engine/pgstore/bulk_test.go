package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/exportd/exportd/engine"
)

// Import stores records as given (history, final states), and the store's
// own reads, listing and expiry treat them like records it wrote itself.
func TestImport(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	now := time.Now().UTC().Truncate(time.Millisecond)
	day := 24 * time.Hour
	mk := func(age time.Duration, status string) *engine.Export {
		x := newExport(ent)
		x.Status, x.GeneratedAt = status, now.Add(-age)
		if status != engine.StatusPending {
			x.FinishedAt = x.GeneratedAt.Add(2 * time.Second)
		}
		return x
	}
	expired, failed, cancelled := mk(60*day, engine.StatusExpired), mk(30*day, engine.StatusFailed), mk(10*day, engine.StatusCancelled)
	failed.FailureReason = engine.ReasonUpstream
	due, ready := mk(2*day, engine.StatusReady), mk(time.Hour, engine.StatusReady)
	due.ExpiresAt, ready.ExpiresAt = now.Add(-day), now.Add(day)
	ready.RowCount, ready.ByteSize, ready.Checksum = 12, 3456, "ab12"
	pending := mk(time.Minute, engine.StatusPending)
	pending.Status = "" // empty means pending
	xs := []*engine.Export{expired, failed, cancelled, due, ready, pending}
	if err := s.Import(ctx, xs); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, nil); err != nil {
		t.Fatalf("empty import: %v", err)
	}

	got, err := s.Get(ctx, ready.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != engine.StatusReady || !got.GeneratedAt.Equal(ready.GeneratedAt) || !got.FinishedAt.Equal(ready.FinishedAt) ||
		!got.ExpiresAt.Equal(ready.ExpiresAt) || got.RowCount != 12 || got.ByteSize != 3456 || got.Checksum != "ab12" ||
		got.EnterpriseRef != ent || got.Owner != ready.Owner || got.Version != 1 {
		t.Fatalf("ready export read back as %+v", got)
	}
	if got, _ := s.Get(ctx, failed.ID); got.Status != engine.StatusFailed || got.FailureReason != engine.ReasonUpstream {
		t.Fatalf("failed export read back as %+v", got)
	}
	if got, _ := s.Get(ctx, pending.ID); got.Status != engine.StatusPending || !got.FinishedAt.IsZero() || !got.ExpiresAt.IsZero() {
		t.Fatalf("pending export read back as %+v", got)
	}
	if got, _ := s.Get(ctx, due.ID); got.Status != engine.StatusExpired {
		t.Fatalf("ready export past expiry reads %s", got.Status)
	}

	// Newest first by the imported generated_at, across pages.
	want := []string{pending.ID, ready.ID, due.ID, cancelled.ID, failed.ID, expired.ID}
	var ids []string
	var cursor *engine.Cursor
	for {
		page, err := s.List(ctx, engine.Visibility{Enterprises: []string{ent}}, cursor, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page {
			ids = append(ids, x.ID)
		}
		if len(page) < 4 {
			break
		}
		last := page[len(page)-1]
		cursor = &engine.Cursor{GeneratedAtMs: last.GeneratedAt.UnixMilli(), ID: last.ID}
	}
	if len(ids) != len(want) {
		t.Fatalf("listed %d exports, want %d", len(ids), len(want))
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("list order %v, want %v", ids, want)
		}
	}

	// The expiry pass picks up an imported ready export past its expiry,
	// and only that one of these.
	var expiredNow []string
	for {
		batch, err := s.ExpireDue(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range batch {
			if x.EnterpriseRef == ent {
				expiredNow = append(expiredNow, x.ID)
			}
		}
		if len(batch) < 1000 {
			break
		}
	}
	if len(expiredNow) != 1 || expiredNow[0] != due.ID {
		t.Fatalf("expiry pass expired %v, want only %s", expiredNow, due.ID)
	}

	// All or nothing: a batch holding an id already stored adds nothing.
	fresh := mk(time.Second, engine.StatusFailed)
	if err := s.Import(ctx, []*engine.Export{fresh, mk(time.Second, engine.StatusFailed), ready}); err == nil {
		t.Fatal("import of a duplicate id succeeded")
	}
	if _, err := s.Get(ctx, fresh.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("record of a failed import: %v", err)
	}
	// A record the table's checks refuse fails the import too.
	bad := mk(time.Second, "finished")
	if err := s.Import(ctx, []*engine.Export{bad}); err == nil {
		t.Fatal("import of an unknown status succeeded")
	}
	if err := s.Import(ctx, []*engine.Export{{ID: uuid.NewString(), Status: engine.StatusFailed}}); err == nil {
		t.Fatal("import without generated_at succeeded")
	}
}

// BenchmarkImport loads batches of records through one COPY each.
func BenchmarkImport(b *testing.B) {
	s := newStoreB(b)
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	const n = 1000
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		xs := make([]*engine.Export, n)
		for i := range xs {
			x := newExport(ent)
			x.Status, x.GeneratedAt, x.FinishedAt = engine.StatusExpired, now.Add(-time.Duration(i)*time.Minute), now
			xs[i] = x
		}
		if err := s.Import(ctx, xs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// newStoreB is newStore for benchmarks.
func newStoreB(b *testing.B) *Store {
	b.Helper()
	pool, err := Open(context.Background(), testDSN)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := Migrate(context.Background(), pool); err != nil {
		b.Fatal(err)
	}
	return New(pool)
}
