package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

// Replicas share the records table and the store and coordinate only
// through appended record versions. These tests run two engines side by
// side, the way two `exportd serve` processes do.

// gateReader streams from ClickHouse but holds the first block until gate
// closes (or the job's context ends), so a test decides when the export
// may reach its commit.
type gateReader struct {
	*source.ClickHouse
	started, gate chan struct{}
	once          sync.Once
}

func newGateReader() *gateReader {
	return &gateReader{ClickHouse: source.New(chCfg, source.Options{}), started: make(chan struct{}), gate: make(chan struct{})}
}

// release opens the gate; called again, it does nothing.
func (r *gateReader) release() { r.once.Do(func() { close(r.gate) }) }

func (r *gateReader) Stream(ctx context.Context, q source.Query, p *source.Plan, fn func(*activity.Block) error) (source.Stats, error) {
	first := true
	return r.ClickHouse.Stream(ctx, q, p, func(b *activity.Block) error {
		if err := fn(b); err != nil {
			return err
		}
		if first {
			first = false
			close(r.started)
			select {
			case <-r.gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
}

func newReplica(t *testing.T, r engine.Reader, st storage.Store, owner string, heartbeat time.Duration) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Config{Reader: r, Records: engine.NewRecords(pool), Store: st, Owner: owner,
		Heartbeat: heartbeat, StaleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Shutdown(context.Background()) })
	return eng
}

// A cancel sent through replica B for a job of replica A must win even when
// A's job completes before A's heartbeat could see it: the owner looks at
// the record once more before committing.
func TestCancelThroughOtherReplicaBeforeOwnerHeartbeat(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e5000000", 1)
	seed(t, ent, 100)
	dir := t.TempDir()
	st, _ := storage.NewFile(dir)
	r := newGateReader()
	a := newReplica(t, r, st, "replica-a", time.Hour) // the heartbeat never fires during the test
	t.Cleanup(r.release)                              // before a's Shutdown, even when the test fails
	b := newReplica(t, source.New(chCfg, source.Options{}), st, "replica-b", time.Hour)
	x, err := a.Submit(ctx, request(ent))
	if err != nil {
		t.Fatal(err)
	}
	<-r.started
	y, err := b.Cancel(ctx, x.ID)
	if err != nil || y.Status != engine.StatusCancelled {
		t.Fatalf("cancel through B: %+v %v", y, err)
	}
	r.release()
	z, err := a.Wait(ctx, x.ID, 30*time.Second)
	if err != nil || z.Status != engine.StatusCancelled || z.FailureReason != "" {
		t.Fatalf("on A after its job ended: %+v %v", z, err)
	}
	if got, _ := b.Get(ctx, x.ID); got.Status != engine.StatusCancelled {
		t.Fatalf("on B: %s", got.Status)
	}
	assertEmptyDir(t, dir)
}

// With a fast heartbeat the owner notices a remote final state while the
// job still runs and stops it: a cancel ends cancelled, a lost-owner
// verdict recorded by another replica ends failed/shutdown.
func TestOwnerStopsOnRemoteFinalState(t *testing.T) {
	for _, tc := range []struct {
		name, status, reason string
	}{
		{"cancelled", engine.StatusCancelled, ""},
		{"declared lost", engine.StatusFailed, engine.ReasonShutdown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ent := "enterprises/" + uuidN("e6000000", len(tc.name))
			seed(t, ent, 100)
			dir := t.TempDir()
			st, _ := storage.NewFile(dir)
			r := newGateReader()
			a := newReplica(t, r, st, "replica-a", 50*time.Millisecond)
			t.Cleanup(r.release) // before a's Shutdown, even when the test fails
			recs := engine.NewRecords(pool)
			x, err := a.Submit(ctx, request(ent))
			if err != nil {
				t.Fatal(err)
			}
			<-r.started
			stored, err := recs.Get(ctx, x.ID)
			if err != nil {
				t.Fatal(err)
			}
			// What replica B writes: a final version over A's running one.
			stored.Version++
			stored.Status, stored.FailureReason, stored.FinishedAt, stored.Owner = tc.status, tc.reason, time.Now().UTC(), "replica-b"
			if err := recs.Put(ctx, stored); err != nil {
				t.Fatal(err)
			}
			z, err := a.Wait(ctx, x.ID, 10*time.Second) // the gate stays shut: only the heartbeat can end it
			if err != nil || z.Status != tc.status || z.FailureReason != tc.reason {
				t.Fatalf("on A: %+v %v", z, err)
			}
			assertEmptyDir(t, dir)
		})
	}
}

// A heartbeat (running) appended after another replica's final version, with
// a higher version number, must not undo the final state.
func TestFinalVersionOutranksLaterHeartbeat(t *testing.T) {
	ctx := context.Background()
	recs := engine.NewRecords(pool)
	x := request("enterprises/" + uuidN("e7000000", 1))
	x.ID = uuidN("f7000000", 1)
	now := time.Now().UTC()
	x.GeneratedAt, x.Heartbeat, x.Owner = now, now, "replica-a"
	for i, status := range []string{engine.StatusRunning, engine.StatusCancelled, engine.StatusRunning} {
		x.Version, x.Status = uint64(100+i), status
		if err := recs.Put(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := recs.Get(ctx, x.ID); err != nil || got.Status != engine.StatusCancelled || got.Version != 101 {
		t.Fatalf("get: %+v %v", got, err)
	}
	unfinished, err := recs.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range unfinished {
		if u.ID == x.ID {
			t.Fatalf("listed as unfinished: %+v", u)
		}
	}
	list, err := recs.List(ctx, engine.Visibility{Refs: []string{x.ScopeRef}}, nil, 10)
	if err != nil || len(list) != 1 || list[0].Status != engine.StatusCancelled {
		t.Fatalf("list: %v %v", list, err)
	}
}
