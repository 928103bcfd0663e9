package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/engine/storage/s3local"
)

// The S3 contender: a second exportd serve whose storage is a bucket of a
// private S3-compatible server, Versity's versitygw with its POSIX backend
// (installed by deploy/scripts/ensure-s3.sh), started once per harness run
// on a loopback port with its data under the temporary directory
// (engine/storage/s3local).

const (
	s3Access = "exportd-bench"
	s3Secret = "exportd-bench-secret-key"
	s3Bucket = "exportd-bench"
)

// findVersityGW looks for versitygw where ensure-s3.sh and the tests do.
func findVersityGW() (string, error) { return s3local.FindBinary() }

// s3Server is the private versitygw of a harness run.
type s3Server struct {
	*s3local.Server
	client *s3.Client
}

// startS3 starts versitygw under h.tmp/s3 and creates the bucket.
func (h *harness) startS3(ctx context.Context) (*s3Server, error) {
	srv, err := s3local.Start(s3local.Options{Dir: filepath.Join(h.tmp, "s3"), Access: s3Access, Secret: s3Secret, Binary: h.versitygw})
	if err != nil {
		return nil, err
	}
	s := &s3Server{Server: srv}
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

// stop ends versitygw and waits for it.
func (s *s3Server) stop() { s.Kill() }

func (s *s3Server) endpoint() string { return s.Endpoint() }

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
