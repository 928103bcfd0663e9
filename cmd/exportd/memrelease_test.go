package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Memory is released once an idle period has lasted settle, never while an
// export runs, and at most once per every.
func TestMemReleaserOnlyWhenIdle(t *testing.T) {
	var n atomic.Int32
	r := newMemReleaser()
	r.settle, r.every = 20*time.Millisecond, 200*time.Millisecond
	r.release = func() { n.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	r.setRunning(1)
	r.setRunning(0)
	r.setRunning(1) // busy again before settle: no release
	time.Sleep(100 * time.Millisecond)
	if got := n.Load(); got != 0 {
		t.Fatalf("released %d times while an export ran", got)
	}
	r.setRunning(0)
	waitFor(t, func() bool { return n.Load() == 1 })
	r.setRunning(1)
	r.setRunning(0) // a second idle period at once: waits for every
	time.Sleep(50 * time.Millisecond)
	if got := n.Load(); got != 1 {
		t.Fatalf("released %d times within %v", got, r.every)
	}
	waitFor(t, func() bool { return n.Load() == 2 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
