package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// JWKS URLs are https:// only (http:// for loopback), never followed
// through redirects, and their errors never repeat the query string.
func TestJWKSURLPolicy(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://idp.example.com/.well-known/jwks.json", true},
		{"http://idp.example.com/.well-known/jwks.json", false},
		{"http://10.0.0.7/jwks.json", false},
		{"http://127.0.0.1:8081/jwks.json", true},
		{"http://[::1]:8081/jwks.json", true},
		{"http://localhost:8081/jwks.json", true},
	} {
		if _, err := parseJWKSSource(c.url); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.url, err)
		}
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/jwks.json", http.StatusFound)
	}))
	defer redirect.Close()
	_, err := New(context.Background(), Config{JWKS: redirect.URL + "/jwks.json?token=s3cr3t"})
	if err == nil || !strings.Contains(err.Error(), "status 302") {
		t.Fatalf("a redirecting JWKS endpoint: %v", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("the query string is in the error: %v", err)
	}
	// A dead endpoint: the error names the URL without its query.
	dead := redirect.URL
	redirect.Close()
	_, err = New(context.Background(), Config{JWKS: dead + "/jwks.json?token=s3cr3t"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("dead endpoint: %v", err)
	}
}

// A signing key in a directory anyone may write to is refused: the key
// could be swapped.
func TestSigningKeyDirectoryPolicy(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/signing-key.pem"
	if _, _, err := LoadOrCreateSigningKey(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateSigningKey(path); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Fatalf("key in a world-writable directory: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateSigningKey(path); err != nil {
		t.Fatalf("back to 0700: %v", err)
	}
}
