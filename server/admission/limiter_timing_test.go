package admission

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkAcquireRelease is the uncontended path: a free slot, no waiter.
func BenchmarkAcquireRelease(b *testing.B) {
	l := mustNew(b, Config{Max: 4})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := l.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(Outcome{Rows: 50_000, Bytes: 10 << 20, Duration: 100 * time.Millisecond})
	}
}

// BenchmarkAcquireReleaseParallel is many request goroutines sharing a limit large enough that
// none waits: the cost of the lock under contention.
func BenchmarkAcquireReleaseParallel(b *testing.B) {
	l := mustNew(b, Config{Max: 1 << 20})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			p, err := l.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			p.Release(Outcome{Rows: 50_000, Duration: 100 * time.Millisecond})
		}
	})
}

// BenchmarkShed is the queue-full path: every slot busy, the queue full of waiters; Acquire must
// return ErrOverloaded at once. It reports the worst and the 99th-percentile latency of a shed
// (the goal: well under 5ms).
func BenchmarkShed(b *testing.B) {
	l := mustNew(b, Config{Max: 1, QueueSize: 4, QueueTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	held, err := l.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p, err := l.Acquire(ctx); err == nil {
				p.Release(Outcome{Dropped: true})
			}
		}()
	}
	eventually(b, "queue to fill", func() bool { return l.Queued() == 4 })

	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		_, err := l.Acquire(ctx)
		d := time.Since(start)
		if !errors.Is(err, ErrOverloaded) {
			b.Fatalf("Acquire with a full queue: %v", err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, d)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	// The goal is on the p99: the maximum of millions of samples on a shared machine measures
	// the scheduler and the garbage collector, not the shed path (it is reported all the same).
	if p99 := lat[len(lat)*99/100]; p99 > 5*time.Millisecond {
		b.Errorf("p99 of a shed is %s, want < 5ms", p99)
	}
	cancel()
	wg.Wait()
	held.Release(Outcome{Dropped: true})
}

// BenchmarkHandOff has 8 goroutines per CPU compete for one slot with a deep queue: nearly
// every release hands the slot to a queued waiter, so this is the cost of queueing, hand-off and
// wake-up per admitted export. The exports report holding their slot for an hour, so that the
// predicted wait of a deep queue is short next to them and nobody is shed.
func BenchmarkHandOff(b *testing.B) {
	l := mustNew(b, Config{Max: 1, QueueSize: 1 << 10, QueueTimeout: time.Hour})
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			p, err := l.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			p.Release(Outcome{Duration: time.Hour, Dropped: true})
		}
	})
}

// BenchmarkSimulation is one simulated run at 10x load (see TestSimulationOverload): the cost of
// the controller per admitted export, driven through the Limiter.
func BenchmarkSimulation(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		simulate(b, simParams{
			server: simServer{capacity: 4, thrash: 0.05}, load: 10,
			cfg:      Config{Max: 16, QueueSize: simQueueSize},
			duration: 120, seed: 1,
		})
	}
}
