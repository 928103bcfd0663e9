package main

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// memReleaser hands the memory of finished exports back to the operating
// system once the replica has none running. Go's scavenger returns freed
// heap only as later collections shrink the heap goal, and an idle replica
// allocates nothing, so without this the RSS of its largest export (two
// concurrent exports' blocks, part buffers, compressor windows) stays with
// it until the next export: memory a co-located ClickHouse, or an
// autoscaler reading RSS, never gets back. The cost is one forced
// collection of a small live heap (a few ms) per idle period, at most one a
// second.
type memReleaser struct {
	running atomic.Int64
	kick    chan struct{}
	// settle is how long the replica must stay idle before a release;
	// every is the least time between releases.
	settle, every time.Duration
	release       func()
}

func newMemReleaser() *memReleaser {
	return &memReleaser{kick: make(chan struct{}, 1), settle: 100 * time.Millisecond, every: time.Second,
		release: debug.FreeOSMemory}
}

// running records how many exports run now (the engine's OnRunning).
func (r *memReleaser) setRunning(n int) {
	r.running.Store(int64(n))
	if n == 0 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// run releases memory after each idle period begins, until ctx ends.
func (r *memReleaser) run(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		wait := max(r.settle, r.every-time.Since(last))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if r.running.Load() == 0 {
			r.release()
			last = time.Now()
		}
	}
}
