package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwksServer serves a replaceable JWK Set and counts requests.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	doc    []byte
	status int
	hits   atomic.Int64
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{doc: doc, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(doc []byte, status int) {
	s.mu.Lock()
	s.doc, s.status = doc, status
	s.mu.Unlock()
}

func jwksOf(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	return mustJSON(t, map[string]any{"keys": keys})
}

// eventually polls f until it returns true or 5s pass.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWKSFromURL(t *testing.T) {
	m := testKeys()
	srv := newJWKSServer(t, standardJWKS())
	v, err := New(t.Context(), Config{JWKS: srv.URL + "/.well-known/jwks.json", HTTPClient: srv.Client(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for name, tok := range map[string]string{
		"RS256": sign(t, jwt.SigningMethodRS256, m.rsa, map[string]any{"kid": kidRSA}, validClaims()),
		"ES256": sign(t, jwt.SigningMethodES256, m.ec, map[string]any{"kid": kidEC}, validClaims()),
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, m.ed, map[string]any{"kid": kidEdJW}, validClaims()),
	} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("%d fetches, want 1 (Verify must not fetch for known kids)", got)
	}
}

// TestJWKSRotation: a token signed with a key the issuer has just published is rejected once, which
// schedules a refresh, and accepted after it; a key the issuer withdraws stops being trusted.
func TestJWKSRotation(t *testing.T) {
	m := testKeys()
	srv := newJWKSServer(t, jwksOf(t, rsaJWK(kidRSA, &m.rsa.PublicKey)))
	v, err := New(t.Context(), Config{
		JWKS:               srv.URL,
		HTTPClient:         srv.Client(),
		Now:                func() time.Time { return testNow },
		MinRefreshInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	oldTok := sign(t, jwt.SigningMethodRS256, m.rsa, map[string]any{"kid": kidRSA}, validClaims())
	newTok := sign(t, jwt.SigningMethodES256, m.ec, map[string]any{"kid": kidEC}, validClaims())

	if _, err := v.Verify(newTok); Reason(err) != ReasonUnknownKey {
		t.Fatalf("before rotation: %v, want unknown_key", err)
	}
	srv.set(jwksOf(t, ecJWK(kidEC, &m.ec.PublicKey)), http.StatusOK)
	eventually(t, "the new key", func() bool {
		_, err := v.Verify(newTok)
		return err == nil
	})
	if _, err := v.Verify(oldTok); Reason(err) != ReasonUnknownKey {
		t.Errorf("withdrawn key: %v, want unknown_key", err)
	}

	// Unknown kids cannot make the verifier hammer the issuer: fetches stay rate limited.
	before := srv.hits.Load()
	bogus := sign(t, jwt.SigningMethodES256, m.ec, map[string]any{"kid": "bogus"}, validClaims())
	start := time.Now()
	for range 200 {
		v.Verify(bogus)
	}
	time.Sleep(50 * time.Millisecond)
	elapsed := time.Since(start)
	if got, limit := srv.hits.Load()-before, int64(elapsed/(20*time.Millisecond))+2; got > limit {
		t.Errorf("%d fetches in %s, want at most %d", got, elapsed, limit)
	}
}

func TestJWKSPeriodicRefreshKeepsKeysOnFailure(t *testing.T) {
	m := testKeys()
	srv := newJWKSServer(t, jwksOf(t, rsaJWK(kidRSA, &m.rsa.PublicKey)))
	v, err := New(t.Context(), Config{
		JWKS:            srv.URL,
		HTTPClient:      srv.Client(),
		Now:             func() time.Time { return testNow },
		RefreshInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok := sign(t, jwt.SigningMethodRS256, m.rsa, map[string]any{"kid": kidRSA}, validClaims())

	// Failing refreshes (server error, garbage, a set without usable keys) keep the old keys.
	for _, bad := range []struct {
		doc    []byte
		status int
	}{
		{[]byte("oops"), http.StatusInternalServerError},
		{[]byte("{"), http.StatusOK},
		{[]byte(`{"keys":[]}`), http.StatusOK},
		{[]byte(strings.Repeat(" ", maxJWKSBytes+1) + "{}"), http.StatusOK},
	} {
		srv.set(bad.doc, bad.status)
		n := srv.hits.Load()
		eventually(t, "a refresh", func() bool { return srv.hits.Load() > n+1 })
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("after failed refresh (%d %.10q): %v", bad.status, bad.doc, err)
		}
	}

	// A successful refresh without the key revokes it.
	srv.set(jwksOf(t, ecJWK(kidEC, &m.ec.PublicKey)), http.StatusOK)
	eventually(t, "revocation", func() bool {
		_, err := v.Verify(tok)
		return Reason(err) == ReasonUnknownKey
	})
}

func TestJWKSURLFirstFetchFails(t *testing.T) {
	srv := newJWKSServer(t, []byte("nope"))
	srv.set([]byte("nope"), http.StatusServiceUnavailable)
	if _, err := New(t.Context(), Config{JWKS: srv.URL, HTTPClient: srv.Client()}); err == nil {
		t.Error("New succeeded with a failing JWKS URL")
	}
	srv.set([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), http.StatusOK)
	if _, err := New(t.Context(), Config{JWKS: srv.URL, HTTPClient: srv.Client()}); err == nil {
		t.Error("New succeeded with a JWKS of only a symmetric key")
	}
}

// TestCloseStopsRefresh: Close and cancellation of New's context both end the refresh goroutine;
// Close waits for it and is idempotent.
func TestCloseStopsRefresh(t *testing.T) {
	srv := newJWKSServer(t, standardJWKS())
	// Count fetches on the client side: after Close returns, the verifier must start none.
	var started atomic.Int64
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		started.Add(1)
		return srv.Client().Transport.RoundTrip(r)
	})}
	v, err := New(t.Context(), Config{JWKS: srv.URL, HTTPClient: client, RefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "refreshes", func() bool { return started.Load() > 3 })
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	n := started.Load()
	time.Sleep(20 * time.Millisecond)
	if got := started.Load(); got != n {
		t.Errorf("%d fetches started after Close", got-n)
	}
	v.Close() // idempotent

	ctx, cancel := context.WithCancel(t.Context())
	v2, err := New(ctx, Config{JWKS: srv.URL, HTTPClient: srv.Client(), RefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-v2.done:
	case <-time.After(5 * time.Second):
		t.Fatal("refresh goroutine still running after its context was cancelled")
	}
	v2.Close()

	// A verifier without a URL has no goroutine; Close returns at once.
	path, _, _ := localKey(t)
	v3, err := New(t.Context(), Config{SigningKeyPath: path})
	if err != nil {
		t.Fatal(err)
	}
	v3.Close()
	v3.Close()
}

func TestJWKSSourceNeverLogsQuery(t *testing.T) {
	src, err := parseJWKSSource("https://user:pw@idp.example/jwks?token=secret")
	if err != nil {
		t.Fatal(err)
	}
	if s := src.String(); strings.Contains(s, "secret") || strings.Contains(s, "pw") {
		t.Errorf("source %q leaks credentials", s)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
