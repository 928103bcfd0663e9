package main

import (
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

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/engine/pgstore/pglocal"
	"github.com/exportd/exportd/ingest/chlocal"
)

// env is the system under test: one private PostgreSQL and ClickHouse, the exportd binary, a
// token, and two deployments on them, one per history size.
type env struct {
	dir      string // work directory: everything below it is removed at the end
	keep     bool
	exportd  string
	key      string // signing key file shared by every replica
	pg       *pglocal.Server
	ch       *chlocal.Server
	token    string   // reads as the large enterprise: subtree scope on it alone
	multi    string   // the large enterprise and the creators: creates, and the many-scope list
	large    string   // the large enterprise
	small    []string // the small enterprises
	creators []string // small enterprises the multi token covers: the creates' scopes
	deps     []*deployment
	replicas []*replica // running, of any deployment
	nextID   int
}

// deployment is one control plane: its own PostgreSQL database (on the shared server), its own
// storage directory, and the replicas that run on them. The two sizes are two deployments side by
// side, so that their requests can be interleaved: whatever else loads the machine then weighs
// on both sizes alike.
type deployment struct {
	name    string // "small" or "large"
	db      string
	exports string
	pool    *pgxpool.Pool
	store   *pgstore.Store
	gen     *generator
}

func (e *env) dsn(d *deployment) string {
	return "postgres://postgres@" + e.pg.Addr + "/" + d.db + "?sslmode=disable"
}

// setUp starts everything but the replicas. On error, the returned env (if not nil) must still be
// torn down.
func setUp(ctx context.Context, cfg config, logf func(string, ...any)) (*env, error) {
	dir, err := os.MkdirTemp(cfg.tmpRoot, "exportd-records-")
	if err != nil {
		return nil, err
	}
	// Not 0700: PostgreSQL runs as the postgres user when the harness is root.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	e := &env{dir: dir, keep: cfg.keep, key: filepath.Join(dir, "signing-key.pem")}
	logf("work directory %s", dir)

	if e.exportd = cfg.exportd; e.exportd == "" {
		e.exportd = filepath.Join(dir, "exportd")
		start := time.Now()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", e.exportd, "./cmd/exportd").CombinedOutput()
		if err != nil {
			return e, fmt.Errorf("go build ./cmd/exportd (run from the module root): %w: %s", err, out)
		}
		logf("built %s in %.1fs", e.exportd, time.Since(start).Seconds())
	} else if e.exportd, err = filepath.Abs(e.exportd); err != nil {
		return e, err
	}

	start := time.Now()
	e.pg, err = pglocal.Start(ctx, pglocal.Options{Dir: filepath.Join(dir, "postgres")})
	if err != nil {
		return e, fmt.Errorf("start PostgreSQL: %w", err)
	}
	logf("PostgreSQL on %s in %.1fs", e.pg.Addr, time.Since(start).Seconds())
	start = time.Now()
	e.ch, err = chlocal.Start(ctx, chlocal.Options{Dir: filepath.Join(dir, "clickhouse")})
	if err != nil {
		return e, fmt.Errorf("start ClickHouse: %w", err)
	}
	logf("ClickHouse on %s in %.1fs", e.ch.TCPAddr, time.Since(start).Seconds())

	admin, err := pgx.Connect(ctx, e.pg.DSN())
	if err != nil {
		return e, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer admin.Close(context.Background())
	for _, name := range []string{"small", "large"} {
		d := &deployment{name: name, db: "exportd_" + name, exports: filepath.Join(dir, "exports-"+name)}
		e.deps = append(e.deps, d)
		if err := os.MkdirAll(d.exports, 0o755); err != nil {
			return e, err
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{d.db}.Sanitize()); err != nil {
			return e, fmt.Errorf("create database %s: %w", d.db, err)
		}
		if out, err := e.tool(ctx, d, "migrate"); err != nil {
			return e, err
		} else if s := strings.TrimSpace(out); s != "" {
			logf("exportd migrate (%s): %s", d.db, strings.ReplaceAll(s, "\n", "; "))
		}
		if d.pool, err = pgstore.Open(ctx, e.dsn(d)); err != nil {
			return e, err
		}
		var table *string
		if err := d.pool.QueryRow(ctx, "SELECT to_regclass('operations_activity_exports')::text").Scan(&table); err != nil {
			return e, fmt.Errorf("look for the records table: %w", err)
		}
		if table == nil {
			return e, fmt.Errorf("exportd migrate did not create operations_activity_exports in PostgreSQL (is EXPORTD_POSTGRES_DSN wired into cmd/exportd?)")
		}
		d.store = pgstore.New(d.pool)
	}

	e.large = "enterprises/" + uuid.NewString()
	e.small = make([]string, cfg.enterprises)
	for i := range e.small {
		e.small[i] = "enterprises/" + uuid.NewString()
	}
	// Two callers of one user: one that sees the large enterprise only (the reads), and one that
	// also covers a few small enterprises (the creates; a token stays under 8 KiB).
	e.creators = e.small[:min(len(e.small), 16)]
	args := []string{"token", "--sub", "users/" + uuid.NewString(), "--ttl", (cfg.timeout + time.Hour).String(),
		"--capability", "operations_reports.read", "--capability", "operations_reports.create", "--scope", e.large + ":subtree"}
	out, err := e.tool(ctx, e.deps[0], args...)
	if err != nil {
		return e, err
	}
	e.token = strings.TrimSpace(out)
	for _, ent := range e.creators {
		args = append(args, "--scope", ent+":subtree")
	}
	if out, err = e.tool(ctx, e.deps[0], args...); err != nil {
		return e, err
	}
	e.multi = strings.TrimSpace(out)
	for i, d := range e.deps {
		d.gen = newGenerator(cfg, e, d, uint64(i))
	}
	return e, nil
}

// toolEnv is the environment every exportd process of deployment d gets.
func (e *env) toolEnv(d *deployment) []string {
	return []string{"EXPORTD_POSTGRES_DSN=" + e.dsn(d), "EXPORTD_CLICKHOUSE_DSN=" + e.ch.DSN(),
		"EXPORTD_SIGNING_KEY=" + e.key, "EXPORTD_STORAGE_URL=file://" + d.exports}
}

// tool runs an exportd subcommand of deployment d to completion and returns its stdout.
func (e *env) tool(ctx context.Context, d *deployment, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.exportd, args...)
	cmd.Env = append(os.Environ(), e.toolEnv(d)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("exportd %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// replica is one `exportd serve`.
type replica struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process exits
	err     error
	base    string // http://127.0.0.1:port
	logPath string
}

func (r *replica) pid() int { return r.cmd.Process.Pid }

// startReplica starts one more `exportd serve` of deployment d and waits until /readyz answers
// 200.
func (e *env) startReplica(ctx context.Context, cfg config, d *deployment) (*replica, error) {
	httpPort, err := chlocal.FreePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := chlocal.FreePort()
	if err != nil {
		return nil, err
	}
	e.nextID++
	name := d.name + "-replica-" + strconv.Itoa(e.nextID)
	r := &replica{name: name, base: "http://127.0.0.1:" + strconv.Itoa(httpPort), logPath: filepath.Join(e.dir, name+".log"),
		done: make(chan struct{})}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.exportd, "serve")
	cmd.Env = append(os.Environ(), e.toolEnv(d)...)
	cmd.Env = append(cmd.Env,
		"EXPORTD_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(httpPort),
		"EXPORTD_ADMIN_ADDR=127.0.0.1:"+strconv.Itoa(adminPort),
		"EXPORTD_REPLICA_ID="+name,
		// One caller sends every create: neither its rate limit nor the fairness caps may be
		// what the creates/s figure measures.
		"EXPORTD_RATE_LIMIT=100000", "EXPORTD_RATE_BURST=100000",
		"EXPORTD_MAX_EXPORTS="+strconv.Itoa(cfg.maxExports),
		"EXPORTD_MAX_EXPORTS_PER_ENTERPRISE=1000", "EXPORTD_MAX_PENDING_PER_ENTERPRISE=100000",
		"EXPORTD_SHUTDOWN_GRACE=10s",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start exportd serve: %w", err)
	}
	r.cmd = cmd
	e.replicas = append(e.replicas, r)
	go func() { // owned by env: stopReplica and tearDown wait for done
		r.err = cmd.Wait()
		logFile.Close()
		close(r.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-r.done:
			return nil, fmt.Errorf("%s exited at start: %v (see %s): %s", name, r.err, r.logPath, tailFile(r.logPath))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(r.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready after 60s (see %s)", name, r.logPath)
		}
	}
}

// stopReplica sends SIGTERM and waits (SIGKILL after 30s); it returns how long the replica took
// to exit.
func (e *env) stopReplica(r *replica) time.Duration {
	start := time.Now()
	select {
	case <-r.done:
		return 0
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	for i, x := range e.replicas {
		if x == r {
			e.replicas = append(e.replicas[:i], e.replicas[i+1:]...)
			break
		}
	}
	return time.Since(start)
}

// tearDown stops the replicas, ClickHouse and PostgreSQL, and removes the work directory unless
// told to keep it.
func (e *env) tearDown(logf func(string, ...any)) {
	start := time.Now()
	for len(e.replicas) > 0 {
		e.stopReplica(e.replicas[0])
	}
	for _, d := range e.deps {
		if d.pool != nil {
			d.pool.Close()
		}
	}
	if e.ch != nil {
		if err := e.ch.Stop(); err != nil {
			logf("stop ClickHouse: %v", err)
		}
	}
	if e.pg != nil {
		if err := e.pg.Stop(); err != nil {
			logf("stop PostgreSQL: %v", err)
		}
	}
	if e.keep {
		logf("kept %s", e.dir)
	} else if err := os.RemoveAll(e.dir); err != nil {
		logf("remove %s: %v", e.dir, err)
	}
	logf("torn down in %.1fs", time.Since(start).Seconds())
}

// versions names what ran: the commit, Go, PostgreSQL and ClickHouse.
func (e *env) versions(ctx context.Context) map[string]string {
	v := map[string]string{"go": runtime.Version()}
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		v["commit"] = strings.TrimSpace(string(out))
	}
	var pg string
	if err := e.deps[0].pool.QueryRow(ctx, "SHOW server_version").Scan(&pg); err == nil {
		v["postgresql"] = pg
	}
	if out, err := exec.CommandContext(ctx, "clickhouse-server", "--version").Output(); err == nil {
		v["clickhouse"] = strings.TrimSpace(string(out))
	}
	if out, err := e.tool(ctx, e.deps[0], "version"); err == nil {
		v["exportd"] = strings.TrimSpace(out)
	}
	return v
}

// rssBytes reads VmRSS of pid from /proc.
func rssBytes(pid int) (int64, error) {
	return procStatus(pid, "VmRSS:")
}

// procStatus reads one "kB" field of /proc/pid/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, field); ok {
			fields := strings.Fields(rest) // "123456 kB"
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

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

// tailFile is the end of a log, for an error message.
func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}

// countLines counts the lines of a log that contain each of subs.
func countLines(path string, subs ...string) map[string]int {
	out := make(map[string]int, len(subs))
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		for _, s := range subs {
			if bytes.Contains(sc.Bytes(), []byte(s)) {
				out[s]++
			}
		}
	}
	return out
}
