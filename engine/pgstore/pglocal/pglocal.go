// Package pglocal starts and stops a private PostgreSQL server: its own data
// directory, a free loopback port and a private socket directory. Tests,
// `make run` and the benchmarks use it, as ingest/chlocal does for
// ClickHouse, so that nothing depends on a system-wide service.
//
// PostgreSQL refuses to run as root; when this process is root the server
// (and initdb) run as the "postgres" user through runuser(1), and the
// directories are handed to that user.
package pglocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure a private server.
type Options struct {
	// Dir holds the data directory, socket and log. Required. Its parents
	// must be traversable by the postgres user when running as root.
	Dir string
	// Port defaults to a free loopback port.
	Port int
	// Database is created after start (default "exportd").
	Database string
	// Detach starts the server in its own session so it outlives this
	// process (`make run`); its pid is in Dir/data/postmaster.pid.
	Detach bool
	// Durable keeps fsync on (default off: test data is disposable).
	Durable bool
	// StartTimeout bounds the wait for the server (default 60s).
	StartTimeout time.Duration
}

// Server is a running private PostgreSQL.
type Server struct {
	Dir  string
	Addr string
	db   string
	cmd  *exec.Cmd
	done chan struct{}
}

// ErrNoBinary reports that PostgreSQL's server programs were not found.
var ErrNoBinary = errors.New("PostgreSQL server programs not found (install Debian's postgresql package)")

// BinDir returns the newest /usr/lib/postgresql/<v>/bin holding initdb and
// postgres, or the directory of an initdb in PATH.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
	}
	return "", ErrNoBinary
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// FreePort returns a currently free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start initialises the data directory when it is new and starts the
// server, returning once the database accepts connections.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("pglocal: Dir is required")
	}
	if opts.Database == "" {
		opts.Database = "exportd"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	for _, d := range []string{dir, sock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	uid, gid, asRoot, err := runAs()
	if err != nil {
		return nil, err
	}
	if asRoot {
		for _, d := range []string{dir, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, fmt.Errorf("hand %s to postgres: %w", d, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		out, err := command(ctx, asRoot, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
			"--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("initdb %s: %w: %s", data, err, tail(out))
		}
	}
	if opts.Port == 0 {
		if opts.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	args := []string{"-D", data, "-p", strconv.Itoa(opts.Port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", "-c", "shared_buffers=128MB"}
	if !opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// The server must not die with the caller's context: Stop ends it.
	cmd := command(context.Background(), asRoot, filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if opts.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{Dir: dir, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)), db: opts.Database, cmd: cmd, done: make(chan struct{})}
	if opts.Detach {
		// The server outlives this process (devch stop-pg ends it by its
		// pid file): no Wait, whose error on a released process would read
		// as the server's exit. done then never closes; a server that fails
		// to start shows as waitReady's timeout, its log in the error.
		_ = cmd.Process.Release()
	} else {
		go func() { _ = cmd.Wait(); close(s.done) }()
	}
	if err := s.waitReady(ctx, opts.StartTimeout); err != nil {
		s.Kill()
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return nil, fmt.Errorf("postgres did not start on %s: %w: %s", s.Addr, err, tail(log))
	}
	return s, nil
}

func runAs() (uid, gid int, asRoot bool, err error) {
	if os.Geteuid() != 0 {
		return 0, 0, false, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, false, fmt.Errorf("running as root needs the postgres user (Debian's postgresql package creates it): %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, true, nil
}

func command(ctx context.Context, asRoot bool, name string, args ...string) *exec.Cmd {
	if asRoot {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("server exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		last = s.ensureDatabase(ctx)
		if last == nil {
			return nil
		}
	}
	return fmt.Errorf("timed out: %w", last)
}

func (s *Server) ensureDatabase(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, "postgres://postgres@"+s.Addr+"/postgres?sslmode=disable")
	if err != nil {
		return err
	}
	defer c.Close(cctx)
	var n int
	if err := c.QueryRow(cctx, "SELECT count(*) FROM pg_database WHERE datname = $1", s.db).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := c.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{s.db}.Sanitize()); err != nil {
			return err
		}
	}
	return nil
}

// DSN is the URL of the server's database.
func (s *Server) DSN() string {
	return "postgres://postgres@" + s.Addr + "/" + s.db + "?sslmode=disable"
}

// Stop shuts the server down (fast mode) and waits for it.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.Kill()
	}
	return nil
}

// Kill ends the server at once (SIGKILL).
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// ForTests returns the DSN of EXPORTD_TEST_POSTGRES_DSN when set, else starts
// a private server in a fresh directory; stop ends it and removes the
// directory. It fails (never skips) when no server can be had.
func ForTests(ctx context.Context) (dsn string, stop func(), err error) {
	if dsn := os.Getenv("EXPORTD_TEST_POSTGRES_DSN"); dsn != "" {
		return dsn, func() {}, nil
	}
	// Not t.TempDir: its 0700 parents keep the postgres user out.
	dir, err := os.MkdirTemp("", "exportd-pg-")
	if err != nil {
		return "", nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", nil, err
	}
	s, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return s.DSN(), func() { _ = s.Stop(); os.RemoveAll(dir) }, nil
}
