package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
)

// The S3 store is built on aws-sdk-go-v2 rather than minio-go: it is AWS's
// own, actively maintained client, it resolves credentials through the whole
// standard AWS chain (environment, shared config and credentials files, SSO,
// web identity / IRSA, ECS and EC2 instance roles) exactly as every other AWS
// tool does, and it speaks to S3-compatible servers through BaseEndpoint and
// path-style addressing. Its one trap for S3-compatible servers, the CRC
// checksums it sends by default since early 2025, is switched off by default
// here (see Checksum).

// S3 part-size rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html):
// every part but the last is 5 MiB to 5 GiB, and an upload has at most
// 10,000 parts.
const (
	S3MinPartSize = 5 << 20
	s3MaxPartSize = 5 << 30
	s3MaxParts    = 10000
	// s3PartsPerStep: the part size doubles every 1000 parts, so 10,000
	// parts of a base size B hold B×1000×(2^10−1) ≈ 1,023,000×B bytes (7.8
	// TiB at the default 8 MiB, beyond S3's 5 TiB object limit; 4.9 TiB at
	// the 5 MiB minimum) while a small or medium object keeps small parts
	// and small buffers.
	s3PartsPerStep = 1000
)

// Checksum chooses when request checksums are computed and response
// checksums validated (the SDK's RequestChecksumCalculation and
// ResponseChecksumValidation).
type Checksum string

const (
	// ChecksumWhenRequired sends checksums only where an operation requires
	// one. It works on AWS and on S3-compatible servers that predate the
	// SDK's default CRC32 checksums (which some reject or mishandle); the
	// payload is still covered by the SigV4 payload hash on plain HTTP and
	// by TLS otherwise. The default.
	ChecksumWhenRequired Checksum = "when_required"
	// ChecksumWhenSupported sends a CRC32 with every PutObject and part
	// (the multipart upload is created with the CRC32 algorithm and the
	// part checksums are passed to CompleteMultipartUpload), as the SDK
	// does by default for AWS.
	ChecksumWhenSupported Checksum = "when_supported"
)

// Payload chooses whether the bodies of PutObject and UploadPart are
// covered by the request signature.
type Payload string

const (
	// PayloadSigned hashes every body with SHA-256 for its SigV4 signature
	// (x-amz-content-sha256): a second SHA-256 pass over the whole export
	// in exportd, and one more in the server that verifies it.
	PayloadSigned Payload = "signed"
	// PayloadUnsigned sends UNSIGNED-PAYLOAD: the headers are signed, the
	// body is not. Its integrity then rests on the transport (TLS, or
	// loopback) and, with ChecksumWhenSupported, on the CRC32 of each part.
	PayloadUnsigned Payload = "unsigned"
)

// S3Config configures an S3 store.
type S3Config struct {
	// Bucket holds the objects. Required.
	Bucket string
	// Prefix is prepended to object names: object "x.csv" is key "Prefix/x.csv"
	// (no slash is added when Prefix is empty). Leading and trailing slashes
	// are dropped.
	Prefix string
	// Endpoint is the base URL of an S3-compatible server, e.g.
	// http://127.0.0.1:7070; empty means AWS for Region.
	Endpoint string
	// Region defaults to the AWS chain's (AWS_REGION, shared config), else us-east-1.
	Region string
	// PathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key (most S3-compatible servers need it).
	PathStyle bool
	// Checksum defaults to ChecksumWhenRequired.
	Checksum Checksum
	// Payload defaults to PayloadUnsigned where the transport already
	// protects the body (an https endpoint, AWS's own, or a loopback
	// address) and to PayloadSigned for plain http to another host. On
	// this repository's 2-core bench the SHA-256 of a signed payload cost
	// exportd and versitygw CPU the export needed (bench/README.md).
	Payload Payload
	// PartSize is the size of the first 1000 parts of a multipart upload
	// (default 8 MiB, at least S3MinPartSize); it doubles every 1000 parts.
	// 5 MiB parts hold 12 MiB less in a writer's Uploads+1 buffers and were
	// as fast for 256 MiB (BenchmarkS3Write) and at 1e6 rows, but a 1e7-row
	// export to versitygw took 50.6 s with them against 25.1 s with 8 MiB
	// (versitygw's CPU 37 s against 15 s: its cost grows faster than the
	// part count), so the default stays 8 MiB.
	// Objects up to PartSize are sent with one PutObject at Commit.
	PartSize int64
	// Uploads bounds the parts one writer uploads at once (default 3). A
	// writer holds at most Uploads+1 part buffers.
	Uploads int
	// Credentials replaces the AWS default credential chain (tests, static keys).
	Credentials aws.CredentialsProvider
	// MaxAttempts bounds the SDK's attempts per request (default: the SDK's, 3).
	MaxAttempts int
	// HTTPClient sends the requests (tests wrap it to count or fail them).
	// Default: the SDK's client with a response-header timeout.
	HTTPClient aws.HTTPClient
}

func (c *S3Config) setDefaults() {
	c.Prefix = strings.Trim(c.Prefix, "/")
	if c.Checksum == "" {
		c.Checksum = ChecksumWhenRequired
	}
	if c.PartSize == 0 {
		c.PartSize = 8 << 20
	}
	if c.Payload == "" {
		c.Payload = PayloadSigned
		if transportProtected(c.Endpoint) {
			c.Payload = PayloadUnsigned
		}
	}
	if c.Uploads == 0 {
		c.Uploads = 3
	}
}

// Validate reports a configuration that cannot work.
func (c S3Config) Validate() error {
	c.setDefaults()
	switch {
	case c.Bucket == "":
		return errors.New("s3: bucket is required")
	case c.Checksum != ChecksumWhenRequired && c.Checksum != ChecksumWhenSupported:
		return fmt.Errorf("s3: checksum must be %s or %s, not %q", ChecksumWhenRequired, ChecksumWhenSupported, c.Checksum)
	case c.Payload != PayloadSigned && c.Payload != PayloadUnsigned:
		return fmt.Errorf("s3: payload must be %s or %s, not %q", PayloadSigned, PayloadUnsigned, c.Payload)
	case c.PartSize < S3MinPartSize || c.PartSize > s3MaxPartSize:
		return fmt.Errorf("s3: part size %d is outside [%d, %d]", c.PartSize, S3MinPartSize, s3MaxPartSize)
	case c.Uploads < 1 || c.Uploads > 64:
		return fmt.Errorf("s3: uploads %d is outside [1, 64]", c.Uploads)
	case c.MaxAttempts < 0:
		return errors.New("s3: max attempts must not be negative")
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("s3: endpoint %q is not an http(s) URL", c.Endpoint)
		}
	}
	return nil
}

// transportProtected reports whether bodies sent to endpoint cannot be
// altered on the way without the transport noticing: https (AWS's default
// endpoint when empty) or a loopback host.
func transportProtected(endpoint string) bool {
	if endpoint == "" {
		return true
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// ParseS3URL reads s3://bucket/prefix?endpoint=URL&region=R&path_style=true
// &checksum=when_required|when_supported&payload=signed|unsigned
// &part_size=8MiB&uploads=3 (every
// query parameter optional, unknown ones an error so that typos show).
func ParseS3URL(rawURL string) (S3Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return S3Config{}, fmt.Errorf("parse storage URL: %w", err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return S3Config{}, errors.New("parse storage URL: want s3://bucket[/prefix]")
	}
	c := S3Config{Bucket: u.Host, Prefix: u.Path}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			c.Endpoint = v
		case "region":
			c.Region = v
		case "path_style":
			c.PathStyle, err = strconv.ParseBool(v)
		case "checksum":
			c.Checksum = Checksum(v)
		case "payload":
			c.Payload = Payload(v)
		case "part_size":
			c.PartSize, err = parseSize(v)
		case "uploads":
			if c.Uploads, err = strconv.Atoi(v); err == nil && c.Uploads < 1 {
				err = errors.New("want a positive count")
			}
		default:
			return S3Config{}, fmt.Errorf("parse storage URL: unknown parameter %q", k)
		}
		if err != nil {
			return S3Config{}, fmt.Errorf("parse storage URL: %s=%q: %w", k, v, err)
		}
	}
	if err := c.Validate(); err != nil {
		return S3Config{}, fmt.Errorf("parse storage URL: %w", err)
	}
	return c, nil
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("want a positive byte count, optionally with KiB, MiB or GiB")
	}
	return n * mult, nil
}

// S3 stores objects in an S3 bucket under a key prefix. Writers stream
// multipart uploads with bounded memory; an object becomes visible only when
// its upload completes, and a failed or aborted writer aborts its upload.
// Safe for concurrent use.
type S3 struct {
	cfg    S3Config
	client *s3.Client
	pool   sync.Pool // *[]byte of cap cfg.PartSize; see getPart
	live   sync.Map  // upload ID → struct{}: uploads of this process's writers, never swept
}

var _ Store = (*S3)(nil)

// s3ResponseHeaderTimeout bounds the wait for a response once a request has
// been sent whole, so that a server that stops answering fails the request
// (and the SDK retries) instead of hanging an export. It does not limit the
// time spent sending a part or reading a body.
const s3ResponseHeaderTimeout = 2 * time.Minute

// NewS3 returns an S3 store. It loads the AWS configuration (region,
// credentials chain) but makes no request: Check does.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	opts := []func(*config.LoadOptions) error{
		config.WithLogger(logging.Nop{}), // a library never logs (the SDK would print to stderr)
		// A buildable client, so that the chain can still apply AWS_CA_BUNDLE.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.ResponseHeaderTimeout = s3ResponseHeaderTimeout
			t.MaxIdleConnsPerHost = 4 * cfg.Uploads
		})),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	if cfg.MaxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(cfg.MaxAttempts))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
		o.UsePathStyle = cfg.PathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.Checksum == ChecksumWhenSupported {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
		} else {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	return &S3{cfg: cfg, client: client}, nil
}

// bodyOptions are the per-operation options of the requests that carry an
// object's bytes (PutObject, UploadPart).
func (s *S3) bodyOptions() []func(*s3.Options) {
	if s.cfg.Payload != PayloadUnsigned {
		return nil
	}
	return []func(*s3.Options){s3.WithAPIOptions(addUnsignedPayload)}
}

// addUnsignedPayload stores UNSIGNED-PAYLOAD as the payload hash first
// thing in the finalize step. Swapping the SDK's ComputePayloadSHA256 for
// its UnsignedPayload middleware is not enough: with CRC32 checksums over
// http the checksum middleware, which runs earlier, hashes the body with
// SHA-256 itself unless a payload hash is already set
// (TestS3PayloadSigning). Over https with a trailing checksum that
// middleware replaces it with STREAMING-UNSIGNED-PAYLOAD-TRAILER, as it
// should.
func addUnsignedPayload(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("exportd:UnsignedPayload",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			return next.HandleFinalize(v4.SetPayloadHash(ctx, unsignedPayload), in)
		}), middleware.Before)
}

// unsignedPayload is SigV4's x-amz-content-sha256 for a body not signed.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// Config returns the store's configuration with defaults applied.
func (s *S3) Config() S3Config { return s.cfg }

// Client returns the underlying S3 client (tests, tools).
func (s *S3) Client() *s3.Client { return s.client }

// Key returns the object key of name.
func (s *S3) Key(name string) string {
	if s.cfg.Prefix == "" {
		return name
	}
	return s.cfg.Prefix + "/" + name
}

// keyOf validates name as File does (no separators, no leading dot) and
// returns its key.
func (s *S3) keyOf(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("invalid object name %q", name)
	}
	return s.Key(name), nil
}

// Location returns s3://bucket/prefix/name.
func (s *S3) Location(name string) string {
	return "s3://" + s.cfg.Bucket + "/" + s.Key(name)
}

// Create starts a writer; no request is made until the first part is full
// or Commit. ctx's values (not its cancellation: Commit may outlive it) are
// passed to the uploads.
func (s *S3) Create(ctx context.Context, name string) (Writer, error) {
	key, err := s.keyOf(name)
	if err != nil {
		return nil, err
	}
	return newS3Writer(ctx, s, key), nil
}

// Open reads the object's size and ETag (HeadObject); reads are ranged GETs
// pinned to that ETag, issued until Close.
func (s *S3) Open(ctx context.Context, name string) (Object, error) {
	key, err := s.keyOf(name)
	if err != nil {
		return nil, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if isNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("head object %q: %w", key, err)
	}
	return newS3Object(ctx, s, key, aws.ToString(out.ETag), aws.ToInt64(out.ContentLength)), nil
}

// Delete removes an object; a missing object is not an error.
func (s *S3) Delete(ctx context.Context, name string) error {
	key, err := s.keyOf(name)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key}); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete object %q: %w", key, err)
	}
	return nil
}

// Check reports whether the bucket exists and the credentials reach it
// (HeadBucket).
func (s *S3) Check(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.cfg.Bucket}); err != nil {
		return fmt.Errorf("head bucket %q: %w", s.cfg.Bucket, err)
	}
	return nil
}

// Sweep aborts incomplete multipart uploads under the prefix that belong to
// writers that died: uploads not of this process whose newest part (or,
// without parts, whose initiation) is older than age. A live writer uploads
// a part every PartSize bytes, so, as with File's temp files, activity is
// the sign of life. It returns the number of uploads aborted.
func (s *S3) Sweep(ctx context.Context, age time.Duration) (int, error) {
	cutoff := time.Now().Add(-age)
	prefix := s.Key("")
	in := &s3.ListMultipartUploadsInput{Bucket: &s.cfg.Bucket, Prefix: &prefix}
	n := 0
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return n, fmt.Errorf("list multipart uploads under %q: %w", prefix, err)
		}
		for _, u := range out.Uploads {
			id, key := aws.ToString(u.UploadId), aws.ToString(u.Key)
			if !ExportObjectName(strings.TrimPrefix(key, prefix)) {
				continue // not a name exportd writes: someone else's upload
			}
			if _, ok := s.live.Load(id); ok || aws.ToTime(u.Initiated).After(cutoff) {
				continue
			}
			last, err := s.lastPartTime(ctx, key, id)
			if err != nil {
				return n, err
			}
			if last.After(cutoff) {
				continue
			}
			if err := s.abortUpload(ctx, key, id); err != nil {
				return n, err
			}
			n++
		}
		if !aws.ToBool(out.IsTruncated) {
			return n, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// Discard aborts the incomplete multipart uploads of name, whoever started
// them: the engine calls it for an export whose writer is known to be gone.
// A committed object is never touched; a writer that was in fact still
// alive fails at its next part or at Commit (its upload is gone).
func (s *S3) Discard(ctx context.Context, name string) error {
	key, err := s.keyOf(name)
	if err != nil {
		return err
	}
	in := &s3.ListMultipartUploadsInput{Bucket: &s.cfg.Bucket, Prefix: &key}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("list multipart uploads of %q: %w", key, err)
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) != key {
				continue
			}
			if err := s.abortUpload(ctx, key, aws.ToString(u.UploadId)); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// lastPartTime returns the newest LastModified of an upload's parts (zero
// without parts or when the upload is already gone).
func (s *S3) lastPartTime(ctx context.Context, key, id string) (time.Time, error) {
	var last time.Time
	in := &s3.ListPartsInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: &id}
	for {
		out, err := s.client.ListParts(ctx, in)
		if isNotFound(err) {
			return last, nil
		}
		if err != nil {
			return last, fmt.Errorf("list parts of upload %s of %q: %w", id, key, err)
		}
		for _, p := range out.Parts {
			if t := aws.ToTime(p.LastModified); t.After(last) {
				last = t
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return last, nil
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
}

func (s *S3) abortUpload(ctx context.Context, key, id string) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: &id})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("abort multipart upload %s of %q: %w", id, key, err)
	}
	return nil
}

// isNotFound reports S3's answers for a missing object, bucket or upload.
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NotFound", "NoSuchKey", "NoSuchUpload":
			return true
		case "NoSuchBucket":
			return false // a misconfiguration, not a missing object
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// contentType is the Content-Type stored with an object, from the engine's
// names (<id>.csv or .jsonl, plus .gz or .zst; <id>.parquet).
func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".parquet"):
		return "application/vnd.apache.parquet"
	case strings.HasSuffix(name, ".jsonl"):
		return "application/x-ndjson"
	case strings.HasSuffix(name, ".gz"):
		return "application/gzip"
	case strings.HasSuffix(name, ".zst"):
		return "application/zstd"
	case strings.HasSuffix(name, ".csv"):
		return "text/csv; charset=utf-8"
	}
	return "application/octet-stream"
}

// List calls fn with the names of committed objects directly under the
// prefix last modified more than grace ago, a listing page at a time (the
// reconciler's input). It stops at fn's first error.
func (s *S3) List(ctx context.Context, grace time.Duration, fn func(names []string) error) error {
	cutoff := time.Now().Add(-grace)
	prefix := s.Key("")
	delim := "/"
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: &prefix, Delimiter: &delim})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list objects under %q: %w", prefix, err)
		}
		names := make([]string, 0, len(out.Contents))
		for _, o := range out.Contents {
			if aws.ToTime(o.LastModified).After(cutoff) {
				continue
			}
			names = append(names, strings.TrimPrefix(aws.ToString(o.Key), prefix))
		}
		if len(names) > 0 {
			if err := fn(names); err != nil {
				return err
			}
		}
	}
	return nil
}

// ExportObjectName reports whether name is one exportd gives an artefact:
// a canonical lowercase UUID, then an extension of lowercase letters and
// dots (".csv", ".csv.gz", ".jsonl.zst", ".parquet"). Sweeps and the
// reconciler touch nothing else in a shared bucket or directory.
func ExportObjectName(name string) bool {
	id, ext, ok := strings.Cut(name, ".")
	if !ok || ext == "" || len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f'):
			return false
		}
	}
	for i := 0; i < len(ext); i++ {
		if c := ext[i]; !(c >= 'a' && c <= 'z' || c == '.') {
			return false
		}
	}
	return true
}
