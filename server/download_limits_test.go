package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/exportd/exportd/engine/activity"
)

// memObject is an in-memory storage.Object.
type memObject struct{ *bytes.Reader }

func (memObject) Close() error { return nil }

// A reader under the minimum rate over a window is cut off; one above it
// is not, whatever the file size.
func TestDownloadMinimumRate(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 1<<20)
	newStream := func() *objectStream {
		obj := memObject{bytes.NewReader(data)}
		return &objectStream{r: io.NewSectionReader(obj, 0, int64(len(data))), obj: obj, want: int64(len(data)),
			window: 50 * time.Millisecond, minPerWindow: 64 << 10}
	}
	slow := newStream()
	buf := make([]byte, 1024)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = slow.Read(buf) // 1 KiB per 20 ms: 2.5 KiB a window, under 64 KiB
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(err, errTooSlow) {
		t.Fatalf("slow reader: %v after %d bytes", err, slow.sent)
	}
	fast := newStream()
	big := make([]byte, 128<<10)
	for {
		_, err := fast.Read(big)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("fast reader: %v", err)
		}
		time.Sleep(30 * time.Millisecond) // 128 KiB per 30 ms
	}
	if fast.sent != int64(len(data)) {
		t.Fatalf("fast reader got %d bytes", fast.sent)
	}
}

// Concurrent downloads are capped per caller: beyond the cap, 429 with a
// retry hint; a slot comes back when a download ends.
func TestDownloadsPerCallerCap(t *testing.T) {
	e := newEnv(t, envOptions{tuneSrv: func(c *Config) { c.MaxDownloadsPerCaller = 1 }})
	a := newTenant()
	day := time.Date(2026, 4, 5, 0, 0, 0, 0, time.UTC).UnixMilli()
	// ≈ 20 MiB of CSV: far more than loopback socket buffers hold, so a
	// download whose reader does not read stays open.
	rows := make([]activity.Row, 0, 50_000)
	for i := 0; i < 50_000; i++ {
		rows = append(rows, row(t, a, a.client, a.acct, day+int64(i), "1.5", strings.Repeat("r", 300)))
	}
	insert(t, rows)
	tok := e.token(newUser(), capsAll, a.ent+":subtree")
	m := e.create(tok, createBody("enterprise", a.ent, aprFrom, aprTo, ""), map[string]string{"Prefer": "wait=60"})
	if m["status"] != "ready" {
		t.Fatalf("export: %v", m["status"])
	}
	path := exportsPath + "/" + m["id"].(string) + "/download"
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4096)
	if _, err := io.ReadAtLeast(c, head, 12); err != nil || !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		t.Fatalf("first download: %q %v", head[:12], err)
	}
	// The first download is open (its reader stopped reading).
	r := e.do("GET", path, tok, "", nil)
	d := wantError(t, r, 429, codeRateLimited, msgRateLimited, "")
	if num(t, d["retry_after_ms"]) <= 0 {
		t.Fatalf("no retry hint: %s", r.body)
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", path, tok, "", nil)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot never came back: %d", r.status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Reads go through a per-caller limiter too (20x the create rate, 10x its
// burst by default): a caller past it gets 429 with the wait; another
// caller is not affected.
func TestReadRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{rateLimit: 0.05, rateBurst: 1}) // reads: 1/s, burst 10
	a := newTenant()
	tok := e.token(newUser(), capsAll, a.ent)
	for i := 0; i < 10; i++ {
		if r := e.do("GET", exportsPath, tok, "", nil); r.status != 200 {
			t.Fatalf("read %d: %d %s", i, r.status, r.body)
		}
	}
	r := e.do("GET", exportsPath+"/"+uuid.NewString(), tok, "", nil)
	d := wantError(t, r, 429, codeRateLimited, msgRateLimited, "")
	if ms := num(t, d["retry_after_ms"]); ms <= 0 || ms > 1000 {
		t.Fatalf("retry_after_ms %d", ms)
	}
	if r := e.do("GET", exportsPath, e.token(newUser(), capsAll, a.ent), "", nil); r.status != 200 {
		t.Fatalf("another caller: %d", r.status)
	}
}
