package storage

import (
	"context"
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
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The S3 tests run against a real S3-compatible server, Versity's S3 gateway
// (versitygw) with its POSIX backend, started per test on a free loopback
// port. deploy/scripts/ensure-s3.sh installs it; a missing binary or a
// server that does not start fails the tests unless EXPORTD_SKIP_S3=1.

// EnvSkipS3 names the variable that lets the S3 tests skip instead of fail
// when no S3 server can be started.
const EnvSkipS3 = "EXPORTD_SKIP_S3"

// EnvVersityGW names the variable that points the tests at a versitygw binary.
const EnvVersityGW = "EXPORTD_VERSITYGW"

const (
	testS3Access = "exportd-test"
	testS3Secret = "exportd-test-secret-key"
	testBucket   = "exports"
)

// S3Server is a private versitygw for tests. Exported (in a _test file) for
// the external tests of this package.
type S3Server struct {
	t    testing.TB
	bin  string
	dir  string // holds root/ (the buckets) and server.log
	Addr string // 127.0.0.1:port, kept across Kill and Restart

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func findVersityGW() (string, error) {
	if p := os.Getenv(EnvVersityGW); p != "" {
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

// StartS3Server starts a private S3 server for the test and stops it at
// cleanup. It fails the test when the server cannot start, or skips it
// when EXPORTD_SKIP_S3=1.
func StartS3Server(t testing.TB) *S3Server {
	t.Helper()
	bin, err := findVersityGW()
	if err == nil {
		srv := &S3Server{t: t, bin: bin, dir: t.TempDir()}
		if err = os.MkdirAll(filepath.Join(srv.dir, "root"), 0o750); err == nil {
			for attempt := 0; attempt < 3; attempt++ { // a free port can be taken before the server binds it
				srv.Addr = ""
				if err = srv.start(); err == nil {
					t.Cleanup(srv.Kill)
					return srv
				}
			}
		}
	}
	if os.Getenv(EnvSkipS3) == "1" {
		t.Skipf("no S3 server (%s=1): %v", EnvSkipS3, err)
	}
	t.Fatalf("start S3 server: %v (set %s=1 to skip the S3 tests)", err, EnvSkipS3)
	return nil
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *S3Server) start() error {
	if s.Addr == "" {
		addr, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		s.Addr = addr
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "--port", s.Addr, "--access", testS3Access, "--secret", testS3Secret, "--quiet",
		"posix", filepath.Join(s.dir, "root"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("versitygw exited at start: %s", s.logTail())
		default:
		}
		if resp, err := http.Get("http://" + s.Addr + "/"); err == nil {
			resp.Body.Close()
			if strings.Contains(resp.Header.Get("Server"), "VERSITYGW") {
				return nil
			}
			s.Kill()
			return fmt.Errorf("another server answers on %s", s.Addr)
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("versitygw not answering on %s after 20s: %s", s.Addr, s.logTail())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *S3Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Kill stops the server at once (SIGKILL) and waits for it to exit.
func (s *S3Server) Kill() {
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

// Restart starts the server again on the same address and data.
func (s *S3Server) Restart() {
	s.t.Helper()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("restart S3 server: %v", err)
}

// Endpoint is the server's base URL.
func (s *S3Server) Endpoint() string { return "http://" + s.Addr }

// Config returns a store configuration for a bucket of the server, with
// test credentials and the smallest part size S3 allows.
func (s *S3Server) Config(bucket, prefix string) S3Config {
	return S3Config{Bucket: bucket, Prefix: prefix, Endpoint: s.Endpoint(), Region: "us-east-1", PathStyle: true,
		PartSize: S3MinPartSize, Uploads: 2, MaxAttempts: 2,
		Credentials: credentials.NewStaticCredentialsProvider(testS3Access, testS3Secret, "")}
}

// Store creates bucket (if missing) and returns a store for it.
func (s *S3Server) Store(t testing.TB, cfg S3Config) *S3 {
	t.Helper()
	st, err := NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := st.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &cfg.Bucket}); err != nil {
		if _, err := st.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &cfg.Bucket}); err != nil {
			t.Fatalf("create bucket %s: %v", cfg.Bucket, err)
		}
	}
	return st
}

// Uploads lists the incomplete multipart uploads in the store's bucket
// (any prefix).
func Uploads(t testing.TB, st *S3) []string {
	t.Helper()
	out, err := st.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &st.cfg.Bucket})
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	return keys
}

// Objects lists the objects in the store's bucket (any prefix).
func Objects(t testing.TB, st *S3) []string {
	t.Helper()
	out, err := st.client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &st.cfg.Bucket})
	if err != nil {
		t.Fatalf("list objects: %v", err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}
