package server

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/server/admission"
)

// newAdmissionEnv is newEnv with lim as Config.Admission.
func newAdmissionEnv(t *testing.T, reader engine.Reader, lim *admission.Limiter) (*env, prometheus.Gatherer) {
	t.Helper()
	e := newEnv(t, envOptions{reader: reader, admission: lim})
	return e, e.reg
}

// counterValue returns the value of the counter name with the label pair, 0 if absent.
func counterValue(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestOverloaded fills the only export slot (Max 1, no queue) with an export that parks until
// cancelled: the next create is shed with 503 overloaded and the exact envelope (SPEC §1, §6),
// counted by reason, without taking a slot; once the slot is free, creates are admitted again.
func TestOverloaded(t *testing.T) {
	lim, err := admission.New(admission.Config{Max: 1, QueueSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	reader := &blockingReader{Reader: source.New(chCfg, source.Options{})}
	e, reg := newAdmissionEnv(t, reader, lim)
	busy, free := newTenant(), newTenant()
	reader.blockEnterprise(busy.ent)
	tok := e.token(newUser(), capsAll, busy.ent+":subtree", free.ent+":subtree")
	wait0 := map[string]string{"Prefer": "wait=0"}

	parked := e.create(tok, createBody("enterprise", busy.ent, aprFrom, aprTo, ""), wait0)
	if lim.InFlight() != 1 {
		t.Fatalf("InFlight %d with one export running, want 1", lim.InFlight())
	}

	for range 3 {
		start := time.Now()
		r := e.do("POST", exportsPath, tok, createBody("enterprise", free.ent, aprFrom, aprTo, ""), wait0)
		elapsed := time.Since(start)
		details := wantError(t, r, http.StatusServiceUnavailable, "temporarily_unavailable",
			"Service is temporarily unavailable.", "overloaded")
		keys := make([]string, 0, len(details))
		for k := range details {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"reason", "retry_after_ms"}) {
			t.Errorf("details %v, want exactly reason and retry_after_ms", details)
		}
		ms := num(t, details["retry_after_ms"]) // fails unless an integer
		if ms <= 0 {
			t.Fatalf("details.retry_after_ms %d: want a positive integer", ms)
		}
		want := strconv.FormatInt(int64(math.Ceil(float64(ms)/1000)), 10)
		if got := r.header.Get("Retry-After"); got != want || want == "0" {
			t.Errorf("Retry-After %q with retry_after_ms %d, want %s (ceil, at least 1)", got, ms, want)
		}
		if elapsed > 2*time.Second {
			t.Errorf("a shed without a queue took %s", elapsed)
		}
	}
	if got := counterValue(t, reg, "exportd_admission_shed_total", "reason", admission.ReasonQueueFull); got != 3 {
		t.Errorf("exportd_admission_shed_total{reason=queue_full} = %v, want 3", got)
	}
	if lim.InFlight() != 1 {
		t.Fatalf("InFlight %d after sheds, want 1: a shed must not take a slot", lim.InFlight())
	}
	// The shed creates left no export behind: the caller sees only the parked one.
	l := e.do("GET", exportsPath, tok, "", nil)
	if l.status != http.StatusOK || strings.Count(string(l.body), `"id":`) != 1 {
		t.Fatalf("list after sheds: %d %s", l.status, l.body)
	}

	// Cancelling the parked export frees its slot.
	id := parked["id"].(string)
	if c := e.do("POST", exportsPath+"/"+id+"/cancel", tok, "", nil); c.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", c.status, c.body)
	}
	eventually(t, "the cancelled export's slot", func() bool { return lim.InFlight() == 0 })
	m := e.create(tok, createBody("enterprise", free.ent, aprFrom, aprTo, ""), nil)
	if m["status"] != "ready" {
		t.Fatalf("create after the slot freed: %v", m)
	}
}

// eventually polls cond until it holds, failing the test after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pendingEnv is a server whose engine takes its slots from lim, one export
// per enterprise at once and up to 10 pending, with exports of two tenants
// a and b stalled until cancelled (or unblocked) and a token covering both.
func pendingEnv(t *testing.T, lim *admission.Limiter) (e *env, reader *blockingReader, a, b tenant, tok string) {
	t.Helper()
	reader = &blockingReader{Reader: source.New(chCfg, source.Options{})}
	e = newEnv(t, envOptions{reader: reader, admission: lim, rateLimit: 1000, rateBurst: 1000, tune: func(c *engine.Config) {
		c.MaxPerEnterprise, c.MaxPendingPerEnterprise = 1, 10
	}})
	a, b = newTenant(), newTenant()
	reader.blockEnterprise(a.ent)
	reader.blockEnterprise(b.ent)
	return e, reader, a, b, e.token(newUser(), capsAll, a.ent+":subtree", b.ent+":subtree")
}

// A create of an enterprise that holds its share here would wait pending,
// slot-less: admitted while the replica has room (its own exports are the
// bottleneck, issue 13), shed with 503 overloaded like any create while the
// replica sheds (it would wait behind every queued create for as long as
// the overload lasts), and admitted pending again once the overload ends.
func TestSlotlessShedUnderOverload(t *testing.T) {
	lim, err := admission.New(admission.Config{Max: 2, QueueSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	e, _, a, b, tok := pendingEnv(t, lim)
	wait0 := map[string]string{"Prefer": "wait=0"}
	aBody := createBody("enterprise", a.ent, aprFrom, aprTo, "")

	e.create(tok, aBody, wait0) // A's running export: its share
	if r := e.do("POST", exportsPath, tok, aBody, wait0); r.status != http.StatusCreated {
		t.Fatalf("A's second create with a slot free: %d %s (want 201 pending)", r.status, r.body)
	}
	// The pending export holds the free slot while it asks the control plane
	// whether A may start (no: A is at its cap): then the slot is free again.
	eventually(t, "the pending export's start attempt", func() bool { return lim.InFlight() == 1 })
	b1 := e.create(tok, createBody("enterprise", b.ent, aprFrom, aprTo, ""), wait0) // the last slot
	if lim.InFlight() != 2 {
		t.Fatalf("InFlight %d, want 2", lim.InFlight())
	}
	r := e.do("POST", exportsPath, tok, aBody, wait0)
	d := wantError(t, r, http.StatusServiceUnavailable, "temporarily_unavailable", "Service is temporarily unavailable.", "overloaded")
	if num(t, d["retry_after_ms"]) <= 0 {
		t.Fatalf("no retry hint: %s", r.body)
	}
	if l := e.do("GET", exportsPath, tok, "", nil); strings.Count(string(l.body), `"id":`) != 3 {
		t.Fatalf("the shed create left an export behind: %s", l.body)
	}
	// B's export ends: its slot is free again, and A's next create waits pending.
	if c := e.do("POST", exportsPath+"/"+b1["id"].(string)+"/cancel", tok, "", nil); c.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", c.status, c.body)
	}
	eventually(t, "B's slot", func() bool { return lim.InFlight() < 2 })
	if r := e.do("POST", exportsPath, tok, aBody, wait0); r.status != http.StatusCreated {
		t.Fatalf("A's create after the overload: %d %s (want 201 pending)", r.status, r.body)
	}
}

// A pending export queues for its slot in turn with the creates, once it
// can start: it holds no place while its enterprise's share is taken (a
// slot handed to it would idle), takes one at the back of the admission
// queue when the share frees up, and starts when its turn comes. Before,
// it could only take a slot at a moment when no create waited, which
// under sustained load never comes (bench/overload at 10x: pending exports
// waited 20 s and more).
func TestPendingQueuesForItsSlot(t *testing.T) {
	lim, err := admission.New(admission.Config{Max: 1, QueueSize: 64, QueueTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e, reader, a, b, tok := pendingEnv(t, lim)
	wait0 := map[string]string{"Prefer": "wait=0"}
	a1 := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), wait0)
	a2 := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), wait0) // pending behind a1
	time.Sleep(300 * time.Millisecond)                                              // the dispatcher's turns for a2
	if q := lim.Queued(); q != 0 {
		t.Fatalf("Queued %d while a2's share is taken by a1, want 0", q)
	}
	reader.unblockEnterprise(a.ent) // a2 runs normally once started

	// b's create waits in the admission queue (nothing predicted yet: it queues).
	bCreated := make(chan map[string]any, 1)
	go func() {
		r := e.do("POST", exportsPath, tok, createBody("enterprise", b.ent, aprFrom, aprTo, ""), wait0)
		if r.status != http.StatusCreated {
			t.Errorf("b's create: %d %s", r.status, r.body)
			bCreated <- nil
			return
		}
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Error(err)
		}
		bCreated <- m
	}()
	eventually(t, "b's create queued", func() bool { return lim.Queued() == 1 })
	if c := e.do("POST", exportsPath+"/"+a1["id"].(string)+"/cancel", tok, "", nil); c.status != http.StatusOK {
		t.Fatalf("cancel a1: %d %s", c.status, c.body)
	}
	b1 := <-bCreated // the slot went to b, first in line
	if b1 == nil {
		t.FailNow()
	}
	// a2 can start now: it takes its place in the queue, behind nobody.
	eventually(t, "a2 queued for its slot", func() bool { return lim.Queued() == 1 })
	if c := e.do("POST", exportsPath+"/"+b1["id"].(string)+"/cancel", tok, "", nil); c.status != http.StatusOK {
		t.Fatalf("cancel b1: %d %s", c.status, c.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := e.do("GET", exportsPath+"/"+a2["id"].(string), tok, "", nil)
		if strings.Contains(string(g.body), `"status":"ready"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a2 not ready 10 s after its turn: %s", g.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
