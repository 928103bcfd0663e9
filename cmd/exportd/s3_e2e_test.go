package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/engine/storage/s3local"
)

// The S3 end-to-end test runs `exportd serve` against a private versitygw
// (Versity's S3 gateway, POSIX backend) started with engine/storage/s3local.

const (
	e2eS3Access = "exportd-e2e"
	e2eS3Secret = "exportd-e2e-secret-key"
	e2eS3Bucket = "exportd-e2e"
)

// e2eS3Server is a private versitygw on a loopback port (package s3local).
type e2eS3Server struct{ *s3local.Server }

// startE2ES3 starts versitygw for the test (killed at cleanup) and creates
// the bucket. A missing binary or a server that does not start fails the
// test, or skips it when EXPORTD_SKIP_S3=1.
func startE2ES3(t *testing.T) *e2eS3Server {
	t.Helper()
	srv, err := s3local.Start(s3local.Options{Dir: t.TempDir(), Access: e2eS3Access, Secret: e2eS3Secret})
	if err == nil {
		t.Cleanup(srv.Kill)
		s := &e2eS3Server{srv}
		s.createBucket(t)
		return s
	}
	if os.Getenv(s3local.EnvSkip) == "1" {
		t.Skipf("no S3 server (EXPORTD_SKIP_S3=1): %v", err)
	}
	t.Fatalf("start S3 server: %v (set EXPORTD_SKIP_S3=1 to skip the S3 tests)", err)
	return nil
}

func (s *e2eS3Server) kill() { s.Kill() }

func (s *e2eS3Server) restart(t *testing.T) {
	t.Helper()
	if err := s.Restart(); err != nil {
		t.Fatalf("restart S3 server: %v", err)
	}
}

func (s *e2eS3Server) endpoint() string { return s.Endpoint() }

func (s *e2eS3Server) createBucket(t *testing.T) {
	t.Helper()
	st, err := storage.NewS3(context.Background(), storage.S3Config{Bucket: e2eS3Bucket, Endpoint: s.endpoint(),
		Region: "us-east-1", PathStyle: true, MaxAttempts: 2,
		Credentials: credentials.NewStaticCredentialsProvider(e2eS3Access, e2eS3Secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bucket := e2eS3Bucket
	if _, err := st.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
}

// storageURL is the EXPORTD_STORAGE_URL of the bucket under prefix.
func (s *e2eS3Server) storageURL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1&path_style=true", e2eS3Bucket, prefix, url.QueryEscape(s.endpoint()))
}

// serveEnv is what `exportd serve` needs to use the bucket: the storage URL
// and the credentials (read by the AWS chain from the environment).
func (s *e2eS3Server) serveEnv(prefix string) []string {
	return []string{
		"EXPORTD_STORAGE_URL=" + s.storageURL(prefix),
		"AWS_ACCESS_KEY_ID=" + e2eS3Access, "AWS_SECRET_ACCESS_KEY=" + e2eS3Secret, "AWS_SESSION_TOKEN=",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
	}
}

// waitReadyz polls /readyz until it answers want, for up to timeout.
func (s *service) waitReadyz(t *testing.T, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	last := 0
	var lastBody []byte
	for time.Since(start) < timeout {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			lastBody, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			last = resp.StatusCode
			if last == want {
				return time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/readyz did not answer %d within %v (last %d %s)", want, timeout, last, lastBody)
	return 0
}

func TestE2EAPIWithS3(t *testing.T) {
	srv := startE2ES3(t)
	mustExportd(t, nil, "migrate")
	mustExportd(t, nil, "ingest", "--generate", "30000", "--enterprises", "1", "--seed", "71")
	ent := strings.TrimSpace(mustExportd(t, nil, "ingest", "--print-enterprises", "--enterprises", "1", "--seed", "71").stdout)
	s := startServe(t, srv.serveEnv("exports")...)
	// The last EXPORTD_STORAGE_URL in the environment wins over startServe's
	// file:// default (os/exec keeps the last duplicate): storage_location
	// below shows which store took the export.
	tok := s.token(t, ent+":subtree", "operations_reports.create", "operations_reports.read")
	from, to := "2026-01-01T00:00:00Z", "2026-06-30T23:59:59.999Z"
	wantPrefix := "s3://" + e2eS3Bucket + "/exports/"

	create := func(compression string) (resource, string) {
		t.Helper()
		code, _, body := s.do(t, "POST", "/operations-activity-exports", tok, createBody(ent, from, to, compression), "Prefer", "wait=60")
		if code != 201 {
			t.Fatalf("create %s: %d %s", compression, code, body)
		}
		x := decodeResource(t, body)
		var loc struct {
			StorageLocation string `json:"storage_location"`
		}
		_ = json.Unmarshal(body, &loc)
		if x.Status != "ready" {
			t.Fatalf("create %s: not ready: %s", compression, body)
		}
		if !strings.HasPrefix(loc.StorageLocation, wantPrefix) {
			t.Fatalf("create %s: storage_location %q does not start with %q", compression, loc.StorageLocation, wantPrefix)
		}
		return x, loc.StorageLocation
	}
	download := func(x resource) []byte {
		t.Helper()
		code, hdr, data := s.do(t, "GET", "/operations-activity-exports/"+x.ID+"/download", tok, "")
		if code != 200 || int64(len(data)) != x.ByteSize || hdr.Get("ETag") != `"`+x.Checksum+`"` {
			t.Fatalf("download %s: %d, %d bytes (byte_size %d), etag %q", x.ID, code, len(data), x.ByteSize, hdr.Get("ETag"))
		}
		if cl := hdr.Get("Content-Length"); cl != strconv.FormatInt(x.ByteSize, 10) {
			t.Fatalf("download %s: Content-Length %q, byte_size %d", x.ID, cl, x.ByteSize)
		}
		return data
	}

	// Uncompressed: create, get, download equals the source rows.
	x, loc := create("none")
	if code, _, b := s.do(t, "GET", "/operations-activity-exports/"+x.ID, tok, ""); code != 200 || decodeResource(t, b).Checksum != x.Checksum {
		t.Fatalf("get: %d %s", code, b)
	}
	data := download(x)
	fromMs := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	toMs := time.Date(2026, 6, 30, 23, 59, 59, 999e6, time.UTC).UnixMilli()
	want := sourceRows(t, ent, fromMs, toMs, "")
	if len(want) < 1000 {
		t.Fatalf("only %d source rows for %s: the generator did not load the data", len(want), ent)
	}
	compareRows(t, parseCSV(t, data), want)
	if int64(len(want)) != x.RowCount {
		t.Fatalf("row_count %d, source %d", x.RowCount, len(want))
	}
	t.Logf("%s: %d rows, %d bytes", loc, x.RowCount, x.ByteSize)

	// Range and conditional requests (ranged reads of the object).
	code, hdr, b := s.do(t, "GET", "/operations-activity-exports/"+x.ID+"/download", tok, "", "Range", "bytes=1000-4999")
	if code != 206 || !bytes.Equal(b, data[1000:5000]) {
		t.Fatalf("range: %d, %d bytes", code, len(b))
	}
	if cr := hdr.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-4999/%d", x.ByteSize) {
		t.Fatalf("range: Content-Range %q", cr)
	}
	if code, _, _ := s.do(t, "GET", "/operations-activity-exports/"+x.ID+"/download", tok, "", "If-None-Match", `"`+x.Checksum+`"`); code != 304 {
		t.Fatalf("if-none-match: %d", code)
	}

	// Compressed exports are ready and decompress to the same CSV.
	gz, _ := create("gzip")
	zr, err := gzip.NewReader(bytes.NewReader(download(gz)))
	if err != nil {
		t.Fatalf("gzip export: %v", err)
	}
	if plain, err := io.ReadAll(zr); err != nil || !bytes.Equal(plain, data) {
		t.Fatalf("gzip export: %d bytes (err %v), want the %d bytes of the uncompressed export", len(plain), err, len(data))
	}
	zs, _ := create("zstd")
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := dec.DecodeAll(download(zs), nil)
	dec.Close()
	if err != nil || !bytes.Equal(plain, data) {
		t.Fatalf("zstd export: %d bytes (err %v), want the %d bytes of the uncompressed export", len(plain), err, len(data))
	}

	// Readiness follows the bucket: down with the server, back with it.
	s.waitReadyz(t, 200, 5*time.Second)
	srv.kill()
	took := s.waitReadyz(t, 503, 8*time.Second)
	t.Logf("/readyz 503 %v after the S3 server was killed", took.Round(time.Millisecond))
	srv.restart(t)
	took = s.waitReadyz(t, 200, 8*time.Second)
	t.Logf("/readyz 200 %v after the S3 server restarted", took.Round(time.Millisecond))
	if got := download(x); !bytes.Equal(got, data) {
		t.Fatalf("download after the restart differs")
	}
}
