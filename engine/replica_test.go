package engine_test

import (
	"context"
	"errors"
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
	eng, err := engine.New(engine.Config{Reader: r, Records: records, Store: st, Owner: owner,
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
	// Read-your-writes through any replica (a load balancer may send the
	// next GET to the owner): while A's job still runs unaware (gate shut,
	// no heartbeat), A's Get reads the recorded cancel.
	if got, err := a.Get(ctx, x.ID); err != nil || got.Status != engine.StatusCancelled {
		t.Fatalf("Get on the owner right after a cancel through B: %+v %v", got, err)
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
			recs := records
			x, err := a.Submit(ctx, request(ent))
			if err != nil {
				t.Fatal(err)
			}
			<-r.started
			// What replica B does: a cancel, or a lost-owner verdict (the
			// lease aged by the database clock, then reaped).
			if tc.status == engine.StatusCancelled {
				if _, err := recs.Cancel(ctx, x.ID); err != nil {
					t.Fatal(err)
				}
			} else {
				reapNow(t, x.ID)
			}
			z, err := a.Wait(ctx, x.ID, 10*time.Second) // the gate stays shut: only the heartbeat can end it
			if err != nil || z.Status != tc.status || z.FailureReason != tc.reason {
				t.Fatalf("on A: %+v %v", z, err)
			}
			assertEmptyDir(t, dir)
		})
	}
}

// An owner's heartbeat after another replica's final state cannot undo it:
// the heartbeat is fenced and learns it lost.
func TestFinalStateOutranksLaterHeartbeat(t *testing.T) {
	ctx := context.Background()
	x := liveRecord(t, uuidN("f7000000", 1), "replica-a")
	if _, err := records.Cancel(ctx, x.ID); err != nil {
		t.Fatal(err)
	}
	cur, err := records.Heartbeat(ctx, x.ID, "replica-a", x.Version, 5, 5)
	if !errors.Is(err, engine.ErrLost) || cur.Status != engine.StatusCancelled {
		t.Fatalf("heartbeat after cancel: %+v %v", cur, err)
	}
	if _, err := records.Finish(ctx, x.ID, "replica-a", x.Version, engine.Final{Status: engine.StatusReady}); !errors.Is(err, engine.ErrLost) {
		t.Fatalf("finish after cancel: %v", err)
	}
	list, err := records.List(ctx, engine.Visibility{Refs: []string{x.ScopeRef}}, nil, 10)
	if err != nil || len(list) != 1 || list[0].Status != engine.StatusCancelled {
		t.Fatalf("list: %v %v", list, err)
	}
}

// reapNow declares an export's owner lost as another replica would: its
// lease is aged by the database clock and reaped (retried should the owner
// renew it in between).
func reapNow(t *testing.T, id string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		ageLease(t, id, 2*time.Hour)
		lost, err := records.ReapLost(context.Background(), time.Hour, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range lost {
			if x.ID == id {
				return
			}
		}
	}
	t.Fatalf("export %s never reaped", id)
}
