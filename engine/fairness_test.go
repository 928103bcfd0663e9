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

// heldEnterprises streams from ClickHouse but holds every export of a held
// enterprise after its first block until released, and reports starts.
type heldEnterprises struct {
	*source.ClickHouse
	mu      sync.Mutex
	held    map[string]chan struct{}
	started chan string
}

func newHeld(ents ...string) *heldEnterprises {
	h := &heldEnterprises{ClickHouse: source.New(chCfg, source.Options{}), held: map[string]chan struct{}{}, started: make(chan string, 100)}
	for _, e := range ents {
		h.held[e] = make(chan struct{})
	}
	return h
}

func (h *heldEnterprises) release(ent string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.held[ent]; ok {
		close(c)
		delete(h.held, ent)
	}
}

func (h *heldEnterprises) Stream(ctx context.Context, q source.Query, p *source.Plan, fn func(*activity.Block) error) (source.Stats, error) {
	h.started <- q.EnterpriseRef
	h.mu.Lock()
	gate := h.held[q.EnterpriseRef]
	h.mu.Unlock()
	return h.ClickHouse.Stream(ctx, q, p, func(b *activity.Block) error {
		if err := fn(b); err != nil {
			return err
		}
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
}

func fairEngine(t *testing.T, r engine.Reader, cfg engine.Config) *engine.Engine {
	t.Helper()
	st, _ := storage.NewFile(t.TempDir())
	cfg.Reader, cfg.Records, cfg.Store = r, records, st
	cfg.Heartbeat = 100 * time.Millisecond
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		eng.Shutdown(ctx)
	})
	return eng
}

func status(t *testing.T, eng *engine.Engine, id string) string {
	t.Helper()
	x, err := eng.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return x.Status
}

// One enterprise runs at most MaxPerEnterprise exports at once, on all
// replicas together; its others wait pending while another tenant's export
// starts at once; they start in turn as the running ones end.
func TestPerEnterpriseCapAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	a, b := "enterprises/"+uuidN("ea000000", 1), "enterprises/"+uuidN("eb000000", 1)
	seed(t, a, 20)
	seed(t, b, 20)
	r := newHeld(a)
	cfg := engine.Config{MaxExports: 4, MaxPerEnterprise: 2}
	r1, r2 := fairEngine(t, r, cfg), fairEngine(t, r, cfg)
	t.Cleanup(func() { r.release(a) })
	var ids []string
	for i := 0; i < 4; i++ {
		eng := []*engine.Engine{r1, r2}[i%2]
		x, err := eng.Submit(ctx, request(a))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, x.ID)
	}
	for i := 0; i < 2; i++ {
		select {
		case ent := <-r.started:
			if ent != a {
				t.Fatalf("started %s", ent)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("A's first two exports did not start")
		}
	}
	// Replica 1 has free slots, but A is at its cap on both replicas.
	y, err := r1.Submit(ctx, request(b))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ent := <-r.started:
		if ent != b {
			t.Fatalf("a third export of A started (cap 2): %s", ent)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B's export did not start beside A's")
	}
	if y, _ = r1.Wait(ctx, y.ID, 10*time.Second); y.Status != engine.StatusReady {
		t.Fatalf("B: %s", y.Status)
	}
	running, pending := 0, 0
	for i, id := range ids {
		switch s := status(t, []*engine.Engine{r1, r2}[i%2], id); s {
		case engine.StatusRunning:
			running++
		case engine.StatusPending:
			pending++
		default:
			t.Fatalf("A's export %d: %s", i, s)
		}
	}
	if running != 2 || pending != 2 {
		t.Fatalf("A: %d running, %d pending; want 2 and 2", running, pending)
	}
	r.release(a)
	for i, id := range ids {
		if x, _ := []*engine.Engine{r1, r2}[i%2].Wait(ctx, id, 20*time.Second); x.Status != engine.StatusReady {
			t.Fatalf("A's export %d after release: %s", i, x.Status)
		}
	}
}

// A replica's slot goes round-robin between enterprises that wait: B's one
// export waits for at most one of A's, not for A's whole backlog.
func TestRoundRobinBetweenEnterprises(t *testing.T) {
	ctx := context.Background()
	a, b := "enterprises/"+uuidN("ea000000", 2), "enterprises/"+uuidN("eb000000", 2)
	seed(t, a, 10)
	seed(t, b, 10)
	r := newHeld(a)
	eng := fairEngine(t, r, engine.Config{MaxExports: 1, MaxPerEnterprise: 10})
	t.Cleanup(func() { r.release(a) })
	var as []string
	for i := 0; i < 4; i++ {
		x, err := eng.Submit(ctx, request(a))
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, x.ID)
	}
	if ent := <-r.started; ent != a {
		t.Fatalf("first start: %s", ent)
	}
	y, err := eng.Submit(ctx, request(b))
	if err != nil {
		t.Fatal(err)
	}
	// A's running export ends; the slot's next turn is B's, before A's other 3.
	r.release(a)
	if ent := <-r.started; ent != b {
		t.Fatalf("after A's export, the slot went to %s, not B", ent)
	}
	if y, _ = eng.Wait(ctx, y.ID, 10*time.Second); y.Status != engine.StatusReady {
		t.Fatalf("B: %s", y.Status)
	}
	for _, id := range as {
		if x, _ := eng.Wait(ctx, id, 20*time.Second); x.Status != engine.StatusReady {
			t.Fatalf("A: %s", x.Status)
		}
	}
}

// Beyond MaxPendingPerEnterprise pending exports (all replicas), Submit is
// refused and nothing is recorded; other enterprises are not affected.
func TestPendingCap(t *testing.T) {
	ctx := context.Background()
	a, b := "enterprises/"+uuidN("ea000000", 3), "enterprises/"+uuidN("eb000000", 3)
	seed(t, a, 5)
	seed(t, b, 5)
	r := newHeld(a)
	eng := fairEngine(t, r, engine.Config{MaxExports: 4, MaxPerEnterprise: 1, MaxPendingPerEnterprise: 2})
	t.Cleanup(func() { r.release(a) })
	first, err := eng.Submit(ctx, request(a)) // runs (held)
	if err != nil {
		t.Fatal(err)
	}
	<-r.started
	for i := 0; i < 2; i++ { // pending: the cap of 1 running is taken
		if _, err := eng.Submit(ctx, request(a)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := eng.Submit(ctx, request(a)); !errors.Is(err, engine.ErrTooManyPending) {
		t.Fatalf("third pending export: %v", err)
	}
	if x, err := eng.Submit(ctx, request(b)); err != nil {
		t.Fatalf("another enterprise: %v", err)
	} else if x, _ = eng.Wait(ctx, x.ID, 10*time.Second); x.Status != engine.StatusReady {
		t.Fatalf("B: %s", x.Status)
	}
	r.release(a)
	if x, _ := eng.Wait(ctx, first.ID, 10*time.Second); x.Status != engine.StatusReady {
		t.Fatalf("A's first: %s", x.Status)
	}
}

// An export past ExportTimeout ends failed/timeout and leaves nothing.
func TestExportTimeout(t *testing.T) {
	ctx := context.Background()
	a := "enterprises/" + uuidN("ea000000", 4)
	seed(t, a, 5)
	r := newHeld(a) // never released: only the deadline ends it
	eng := fairEngine(t, r, engine.Config{ExportTimeout: 300 * time.Millisecond})
	x, err := eng.Submit(ctx, request(a))
	if err != nil {
		t.Fatal(err)
	}
	x, _ = eng.Wait(ctx, x.ID, 10*time.Second)
	if x.Status != engine.StatusFailed || x.FailureReason != engine.ReasonTimeout {
		t.Fatalf("got %s/%s", x.Status, x.FailureReason)
	}
	r.release(a)
}

// A job admitted with a slot can queue behind one of its enterprise that
// was admitted without (the share freed between the two creates while the
// replica's slots were busy). The slot holders start first, and the
// slot-less one after them: trying only the queue's first job left all
// three pending for ever (bench/overload's capacity phase hung on it).
func TestSlotHoldersQueuedBehindSlotlessStart(t *testing.T) {
	ctx := context.Background()
	a, b := "enterprises/"+uuidN("ea000000", 5), "enterprises/"+uuidN("eb000000", 5)
	seed(t, a, 10)
	seed(t, b, 10)
	r := newHeld(b)
	eng := fairEngine(t, r, engine.Config{MaxExports: 2, MaxPerEnterprise: 2})
	t.Cleanup(func() { r.release(b) })
	// B fills the replica's two slots.
	var bs []string
	for i := 0; i < 2; i++ {
		x, err := eng.Submit(ctx, request(b))
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, x.ID)
		<-r.started
	}
	// Two creates of A claim its share at admission (A holds none) and,
	// while they take their slots, a third is admitted without one and
	// reaches the queue first.
	for i := 0; i < 2; i++ {
		if !eng.ClaimShare(a) {
			t.Fatal("A holds no slot yet: its share must be free")
		}
	}
	first, err := eng.Submit(ctx, request(a))
	if err != nil {
		t.Fatal(err)
	}
	if eng.ClaimShare(a) {
		t.Fatal("a create claimed A's share while an export of A waits slot-less")
	}
	var held []string
	for i := 0; i < 2; i++ {
		x, _, err := eng.SubmitWith(ctx, request(a), nil, engine.SlotFunc(func(*engine.Export, time.Duration) {}))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, x.ID)
	}
	// Let the two jobs reach the queue (behind the first) before B's
	// slots free up; released earlier, the first would start before them.
	time.Sleep(300 * time.Millisecond)
	r.release(b)
	for _, id := range append(append(held, first.ID), bs...) {
		if x, _ := eng.Wait(ctx, id, 20*time.Second); x == nil || x.Status != engine.StatusReady {
			t.Fatalf("export %s did not end ready: %+v", id, x)
		}
	}
}

// A create of an enterprise with an export waiting here slot-less does not
// claim a share (it would overtake the waiting export and, repeated, starve
// it): it waits slot-less behind it, and both start in turn.
func TestNoShareClaimedPastSlotlessWaiter(t *testing.T) {
	ctx := context.Background()
	a, b := "enterprises/"+uuidN("ea100000", 5), "enterprises/"+uuidN("eb100000", 5)
	seed(t, a, 10)
	seed(t, b, 10)
	r := newHeld(b)
	eng := fairEngine(t, r, engine.Config{MaxExports: 2, MaxPerEnterprise: 2})
	t.Cleanup(func() { r.release(b) })
	var ids []string
	for i := 0; i < 2; i++ { // B fills the replica's two slots
		x, err := eng.Submit(ctx, request(b))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, x.ID)
		<-r.started
	}
	if !eng.ClaimShare(a) {
		t.Fatal("A holds nothing and waits for nothing: its share must be free")
	}
	eng.ReturnShare(a)
	waiting, err := eng.Submit(ctx, request(a)) // no slot free: it waits slot-less
	if err != nil {
		t.Fatal(err)
	}
	// Once the waiting job has reached its queue (its goroutine enqueues
	// it), no create claims A's share.
	for deadline := time.Now().Add(5 * time.Second); eng.ClaimShare(a); time.Sleep(5 * time.Millisecond) {
		eng.ReturnShare(a)
		if time.Now().After(deadline) {
			t.Fatal("a create claimed A's share past an export of A waiting slot-less")
		}
	}
	later, err := eng.Submit(ctx, request(a))
	if err != nil {
		t.Fatal(err)
	}
	r.release(b)
	for _, id := range append(ids, waiting.ID, later.ID) {
		if x, _ := eng.Wait(ctx, id, 20*time.Second); x == nil || x.Status != engine.StatusReady {
			t.Fatalf("export %s did not end ready: %+v", id, x)
		}
	}
}
