package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/engine/pgstore/pgtest"
	"github.com/exportd/exportd/engine/webhook"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/server"
)

// The delivery tests run against a real private PostgreSQL and real
// loopback receivers.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var err error
	pg, err = pgtest.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// receiver is a loopback webhook receiver that verifies every request's
// signature and answers fail(id, attempt) (500) or 200.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	key    []byte
	fail   func(id string, attempt int) bool
	hang   <-chan struct{} // non-nil: every request waits for it
	mu     sync.Mutex
	bodies map[string][][]byte // by webhook-id, every attempt
	ok     map[string]time.Time
	bad    []string
}

func newReceiver(t *testing.T, secret string, fail func(string, int) bool) *receiver {
	key, err := webhook.DecodeSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, key: key, fail: fail, bodies: map[string][][]byte{}, ok: map[string]time.Time{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.hang != nil {
		<-r.hang
	}
	body, _ := io.ReadAll(req.Body)
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	unix, err := strconv.ParseInt(ts, 10, 64)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || req.Header.Get("webhook-signature") != webhook.Sign(r.key, id, unix, body) ||
		time.Since(time.Unix(unix, 0)).Abs() > time.Minute {
		r.bad = append(r.bad, id)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.bodies[id] = append(r.bodies[id], body)
	if r.fail != nil && r.fail(id, len(r.bodies[id])) {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if _, dup := r.ok[id]; !dup {
		r.ok[id] = time.Now()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ok)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish makes an export of ent and ends it in status (ready or cancelled).
func finish(t *testing.T, s *pgstore.Store, ent, status string) *engine.Export {
	t.Helper()
	ctx := context.Background()
	x := &engine.Export{ID: uuid.NewString(), Format: "csv", Compression: "none", DateFrom: "2026-01-01T00:00:00Z",
		DateTo: "2026-01-31T23:59:59Z", ScopeKind: engine.KindEnterprise, ScopeRef: ent, EnterpriseRef: ent,
		GeneratedBy: "users/" + uuid.NewString(), StorageLocation: "file:///x", Owner: "o"}
	if _, _, err := s.Create(ctx, x, nil, 0); err != nil {
		t.Fatal(err)
	}
	var err error
	if status == engine.StatusCancelled {
		x, err = s.Cancel(ctx, x.ID)
	} else {
		x, err = s.Finish(ctx, x.ID, x.Owner, x.Version, pgstore.Final{Status: status, RowCount: 3, ByteSize: 99, Checksum: "abc", Retention: time.Hour})
	}
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// run starts a deliverer and returns its stop function (which waits for it).
func run(t *testing.T, cfg webhook.Config) func() {
	t.Helper()
	if cfg.Sender == nil {
		cfg.Sender = webhook.NewClient(webhook.ClientConfig{AllowLoopback: true})
	}
	cfg.Render = server.RenderExport
	d, err := webhook.NewDeliverer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

var fastBackoff = webhook.Backoff{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond, GiveUp: time.Hour}

// A receiver answering 500 twice per event, then 200: every event is
// accepted exactly once after two retries, every attempt carries the same
// webhook-id and body (verified signature), the body is
// {"type","timestamp","data"} with data the API's export resource, and the
// log and metrics say so.
func TestRetriedUntilAcceptedExactlyOnce(t *testing.T) {
	ctx := context.Background()
	s := pg.Store
	ent := "enterprises/" + uuid.NewString()
	secret, _ := webhook.NewSecret()
	rcv := newReceiver(t, secret, func(_ string, attempt int) bool { return attempt <= 2 })
	w := &webhook.Endpoint{ID: uuid.NewString(), URL: rcv.srv.URL + "/hook?k=v", ScopeKind: engine.KindEnterprise, ScopeRef: ent,
		EnterpriseRef: ent, Events: webhook.Events, Secret: secret, CreatedBy: "users/u"}
	if err := s.CreateEndpoint(ctx, w, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.DeleteEndpoint(ctx, w.ID) })

	exports := map[string]*engine.Export{}
	for i := 0; i < 10; i++ {
		x := finish(t, s, ent, engine.StatusReady)
		exports[x.ID] = x
	}
	c := finish(t, s, ent, engine.StatusCancelled)
	exports[c.ID] = c

	reg := prometheus.NewRegistry()
	m := metrics.NewWebhook(reg)
	stop := run(t, webhook.Config{Store: s, Owner: "replica-a", Poll: 20 * time.Millisecond, Backoff: fastBackoff, Metrics: m})
	waitFor(t, 20*time.Second, "11 accepted events", func() bool { return rcv.accepted() == 11 })
	time.Sleep(300 * time.Millisecond) // no attempt after the 200
	stop()

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) != 0 {
		t.Fatalf("bad signatures: %v", rcv.bad)
	}
	seenExports := map[string]bool{}
	for id, bodies := range rcv.bodies {
		if len(bodies) != 3 {
			t.Fatalf("event %s attempted %d times, want 3", id, len(bodies))
		}
		for _, b := range bodies[1:] {
			if !bytes.Equal(b, bodies[0]) {
				t.Fatalf("event %s: body changed between attempts:\n%s\n%s", id, bodies[0], b)
			}
		}
		var ev struct {
			Type      string          `json:"type"`
			Timestamp string          `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		dec := json.NewDecoder(bytes.NewReader(bodies[0]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("body %s: %v", bodies[0], err)
		}
		var data struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(ev.Data, &data)
		x := exports[data.ID]
		if x == nil || seenExports[x.ID] {
			t.Fatalf("event for export %q (unknown or twice)", data.ID)
		}
		seenExports[x.ID] = true
		want, _ := server.RenderExport(x)
		if !bytes.Equal(ev.Data, want) {
			t.Fatalf("data\n%s\nwant the resource\n%s", ev.Data, want)
		}
		if ev.Type != "operations_activity_export."+x.Status {
			t.Fatalf("type %s for a %s export", ev.Type, x.Status)
		}
		if _, err := time.Parse(time.RFC3339, ev.Timestamp); err != nil || ev.Timestamp[len(ev.Timestamp)-1] != 'Z' {
			t.Fatalf("timestamp %q", ev.Timestamp)
		}
	}
	ds, err := s.Deliveries(ctx, w.ID, 100)
	if err != nil || len(ds) != 11 {
		t.Fatalf("log: %d %v", len(ds), err)
	}
	for _, d := range ds {
		if d.State != webhook.StateDelivered || d.Attempts != 3 || d.LastStatus != 204 {
			t.Fatalf("log entry %+v", d)
		}
	}
	if got := testutil.ToFloat64(m.Deliveries.WithLabelValues(metrics.WebhookDelivered)); got != 11 {
		t.Fatalf("delivered metric %v", got)
	}
	if got := testutil.ToFloat64(m.Deliveries.WithLabelValues(metrics.WebhookRetry)); got != 22 {
		t.Fatalf("retry metric %v", got)
	}
	if got := testutil.ToFloat64(m.Attempts); got != 33 {
		t.Fatalf("attempts metric %v", got)
	}
}

// One, then two replicas' deliverers over one outbox: every event is
// attempted once, by one of them. Also measures one deliverer's throughput
// on a backlog to four endpoints and the finish → 2xx latency.
func TestTwoDeliverersAttemptEachEventOnce(t *testing.T) {
	s := pg.Store
	other := pgstore.New(pg.Pool)
	ent := "enterprises/" + uuid.NewString()
	var rcvs []*receiver
	for i := 0; i < 4; i++ {
		secret, _ := webhook.NewSecret()
		rcv := newReceiver(t, secret, nil)
		w := &webhook.Endpoint{ID: uuid.NewString(), URL: rcv.srv.URL, ScopeKind: engine.KindEnterprise, ScopeRef: ent,
			EnterpriseRef: ent, Events: webhook.Events, Secret: secret, CreatedBy: "users/u"}
		if err := s.CreateEndpoint(context.Background(), w, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.DeleteEndpoint(context.Background(), w.ID) })
		rcvs = append(rcvs, rcv)
	}
	accepted := func() int {
		n := 0
		for _, r := range rcvs {
			n += r.accepted()
		}
		return n
	}
	// A backlog of n events (4n deliveries) drained by one deliverer (its
	// poll interval plays no part while it finds work).
	const n = 150
	for i := 0; i < n; i++ {
		finish(t, s, ent, engine.StatusReady)
	}
	start := time.Now()
	run(t, webhook.Config{Store: s, Owner: "replica-a", Poll: 5 * time.Second, Backoff: fastBackoff})
	waitFor(t, 60*time.Second, "the backlog", func() bool { return accepted() == 4*n })
	elapsed := time.Since(start)
	t.Logf("backlog of %d deliveries to 4 endpoints drained by one deliverer in %v (%.0f deliveries/s)", 4*n, elapsed, 4*n/elapsed.Seconds())

	// A second replica's deliverer joins; events one at a time, finish →
	// the 2xx of all four receivers. Both poll only every 5 s: what
	// delivers at once is the NOTIFY of the event's transaction.
	run(t, webhook.Config{Store: other, Owner: "replica-b", Poll: 5 * time.Second, Backoff: fastBackoff})
	var lat []time.Duration
	for i := 0; i < 40; i++ {
		before := accepted()
		t0 := time.Now()
		finish(t, s, ent, engine.StatusReady)
		waitFor(t, 10*time.Second, "one event", func() bool { return accepted() == before+4 })
		lat = append(lat, time.Since(t0))
		time.Sleep(time.Duration(i%5) * 37 * time.Millisecond) // not in step with the polls
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("finish → 2xx latency over %d events × 4 endpoints, two replicas woken by NOTIFY: p50 %v, p99 %v",
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100])
	if p50 := lat[len(lat)/2]; p50 > time.Second {
		t.Fatalf("p50 latency %v: deliverers wait for their 5 s poll, not the NOTIFY", p50)
	}
	time.Sleep(200 * time.Millisecond)
	for _, rcv := range rcvs {
		rcv.mu.Lock()
		for id, b := range rcv.bodies {
			if len(b) != 1 {
				t.Errorf("event %s attempted %d times", id, len(b))
			}
		}
		if len(rcv.bodies) != n+40 || len(rcv.bad) != 0 {
			t.Errorf("%d events received (%d badly signed), want %d", len(rcv.bodies), len(rcv.bad), n+40)
		}
		rcv.mu.Unlock()
	}
}

// A receiver that hangs holds at most its own attempts (each cut at the
// client's timeout); another endpoint's events are delivered meanwhile.
func TestHangingReceiverDoesNotDelayOthers(t *testing.T) {
	s := pg.Store
	ent := "enterprises/" + uuid.NewString()
	hang := make(chan struct{})
	defer close(hang)
	slowSecret, _ := webhook.NewSecret()
	slow := newReceiver(t, slowSecret, nil)
	slow.hang = hang
	fastSecret, _ := webhook.NewSecret()
	fast := newReceiver(t, fastSecret, nil)
	for _, ep := range []struct {
		url, secret string
	}{{slow.srv.URL, slowSecret}, {fast.srv.URL, fastSecret}} {
		w := &webhook.Endpoint{ID: uuid.NewString(), URL: ep.url, ScopeKind: engine.KindEnterprise, ScopeRef: ent,
			EnterpriseRef: ent, Events: webhook.Events, Secret: ep.secret, CreatedBy: "users/u"}
		if err := s.CreateEndpoint(context.Background(), w, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.DeleteEndpoint(context.Background(), w.ID) })
	}
	run(t, webhook.Config{Store: s, Owner: "replica-a", Poll: 20 * time.Millisecond, Concurrency: 8, Backoff: fastBackoff,
		Sender: webhook.NewClient(webhook.ClientConfig{AllowLoopback: true, Timeout: 10 * time.Second})})
	// Every event goes to both endpoints: the slow one's attempts pile up
	// (up to the concurrency bound) while the fast one's keep flowing.
	start := time.Now()
	for i := 0; i < 20; i++ {
		finish(t, s, ent, engine.StatusReady)
	}
	waitFor(t, 5*time.Second, "the fast receiver's 20 events", func() bool { return fast.accepted() == 20 })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("fast receiver served after %v", d)
	}
	t.Logf("20 events to a fast receiver in %v beside a hanging one", time.Since(start))
	if slow.accepted() != 0 {
		t.Fatal("the hanging receiver answered")
	}
}
