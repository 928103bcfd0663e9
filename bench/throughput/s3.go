package main

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/ingest/chlocal"
)

// The S3 contender: a second exportd serve whose storage is a bucket of a
// private S3-compatible server, Versity's versitygw with its POSIX backend
// (installed by deploy/scripts/ensure-s3.sh), started once per harness run
// on a loopback port with its data under the temporary directory, as the
// storage tests start it (engine/storage/s3_server_test.go).

const (
	s3Access = "exportd-bench"
	s3Secret = "exportd-bench-secret-key"
	s3Bucket = "exportd-bench"
)

// findVersityGW looks for versitygw where ensure-s3.sh and the tests do:
// $EXPORTD_VERSITYGW, PATH, then $GOPATH/bin.
func findVersityGW() (string, error) {
	if p := os.Getenv("EXPORTD_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("versitygw not found: $EXPORTD_VERSITYGW: %w", err)
		}
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
		return "", errors.New("versitygw not found in $EXPORTD_VERSITYGW, PATH or $GOPATH/bin")
	}
	return p, nil
}

// s3Server is the private versitygw of a harness run.
type s3Server struct {
	bin     string
	dir     string // root/ holds the buckets; server.log
	addr    string // 127.0.0.1:port
	cmd     *exec.Cmd
	done    chan struct{}
	client  *s3.Client
	logPath string
}

// startS3 starts versitygw under h.tmp/s3 and creates the bucket.
func (h *harness) startS3(ctx context.Context) (*s3Server, error) {
	s := &s3Server{bin: h.versitygw, dir: filepath.Join(h.tmp, "s3")}
	s.logPath = filepath.Join(s.dir, "server.log")
	if err := os.MkdirAll(filepath.Join(s.dir, "root"), 0o755); err != nil {
		return nil, err
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken before the server binds it
		if err = s.start(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	st, err := storage.NewS3(ctx, storage.S3Config{Bucket: s3Bucket, Endpoint: s.endpoint(), Region: "us-east-1",
		PathStyle: true, MaxAttempts: 2, Credentials: credentials.NewStaticCredentialsProvider(s3Access, s3Secret, "")})
	if err != nil {
		s.stop()
		return nil, err
	}
	s.client = st.Client()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(cctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
		s.stop()
		return nil, fmt.Errorf("create bucket %s on versitygw: %w", s3Bucket, err)
	}
	return s, nil
}

func (s *s3Server) start(ctx context.Context) error {
	port, err := chlocal.FreePort()
	if err != nil {
		return err
	}
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	s.cmd = command(ctx, nil, s.bin, "--port", s.addr, "--access", s3Access, "--secret", s3Secret, "--quiet",
		"posix", filepath.Join(s.dir, "root"))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("versitygw exited at start:\n%s", indent(tail(s.logPath)))
		case <-ctx.Done():
			s.stop()
			return ctx.Err()
		default:
		}
		if resp, err := client.Get(s.endpoint() + "/"); err == nil {
			resp.Body.Close()
			if strings.Contains(resp.Header.Get("Server"), "VERSITYGW") {
				return nil
			}
			s.stop()
			return fmt.Errorf("another server answers on %s", s.addr)
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("versitygw not answering on %s after 20s:\n%s", s.addr, indent(tail(s.logPath)))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop ends versitygw (SIGTERM, then SIGKILL) and waits for it.
func (s *s3Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
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
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *s3Server) endpoint() string { return "http://" + s.addr }

// serveEnv points an exportd serve at the bucket under prefix: the storage
// URL and the credentials, which the AWS chain reads from the environment.
func (s *s3Server) serveEnv(prefix string) []string {
	return []string{
		"EXPORTD_STORAGE_URL=s3://" + s3Bucket + "/" + prefix + "?endpoint=" + url.QueryEscape(s.endpoint()) +
			"&region=us-east-1&path_style=true",
		"AWS_ACCESS_KEY_ID=" + s3Access, "AWS_SECRET_ACCESS_KEY=" + s3Secret, "AWS_SESSION_TOKEN=",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
	}
}

// checkAndDelete verifies that the object at location (s3://bucket/key)
// holds size bytes, then deletes it (untimed) so that the runs do not fill
// the disk.
func (s *s3Server) checkAndDelete(ctx context.Context, location string, size int64) error {
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "s3" || u.Host != s3Bucket {
		return fmt.Errorf("storage_location %q is not an s3://%s/ URL", location, s3Bucket)
	}
	key := strings.TrimPrefix(u.Path, "/")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := s.client.HeadObject(cctx, &s3.HeadObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("head %s: %w", location, err)
	}
	if n := aws.ToInt64(out.ContentLength); n != size {
		return fmt.Errorf("%s has %d bytes, byte_size says %d", location, n, size)
	}
	if _, err := s.client.DeleteObject(cctx, &s3.DeleteObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("delete %s: %w", location, err)
	}
	return nil
}
