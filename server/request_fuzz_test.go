package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/server/auth"
)

// FuzzHandleRequest feeds whole raw HTTP requests (method, path, query,
// headers, body) to the real handler over the real engine and ClickHouse.
// Whatever arrives: no panic, never a 500, every response carries a sane
// X-Request-Id, every error is the JSON envelope with no dependency text,
// and no response header carries a CR or LF (no header injection, e.g.
// through an id into Content-Disposition).
func FuzzHandleRequest(f *testing.F) {
	dir := f.TempDir()
	keyPath := filepath.Join(dir, "signing.pem")
	key, kid, err := auth.LoadOrCreateSigningKey(keyPath)
	if err != nil {
		f.Fatal(err)
	}
	verifier, err := auth.New(context.Background(), auth.Config{SigningKeyPath: keyPath})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { verifier.Close() })
	store, err := storage.NewFile(filepath.Join(dir, "exports"))
	if err != nil {
		f.Fatal(err)
	}
	records := pg.Store
	eng, err := engine.New(engine.Config{Reader: source.New(chCfg, source.Options{}), Records: records, Store: store})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(Config{Engine: eng, Scopes: engine.NewScopes(pool), Keys: records, Store: store, Verifier: verifier, RateLimit: -1,
		DependencyTimeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	// A read-only caller (creates stop at 403: no work is started by the fuzzer).
	ent := "enterprises/" + uuid.NewString()
	tok, err := auth.Mint(key, kid, auth.Claims{Sub: "users/" + uuid.NewString(), Capabilities: []string{auth.CapRead},
		Scopes: []auth.Scope{{Target: ent, Extent: auth.ExtentSubtree}}}, 24*time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	id := uuid.NewString()
	for _, r := range []string{
		"GET /operations-activity-exports/" + id + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
		"GET /operations-activity-exports/" + id + "/download HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nRange: bytes=0-9\r\nIf-None-Match: *\r\n\r\n",
		"GET /operations-activity-exports?page_size=3&page_token=AAAA HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nX-Request-Id: abc\r\n\r\n",
		"POST /operations-activity-exports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nIdempotency-Key: k\r\nPrefer: wait=0\r\nContent-Length: 2\r\n\r\n{}",
		"POST /operations-activity-exports/" + id + "/cancel HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
		"GET /operations-activity-exports/../../etc/passwd HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
		"GET /operations-activity-exports/%2e%2e%2f%2e%2e%2fetc%2fpasswd/download HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
		"GET /operations-activity-exports/" + id + "%0d%0aSet-Cookie:%20x=1/download HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\r\n\r\n",
		"DELETE /operations-activity-exports HTTP/1.1\r\nHost: x\r\nAuthorization: bearer  x.y.z \r\n\r\n",
	} {
		f.Add([]byte(r))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			return // fasthttp's transport rejects it before any handler runs
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}, nil)
		srv.handle(&ctx)
		resp := &ctx.Response
		if resp.IsBodyStream() {
			resp.CloseBodyStream() //nolint:errcheck
		}
		status := resp.StatusCode()
		if status >= 500 && status != fasthttp.StatusServiceUnavailable && status != fasthttp.StatusBadGateway {
			t.Fatalf("status %d for %q: %s", status, raw, resp.Body())
		}
		if !saneRequestID(resp.Header.Peek(hdrRequestID)) {
			t.Fatalf("X-Request-Id %q", resp.Header.Peek(hdrRequestID))
		}
		for k, v := range resp.Header.All() {
			if bytes.ContainsAny(k, "\r\n") || bytes.ContainsAny(v, "\r\n") {
				t.Fatalf("header %q: %q carries CR/LF", k, v)
			}
		}
		if cd := resp.Header.Peek(fasthttp.HeaderContentDisposition); len(cd) > 0 {
			t.Fatalf("Content-Disposition %q on a fuzzed request", cd)
		}
		if status >= 400 && string(req.Header.Method()) != fasthttp.MethodHead {
			var e struct {
				Code, Message string
			}
			if err := json.Unmarshal(resp.Body(), &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("error %d is not the envelope: %q", status, resp.Body())
			}
			low := strings.ToLower(string(resp.Body()))
			for _, leak := range []string{"select ", "clickhouse", "goroutine", ".go:", "127.0.0.1"} {
				if strings.Contains(low, leak) {
					t.Fatalf("error body leaks %q: %s", leak, resp.Body())
				}
			}
		}
	})
}
