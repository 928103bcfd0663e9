package pgstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/pgstore/pglocal"
)

// The tests run against a real private PostgreSQL (or the one named by
// EXPORTD_TEST_POSTGRES_DSN); they fail, never skip, without one.
var testDSN string

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	dsn, stop, err := pglocal.ForTests(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: test PostgreSQL:", err)
		os.Exit(1)
	}
	testDSN = dsn
	code := m.Run()
	stop()
	os.Exit(code)
}

func openPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := Open(context.Background(), testDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var migrateOnce sync.Once

func newStore(t *testing.T) *Store {
	t.Helper()
	pool := openPool(t)
	migrateOnce.Do(func() {
		if _, err := Migrate(context.Background(), pool); err != nil {
			t.Fatal(err)
		}
	})
	return New(pool)
}

func newExport(ent string) *engine.Export {
	return &engine.Export{ID: uuid.NewString(), Format: "csv", Compression: "none",
		DateFrom: "2026-01-01T00:00:00Z", DateTo: "2026-01-31T23:59:59Z", ScopeKind: engine.KindEnterprise,
		ScopeRef: ent, EnterpriseRef: ent, GeneratedBy: "users/" + uuid.NewString(), StorageLocation: "file:///x",
		Owner: "replica-a"}
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pool, err := Open(context.Background(), testDSN)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			n, err := Migrate(context.Background(), pool)
			if err == nil && n != 0 {
				err = fmt.Errorf("re-run applied %d migrations", n)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCreateGetFinish(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	x := newExport("enterprises/" + uuid.NewString())
	created, _, err := s.Create(ctx, x, nil, 0)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	got, err := s.Get(ctx, x.ID)
	if err != nil || got.Status != engine.StatusPending || got.GeneratedAt.IsZero() {
		t.Fatalf("get: %+v %v", got, err)
	}
	if err := s.Start(ctx, x.ID, "replica-a", got.Version, "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Heartbeat(ctx, x.ID, "replica-a", got.Version, 10, 100); err != nil {
		t.Fatal(err)
	}
	fin, err := s.Finish(ctx, x.ID, "replica-a", got.Version, Final{Status: engine.StatusReady, RowCount: 10, ByteSize: 100, Checksum: "ab", Retention: time.Hour})
	if err != nil || fin.Status != engine.StatusReady || fin.ExpiresAt.Sub(fin.FinishedAt) != time.Hour {
		t.Fatalf("finish: %+v %v", fin, err)
	}
	if _, err := s.Cancel(ctx, x.ID); !errors.Is(err, engine.ErrNotCancellable) {
		t.Fatalf("cancel of a ready export: %v", err)
	}
	if _, err := s.Get(ctx, uuid.NewString()); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("missing export: %v", err)
	}
}

// Same caller, key and body claimed at once from three pools (three
// replicas' connections), 200 rounds: exactly one export per round; with a
// different body, one created and the others told the payload differs.
func TestKeyClaimRace(t *testing.T) {
	s := newStore(t)
	stores := []*Store{s, New(openPool(t)), New(openPool(t))}
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	for round := 0; round < 200; round++ {
		key := &Key{Caller: "users/u", Key: uuid.NewString(), RequestHash: "h"}
		differ := round%4 == 0
		var wg sync.WaitGroup
		var mu sync.Mutex
		var created, mismatched int
		bound := map[string]bool{}
		start := make(chan struct{})
		for i, st := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := *key
				if differ && i > 0 {
					k.RequestHash = fmt.Sprintf("h%d", i)
				}
				<-start
				ok, id, err := st.Create(ctx, newExport(ent), &k, 0)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, ErrKeyPayloadMismatch):
					mismatched++
				case err != nil:
					t.Error(err)
				case ok:
					created++
				}
				bound[id] = true
			}()
		}
		close(start)
		wg.Wait()
		if created != 1 || len(bound) != 1 {
			t.Fatalf("round %d: %d exports created, %d ids bound", round, created, len(bound))
		}
		if differ && created+mismatched != 3 {
			// Whoever won, the two others differ from it... unless the
			// winner is one of the two differing bodies: then the third
			// (other differing body, and the original) mismatch too.
			t.Fatalf("round %d: %d created, %d mismatched", round, created, mismatched)
		}
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM operations_activity_exports WHERE enterprise_ref = $1", ent).Scan(&n); err != nil || n != 200 {
		t.Fatalf("%d exports stored for 200 rounds (%v)", n, err)
	}
}

// A cancel racing the owner's ready, 100 rounds: exactly one wins, and a
// cancel that was answered is what the record says.
func TestCancelRacesFinish(t *testing.T) {
	s := newStore(t)
	other := New(openPool(t))
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	wins := map[string]int{}
	for round := 0; round < 100; round++ {
		x := newExport(ent)
		if _, _, err := s.Create(ctx, x, nil, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx, x.ID, x.Owner, x.Version, "", 0); err != nil {
			t.Fatal(err)
		}
		var cancelErr, finishErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, cancelErr = other.Cancel(ctx, x.ID)
		}()
		go func() {
			defer wg.Done()
			<-start
			_, finishErr = s.Finish(ctx, x.ID, x.Owner, x.Version, Final{Status: engine.StatusReady, Checksum: "c", Retention: time.Hour})
		}()
		close(start)
		wg.Wait()
		got, err := s.Get(ctx, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case cancelErr == nil && finishErr == nil:
			t.Fatalf("round %d: both the cancel and the ready were accepted", round)
		case cancelErr == nil:
			if got.Status != engine.StatusCancelled || !errors.Is(finishErr, ErrLost) {
				t.Fatalf("round %d: cancel answered, then %s (%v)", round, got.Status, finishErr)
			}
		case finishErr == nil:
			if got.Status != engine.StatusReady || !errors.Is(cancelErr, engine.ErrNotCancellable) {
				t.Fatalf("round %d: ready won, record %s, cancel %v", round, got.Status, cancelErr)
			}
		default:
			t.Fatalf("round %d: neither won: %v / %v", round, cancelErr, finishErr)
		}
		wins[got.Status]++
	}
	t.Logf("winners over 100 rounds: %v", wins)
}

// A lease taken over (stale heartbeat by the database clock) fences the old
// owner: its heartbeat and its ready are refused.
func TestReapFencesOldOwner(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	x := newExport("enterprises/" + uuid.NewString())
	if _, _, err := s.Create(ctx, x, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, x.ID, x.Owner, x.Version, "", 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	reaped, err := s.ReapLost(ctx, 10*time.Millisecond, 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range reaped {
		if r.ID == x.ID {
			found = r.Status == engine.StatusFailed && r.FailureReason == engine.ReasonShutdown
		}
	}
	if !found {
		t.Fatalf("stale export not reaped as failed/shutdown: %+v", reaped)
	}
	if cur, err := s.Heartbeat(ctx, x.ID, x.Owner, x.Version, 1, 1); !errors.Is(err, ErrLost) || cur.Status != engine.StatusFailed {
		t.Fatalf("heartbeat after takeover: %v %+v", err, cur)
	}
	won, err := s.Finish(ctx, x.ID, x.Owner, x.Version, Final{Status: engine.StatusReady, Retention: time.Hour})
	if !errors.Is(err, ErrLost) || won.Status != engine.StatusFailed {
		t.Fatalf("ready after takeover: %v %+v", err, won)
	}
	// A live lease is not reaped.
	y := newExport("enterprises/" + uuid.NewString())
	if _, _, err := s.Create(ctx, y, nil, 0); err != nil {
		t.Fatal(err)
	}
	reaped, _ = s.ReapLost(ctx, time.Minute, 1000)
	for _, r := range reaped {
		if r.ID == y.ID {
			t.Fatal("fresh export reaped")
		}
	}
}

func TestExpiryAndRetention(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	x := newExport("enterprises/" + uuid.NewString())
	if _, _, err := s.Create(ctx, x, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, x.ID, x.Owner, x.Version, Final{Status: engine.StatusReady, Retention: -time.Second}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, x.ID); got.Status != engine.StatusExpired {
		t.Fatalf("past expiry reads %s", got.Status)
	}
	if r, _ := s.Live(ctx, []string{x.ID}); !r[x.ID] {
		t.Fatal("not yet swept: the artefact is still named by a ready record")
	}
	due, err := s.ExpireDue(ctx, 10000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range due {
		found = found || d.ID == x.ID
	}
	if !found {
		t.Fatal("due export not expired")
	}
	if r, _ := s.Live(ctx, []string{x.ID}); r[x.ID] {
		t.Fatal("expired export still ready")
	}
	if _, err := s.pool.Exec(ctx, "UPDATE operations_activity_exports SET finished_at = now() - interval '100 days' WHERE id = $1", x.ID); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := s.DeleteOld(ctx, 90*24*time.Hour, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n < 1000 {
			break
		}
	}
	if _, err := s.Get(ctx, x.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("record past retention: %v", err)
	}
}

// List pages by keyset over each visibility branch, newest first, with no
// duplicate or gap across pages.
func TestListKeyset(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ent, other := "enterprises/"+uuid.NewString(), "enterprises/"+uuid.NewString()
	client := "clients/" + uuid.NewString()
	want := map[string]bool{}
	for i := 0; i < 25; i++ {
		x := newExport(ent)
		if i%5 == 0 {
			x.ScopeKind, x.ScopeRef, x.ClientRef = engine.KindClient, client, ""
		}
		if _, _, err := s.Create(ctx, x, nil, 0); err != nil {
			t.Fatal(err)
		}
		want[x.ID] = true
		if _, _, err := s.Create(ctx, newExport(other), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	var after *engine.Cursor
	seen := map[string]bool{}
	var last *engine.Export
	for pages := 0; pages < 10; pages++ {
		page, err := s.List(ctx, engine.Visibility{Enterprises: []string{ent}, Refs: []string{client}}, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page {
			if !want[x.ID] || seen[x.ID] {
				t.Fatalf("unexpected or repeated %s", x.ID)
			}
			if last != nil && (x.GeneratedAt.After(last.GeneratedAt) || (x.GeneratedAt.Equal(last.GeneratedAt) && x.ID > last.ID)) {
				t.Fatal("not newest first")
			}
			seen[x.ID], last = true, x
		}
		if len(page) < 7 {
			break
		}
		after = &engine.Cursor{GeneratedAtMs: last.GeneratedAt.UnixMilli(), ID: last.ID}
	}
	if len(seen) != 25 {
		t.Fatalf("listed %d of 25", len(seen))
	}
}

func TestUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	port, _ := pglocal.FreePort()
	_, err := Open(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable&connect_timeout=1", port))
	if err == nil || !Unreachable(err) {
		t.Fatalf("closed port: %v (unreachable=%v)", err, Unreachable(err))
	}
}
