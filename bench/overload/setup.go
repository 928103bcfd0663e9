package main

import (
	"github.com/exportd/exportd/bench/internal/procstat"

	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/google/uuid"

	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/engine/pgstore/pglocal"
	"github.com/exportd/exportd/ingest/chlocal"
)

// env is the system under test: a private ClickHouse with the data set and one `exportd serve`.
type env struct {
	dir         string // exports (the storage exportd writes to, on disk)
	memDir      string // ClickHouse's data and exportd's log, in memory where possible
	keep        bool
	ch          *chlocal.Server
	pgStop      func() // the private PostgreSQL (control plane)
	serve       *exec.Cmd
	served      chan struct{} // closed when serve exits
	serveErr    error
	base, admin string // http://127.0.0.1:port of the API and of /metrics
	token       string
	enterprises []string
}

// setUp starts everything. On error, the returned env (if not nil) must still be torn down.
func setUp(ctx context.Context, cfg config, logf func(string, ...any)) (*env, error) {
	exportd, err := filepath.Abs(cfg.exportd)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(exportd); err != nil {
		return nil, fmt.Errorf("exportd binary: %w (run make build)", err)
	}
	dir, err := os.MkdirTemp(cfg.tmpRoot, "exportd-overload-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, keep: cfg.keep}
	logf("work directory %s", dir)

	if e.memDir, err = os.MkdirTemp(cfg.memRoot, "exportd-overload-"); err != nil {
		return e, err
	}
	start := time.Now()
	e.ch, err = chlocal.Start(ctx, chlocal.Options{Dir: filepath.Join(e.memDir, "clickhouse")})
	if err != nil {
		return e, fmt.Errorf("start ClickHouse: %w", err)
	}
	logf("ClickHouse on %s in %.1fs, data and exportd's log in %s", e.ch.TCPAddr, time.Since(start).Seconds(), e.memDir)

	pgDSN, pgStop, err := pglocal.ForTests(ctx)
	if err != nil {
		return e, fmt.Errorf("start PostgreSQL: %w", err)
	}
	e.pgStop = pgStop
	key := filepath.Join(dir, "signing-key.pem")
	toolEnv := []string{"EXPORTD_CLICKHOUSE_DSN=" + e.ch.DSN(), "EXPORTD_POSTGRES_DSN=" + pgDSN, "EXPORTD_SIGNING_KEY=" + key}
	if _, err := runTool(ctx, toolEnv, exportd, "migrate"); err != nil {
		return e, err
	}
	ents, seed := strconv.Itoa(cfg.enterprises), strconv.FormatInt(cfg.seed, 10)
	out, err := runTool(ctx, toolEnv, exportd, "ingest", "--print-enterprises", "--enterprises", ents, "--seed", seed)
	if err != nil {
		return e, err
	}
	e.enterprises = strings.Fields(out)
	if len(e.enterprises) != cfg.enterprises {
		return e, fmt.Errorf("exportd ingest --print-enterprises printed %d refs, want %d", len(e.enterprises), cfg.enterprises)
	}
	start = time.Now()
	if _, err := runTool(ctx, toolEnv, exportd, "ingest", "--generate", strconv.FormatInt(cfg.rows, 10),
		"--enterprises", ents, "--seed", seed); err != nil {
		return e, err
	}
	logf("generated %d rows for %d enterprises in %.1fs", cfg.rows, cfg.enterprises, time.Since(start).Seconds())
	if err := e.optimize(ctx); err != nil {
		return e, err
	}

	args := []string{"token", "--sub", "users/" + uuid.NewString(), "--ttl", "1h",
		"--capability", "operations_reports.create", "--capability", "operations_reports.read"}
	for _, ent := range e.enterprises {
		args = append(args, "--scope", ent+":subtree")
	}
	if out, err = runTool(ctx, toolEnv, exportd, args...); err != nil {
		return e, err
	}
	e.token = strings.TrimSpace(out)

	if err := e.startServe(ctx, cfg, exportd, toolEnv); err != nil {
		return e, err
	}
	return e, nil
}

// optimize merges the freshly inserted parts, so that background merges do not disturb the
// measurements.
func (e *env) optimize(ctx context.Context) error {
	chCfg, err := chconn.ParseDSN(e.ch.DSN())
	if err != nil {
		return err
	}
	c, err := chCfg.Dial(ctx)
	if err != nil {
		return fmt.Errorf("dial ClickHouse: %w", err)
	}
	defer c.Close()
	if err := c.Do(ctx, ch.Query{Body: "OPTIMIZE TABLE operations_activity FINAL"}); err != nil {
		return fmt.Errorf("optimize operations_activity: %w", err)
	}
	return nil
}

func (e *env) startServe(ctx context.Context, cfg config, exportd string, toolEnv []string) error {
	httpPort, err := chlocal.FreePort()
	if err != nil {
		return err
	}
	adminPort, err := chlocal.FreePort()
	if err != nil {
		return err
	}
	exports := filepath.Join(e.dir, "exports")
	if err := os.MkdirAll(exports, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(e.logPath())
	if err != nil {
		return err
	}
	e.base = "http://127.0.0.1:" + strconv.Itoa(httpPort)
	e.admin = "http://127.0.0.1:" + strconv.Itoa(adminPort)
	cmd := exec.Command(exportd, "serve")
	cmd.Env = append(os.Environ(), toolEnv...)
	cmd.Env = append(cmd.Env,
		"EXPORTD_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(httpPort),
		"EXPORTD_ADMIN_ADDR=127.0.0.1:"+strconv.Itoa(adminPort),
		"EXPORTD_STORAGE_URL=file://"+exports,
		// One caller sends every create: its rate limit must not be what sheds.
		"EXPORTD_RATE_LIMIT=1000", "EXPORTD_RATE_BURST=1000",
		"EXPORTD_MAX_EXPORTS="+strconv.Itoa(cfg.maxExports),
		"EXPORTD_SHUTDOWN_GRACE=5s",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start exportd serve: %w", err)
	}
	e.serve, e.served = cmd, make(chan struct{})
	go func() { // owned by env: tearDown waits for served
		e.serveErr = cmd.Wait()
		logFile.Close()
		close(e.served)
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-e.served:
			return fmt.Errorf("exportd serve exited at start: %v (see %s)", e.serveErr, logFile.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(e.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("exportd serve not ready after 30s (see %s)", logFile.Name())
		}
	}
}

// tearDown stops exportd (SIGTERM, then SIGKILL after 15s) and ClickHouse, and removes the work
// directory unless told to keep it.
func (e *env) tearDown(logf func(string, ...any)) {
	start := time.Now()
	defer func() { logf("torn down in %.1fs", time.Since(start).Seconds()) }()
	if e.serve != nil {
		e.serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.served:
		case <-time.After(15 * time.Second):
			e.serve.Process.Kill()
			<-e.served
		}
	}
	logf("exportd stopped after %.1fs", time.Since(start).Seconds())
	if e.ch != nil {
		if err := e.ch.Stop(); err != nil {
			logf("stop ClickHouse: %v", err)
		}
	}
	logf("ClickHouse stopped after %.1fs", time.Since(start).Seconds())
	if e.pgStop != nil {
		e.pgStop()
	}
	if e.keep {
		logf("kept %s and %s", e.dir, e.memDir)
		return
	}
	for _, d := range []string{e.dir, e.memDir} {
		if d == "" {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			logf("remove %s: %v", d, err)
		}
	}
}

// defaultMemRoot is where ClickHouse keeps its data and exportd its log: in memory (/dev/shm)
// when the machine has it. Every export appends a few rows to the export records, and each insert
// is a part of some fifty files: a run leaves about 100,000 files, which took minutes to delete
// from a disk shared with other work, while the page cache holds the data either way (ClickHouse
// does not fsync parts by default). exportd logs a line per request; written to a file on a disk
// that other work keeps busy, a log write can block the request for as long as the kernel
// throttles dirty pages, which a service logging to a pipe never sees. The exports themselves
// stay on disk (-tmp), fsync and all, as exportd's file storage writes them.
func defaultMemRoot() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "exportd-overload-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// clickHousePID finds the private ClickHouse's process by its config path, which lies in memDir;
// "" if not found.
func (e *env) clickHousePID() string {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte(e.memDir)) && bytes.Contains(cmd, []byte("clickhouse")) {
			return d.Name()
		}
	}
	return ""
}

// logPath is exportd serve's log file.
func (e *env) logPath() string { return filepath.Join(e.memDir, "serve.log") }

// pid is exportd serve's process id.
func (e *env) pid() int { return e.serve.Process.Pid }

// runTool runs an exportd subcommand to completion and returns its stdout.
func runTool(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("exportd %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// rssBytes reads VmRSS of pid from /proc.
func rssBytes(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest) // "123456 kB"
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuSeconds is the user plus system CPU time of pid ("self" for the harness) so far.
func cpuSeconds(pid string) (float64, error) { return procstat.CPUSeconds(pid) }

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpus() int { return runtime.NumCPU() }
