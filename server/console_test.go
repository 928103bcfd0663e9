package server

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleServed checks what GET /console/ and its assets answer: the
// embedded bytes with their types, no token needed, the CSP on every
// answer (errors included), revalidation by ETag, and the route's edges.
func TestConsoleServed(t *testing.T) {
	e := newEnv(t, envOptions{})
	csp := func(path string, r *response) {
		t.Helper()
		got := r.header.Get("Content-Security-Policy")
		if !strings.HasPrefix(got, "default-src 'self'") || !strings.Contains(got, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, got)
		}
		if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: framing/sniffing headers %v", path, r.header)
		}
	}
	for _, c := range []struct{ path, file, contentType string }{
		{"/console/", "console/index.html", "text/html; charset=utf-8"},
		{"/console/index.html", "console/index.html", "text/html; charset=utf-8"},
		{"/console/console.js", "console/console.js", "text/javascript; charset=utf-8"},
		{"/console/console.css", "console/console.css", "text/css; charset=utf-8"},
		{"/console/favicon.svg", "console/favicon.svg", "image/svg+xml"},
	} {
		want, err := consoleFiles.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		r := e.do("GET", c.path, "", "", nil)
		if r.status != 200 || string(r.body) != string(want) || r.header.Get("Content-Type") != c.contentType {
			t.Errorf("GET %s: %d %q, %d bytes (want %d)", c.path, r.status, r.header.Get("Content-Type"), len(r.body), len(want))
		}
		csp(c.path, r)
		sum := sha256.Sum256(want)
		etag := `"` + hex.EncodeToString(sum[:]) + `"`
		if r.header.Get("ETag") != etag || r.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q (want %q), Cache-Control %q", c.path, r.header.Get("ETag"), etag, r.header.Get("Cache-Control"))
		}
		if r := e.do("GET", c.path, "", "", map[string]string{"If-None-Match": `"x", ` + etag}); r.status != 304 || len(r.body) != 0 {
			t.Errorf("GET %s If-None-Match: %d %q", c.path, r.status, r.body)
		}
		if r := e.do("GET", c.path, "", "", map[string]string{"If-None-Match": `"x"`}); r.status != 200 {
			t.Errorf("GET %s other If-None-Match: %d", c.path, r.status)
		}
		if r := e.do("HEAD", c.path, "", "", nil); r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Type") != c.contentType {
			t.Errorf("HEAD %s: %d %q", c.path, r.status, r.body)
		}
	}
	// A token is neither needed nor looked at: a bad one changes nothing.
	if r := e.do("GET", "/console/", "not-a-token", "", nil); r.status != 200 {
		t.Errorf("GET /console/ with a bad token: %d", r.status)
	}
	for _, c := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/console/nope.js", 404, codeRouteNotFound, ""},
		{"GET", "/console/console.js/", 404, codeRouteNotFound, ""},
		{"GET", "/console/../healthz", 200, "", ""}, // cleaned by fasthttp: the health check, not a file
		{"POST", "/console/", 405, codeMethodNotAllowed, "GET, HEAD"},
		{"DELETE", "/console/console.js", 405, codeMethodNotAllowed, "GET, HEAD"},
	} {
		r := e.do(c.method, c.path, "", "", nil)
		if r.status != c.status || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d (Allow %q) %s, want %d", c.method, c.path, r.status, r.header.Get("Allow"), r.body, c.status)
			continue
		}
		if c.code != "" {
			csp(c.path, r)
			if m := r.json(t); m["code"] != c.code || m["message"] == "" {
				t.Errorf("%s %s: %s", c.method, c.path, r.body)
			}
		}
	}
	// /console redirects to /console/ (relative asset paths need the slash).
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get("http://" + e.addr + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The route is labelled console in the metrics (bounded labels).
	if n := counterValue(t, e.reg, "exportd_http_requests_total", "route", routeConsole); n == 0 {
		t.Error("console requests are not counted under route=console")
	}
}

// TestConsoleHTMLIsSelfContained checks the page's markup for what its CSP
// would refuse (the browser test proves the refusal never happens; this
// names the offending line): no inline script or style, no event-handler
// attributes, no javascript: URLs, nothing loaded from another origin. And
// the token's only storage is sessionStorage.
func TestConsoleHTMLIsSelfContained(t *testing.T) {
	page, _ := consoleFiles.ReadFile("console/index.html")
	script, _ := consoleFiles.ReadFile("console/console.js")
	for _, bad := range []struct{ what, re string }{
		{"inline script", `<script(?:\s[^>]*)?>\s*[^<\s]`},
		{"script without src", `<script(?:\s(?:[^>s]|s[^r])*)?>`},
		{"style element", `<style`},
		{"style attribute", `\sstyle\s*=`},
		{"event handler attribute", `\son[a-z]+\s*=`},
		{"javascript: URL", `(?i)javascript:`},
		{"other origin", `(?i)(?:src|href|action)\s*=\s*"(?:[a-z]+:|//)`},
	} {
		if m := regexp.MustCompile(bad.re).Find(page); m != nil {
			t.Errorf("index.html has %s: %q", bad.what, m)
		}
	}
	for _, bad := range []string{"localStorage", "document.cookie", "innerHTML", "outerHTML", "eval(", "new Function", "insertAdjacentHTML", "http://", "https://"} {
		if strings.Contains(string(script), bad) {
			t.Errorf("console.js uses %s", bad)
		}
	}
	if !strings.Contains(string(script), "sessionStorage.setItem(TOKEN_KEY") {
		t.Error("console.js does not keep the token in sessionStorage")
	}
}
