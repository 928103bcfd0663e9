package server

import (
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
