package main

import (
	"github.com/exportd/exportd/bench/internal/procstat"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	admin   string // http://127.0.0.1:port of the admin listener (/metrics)
	token   string
	scope   string   // the enterprise of the single-export contenders
	scopes  []string // every enterprise the token covers (scope first)
	logPath string
	idleRSS int64     // bytes, VmRSS after start and settling
	s3      *s3Server // nil: file storage under dir/exports
	client  *http.Client
	done    chan struct{}
	waitErr error
}

// startServer mints a token for enterprises (the first is the one the
// single-export contenders export), starts exportd serve on free ports with
// file storage under dir (or, with s3srv, storage in its bucket under the
// prefix db), waits for /readyz and measures the idle RSS.
//
// Slots: EXPORTD_MAX_EXPORTS=4 and EXPORTD_MAX_EXPORTS_PER_ENTERPRISE=2 (the
// defaults, set explicitly) let api-2x's two exports of two enterprises run
// at once; the harness checks that they did (MaxRunning).
func (h *harness) startServer(ctx context.Context, db string, enterprises []string, dir string, s3srv *s3Server) (*server, error) {
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
		"EXPORTD_MAX_EXPORTS=4",
		"EXPORTD_MAX_EXPORTS_PER_ENTERPRISE=2",
		"EXPORTD_LOG_LEVEL=warn",
	}
	env = append(env, store...)
	args := []string{"token", "--sub", "users/00000000-0000-4000-8000-00000000be4c",
		"--capability", "operations_reports.create", "--capability", "operations_reports.read", "--ttl", "24h"}
	for _, e := range enterprises {
		args = append(args, "--scope", e+":subtree")
	}
	tok, err := runTimed(ctx, env, nil, h.exportd, args...)
	if err != nil {
		return nil, fmt.Errorf("exportd token: %w", err)
	}
	s := &server{
		h:       h,
		base:    "http://127.0.0.1:" + strconv.Itoa(httpPort),
		admin:   "http://127.0.0.1:" + strconv.Itoa(adminPort),
		token:   strings.TrimSpace(tok.Stdout),
		scope:   enterprises[0],
		scopes:  enterprises,
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
// VmRSS every 5 ms; the CPU seconds of the serve and of clickhouse-server
// are read from /proc/PID/stat before the POST and after ready.
func (s *server) export(ctx context.Context, compression string) (measurement, error) {
	m, rs, err := s.exportAll(ctx, compression, []string{s.scope})
	if err != nil {
		return measurement{}, err
	}
	r := rs[0]
	if s.s3 != nil {
		// The object is checked and deleted here; Path stays empty.
		if err := s.s3.checkAndDelete(ctx, r.StorageLocation, r.ByteSize); err != nil {
			return measurement{}, fmt.Errorf("export %s: %w", r.ID, err)
		}
		return m, nil
	}
	if m.Path, err = localFile(r); err != nil {
		return measurement{}, err
	}
	return m, nil
}

// exportConcurrent runs one export per scope at once (compression none,
// file storage), all POSTed together, and times them from the first POST
// to the moment the harness sees the last one ready. Each file is checked
// (size, CSV records against row_count) and removed here: Rows is the sum,
// Path stays empty. MaxRunning is the most exports seen running at once
// (exportd_exports_running sampled every 25 ms, or the statuses of one poll
// round), the evidence that they did overlap.
func (s *server) exportConcurrent(ctx context.Context, scopes []string) (measurement, error) {
	m, rs, err := s.exportAll(ctx, "none", scopes)
	if err != nil {
		return measurement{}, err
	}
	m.Rows = 0
	for _, r := range rs {
		path, err := localFile(r)
		if err != nil {
			return measurement{}, err
		}
		records, err := countCSVRecords(path)
		if err != nil {
			return measurement{}, fmt.Errorf("export %s: count records of %s: %w", r.ID, path, err)
		}
		if records-1 != r.RowCount {
			return measurement{}, fmt.Errorf("export %s: row_count %d, its file holds %d data records", r.ID, r.RowCount, records-1)
		}
		if err := os.Remove(path); err != nil {
			return measurement{}, fmt.Errorf("remove output: %w", err)
		}
		m.Rows += r.RowCount
	}
	return m, nil
}

// localFile checks that a ready export's file:// storage location holds
// byte_size bytes and returns its path.
func localFile(r *resource) (string, error) {
	u, err := url.Parse(r.StorageLocation)
	if err != nil || u.Scheme != "file" {
		return "", fmt.Errorf("export %s: storage_location %q is not a file:// URL", r.ID, r.StorageLocation)
	}
	st, err := os.Stat(u.Path)
	if err != nil {
		return "", fmt.Errorf("export %s: %w", r.ID, err)
	}
	if st.Size() != r.ByteSize {
		return "", fmt.Errorf("export %s: file has %d bytes, byte_size says %d", r.ID, st.Size(), r.ByteSize)
	}
	return u.Path, nil
}

// exportAll POSTs one export per scope (back to back, each with
// Prefer: wait=0 so that the second does not wait for the first), polls
// them all every 20 ms until none is pending or running, and returns the
// timing, memory and CPU figures with the final resources.
func (s *server) exportAll(ctx context.Context, compression string, scopes []string) (measurement, []*resource, error) {
	pid := s.cmd.Process.Pid
	hwmReset := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
	sampler := startSampler(pid, 5*time.Millisecond)
	var running *runningSampler
	if len(scopes) > 1 {
		running = s.startRunningSampler(ctx, 25*time.Millisecond)
	}
	serveCPU0, _ := cpuSeconds(pid)
	chCPU0, chErr := cpuSeconds(s.h.chPID)
	s3PID := 0
	if s.s3 != nil {
		s3PID = s.s3.Pid()
	}
	s3CPU0, s3Err := cpuSeconds(s3PID)

	wait := "wait=60"
	if len(scopes) > 1 {
		wait = "wait=0"
	}
	start := time.Now()
	rs := make([]*resource, len(scopes))
	var err error
	for i, scope := range scopes {
		body := fmt.Sprintf(`{"format":"csv","filter_criteria":{"date_from_utc":%q,"date_to_utc":%q},`+
			`"requested_scope":{"kind":"enterprise","ref":%q},"compression":%q}`,
			rangeFrom.Format(rfc3339Milli), rangeTo.Format(rfc3339Milli), scope, compression)
		if rs[i], err = s.do(ctx, http.MethodPost, "/operations-activity-exports", []byte(body), http.StatusCreated, wait); err != nil {
			break
		}
	}
	maxRunning := 0
	for err == nil {
		open, nRunning := 0, 0
		for _, r := range rs {
			switch r.Status {
			case "pending":
				open++
			case "running":
				open++
				nRunning++
			}
		}
		maxRunning = max(maxRunning, nRunning)
		if open == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
			continue
		case <-time.After(20 * time.Millisecond):
		}
		for i, r := range rs {
			if r.Status == "pending" || r.Status == "running" {
				if rs[i], err = s.do(ctx, http.MethodGet, "/operations-activity-exports/"+url.PathEscape(r.ID), nil, http.StatusOK, ""); err != nil {
					break
				}
			}
		}
	}
	elapsed := time.Since(start)
	serveCPU1, serveErr := cpuSeconds(pid)
	chCPU1, chErr1 := cpuSeconds(s.h.chPID)
	s3CPU1, s3Err1 := cpuSeconds(s3PID)
	sampled := sampler.stop()
	if running != nil {
		maxRunning = max(maxRunning, running.stop())
	}
	if err != nil {
		return measurement{}, nil, err
	}
	for _, r := range rs {
		if r.Status != "ready" {
			reason := "null"
			if r.FailureReason != nil {
				reason = *r.FailureReason
			}
			return measurement{}, nil, fmt.Errorf("export %s ended %s (failure_reason %s); serve log:\n%s", r.ID, r.Status, reason, indent(tail(s.logPath)))
		}
	}
	peak := sampled
	if hwmReset {
		if hwm, err := procStatus(pid, "VmHWM"); err == nil && hwm > peak {
			peak = hwm
		}
	}
	m := measurement{
		Elapsed:     elapsed,
		Rows:        rs[0].RowCount,
		PeakRSS:     peak,
		SampledPeak: sampled,
		AboveIdle:   peak - s.idleRSS,
		ServeCPU:    -1,
		CHCPU:       -1,
		S3CPU:       -1,
		MaxRunning:  maxRunning,
	}
	for _, r := range rs {
		m.Bytes += r.ByteSize
	}
	if serveErr == nil {
		m.ServeCPU = roundTicks(serveCPU1 - serveCPU0)
	}
	if chErr == nil && chErr1 == nil {
		m.CHCPU = roundTicks(chCPU1 - chCPU0)
	}
	if s3PID > 0 && s3Err == nil && s3Err1 == nil {
		m.S3CPU = roundTicks(s3CPU1 - s3CPU0)
	}
	return m, rs, nil
}

// runningSampler keeps the highest exportd_exports_running a serve's admin
// /metrics reported.
type runningSampler struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	peak  int
}

func (s *server) startRunningSampler(ctx context.Context, every time.Duration) *runningSampler {
	rs := &runningSampler{stopc: make(chan struct{})}
	client := &http.Client{Timeout: 2 * time.Second}
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v, err := scrapeGauge(ctx, client, s.admin+"/metrics", "exportd_exports_running"); err == nil {
				rs.peak = max(rs.peak, int(v))
			}
			select {
			case <-rs.stopc:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return rs
}

// stop ends the sampling and returns the peak.
func (rs *runningSampler) stop() int {
	close(rs.stopc)
	rs.wg.Wait()
	return rs.peak
}

// scrapeGauge reads one unlabelled series from a Prometheus text exposition.
func scrapeGauge(ctx context.Context, client *http.Client, u, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no series %s", u, name)
}

// roundTicks rounds a difference of CPU times to the clock tick (1/100 s)
// they are counted in, dropping the float noise of the subtraction.
func roundTicks(s float64) float64 { return math.Round(s*100) / 100 }

// cpuSeconds is the user + system CPU time of process pid so far.
func cpuSeconds(pid int) (float64, error) {
	if pid <= 0 {
		return 0, errors.New("no pid")
	}
	return procstat.CPUSeconds(strconv.Itoa(pid))
}

func (s *server) do(ctx context.Context, method, path string, body []byte, want int, prefer string) (*resource, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if prefer != "" {
			req.Header.Set("Prefer", prefer)
		}
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
