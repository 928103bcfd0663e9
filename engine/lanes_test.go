package engine

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/exportd/exportd/engine/source"
)

func TestLanesLongYieldsToShort(t *testing.T) {
	l := newLanes(1)
	ctx := context.Background()

	start := time.Now()
	l.yield(ctx, time.Hour) // no short export: no wait
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("yield with no short export waited %v", d)
	}

	leaveA := l.enterShort()
	leaveB := l.enterShort()
	released := make(chan time.Time, 1)
	go func() {
		l.yield(ctx, time.Hour)
		released <- time.Now()
	}()
	time.Sleep(50 * time.Millisecond)
	leaveA()
	leaveA() // idempotent
	select {
	case <-released:
		t.Fatal("long export went on while a short one still ran")
	case <-time.After(50 * time.Millisecond):
	}
	leftB := time.Now()
	leaveB()
	select {
	case at := <-released:
		if at.Before(leftB) {
			t.Fatal("released before the last short export left")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long export not released when the short ones ended")
	}

	// Bounded: a short export that never ends delays a block by at most max.
	leave := l.enterShort()
	defer leave()
	start = time.Now()
	l.yield(ctx, 100*time.Millisecond)
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("bounded yield took %v, want about 100ms", d)
	}
	// And a cancelled export does not wait at all.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	start = time.Now()
	l.yield(cctx, time.Hour)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("cancelled yield waited %v", d)
	}
}

func TestLaneByPlannedRows(t *testing.T) {
	e := &Engine{cfg: Config{ShortRows: 1000}, lanes: newLanes(1)}
	ctx := context.Background()
	q0 := source.Query{EnterpriseRef: "enterprises/x"}
	var sink strings.Builder

	leave := e.enterLane()
	r, q, w := e.lane(ctx, EmptyReader{}, q0, &sink, 1000, leave)
	if q.Priority != priorityShort || e.lanes.short != 1 {
		t.Fatalf("short export: priority %d, short lane count %d", q.Priority, e.lanes.short)
	}
	if _, ok := r.(yieldingReader); ok {
		t.Fatal("a short export must not yield")
	}
	if w != io.Writer(&sink) {
		t.Fatal("a short export writes to its sink directly")
	}
	leave()

	leave = e.enterLane()
	r, q, w = e.lane(ctx, EmptyReader{}, q0, &sink, 1001, leave)
	defer leave()
	if q.Priority != priorityLong || e.lanes.short != 0 {
		t.Fatalf("long export: priority %d, short lane count %d (it must leave the lane)", q.Priority, e.lanes.short)
	}
	if _, ok := r.(yieldingReader); !ok {
		t.Fatal("a long export must yield when reading")
	}
	if _, ok := w.(yieldingWriter); !ok {
		t.Fatal("a long export must yield when writing")
	}
	// Urgent work makes the long export's writes wait.
	done := e.Urgent()
	wrote := make(chan struct{})
	go func() {
		w.Write([]byte("x"))
		close(wrote)
	}()
	select {
	case <-wrote:
		t.Fatal("a long export wrote while urgent work ran")
	case <-time.After(50 * time.Millisecond):
	}
	done()
	<-wrote
}

// Long windows pass the sort gate one at a time (the replica's share of
// ClickHouse's cores), the next one as soon as the first has sorted; a
// cancelled wait gives up at once.
func TestSortGateOneLongSortAtATime(t *testing.T) {
	l := newLanes(1)
	ctx := context.Background()
	sorted := l.sortGate(ctx)
	passed := make(chan func(), 1)
	go func() { passed <- l.sortGate(ctx) }()
	select {
	case <-passed:
		t.Fatal("a second long window was sent while the first one sorted")
	case <-time.After(50 * time.Millisecond):
	}
	sorted()
	select {
	case next := <-passed:
		next()
	case <-time.After(5 * time.Second):
		t.Fatal("the second window was not sent once the first had sorted")
	}
	hold := l.sortGate(ctx)
	defer hold()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	l.sortGate(cctx)() // returns at once, holding nothing
}

// A plan made at admission stands in for the job's while fresh, not after.
func TestPlanForReusesFreshAdmissionPlan(t *testing.T) {
	r := &countingPlanner{}
	fresh := &admittedPlan{plan: &source.Plan{Total: 7}, at: time.Now()}
	if p, err := planFor(context.Background(), r, source.Query{}, fresh); err != nil || p.Total != 7 || r.plans != 0 {
		t.Fatalf("fresh admission plan: %v %v, %d plans", p, err, r.plans)
	}
	stale := &admittedPlan{plan: &source.Plan{Total: 7}, at: time.Now().Add(-2 * planReuse)}
	if p, err := planFor(context.Background(), r, source.Query{}, stale); err != nil || p.Total != 3 || r.plans != 1 {
		t.Fatalf("stale admission plan: %v %v, %d plans", p, err, r.plans)
	}
	if _, err := planFor(context.Background(), r, source.Query{}, nil); err != nil || r.plans != 2 {
		t.Fatalf("no admission plan: %v, %d plans", err, r.plans)
	}
}

type countingPlanner struct {
	Reader
	plans int
}

func (c *countingPlanner) Plan(context.Context, source.Query) (*source.Plan, error) {
	c.plans++
	return &source.Plan{Total: 3}, nil
}
