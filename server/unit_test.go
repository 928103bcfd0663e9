package server

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/server/auth"
)

func TestParseRange(t *testing.T) {
	const size = 100
	cases := []struct {
		h           string
		start, n    int64
		res         rangeResult
		sizeOverrid int64
	}{
		{"bytes=0-9", 0, 10, rangeOK, 0},
		{"bytes=10-", 10, 90, rangeOK, 0},
		{"bytes=-5", 95, 5, rangeOK, 0},
		{"bytes=-500", 0, 100, rangeOK, 0},
		{"bytes=90-200", 90, 10, rangeOK, 0},
		{"bytes=99-99", 99, 1, rangeOK, 0},
		{"Bytes = 1-2", 1, 2, rangeOK, 0},
		{"bytes=0-99999999999999999999999", 0, 100, rangeOK, 0},
		{"bytes=100-", 0, 0, rangeUnsatisfiable, 0},
		{"bytes=100-200", 0, 0, rangeUnsatisfiable, 0},
		{"bytes=99999999999999999999999-", 0, 0, rangeUnsatisfiable, 0},
		{"bytes=-0", 0, 0, rangeUnsatisfiable, 0},
		{"bytes=0-0", 0, 0, rangeUnsatisfiable, -1}, // empty object
		{"bytes=5-4", 0, 0, rangeIgnore, 0},
		{"bytes=0-1,5-6", 0, 0, rangeIgnore, 0},
		{"bytes=", 0, 0, rangeIgnore, 0},
		{"bytes=-", 0, 0, rangeIgnore, 0},
		{"bytes=a-b", 0, 0, rangeIgnore, 0},
		{"bytes=+1-2", 0, 0, rangeIgnore, 0},
		{"items=0-1", 0, 0, rangeIgnore, 0},
		{"0-1", 0, 0, rangeIgnore, 0},
		{"bytes=1", 0, 0, rangeIgnore, 0},
	}
	for _, c := range cases {
		sz := int64(size)
		if c.sizeOverrid < 0 {
			sz = 0
		}
		start, n, res := parseRange(c.h, sz)
		if res != c.res || (res == rangeOK && (start != c.start || n != c.n)) {
			t.Errorf("parseRange(%q, %d) = %d, %d, %d; want %d, %d, %d", c.h, sz, start, n, res, c.start, c.n, c.res)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-1,2-3", "bytes=99999999999999999999-", "bytes=-0", "x"} {
		f.Add(s, int64(100))
	}
	f.Add("bytes=0-0", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		start, n, res := parseRange(h, size)
		switch res {
		case rangeOK:
			if start < 0 || n < 1 || start >= size || n > size-start {
				t.Fatalf("parseRange(%q, %d) = [%d, +%d) outside the object", h, size, start, n)
			}
		case rangeIgnore, rangeUnsatisfiable:
		default:
			t.Fatalf("unknown result %d", res)
		}
	})
}

func TestParseDigitsSaturates(t *testing.T) {
	if n, ok := parseDigits("99999999999999999999999999"); !ok || n != math.MaxInt64 {
		t.Fatal(n, ok)
	}
}

func TestPageToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	c := engine.Cursor{GeneratedAtMs: 1775001600123, ID: "b8e2f1a0-4c3d-4e5f-9a1b-2c3d4e5f6a7b"}
	tok := encodePageToken(secret, "users/a", c)
	got, err := decodePageToken(secret, "users/a", tok)
	if err != nil || *got != c {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if _, err := decodePageToken(secret, "users/b", tok); err == nil {
		t.Fatal("token accepted for another caller")
	}
	if _, err := decodePageToken([]byte("another secret of some length!!"), "users/a", tok); err == nil {
		t.Fatal("token accepted under another secret")
	}
	for i := range tok {
		b := []byte(tok)
		b[i] ^= 1
		if _, err := decodePageToken(secret, "users/a", string(b)); err == nil {
			t.Fatalf("tampered token (byte %d) accepted", i)
		}
	}
	for _, bad := range []string{"", "x", tok + "A", tok[:len(tok)-1], strings.Repeat("A", 500), tok + "=="} {
		if _, err := decodePageToken(secret, "users/a", bad); err == nil {
			t.Fatalf("garbled token %q accepted", bad)
		}
	}
}

func TestParseWait(t *testing.T) {
	cases := []struct {
		in   []string
		want time.Duration
		ok   bool
	}{
		{nil, defaultWait, true},
		{[]string{"wait=0"}, 0, true},
		{[]string{"wait=60"}, 60 * time.Second, true},
		{[]string{"respond-async, wait=5"}, 5 * time.Second, true},
		{[]string{"respond-async", "Wait = 7 ; foo=bar"}, 7 * time.Second, true},
		{[]string{`wait="3"`}, 3 * time.Second, true},
		{[]string{"wait=1, wait=70"}, time.Second, true},
		{[]string{"return=minimal"}, defaultWait, true},
		{[]string{"wait=61"}, 0, false},
		{[]string{"wait=-1"}, 0, false},
		{[]string{"wait=1.5"}, 0, false},
		{[]string{"wait="}, 0, false},
		{[]string{"wait"}, 0, false},
		{[]string{"wait=abc"}, 0, false},
	}
	for _, c := range cases {
		var vals [][]byte
		for _, s := range c.in {
			vals = append(vals, []byte(s))
		}
		d, ok := parseWait(vals)
		if ok != c.ok || (ok && d != c.want) {
			t.Errorf("parseWait(%q) = %v, %v; want %v, %v", c.in, d, ok, c.want, c.ok)
		}
	}
}

func TestHeaderValidators(t *testing.T) {
	for s, want := range map[string]bool{"abc-123_X.y": true, "": false, strings.Repeat("a", 128): true,
		strings.Repeat("a", 129): false, "a b": false, "a\r\nb": false, "é": false} {
		if saneRequestID([]byte(s)) != want {
			t.Errorf("saneRequestID(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"k": true, strings.Repeat("~", 255): true, strings.Repeat("k", 256): false,
		"": false, "a b": false, "a\tb": false, "ключ": false, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~": true} {
		if validIdempotencyKey([]byte(s)) != want {
			t.Errorf("validIdempotencyKey(%q) != %v", s, want)
		}
	}
	for ms, want := range map[int64]int64{1: 1, 999: 1, 1000: 1, 1001: 2, 5000: 5, 0: 1} {
		if got := retryAfterSeconds(ms); got != want {
			t.Errorf("retryAfterSeconds(%d) = %d, want %d", ms, got, want)
		}
	}
}

func TestCallerLimiter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newCallerLimiter(2, 3, 4)
	for i := 0; i < 3; i++ {
		if _, ok := l.allow("a", now); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	d, ok := l.allow("a", now)
	if ok || d <= 0 || d > 500*time.Millisecond {
		t.Fatalf("4th request: %v %v", d, ok)
	}
	if _, ok := l.allow("b", now); !ok {
		t.Fatal("another caller is limited by a's bucket")
	}
	if _, ok := l.allow("a", now.Add(d)); !ok {
		t.Fatal("refused after the advertised wait")
	}
	// Bounded table: idle callers go first.
	for i := 0; i < 10; i++ {
		l.allow(string(rune('c'+i)), now.Add(time.Duration(i)*time.Hour))
		if l.size() > 4 {
			t.Fatalf("table grew to %d", l.size())
		}
	}
	if _, ok := newCallerLimiter(-1, 0, 1).allow("x", now); !ok {
		t.Fatal("disabled limiter refused")
	}
}

func TestVisibilityMatchesCoverage(t *testing.T) {
	const (
		entA   = "enterprises/00000000-0000-4000-8000-00000000000a"
		entB   = "enterprises/00000000-0000-4000-8000-00000000000b"
		cliA   = "clients/00000000-0000-4000-8000-0000000000a1"
		cliB   = "clients/00000000-0000-4000-8000-0000000000b1"
		acctA  = "client-accounts/00000000-0000-4000-8000-000000000a11"
		acctA0 = "client-accounts/00000000-0000-4000-8000-000000000a00" // activity without client
	)
	exports := []*engine.Export{
		{ID: "e-a", ScopeKind: "enterprise", ScopeRef: entA, EnterpriseRef: entA},
		{ID: "e-b", ScopeKind: "enterprise", ScopeRef: entB, EnterpriseRef: entB},
		{ID: "c-a", ScopeKind: "client", ScopeRef: cliA, EnterpriseRef: entA},
		{ID: "c-b", ScopeKind: "client", ScopeRef: cliB, EnterpriseRef: entB},
		{ID: "a-a", ScopeKind: "client_account", ScopeRef: acctA, EnterpriseRef: entA, ClientRef: cliA},
		{ID: "a-a0", ScopeKind: "client_account", ScopeRef: acctA0, EnterpriseRef: entA},
		{ID: "c-none", ScopeKind: "client", ScopeRef: cliB}, // no activity at creation
	}
	principals := map[string]struct {
		scopes []auth.Scope
		want   string
	}{
		"perimeter A":        {[]auth.Scope{{Target: entA, Extent: auth.ExtentPerimeter}}, "e-a"},
		"subtree A":          {[]auth.Scope{{Target: entA, Extent: auth.ExtentSubtree}}, "e-a c-a a-a a-a0"},
		"subtree client A":   {[]auth.Scope{{Target: cliA, Extent: auth.ExtentSubtree}}, "c-a a-a"},
		"perimeter client A": {[]auth.Scope{{Target: cliA, Extent: auth.ExtentPerimeter}}, "c-a"},
		"perimeter client B": {[]auth.Scope{{Target: cliB, Extent: auth.ExtentPerimeter}}, "c-b c-none"},
		"subtree B":          {[]auth.Scope{{Target: entB, Extent: auth.ExtentSubtree}}, "e-b c-b"},
		"none":               {nil, ""},
	}
	for name, pc := range principals {
		p := &auth.Principal{Subject: "users/x", Scopes: pc.scopes}
		v := visibility(p)
		in := func(list []string, s string) bool {
			for _, x := range list {
				if x == s {
					return true
				}
			}
			return false
		}
		var got []string
		for _, x := range exports {
			byFilter := in(v.Refs, x.ScopeRef) || in(v.Enterprises, x.EnterpriseRef) || (x.ClientRef != "" && in(v.Clients, x.ClientRef))
			if byFilter != sees(p, x) {
				t.Errorf("%s: export %s: filter says %v, coverage says %v", name, x.ID, byFilter, sees(p, x))
			}
			if sees(p, x) {
				got = append(got, x.ID)
			}
		}
		if strings.Join(got, " ") != pc.want {
			t.Errorf("%s sees %q, want %q", name, got, pc.want)
		}
	}
}
