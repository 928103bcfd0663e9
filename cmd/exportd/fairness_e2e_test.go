package main

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 13's fairness check with the real binary: tenant A offers 20x the
// replica's capacity in long exports while tenant B creates one small
// export a second. Every B export is admitted and finishes close to its
// uncontended time: A runs at most EXPORTD_MAX_EXPORTS_PER_ENTERPRISE (2)
// exports at once, its backlog waits pending (or gets 429 beyond
// EXPORTD_MAX_PENDING_PER_ENTERPRISE) and never holds the slots B needs.
func TestE2EFairnessBetweenTenants(t *testing.T) {
	big := replicaData(t)                       // A: 1M rows
	small := generate(t, testDSN, 20_000, 4713) // B
	reps, _ := startReplicas(t, 1, "EXPORTD_RATE_LIMIT=1000", "EXPORTD_RATE_BURST=1000", "EXPORTD_MAX_EXPORTS=4")
	s := reps[0]
	tokA := s.token(t, big, "operations_reports.create", "operations_reports.read")
	tokB := s.token(t, small, "operations_reports.create", "operations_reports.read")
	bBody := func(i int) string {
		from := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 24 * time.Hour)
		return createBody(small, from.Format(time.RFC3339), from.Add(24*time.Hour-time.Millisecond).Format(time.RFC3339Nano), "none")
	}
	runB := func(i int) (time.Duration, error) {
		start := time.Now()
		r := raceDo(s, "POST", "/operations-activity-exports", tokB, bBody(i), "Prefer", "wait=60")
		if r.err != nil || r.code != 201 || !strings.Contains(string(r.body), `"status":"ready"`) {
			return 0, fmt.Errorf("B create %d: %d %s %v", i, r.code, r.body, r.err)
		}
		return time.Since(start), nil
	}
	// Uncontended: B alone.
	var alone []time.Duration
	for i := 0; i < 5; i++ {
		d, err := runB(i)
		if err != nil {
			t.Fatal(err)
		}
		alone = append(alone, d)
	}
	base := median(alone)
	// One of A's exports alone: the bound of SPEC's fairness reading (B is
	// delayed by at most one export's duration).
	start := time.Now()
	if r := raceDo(s, "POST", "/operations-activity-exports", tokA,
		createBody(big, "2026-01-01T00:00:00Z", "2026-06-30T23:59:59.999Z", "gzip"), "Prefer", "wait=60"); r.code != 201 || !strings.Contains(string(r.body), `"status":"ready"`) {
		t.Fatalf("A alone: %d %s", r.code, r.body)
	}
	aExport := time.Since(start)

	// A offers 20x the capacity (4 slots): 80 whole-range gzip exports.
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 80; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := raceDo(s, "POST", "/operations-activity-exports", tokA,
				createBody(big, "2026-01-01T00:00:00Z", "2026-06-30T23:59:59.999Z", "gzip"), "Prefer", "wait=0")
			mu.Lock()
			got[r.code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// B: one small export a second for 20 s, under A's load.
	var contended []time.Duration
	for i := 0; i < 20; i++ {
		next := time.Now().Add(time.Second)
		d, err := runB(10 + i)
		if err != nil {
			t.Fatal(err)
		}
		contended = append(contended, d)
		time.Sleep(time.Until(next))
	}
	worst := contended[0]
	for _, d := range contended {
		worst = max(worst, d)
	}
	if got[201] < 50 || got[201]+got[429] != 80 {
		t.Fatalf("A's creates: %v (want 50 admitted, the rest 429)", got)
	}
	t.Logf("A's 80 creates: %v (201 admitted pending or running, 429 beyond the pending cap)", got)
	t.Logf("B uncontended median %v; under A's load median %v (%.1fx), worst %v (%d exports); one A export alone %v",
		base.Round(time.Millisecond), median(contended).Round(time.Millisecond), float64(median(contended))/float64(base),
		worst.Round(time.Millisecond), len(contended), aExport.Round(time.Millisecond))
	// Every B export was admitted and ready (runB); none waited behind A's
	// backlog: each took less than one of A's exports. (Within 2x of its
	// uncontended time it is not, on 2 cores: A's two running exports take
	// the CPU B's export needs; the slot itself is B's at once. The note
	// reports the figures.)
	if worst >= aExport {
		t.Fatalf("a B export took %v under A's load: as long as one of A's exports (%v)", worst, aExport)
	}
	// Stop A's backlog so later tests find a quiet replica.
	_, _, body := s.do(t, "GET", "/operations-activity-exports?page_size=100", tokA, "")
	for _, id := range idsIn(string(body)) {
		raceDo(s, "POST", "/operations-activity-exports/"+id+"/cancel", tokA, "")
	}
}

func median(ds []time.Duration) time.Duration {
	c := append([]time.Duration(nil), ds...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

// idsIn returns the export ids of a list page.
func idsIn(body string) []string {
	var out []string
	for _, part := range strings.Split(body, `"id":"`)[1:] {
		if i := strings.IndexByte(part, '"'); i > 0 {
			out = append(out, part[:i])
		}
	}
	return out
}
