package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

// Creates racing Shutdown: every Submit is either refused (ErrShuttingDown)
// or its job has ended by the time Shutdown returns; no job starts, runs or
// reports after it (issue 11, point 7).
func TestSubmitRacingShutdown(t *testing.T) {
	ent := "enterprises/" + uuid.NewString()
	seed(t, ent, 200)
	for round := 0; round < 30; round++ {
		st, err := storage.NewFile(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		eng := newEngine(t, source.New(chCfg, source.Options{}), st, "")
		var accepted, ended, lateEnds atomic.Int64
		var returned atomic.Bool
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 12; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if i%2 == 1 {
					time.Sleep(time.Duration(i) * 300 * time.Microsecond)
				}
				_, _, err := eng.SubmitWith(context.Background(), request(ent), nil, engine.SlotFunc(func(x *engine.Export, _ time.Duration) {
					if x == nil {
						return
					}
					ended.Add(1)
					if returned.Load() {
						lateEnds.Add(1)
					}
				}))
				switch {
				case err == nil:
					accepted.Add(1)
				case !errors.Is(err, engine.ErrShuttingDown):
					t.Error(err)
				}
			}()
		}
		close(start)
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		eng.Shutdown(ctx)
		cancel()
		returned.Store(true)
		wg.Wait()
		time.Sleep(50 * time.Millisecond)
		if lateEnds.Load() != 0 {
			t.Fatalf("round %d: %d jobs ended after Shutdown returned", round, lateEnds.Load())
		}
		if a, e := accepted.Load(), ended.Load(); a != e {
			t.Fatalf("round %d: %d submits accepted, %d ended before Shutdown returned", round, a, e)
		}
	}
}
