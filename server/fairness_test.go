package server

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
)

// An export whose planned count is already over the row cap is refused at
// admission (422 row_limit_exceeded), before anything is recorded; one at
// the cap is admitted.
func TestRowLimitAtAdmission(t *testing.T) {
	e := newEnv(t, envOptions{maxRows: 3})
	a := newTenant()
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
	var rows []activity.Row
	for i := 0; i < 4; i++ {
		rows = append(rows, row(t, a, a.client, a.acct, day+int64(i)*3_600_000, "1", "x"))
	}
	insert(t, rows)
	tok := e.token(newUser(), capsAll, a.ent+":subtree")
	r := e.do("POST", exportsPath, tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil)
	wantError(t, r, 422, codeNotAdmissible, msgNotAdmissible, reasonRowLimit)
	if items := e.do("GET", exportsPath, tok, "", nil).json(t)["items"].([]any); len(items) != 0 {
		t.Fatalf("a refused create recorded %d exports", len(items))
	}
	// Three of the four rows fall in this range: at the cap, admitted.
	m := e.create(tok, createBody("enterprise", a.ent, aprFrom, "2026-04-02T02:59:59Z", ""), nil)
	if m["status"] != "ready" || num(t, m["row_count"]) != 3 {
		t.Fatalf("at the cap: %v", m)
	}
}

// Beyond EXPORTD_MAX_PENDING_PER_ENTERPRISE pending exports, creates of
// that enterprise get 429 rate_limited with a retry hint; another
// enterprise's creates are unaffected and run at once.
func TestPendingPerEnterpriseLimit(t *testing.T) {
	br := &blockingReader{Reader: source.New(chCfg, source.Options{})}
	e := newEnv(t, envOptions{reader: br, rateLimit: 1000, rateBurst: 1000, tune: func(c *engine.Config) {
		c.MaxPerEnterprise, c.MaxPendingPerEnterprise = 1, 3
	}})
	busy, other := newTenant(), newTenant()
	br.blockEnterprise(busy.ent)
	tok := e.token(newUser(), capsAll, busy.ent+":subtree", other.ent+":subtree")
	body := createBody("enterprise", busy.ent, aprFrom, aprTo, "")
	// 1 running (blocked) + 3 pending are admitted.
	for i := 0; i < 4; i++ {
		if r := e.do("POST", exportsPath, tok, body, nil); r.status != 201 {
			t.Fatalf("create %d: %d %s", i, r.status, r.body)
		}
	}
	r := e.do("POST", exportsPath, tok, body, nil)
	d := wantError(t, r, 429, codeRateLimited, msgRateLimited, "")
	if num(t, d["retry_after_ms"]) <= 0 || r.header.Get("Retry-After") == "" {
		t.Fatalf("no retry hint: %s", r.body)
	}
	m := e.create(tok, createBody("enterprise", other.ent, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=30"})
	if m["status"] != "ready" {
		t.Fatalf("another enterprise beside the backlog: %v", m["status"])
	}
}

// SPEC §6: a client (or account) named by rows of several enterprises is
// exported under the enterprise of the caller's covering scope: exactly
// that enterprise's rows; 403 only for a caller covering it under none.
func TestSharedClientUnderCallersEnterprise(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b, c := newTenant(), newTenant(), newTenant()
	day := time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	insert(t, []activity.Row{
		row(t, a, a.client, a.acct, day, "1", "A-one"),
		row(t, a, a.client, a.acct, day+1, "2", "A-two"),
		row(t, b, a.client, a.acct, day+2, "3", "B-names-A-client"),
	})
	for _, sc := range []struct{ kind, ref string }{{"client", a.client}, {"client_account", a.acct}} {
		for _, who := range []struct {
			ent       string
			rows      int64
			want, not string
		}{{a.ent, 2, "A-two", "B-names"}, {b.ent, 1, "B-names", "A-one"}} {
			tok := e.token(newUser(), capsAll, who.ent+":subtree")
			m := e.create(tok, createBody(sc.kind, sc.ref, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=30"})
			if m["status"] != "ready" || num(t, m["row_count"]) != who.rows {
				t.Fatalf("%s under %s: %v", sc.kind, who.ent, m)
			}
			if rs := m["requested_scope"].(map[string]any); rs["kind"] != sc.kind || rs["ref"] != sc.ref {
				t.Fatalf("requested_scope %v", rs)
			}
			id := m["id"].(string)
			d := e.do("GET", exportsPath+"/"+id+"/download", tok, "", nil)
			if d.status != 200 || !strings.Contains(string(d.body), who.want) || strings.Contains(string(d.body), who.not) {
				t.Fatalf("%s under %s: %d %q", sc.kind, who.ent, d.status, d.body)
			}
			// The export is the caller's to read, list and cancel; another
			// tenant's token covering the same client elsewhere sees it not.
			if g := e.do("GET", exportsPath+"/"+id, tok, "", nil); g.status != 200 {
				t.Fatalf("get: %d", g.status)
			}
		}
		tok := e.token(newUser(), capsAll, c.ent+":subtree")
		wantError(t, e.do("POST", exportsPath, tok, createBody(sc.kind, sc.ref, aprFrom, aprTo, ""), nil),
			403, codeForbidden, msgScopeNotCovered, reasonScopeNotCovered)
	}
}

// Malformed requests that carry a bearer token never put it in the logs:
// fasthttp's parse errors quote the raw header buffer, so only a category is
// logged (SecureErrorLogMessage, errMalformed).
func TestMalformedRequestsKeepTokensOutOfLogs(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.token(newUser(), capsAll, newTenant().ent)
	secret := strings.Split(tok, ".")[2] // the signature: unique to this token
	for _, raw := range []string{
		"GET /operations-activity-exports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Length: nope\r\n\r\n",
		"POST /operations-activity-exports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET /operations-activity-exports HTTP/1.1\r\nAuthorization: Bearer " + tok + "\r\nBad Header Line\r\n\r\n",
		"GET /operations-activity-exports HTTP/9\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
	} {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(c)
		c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	logs := logText(e.logs)
	if !strings.Contains(logs, "malformed") {
		t.Fatalf("no malformed request was logged: %s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Fatalf("a token reached the logs: %s", logs)
	}
}

// countingScopes counts readiness pings.
type countingScopes struct {
	ScopeResolver
	pings atomic.Int64
}

func (c *countingScopes) Ping(ctx context.Context) error {
	c.pings.Add(1)
	return c.ScopeResolver.Ping(ctx)
}

// /readyz answers from a probe at most a second old: 200 requests in a
// burst cost ClickHouse one or two pings, not 200.
func TestReadyzProbeIsCached(t *testing.T) {
	cs := &countingScopes{ScopeResolver: engine.NewScopes(pool)}
	e := newEnv(t, envOptions{scopes: cs})
	start := time.Now()
	for i := 0; i < 200; i++ {
		if r := e.do("GET", "/readyz", "", "", nil); r.status != 200 {
			t.Fatalf("readyz: %d", r.status)
		}
	}
	if n, most := cs.pings.Load(), int64(time.Since(start)/time.Second)+1; n > most {
		t.Fatalf("%d pings for 200 probes in %v", n, time.Since(start))
	}
}
