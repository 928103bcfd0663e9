package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Several `exportd serve` processes sharing one ClickHouse, one storage
// directory and one signing key: what a deployment behind a load balancer
// relies on (deploy/README.md).

// replicaSeed is the data set of these tests: 1M rows for one enterprise
// over 2026-01-01 .. 2026-07-01, so that a gzip export of the whole range
// runs for several seconds (about 130k rows/s on two cores) and can be
// caught mid-export.
const (
	replicaSeed = "61"
	replicaRows = "1000000"
)

var (
	replicaDataOnce sync.Once
	replicaEnt      string
)

// replicaData loads the data set once per test binary and returns its enterprise.
func replicaData(t *testing.T) string {
	t.Helper()
	replicaDataOnce.Do(func() {
		mustExportd(t, nil, "migrate")
		start := time.Now()
		mustExportd(t, nil, "ingest", "--generate", replicaRows, "--enterprises", "1", "--seed", replicaSeed, "--once")
		t.Logf("ingest of %s rows: %s", replicaRows, time.Since(start).Round(time.Millisecond))
		replicaEnt = strings.TrimSpace(mustExportd(t, nil, "ingest", "--print-enterprises", "--enterprises", "1", "--seed", replicaSeed).stdout)
	})
	if replicaEnt == "" {
		t.Fatal("replica data set not loaded")
	}
	return replicaEnt
}

// startReplicas starts n serve processes with one storage directory and one
// signing key (page tokens are keyed from it) and distinct replica ids
// (replica-a, replica-b, ...). The first creates the key; the others start
// after it.
func startReplicas(t *testing.T, n int, env ...string) (replicas []*service, storageDir string) {
	t.Helper()
	dir := t.TempDir()
	storageDir = filepath.Join(dir, "exports")
	for i := 0; i < n; i++ {
		replicas = append(replicas, startReplica(t, storageDir, "replica-"+string(rune('a'+i)), env...))
	}
	return replicas, storageDir
}

// startReplica starts one more serve process on the shared storage
// directory (and the key beside it) as replica id.
func startReplica(t *testing.T, storageDir, id string, env ...string) *service {
	t.Helper()
	key := filepath.Join(filepath.Dir(storageDir), "key.pem")
	s := startServe(t, append([]string{"EXPORTD_STORAGE_URL=file://" + storageDir, "EXPORTD_SIGNING_KEY=" + key, "EXPORTD_REPLICA_ID=" + id}, env...)...)
	s.storage, s.key = storageDir, key
	return s
}

// replicaPoll calls get every interval until done reports true or d passes.
func replicaPoll(t *testing.T, d, interval time.Duration, what string, get func() resource, done func(resource) bool) resource {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		x := get()
		if done(x) {
			return x
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s/%s (%d rows) after %s", what, x.Status, x.FailureReason, x.RowCount, d)
		}
		time.Sleep(interval)
	}
}

func replicaGet(t *testing.T, s *service, tok, id string) resource {
	t.Helper()
	code, _, b := s.do(t, "GET", "/operations-activity-exports/"+id, tok, "")
	if code != 200 {
		t.Fatalf("GET %s on %s: %d %s", id, s.base, code, b)
	}
	return decodeResource(t, b)
}

// replicaArtefacts lists what storage holds for an export: its object and any
// temp files of its writer.
func replicaArtefacts(t *testing.T, dir, id string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), id) {
			out = append(out, e.Name())
		}
	}
	return out
}

// replicaCreateRunning creates a whole-range gzip export on s (Prefer: wait=0) and
// returns once it is running with rows already written: mid-export.
func replicaCreateRunning(t *testing.T, s *service, tok, ent string) resource {
	t.Helper()
	code, _, b := s.do(t, "POST", "/operations-activity-exports", tok,
		createBody(ent, "2026-01-01T00:00:00Z", "2026-06-30T23:59:59.999Z", "gzip"), "Prefer", "wait=0")
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	x := decodeResource(t, b)
	return replicaPoll(t, 20*time.Second, 20*time.Millisecond, "export to be running", func() resource { return replicaGet(t, s, tok, x.ID) },
		func(r resource) bool {
			if r.Status != "pending" && r.Status != "running" {
				t.Fatalf("export ended before it could be caught running: %s/%s", r.Status, r.FailureReason)
			}
			return r.Status == "running" && r.RowCount > 0
		})
}

func TestE2EReplicasShareExports(t *testing.T) {
	ent := replicaData(t)
	reps, dir := startReplicas(t, 2)
	a, b := reps[0], reps[1]
	tok := a.token(t, ent, "operations_reports.create", "operations_reports.read")
	week := func(day int) string {
		from := time.Date(2026, 3, day, 0, 0, 0, 0, time.UTC)
		return createBody(ent, from.Format(time.RFC3339), from.Add(7*24*time.Hour-time.Millisecond).Format(time.RFC3339Nano), "none")
	}

	// Created on A (with an Idempotency-Key), read and downloaded on B.
	code, _, body := a.do(t, "POST", "/operations-activity-exports", tok, week(1), "Prefer", "wait=60", "Idempotency-Key", "replica-k1")
	if code != 201 {
		t.Fatalf("create on A: %d %s", code, body)
	}
	x := decodeResource(t, body)
	if x.Status != "ready" || x.RowCount == 0 {
		t.Fatalf("create on A: %s", body)
	}
	if y := replicaGet(t, b, tok, x.ID); y.Status != "ready" || y.Checksum != x.Checksum || y.RowCount != x.RowCount {
		t.Fatalf("GET on B: %+v, created %+v", y, x)
	}
	code, hdr, data := b.do(t, "GET", "/operations-activity-exports/"+x.ID+"/download", tok, "")
	sum := sha256.Sum256(data)
	if code != 200 || int64(len(data)) != x.ByteSize || hex.EncodeToString(sum[:]) != x.Checksum || hdr.Get("ETag") != `"`+x.Checksum+`"` {
		t.Fatalf("download on B: %d, %d bytes (want %d), sha256 %x (want %s)", code, len(data), x.ByteSize, sum, x.Checksum)
	}

	// The same Idempotency-Key through B: the same export, no new work; with
	// another body: 409.
	code, _, body = b.do(t, "POST", "/operations-activity-exports", tok, week(1), "Prefer", "wait=0", "Idempotency-Key", "replica-k1")
	if code != 201 || decodeResource(t, body).ID != x.ID {
		t.Fatalf("idempotent replay on B: %d %s (want export %s)", code, body, x.ID)
	}
	code, _, body = b.do(t, "POST", "/operations-activity-exports", tok, week(8), "Idempotency-Key", "replica-k1")
	if code != 409 || !strings.Contains(string(body), "key_payload_mismatch") {
		t.Fatalf("same key, other body on B: %d %s", code, body)
	}

	// Two more exports, one per replica; then page through the list one item
	// at a time, alternating replicas: each accepts the other's page tokens.
	ids := map[string]bool{x.ID: true}
	for i, s := range []*service{b, a} {
		code, _, body := s.do(t, "POST", "/operations-activity-exports", tok, week(8+7*i), "Prefer", "wait=60")
		if code != 201 {
			t.Fatalf("create %d: %d %s", i, code, body)
		}
		ids[decodeResource(t, body).ID] = true
	}
	seen := map[string]bool{}
	page := ""
	for i := 0; ; i++ {
		s := reps[i%2]
		path := "/operations-activity-exports?page_size=1"
		if page != "" {
			path += "&page_token=" + url.QueryEscape(page)
		}
		code, _, body := s.do(t, "GET", path, tok, "")
		if code != 200 {
			t.Fatalf("list page %d on replica %d: %d %s", i, i%2, code, body)
		}
		var l struct {
			Items []struct{ ID string }
			Next  *string `json:"next_page_token"`
		}
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("list page %d: %v: %s", i, err, body)
		}
		for _, it := range l.Items {
			if seen[it.ID] {
				t.Fatalf("list: %s twice", it.ID)
			}
			seen[it.ID] = true
		}
		if l.Next == nil {
			break
		}
		if i > 5000 { // other tests of this binary export the same enterprise too
			t.Fatal("list does not end")
		}
		page = *l.Next
	}
	for id := range ids {
		if !seen[id] {
			t.Errorf("list through both replicas misses %s (saw %d)", id, len(seen))
		}
	}

	// Cancel through B of an export running on A: B records it at once; A's
	// heartbeat (or its look before commit) stops the job; no file appears.
	run := replicaCreateRunning(t, a, tok, ent)
	code, _, body = b.do(t, "POST", "/operations-activity-exports/"+run.ID+"/cancel", tok, "")
	if c := decodeResource(t, body); code != 200 || c.Status != "cancelled" || c.FailureReason != "" {
		t.Fatalf("cancel on B: %d %s", code, body)
	}
	cancelledAt := time.Now()
	// While its job runs, A serves the job's live state; once it reads
	// anything else, the job has ended.
	replicaPoll(t, 20*time.Second, 100*time.Millisecond, "owner A to stop the cancelled job", func() resource { return replicaGet(t, a, tok, run.ID) },
		func(r resource) bool { return r.Status != "running" && r.Status != "pending" })
	t.Logf("A stopped the job %s after the cancel through B", time.Since(cancelledAt).Round(time.Millisecond))
	// Long enough for the whole export to have finished had it not been stopped.
	time.Sleep(2 * time.Second)
	for _, s := range reps {
		if r := replicaGet(t, s, tok, run.ID); r.Status != "cancelled" || r.FailureReason != "" || r.Checksum != "" {
			t.Errorf("after cancel through B, %s reads %s/%s checksum %q", s.base, r.Status, r.FailureReason, r.Checksum)
		}
	}
	// The owner removes its temp file as its job stops (at once when it
	// learns of the cancel, at the latest at its next heartbeat).
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if left = replicaArtefacts(t, dir, run.ID); len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) != 0 {
		t.Errorf("storage holds %v for the cancelled export", left)
	}
	if code, _, body := a.do(t, "GET", "/operations-activity-exports/"+run.ID+"/download", tok, ""); code != 409 {
		t.Errorf("download of the cancelled export: %d %s", code, body)
	}
}

func TestE2EReplicaKilledMidExport(t *testing.T) {
	ent := replicaData(t)
	reps, dir := startReplicas(t, 2)
	a, b := reps[0], reps[1]
	tok := a.token(t, ent, "operations_reports.create", "operations_reports.read")
	run := replicaCreateRunning(t, a, tok, ent)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	<-a.done
	// SPEC §6: another replica reads it failed/shutdown within 60 s.
	x := replicaPoll(t, 60*time.Second, time.Second, "B to declare the export of killed A lost", func() resource { return replicaGet(t, b, tok, run.ID) },
		func(r resource) bool { return r.Status != "running" && r.Status != "pending" })
	elapsed := time.Since(killedAt)
	t.Logf("B read %s/%s %s after A was killed", x.Status, x.FailureReason, elapsed.Round(time.Millisecond))
	if x.Status != "failed" || x.FailureReason != "shutdown" || x.Checksum != "" {
		t.Fatalf("after A died: %+v", x)
	}
	if elapsed > 60*time.Second {
		t.Fatalf("declared lost after %s, want within 60s", elapsed)
	}
	// Nothing of the dead writer stays in storage (SPEC §6): its temp file is
	// removed by the replica that declares the export lost.
	deadline := time.Now().Add(5 * time.Second)
	for left := replicaArtefacts(t, dir, run.ID); len(left) != 0; left = replicaArtefacts(t, dir, run.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("storage still holds %v for the failed export", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The verdict is final and shared: a restarted A (same replica id) reads
	// the same, and the export cannot be cancelled any more.
	a2 := startReplica(t, dir, "replica-a")
	if y := replicaGet(t, a2, tok, run.ID); y.Status != "failed" || y.FailureReason != "shutdown" {
		t.Fatalf("restarted A reads %s/%s", y.Status, y.FailureReason)
	}
	code, _, body := a2.do(t, "POST", "/operations-activity-exports/"+run.ID+"/cancel", tok, "")
	if code != 409 || !strings.Contains(string(body), "export_not_cancellable") {
		t.Fatalf("cancel of the failed export: %d %s", code, body)
	}
}
