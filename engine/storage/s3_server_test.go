package storage

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/exportd/exportd/engine/storage/s3local"
)

// The S3 tests run against a real S3-compatible server, Versity's S3 gateway
// (versitygw) with its POSIX backend, started per test on a free loopback
// port. deploy/scripts/ensure-s3.sh installs it; a missing binary or a
// server that does not start fails the tests unless EXPORTD_SKIP_S3=1.

// EnvSkipS3 names the variable that lets the S3 tests skip instead of fail
// when no S3 server can be started.
const EnvSkipS3 = s3local.EnvSkip

const (
	testS3Access = "exportd-test"
	testS3Secret = "exportd-test-secret-key"
	testBucket   = "exports"
)

// S3Server is a private versitygw for tests (package s3local). Exported (in
// a _test file) for the external tests of this package.
type S3Server struct {
	*s3local.Server
	t testing.TB
}

// StartS3Server starts a private S3 server for the test and stops it at
// cleanup. It fails the test when the server cannot start, or skips it
// when EXPORTD_SKIP_S3=1.
func StartS3Server(t testing.TB) *S3Server {
	t.Helper()
	srv, err := s3local.Start(s3local.Options{Dir: t.TempDir(), Access: testS3Access, Secret: testS3Secret})
	if err == nil {
		t.Cleanup(srv.Kill)
		return &S3Server{Server: srv, t: t}
	}
	if os.Getenv(EnvSkipS3) == "1" {
		t.Skipf("no S3 server (%s=1): %v", EnvSkipS3, err)
	}
	t.Fatalf("start S3 server: %v (set %s=1 to skip the S3 tests)", err, EnvSkipS3)
	return nil
}

// Restart starts the server again on the same address and data.
func (s *S3Server) Restart() {
	s.t.Helper()
	if err := s.Server.Restart(); err != nil {
		s.t.Fatalf("restart S3 server: %v", err)
	}
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
