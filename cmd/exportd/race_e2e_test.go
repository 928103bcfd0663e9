package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Three `exportd serve` processes on one PostgreSQL, one ClickHouse and one
// storage directory, raced from outside (issue 11's done-when): the same
// Idempotency-Key and body at all three at the same instant, the same key
// with two bodies, and cancels racing completion. Afterwards the storage
// holds exactly the files of the ready exports.

// raceCall is one HTTP exchange of a race (goroutine-safe: no t.Fatal).
type raceCall struct {
	code int
	body []byte
	err  error
}

func raceDo(s *service, method, path, tok, body string, hdr ...string) raceCall {
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		return raceCall{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return raceCall{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return raceCall{code: resp.StatusCode, body: b, err: err}
}

func (c raceCall) id(t *testing.T) string {
	t.Helper()
	var r struct{ ID string }
	if err := json.Unmarshal(c.body, &r); err != nil || r.ID == "" {
		t.Fatalf("no id in %d %s (%v)", c.code, c.body, err)
	}
	return r.ID
}

// hourBody is a one-hour export of ent starting h hours after 2026-01-01:
// a few thousand rows of the replica data set, tens of milliseconds of work.
func hourBody(ent string, h int) string {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
	return createBody(ent, from.Format(time.RFC3339), from.Add(time.Hour-time.Millisecond).Format(time.RFC3339Nano), "none")
}

// fireAll sends one request per replica at the same instant.
func fireAll(reps []*service, do func(i int, s *service) raceCall) []raceCall {
	out := make([]raceCall, len(reps))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, s := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = do(i, s)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func TestE2EThreeReplicaRaces(t *testing.T) {
	ent := replicaData(t)
	reps, dir := startReplicas(t, 3, "EXPORTD_RATE_LIMIT=100000", "EXPORTD_RATE_BURST=100000", "EXPORTD_MAX_EXPORTS=8")
	tok := reps[0].token(t, ent, "operations_reports.create", "operations_reports.read")
	run := uuid.NewString()[:8]
	hour := 0 // every round exports its own hour: its exports can be counted by range
	ctx := context.Background()
	exportsOf := func(h int) int {
		t.Helper()
		body := hourBody(ent, h)
		var req struct {
			Filter struct {
				From string `json:"date_from_utc"`
			} `json:"filter_criteria"`
		}
		_ = json.Unmarshal([]byte(body), &req)
		var n int
		if err := testPG.Pool.QueryRow(ctx, `SELECT count(*) FROM operations_activity_exports WHERE enterprise_ref = $1 AND date_from_utc = $2`,
			ent, req.Filter.From).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var all []string // ids of every export created

	// 1. The same key and body at all three at once: one export per round.
	const sameRounds = 200
	for round := 0; round < sameRounds; round++ {
		hour++
		key := fmt.Sprintf("same-%s-%d", run, round)
		body := hourBody(ent, hour)
		res := fireAll(reps, func(_ int, s *service) raceCall {
			return raceDo(s, "POST", "/operations-activity-exports", tok, body, "Idempotency-Key", key, "Prefer", "wait=0")
		})
		var id string
		for i, r := range res {
			if r.err != nil || r.code != 201 {
				t.Fatalf("round %d, replica %d: %d %s %v", round, i, r.code, r.body, r.err)
			}
			if got := r.id(t); id == "" {
				id = got
			} else if got != id {
				t.Fatalf("round %d: one key and body gave exports %s and %s", round, id, got)
			}
		}
		if n := exportsOf(hour); n != 1 {
			t.Fatalf("round %d: %d exports recorded for one key", round, n)
		}
		all = append(all, id)
	}
	t.Logf("same key and body at 3 replicas: %d rounds, one export each", sameRounds)

	// 2. One key, two bodies, at two replicas at once: one 201 and one 409.
	const mismatchRounds = 50
	for round := 0; round < mismatchRounds; round++ {
		hour += 2
		key := fmt.Sprintf("mismatch-%s-%d", run, round)
		bodies := []string{hourBody(ent, hour-1), hourBody(ent, hour)}
		pair := []*service{reps[round%3], reps[(round+1)%3]}
		res := fireAll(pair, func(i int, s *service) raceCall {
			return raceDo(s, "POST", "/operations-activity-exports", tok, bodies[i], "Idempotency-Key", key, "Prefer", "wait=0")
		})
		codes := []int{res[0].code, res[1].code}
		sort.Ints(codes)
		if codes[0] != 201 || codes[1] != 409 {
			t.Fatalf("round %d: %d %s / %d %s", round, res[0].code, res[0].body, res[1].code, res[1].body)
		}
		for _, r := range res {
			if r.code == 409 && !strings.Contains(string(r.body), "key_payload_mismatch") {
				t.Fatalf("round %d: 409 %s", round, r.body)
			}
			if r.code == 201 {
				all = append(all, r.id(t))
			}
		}
		if n := exportsOf(hour-1) + exportsOf(hour); n != 1 {
			t.Fatalf("round %d: %d exports for one key", round, n)
		}
	}
	t.Logf("one key, two bodies at 2 replicas: %d rounds, one 201 and one 409 each", mismatchRounds)

	// 3. Cancel through another replica racing completion: a 200 is final
	// (the export reads cancelled everywhere and leaves no file); a 409
	// means it finished first.
	const cancelRounds = 100
	rng := rand.New(rand.NewPCG(11, uint64(len(run))))
	type outcome struct {
		id        string
		cancelled bool
	}
	var outcomes []outcome
	won := map[bool]int{}
	for round := 0; round < cancelRounds; round++ {
		hour++
		owner, canceller := reps[round%3], reps[(round+1+round/3%2)%3]
		c := raceDo(owner, "POST", "/operations-activity-exports", tok, hourBody(ent, hour), "Prefer", "wait=0")
		if c.err != nil || c.code != 201 {
			t.Fatalf("round %d: create %d %s %v", round, c.code, c.body, c.err)
		}
		id := c.id(t)
		all = append(all, id)
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		r := raceDo(canceller, "POST", "/operations-activity-exports/"+id+"/cancel", tok, "")
		switch {
		case r.err != nil:
			t.Fatal(r.err)
		case r.code == 200:
			outcomes = append(outcomes, outcome{id, true})
		case r.code == 409 && strings.Contains(string(r.body), "export_not_cancellable"):
			outcomes = append(outcomes, outcome{id, false})
		default:
			t.Fatalf("round %d: cancel %d %s", round, r.code, r.body)
		}
		won[r.code == 200]++
	}
	t.Logf("cancel racing completion: %d rounds, cancel won %d, completion won %d", cancelRounds, won[true], won[false])

	// Every export settles; read each through every replica.
	final := map[string]resource{}
	for _, id := range all {
		x := replicaPoll(t, 60*time.Second, 50*time.Millisecond, "export "+id+" to end", func() resource { return replicaGet(t, reps[0], tok, id) },
			func(r resource) bool { return r.Status != "pending" && r.Status != "running" })
		final[id] = x
	}
	for _, o := range outcomes {
		for _, s := range reps {
			x := replicaGet(t, s, tok, o.id)
			if o.cancelled && x.Status != "cancelled" {
				t.Errorf("cancel answered 200, then %s reads %s", s.base, x.Status)
			}
			if !o.cancelled && x.Status == "cancelled" {
				t.Errorf("cancel answered 409, then %s reads cancelled", s.base)
			}
		}
		if o.cancelled {
			if code, _, _ := reps[2].do(t, "GET", "/operations-activity-exports/"+o.id+"/download", tok, ""); code == 200 {
				t.Errorf("cancelled export %s downloadable", o.id)
			}
		}
	}
	// Storage holds exactly the files of ready exports.
	want := map[string]bool{}
	for id, x := range final {
		if x.Status == "ready" {
			want[id+".csv"] = true
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range entries {
		got[e.Name()] = true
		if !want[e.Name()] {
			t.Errorf("storage holds %s, which no ready export names", e.Name())
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("ready export's file %s missing", name)
		}
	}
	t.Logf("storage: %d files, %d ready exports of %d", len(got), len(want), len(final))
}
