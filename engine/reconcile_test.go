package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

// The reconciler removes every object older than its grace that no live or
// ready export names, and nothing else.
func TestReconcileRemovesOrphans(t *testing.T) {
	ctx := context.Background()
	ent := "enterprises/" + uuidN("e9000000", 1)
	seed(t, ent, 10)
	dir := t.TempDir()
	st, _ := storage.NewFile(dir)
	eng, err := engine.New(engine.Config{Reader: source.New(chCfg, source.Options{}), Records: records, Store: st,
		ReconcileGrace: time.Minute, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown(ctx)
	ready, _ := eng.Submit(ctx, request(ent))
	if ready, _ = eng.Wait(ctx, ready.ID, 30*time.Second); ready.Status != engine.StatusReady {
		t.Fatalf("ready: %+v", ready)
	}
	running := liveRecord(t, uuidN("f9000000", 1), "elsewhere")
	cancelled := liveRecord(t, uuidN("f9000000", 2), "elsewhere")
	if _, err := records.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	write := func(name string, mtime time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chtimes(filepath.Join(dir, ready.ObjectName()), old, old)
	write(running.ObjectName(), old)               // committed, owner yet to record ready: kept
	write(cancelled.ObjectName(), old)             // lost a race with its cancel: removed
	write(uuidN("f9000000", 3)+".csv.gz", old)     // no record at all: removed
	write(uuidN("f9000000", 4)+".csv", time.Now()) // within the grace: kept
	write("README.txt", old)                       // not an artefact: kept
	n, err := eng.Reconcile(ctx)
	if err != nil || n != 2 {
		t.Fatalf("reconcile removed %d: %v", n, err)
	}
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{ready.ObjectName(), running.ObjectName(), uuidN("f9000000", 4) + ".csv", "README.txt"}
	sort.Strings(got)
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("left %v, want %v", got, want)
		}
	}
}
