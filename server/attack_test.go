package server

// Attacks as tests, over HTTP against the real handler, engine and
// ClickHouse. They complement, and do not repeat, the coverage of
// server/auth's TestVerifyRejects (token parsing and verification one by
// one), TestAuthErrors (401/403 on every endpoint), TestTenantIsolation,
// TestScopeCoverage, TestListPagination (tampered and foreign page tokens)
// and TestRoutingAndRequestID (oversized headers, X-Request-Id).

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/server/auth"
)

const (
	attackIss = "https://issuer.example"
	attackAud = "exportd"
)

// jwtWith signs arbitrary header and claims with key (EdDSA), whatever
// they say: the raw material of token attacks.
func jwtWith(key ed25519.PrivateKey, header, claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(input)))
}

// strictServer serves the env's engine through a verifier that checks
// iss and aud (EXPORTD_JWT_ISSUER / EXPORTD_JWT_AUDIENCE); it returns its
// address, signing key and kid, and its observed logs.
func strictServer(t *testing.T, e *env) (string, ed25519.PrivateKey, string, *observer.ObservedLogs) {
	t.Helper()
	keyPath := filepath.Join(t.TempDir(), "strict.pem")
	key, kid, err := auth.LoadOrCreateSigningKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(context.Background(), auth.Config{SigningKeyPath: keyPath, Issuer: attackIss, Audience: attackAud})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	core, logs := observer.New(zap.DebugLevel)
	srv, err := New(Config{Engine: e.eng, Scopes: e.srv.cfg.Scopes, Keys: e.srv.cfg.Keys, Store: e.srv.cfg.Store, Verifier: v, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return ln.Addr().String(), key, kid, logs
}

// logText renders every observed log entry, message and fields.
func logText(logs ...*observer.ObservedLogs) string {
	var b strings.Builder
	for _, l := range logs {
		for _, en := range l.All() {
			fmt.Fprintf(&b, "%s %v\n", en.Message, en.ContextMap())
		}
	}
	return b.String()
}

func TestAttackTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr, key, kid, strictLogs := strictServer(t, e)
	a := newTenant()
	now := time.Now()
	claims := func(kv ...any) map[string]any {
		c := map[string]any{"sub": newUser(), "capabilities": capsAll, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
			"iss": attackIss, "aud": attackAud, "scopes": []map[string]string{{"target": a.ent, "extent": "subtree"}}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	hdr := func(kv ...any) map[string]any {
		h := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i].(string)] = kv[i+1]
		}
		return h
	}
	pub := key.Public().(ed25519.PublicKey)
	hs256 := func(secret []byte, h map[string]any) string {
		h["alg"] = "HS256"
		enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
		input := enc(h) + "." + enc(claims())
		return input + "." + base64.RawURLEncoding.EncodeToString(hmacSHA256(secret, []byte(input)))
	}
	unsigned := func(alg string) string {
		enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
		return enc(map[string]any{"alg": alg, "typ": "JWT"}) + "." + enc(claims()) + "."
	}

	good := jwtWith(key, hdr(), claims())
	if r := doAt(t, e, addr, "GET", exportsPath, good); r.status != 200 {
		t.Fatalf("control: a well-formed token is refused: %d %s", r.status, r.body)
	}
	attacks := []struct{ name, token string }{
		{"alg none, no signature", unsigned("none")},
		{"alg none, signature kept", strings.TrimSuffix(unsigned("none"), ".") + "." + strings.Split(good, ".")[2]},
		{"alg NONE", unsigned("NONE")},
		{"HS256 keyed with the Ed25519 public key", hs256(pub, hdr())},
		{"HS256 keyed with the kid", hs256([]byte(kid), hdr())},
		{"HS256 keyed with an empty secret", hs256(nil, hdr())},
		{"kid path traversal", jwtWith(key, hdr("kid", "../../../../../../etc/passwd"), claims())},
		{"kid /dev/null", jwtWith(key, hdr("kid", "/dev/null"), claims())},
		{"kid file URL", jwtWith(key, hdr("kid", "file:///etc/shadow"), claims())},
		{"kid SQL", jwtWith(key, hdr("kid", "' OR '1'='1' --"), claims())},
		{"kid SQL union", jwtWith(key, hdr("kid", kid+"' UNION SELECT key FROM keys --"), claims())},
		{"kid NUL", jwtWith(key, hdr("kid", kid+"\x00"), claims())},
		{"kid CRLF", jwtWith(key, hdr("kid", kid+"\r\nX-Injected: 1"), claims())},
		{"kid huge", jwtWith(key, hdr("kid", strings.Repeat("k", 6000)), claims())},
		{"kid array", jwtWith(key, hdr("kid", []string{kid}), claims())},
		{"expired", jwtWith(key, hdr(), claims("exp", now.Add(-time.Hour).Unix()))},
		{"no exp", jwtWith(key, hdr(), claims("exp", nil))},
		{"not yet valid", jwtWith(key, hdr(), claims("nbf", now.Add(time.Hour).Unix()))},
		{"issued in the future", jwtWith(key, hdr(), claims("iat", now.Add(time.Hour).Unix()))},
		{"wrong iss", jwtWith(key, hdr(), claims("iss", "https://evil.example"))},
		{"iss missing", jwtWith(key, hdr(), claims("iss", nil))},
		{"iss with trailing slash", jwtWith(key, hdr(), claims("iss", attackIss+"/"))},
		{"wrong aud", jwtWith(key, hdr(), claims("aud", "someone-else"))},
		{"aud missing", jwtWith(key, hdr(), claims("aud", nil))},
		{"aud prefix", jwtWith(key, hdr(), claims("aud", attackAud+"x"))},
		{"signed by the other server's key", jwtWith(e.key, hdr("kid", e.kid), claims())},
		{"token of the other server (no iss/aud)", e.token(newUser(), capsAll, a.ent+":subtree")},
		{"over MaxTokenBytes", jwtWith(key, hdr(), claims("pad", strings.Repeat("p", auth.MaxTokenBytes)))},
	}
	for _, c := range attacks {
		t.Run(c.name, func(t *testing.T) {
			for _, ep := range []struct{ method, path string }{{"GET", exportsPath}, {"POST", exportsPath}} {
				r := doAt(t, e, addr, ep.method, ep.path, c.token)
				if r.status != 401 || string(r.body) != `{"code":"unauthorized","message":"Authentication required."}` {
					t.Fatalf("%s %s: %d %s", ep.method, ep.path, r.status, r.body)
				}
				if r.header.Get("X-Injected") != "" {
					t.Fatal("header injected through the kid")
				}
			}
		})
	}
	// Nothing of any token reaches the logs.
	logs := logText(strictLogs, e.logs)
	for _, c := range append(attacks, struct{ name, token string }{"good", good}) {
		for _, seg := range strings.Split(c.token, ".") {
			if len(seg) >= 16 && strings.Contains(logs, seg) {
				t.Errorf("%s: a token segment is in the logs", c.name)
			}
		}
	}
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// doAt sends one request to addr with a bearer token.
func doAt(t *testing.T, e *env, addr, method, path, token string) *response {
	t.Helper()
	body := ""
	if method == "POST" && path == exportsPath {
		body = createBody("enterprise", "enterprises/"+uuid.NewString(), aprFrom, aprTo, "")
	}
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// rawRoundTrip writes raw bytes on a fresh connection and reads the status
// line and headers of the answer (or "" if the server just closed).
func rawRoundTrip(t *testing.T, addr string, raw []byte) (string, http.Header) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = c.Write(raw) }() // the server may answer before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", nil
	}
	resp.Body.Close()
	return resp.Status, resp.Header
}

func TestAttackHeaderFloods(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	tok := e.token(newUser(), capsAll, a.ent+":subtree")
	cases := []struct {
		name string
		raw  string
		want []string // acceptable status lines' codes
	}{
		{"Authorization over the token limit", "GET " + exportsPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + strings.Repeat("a", 12<<10) + "\r\n\r\n", []string{"401"}},
		{"Authorization over the header buffer", "GET " + exportsPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + strings.Repeat("a", 32<<10) + "\r\n\r\n", []string{"431"}},
		{"10000 tiny headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-F: 1\r\n", 10000) + "\r\n", []string{"431"}},
		{"one endless header line", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("z", 1<<20), []string{"431"}},
		{"huge request line", "GET /" + strings.Repeat("a", 64<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", []string{"431", "414", "400"}},
		{"200 headers within the buffer", "GET /healthz HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-F: 1\r\n", 200) + "\r\n", []string{"200"}},
		{"NUL in Authorization", "GET " + exportsPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\x00\r\n\r\n", []string{"400", "401"}},
		{"bare CR in a header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rSet-Cookie: b\r\n\r\n", []string{"400", "200"}},
		{"obs-fold continuation", "GET " + exportsPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n " + tok + "\r\n\r\n", []string{"400", "401", "200"}},
		{"duplicate Content-Length", "POST " + exportsPath + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", []string{"400", "401"}},
		{"Content-Length and chunked", "POST " + exportsPath + " HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []string{"400", "401"}},
		{"negative Content-Length", "POST " + exportsPath + " HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", []string{"400"}},
		{"huge Content-Length", "POST " + exportsPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Length: 99999999999\r\n\r\n", []string{"400", "413"}},
	}
	for _, c := range cases {
		status, h := rawRoundTrip(t, e.addr, []byte(c.raw))
		ok := false
		for _, w := range c.want {
			ok = ok || strings.HasPrefix(status, w)
		}
		if !ok {
			t.Errorf("%s: got %q, want one of %v", c.name, status, c.want)
		}
		if h != nil && (h.Get("Set-Cookie") != "" || h.Get("X-Request-Id") == "") {
			t.Errorf("%s: headers %v", c.name, h)
		}
	}
	// The server is unharmed.
	if r := e.do("GET", exportsPath, tok, "", nil); r.status != 200 {
		t.Fatalf("after the floods: %d", r.status)
	}
}

func TestAttackCrossTenant(t *testing.T) {
	br := &blockingReader{Reader: source.New(chCfg, source.Options{})}
	e := newEnv(t, envOptions{reader: br})
	a, b := newTenant(), newTenant()
	at := time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC).UnixMilli()
	secretRef := "ROW-SECRET-" + uuid.NewString()
	insert(t, []activity.Row{row(t, a, a.client, a.acct, at, "7", secretRef)})
	userA := e.token(newUser(), capsAll, a.ent+":subtree")
	userB := e.token(newUser(), capsAll, b.ent+":subtree")
	ready := e.create(userA, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil)["id"].(string)

	// Existence never leaks: A's export and an id that never existed give
	// B byte-identical answers, whatever conditional or range headers say.
	for _, hdr := range []map[string]string{nil, {"If-None-Match": "*"}, {"Range": "bytes=0-0"}, {"If-Range": `"x"`, "Range": "bytes=-1"}} {
		for _, sub := range []string{"", "/download"} {
			mine := e.do("GET", exportsPath+"/"+ready+sub, userB, "", hdr)
			none := e.do("GET", exportsPath+"/"+uuid.NewString()+sub, userB, "", hdr)
			wantError(t, mine, 404, codeNotFound, msgNotFound, reasonExportNotFound)
			if string(mine.body) != string(none.body) || mine.header.Get("ETag") != "" || mine.header.Get("Content-Range") != "" {
				t.Fatalf("B tells A's export %s from a missing one: %s vs %s", sub, mine.body, none.body)
			}
		}
	}
	// B cannot cancel A's running export, and trying changes nothing.
	br.blockEnterprise(a.ent)
	running := e.create(userA, createBody("enterprise", a.ent, aprFrom, aprTo, "gzip"), map[string]string{"Prefer": "wait=0"})["id"].(string)
	wantError(t, e.do("POST", exportsPath+"/"+running+"/cancel", userB, "", nil), 404, codeNotFound, msgNotFound, reasonExportNotFound)
	if m := e.do("GET", exportsPath+"/"+running, userA, "", nil).json(t); m["status"] != "pending" && m["status"] != "running" {
		t.Fatalf("A's export after B's cancel: %v", m["status"])
	}
	// B's list never shows A's exports, on any page.
	if l := e.do("GET", exportsPath+"?page_size=100", userB, "", nil); strings.Contains(string(l.body), ready) || strings.Contains(string(l.body), running) {
		t.Fatalf("B's list shows A's exports: %s", l.body)
	}
	// A's page token does not open A's list to B.
	e.create(userA, createBody("enterprise", a.ent, aprFrom, "2026-04-02T00:00:00Z", ""), map[string]string{"Prefer": "wait=0"})
	next := e.do("GET", exportsPath+"?page_size=1", userA, "", nil).json(t)["next_page_token"].(string)
	wantError(t, e.do("GET", exportsPath+"?page_token="+next, userB, "", nil), 400, codeInvalidRequest, msgInvalidRequest, reasonInvalidPageToken)

	// A client seen under two enterprises (rows planted by B naming A's
	// client): B's subtree scope exports it under B only (SPEC §6), so B
	// gets exactly its own planted rows, never one of A's (A's side:
	// TestSharedClientUnderCallersEnterprise).
	shared := activity.PrefixClient + uuid.NewString()
	sharedAcct := activity.PrefixClientAccount + uuid.NewString()
	insert(t, []activity.Row{
		row(t, a, shared, sharedAcct, at, "1", secretRef),
		row(t, b, shared, sharedAcct, at+1, "2", "planted by B"),
	})
	for _, sc := range []struct{ kind, ref string }{{"client", shared}, {"client_account", sharedAcct}} {
		for _, who := range []struct {
			tok, want, never string
		}{{userB, "planted by B", secretRef}} {
			m := e.create(who.tok, createBody(sc.kind, sc.ref, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=30"})
			if m["status"] != "ready" || num(t, m["row_count"]) != 1 {
				t.Fatalf("%s %s: %v", sc.kind, sc.ref, m)
			}
			if rs := m["requested_scope"].(map[string]any); rs["kind"] != sc.kind || rs["ref"] != sc.ref {
				t.Fatalf("requested_scope %v", rs)
			}
			d := e.do("GET", exportsPath+"/"+m["id"].(string)+"/download", who.tok, "", nil)
			if d.status != 200 || !strings.Contains(string(d.body), who.want) || strings.Contains(string(d.body), who.never) {
				t.Fatalf("%s export of the shared %s: %d %q", sc.kind, sc.ref, d.status, d.body)
			}
		}
	}
	// Subtree scope on B aimed at A's client and account, and refs of the
	// wrong kind for the scope.
	for _, sc := range []struct{ kind, ref string }{{"client", a.client}, {"client_account", a.acct}, {"enterprise", a.ent}} {
		wantError(t, e.do("POST", exportsPath, userB, createBody(sc.kind, sc.ref, aprFrom, aprTo, ""), nil),
			403, codeForbidden, msgScopeNotCovered, reasonScopeNotCovered)
	}
	wantError(t, e.do("POST", exportsPath, userB, createBody("client", a.ent, aprFrom, aprTo, ""), nil),
		400, codeInvalidRequest, msgInvalidRequest, reasonInvalidScope)

	// An Idempotency-Key that looks like SQL is just a key (bound, never spliced).
	sqlKey := map[string]string{"Idempotency-Key": "';DROP/**/TABLE/**/operations_activity_exports;--", "Prefer": "wait=0"}
	k1 := e.create(userA, createBody("enterprise", a.ent, aprFrom, aprTo, ""), sqlKey)["id"]
	k2 := e.create(userA, createBody("enterprise", a.ent, aprFrom, aprTo, ""), sqlKey)["id"]
	if k1 != k2 {
		t.Fatalf("SQL-looking key not replayed: %v %v", k1, k2)
	}
	if r := e.do("GET", exportsPath+"/"+ready, userA, "", nil); r.status != 200 {
		t.Fatalf("records after the SQL-looking key: %d", r.status)
	}
	// Nothing of a token or a row in the logs.
	logs := logText(e.logs)
	for _, tok := range []string{userA, userB} {
		if strings.Contains(logs, strings.Split(tok, ".")[1]) {
			t.Error("a token is in the logs")
		}
	}
	if strings.Contains(logs, secretRef) || strings.Contains(logs, "planted by B") {
		t.Error("row content is in the logs")
	}
}

func TestAttackPathsAndFilenames(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := newTenant()
	insert(t, []activity.Row{row(t, a, a.client, a.acct, time.Date(2026, 4, 10, 0, 0, 0, 0, time.UTC).UnixMilli(), "1", "x")})
	tok := e.token(newUser(), capsAll, a.ent+":subtree")
	m := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), nil)
	id := m["id"].(string)

	// An artefact without a record (planted in the store's directory) is
	// never served: downloads go by record, not by path.
	store := e.srv.cfg.Store.(interface{ Dir() string })
	planted := uuid.NewString()
	if err := os.WriteFile(filepath.Join(store.Dir(), planted+".csv"), []byte("root:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(store.Dir()), "passwd"), []byte("root:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		exportsPath + "/" + planted + "/download",
		exportsPath + "/../../etc/passwd",
		exportsPath + "/../passwd",
		exportsPath + "/" + id + "/../../passwd",
		exportsPath + "/%2e%2e/%2e%2e/etc/passwd",
		exportsPath + "/%2e%2e%2f%2e%2e%2fetc%2fpasswd/download",
		exportsPath + "/..%2f..%2fpasswd/download",
		exportsPath + "/%252e%252e%252fpasswd/download",
		exportsPath + "/..%5c..%5cpasswd/download",
		exportsPath + "/%c0%ae%c0%ae%c0%afpasswd/download",
		exportsPath + "/" + id + "%00.csv/download",
		exportsPath + "/" + id + "%2f..%2f..%2fpasswd",
		exportsPath + "/" + strings.ToUpper(id) + "/download",
		exportsPath + "/" + id + "%0d%0aSet-Cookie:%20pwned=1/download",
		exportsPath + "/" + id + "%0aContent-Disposition:%20inline/download",
		exportsPath + "/%22%3B%20filename=evil.sh/download",
		exportsPath + "/" + id + "\u202e/download",
		exportsPath + "/" + id + "/download/..%2f..%2fpasswd",
		"//" + exportsPath[1:] + "/" + id + "/download/../../../passwd",
	}
	for _, p := range paths {
		c, err := net.Dial("tcp", e.addr) // raw: the client must not clean the path
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", p, tok)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("%s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != 400 && resp.StatusCode != 404 {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
		if strings.Contains(string(body), "root:") || resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Content-Disposition") != "" {
			t.Errorf("%s: served %q with headers %v", p, body, resp.Header)
		}
	}
	// The one real download names the file by its id only.
	r := e.do("GET", exportsPath+"/"+id+"/download", tok, "", nil)
	if cd := r.header.Get("Content-Disposition"); r.status != 200 || cd != `attachment; filename="operations-activity-`+id+`.csv"` {
		t.Fatalf("download: %d, Content-Disposition %q", r.status, cd)
	}
	// The stored record's id is what names the file: it is always a
	// canonical UUID, so no id that could carry a quote, CR or LF reaches it.
	rec, err := pg.Store.Get(context.Background(), id)
	if err != nil || !activity.ValidUUID(rec.ID) {
		t.Fatalf("record %v %v", rec, err)
	}
	// Hostile refs in the body never reach a query.
	for _, ref := range []string{"enterprises/' OR 1=1 --", "enterprises/" + id + "' OR '1'='1", "enterprises/../../etc", "enterprises/" + strings.ToUpper(uuid.NewString())} {
		r := e.do("POST", exportsPath, tok, createBody("enterprise", ref, aprFrom, aprTo, ""), nil)
		if r.status != 400 {
			t.Errorf("ref %q: %d %s", ref, r.status, r.body)
		}
	}
}
