// Package s3local starts and stops a private S3-compatible server —
// Versity's S3 gateway (versitygw) with its POSIX backend — on a free
// loopback port, for tests and benchmarks (the S3 counterpart of
// ingest/chlocal). deploy/scripts/ensure-s3.sh installs versitygw.
package s3local

import (
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment variables honoured by tests and benchmarks.
const (
	// EnvBinary points at a versitygw binary.
	EnvBinary = "EXPORTD_VERSITYGW"
	// EnvSkip=1 lets S3 tests skip, instead of fail, when no server starts.
	EnvSkip = "EXPORTD_SKIP_S3"
)

// FindBinary looks for versitygw in $EXPORTD_VERSITYGW, PATH and
// $GOPATH/bin (where ensure-s3.sh installs it).
func FindBinary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := build.Default.GOPATH
	if gp := os.Getenv("GOPATH"); gp != "" {
		gopath = filepath.SplitList(gp)[0]
	}
	p := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("versitygw not found in $EXPORTD_VERSITYGW, PATH or $GOPATH/bin (run deploy/scripts/ensure-s3.sh)")
	}
	return p, nil
}

// Options configure a server. Dir, Access and Secret are required.
type Options struct {
	Dir            string // holds root/ (the buckets) and server.log
	Access, Secret string // the only credentials the server accepts
	Binary         string // default: FindBinary
}

// Server is a running private versitygw. Its address is kept across Kill
// and Restart, so clients can reconnect.
type Server struct {
	Addr string // 127.0.0.1:port
	opts Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Pid is the running server's process id, 0 when it is not running
// (benchmarks read its CPU time).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start starts a server on a free loopback port (retrying when the port
// is taken before the server binds it).
func Start(opts Options) (*Server, error) {
	if opts.Dir == "" || opts.Access == "" || opts.Secret == "" {
		return nil, errors.New("s3local: Dir, Access and Secret are required")
	}
	if opts.Binary == "" {
		bin, err := FindBinary()
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "root"), 0o750); err != nil {
		return nil, err
	}
	s := &Server{opts: opts}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		s.Addr = ""
		if err = s.start(); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func (s *Server) start() error {
	if s.Addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		s.Addr = l.Addr().String()
		l.Close()
	}
	logf, err := os.OpenFile(filepath.Join(s.opts.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.opts.Binary, "--port", s.Addr, "--access", s.opts.Access, "--secret", s.opts.Secret, "--quiet",
		"posix", filepath.Join(s.opts.Dir, "root"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.opts.Binary, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("versitygw exited at start: %s", s.LogTail())
		default:
		}
		if resp, err := http.Get(s.Endpoint() + "/"); err == nil {
			resp.Body.Close()
			if strings.Contains(resp.Header.Get("Server"), "VERSITYGW") {
				return nil
			}
			s.Kill()
			return fmt.Errorf("another server answers on %s", s.Addr)
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("versitygw not answering on %s after 20s: %s", s.Addr, s.LogTail())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// LogTail returns the end of the server's log, for error messages.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(s.opts.Dir, "server.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Kill stops the server at once (SIGKILL) and waits for it to exit.
// Calling it on a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a killed server again on the same address and data.
func (s *Server) Restart() error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// Endpoint is the server's base URL.
func (s *Server) Endpoint() string { return "http://" + s.Addr }
