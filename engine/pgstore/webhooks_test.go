package pgstore

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/webhook"
)

func newEndpoint(t *testing.T, s *Store, kind, ref, enterprise, client string, events ...string) *webhook.Endpoint {
	t.Helper()
	if len(events) == 0 {
		events = webhook.Events
	}
	w := &webhook.Endpoint{ID: uuid.NewString(), URL: "https://hooks.example/" + uuid.NewString(), ScopeKind: kind,
		ScopeRef: ref, EnterpriseRef: enterprise, ClientRef: client, Events: events, Secret: "whsec_x", CreatedBy: "users/u"}
	if err := s.CreateEndpoint(context.Background(), w, 0); err != nil {
		t.Fatal(err)
	}
	// Abandon what is left so later tests' claims never see it.
	t.Cleanup(func() { _ = s.DeleteEndpoint(context.Background(), w.ID) })
	return w
}

// startExport creates and starts an export of scope (kind, ref) under
// enterprise (client for accounts).
func startExport(t *testing.T, s *Store, kind, ref, enterprise, client string) *engine.Export {
	t.Helper()
	ctx := context.Background()
	x := newExport(enterprise)
	x.ScopeKind, x.ScopeRef, x.ClientRef = kind, ref, client
	if _, _, err := s.Create(ctx, x, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, x.ID, x.Owner, x.Version, "", 0); err != nil {
		t.Fatal(err)
	}
	return x
}

// eventsOf returns "type export_id" of every delivery of endpoint, sorted.
func eventsOf(t *testing.T, s *Store, endpoint string) []string {
	t.Helper()
	ds, err := s.Deliveries(context.Background(), endpoint, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.Type+" "+d.ExportID)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Every path that ends an export writes its event in the same statement's
// transaction: Finish (ready, failed), Cancel, ReapLost, FailOwned,
// ExpireDue. Non-final transitions (start, heartbeat) write none, and a
// repeated final write (lost compare-and-set) none either.
func TestEveryFinalPathWritesItsEvent(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	w := newEndpoint(t, s, engine.KindEnterprise, ent, ent, "")
	var want []string

	ready := startExport(t, s, engine.KindEnterprise, ent, ent, "")
	if _, err := s.Finish(ctx, ready.ID, ready.Owner, ready.Version, Final{Status: engine.StatusReady, RowCount: 3, ByteSize: 30, Checksum: "ab", Retention: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	want = append(want, webhook.EventReady+" "+ready.ID)

	failed := startExport(t, s, engine.KindEnterprise, ent, ent, "")
	if _, err := s.Finish(ctx, failed.ID, failed.Owner, failed.Version, Final{Status: engine.StatusFailed, FailureReason: engine.ReasonUpstream}); err != nil {
		t.Fatal(err)
	}
	// The loser of a race writes nothing.
	if _, err := s.Finish(ctx, failed.ID, failed.Owner, failed.Version, Final{Status: engine.StatusReady}); !errors.Is(err, ErrLost) {
		t.Fatalf("second finish: %v", err)
	}
	want = append(want, webhook.EventFailed+" "+failed.ID)

	cancelled := startExport(t, s, engine.KindEnterprise, ent, ent, "")
	if _, err := s.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	want = append(want, webhook.EventCancelled+" "+cancelled.ID)

	reaped := startExport(t, s, engine.KindEnterprise, ent, ent, "")
	if _, err := s.pool.Exec(ctx, `UPDATE operations_activity_exports SET heartbeat_at = now() - interval '10 hours' WHERE id = $1`, reaped.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReapLost(ctx, 9*time.Hour, 1000)
	if err != nil || len(got) == 0 {
		t.Fatalf("reap: %d %v", len(got), err)
	}
	want = append(want, webhook.EventFailed+" "+reaped.ID)

	owned := newExport(ent)
	owned.Owner = "replica-" + uuid.NewString()
	if _, _, err := s.Create(ctx, owned, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FailOwned(ctx, owned.Owner); err != nil {
		t.Fatal(err)
	}
	want = append(want, webhook.EventFailed+" "+owned.ID)

	time.Sleep(400 * time.Millisecond) // the ready export's retention passes
	if _, err := s.ExpireDue(ctx, 100000); err != nil {
		t.Fatal(err)
	}
	want = append(want, webhook.EventExpired+" "+ready.ID)

	live := startExport(t, s, engine.KindEnterprise, ent, ent, "")
	if _, err := s.Heartbeat(ctx, live.ID, live.Owner, live.Version, 5, 50); err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	if got := eventsOf(t, s, w.ID); !equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
}

// Coverage as SPEC §2 on recorded parents; events filter; other tenants
// and deleted endpoints get nothing.
func TestEventCoverage(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	entA, entB := "enterprises/"+uuid.NewString(), "enterprises/"+uuid.NewString()
	client := "clients/" + uuid.NewString()
	account := "client-accounts/" + uuid.NewString()
	onEnt := newEndpoint(t, s, engine.KindEnterprise, entA, entA, "")
	onClient := newEndpoint(t, s, engine.KindClient, client, entA, "")
	onAccount := newEndpoint(t, s, engine.KindClientAccount, account, entA, client)
	onlyReady := newEndpoint(t, s, engine.KindEnterprise, entA, entA, "", webhook.EventReady)
	onClientOfB := newEndpoint(t, s, engine.KindClient, client, entB, "")
	other := newEndpoint(t, s, engine.KindEnterprise, entB, entB, "")
	deleted := newEndpoint(t, s, engine.KindEnterprise, entA, entA, "")
	if err := s.DeleteEndpoint(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEndpoint(ctx, deleted.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	xEnt := startExport(t, s, engine.KindEnterprise, entA, entA, "")
	xClient := startExport(t, s, engine.KindClient, client, entA, "")
	xAccount := startExport(t, s, engine.KindClientAccount, account, entA, client)
	for _, x := range []*engine.Export{xEnt, xClient, xAccount} {
		if _, err := s.Cancel(ctx, x.ID); err != nil {
			t.Fatal(err)
		}
	}
	c := webhook.EventCancelled + " "
	for _, tt := range []struct {
		name string
		w    *webhook.Endpoint
		want []string
	}{
		{"enterprise", onEnt, []string{c + xEnt.ID, c + xClient.ID, c + xAccount.ID}},
		{"client", onClient, []string{c + xClient.ID, c + xAccount.ID}},
		{"account", onAccount, []string{c + xAccount.ID}},
		{"events filter", onlyReady, nil},
		{"client under another enterprise", onClientOfB, nil},
		{"other enterprise", other, nil},
		{"deleted", deleted, nil},
	} {
		want := append([]string(nil), tt.want...)
		sort.Strings(want)
		if got := eventsOf(t, s, tt.w.ID); !equal(got, want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, want)
		}
	}
}

// claimOf claims and keeps the deliveries of endpoint (others are released
// at once by recording a failure... they belong to no other test: every
// test abandons its own at cleanup).
func claimAll(t *testing.T, s *Store, owner string, n int, lease time.Duration) []*webhook.Claimed {
	t.Helper()
	cs, err := s.ClaimDeliveries(context.Background(), owner, n, 1000, lease)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// The snapshot is the record at the event: the same on every claim, even
// after the record is changed or deleted; claims are exclusive across
// concurrent claimers; a lost lease is retaken and the old holder's
// outcome is refused; backoff and give-up follow the schedule.
func TestClaimLeaseFenceBackoff(t *testing.T) {
	s := newStore(t)
	other := New(openPool(t))
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	w := newEndpoint(t, s, engine.KindEnterprise, ent, ent, "", webhook.EventReady)
	const n = 40
	ids := map[string]bool{}
	for i := 0; i < n; i++ {
		x := startExport(t, s, engine.KindEnterprise, ent, ent, "")
		if _, err := s.Finish(ctx, x.ID, x.Owner, x.Version, Final{Status: engine.StatusReady, RowCount: int64(i), ByteSize: 7, Checksum: "cd", Retention: time.Hour}); err != nil {
			t.Fatal(err)
		}
		ids[x.ID] = true
	}
	// Two claimers at once, batches of 7: every delivery claimed exactly once.
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, st := range []*Store{s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cs, err := st.ClaimDeliveries(ctx, "claimer", 7, 1000, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				for _, c := range cs {
					seen[c.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d deliveries claimed, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("delivery %s claimed %d times", id, k)
		}
	}
	if err := s.DeleteEndpoint(ctx, w.ID); err != nil {
		t.Fatal(err)
	}

	// One delivery through its whole life.
	w = newEndpoint(t, s, engine.KindEnterprise, ent, ent, "", webhook.EventReady)
	x := startExport(t, s, engine.KindEnterprise, ent, ent, "")
	if _, err := s.Finish(ctx, x.ID, x.Owner, x.Version, Final{Status: engine.StatusReady, RowCount: 42, ByteSize: 420, Checksum: "ef", Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	first := claimAll(t, s, "replica-a", 10, 200*time.Millisecond)
	if len(first) != 1 || first[0].ExportID != x.ID || first[0].Attempts != 1 || first[0].Type != webhook.EventReady {
		t.Fatalf("claim: %+v", first)
	}
	snap := first[0].Export
	if snap.ID != x.ID || snap.Status != engine.StatusReady || snap.RowCount != 42 || snap.Checksum != "ef" ||
		snap.GeneratedBy != x.GeneratedBy || snap.FinishedAt.IsZero() || snap.ExpiresAt.Sub(snap.FinishedAt) != time.Hour {
		t.Fatalf("snapshot: %+v", snap)
	}
	if first[0].URL != w.URL || first[0].Secret != w.Secret {
		t.Fatalf("claim carries %q %q", first[0].URL, first[0].Secret)
	}
	if again := claimAll(t, s, "replica-b", 10, time.Second); len(again) != 0 {
		t.Fatalf("claimed under a live lease: %+v", again)
	}
	// The record changes, then goes: the snapshot does not.
	if _, err := s.pool.Exec(ctx, `UPDATE operations_activity_exports SET row_count = 99 WHERE id = $1`, x.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM operations_activity_exports WHERE id = $1`, x.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // replica-a's lease ends
	second := claimAll(t, s, "replica-b", 10, time.Hour)
	if len(second) != 1 || second[0].ID != first[0].ID || second[0].Attempts != 2 || second[0].Epoch == first[0].Epoch {
		t.Fatalf("retake: %+v", second)
	}
	if second[0].Export.RowCount != 42 || second[0].OccurredAt != first[0].OccurredAt {
		t.Fatalf("snapshot changed: %+v", second[0].Export)
	}
	// replica-a's late outcome is fenced off.
	b := webhook.Backoff{Base: 100 * time.Millisecond, Max: 400 * time.Millisecond, GiveUp: time.Hour}
	if _, err := s.RecordDelivery(ctx, webhook.Outcome{ID: first[0].ID, Owner: "replica-a", Epoch: first[0].Epoch, OK: true, Status: 200}, b); !errors.Is(err, ErrLost) {
		t.Fatalf("stale outcome: %v", err)
	}
	// Failures back off 100, 200, 400, 400 ms (attempts 2.. here).
	cur := second[0]
	for i, wantDelay := range []time.Duration{200, 400, 400} {
		state, err := s.RecordDelivery(ctx, webhook.Outcome{ID: cur.ID, Owner: "replica-b", Epoch: cur.Epoch, Status: 500, Error: "HTTP 500"}, b)
		if err != nil || state != webhook.StatePending {
			t.Fatalf("failure %d: %q %v", i, state, err)
		}
		var delay time.Duration
		if err := s.pool.QueryRow(ctx, `SELECT extract(epoch FROM next_attempt_at - last_attempt_at) * 1e9
			FROM operations_activity_export_webhook_deliveries WHERE id = $1`, cur.ID).Scan(&delay); err != nil {
			t.Fatal(err)
		}
		wantDelay *= time.Millisecond
		if delay < wantDelay || delay > wantDelay+100*time.Millisecond {
			t.Fatalf("after attempt %d: next attempt in %v, want %v", cur.Attempts, delay, wantDelay)
		}
		if early := claimAll(t, s, "replica-b", 10, time.Hour); len(early) != 0 {
			t.Fatalf("claimed before its backoff: %+v", early)
		}
		time.Sleep(wantDelay + 20*time.Millisecond)
		next := claimAll(t, s, "replica-b", 10, time.Hour)
		if len(next) != 1 || next[0].ID != cur.ID || next[0].Attempts != cur.Attempts+1 {
			t.Fatalf("after backoff: %+v", next)
		}
		cur = next[0]
	}
	ds, err := s.Deliveries(ctx, w.ID, 10)
	if err != nil || len(ds) != 1 || ds[0].LastStatus != 500 || ds[0].LastError != "HTTP 500" || ds[0].NextAttemptAt.IsZero() {
		t.Fatalf("log: %+v %v", ds, err)
	}
	state, err := s.RecordDelivery(ctx, webhook.Outcome{ID: cur.ID, Owner: "replica-b", Epoch: cur.Epoch, OK: true, Status: 204}, b)
	if err != nil || state != webhook.StateDelivered {
		t.Fatalf("delivered: %q %v", state, err)
	}
	if _, err := s.RecordDelivery(ctx, webhook.Outcome{ID: cur.ID, Owner: "replica-b", Epoch: cur.Epoch, OK: true, Status: 204}, b); !errors.Is(err, ErrLost) {
		t.Fatalf("recorded twice: %v", err)
	}
	ds, _ = s.Deliveries(ctx, w.ID, 10)
	if len(ds) != 1 || ds[0].State != webhook.StateDelivered || ds[0].Attempts != 5 || !ds[0].NextAttemptAt.IsZero() || ds[0].FinishedAt.IsZero() {
		t.Fatalf("log after delivery: %+v", ds[0])
	}
	if more := claimAll(t, s, "replica-b", 10, time.Hour); len(more) != 0 {
		t.Fatalf("delivered yet claimed: %+v", more)
	}
}

// A delivery whose next attempt would fall past GiveUp is abandoned;
// deleting an endpoint abandons its pending deliveries and fences an
// attempt under way; retention removes finished rows and old endpoints.
func TestGiveUpDeleteRetention(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	w := newEndpoint(t, s, engine.KindEnterprise, ent, ent, "", webhook.EventCancelled)
	for i := 0; i < 2; i++ {
		x := startExport(t, s, engine.KindEnterprise, ent, ent, "")
		if _, err := s.Cancel(ctx, x.ID); err != nil {
			t.Fatal(err)
		}
	}
	cs := claimAll(t, s, "r", 10, time.Hour)
	if len(cs) != 2 {
		t.Fatalf("claimed %d", len(cs))
	}
	b := webhook.Backoff{Base: time.Second, Max: time.Hour, GiveUp: 500 * time.Millisecond}
	state, err := s.RecordDelivery(ctx, webhook.Outcome{ID: cs[0].ID, Owner: "r", Epoch: cs[0].Epoch, Error: "dial: refused"}, b)
	if err != nil || state != webhook.StateAbandoned {
		t.Fatalf("give up: %q %v", state, err)
	}
	if err := s.DeleteEndpoint(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordDelivery(ctx, webhook.Outcome{ID: cs[1].ID, Owner: "r", Epoch: cs[1].Epoch, OK: true, Status: 200}, b); !errors.Is(err, ErrLost) {
		t.Fatalf("outcome after delete: %v", err)
	}
	if _, err := s.GetEndpoint(ctx, w.ID); !errors.Is(err, webhook.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	ds, _ := s.Deliveries(ctx, w.ID, 10)
	for _, d := range ds {
		if d.State != webhook.StateAbandoned {
			t.Fatalf("after delete: %+v", d)
		}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE operations_activity_export_webhook_deliveries SET finished_at = now() - interval '8 days' WHERE endpoint_id = $1`, w.ID); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteOldDeliveries(ctx, 7*24*time.Hour, 1)
	if err != nil || n != 1 {
		t.Fatalf("retention batch: %d %v", n, err)
	}
	if n, err = s.DeleteOldDeliveries(ctx, 7*24*time.Hour, 1000); err != nil || n < 1 {
		t.Fatalf("retention rest: %d %v", n, err)
	}
	if ds, _ := s.Deliveries(ctx, w.ID, 10); len(ds) != 0 {
		t.Fatalf("%d deliveries left", len(ds))
	}
	age, err := s.OldestPending(ctx)
	if err != nil || age < 0 {
		t.Fatalf("oldest: %v %v", age, err)
	}
}

// Endpoints list newest first by keyset pages, on the visibility filter.
func TestListEndpoints(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	var made []string
	for i := 0; i < 5; i++ {
		made = append(made, newEndpoint(t, s, engine.KindEnterprise, ent, ent, "").ID)
	}
	newEndpoint(t, s, engine.KindEnterprise, "enterprises/"+uuid.NewString(), "enterprises/x", "")
	var got []string
	var after *engine.Cursor
	for {
		page, err := s.ListEndpoints(ctx, engine.Visibility{Enterprises: []string{ent}}, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range page {
			got = append(got, w.ID)
		}
		if len(page) < 2 {
			break
		}
		last := page[len(page)-1]
		after = &engine.Cursor{GeneratedAtMs: last.CreatedAt.UnixMilli(), ID: last.ID}
	}
	if len(got) != 5 {
		t.Fatalf("listed %d of 5", len(got))
	}
	seen := map[string]bool{}
	for _, id := range got {
		seen[id] = true
	}
	for _, id := range made {
		if !seen[id] {
			t.Fatalf("%s not listed", id)
		}
	}
}

// At most perEndpoint deliveries of one endpoint are under a live lease at
// once, across claimers; other endpoints' deliveries are claimed beside.
func TestClaimPerEndpointBound(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	a := newEndpoint(t, s, engine.KindEnterprise, ent, ent, "", webhook.EventCancelled)
	for i := 0; i < 6; i++ {
		x := startExport(t, s, engine.KindEnterprise, ent, ent, "")
		if _, err := s.Cancel(ctx, x.ID); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if age, err := s.OldestPending(ctx); err != nil || age < 100*time.Millisecond || age > time.Minute {
		t.Fatalf("oldest pending: %v %v", age, err)
	}
	first, err := s.ClaimDeliveries(ctx, "r1", 10, 2, time.Hour)
	if err != nil || len(first) != 2 {
		t.Fatalf("first claim: %d %v", len(first), err)
	}
	if again, err := s.ClaimDeliveries(ctx, "r2", 10, 2, time.Hour); err != nil || len(again) != 0 {
		t.Fatalf("claim past the bound: %d %v", len(again), err)
	}
	// A second endpoint of the same events is not held back.
	b := newEndpoint(t, s, engine.KindEnterprise, ent, ent, "", webhook.EventCancelled)
	x := startExport(t, s, engine.KindEnterprise, ent, ent, "")
	if _, err := s.Cancel(ctx, x.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimDeliveries(ctx, "r2", 10, 2, time.Hour)
	if err != nil || len(got) != 1 || got[0].EndpointID != b.ID {
		t.Fatalf("other endpoint: %+v %v", got, err)
	}
	// An outcome frees a place.
	if _, err := s.RecordDelivery(ctx, webhook.Outcome{ID: first[0].ID, Owner: "r1", Epoch: first[0].Epoch, OK: true, Status: 200}, webhook.DefaultBackoff); err != nil {
		t.Fatal(err)
	}
	got, err = s.ClaimDeliveries(ctx, "r2", 10, 2, time.Hour)
	if err != nil || len(got) != 1 || got[0].EndpointID != a.ID {
		t.Fatalf("after an outcome: %+v %v", got, err)
	}
}

// The per-tenant cap holds exactly under concurrent creates from three
// pools; deleting one frees a place.
func TestEndpointCapUnderRace(t *testing.T) {
	s := newStore(t)
	stores := []*Store{s, New(openPool(t)), New(openPool(t))}
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	var mu sync.Mutex
	var made []string
	refused := 0
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &webhook.Endpoint{ID: uuid.NewString(), URL: "https://h.example/", ScopeKind: engine.KindEnterprise,
				ScopeRef: ent, EnterpriseRef: ent, Events: webhook.Events, Secret: "whsec_x", CreatedBy: "users/u"}
			err := stores[i%3].CreateEndpoint(ctx, w, 5)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, webhook.ErrTooManyEndpoints):
				refused++
			case err != nil:
				t.Error(err)
			default:
				made = append(made, w.ID)
			}
		}()
	}
	wg.Wait()
	if len(made) != 5 || refused != 7 {
		t.Fatalf("%d created, %d refused; want 5 and 7", len(made), refused)
	}
	for _, id := range made {
		t.Cleanup(func() { _ = s.DeleteEndpoint(ctx, id) })
	}
	// Another tenant is not counted; a deleted endpoint frees its place.
	other := &webhook.Endpoint{ID: uuid.NewString(), URL: "https://h.example/", ScopeKind: engine.KindEnterprise,
		ScopeRef: "enterprises/" + uuid.NewString(), Events: webhook.Events, Secret: "whsec_x", CreatedBy: "users/u"}
	other.EnterpriseRef = other.ScopeRef
	if err := s.CreateEndpoint(ctx, other, 5); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.DeleteEndpoint(ctx, other.ID) })
	if err := s.DeleteEndpoint(ctx, made[0]); err != nil {
		t.Fatal(err)
	}
	again := &webhook.Endpoint{ID: uuid.NewString(), URL: "https://h.example/", ScopeKind: engine.KindEnterprise,
		ScopeRef: ent, EnterpriseRef: ent, Events: webhook.Events, Secret: "whsec_x", CreatedBy: "users/u"}
	if err := s.CreateEndpoint(ctx, again, 5); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	t.Cleanup(func() { _ = s.DeleteEndpoint(ctx, again.ID) })
}
