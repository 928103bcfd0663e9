package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/webhook"
)

func newWebhookEnv(t *testing.T) *env {
	return newEnv(t, envOptions{rateLimit: -1, tuneSrv: func(c *Config) {
		c.Webhooks = &Webhooks{Store: pg.Store, URLs: webhook.NewClient(webhook.ClientConfig{AllowLoopback: true})}
	}})
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

const hookURL = "http://127.0.0.1:9/hooks"

func hookBody(kind, ref, events string) string {
	b := `{"url":"` + hookURL + `","scope":{"kind":"` + kind + `","ref":"` + ref + `"}`
	if events != "" {
		b += `,"events":` + events
	}
	return b + "}"
}

// The endpoint resource: the secret only in the 201; coverage decides who
// sees, lists and deletes; the deliveries log shows the events of the
// endpoint's scope; delete is 204 and final.
func TestWebhookEndpointsAPI(t *testing.T) {
	e := newWebhookEnv(t)
	ten, other := newTenant(), newTenant()
	owner := e.token(newUser(), capsAll, ten.ent+":subtree")
	reader := e.token(newUser(), capsRead, ten.ent+":subtree")
	stranger := e.token(newUser(), capsAll, other.ent+":subtree")

	r := e.do("POST", webhooksPath, owner, hookBody("enterprise", ten.ent, ""), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if got := keys(m); got != "created_at_utc,events,id,scope,secret,url" {
		t.Fatalf("201 fields %s", got)
	}
	id := m["id"].(string)
	if loc := r.header.Get("Location"); loc != webhooksPath+"/"+id {
		t.Fatalf("Location %q", loc)
	}
	secret := m["secret"].(string)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if !strings.HasPrefix(secret, "whsec_") || err != nil || len(raw) != 32 {
		t.Fatalf("secret %q", secret)
	}
	if ev := m["events"].([]any); len(ev) != 4 || ev[0] != webhook.EventReady {
		t.Fatalf("default events %v", ev)
	}
	if sc := m["scope"].(map[string]any); sc["kind"] != "enterprise" || sc["ref"] != ten.ent || m["url"] != hookURL {
		t.Fatalf("echo: %s", r.body)
	}

	g := e.do("GET", webhooksPath+"/"+id, reader, "", nil)
	if g.status != 200 || keys(g.json(t)) != "created_at_utc,events,id,scope,url" || bytes.Contains(g.body, []byte(secret)) {
		t.Fatalf("get: %d %s", g.status, g.body)
	}
	l := e.do("GET", webhooksPath, reader, "", nil)
	if l.status != 200 || !bytes.Contains(l.body, []byte(id)) || bytes.Contains(l.body, []byte("whsec_")) {
		t.Fatalf("list: %d %s", l.status, l.body)
	}
	// Another tenant: not found, not listed, not deletable.
	wantError(t, e.do("GET", webhooksPath+"/"+id, stranger, "", nil), 404, codeWebhookNotFound, msgWebhookNotFound, codeWebhookNotFound)
	wantError(t, e.do("DELETE", webhooksPath+"/"+id, stranger, "", nil), 404, codeWebhookNotFound, msgWebhookNotFound, codeWebhookNotFound)
	wantError(t, e.do("GET", webhooksPath+"/"+id+"/deliveries", stranger, "", nil), 404, codeWebhookNotFound, msgWebhookNotFound, codeWebhookNotFound)
	if l := e.do("GET", webhooksPath, stranger, "", nil); bytes.Contains(l.body, []byte(id)) {
		t.Fatalf("listed to another tenant: %s", l.body)
	}
	// Capabilities.
	wantError(t, e.do("POST", webhooksPath, reader, hookBody("enterprise", ten.ent, ""), nil), 403, codeForbidden, msgMissingCap, reasonMissingCapability)
	wantError(t, e.do("DELETE", webhooksPath+"/"+id, reader, "", nil), 403, codeForbidden, msgMissingCap, reasonMissingCapability)
	wantError(t, e.do("POST", webhooksPath, stranger, hookBody("enterprise", ten.ent, ""), nil), 403, codeForbidden, msgScopeNotCovered, reasonScopeNotCovered)
	wantError(t, e.do("GET", webhooksPath, "", "", nil), 401, codeUnauthorized, msgUnauthorized, "")

	// An export of the enterprise ends: its event is in the log.
	x := e.create(owner, createBody("enterprise", ten.ent, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=20"})
	if x["status"] != "ready" {
		t.Fatalf("export %v", x["status"])
	}
	d := e.do("GET", webhooksPath+"/"+id+"/deliveries", reader, "", nil)
	if d.status != 200 {
		t.Fatalf("deliveries: %d %s", d.status, d.body)
	}
	items := d.json(t)["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("deliveries: %s", d.body)
	}
	it := items[0].(map[string]any)
	if it["type"] != webhook.EventReady || it["export_id"] != x["id"] || it["delivered"] != false || it["event_id"] == "" ||
		it["next_attempt_at_utc"] == nil || keys(it) != "attempts,delivered,event_id,export_id,last_error,last_status_code,next_attempt_at_utc,occurred_at_utc,state,type" {
		t.Fatalf("delivery: %s", d.body)
	}

	if r := e.do("DELETE", webhooksPath+"/"+id, owner, "", nil); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	wantError(t, e.do("GET", webhooksPath+"/"+id, owner, "", nil), 404, codeWebhookNotFound, msgWebhookNotFound, codeWebhookNotFound)
	wantError(t, e.do("DELETE", webhooksPath+"/"+id, owner, "", nil), 404, codeWebhookNotFound, msgWebhookNotFound, codeWebhookNotFound)
	wantError(t, e.do("GET", webhooksPath+"/not-a-uuid", owner, "", nil), 400, codeInvalidRequest, msgInvalidWebhook, reasonInvalidValue)
	wantError(t, e.do("PUT", webhooksPath+"/"+id, owner, "", nil), 405, codeMethodNotAllowed, msgMethodNotAllowed, reasonMethodNotAllowed)
}

// Bad bodies and URLs: 400 with details.field; nothing is created.
func TestWebhookCreateValidation(t *testing.T) {
	e := newWebhookEnv(t)
	ten := newTenant()
	tok := e.token(newUser(), capsAll, ten.ent+":subtree")
	scope := `"scope":{"kind":"enterprise","ref":"` + ten.ent + `"}`
	for _, tt := range []struct {
		body, reason, field string
	}{
		{`{`, reasonInvalidJSON, ""},
		{`[]`, reasonInvalidJSON, ""},
		{`{"url":"` + hookURL + `","url":"x",` + scope + `}`, reasonInvalidJSON, ""},
		{`{"url":"` + hookURL + `",` + scope + `,"secret":"x"}`, reasonUnknownField, "secret"},
		{`{"url":"` + hookURL + `","scope":{"kind":"enterprise","ref":"` + ten.ent + `","x":1}}`, reasonUnknownField, "scope.x"},
		{`{` + scope + `}`, reasonMissingField, "url"},
		{`{"url":"` + hookURL + `"}`, reasonMissingField, "scope"},
		{`{"url":"` + hookURL + `","scope":{"ref":"` + ten.ent + `"}}`, reasonMissingField, "scope.kind"},
		{`{"url":1,` + scope + `}`, reasonInvalidValue, "url"},
		{`{"url":"` + hookURL + `",` + scope + `,"events":"all"}`, reasonInvalidValue, "events"},
		{`{"url":"` + hookURL + `",` + scope + `,"events":[]}`, reasonInvalidValue, "events"},
		{`{"url":"` + hookURL + `",` + scope + `,"events":["operations_activity_export.started"]}`, reasonInvalidValue, "events"},
		{`{"url":"` + hookURL + `",` + scope + `,"events":["operations_activity_export.ready","operations_activity_export.ready"]}`, reasonInvalidValue, "events"},
		{`{"url":"` + hookURL + `","scope":{"kind":"team","ref":"` + ten.ent + `"}}`, reasonInvalidValue, "scope.kind"},
		{`{"url":"` + hookURL + `","scope":{"kind":"enterprise","ref":"enterprises/x"}}`, reasonInvalidValue, "scope.ref"},
		{`{"url":"` + hookURL + `","scope":{"kind":"client","ref":"` + ten.ent + `"}}`, reasonInvalidScope, "scope"},
		{`{"url":"ftp://127.0.0.1/x",` + scope + `}`, reasonInvalidValue, "url"},
		{`{"url":"http://10.1.2.3/x",` + scope + `}`, reasonInvalidValue, "url"},
		{`{"url":"https://10.1.2.3/x",` + scope + `}`, reasonInvalidValue, "url"},
		{`{"url":"https://169.254.169.254/latest",` + scope + `}`, reasonInvalidValue, "url"},
		{`{"url":"https://[fd00:ec2::254]/",` + scope + `}`, reasonInvalidValue, "url"},
		{`{"url":"https://100.64.0.1/",` + scope + `}`, reasonInvalidValue, "url"},
		{`{"url":"http://localhost:9/x",` + scope + `}`, reasonInvalidValue, "url"},
		{`{"url":"not a url",` + scope + `}`, reasonInvalidValue, "url"},
	} {
		r := e.do("POST", webhooksPath, tok, tt.body, nil)
		d := wantError(t, r, 400, codeInvalidRequest, msgInvalidWebhook, tt.reason)
		if tt.field != "" && (d == nil || d["field"] != tt.field) {
			t.Errorf("%s: details %v, want field %s", tt.body, d, tt.field)
		}
	}
	if l := e.do("GET", webhooksPath, tok, "", nil); !bytes.Equal(l.body, []byte(`{"items":[],"next_page_token":null}`)) {
		t.Fatalf("after refusals: %s", l.body)
	}
	// The loopback switch off: the loopback URL is refused too.
	strict := newEnv(t, envOptions{rateLimit: -1, tuneSrv: func(c *Config) {
		c.Webhooks = &Webhooks{Store: pg.Store, URLs: webhook.NewClient(webhook.ClientConfig{})}
	}})
	tok = strict.token(newUser(), capsAll, ten.ent+":subtree")
	d := wantError(t, strict.do("POST", webhooksPath, tok, hookBody("enterprise", ten.ent, ""), nil), 400, codeInvalidRequest, msgInvalidWebhook, reasonInvalidValue)
	if d["field"] != "url" {
		t.Fatalf("details %v", d)
	}
}

// An enterprise's endpoints are capped: 422 not_admissible beyond.
func TestWebhookCapPerEnterprise(t *testing.T) {
	e := newEnv(t, envOptions{rateLimit: -1, tuneSrv: func(c *Config) {
		c.Webhooks = &Webhooks{Store: pg.Store, URLs: webhook.NewClient(webhook.ClientConfig{AllowLoopback: true}), MaxPerEnterprise: 2}
	}})
	ten := newTenant()
	tok := e.token(newUser(), capsAll, ten.ent+":subtree")
	for i := 0; i < 2; i++ {
		if r := e.do("POST", webhooksPath, tok, hookBody("enterprise", ten.ent, ""), nil); r.status != 201 {
			t.Fatalf("create %d: %d %s", i, r.status, r.body)
		}
	}
	wantError(t, e.do("POST", webhooksPath, tok, hookBody("enterprise", ten.ent, ""), nil), 422, codeNotAdmissible, msgNotAdmissible, reasonTooManyWebhooks)
}

// Lists page with caller-bound tokens; a client token sees the client's
// endpoints and its accounts', not the enterprise's.
func TestWebhookListPagesAndCoverage(t *testing.T) {
	e := newWebhookEnv(t)
	ten := newTenant()
	insert(t, []activity.Row{row(t, ten, ten.client, ten.acct, time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC).UnixMilli(), "1", "x")})
	owner := e.token(newUser(), capsAll, ten.ent+":subtree")
	var ids []string
	for _, b := range []string{hookBody("enterprise", ten.ent, ""), hookBody("client", ten.client, ""),
		hookBody("client_account", ten.acct, `["operations_activity_export.failed"]`)} {
		r := e.do("POST", webhooksPath, owner, b, nil)
		if r.status != 201 {
			t.Fatalf("create %s: %d %s", b, r.status, r.body)
		}
		ids = append(ids, r.json(t)["id"].(string))
	}
	var got []string
	tokParam := ""
	for page := 0; page < 3; page++ {
		r := e.do("GET", webhooksPath+"?page_size=2"+tokParam, owner, "", nil)
		m := r.json(t)
		for _, it := range m["items"].([]any) {
			got = append(got, it.(map[string]any)["id"].(string))
		}
		next, _ := m["next_page_token"].(string)
		if next == "" {
			break
		}
		tokParam = "&page_token=" + next
		// Bound to its caller.
		other := e.token(newUser(), capsAll, ten.ent+":subtree")
		wantError(t, e.do("GET", webhooksPath+"?page_token="+next, other, "", nil), 400, codeInvalidRequest, msgInvalidWebhook, reasonInvalidPageToken)
	}
	if want := []string{ids[2], ids[1], ids[0]}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	clientTok := e.token(newUser(), capsAll, ten.client+":subtree")
	l := e.do("GET", webhooksPath, clientTok, "", nil).json(t)["items"].([]any)
	if len(l) != 2 || l[0].(map[string]any)["id"] != ids[2] || l[1].(map[string]any)["id"] != ids[1] {
		t.Fatalf("client sees %v", l)
	}
}

// The event data renderer is the API's resource, byte for byte.
func TestRenderExportIsTheResource(t *testing.T) {
	e := newWebhookEnv(t)
	ten := newTenant()
	tok := e.token(newUser(), capsAll, ten.ent+":subtree")
	x := e.create(tok, createBody("enterprise", ten.ent, aprFrom, aprTo, "gzip"), map[string]string{"Prefer": "wait=20"})
	g := e.do("GET", exportsPath+"/"+x["id"].(string), tok, "", nil)
	rec, err := e.eng.Get(context.Background(), x["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	b, err := RenderExport(rec)
	if err != nil || !bytes.Equal(b, g.body) {
		t.Fatalf("render\n%s\nGET\n%s", b, g.body)
	}
}
