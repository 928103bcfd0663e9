package admission

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	l := mustNew(t, Config{Max: 2})
	ctx := context.Background()
	p1, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.InFlight(); got != 2 {
		t.Fatalf("InFlight %d, want 2", got)
	}
	if _, ok := l.TryAcquire(); ok {
		t.Fatal("TryAcquire succeeded with every slot busy")
	}
	p1.Release(Outcome{Rows: 10})
	p1.Release(Outcome{Rows: 10}) // idempotent
	if got := l.InFlight(); got != 1 {
		t.Fatalf("InFlight %d after releasing one permit twice, want 1", got)
	}
	p2.Release(Outcome{Dropped: true})
	var nilPermit *Permit
	nilPermit.Release(Outcome{}) // no-op
	if got := l.InFlight(); got != 0 {
		t.Fatalf("InFlight %d, want 0", got)
	}
}

func TestAcquireContextAlreadyDone(t *testing.T) {
	l := mustNew(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Acquire(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrOverloaded) {
		t.Fatalf("Acquire with a cancelled context: %v", err)
	}
	if l.InFlight() != 0 {
		t.Fatal("a slot was taken")
	}
}

// queueWaiters starts n goroutines blocked in Acquire, one at a time so that their queue order
// is known, and returns the channel their results arrive on.
func queueWaiters(t *testing.T, l *Limiter, ctx context.Context, wg *sync.WaitGroup, n int) <-chan waitResult {
	t.Helper()
	results := make(chan waitResult, n)
	base := l.Queued()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := l.Acquire(ctx)
			results <- waitResult{id: i, permit: p, err: err}
		}()
		eventually(t, "waiter to queue", func() bool { return l.Queued() == base+i+1 })
	}
	return results
}

func TestFIFO(t *testing.T) {
	l := mustNew(t, Config{Max: 1, QueueSize: 10, QueueTimeout: time.Minute})
	ctx := context.Background()
	held, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	const n = 6
	results := queueWaiters(t, l, ctx, &wg, n)
	for want := range n {
		held.Release(Outcome{Dropped: true})
		r := <-results
		if r.err != nil {
			t.Fatalf("waiter %d: %v", r.id, r.err)
		}
		if r.id != want {
			t.Fatalf("slot went to waiter %d, want %d (FIFO)", r.id, want)
		}
		if got := l.InFlight(); got != 1 {
			t.Fatalf("InFlight %d after a hand-off, want 1", got)
		}
		held = r.permit
	}
	held.Release(Outcome{Dropped: true})
	if l.InFlight() != 0 || l.Queued() != 0 {
		t.Fatalf("InFlight %d, Queued %d at the end", l.InFlight(), l.Queued())
	}
}

func TestQueueFullShedsAtOnce(t *testing.T) {
	l := mustNew(t, Config{Max: 1, QueueSize: 2, QueueTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	held, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := queueWaiters(t, l, ctx, &wg, 2)

	_, err = l.Acquire(ctx) // must not block: the test would time out
	var oe *OverloadedError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOverloaded) {
		t.Fatalf("Acquire with a full queue: %v, want an *OverloadedError", err)
	}
	if oe.Reason != ReasonQueueFull || oe.RetryAfter < minRetryAfter || oe.RetryAfter > maxRetryAfter {
		t.Errorf("shed: %+v", oe)
	}
	if l.Queued() != 2 {
		t.Errorf("Queued %d after a shed, want 2", l.Queued())
	}

	cancel()
	wg.Wait()
	for range 2 {
		if r := <-results; !errors.Is(r.err, context.Canceled) {
			t.Errorf("waiter %d: %v, want context.Canceled", r.id, r.err)
		}
	}
	held.Release(Outcome{Dropped: true})
	if l.InFlight() != 0 || l.Queued() != 0 {
		t.Fatalf("InFlight %d, Queued %d at the end", l.InFlight(), l.Queued())
	}
}

func TestNoQueue(t *testing.T) {
	l := mustNew(t, Config{Max: 1, QueueSize: -1})
	held, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(Outcome{})
	var oe *OverloadedError
	if _, err := l.Acquire(context.Background()); !errors.As(err, &oe) || oe.Reason != ReasonQueueFull {
		t.Fatalf("Acquire without a queue: %v", err)
	}
}

func TestQueueTimeout(t *testing.T) {
	l := mustNew(t, Config{Max: 1, QueueTimeout: 20 * time.Millisecond})
	held, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Acquire(context.Background())
	var oe *OverloadedError
	if !errors.As(err, &oe) || !errors.Is(err, ErrOverloaded) {
		t.Fatalf("Acquire past the queue timeout: %v, want an *OverloadedError", err)
	}
	if oe.Reason != ReasonQueueTimeout || oe.RetryAfter <= 0 {
		t.Errorf("shed: %+v", oe)
	}
	if l.Queued() != 0 || l.InFlight() != 1 {
		t.Errorf("Queued %d, InFlight %d after a timeout, want 0, 1", l.Queued(), l.InFlight())
	}
	held.Release(Outcome{})
	if p, ok := l.TryAcquire(); !ok {
		t.Error("no slot after the holder released")
	} else {
		p.Release(Outcome{})
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	l := mustNew(t, Config{Max: 1, QueueTimeout: time.Minute})
	held, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	results := queueWaiters(t, l, ctx, &wg, 1)
	cancel()
	wg.Wait()
	r := <-results
	if !errors.Is(r.err, context.Canceled) || errors.Is(r.err, ErrOverloaded) || r.permit != nil {
		t.Fatalf("cancelled waiter: %+v", r)
	}
	if l.Queued() != 0 || l.InFlight() != 1 {
		t.Fatalf("Queued %d, InFlight %d after a cancel, want 0, 1", l.Queued(), l.InFlight())
	}
	held.Release(Outcome{})
	if l.InFlight() != 0 {
		t.Fatalf("InFlight %d, want 0", l.InFlight())
	}
}

// TestLeavingWaiterRace releases the only slot at the moment its waiter leaves (cancelled, or
// at its queue deadline), many times: the slot must end up either with the waiter (which then
// releases it) or free, never lost.
func TestLeavingWaiterRace(t *testing.T) {
	// The clock never advances and the exports report running an hour: the drain looks fast next
	// to them, so no predicted wait sheds the waiter and the race is the one tested.
	frozen := newFakeClock()
	long := Outcome{Duration: time.Hour, Dropped: true}
	for _, byTimeout := range []bool{false, true} {
		l := mustNew(t, Config{Max: 1, QueueTimeout: time.Millisecond, Now: frozen.Now})
		if !byTimeout {
			l.cfg.QueueTimeout = time.Minute
		}
		granted := 0
		for i := range 300 {
			held, err := l.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var cancelling sync.WaitGroup
			done := make(chan waitResult, 1)
			go func() {
				p, err := l.Acquire(ctx)
				done <- waitResult{permit: p, err: err}
			}()
			if byTimeout {
				// The waiter may time out before it is seen queued: jitter around its deadline.
				time.Sleep(time.Duration(i%20) * 100 * time.Microsecond)
			} else {
				eventually(t, "waiter to queue", func() bool { return l.Queued() == 1 })
				if i%2 == 0 {
					// The waiter wakes on ctx.Done but needs the lock, which Release below
					// most often takes first: the slot is handed to a waiter that is leaving.
					cancel()
				} else {
					cancelling.Go(cancel)
				}
			}
			held.Release(long)
			r := <-done
			cancelling.Wait()
			cancel()
			if r.permit != nil {
				granted++
				r.permit.Release(long)
			}
			if l.InFlight() != 0 || l.Queued() != 0 {
				t.Fatalf("byTimeout=%v: InFlight %d, Queued %d after the race (waiter: %v)", byTimeout, l.InFlight(), l.Queued(), r.err)
			}
		}
		t.Logf("byTimeout=%v: the waiter got the slot %d times of 300", byTimeout, granted)
	}
}

// TestStressNoLeak runs many goroutines that acquire with random cancellations and deadlines,
// hold for random times and release with random outcomes. Afterwards nothing may be held or
// queued, and a fresh Acquire must succeed at once.
func TestStressNoLeak(t *testing.T) {
	const (
		workers = 32
		iters   = 300
		maxSlot = 4
	)
	var violations atomic.Int64
	l := mustNew(t, Config{
		Max: maxSlot, Min: 1, QueueSize: 8, QueueTimeout: 2 * time.Millisecond,
		OnChange: func(limit, inFlight, queued int) {
			if limit < 1 || limit > maxSlot || inFlight < 0 || queued < 0 || queued > 8 {
				violations.Add(1)
			}
		},
	})
	var (
		wg                          sync.WaitGroup
		admitted, shed, interrupted atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range iters {
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(4) == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rng.IntN(1500))*time.Microsecond)
				}
				var timer *time.Timer
				if rng.IntN(8) == 0 {
					timer = time.AfterFunc(time.Duration(rng.IntN(1000))*time.Microsecond, cancel)
				}
				p, err := l.Acquire(ctx)
				switch {
				case err == nil:
					admitted.Add(1)
					time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
					o := Outcome{Rows: rng.Int64N(1e6), Failed: rng.IntN(20) == 0, Dropped: rng.IntN(10) == 0}
					p.Release(o)
					if rng.IntN(4) == 0 {
						p.Release(o) // a second release must not free a second slot
					}
				case errors.Is(err, ErrOverloaded):
					shed.Add(1)
				case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
					interrupted.Add(1)
				default:
					t.Errorf("Acquire: %v", err)
				}
				if timer != nil {
					timer.Stop() // a cancel already running is harmless: cancel is idempotent
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	t.Logf("admitted %d, shed %d, interrupted %d; final limit %d", admitted.Load(), shed.Load(), interrupted.Load(), l.Limit())
	if l.InFlight() != 0 || l.Queued() != 0 {
		t.Fatalf("InFlight %d, Queued %d after the stress", l.InFlight(), l.Queued())
	}
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d OnChange reports out of bounds", v)
	}
	if admitted.Load() == 0 || shed.Load() == 0 {
		t.Fatalf("the stress did not exercise both paths: admitted %d, shed %d", admitted.Load(), shed.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p, ok := l.TryAcquire()
	if !ok {
		t.Fatal("TryAcquire failed on an idle limiter")
	}
	p.Release(Outcome{Dropped: true})
	if p, err := l.Acquire(ctx); err != nil {
		t.Fatalf("Acquire on an idle limiter: %v", err)
	} else {
		p.Release(Outcome{Dropped: true})
	}
}

// TestShrinkDoesNotPreempt lowers the limit under four running exports: none is preempted, and
// no new one starts until fewer than the limit run.
func TestShrinkDoesNotPreempt(t *testing.T) {
	l := mustNew(t, Config{Max: 4, QueueTimeout: time.Minute})
	var held []*Permit
	for range 4 {
		p, ok := l.TryAcquire()
		if !ok {
			t.Fatal("TryAcquire failed under the limit")
		}
		held = append(held, p)
	}
	l.mu.Lock()
	l.ctrl.limit = 2 // as if the controller had cut
	l.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	results := queueWaiters(t, l, context.Background(), &wg, 1)
	held[0].Release(Outcome{Dropped: true})
	held[1].Release(Outcome{Dropped: true})
	if l.InFlight() != 2 || l.Queued() != 1 {
		t.Fatalf("InFlight %d, Queued %d with limit 2, want 2, 1", l.InFlight(), l.Queued())
	}
	held[2].Release(Outcome{Dropped: true})
	r := <-results
	if r.err != nil {
		t.Fatal(r.err)
	}
	if l.InFlight() != 2 || l.Queued() != 0 {
		t.Fatalf("InFlight %d, Queued %d, want 2, 0", l.InFlight(), l.Queued())
	}
	r.permit.Release(Outcome{Dropped: true})
	held[3].Release(Outcome{Dropped: true})
}

func TestOnChange(t *testing.T) {
	type gauge struct{ limit, inFlight, queued int }
	var got []gauge
	l := mustNew(t, Config{Max: 2, OnChange: func(limit, inFlight, queued int) {
		got = append(got, gauge{limit, inFlight, queued})
	}})
	p1, _ := l.TryAcquire()
	p2, _ := l.TryAcquire()
	p1.Release(Outcome{Dropped: true})
	p2.Release(Outcome{Dropped: true})
	p2.Release(Outcome{Dropped: true}) // ignored: no report
	want := []gauge{{2, 0, 0}, {2, 1, 0}, {2, 2, 0}, {2, 1, 0}, {2, 0, 0}}
	if len(got) != len(want) {
		t.Fatalf("OnChange reports %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("OnChange reports %v, want %v", got, want)
		}
	}
}

// WouldShed answers what Acquire would do at once, without taking or
// queueing anything: nil with a free slot or room in the queue, the
// queue-full shed when the queue is full.
func TestWouldShed(t *testing.T) {
	l := mustNew(t, Config{Max: 1, QueueSize: 1, QueueTimeout: time.Minute})
	if err := l.WouldShed(); err != nil {
		t.Fatalf("free slot: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WouldShed(); err != nil {
		t.Fatalf("slot taken, queue empty: %v (a create would queue)", err)
	}
	var wg sync.WaitGroup
	results := queueWaiters(t, l, ctx, &wg, 1)
	var oe *OverloadedError
	if err := l.WouldShed(); !errors.As(err, &oe) || oe.Reason != ReasonQueueFull || oe.RetryAfter <= 0 {
		t.Fatalf("queue full: %v, want a queue_full OverloadedError with a retry hint", err)
	}
	if l.InFlight() != 1 || l.Queued() != 1 {
		t.Fatalf("WouldShed changed the limiter: InFlight %d, Queued %d", l.InFlight(), l.Queued())
	}
	held.Release(Outcome{Dropped: true})
	r := <-results
	wg.Wait()
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.permit.Release(Outcome{Dropped: true})
	if err := l.WouldShed(); err != nil {
		t.Fatalf("idle again: %v", err)
	}
}

// A reservation takes a free slot at once; otherwise it queues in turn
// with the creates (never shed, no deadline), its callback runs when its
// slot is handed over, and Take returns it. Cancelled while queued it
// leaves the queue; cancelled after the hand-over, its slot goes on to the
// next waiter.
func TestReserve(t *testing.T) {
	l := mustNew(t, Config{Max: 1, QueueSize: 1, QueueTimeout: time.Minute})
	free := l.Reserve(func() { t.Error("ready called for a slot taken at once") })
	held, ok := free.Take()
	if !ok || l.InFlight() != 1 {
		t.Fatalf("reservation with a free slot: %v, InFlight %d", ok, l.InFlight())
	}
	if _, ok := free.Take(); ok {
		t.Fatal("second Take returned a permit")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	results := queueWaiters(t, l, ctx, &wg, 1) // a create first in line
	readies := make(chan int, 4)
	r1 := l.Reserve(func() { readies <- 1 }) // beyond QueueSize: a reservation is never shed
	r2 := l.Reserve(func() { readies <- 2 })
	if l.Queued() != 3 {
		t.Fatalf("Queued %d, want 3", l.Queued())
	}
	if _, ok := r1.Take(); ok {
		t.Fatal("Take before the hand-over returned a permit")
	}
	held.Release(Outcome{Dropped: true}) // to the create, first in line
	create := <-results
	wg.Wait()
	if create.err != nil {
		t.Fatal(create.err)
	}
	create.permit.Release(Outcome{Dropped: true}) // to r1
	if got := <-readies; got != 1 {
		t.Fatalf("ready %d first, want 1", got)
	}
	p1, ok := r1.Take()
	if !ok {
		t.Fatal("r1 handed its slot but Take failed")
	}
	p1.Release(Outcome{Dropped: true}) // to r2, which cancels without taking it
	if got := <-readies; got != 2 {
		t.Fatalf("ready %d, want 2", got)
	}
	r2.Cancel()
	if l.InFlight() != 0 || l.Queued() != 0 {
		t.Fatalf("after cancelling a handed-over reservation: InFlight %d, Queued %d", l.InFlight(), l.Queued())
	}
	// Cancelled while still queued: it leaves the queue.
	hold, _ := l.Acquire(ctx)
	r3 := l.Reserve(func() { t.Error("ready called for a cancelled reservation") })
	r3.Cancel()
	r3.Cancel()
	if l.Queued() != 0 {
		t.Fatalf("Queued %d after cancel", l.Queued())
	}
	hold.Release(Outcome{Dropped: true})
	if l.InFlight() != 0 {
		t.Fatalf("InFlight %d at the end", l.InFlight())
	}
}
