package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/ingest/chlocal"
	"github.com/exportd/exportd/server/auth"
)

func TestCreateRequestErrorsOverHTTP(t *testing.T) {
	// The body-too-large case may be answered and closed before the client
	// has written the whole body (a broken pipe on a loaded machine): retry.
	e := newEnv(t, envOptions{})
	e.retryCutOff = true
	tok := e.token(newUser(), capsAll, tEnt+":subtree")
	check := func(name string, r *response, reason, field string) {
		t.Helper()
		details := wantError(t, r, 400, codeInvalidRequest, msgInvalidRequest, reason)
		if got, _ := details["field"].(string); got != field {
			t.Errorf("%s: details.field %q, want %q", name, got, field)
		}
		want := 1
		if field != "" {
			want = 2
		}
		if len(details) != want {
			t.Errorf("%s: details %v", name, details)
		}
	}
	for _, c := range createErrorCases() {
		check(c.name, e.do("POST", exportsPath, tok, c.body, nil), c.reason, c.field)
	}
	for name, h := range map[string]map[string]string{
		"key with space":   {"Idempotency-Key": "a b"},
		"key too long":     {"Idempotency-Key": strings.Repeat("k", 256)},
		"key not ascii":    {"Idempotency-Key": "clé"},
		"wait over 60":     {"Prefer": "wait=61"},
		"wait not integer": {"Prefer": "respond-async, wait=soon"},
	} {
		field := "Prefer"
		if _, ok := h["Idempotency-Key"]; ok {
			field = "Idempotency-Key"
		}
		check(name, e.do("POST", exportsPath, tok, validBody, h), reasonInvalidValue, field)
	}
	// A chunked body over 64 KiB is cut off while being read.
	big := `{"format":"csv","x":"` + strings.Repeat("a", 70<<10) + `"}`
	req, _ := http.NewRequest("POST", "http://"+e.addr+exportsPath, io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.ContentLength = -1
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check("chunked too large", &response{status: resp.StatusCode, header: resp.Header, body: b}, reasonBodyTooLarge, "")
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on a transport error")
	}
	// Just under the limit is read (and then judged on its content).
	under := validBody[:len(validBody)-1] + `,"x":"` + strings.Repeat("a", maxCreateBody-len(validBody)-8) + `"}`
	check("64 KiB", e.do("POST", exportsPath, tok, under, nil), reasonUnknownField, "x")
}

func TestAuthErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	id := uuid.NewString()
	body := createBody("enterprise", a.ent, aprFrom, aprTo, "")
	endpoints := []struct{ method, path, body, needs string }{
		{"POST", exportsPath, body, auth.CapCreate},
		{"GET", exportsPath, "", auth.CapRead},
		{"GET", exportsPath + "/" + id, "", auth.CapRead},
		{"GET", exportsPath + "/" + id + "/download", "", auth.CapRead},
		{"POST", exportsPath + "/" + id + "/cancel", "", auth.CapCreate},
	}
	otherKey, otherKid, err := auth.LoadOrCreateSigningKey(filepath.Join(t.TempDir(), "other.pem"))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := auth.Mint(otherKey, otherKid, auth.Claims{Sub: newUser(), Capabilities: capsAll,
		Scopes: []auth.Scope{{Target: a.ent, Extent: auth.ExtentSubtree}}}, time.Hour, time.Now())
	expiredTok, _ := auth.Mint(e.key, e.kid, auth.Claims{Sub: newUser(), Capabilities: capsAll,
		Scopes: []auth.Scope{{Target: a.ent, Extent: auth.ExtentSubtree}}}, -time.Hour, time.Now())
	good := e.token(newUser(), capsAll, a.ent+":subtree")
	for _, ep := range endpoints {
		for name, hdr := range map[string]map[string]string{
			"none":      nil,
			"garbage":   {"Authorization": "Bearer not.a.token"},
			"basic":     {"Authorization": "Basic " + good},
			"forged":    {"Authorization": "Bearer " + forged},
			"expired":   {"Authorization": "Bearer " + expiredTok},
			"no scheme": {"Authorization": good},
		} {
			r := e.do(ep.method, ep.path, "", ep.body, hdr)
			wantError(t, r, 401, codeUnauthorized, msgUnauthorized, "")
			if r.header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("%s %s (%s): WWW-Authenticate %q", ep.method, ep.path, name, r.header.Get("WWW-Authenticate"))
			}
			if !bytes.Equal(r.body, []byte(`{"code":"unauthorized","message":"Authentication required."}`)) {
				t.Errorf("%s %s (%s): body %s", ep.method, ep.path, name, r.body)
			}
		}
		// 401 comes before the body is looked at.
		wantError(t, e.do(ep.method, ep.path, "", "{", nil), 401, codeUnauthorized, msgUnauthorized, "")
		other := auth.CapRead
		if ep.needs == auth.CapRead {
			other = auth.CapCreate
		}
		tok := e.token(newUser(), []string{other, "operations_reports.admin"}, a.ent+":subtree")
		wantError(t, e.do(ep.method, ep.path, tok, ep.body, nil), 403, codeForbidden, msgMissingCap, reasonMissingCapability)
		// Capability comes before the body.
		if ep.body != "" {
			wantError(t, e.do(ep.method, ep.path, tok, "{", nil), 403, codeForbidden, msgMissingCap, reasonMissingCapability)
		}
	}
}

func TestAdmissibility(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	tok := e.token(newUser(), capsAll, a.ent)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []struct{ from, to, reason string }{
		{future, time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339), reasonRangeFuture},
		{"2024-01-01T00:00:00Z", "2025-06-01T00:00:00Z", reasonRangeTooLong},
		{"2025-01-01T00:00:00Z", "2026-01-02T00:00:00.001Z", reasonRangeTooLong}, // 366 days + 1 ms
	} {
		r := e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, c.from, c.to, ""), nil)
		d := wantError(t, r, 422, codeNotAdmissible, msgNotAdmissible, c.reason)
		if len(d) != 1 {
			t.Errorf("details %v", d)
		}
	}
	// Exactly 366 days is admissible; a range ending in the future too.
	e.create(tok, createBody("enterprise", a.ent, "2025-01-01T00:00:00Z", "2026-01-02T00:00:00Z", ""), nil)
	e.create(tok, createBody("enterprise", a.ent, "2026-01-01T00:00:00Z", future, ""), nil)
}

func TestScopeCoverage(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := newTenant(), newTenant()
	at := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC).UnixMilli()
	insert(t, []activity.Row{
		row(t, a, a.client, a.acct, at, "1", "a1"),
		row(t, a, a.client, a.acct, at+1, "2", "a2"),
		row(t, a, activity.PrefixClient+uuid.NewString(), activity.PrefixClientAccount+uuid.NewString(), at+2, "3", "a other client"),
		row(t, b, b.client, b.acct, at, "4", "b1"),
	})
	noActivity := activity.PrefixClient + uuid.NewString()
	subA := e.token(newUser(), capsAll, a.ent+":subtree")
	cases := []struct {
		name, tok, kind, ref string
		rows                 int64 // -1: 403
	}{
		{"subtree A, enterprise A", subA, "enterprise", a.ent, 3},
		{"subtree A, client of A", subA, "client", a.client, 2},
		{"subtree A, account of A", subA, "client_account", a.acct, 2},
		{"subtree A, enterprise B", subA, "enterprise", b.ent, -1},
		{"subtree A, client of B", subA, "client", b.client, -1},
		{"subtree A, account of B", subA, "client_account", b.acct, -1},
		{"subtree A, client without activity", subA, "client", noActivity, -1},
		{"perimeter A, client of A", e.token(newUser(), capsAll, a.ent), "client", a.client, -1},
		{"perimeter A, enterprise A", e.token(newUser(), capsAll, a.ent), "enterprise", a.ent, 3},
		{"perimeter client A, client A", e.token(newUser(), capsAll, a.client), "client", a.client, 2},
		{"perimeter client A, account A", e.token(newUser(), capsAll, a.client), "client_account", a.acct, -1},
		{"subtree client A, account A", e.token(newUser(), capsAll, a.client+":subtree"), "client_account", a.acct, 2},
		{"subtree client A, enterprise A", e.token(newUser(), capsAll, a.client+":subtree"), "enterprise", a.ent, -1},
		{"perimeter on a client without activity", e.token(newUser(), capsAll, noActivity), "client", noActivity, 0},
		{"no scopes", e.token(newUser(), capsAll), "enterprise", a.ent, -1},
	}
	for _, c := range cases {
		r := e.do("POST", exportsPath, c.tok, createBody(c.kind, c.ref, aprFrom, aprTo, ""), nil)
		if c.rows < 0 {
			wantError(t, r, 403, codeForbidden, msgScopeNotCovered, reasonScopeNotCovered)
			continue
		}
		if r.status != 201 {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
			continue
		}
		m := r.json(t)
		if m["status"] != "ready" || num(t, m["row_count"]) != c.rows {
			t.Errorf("%s: status %v, %v rows, want %d", c.name, m["status"], m["row_count"], c.rows)
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := newTenant(), newTenant()
	insert(t, []activity.Row{row(t, a, a.client, a.acct, time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC).UnixMilli(), "1", "a")})
	userA := e.token(newUser(), capsAll, a.ent+":subtree")
	x := e.create(userA, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil)["id"].(string)
	y := e.create(userA, createBody("client", a.client, aprFrom, aprTo, ""), nil)["id"].(string)

	userB := e.token(newUser(), capsAll, b.ent+":subtree", b.client+":subtree")
	for _, id := range []string{x, y} {
		for _, r := range []*response{
			e.do("GET", exportsPath+"/"+id, userB, "", nil),
			e.do("GET", exportsPath+"/"+id+"/download", userB, "", nil),
			e.do("POST", exportsPath+"/"+id+"/cancel", userB, "", nil),
		} {
			wantError(t, r, 404, codeNotFound, msgNotFound, reasonExportNotFound)
		}
	}
	if l := e.do("GET", exportsPath, userB, "", nil); l.status != 200 || !bytes.Equal(l.body, []byte(`{"items":[],"next_page_token":null}`)) {
		t.Fatalf("B's list: %d %s", l.status, l.body)
	}
	// A perimeter scope on the client sees the client's export only.
	perClient := e.token(newUser(), capsRead, a.client)
	wantError(t, e.do("GET", exportsPath+"/"+x, perClient, "", nil), 404, codeNotFound, msgNotFound, reasonExportNotFound)
	if r := e.do("GET", exportsPath+"/"+y, perClient, "", nil); r.status != 200 {
		t.Fatalf("client export for its client: %d", r.status)
	}
	// A perimeter scope on the enterprise sees the enterprise's export only.
	perEnt := e.token(newUser(), capsRead, a.ent)
	wantError(t, e.do("GET", exportsPath+"/"+y, perEnt, "", nil), 404, codeNotFound, msgNotFound, reasonExportNotFound)
	// Another user with a subtree scope on A sees both (visibility is by scope, not by author).
	items := e.do("GET", exportsPath, e.token(newUser(), capsRead, a.ent+":subtree"), "", nil).json(t)["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("subtree A lists %d exports, want 2", len(items))
	}
	// Unknown and malformed ids.
	wantError(t, e.do("GET", exportsPath+"/"+uuid.NewString(), userA, "", nil), 404, codeNotFound, msgNotFound, reasonExportNotFound)
	for _, bad := range []string{"abc", strings.ToUpper(x), x + "0", "{" + x + "}"} {
		wantError(t, e.do("GET", exportsPath+"/"+bad, userA, "", nil), 400, codeInvalidRequest, msgInvalidRequest, reasonInvalidExportID)
		wantError(t, e.do("GET", exportsPath+"/"+bad+"/download", userA, "", nil), 400, codeInvalidRequest, msgInvalidRequest, reasonInvalidExportID)
		wantError(t, e.do("POST", exportsPath+"/"+bad+"/cancel", userA, "", nil), 400, codeInvalidRequest, msgInvalidRequest, reasonInvalidExportID)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	user := newUser()
	tok := e.token(user, capsAll, a.ent+":subtree")
	created := map[string]bool{}
	for i := 0; i < 5; i++ {
		created[e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=0"})["id"].(string)] = true
	}
	var ids []string
	var lastGen string
	next := ""
	for page := 0; ; page++ {
		path := exportsPath + "?page_size=2"
		if next != "" {
			path += "&page_token=" + next
		}
		r := e.do("GET", path, tok, "", nil)
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", page, r.status, r.body)
		}
		m := r.json(t)
		items := m["items"].([]any)
		if len(items) > 2 {
			t.Fatalf("page %d has %d items", page, len(items))
		}
		for _, it := range items {
			res := it.(map[string]any)
			checkResource(t, res)
			ids = append(ids, res["id"].(string))
			if g := res["generated_at_utc"].(string); lastGen != "" && g > lastGen {
				t.Fatalf("not newest first: %s after %s", g, lastGen)
			} else {
				lastGen = g
			}
		}
		if m["next_page_token"] == nil {
			break
		}
		next = m["next_page_token"].(string)
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(ids) != 5 {
		t.Fatalf("listed %v", ids)
	}
	for _, id := range ids {
		if !created[id] {
			t.Fatalf("listed %s twice or not created", id)
		}
		delete(created, id)
	}
	all := e.do("GET", exportsPath, tok, "", nil).json(t)
	if len(all["items"].([]any)) != 5 || all["next_page_token"] != nil {
		t.Fatalf("default page: %v", all)
	}

	first := e.do("GET", exportsPath+"?page_size=1", tok, "", nil).json(t)["next_page_token"].(string)
	flipped := []byte(first)
	flipped[10] ^= 1
	for name, bad := range map[string]string{
		"garbled": "not-a-token", "flipped": string(flipped), "truncated": first[:len(first)-2], "extended": first + "AA",
	} {
		r := e.do("GET", exportsPath+"?page_token="+bad, tok, "", nil)
		if d := wantError(t, r, 400, codeInvalidRequest, msgInvalidRequest, reasonInvalidPageToken); d["field"] != "page_token" {
			t.Errorf("%s: details %v", name, d)
		}
	}
	// Bound to its caller: another user with the same scopes cannot use it.
	other := e.token(newUser(), capsRead, a.ent+":subtree")
	wantError(t, e.do("GET", exportsPath+"?page_token="+first, other, "", nil), 400, codeInvalidRequest, msgInvalidRequest, reasonInvalidPageToken)
	for _, ps := range []string{"0", "101", "-1", "abc", "", "1.5", "2&page_size=3"} {
		r := e.do("GET", exportsPath+"?page_size="+ps, tok, "", nil)
		if d := wantError(t, r, 400, codeInvalidRequest, msgInvalidRequest, reasonInvalidValue); d["field"] != "page_size" {
			t.Errorf("page_size=%s: details %v", ps, d)
		}
	}
	if r := e.do("GET", exportsPath+"?page_size=100&page_token=", tok, "", nil); r.status != 200 {
		t.Fatalf("empty page_token: %d", r.status)
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	user := newUser()
	tok := e.token(user, capsAll, a.ent+":subtree")
	key := map[string]string{"Idempotency-Key": "order-42/retry"}
	body := createBody("enterprise", a.ent, aprFrom, aprTo, "")
	first := e.create(tok, body, key)
	id := first["id"].(string)
	// Same request spelled differently: same export, no new work.
	same := `{ "requested_scope": {"ref": "` + a.ent + `", "kind": "enterprise"}, "compression": "none",
		"filter_criteria": {"date_to_utc": "2026-04-30T23:59:59.000+00:00", "date_from_utc": "2026-04-01T00:00:00Z"}, "format": "csv" }`
	for _, b := range []string{body, same} {
		r := e.create(tok, b, key)
		if r["id"] != id || r["generated_at_utc"] != first["generated_at_utc"] {
			t.Fatalf("replay gave %v, want %s", r["id"], id)
		}
	}
	// Same key, different request.
	r := e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, "2026-04-29T00:00:00Z", ""), key)
	wantError(t, r, 409, codeStateConflict, msgStateConflict, reasonKeyPayloadMismatch)
	r = e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, aprTo, "gzip"), key)
	wantError(t, r, 409, codeStateConflict, msgStateConflict, reasonKeyPayloadMismatch)
	// Keys are per caller.
	other := e.create(e.token(newUser(), capsAll, a.ent+":subtree"), body, key)
	if other["id"] == id {
		t.Fatal("another caller's key replayed this caller's export")
	}
	// No key: a new export each time.
	if e.create(tok, body, nil)["id"] == id {
		t.Fatal("request without key replayed")
	}
	items := e.do("GET", exportsPath, tok, "", nil).json(t)["items"].([]any)
	if len(items) != 3 {
		t.Fatalf("%d exports, want 3", len(items))
	}
	// Concurrent first uses of one key: one export for all.
	ids := make(chan any, 6)
	var wg sync.WaitGroup
	for i := 0; i < cap(ids); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do("POST", exportsPath, tok, body, map[string]string{"Idempotency-Key": "concurrent"})
			if r.status != 201 {
				t.Errorf("concurrent create: %d %s", r.status, r.body)
				ids <- nil
				return
			}
			var m map[string]any
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Errorf("concurrent create: %v", err)
			}
			ids <- m["id"]
		}()
	}
	wg.Wait()
	close(ids)
	var firstID any
	for id := range ids {
		if firstID == nil {
			firstID = id
		}
		if id != firstID {
			t.Fatalf("concurrent uses of one key gave %v and %v", firstID, id)
		}
	}
	// After the window the key is free again.
	ageKeys(t, user, pgstore.KeyWindow+time.Minute)
	if e.create(tok, body, key)["id"] == id {
		t.Fatal("key replayed after 24h")
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{rateLimit: 0.5, rateBurst: 2})
	a := newTenant()
	user := e.token(newUser(), capsAll, a.ent)
	// Requests refused as not admissible still take a token: the limit is
	// checked first (see create).
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := createBody("enterprise", a.ent, future, future, "")
	for i := 0; i < 2; i++ {
		wantError(t, e.do("POST", exportsPath, user, body, nil), 422, codeNotAdmissible, msgNotAdmissible, reasonRangeFuture)
	}
	r := e.do("POST", exportsPath, user, body, nil)
	d := wantError(t, r, 429, codeRateLimited, msgRateLimited, "")
	ms := num(t, d["retry_after_ms"])
	if len(d) != 1 || ms <= 0 || ms > 2000 {
		t.Fatalf("details %v", d)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || int64(ra) != (ms+999)/1000 {
		t.Fatalf("Retry-After %q for %d ms", r.header.Get("Retry-After"), ms)
	}
	// Another caller has its own bucket; reads are not limited.
	wantError(t, e.do("POST", exportsPath, e.token(newUser(), capsAll, a.ent), body, nil), 422, codeNotAdmissible, msgNotAdmissible, reasonRangeFuture)
	if r := e.do("GET", exportsPath, user, "", nil); r.status != 200 {
		t.Fatalf("list while limited: %d", r.status)
	}
	// After the advertised wait the caller is served again.
	e.clock.advance(time.Duration(ms) * time.Millisecond)
	wantError(t, e.do("POST", exportsPath, user, body, nil), 422, codeNotAdmissible, msgNotAdmissible, reasonRangeFuture)
}

func TestDrainingRefusesCreatesOnly(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	tok := e.token(newUser(), capsAll, a.ent)
	key := map[string]string{"Idempotency-Key": "before-drain"}
	id := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), key)["id"].(string)
	if r := e.do("GET", "/readyz", "", "", nil); r.status != 200 {
		t.Fatalf("readyz before drain: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.eng.Shutdown(ctx)

	r := e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, "2026-04-02T00:00:00Z", ""), nil)
	d := wantError(t, r, 503, codeUnavailable, msgUnavailable, reasonShuttingDown)
	if num(t, d["retry_after_ms"]) <= 0 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("retry hint: %v %q", d, r.header.Get("Retry-After"))
	}
	if r := e.do("GET", exportsPath+"/"+id, tok, "", nil); r.status != 200 {
		t.Fatalf("get while draining: %d", r.status)
	}
	if r := e.do("GET", exportsPath+"/"+id+"/download", tok, "", nil); r.status != 200 {
		t.Fatalf("download while draining: %d", r.status)
	}
	// A replay is a read: it still answers.
	if m := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), key); m["id"] != id {
		t.Fatalf("replay while draining: %v", m["id"])
	}
	if r := e.do("GET", "/readyz", "", "", nil); r.status != 503 {
		t.Fatalf("readyz while draining: %d", r.status)
	}
}

func TestClickHouseUnreachable(t *testing.T) {
	port, err := chlocal.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dead := chconn.Config{Addr: "127.0.0.1:" + strconv.Itoa(port), Database: "default", User: "default"}
	deadPool, err := dead.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer deadPool.Close()
	e := newEnv(t, envOptions{scopes: engine.NewScopes(deadPool), reader: source.New(dead, source.Options{})})
	a := newTenant()
	tok := e.token(newUser(), capsAll, a.ent+":subtree")
	// Creates need ClickHouse; reads of the control plane do not.
	for _, r := range []*response{
		e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil),
		e.do("POST", exportsPath, tok, createBody("client", a.client, aprFrom, aprTo, ""), nil),
		e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), map[string]string{"Idempotency-Key": "k"}),
	} {
		d := wantError(t, r, 503, codeUnavailable, msgUnavailable, reasonServiceUnavailable)
		if num(t, d["retry_after_ms"]) <= 0 || r.header.Get("Retry-After") == "" {
			t.Fatalf("no retry hint: %s", r.body)
		}
	}
	if r := e.do("GET", exportsPath, tok, "", nil); r.status != 200 {
		t.Fatalf("list without ClickHouse: %d %s", r.status, r.body)
	}
	wantError(t, e.do("GET", exportsPath+"/"+uuid.NewString(), tok, "", nil), 404, codeNotFound, msgNotFound, reasonExportNotFound)
	if r := e.do("GET", "/readyz", "", "", nil); r.status != 503 || !strings.Contains(string(r.body), "clickhouse") {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/healthz", "", "", nil); r.status != 200 {
		t.Fatalf("healthz: %d", r.status)
	}
}

// PostgreSQL down: every request that needs the control plane is 503 with a
// retry hint, never 500; readiness says so.
func TestPostgresUnreachable(t *testing.T) {
	port, err := chlocal.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf("postgres://exportd@127.0.0.1:%d/exportd?sslmode=disable&connect_timeout=2", port))
	if err != nil {
		t.Fatal(err)
	}
	deadPool, err := pgxpool.NewWithConfig(context.Background(), cfg) // connects lazily
	if err != nil {
		t.Fatal(err)
	}
	defer deadPool.Close()
	dead := pgstore.New(deadPool)
	e := newEnv(t, envOptions{records: dead, keys: dead, noStart: true})
	a := newTenant()
	tok := e.token(newUser(), capsAll, a.ent+":subtree")
	for _, r := range []*response{
		e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil),
		e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), map[string]string{"Idempotency-Key": "k"}),
		e.do("GET", exportsPath+"/"+uuid.NewString(), tok, "", nil),
		e.do("GET", exportsPath, tok, "", nil),
		e.do("GET", exportsPath+"/"+uuid.NewString()+"/download", tok, "", nil),
		e.do("POST", exportsPath+"/"+uuid.NewString()+"/cancel", tok, "", nil),
	} {
		d := wantError(t, r, 503, codeUnavailable, msgUnavailable, reasonServiceUnavailable)
		if num(t, d["retry_after_ms"]) <= 0 || r.header.Get("Retry-After") == "" {
			t.Fatalf("no retry hint: %s", r.body)
		}
	}
	if r := e.do("GET", "/readyz", "", "", nil); r.status != 503 || !strings.Contains(string(r.body), "postgres") {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
}

func TestUpstreamErrors(t *testing.T) {
	// ClickHouse answers, with an exception: the database does not exist.
	broken := chCfg
	broken.Database = "no_such_database_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	brokenPool, err := broken.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer brokenPool.Close()
	e := newEnv(t, envOptions{scopes: engine.NewScopes(brokenPool), reader: source.New(broken, source.Options{}), noStart: true})
	a := newTenant()
	tok := e.token(newUser(), capsAll, a.ent+":subtree")
	for _, r := range []*response{
		e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil),
		e.do("POST", exportsPath, tok, createBody("client", a.client, aprFrom, aprTo, ""), nil),
	} {
		wantError(t, r, 502, codeUpstream, msgUpstream, "")
		if !bytes.Equal(r.body, []byte(`{"code":"upstream_error","message":"An upstream service returned an unexpected error."}`)) {
			t.Errorf("body %s", r.body)
		}
	}

	// Storage answers with an unexpected error on download.
	fs, err := storage.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, envOptions{store: failingStore{fs}})
	tok2 := e2.token(newUser(), capsAll, a.ent)
	m := e2.create(tok2, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil)
	if m["status"] != "ready" {
		t.Fatalf("status %v", m["status"])
	}
	r := e2.do("GET", exportsPath+"/"+m["id"].(string)+"/download", tok2, "", nil)
	wantError(t, r, 502, codeUpstream, msgUpstream, "")
	if strings.Contains(string(r.body), "fire") {
		t.Fatal("dependency error text leaked")
	}
}

func TestRoutingAndRequestID(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := uuid.NewString()
	tok := e.token(newUser(), capsAll, tEnt)
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", exportsPath, "GET, POST"},
		{"PUT", exportsPath + "/" + id, "GET"},
		{"POST", exportsPath + "/" + id, "GET"},
		{"POST", exportsPath + "/" + id + "/download", "GET"},
		{"GET", exportsPath + "/" + id + "/cancel", "POST"},
		{"POST", "/healthz", "GET"},
		{"HEAD", "/readyz", "GET"},
	} {
		r := e.do(c.method, c.path, tok, "", nil)
		if r.status != 405 || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q", c.method, c.path, r.status, r.header.Get("Allow"))
		}
		if c.method != "HEAD" {
			wantError(t, r, 405, codeMethodNotAllowed, msgMethodNotAllowed, reasonMethodNotAllowed)
		}
	}
	for _, p := range []string{"/", "/nope", exportsPath + "/", exportsPath + "/" + id + "/other", exportsPath + "x"} {
		wantError(t, e.do("GET", p, tok, "", nil), 404, codeRouteNotFound, msgRouteNotFound, reasonRouteNotFound)
	}
	if r := e.do("GET", "/healthz", "", "", nil); r.status != 200 || string(r.body) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
	// Oversized headers: 431, still JSON with a request id.
	e.retryCutOff = true
	r := e.do("GET", "/healthz", "", "", map[string]string{"X-Padding": strings.Repeat("p", 20<<10)})
	e.retryCutOff = false
	wantError(t, r, 431, codeHeaderTooLarge, msgHeaderTooLarge, codeHeaderTooLarge)
	// Metrics by bounded route label and status code.
	for _, c := range []struct {
		route, code string
		min         float64
	}{{routeHealthz, "200", 1}, {routeOther, "404", 5}, {routeOther, "405", 3}} {
		var m dto.Metric
		if err := e.metrics.HTTPRequests.WithLabelValues(c.route, c.code).Write(&m); err != nil {
			t.Fatal(err)
		}
		if n := m.GetCounter().GetValue(); n < c.min {
			t.Errorf("requests{route=%s,code=%s} = %v, want ≥ %v", c.route, c.code, n, c.min)
		}
	}
	for in, echoed := range map[string]bool{
		"abc-123_X.y": true, strings.Repeat("r", 128): true, strings.Repeat("r", 129): false,
		"has space": false, "semi;colon": false, "": false,
	} {
		h := map[string]string{}
		if in != "" {
			h["X-Request-Id"] = in
		}
		got := e.do("GET", "/healthz", "", "", h).header.Get("X-Request-Id")
		switch {
		case echoed && got != in:
			t.Errorf("X-Request-Id %q came back as %q", in, got)
		case !echoed && (got == in || !saneRequestID([]byte(got))):
			t.Errorf("X-Request-Id %q: got %q", in, got)
		}
	}
}

func TestPreferWaitBoundsTheResponse(t *testing.T) {
	br := &blockingReader{Reader: source.New(chCfg, source.Options{})}
	e := newEnv(t, envOptions{reader: br})
	slow := newTenant()
	br.blockEnterprise(slow.ent)
	tok := e.token(newUser(), capsAll, slow.ent)
	start := time.Now()
	m := e.create(tok, createBody("enterprise", slow.ent, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=1"})
	if el := time.Since(start); el < time.Second || el > 5*time.Second {
		t.Fatalf("wait=1 answered after %v", el)
	}
	if m["status"] != "pending" && m["status"] != "running" {
		t.Fatalf("status %v", m["status"])
	}
	// Shutdown ends a long wait at once with the current state.
	done := make(chan *response, 1)
	go func() {
		done <- e.do("POST", exportsPath, tok, createBody("enterprise", slow.ent, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=60"})
	}()
	time.Sleep(500 * time.Millisecond)
	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if el := time.Since(start); el > 5*time.Second || r.status != 201 {
		t.Fatalf("after shutdown: %d in %v", r.status, el)
	}
}
