package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/exportd/exportd/server"
)

// TestE2EOpenAPI: the built binary serves the embedded document on the API
// listener, and the answers the server package's walkthrough cannot see
// match it: /metrics on the admin listener (and not on the API one), plus
// the service routes of the real process.
func TestE2EOpenAPI(t *testing.T) {
	s := startServe(t)
	code, h, body := s.do(t, "GET", "/openapi.json", "", "")
	if code != http.StatusOK || !bytes.Equal(body, server.OpenAPI()) || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %q, %d bytes", code, h.Get("Content-Type"), len(body))
	}
	doc, err := libopenapi.NewDocument(body)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	check := func(base, path string, want int) {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Fatalf("GET %s%s: %d, want %d: %.300s", base, path, resp.StatusCode, want, b)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		if ok, verrs := v.ValidateHttpResponse(req, resp); !ok {
			for _, e := range verrs {
				t.Errorf("GET %s%s: %s: %s", base, path, e.Message, e.Reason)
			}
		}
	}
	check(s.admin, "/metrics", http.StatusOK)
	check(s.base, "/healthz", http.StatusOK)
	check(s.base, "/readyz", http.StatusOK)
	check(s.base, "/openapi.json", http.StatusOK)
	// The document puts /metrics on the admin listener only: the API
	// listener does not serve it.
	if code, _, b := s.do(t, "GET", "/metrics", "", ""); code != http.StatusNotFound || !strings.Contains(string(b), `"not_found"`) {
		t.Errorf("GET /metrics on the API listener: %d %.200s", code, b)
	}
}
