package pgstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/schedules"
)

func newSchedule(ent string, every schedules.Every, startsAt time.Time) *schedules.Schedule {
	return &schedules.Schedule{ID: uuid.NewString(), Every: every, TimeZone: "UTC", StartsAt: startsAt, DelayMinutes: 60,
		Export:        schedules.Template{Format: "csv", Compression: "none", ScopeKind: engine.KindEnterprise, ScopeRef: ent},
		EnterpriseRef: ent, CreatedBy: "users/" + uuid.NewString(), NextDueAt: startsAt}
}

func TestScheduleCRUDAndList(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ent := "enterprises/" + uuid.NewString()
	var made []*schedules.Schedule
	for i := 0; i < 5; i++ {
		sc := newSchedule(ent, schedules.Week, time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC))
		sc.Export.Options = engine.Options{Columns: []string{"activity_id", "amount"}, TimeZone: "Europe/Zurich"}
		if err := s.CreateSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		made = append(made, sc)
		time.Sleep(2 * time.Millisecond) // distinct created_at
	}
	got, err := s.GetSchedule(ctx, made[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Every != schedules.Week || !got.StartsAt.Equal(made[0].StartsAt) || got.CreatedBy != made[0].CreatedBy ||
		got.Export.Options.TimeZone != "Europe/Zurich" || len(got.Export.Options.Columns) != 2 || got.LastExportID != "" ||
		!got.CreatedAt.Equal(made[0].CreatedAt) {
		t.Fatalf("read back %+v, made %+v", got, made[0])
	}
	// Pages of 2, newest first, under an enterprise visibility and a
	// scope_ref one; another enterprise sees nothing.
	for _, v := range []engine.Visibility{{Enterprises: []string{ent}}, {Refs: []string{ent}}} {
		var ids []string
		var cur *engine.Cursor
		for {
			page, err := s.ListSchedules(ctx, v, cur, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page {
				ids = append(ids, p.ID)
			}
			if len(page) < 2 {
				break
			}
			last := page[len(page)-1]
			cur = &engine.Cursor{GeneratedAtMs: last.CreatedAt.UnixMilli(), ID: last.ID}
		}
		if len(ids) != 5 {
			t.Fatalf("listed %d schedules, want 5", len(ids))
		}
		for i, id := range ids {
			if id != made[4-i].ID {
				t.Fatalf("list[%d] = %s, want %s (newest first)", i, id, made[4-i].ID)
			}
		}
	}
	if other, err := s.ListSchedules(ctx, engine.Visibility{Enterprises: []string{"enterprises/" + uuid.NewString()}}, nil, 10); err != nil || len(other) != 0 {
		t.Fatalf("other enterprise lists %d (%v)", len(other), err)
	}
	if err := s.DeleteSchedule(ctx, made[2].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSchedule(ctx, made[2].ID); !errors.Is(err, schedules.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.GetSchedule(ctx, made[2].ID); !errors.Is(err, schedules.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if page, _ := s.ListSchedules(ctx, engine.Visibility{Enterprises: []string{ent}}, nil, 10); len(page) != 4 {
		t.Fatalf("after delete, %d listed", len(page))
	}
}

// recordSubmitter is the engine's record-keeping half of SubmitWith on the
// real store (the export is recorded, with its key, and never run): enough
// to race the runner's claim-and-submit protocol on PostgreSQL. crash makes
// a replica die before (1) or after (2) recording the export.
type recordSubmitter struct {
	s     *Store
	crash func() int
	lost  *atomic.Int64 // submits that found the export made by another
}

var errCrashed = errors.New("replica crashed")

func (r *recordSubmitter) SubmitWith(ctx context.Context, x *engine.Export, key *engine.IdempotencyKey, _ engine.Slot) (*engine.Export, bool, error) {
	c := 0
	if r.crash != nil {
		c = r.crash()
	}
	if c == 1 {
		return nil, false, errCrashed
	}
	x.Status, x.Owner, x.StorageLocation = engine.StatusPending, "replica", "file:///x/"+x.ID
	created, bound, err := r.s.Create(ctx, x, key, 0)
	if c == 2 {
		return nil, false, errCrashed
	}
	if err != nil {
		return nil, false, err
	}
	if !created {
		if r.lost != nil {
			r.lost.Add(1)
		}
		y, err := r.s.Get(ctx, bound)
		return y, false, err
	}
	return x, true, nil
}

func (r *recordSubmitter) Get(ctx context.Context, id string) (*engine.Export, error) {
	return r.s.Get(ctx, id)
}

// TestScheduleRunRace races two and three replicas (each its own pool and
// runner) on one due period, 200 rounds each, some replicas dying between
// claim and submit or between submit and its record: afterwards (one more
// sweep) every period has exactly one run and exactly one export, the
// run's, with the period's date range and the creator's identity.
func TestScheduleRunRace(t *testing.T) {
	ctx := context.Background()
	for _, replicas := range []int{2, 3} {
		stores := make([]*Store, replicas)
		for i := range stores {
			stores[i] = newStore(t)
		}
		r := rand.New(rand.NewPCG(uint64(replicas), 7))
		var rmu sync.Mutex
		crash := func() int {
			rmu.Lock()
			defer rmu.Unlock()
			if r.IntN(4) == 0 {
				return 1 + r.IntN(2)
			}
			return 0
		}
		var lost atomic.Int64
		for round := 0; round < 200; round++ {
			ent := "enterprises/" + uuid.NewString()
			day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, round%300)
			sc := newSchedule(ent, schedules.Day, day)
			if err := stores[0].CreateSchedule(ctx, sc); err != nil {
				t.Fatal(err)
			}
			now := day.Add(25 * time.Hour) // one day ended an hour ago: one period due
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := 0; i < replicas; i++ {
				run, err := schedules.NewRunner(schedules.RunnerConfig{Store: stores[i],
					Engine: &recordSubmitter{s: stores[i], crash: crash, lost: &lost}, Now: func() time.Time { return now }})
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := run.Sweep(ctx)
					if err != nil && !errors.Is(err, errCrashed) {
						t.Errorf("sweep: %v", err)
					}
				}()
			}
			close(start)
			wg.Wait()
			// The next sweep of any replica completes what the dead left.
			healthy, _ := schedules.NewRunner(schedules.RunnerConfig{Store: stores[0], Engine: &recordSubmitter{s: stores[0]},
				Now: func() time.Time { return now }})
			hst, err := healthy.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var runs, open, exports int
			var runExport, exportID, from, to, by string
			if err := stores[0].pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE submitted_at IS NULL), COALESCE(min(export_id::text), '')
				FROM operations_activity_export_schedule_runs WHERE schedule_id = $1`, sc.ID).Scan(&runs, &open, &runExport); err != nil {
				t.Fatal(err)
			}
			if err := stores[0].pool.QueryRow(ctx, `SELECT count(*), COALESCE(min(id::text), ''), COALESCE(min(date_from_utc), ''), COALESCE(min(date_to_utc), ''), COALESCE(min(generated_by), '')
				FROM operations_activity_exports WHERE scope_ref = $1`, ent).Scan(&exports, &exportID, &from, &to, &by); err != nil {
				t.Fatal(err)
			}
			if runs != 1 || open != 0 || exports != 1 || exportID != runExport {
				t.Fatalf("%d replicas, round %d: %d runs (%d open), %d exports (%s, run says %s); last sweep %+v", replicas, round, runs, open, exports, exportID, runExport, hst)
			}
			wantFrom, wantTo := day.Format(time.RFC3339), day.Add(24*time.Hour-time.Millisecond).Format(time.RFC3339Nano)
			if from != wantFrom || to != wantTo || by != sc.CreatedBy {
				t.Fatalf("export [%s, %s] by %s, want [%s, %s] by %s", from, to, by, wantFrom, wantTo, sc.CreatedBy)
			}
			got, err := stores[0].GetSchedule(ctx, sc.ID)
			if err != nil || got.LastExportID != exportID {
				t.Fatalf("last_export_id %q, want %s (%v)", got.LastExportID, exportID, err)
			}
			list, err := stores[0].ScheduleExports(ctx, sc.ID, nil, 10)
			if err != nil || len(list) != 1 || list[0].ID != exportID {
				t.Fatalf("schedule exports %v (%v)", list, err)
			}
			// Later rounds' clocks are later: this schedule would have more
			// periods due then. It has had its round.
			if err := stores[0].DeleteSchedule(ctx, sc.ID); err != nil {
				t.Fatal(err)
			}
		}
		// The race was run: replicas did submit the same run at once.
		if lost.Load() == 0 {
			t.Errorf("%d replicas: no submit ever met another's export", replicas)
		}
		t.Logf("%d replicas: %d submits found the run's export made by another", replicas, lost.Load())
	}
}

// TestScheduleClaimSkipsClaimedAndDeleted: a claim never re-records a
// period before claimed_through, and a deleted schedule's open runs are
// not offered.
func TestScheduleClaimSkipsClaimedAndDeleted(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	sc := newSchedule("enterprises/"+uuid.NewString(), schedules.Day, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	if err := s.CreateSchedule(ctx, sc); err != nil {
		t.Fatal(err)
	}
	p, err := sc.Plan()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 2, 4, 1, 0, 0, 0, time.UTC)
	n, err := s.Claim(ctx, sc.ID, p.Due(now), p.NextRun(now))
	if err != nil || n != 3 {
		t.Fatalf("claimed %d (%v), want 3", n, err)
	}
	if n, err := s.Claim(ctx, sc.ID, p.Due(now), p.NextRun(now)); err != nil || n != 0 {
		t.Fatalf("claimed again %d (%v)", n, err)
	}
	later := now.Add(48 * time.Hour)
	if n, err := s.Claim(ctx, sc.ID, p.Due(later), p.NextRun(later)); err != nil || n != 2 {
		t.Fatalf("claimed later %d (%v), want 2", n, err)
	}
	due, err := s.DueSchedules(ctx, later, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		if d.ID == sc.ID {
			t.Fatalf("schedule due at %v again: next_due_at %v", later, d.NextDueAt)
		}
	}
	open := func() int {
		runs, err := s.OpenRuns(ctx, 3, 100000)
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for _, r := range runs {
			if r.Schedule.ID == sc.ID {
				c++
			}
		}
		return c
	}
	if c := open(); c != 3 { // perSchedule bounds it
		t.Fatalf("%d open runs offered, want 3", c)
	}
	if err := s.DeleteSchedule(ctx, sc.ID); err != nil {
		t.Fatal(err)
	}
	if c := open(); c != 0 {
		t.Fatalf("deleted schedule offers %d runs", c)
	}
	if _, err := s.Claim(ctx, sc.ID, p.Due(later), p.NextRun(later)); !errors.Is(err, schedules.ErrNotFound) {
		t.Fatalf("claim of a deleted schedule: %v", err)
	}
}

// TestScheduleRunnerLoop runs the sweep goroutine on the database clock:
// it sweeps at Start (three whole UTC days since starts_at are due), on
// Poke (a schedule created later), never after Stop, and Start/Stop are
// idempotent.
func TestScheduleRunnerLoop(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	dbNow, err := s.Now(ctx)
	if err != nil || time.Since(dbNow).Abs() > time.Minute {
		t.Fatalf("database clock %v (%v)", dbNow, err)
	}
	today := dbNow.Truncate(24 * time.Hour)
	made := func(id string) int {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM operations_activity_export_schedule_runs r
			JOIN operations_activity_exports x ON x.id = r.export_id WHERE r.schedule_id = $1 AND r.submitted_at IS NOT NULL`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	wait := func(id string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for made(id) != n {
			if time.Now().After(deadline) {
				t.Fatalf("schedule %s: %d exports, want %d", id, made(id), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a := newSchedule("enterprises/"+uuid.NewString(), schedules.Day, today.AddDate(0, 0, -3))
	a.DelayMinutes = 0
	if err := s.CreateSchedule(ctx, a); err != nil {
		t.Fatal(err)
	}
	run, err := schedules.NewRunner(schedules.RunnerConfig{Store: s, Engine: &recordSubmitter{s: s}, Clock: s.Now, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	run.Start()
	run.Start()
	wait(a.ID, 3)
	b := newSchedule("enterprises/"+uuid.NewString(), schedules.Day, today.AddDate(0, 0, -2))
	b.DelayMinutes = 0
	if err := s.CreateSchedule(ctx, b); err != nil {
		t.Fatal(err)
	}
	run.Poke()
	wait(b.ID, 2)
	run.Stop()
	run.Stop()
	c := newSchedule("enterprises/"+uuid.NewString(), schedules.Day, today.AddDate(0, 0, -2))
	c.DelayMinutes = 0
	if err := s.CreateSchedule(ctx, c); err != nil {
		t.Fatal(err)
	}
	run.Poke()
	run.Start() // after Stop: stays stopped
	time.Sleep(200 * time.Millisecond)
	if n := made(c.ID); n != 0 {
		t.Fatalf("a stopped runner made %d exports", n)
	}
}
