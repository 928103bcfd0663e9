package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/exportd/exportd/ingest/chlocal"
)

// server is one `exportd serve` process, used for every API export of a
// size.
type server struct {
	h       *harness
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:port
	token   string
	scope   string
	logPath string
	idleRSS int64     // bytes, VmRSS after start and settling
	s3      *s3Server // nil: file storage under dir/exports
	client  *http.Client
	done    chan struct{}
	waitErr error
}

// startServer mints a token for enterprise, starts exportd serve on free
// ports with file storage under dir (or, with s3srv, storage in its bucket
// under the prefix db), waits for /readyz and measures the idle RSS.
func (h *harness) startServer(ctx context.Context, db, enterprise, dir string, s3srv *s3Server) (*server, error) {
	store := []string{"EXPORTD_STORAGE_URL=file://" + filepath.Join(dir, "exports")}
	if s3srv != nil {
		store = s3srv.serveEnv(db)
	}
	if err := os.MkdirAll(filepath.Join(dir, "exports"), 0o755); err != nil {
		return nil, err
	}
	httpPort, err := chlocal.FreePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := chlocal.FreePort()
	if err != nil {
		return nil, err
	}
	key := filepath.Join(dir, "signing-key.pem")
	env := []string{
		"EXPORTD_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(httpPort),
		"EXPORTD_ADMIN_ADDR=127.0.0.1:" + strconv.Itoa(adminPort),
		"EXPORTD_CLICKHOUSE_DSN=" + h.dsn(db),
		"EXPORTD_POSTGRES_DSN=" + h.pgDSN,
		"EXPORTD_SIGNING_KEY=" + key,
		"EXPORTD_RATE_LIMIT=1000",
		"EXPORTD_RATE_BURST=1000",
		"EXPORTD_LOG_LEVEL=warn",
	}
	env = append(env, store...)
	tok, err := runTimed(ctx, env, nil, h.exportd, "token", "--sub", "users/00000000-0000-4000-8000-00000000be4c",
		"--capability", "operations_reports.create", "--capability", "operations_reports.read",
		"--scope", enterprise+":subtree", "--ttl", "24h")
	if err != nil {
		return nil, fmt.Errorf("exportd token: %w", err)
	}
	s := &server{
		h:       h,
		base:    "http://127.0.0.1:" + strconv.Itoa(httpPort),
		token:   strings.TrimSpace(tok.Stdout),
		scope:   enterprise,
		s3:      s3srv,
		logPath: filepath.Join(dir, "serve.log"),
		client:  &http.Client{Timeout: 90 * time.Second},
		done:    make(chan struct{}),
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = command(ctx, env, h.exportd, "serve")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start exportd serve: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx, time.Minute); err != nil {
		s.stop()
		return nil, err
	}
	// Let start-up garbage settle before taking the idle figure.
	time.Sleep(time.Second)
	if s.idleRSS, err = procStatus(s.cmd.Process.Pid, "VmRSS"); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("exportd serve exited during start (%v):\n%s", s.waitErr, indent(tail(s.logPath)))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := s.client.Get(s.base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("exportd serve not ready on %s within %v:\n%s", s.base, timeout, indent(tail(s.logPath)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the server gracefully (SIGTERM) and waits for it.
func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// resource is the part of the export resource (SPEC §1) the harness reads.
type resource struct {
	ID              string  `json:"id"`
	Status          string  `json:"status"`
	RowCount        int64   `json:"row_count"`
	ByteSize        int64   `json:"byte_size"`
	StorageLocation string  `json:"storage_location"`
	FailureReason   *string `json:"failure_reason"`
}

// export runs one export through the API and times it from the POST to the
// moment the harness sees it ready. Peak RSS is the process's VmHWM, reset
// just before the POST (/proc/PID/clear_refs), cross-checked by sampling
// VmRSS every 5 ms.
func (s *server) export(ctx context.Context, compression string) (measurement, error) {
	pid := s.cmd.Process.Pid
	hwmReset := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
	sampler := startSampler(pid, 5*time.Millisecond)

	body := fmt.Sprintf(`{"format":"csv","filter_criteria":{"date_from_utc":%q,"date_to_utc":%q},`+
		`"requested_scope":{"kind":"enterprise","ref":%q},"compression":%q}`,
		rangeFrom.Format(rfc3339Milli), rangeTo.Format(rfc3339Milli), s.scope, compression)
	start := time.Now()
	r, err := s.do(ctx, http.MethodPost, "/operations-activity-exports", []byte(body), http.StatusCreated)
	for err == nil && (r.Status == "pending" || r.Status == "running") {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(20 * time.Millisecond):
			r, err = s.do(ctx, http.MethodGet, "/operations-activity-exports/"+url.PathEscape(r.ID), nil, http.StatusOK)
		}
	}
	elapsed := time.Since(start)
	sampled := sampler.stop()
	if err != nil {
		return measurement{}, err
	}
	if r.Status != "ready" {
		reason := "null"
		if r.FailureReason != nil {
			reason = *r.FailureReason
		}
		return measurement{}, fmt.Errorf("export %s ended %s (failure_reason %s); serve log:\n%s", r.ID, r.Status, reason, indent(tail(s.logPath)))
	}
	peak := sampled
	if hwmReset {
		if hwm, err := procStatus(pid, "VmHWM"); err == nil && hwm > peak {
			peak = hwm
		}
	}
	m := measurement{
		Elapsed:     elapsed,
		Bytes:       r.ByteSize,
		Rows:        r.RowCount,
		PeakRSS:     peak,
		SampledPeak: sampled,
		AboveIdle:   peak - s.idleRSS,
	}
	if s.s3 != nil {
		// The object is checked and deleted here; Path stays empty.
		if err := s.s3.checkAndDelete(ctx, r.StorageLocation, r.ByteSize); err != nil {
			return measurement{}, fmt.Errorf("export %s: %w", r.ID, err)
		}
		return m, nil
	}
	u, err := url.Parse(r.StorageLocation)
	if err != nil || u.Scheme != "file" {
		return measurement{}, fmt.Errorf("export %s: storage_location %q is not a file:// URL", r.ID, r.StorageLocation)
	}
	st, err := os.Stat(u.Path)
	if err != nil {
		return measurement{}, fmt.Errorf("export %s: %w", r.ID, err)
	}
	if st.Size() != r.ByteSize {
		return measurement{}, fmt.Errorf("export %s: file has %d bytes, byte_size says %d", r.ID, st.Size(), r.ByteSize)
	}
	m.Path = u.Path
	return m, nil
}

func (s *server) do(ctx context.Context, method, path string, body []byte, want int) (*resource, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait=60")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, bytes.TrimSpace(b))
	}
	var r resource
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s %s: decode export resource: %w", method, path, err)
	}
	if r.ID == "" {
		return nil, fmt.Errorf("%s %s: export resource without id: %s", method, path, b)
	}
	return &r, nil
}

// sampler polls a process's VmRSS and keeps the maximum.
type sampler struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	peak  int64
}

func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{stopc: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v, err := procStatus(pid, "VmRSS"); err == nil && v > s.peak {
				s.peak = v
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak VmRSS in bytes.
func (s *sampler) stop() int64 {
	close(s.stopc)
	s.wg.Wait()
	return s.peak
}

// procStatus reads one "kB" field of /proc/PID/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s of pid %d: %w", field, pid, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(field + " not found in /proc/" + strconv.Itoa(pid) + "/status")
}

// tail returns the last lines of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
