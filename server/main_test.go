package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/engine/pgstore/pgtest"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/ingest"
	"github.com/exportd/exportd/ingest/chlocal"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/server/admission"
	"github.com/exportd/exportd/server/auth"
)

// The integration tests run against a real private ClickHouse (or the one
// named by EXPORTD_TEST_CLICKHOUSE_DSN), as ingest and engine do.
var (
	chCfg chconn.Config
	pool  driver.Conn
	// pg is the PostgreSQL control plane the tests share.
	pg *pgtest.Server
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	dsn, stop, err := chlocal.ForTests(ctx)
	if err == nil {
		chCfg, err = chconn.ParseDSN(dsn)
	}
	if err == nil {
		pool, err = chCfg.Open(ctx)
	}
	if err == nil {
		err = ingest.Migrate(ctx, pool)
	}
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "FAIL: test ClickHouse:", err)
		if stop != nil {
			stop()
		}
		os.Exit(1)
	}
	pg, err = pgtest.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		stop()
		os.Exit(1)
	}
	code := m.Run()
	if !checkSuiteTraffic() && code == 0 { // every response of the suite, by openapi.json
		code = 1
	}
	pool.Close()
	stop()
	pg.Stop()
	os.Exit(code)
}

// insert writes activity rows.
func insert(t *testing.T, rows []activity.Row) {
	t.Helper()
	ctx := context.Background()
	c, err := chCfg.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := activity.NewBlock()
	for i := range rows {
		b.Append(&rows[i])
	}
	if err := c.Do(ctx, ch.Query{Body: "INSERT INTO operations_activity VALUES", Input: b.Input()}); err != nil {
		t.Fatal(err)
	}
}

// tenant is a fresh enterprise with one client and one account of it.
type tenant struct {
	ent, client, acct string
}

func newTenant() tenant {
	return tenant{
		ent:    activity.PrefixEnterprise + uuid.NewString(),
		client: activity.PrefixClient + uuid.NewString(),
		acct:   activity.PrefixClientAccount + uuid.NewString(),
	}
}

// clock is the server's clock (rate limits), movable by tests. Times of
// the control plane are the database's: tests age records in SQL instead
// (ageRecord, ageKey).
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

type envOptions struct {
	rateLimit float64
	rateBurst int
	reader    engine.Reader        // default: the ClickHouse source
	records   engine.RecordStore   // default: the test PostgreSQL
	keys      KeyStore             // default: the test PostgreSQL
	scopes    ScopeResolver        // default: the test ClickHouse
	store     storage.Store        // default: a file store in a temp dir
	noStart   bool                 // do not Start the engine (dead ClickHouse)
	maxRows   int64                // the engine's row cap (0: none)
	tune      func(*engine.Config) // adjusts the engine's settings
	tuneSrv   func(*Config)        // adjusts the server's settings
	admission *admission.Limiter
}

// env is a server on a loopback listener with its engine and a key to mint
// tokens with.
type env struct {
	t       *testing.T
	srv     *Server
	eng     *engine.Engine
	addr    string
	client  *http.Client
	key     ed25519.PrivateKey
	kid     string
	clock   *clock
	logs    *observer.ObservedLogs
	metrics *metrics.Metrics
	reg     *prometheus.Registry
	// retryCutOff retries requests the server may cut off mid-write (431).
	retryCutOff bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "keys", "signing.pem")
	key, kid, err := auth.LoadOrCreateSigningKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.New(ctx, auth.Config{SigningKeyPath: keyPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { verifier.Close() })
	store := o.store
	if store == nil {
		fs, err := storage.NewFile(filepath.Join(dir, "exports"))
		if err != nil {
			t.Fatal(err)
		}
		store = fs
	}
	var records engine.RecordStore = pg.Store
	if o.records != nil {
		records = o.records
	}
	var keys KeyStore = pg.Store
	if o.keys != nil {
		keys = o.keys
	}
	var scopes ScopeResolver = engine.NewScopes(pool)
	if o.scopes != nil {
		scopes = o.scopes
	}
	reader := o.reader
	if reader == nil {
		reader = source.New(chCfg, source.Options{})
	}
	clk := &clock{}
	core, logs := observer.New(zap.InfoLevel)
	ecfg := engine.Config{Reader: reader, Records: records, Store: store, MaxRows: o.maxRows, Logger: zap.New(core).Named("engine")}
	if o.admission != nil {
		ecfg.Slots = AdmissionSlots(o.admission) // as serve wires it
	}
	if o.tune != nil {
		o.tune(&ecfg)
	}
	eng, err := engine.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	if !o.noStart {
		if err := eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	scfg := Config{Engine: eng, Admission: o.admission, Scopes: scopes, Keys: keys, Store: store, Verifier: verifier, Logger: zap.New(core), Metrics: m,
		RateLimit: o.rateLimit, RateBurst: o.rateBurst, Now: clk.now, DependencyTimeout: 10 * time.Second}
	if o.tuneSrv != nil {
		o.tuneSrv(&scfg)
	}
	srv, err := New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	e := &env{t: t, srv: srv, eng: eng, metrics: m, reg: reg, addr: ln.Addr().String(), key: key, kid: kid, clock: clk, logs: logs,
		client: &http.Client{Transport: suiteTraffic.wrap(&http.Transport{DisableCompression: true}), Timeout: time.Minute}}
	t.Cleanup(func() {
		e.dumpLogs()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		e.client.CloseIdleConnections()
		// Exports still blocked by a test are cancelled after a short grace.
		gctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		eng.Shutdown(gctx)
	})
	return e
}

// token mints a token for sub with capabilities and scopes ("REF" or "REF:subtree").
func (e *env) token(sub string, caps []string, scopes ...string) string {
	e.t.Helper()
	c := auth.Claims{Sub: sub, Capabilities: caps}
	for _, s := range scopes {
		sc, err := auth.ParseScope(s)
		if err != nil {
			e.t.Fatal(err)
		}
		c.Scopes = append(c.Scopes, sc)
	}
	tok, err := auth.Mint(e.key, e.kid, c, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

var (
	capsAll  = []string{auth.CapCreate, auth.CapRead}
	capsRead = []string{auth.CapRead}
)

func newUser() string { return activity.PrefixUser + uuid.NewString() }

// response is a buffered HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body as a JSON object.
func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %q", err, r.body)
	}
	return m
}

func (e *env) do(method, path, token, body string, hdr map[string]string) *response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, "http://"+e.addr+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	for try := 1; err != nil && e.retryCutOff && try < 5; try++ {
		// The server may answer (431) and close before a huge request is
		// fully written: the client then sees a broken pipe. Try again.
		req.Body = nil
		if body != "" {
			req.Body = io.NopCloser(bytes.NewReader([]byte(body)))
		}
		resp, err = e.client.Do(req)
	}
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		e.t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// createBody renders a create request.
func createBody(kind, ref, from, to, compression string) string {
	b := `{"format":"csv","filter_criteria":{"date_from_utc":"` + from + `","date_to_utc":"` + to +
		`"},"requested_scope":{"kind":"` + kind + `","ref":"` + ref + `"}`
	if compression != "" {
		b += `,"compression":"` + compression + `"`
	}
	return b + "}"
}

const (
	aprFrom = "2026-04-01T00:00:00Z"
	aprTo   = "2026-04-30T23:59:59Z"
)

// create posts a create request and requires 201.
func (e *env) create(token, body string, hdr map[string]string) map[string]any {
	e.t.Helper()
	r := e.do("POST", exportsPath, token, body, hdr)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.status, r.body)
	}
	m := r.json(e.t)
	if loc := r.header.Get("Location"); loc != exportsPath+"/"+m["id"].(string) {
		e.t.Fatalf("Location %q for %v", loc, m["id"])
	}
	return m
}

// wantError checks an error response: status, code, message, reason and
// exactly the detail keys given (besides reason).
func wantError(t *testing.T, r *response, status int, code, message, reason string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != contentTypeJSON {
		t.Errorf("Content-Type %q", ct)
	}
	m := r.json(t)
	for k := range m {
		if k != "code" && k != "message" && k != "details" {
			t.Errorf("unexpected envelope member %q in %s", k, r.body)
		}
	}
	if m["code"] != code || m["message"] != message {
		t.Errorf("got code %v message %q, want %s %q", m["code"], m["message"], code, message)
	}
	details, _ := m["details"].(map[string]any)
	if reason == "" {
		if details != nil && details["reason"] != nil {
			t.Errorf("unexpected details.reason in %s", r.body)
		}
	} else if details == nil || details["reason"] != reason {
		t.Errorf("details.reason = %v, want %s (%s)", details["reason"], reason, r.body)
	}
	return details
}

// blockingReader stalls exports of one enterprise until their context ends,
// so that tests can observe pending/running exports and cancel them.
type blockingReader struct {
	engine.Reader
	mu    sync.Mutex
	block map[string]bool
}

func (b *blockingReader) blockEnterprise(ref string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.block == nil {
		b.block = map[string]bool{}
	}
	b.block[ref] = true
}

func (b *blockingReader) unblockEnterprise(ref string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.block, ref)
}

func (b *blockingReader) Plan(ctx context.Context, q source.Query) (*source.Plan, error) {
	b.mu.Lock()
	blocked := b.block[q.EnterpriseRef]
	b.mu.Unlock()
	if blocked {
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}
	return b.Reader.Plan(ctx, q)
}

// failingStore fails every Open with an unexpected error.
type failingStore struct{ storage.Store }

func (failingStore) Open(context.Context, string) (storage.Object, error) {
	return nil, errors.New("disk on fire")
}

// dumpLogs prints the observed logs of a failed test.
func (e *env) dumpLogs() {
	if !e.t.Failed() {
		return
	}
	for _, l := range e.logs.All() {
		e.t.Logf("%s %s %v", l.Level, l.Message, l.ContextMap())
	}
}

// ageExport moves an export's expiry d into the past by the database clock
// (what d of waiting past its retention would do).
func ageExport(t *testing.T, id string, d time.Duration) {
	t.Helper()
	if _, err := pg.Pool.Exec(context.Background(), "UPDATE operations_activity_exports SET expires_at = now() - $2::interval WHERE id = $1",
		id, d.String()); err != nil {
		t.Fatal(err)
	}
}

// ageKeys makes a caller's idempotency keys d older by the database clock.
func ageKeys(t *testing.T, caller string, d time.Duration) {
	t.Helper()
	if _, err := pg.Pool.Exec(context.Background(), "UPDATE operations_activity_export_keys SET created_at = created_at - $2::interval WHERE caller = $1",
		caller, d.String()); err != nil {
		t.Fatal(err)
	}
}
