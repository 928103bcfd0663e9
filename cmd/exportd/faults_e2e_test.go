package main

// Fault injection against real processes (make faults): ClickHouse killed
// mid-export and down at create, exportd SIGKILLed mid-export, storage full
// (a real ENOSPC on a small tmpfs), and download clients that stall or
// vanish. Each scenario asserts what SPEC §6 promises: the right
// failure_reason, nothing left in storage, and a service that stays healthy
// and recovers without a restart.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/ingest/chlocal"
)

const (
	capCreate = "operations_reports.create"
	capRead   = "operations_reports.read"
	// The generator's default span: every generated row is in this range.
	genFrom = "2026-01-01T00:00:00Z"
	genTo   = "2026-06-30T23:59:59.999Z"
)

// privateCH is a ClickHouse of the test's own, which it may kill and restart
// on the same ports and data directory.
type privateCH struct {
	t        *testing.T
	dir      string
	tcp, web int
	srv      *chlocal.Server
}

func startPrivateCH(t *testing.T) *privateCH {
	t.Helper()
	c := &privateCH{t: t, dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken by another process meanwhile
		if c.srv, err = chlocal.Start(ctx, chlocal.Options{Dir: c.dir}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start private ClickHouse: %v", err)
	}
	c.tcp, c.web = port(t, c.srv.TCPAddr), port(t, c.srv.HTTPAddr)
	t.Cleanup(func() { _ = c.srv.Stop() })
	return c
}

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func (c *privateCH) dsn() string { return c.srv.DSN() }

// kill stops ClickHouse with SIGKILL: no goodbye to open connections.
func (c *privateCH) kill() { c.srv.Kill() }

// restart starts ClickHouse again on the same ports and data.
func (c *privateCH) restart() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := chlocal.Start(ctx, chlocal.Options{Dir: c.dir, TCPPort: c.tcp, HTTPPort: c.web})
	if err != nil {
		c.t.Fatalf("restart ClickHouse: %v", err)
	}
	c.srv = srv
}

// generate loads n synthetic rows of one enterprise (seed) into the
// ClickHouse at dsn (once) and returns the enterprise.
func generate(t *testing.T, dsn string, n int, seed int) string {
	t.Helper()
	env := []string{"EXPORTD_CLICKHOUSE_DSN=" + dsn} // later entries win over exportd's default DSN
	s := strconv.Itoa(seed)
	mustExportd(t, env, "migrate")
	mustExportd(t, env, "ingest", "--generate", strconv.Itoa(n), "--enterprises", "1", "--seed", s, "--once")
	return strings.TrimSpace(mustExportd(t, env, "ingest", "--print-enterprises", "--enterprises", "1", "--seed", s).stdout)
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *service) status(t *testing.T, path string) int {
	t.Helper()
	code, _, _ := s.do(t, "GET", path, "", "")
	return code
}

func (s *service) get(t *testing.T, tok, id string) resource {
	t.Helper()
	code, _, b := s.do(t, "GET", "/operations-activity-exports/"+id, tok, "")
	if code != 200 {
		t.Fatalf("get %s: %d %s", id, code, b)
	}
	return decodeResource(t, b)
}

// startMidExport creates a slow export and returns once it has streamed rows
// but is still running: the moment to inject a fault.
func (s *service) startMidExport(t *testing.T, tok, ent string) string {
	t.Helper()
	code, _, body := s.do(t, "POST", "/operations-activity-exports", tok, createBody(ent, genFrom, genTo, "gzip"), "Prefer", "wait=0")
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	id := decodeResource(t, body).ID
	eventually(t, 30*time.Second, "export never got under way", func() bool {
		x := s.get(t, tok, id)
		if x.Status != "pending" && x.Status != "running" {
			t.Fatalf("export ended before the fault (%s/%s): make it longer", x.Status, x.FailureReason)
		}
		return x.Status == "running" && x.RowCount > 0
	})
	return id
}

// entries lists a storage directory.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// stop ends the service gracefully (if still running) and returns its logs,
// which may be read only once the process is gone.
func (s *service) stop(t *testing.T) string {
	t.Helper()
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(40 * time.Second):
			t.Fatal("serve did not stop after SIGTERM")
		}
	}
	return s.logs.String()
}

// checkLogs stops the service and scans its logs for secrets and data: no
// bearer token (nor a recognisable part of one) and no row content.
func checkLogs(t *testing.T, s *service, tokens []string, rowText ...string) {
	t.Helper()
	logs := s.stop(t)
	for _, tok := range tokens {
		for _, part := range strings.Split(tok, ".") {
			if len(part) >= 16 && strings.Contains(logs, part) {
				t.Errorf("a token segment leaked into the logs")
			}
		}
	}
	for _, r := range rowText {
		if strings.Contains(logs, r) {
			t.Errorf("row content %q leaked into the logs", r)
		}
	}
}

// recordIn reads an export's record from the control plane (PostgreSQL).
func recordIn(t *testing.T, id string) (*engine.Export, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return testPG.Store.Get(ctx, id)
}

// (a) ClickHouse killed mid-export: the export fails upstream_error (and that
// final state reaches the records once ClickHouse is back), storage holds
// nothing of it, the process stays alive (healthz) and unready until
// ClickHouse returns, then ready again without a restart.
func TestFaultClickHouseKilledMidExport(t *testing.T) {
	ch := startPrivateCH(t)
	ent := generate(t, ch.dsn(), 600_000, 41)
	s := startServe(t, "EXPORTD_CLICKHOUSE_DSN="+ch.dsn())
	tok := s.token(t, ent, capCreate, capRead)
	id := s.startMidExport(t, tok, ent)

	ch.kill()
	var x resource
	eventually(t, 20*time.Second, "export did not fail after ClickHouse died", func() bool {
		x = s.get(t, tok, id)
		return x.Status != "running" && x.Status != "pending"
	})
	if x.Status != "failed" || x.FailureReason != "upstream_error" || x.Checksum != "" {
		t.Fatalf("after ClickHouse died: %s/%s checksum %q", x.Status, x.FailureReason, x.Checksum)
	}
	if names := entries(t, s.storage); len(names) != 0 {
		t.Fatalf("storage keeps %v for a failed export", names)
	}
	if code := s.status(t, "/healthz"); code != 200 {
		t.Fatalf("healthz with ClickHouse down: %d", code)
	}
	eventually(t, 10*time.Second, "readyz stays 200 with ClickHouse down", func() bool { return s.status(t, "/readyz") == 503 })
	if code, _, b := s.do(t, "GET", "/operations-activity-exports/"+id+"/download", tok, ""); code != 409 || !strings.Contains(string(b), "export_failed") {
		t.Fatalf("download of the failed export: %d %s", code, b)
	}

	ch.restart()
	eventually(t, 30*time.Second, "readyz not 200 after ClickHouse came back", func() bool { return s.status(t, "/readyz") == 200 })
	if x := s.get(t, tok, id); x.Status != "failed" || x.FailureReason != "upstream_error" {
		t.Fatalf("after ClickHouse came back: %s/%s", x.Status, x.FailureReason)
	}
	// The final state is in the control plane (PostgreSQL), not left
	// "running" for the lost-owner check to call shutdown.
	eventually(t, 20*time.Second, "final state never recorded", func() bool {
		rec, err := recordIn(t, id)
		return err == nil && rec.Status == engine.StatusFailed && rec.FailureReason == engine.ReasonUpstream
	})
	if names := entries(t, s.storage); len(names) != 0 {
		t.Fatalf("storage keeps %v", names)
	}
	checkLogs(t, s, []string{tok})
}

// (b) ClickHouse down at create: 503 service_temporarily_unavailable with a
// retry hint, never a 500 nor a dependency's text; back again, creates work
// without restarting exportd.
func TestFaultClickHouseDownAtCreate(t *testing.T) {
	ch := startPrivateCH(t)
	ent := generate(t, ch.dsn(), 20_000, 42)
	s := startServe(t, "EXPORTD_CLICKHOUSE_DSN="+ch.dsn())
	tok := s.token(t, ent, capCreate, capRead)
	// A pooled connection exists before the fault (the readiness probe made one).
	ch.kill()

	for i, req := range []struct{ method, path, body string }{
		{"POST", "/operations-activity-exports", createBody(ent, genFrom, genTo, "none")},
		{"POST", "/operations-activity-exports", createBody(ent, genFrom, genTo, "zstd")},
	} {
		code, hdr, b := s.do(t, req.method, req.path, tok, req.body)
		var e struct {
			Code    string
			Details struct {
				Reason       string
				RetryAfterMs int64 `json:"retry_after_ms"`
			}
		}
		_ = json.Unmarshal(b, &e)
		if code != 503 || e.Code != "temporarily_unavailable" || e.Details.Reason != "service_temporarily_unavailable" ||
			e.Details.RetryAfterMs <= 0 || hdr.Get("Retry-After") == "" {
			t.Fatalf("request %d (%s %s) with ClickHouse down: %d %s (Retry-After %q)", i, req.method, req.path, code, b, hdr.Get("Retry-After"))
		}
		if strings.Contains(strings.ToLower(string(b)), "select") || strings.Contains(string(b), "127.0.0.1") {
			t.Fatalf("dependency detail leaked: %s", b)
		}
	}
	// Reads are the control plane's: they do not need ClickHouse.
	if code, _, b := s.do(t, "GET", "/operations-activity-exports", tok, ""); code != 200 {
		t.Fatalf("list with ClickHouse down: %d %s", code, b)
	}
	if s.status(t, "/healthz") != 200 {
		t.Fatalf("healthz with ClickHouse down: %d", s.status(t, "/healthz"))
	}
	// /readyz answers from a probe at most 1 s old.
	eventually(t, 5*time.Second, "readyz stays 200 with ClickHouse down", func() bool { return s.status(t, "/readyz") == 503 })

	ch.restart()
	eventually(t, 30*time.Second, "readyz not 200 after ClickHouse came back", func() bool { return s.status(t, "/readyz") == 200 })
	code, _, body := s.do(t, "POST", "/operations-activity-exports", tok, createBody(ent, genFrom, genTo, "none"), "Prefer", "wait=60")
	if code != 201 {
		t.Fatalf("create after ClickHouse came back: %d %s", code, body)
	}
	x := decodeResource(t, body)
	if x.Status != "ready" || x.RowCount == 0 {
		t.Fatalf("export after ClickHouse came back: %s, %d rows", x.Status, x.RowCount)
	}
	code, _, data := s.do(t, "GET", "/operations-activity-exports/"+x.ID+"/download", tok, "")
	sum := sha256.Sum256(data)
	if code != 200 || int64(len(data)) != x.ByteSize || hex.EncodeToString(sum[:]) != x.Checksum {
		t.Fatalf("download: %d, %d bytes (want %d)", code, len(data), x.ByteSize)
	}
	select {
	case <-s.done:
		t.Fatalf("exportd exited: %v", s.waitErr)
	default:
	}
	checkLogs(t, s, []string{tok})
}

// (c) exportd SIGKILLed mid-export: its temp file stays behind; the restarted
// replica (same id, same storage) declares the export failed/shutdown at
// once and removes that temp file, without waiting for any staleness age.
func TestFaultExportdKilledMidExport(t *testing.T) {
	ent := generate(t, testDSN, 600_000, 43)
	const replica = "EXPORTD_REPLICA_ID=fault-test-replica-c"
	s := startServe(t, replica)
	tok := s.token(t, ent, capCreate, capRead)
	id := s.startMidExport(t, tok, ent)
	eventually(t, 10*time.Second, "no temp file while the export runs", func() bool {
		names := entries(t, s.storage)
		return len(names) == 1 && strings.HasPrefix(names[0], ".tmp-") && strings.Contains(names[0], id)
	})

	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
	left := entries(t, s.storage)
	if len(left) != 1 {
		t.Fatalf("after SIGKILL storage holds %v, want the dead writer's temp file", left)
	}

	start := time.Now()
	s2 := startServe(t, replica, "EXPORTD_STORAGE_URL=file://"+s.storage, "EXPORTD_SIGNING_KEY="+s.key)
	var x resource
	eventually(t, 60*time.Second, "export not failed/shutdown after restart", func() bool {
		x = s2.get(t, tok, id)
		return x.Status == "failed"
	})
	if x.FailureReason != "shutdown" || x.Checksum != "" {
		t.Fatalf("after restart: %s/%s", x.Status, x.FailureReason)
	}
	eventually(t, 10*time.Second, "the dead writer's temp file was not swept", func() bool { return len(entries(t, s.storage)) == 0 })
	t.Logf("failed/shutdown and swept %v after the restart began", time.Since(start).Round(time.Millisecond))
	if code, _, _ := s2.do(t, "GET", "/operations-activity-exports/"+id+"/download", tok, ""); code != 409 {
		t.Fatalf("download of the failed export: %d", code)
	}
	// The restarted replica works.
	code, _, body := s2.do(t, "POST", "/operations-activity-exports", tok,
		createBody(ent, "2026-03-01T00:00:00Z", "2026-03-01T23:59:59Z", "none"), "Prefer", "wait=60")
	if code != 201 || decodeResource(t, body).Status != "ready" {
		t.Fatalf("create after restart: %d %s", code, body)
	}
	checkLogs(t, s, []string{tok})
	checkLogs(t, s2, []string{tok})
}

// (d) Storage full: a real ENOSPC on a 2 MiB tmpfs. The export fails
// storage_error, nothing of it remains (the space is free again), the
// service stays healthy and ready, and a small export then succeeds.
func TestFaultStorageFull(t *testing.T) {
	ent := generate(t, testDSN, 20_000, 44) // ≈ 7 MiB of CSV over the whole range
	dir := filepath.Join(t.TempDir(), "exports")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mounting a tmpfs is not permitted here (%v): this scenario needs root or CAP_SYS_ADMIN", err)
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	s := startServe(t, "EXPORTD_STORAGE_URL=file://"+dir) // registered after the unmount: stopped before it
	tok := s.token(t, ent, capCreate, capRead)

	code, _, body := s.do(t, "POST", "/operations-activity-exports", tok, createBody(ent, genFrom, genTo, "none"), "Prefer", "wait=60")
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	x := decodeResource(t, body)
	if x.Status != "failed" || x.FailureReason != "storage_error" || x.ByteSize != 0 || x.Checksum != "" {
		t.Fatalf("export on a full disk: %s/%s, %d bytes", x.Status, x.FailureReason, x.ByteSize)
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Fatalf("storage keeps %v after ENOSPC", names)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if free := st.Bfree * uint64(st.Bsize); free < 1900<<10 {
		t.Fatalf("only %d bytes free after the failed export: space not released", free)
	}
	if s.status(t, "/healthz") != 200 || s.status(t, "/readyz") != 200 {
		t.Fatal("not healthy after ENOSPC")
	}
	// One day of rows fits.
	code, _, body = s.do(t, "POST", "/operations-activity-exports", tok,
		createBody(ent, "2026-03-01T00:00:00Z", "2026-03-01T23:59:59Z", "none"), "Prefer", "wait=60")
	y := decodeResource(t, body)
	if code != 201 || y.Status != "ready" || y.RowCount == 0 {
		t.Fatalf("small export after ENOSPC: %d %s", code, body)
	}
	code, _, data := s.do(t, "GET", "/operations-activity-exports/"+y.ID+"/download", tok, "")
	if code != 200 || int64(len(data)) != y.ByteSize {
		t.Fatalf("download: %d, %d bytes (want %d)", code, len(data), y.ByteSize)
	}
	checkLogs(t, s, []string{tok})
	if !strings.Contains(s.logs.String(), "no space left on device") {
		t.Fatalf("no ENOSPC in the logs: the fault was not the one meant")
	}
}

// gauge reads one unlabelled sample from the admin /metrics.
func (s *service) gauge(t *testing.T, name string) float64 {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // no idle connection to count
	resp, err := c.Get(s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func (s *service) fds(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(des)
}

// rawDownload opens a download on its own connection and reads n body
// bytes (0: headers only), leaving the rest unread.
func (s *service) rawDownload(t *testing.T, tok, id string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	// A small receive buffer makes the server's writes block soon.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	fmt.Fprintf(c, "GET /operations-activity-exports/%s/download HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", id, tok)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 4<<10)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("download status line %q: %v", line, err)
	}
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if h == "\r\n" {
			break
		}
	}
	if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// (e) Download clients that stall or vanish: they neither block other
// requests nor leak goroutines or file handles once gone.
func TestFaultSlowAndVanishingDownloads(t *testing.T) {
	ent := generate(t, testDSN, 60_000, 45) // ≈ 23 MiB of CSV: far more than socket buffers hold
	// One caller runs 18 downloads at once here: above the default cap of 4
	// (TestDownloadsPerCallerCap covers the cap).
	s := startServe(t, "EXPORTD_MAX_DOWNLOADS_PER_CALLER=32")
	tok := s.token(t, ent, capCreate, capRead)
	code, _, body := s.do(t, "POST", "/operations-activity-exports", tok, createBody(ent, genFrom, genTo, "none"), "Prefer", "wait=60")
	x := decodeResource(t, body)
	if code != 201 || x.Status != "ready" || x.ByteSize < 16<<20 {
		t.Fatalf("create: %d %s", code, body)
	}
	full := func() time.Duration {
		start := time.Now()
		code, _, data := s.do(t, "GET", "/operations-activity-exports/"+x.ID+"/download", tok, "")
		sum := sha256.Sum256(data)
		if code != 200 || hex.EncodeToString(sum[:]) != x.Checksum {
			t.Fatalf("download: %d, %d bytes", code, len(data))
		}
		return time.Since(start)
	}
	full() // warm up: pools, buffers, keep-alive connection
	http.DefaultClient.CloseIdleConnections()
	settle := func() (int, float64) {
		time.Sleep(300 * time.Millisecond)
		return s.fds(t), s.gauge(t, "go_goroutines")
	}
	fd0, g0 := settle()

	// Stalled readers: headers and a little of the body, then nothing.
	var stalled []net.Conn
	for i := 0; i < 8; i++ {
		stalled = append(stalled, s.rawDownload(t, tok, x.ID, 1+i*1000))
	}
	// Vanishing readers: gone after a few KiB, some after the headers only.
	for i := 0; i < 8; i++ {
		c := s.rawDownload(t, tok, x.ID, (i%2)*64<<10)
		if tc, ok := c.(*net.TCPConn); ok && i%4 == 0 {
			_ = tc.SetLinger(0) // an RST rather than a FIN
		}
		c.Close()
	}
	// A slow but steady reader.
	slow := s.rawDownload(t, tok, x.ID, 0)
	slowDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 8<<10)
		for i := 0; i < 40; i++ {
			if _, err := io.ReadFull(slow, buf); err != nil {
				slowDone <- err
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		slowDone <- nil
	}()

	// Meanwhile the service answers everyone else promptly.
	if fd := s.fds(t); fd <= fd0 {
		t.Logf("fds while stalled: %d (baseline %d)", fd, fd0)
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		if s.status(t, "/healthz") != 200 || s.get(t, tok, x.ID).Status != "ready" {
			t.Fatal("health or get failed while downloads stall")
		}
		if code, _, _ := s.do(t, "GET", "/operations-activity-exports?page_size=5", tok, ""); code != 200 {
			t.Fatalf("list while downloads stall: %d", code)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("requests took %v while downloads stall", el)
		}
	}
	if el := full(); el > 20*time.Second {
		t.Fatalf("a full download took %v while others stall", el)
	}
	code, _, body = s.do(t, "POST", "/operations-activity-exports", tok,
		createBody(ent, "2026-03-01T00:00:00Z", "2026-03-01T23:59:59Z", "none"), "Prefer", "wait=30")
	if code != 201 || decodeResource(t, body).Status != "ready" {
		t.Fatalf("create while downloads stall: %d %s", code, body)
	}
	if err := <-slowDone; err != nil {
		t.Fatalf("slow reader: %v", err)
	}
	slow.Close()
	for _, c := range stalled {
		c.Close()
	}
	http.DefaultClient.CloseIdleConnections()

	// Everything is released once the clients are gone. fasthttp keeps an
	// idle worker goroutine up to 10s (and reaps every 10s), hence the wait.
	var fd int
	var g float64
	eventually(t, 30*time.Second, "file handles or goroutines not released", func() bool {
		fd, g = settle()
		return fd <= fd0+1 && g <= g0+2
	})
	t.Logf("fds %d → %d, goroutines %.0f → %.0f", fd0, fd, g0, g)
	if s.status(t, "/readyz") != 200 {
		t.Fatal("not ready after the download faults")
	}
	checkLogs(t, s, []string{tok})
}
