package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/exportd/exportd/engine/webhook"
)

// Completion webhooks end to end (SPEC §8): real exportd processes, a
// loopback receiver, and every delivery verified by the Standard Webhooks
// reference library (the npm package standardwebhooks), which nobody here
// wrote.

// standardwebhooksVersion is the npm package the verifier installs.
const standardwebhooksVersion = "standardwebhooks@1.1.1"

// verifierJS reads one JSON request per line ({secret, id, timestamp,
// signature, body}) and answers one line: {"ok":true,"type":...} when the
// library's Webhook.verify accepts it, else {"ok":false,"error":...}.
const verifierJS = `const { Webhook } = require('standardwebhooks');
const rl = require('readline').createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  const m = JSON.parse(line);
  let out;
  try {
    const payload = new Webhook(m.secret).verify(m.body, {
      'webhook-id': m.id, 'webhook-timestamp': m.timestamp, 'webhook-signature': m.signature });
    out = { ok: true, type: payload.type };
  } catch (e) {
    out = { ok: false, error: String((e && e.message) || e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
`

var (
	verifierOnce sync.Once
	verifierDir  string
	verifierErr  error
)

// installVerifier installs standardwebhooks with npm into a temp dir once
// per test binary (it fails the test, never skips, when it cannot).
func installVerifier(t *testing.T) string {
	t.Helper()
	verifierOnce.Do(func() {
		dir, err := os.MkdirTemp("", "exportd-standardwebhooks-")
		if err != nil {
			verifierErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", dir, standardwebhooksVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			verifierErr = fmt.Errorf("npm install %s: %v\n%s", standardwebhooksVersion, err, out)
			return
		}
		verifierErr = os.WriteFile(filepath.Join(dir, "verify.js"), []byte(verifierJS), 0o644)
		verifierDir = dir
	})
	if verifierErr != nil {
		t.Fatal(verifierErr)
	}
	return verifierDir
}

// verifier is a running node process of verifierJS.
type verifier struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
}

func startVerifier(t *testing.T) *verifier {
	t.Helper()
	dir := installVerifier(t)
	cmd := exec.Command("node", filepath.Join(dir, "verify.js"))
	cmd.Dir = dir
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	return &verifier{in: in, out: bufio.NewReader(out)}
}

// verify asks the library; it returns the event type, or an error.
func (v *verifier) verify(secret string, h http.Header, body []byte) (string, error) {
	req, _ := json.Marshal(map[string]string{"secret": secret, "id": h.Get("webhook-id"),
		"timestamp": h.Get("webhook-timestamp"), "signature": h.Get("webhook-signature"), "body": string(body)})
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, err := v.in.Write(append(req, '\n')); err != nil {
		return "", err
	}
	line, err := v.out.ReadBytes('\n')
	if err != nil {
		return "", err
	}
	var res struct {
		OK    bool   `json:"ok"`
		Type  string `json:"type"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &res); err != nil {
		return "", err
	}
	if !res.OK {
		return "", fmt.Errorf("standardwebhooks: %s", res.Error)
	}
	return res.Type, nil
}

// hookReceiver is a loopback receiver: every request is verified with the
// library first (400 if it fails); then fail(attempt) answers 500, hang
// holds the request until the client goes away (or the test ends), else
// 200.
type hookReceiver struct {
	t       *testing.T
	srv     *httptest.Server
	v       *verifier
	release chan struct{}

	mu       sync.Mutex
	secret   string
	fail     func(attempt int) bool
	hang     func(attempt int) bool
	attempts map[string][][]byte // webhook-id → bodies of every verified attempt
	accepted map[string]string   // webhook-id → event type, on its 200
	order    []string            // accepted ids in order
	bad      []string
	arrived  chan string // webhook-id of every verified attempt
}

func newHookReceiver(t *testing.T, v *verifier) *hookReceiver {
	r := &hookReceiver{t: t, v: v, release: make(chan struct{}), attempts: map[string][][]byte{},
		accepted: map[string]string{}, arrived: make(chan string, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() { close(r.release) }) // runs first: hanging handlers return
	return r
}

func (r *hookReceiver) setSecret(s string) { r.mu.Lock(); r.secret = s; r.mu.Unlock() }

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	typ, err := r.v.verify(secret, req.Header, body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	if err != nil {
		r.bad = append(r.bad, id+": "+err.Error())
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.attempts[id] = append(r.attempts[id], body)
	n := len(r.attempts[id])
	fail := r.fail != nil && r.fail(n)
	hang := r.hang != nil && r.hang(n)
	r.mu.Unlock()
	select {
	case r.arrived <- id:
	default: // nobody is waiting for that many
	}
	if hang {
		select {
		case <-req.Context().Done():
		case <-r.release:
		}
		return
	}
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	r.mu.Lock()
	if _, dup := r.accepted[id]; !dup {
		r.accepted[id] = typ
		r.order = append(r.order, id)
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *hookReceiver) acceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

// registerHook registers the receiver for ent's events and gives it the secret.
func registerHook(t *testing.T, s *service, tok, ent string, r *hookReceiver) string {
	t.Helper()
	code, _, b := s.do(t, "POST", "/operations-activity-export-webhooks", tok,
		fmt.Sprintf(`{"url":%q,"scope":{"kind":"enterprise","ref":%q}}`, r.srv.URL+"/hooks", ent))
	if code != 201 {
		t.Fatalf("register webhook: %d %s", code, b)
	}
	var m struct{ ID, Secret string }
	if err := json.Unmarshal(b, &m); err != nil || !strings.HasPrefix(m.Secret, "whsec_") {
		t.Fatalf("register webhook: %s", b)
	}
	r.setSecret(m.Secret)
	return m.ID
}

// readyExport creates an export of ent (no rows: it is ready at once) and
// returns its id and GET body once ready.
func readyExport(t *testing.T, s *service, tok, ent string) (string, []byte) {
	t.Helper()
	code, _, b := s.do(t, "POST", "/operations-activity-exports", tok,
		createBody(ent, "2026-01-01T00:00:00Z", "2026-01-31T23:59:59Z", "none"), "Prefer", "wait=20")
	if code != 201 || decodeResource(t, b).Status != "ready" {
		t.Fatalf("create: %d %s", code, b)
	}
	id := decodeResource(t, b).ID
	code, _, got := s.do(t, "GET", "/operations-activity-exports/"+id, tok, "")
	if code != 200 {
		t.Fatalf("get: %d %s", code, got)
	}
	return id, got
}

type hookEvent struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

var webhookEnv = []string{"EXPORTD_WEBHOOK_ALLOW_LOOPBACK=true", "EXPORTD_WEBHOOK_BACKOFF_BASE=100ms"}

// A receiver answering 500 twice per event, then 200: every event (ready,
// and expired once the retention passes) is accepted exactly once, every
// attempt passes the reference verifier with the same webhook-id and body,
// the data is the API's export resource, and the deliveries log and
// metrics agree.
func TestE2EWebhooksDeliveredAfterRetries(t *testing.T) {
	mustExportd(t, nil, "migrate")
	v := startVerifier(t)
	s := startServe(t, append(webhookEnv, "EXPORTD_RETENTION=2s")...)
	ent := "enterprises/" + uuid.NewString()
	tok := s.token(t, ent+":subtree", "operations_reports.create", "operations_reports.read")
	rcv := newHookReceiver(t, v)
	rcv.fail = func(attempt int) bool { return attempt <= 2 }
	hook := registerHook(t, s, tok, ent, rcv)

	resources := map[string][]byte{}
	for i := 0; i < 3; i++ {
		id, body := readyExport(t, s, tok, ent)
		resources[id] = body
	}
	eventually(t, 30*time.Second, "3 ready events accepted", func() bool { return rcv.acceptedCount() == 3 })
	// The expiry pass of the engine runs every 30 s; run the same store
	// call now, once the 2 s retention has passed.
	time.Sleep(2 * time.Second)
	if _, err := testPG.Store.ExpireDue(context.Background(), 100000); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "3 expired events accepted", func() bool { return rcv.acceptedCount() == 6 })
	time.Sleep(500 * time.Millisecond) // nothing more arrives after the 200s

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) != 0 {
		t.Fatalf("deliveries refused by standardwebhooks: %q", rcv.bad)
	}
	types := map[string]int{}
	seen := map[string]bool{}
	for id, bodies := range rcv.attempts {
		if len(bodies) != 3 {
			t.Fatalf("event %s: %d attempts, want 3", id, len(bodies))
		}
		for _, b := range bodies[1:] {
			if !bytes.Equal(b, bodies[0]) {
				t.Fatalf("event %s: body changed between retries", id)
			}
		}
		var ev hookEvent
		if err := json.Unmarshal(bodies[0], &ev); err != nil {
			t.Fatal(err)
		}
		if rcv.accepted[id] != ev.Type {
			t.Fatalf("event %s: verifier read type %q, body says %q", id, rcv.accepted[id], ev.Type)
		}
		x := decodeResource(t, ev.Data)
		if resources[x.ID] == nil || seen[ev.Type+x.ID] {
			t.Fatalf("event %s for export %s (unknown, or twice)", ev.Type, x.ID)
		}
		seen[ev.Type+x.ID] = true
		types[ev.Type]++
		switch ev.Type {
		case "operations_activity_export.ready":
			if !bytes.Equal(ev.Data, resources[x.ID]) {
				t.Fatalf("ready data\n%s\nis not the resource\n%s", ev.Data, resources[x.ID])
			}
		case "operations_activity_export.expired":
			if x.Status != "expired" {
				t.Fatalf("expired event with status %s", x.Status)
			}
		}
		if _, err := time.Parse(time.RFC3339, ev.Timestamp); err != nil {
			t.Fatalf("timestamp %q", ev.Timestamp)
		}
	}
	if types["operations_activity_export.ready"] != 3 || types["operations_activity_export.expired"] != 3 {
		t.Fatalf("events by type %v", types)
	}
	code, _, b := s.do(t, "GET", "/operations-activity-export-webhooks/"+hook+"/deliveries", tok, "")
	var log struct {
		Items []struct {
			EventID        string `json:"event_id"`
			Attempts       int    `json:"attempts"`
			Delivered      bool   `json:"delivered"`
			LastStatusCode int    `json:"last_status_code"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &log); code != 200 || err != nil || len(log.Items) != 6 {
		t.Fatalf("deliveries log: %d %s", code, b)
	}
	for _, it := range log.Items {
		if !it.Delivered || it.Attempts != 3 || it.LastStatusCode != 200 || rcv.accepted[it.EventID] == "" {
			t.Fatalf("log entry %+v", it)
		}
	}
	if got := s.metric(t, `exportd_webhook_deliveries_total{outcome="delivered"}`); got != 6 {
		t.Fatalf("delivered metric %v", got)
	}
	if got := s.metric(t, `exportd_webhook_deliveries_total{outcome="retry"}`); got != 12 {
		t.Fatalf("retry metric %v", got)
	}
}

// metric reads one sample of the admin listener's exposition.
func (s *service) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(rest, &f)
			return f
		}
	}
	t.Fatalf("metric %s not exposed", name)
	return 0
}

// The replica attempting a delivery is SIGKILLed while the receiver holds
// the request; another replica retakes the delivery once the lease ends
// and delivers it: the same webhook-id and body, accepted once.
func TestE2EWebhookReplicaKilledMidDelivery(t *testing.T) {
	mustExportd(t, nil, "migrate")
	v := startVerifier(t)
	env := append(webhookEnv, "EXPORTD_WEBHOOK_LEASE=11s")
	reps, storage := startReplicas(t, 1, env...)
	a := reps[0]
	ent := "enterprises/" + uuid.NewString()
	tok := a.token(t, ent+":subtree", "operations_reports.create", "operations_reports.read")
	rcv := newHookReceiver(t, v)
	rcv.hang = func(attempt int) bool { return attempt == 1 }
	hook := registerHook(t, a, tok, ent, rcv)
	readyExport(t, a, tok, ent)
	var id string
	select {
	case id = <-rcv.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery attempt")
	}
	killed := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	b := startReplica(t, storage, "replica-b", env...)
	eventually(t, 30*time.Second, "the delivery by replica-b", func() bool { return rcv.acceptedCount() == 1 })
	t.Logf("delivered by replica-b %v after the SIGKILL (lease 11s)", time.Since(killed).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) != 0 || len(rcv.attempts) != 1 || len(rcv.attempts[id]) != 2 || rcv.accepted[id] == "" {
		t.Fatalf("attempts %d for %s (of %d ids), accepted %v, bad %q", len(rcv.attempts[id]), id, len(rcv.attempts), rcv.accepted, rcv.bad)
	}
	if !bytes.Equal(rcv.attempts[id][0], rcv.attempts[id][1]) {
		t.Fatal("the retaken delivery's body changed")
	}
	code, _, body := b.do(t, "GET", "/operations-activity-export-webhooks/"+hook+"/deliveries", tok, "")
	if code != 200 || !strings.Contains(string(body), `"attempts":2`) || !strings.Contains(string(body), `"delivered":true`) {
		t.Fatalf("deliveries log: %d %s", code, body)
	}
}

// A receiver that hangs on every attempt does not delay another
// endpoint's deliveries.
func TestE2EWebhookHangingReceiverDoesNotDelayOthers(t *testing.T) {
	mustExportd(t, nil, "migrate")
	v := startVerifier(t)
	s := startServe(t, webhookEnv...)
	ent := "enterprises/" + uuid.NewString()
	tok := s.token(t, ent+":subtree", "operations_reports.create", "operations_reports.read")
	slow, fast := newHookReceiver(t, v), newHookReceiver(t, v)
	slow.hang = func(int) bool { return true }
	registerHook(t, s, tok, ent, slow)
	registerHook(t, s, tok, ent, fast)
	start := time.Now()
	for i := 0; i < 8; i++ {
		readyExport(t, s, tok, ent)
	}
	eventually(t, 8*time.Second, "8 events at the fast receiver", func() bool { return fast.acceptedCount() == 8 })
	t.Logf("8 events delivered in %v beside a hanging receiver", time.Since(start).Round(time.Millisecond))
	if slow.acceptedCount() != 0 {
		t.Fatal("the hanging receiver accepted")
	}
	fast.mu.Lock()
	defer fast.mu.Unlock()
	if len(fast.bad) != 0 {
		t.Fatalf("refused by standardwebhooks: %q", fast.bad)
	}
}

// The verifier is not a rubber stamp: it accepts what our signer signs and
// refuses a changed body, id or timestamp, a stale timestamp and a wrong
// secret.
func TestE2EWebhookVerifierRefusesForgeries(t *testing.T) {
	v := startVerifier(t)
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := webhook.NewSecret()
	key, _ := webhook.DecodeSecret(secret)
	body := []byte(`{"type":"operations_activity_export.ready","timestamp":"2026-05-01T10:00:00.000Z","data":{}}`)
	now := time.Now().Unix()
	headers := func(id string, ts int64, sig string) http.Header {
		return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {strconv.FormatInt(ts, 10)}, "Webhook-Signature": {sig}}
	}
	good := webhook.Sign(key, "evt-1", now, body)
	if typ, err := v.verify(secret, headers("evt-1", now, good), body); err != nil || typ != "operations_activity_export.ready" {
		t.Fatalf("genuine delivery: %q %v", typ, err)
	}
	old := now - 3600
	for name, c := range map[string]struct {
		secret string
		h      http.Header
		body   []byte
	}{
		"changed body":    {secret, headers("evt-1", now, good), bytes.Replace(body, []byte("ready"), []byte("failed"), 1)},
		"changed id":      {secret, headers("evt-2", now, good), body},
		"changed time":    {secret, headers("evt-1", now+1, good), body},
		"stale timestamp": {secret, headers("evt-1", old, webhook.Sign(key, "evt-1", old, body)), body},
		"wrong secret":    {other, headers("evt-1", now, good), body},
	} {
		if _, err := v.verify(c.secret, c.h, c.body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Exports a schedule makes (SPEC §9) fire the usual webhooks: a daily UTC
// schedule starting three days back backfills three exports, and the
// receiver gets exactly their three ready events.
func TestE2EWebhooksForScheduledExports(t *testing.T) {
	mustExportd(t, nil, "migrate")
	v := startVerifier(t)
	s := startServe(t, append(webhookEnv, "EXPORTD_SCHEDULE_SWEEP_INTERVAL=1s")...)
	ent := "enterprises/" + uuid.NewString()
	tok := s.token(t, ent+":subtree", "operations_reports.create", "operations_reports.read")
	rcv := newHookReceiver(t, v)
	registerHook(t, s, tok, ent, rcv)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	start := today.AddDate(0, 0, -3)
	code, _, b := s.do(t, "POST", "/operations-activity-export-schedules", tok,
		fmt.Sprintf(`{"every":"day","time_zone":"UTC","starts_at_utc":%q,"delay_minutes":0,"export":{"format":"csv","requested_scope":{"kind":"enterprise","ref":%q}}}`,
			start.Format(time.RFC3339), ent))
	if code != 201 {
		t.Fatalf("create schedule: %d %s", code, b)
	}
	eventually(t, 60*time.Second, "3 events of scheduled exports", func() bool { return rcv.acceptedCount() >= 3 })
	time.Sleep(2 * time.Second) // a fourth would be a duplicate or a period not yet ended
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) != 0 || len(rcv.accepted) != 3 {
		t.Fatalf("%d events accepted, refused %q", len(rcv.accepted), rcv.bad)
	}
	days := map[string]bool{}
	for id, bodies := range rcv.attempts {
		var ev hookEvent
		if err := json.Unmarshal(bodies[0], &ev); err != nil {
			t.Fatal(err)
		}
		var data struct {
			Status         string `json:"status"`
			FilterCriteria struct {
				From string `json:"date_from_utc"`
			} `json:"filter_criteria"`
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil || ev.Type != "operations_activity_export.ready" || data.Status != "ready" {
			t.Fatalf("event %s: %s", id, bodies[0])
		}
		days[data.FilterCriteria.From] = true
	}
	for i := 0; i < 3; i++ {
		if d := start.AddDate(0, 0, i).Format(time.RFC3339); !days[d] {
			t.Fatalf("no event for the period of %s (got %v)", d, days)
		}
	}
}
