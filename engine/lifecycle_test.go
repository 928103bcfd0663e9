package engine_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

// failingStore fails every write after the first n bytes.
type failingStore struct {
	*storage.File
	n int
}

type failingWriter struct {
	storage.Writer
	left int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		return 0, errors.New("disk on fire")
	}
	w.left -= len(p)
	return w.Writer.Write(p)
}

func (s *failingStore) Create(ctx context.Context, name string) (storage.Writer, error) {
	w, err := s.File.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return &failingWriter{Writer: w, left: s.n}, nil
}

func seed(t *testing.T, ent string, n int) {
	t.Helper()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	rows := make([]activity.Row, n)
	amt, _ := activity.ParseDecimal("1.5")
	for i := range rows {
		rows[i] = activity.Row{OccurredAt: base + int64(i)*1000, ActivityID: uuidN("aaaaaaaa", i), OperationID: uuidN("bbbbbbbb", i),
			Family: "deposit", Status: "settled", EnterpriseRef: ent, AccountRef: "master-accounts/" + uuidN("cccccccc", 1),
			Currency: "BTC", Amount: amt, InitiatedBy: "users/" + uuidN("dddddddd", 1), Reference: "ref"}
	}
	insert(t, rows)
}

func newEngine(t *testing.T, r engine.Reader, st storage.Store, owner string) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Config{Reader: r, Records: records, Store: st, Owner: owner,
		Heartbeat: 100 * time.Millisecond, StaleAfter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Shutdown(context.Background()) })
	return eng
}

func request(ent string) *engine.Export {
	return &engine.Export{Format: "csv", Compression: "zstd", DateFrom: "2026-03-01T00:00:00Z", DateTo: "2026-03-31T23:59:59.999Z",
		ScopeKind: engine.KindEnterprise, ScopeRef: ent, EnterpriseRef: ent, GeneratedBy: "users/x"}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("storage not empty: %s", e.Name())
	}
}

func TestCancelRunningExportLeavesNothing(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e1000000", 1)
	seed(t, ent, 100)
	dir := t.TempDir()
	st, _ := storage.NewFile(dir)
	r := newGateReader() // never released: the export stays running until cancelled
	eng := newEngine(t, r, st, "cancel-test")
	x, err := eng.Submit(ctx, request(ent))
	if err != nil {
		t.Fatal(err)
	}
	<-r.started
	if got, _ := eng.Get(ctx, x.ID); got.Status != engine.StatusRunning || got.RowCount != 100 {
		t.Fatalf("while running: %+v", got)
	}
	y, err := eng.Cancel(ctx, x.ID)
	if err != nil || y.Status != engine.StatusCancelled || y.FailureReason != "" {
		t.Fatalf("cancel: %+v %v", y, err)
	}
	assertEmptyDir(t, dir)
	if _, err := eng.Cancel(ctx, x.ID); !errors.Is(err, engine.ErrNotCancellable) {
		t.Fatalf("second cancel: %v", err)
	}
	rec, _ := records.Get(ctx, x.ID)
	if rec.Status != engine.StatusCancelled {
		t.Fatalf("stored %s", rec.Status)
	}
}

func TestStorageFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e2000000", 1)
	seed(t, ent, 5000)
	dir := t.TempDir()
	f, _ := storage.NewFile(dir)
	eng := newEngine(t, source.New(chCfg, source.Options{}), &failingStore{File: f, n: 100}, "storage-test")
	x, _ := eng.Submit(ctx, request(ent))
	x, _ = eng.Wait(ctx, x.ID, 30*time.Second)
	if x.Status != engine.StatusFailed || x.FailureReason != engine.ReasonStorage || x.Checksum != "" {
		t.Fatalf("got %+v", x)
	}
	assertEmptyDir(t, dir)
}

func TestRowLimit(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e3000000", 1)
	seed(t, ent, 50)
	dir := t.TempDir()
	st, _ := storage.NewFile(dir)
	eng, _ := engine.New(engine.Config{Reader: source.New(chCfg, source.Options{}), Records: records, Store: st, MaxRows: 49})
	_ = eng.Start(ctx)
	defer eng.Shutdown(ctx)
	x, _ := eng.Submit(ctx, request(ent))
	x, _ = eng.Wait(ctx, x.ID, 30*time.Second)
	if x.Status != engine.StatusFailed || x.FailureReason != engine.ReasonRowLimit {
		t.Fatalf("got %+v", x)
	}
	assertEmptyDir(t, dir)
}

func TestCrashRecovery(t *testing.T) {
	ctx := context.Background()
	// Left running by this replica before a crash, by a replica that
	// stopped beating, and by one still alive (until it stops beating).
	mine := liveRecord(t, uuidN("f0000000", 1), "crashy")
	lost := liveRecord(t, uuidN("f0000000", 2), "gone")
	alive := liveRecord(t, uuidN("f0000000", 3), "alive")
	ageLease(t, lost.ID, time.Hour)
	dir := t.TempDir()
	// A temp file left by the crashed writer, old enough to be swept.
	stray := dir + "/.tmp-" + mine.ID + ".csv-123"
	if err := os.WriteFile(stray, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	_ = os.Chtimes(stray, old, old)
	st, _ := storage.NewFile(dir)
	eng := newEngine(t, source.New(chCfg, source.Options{}), st, "crashy")
	for id, want := range map[string]string{mine.ID: engine.StatusFailed, lost.ID: engine.StatusFailed, alive.ID: engine.StatusRunning} {
		x, err := eng.Get(ctx, id)
		if err != nil || x.Status != want {
			t.Errorf("%s: %+v %v, want %s", id, x, err, want)
		}
		if want == engine.StatusFailed && x.FailureReason != engine.ReasonShutdown {
			t.Errorf("%s: reason %q", id, x.FailureReason)
		}
	}
	assertEmptyDir(t, dir)
	// The live one is failed once its owner's heartbeat goes stale.
	deadline := time.Now().Add(10 * time.Second)
	for {
		x, _ := eng.Get(ctx, alive.ID)
		if x.Status == engine.StatusFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale export still %s", x.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestExpiryDeletesArtefact(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e4000000", 1)
	seed(t, ent, 10)
	dir := t.TempDir()
	st, _ := storage.NewFile(dir)
	eng, _ := engine.New(engine.Config{Reader: source.New(chCfg, source.Options{}), Records: records, Store: st,
		Retention: 300 * time.Millisecond, Heartbeat: 50 * time.Millisecond})
	_ = eng.Start(ctx)
	defer eng.Shutdown(ctx)
	x, _ := eng.Submit(ctx, request(ent))
	x, _ = eng.Wait(ctx, x.ID, 30*time.Second)
	if x.Status != engine.StatusReady || x.RowCount != 10 {
		t.Fatalf("got %+v", x)
	}
	if _, err := os.Stat(dir + "/" + x.ObjectName()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Reads expired at once (the database clock judges expiry); the
		// expiry pass then deletes the artefact.
		rec, _ := records.Get(ctx, x.ID)
		_, serr := os.Stat(dir + "/" + x.ObjectName())
		if rec.Status == engine.StatusExpired && errors.Is(serr, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not expired: %s (artefact: %v)", rec.Status, serr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertEmptyDir(t, dir)
}

// liveRecord records a running export of owner, as a replica would have
// before it crashed.
func liveRecord(t *testing.T, id, owner string) *engine.Export {
	t.Helper()
	ctx := context.Background()
	x := &engine.Export{ID: id, Owner: owner, Format: "csv", Compression: "none", ScopeKind: engine.KindEnterprise,
		ScopeRef: "enterprises/" + id, EnterpriseRef: "enterprises/" + id, GeneratedBy: "users/x",
		DateFrom: "2026-03-01T00:00:00Z", DateTo: "2026-03-02T00:00:00Z"}
	if _, _, err := records.Create(ctx, x, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := records.Start(ctx, x.ID, owner, x.Version, "", 0); err != nil {
		t.Fatal(err)
	}
	return x
}

// ageLease makes an export's lease d old by the database clock (what a
// replica that stopped beating d ago leaves).
func ageLease(t *testing.T, id string, d time.Duration) {
	t.Helper()
	if _, err := pg.Pool.Exec(context.Background(), "UPDATE operations_activity_exports SET heartbeat_at = now() - $2::interval WHERE id = $1",
		id, d.String()); err != nil {
		t.Fatal(err)
	}
}
