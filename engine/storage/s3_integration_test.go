package storage

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// recordingClient counts the S3 operations a store sends and can fail
// chosen ones (before they reach the server).
type recordingClient struct {
	next aws.HTTPClient
	mu   sync.Mutex
	ops  map[string]int
	fail func(op string, r *http.Request) bool
	// payloads: the x-amz-content-sha256 values each operation was sent with
	payloads map[string]map[string]bool
}

func newRecordingClient() *recordingClient {
	return &recordingClient{next: awshttp.NewBuildableClient(), ops: map[string]int{}}
}

// s3Op names the operation of a request from its method and query.
func s3Op(r *http.Request) string {
	q := r.URL.Query()
	bucketOnly := !strings.Contains(strings.Trim(r.URL.Path, "/"), "/") // path-style: /bucket or /bucket/key
	switch {
	case bucketOnly && r.Method == http.MethodPut:
		return "CreateBucket"
	case bucketOnly && r.Method == http.MethodHead:
		return "HeadBucket"
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodPut:
		return "PutObject"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodDelete:
		return "DeleteObject"
	case r.Method == http.MethodGet && q.Has("uploads"):
		return "ListMultipartUploads"
	case r.Method == http.MethodGet && q.Has("uploadId"):
		return "ListParts"
	case r.Method == http.MethodGet:
		return "GetObject"
	case r.Method == http.MethodHead:
		return "Head"
	}
	return r.Method
}

func (c *recordingClient) Do(r *http.Request) (*http.Response, error) {
	op := s3Op(r)
	c.mu.Lock()
	c.ops[op]++
	if c.payloads == nil {
		c.payloads = map[string]map[string]bool{}
	}
	if c.payloads[op] == nil {
		c.payloads[op] = map[string]bool{}
	}
	c.payloads[op][r.Header.Get("X-Amz-Content-Sha256")] = true
	fail := c.fail != nil && c.fail(op, r)
	c.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("injected failure of %s", op)
	}
	return c.next.Do(r)
}

// payloadHeaders returns the x-amz-content-sha256 values op was sent with.
func (c *recordingClient) payloadHeaders(op string) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.payloads[op])
}

func (c *recordingClient) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[op]
}

func (c *recordingClient) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops = map[string]int{}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// writeChunks writes data in chunks of random sizes, as an encoder would.
func writeChunks(t *testing.T, w Writer, data []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for len(data) > 0 {
		n := min(len(data), 1+r.IntN(256<<10))
		if m, err := w.Write(data[:n]); err != nil || m != n {
			t.Fatalf("write: %d of %d, %v", m, n, err)
		}
		data = data[n:]
	}
}

func assertNothingLeft(t *testing.T, st *S3) {
	t.Helper()
	if u := Uploads(t, st); len(u) > 0 {
		t.Errorf("incomplete multipart uploads left: %v", u)
	}
	if o := Objects(t, st); len(o) > 0 {
		t.Errorf("objects left: %v", o)
	}
}

func TestS3MultipartRoundTrip(t *testing.T) {
	srv := StartS3Server(t)
	for _, cs := range []Checksum{ChecksumWhenRequired, ChecksumWhenSupported} {
		t.Run(string(cs), func(t *testing.T) {
			ctx := context.Background()
			rc := newRecordingClient()
			cfg := srv.Config("rt-"+strings.ReplaceAll(string(cs), "_", "-"), "team/exports")
			cfg.Checksum, cfg.HTTPClient = cs, rc
			st := srv.Store(t, cfg)
			data := randomBytes(3*S3MinPartSize+12345, 7) // 4 parts, the last one short
			w, err := st.Create(ctx, "x.csv")
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, w, data)
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if got := rc.count("UploadPart"); got != 4 {
				t.Errorf("%d parts uploaded, want 4", got)
			}
			if u := Uploads(t, st); len(u) > 0 {
				t.Errorf("uploads left after commit: %v", u)
			}
			if got, want := Objects(t, st), []string{"team/exports/x.csv"}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("objects %v, want %v", got, want)
			}
			if got, want := st.Location("x.csv"), "s3://"+cfg.Bucket+"/team/exports/x.csv"; got != want {
				t.Errorf("location %s, want %s", got, want)
			}

			obj, err := st.Open(ctx, "x.csv")
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Close()
			if obj.Size() != int64(len(data)) {
				t.Fatalf("size %d, want %d", obj.Size(), len(data))
			}
			// The download path: a SectionReader read in small chunks is
			// served by one streaming GET.
			rc.reset()
			var got bytes.Buffer
			if _, err := io.CopyBuffer(&got, io.NewSectionReader(obj, 0, obj.Size()), make([]byte, 32<<10)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatal("sequential read differs from what was written")
			}
			if n := rc.count("GetObject"); n != 1 {
				t.Errorf("sequential read of %d bytes took %d GETs, want 1", len(data), n)
			}
			// Random ranges, including ones running past the end.
			r := rand.New(rand.NewPCG(3, 4))
			for i := 0; i < 40; i++ {
				off := r.Int64N(obj.Size())
				p := make([]byte, 1+r.IntN(3<<20))
				n, err := obj.ReadAt(p, off)
				end := min(off+int64(len(p)), obj.Size())
				if n != int(end-off) || (err != nil && !(errors.Is(err, io.EOF) && end == obj.Size())) {
					t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", len(p), off, n, err)
				}
				if !bytes.Equal(p[:n], data[off:end]) {
					t.Fatalf("ReadAt(%d bytes at %d): wrong bytes", len(p), off)
				}
			}
			if n, err := obj.ReadAt(make([]byte, 1), obj.Size()); n != 0 || err != io.EOF {
				t.Errorf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
			}
			// Concurrent sequential readers of different sections.
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					off := int64(g) * obj.Size() / 4
					n := obj.Size()/4 + 1
					sec, err := io.ReadAll(io.NewSectionReader(obj, off, n))
					if err != nil || !bytes.Equal(sec, data[off:min(off+n, obj.Size())]) {
						t.Errorf("concurrent reader %d: %v / wrong bytes", g, err)
					}
				})
			}
			wg.Wait()
			if err := st.Delete(ctx, "x.csv"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Open(ctx, "x.csv"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("open after delete: %v, want ErrNotFound", err)
			}
			if err := st.Delete(ctx, "x.csv"); err != nil {
				t.Fatalf("delete of a missing object: %v", err)
			}
			assertNothingLeft(t, st)
		})
	}
}

func TestS3SmallObjectsArePutWhole(t *testing.T) {
	srv := StartS3Server(t)
	rc := newRecordingClient()
	cfg := srv.Config(testBucket, "")
	cfg.HTTPClient = rc
	st := srv.Store(t, cfg)
	ctx := context.Background()
	for _, size := range []int{0, 1, 1000, S3MinPartSize} { // exactly one part is still one PutObject
		name := fmt.Sprintf("small-%d.csv.gz", size)
		data := randomBytes(size, uint64(size))
		w, err := st.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		writeChunks(t, w, data)
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		obj, err := st.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(obj, 0, obj.Size()))
		obj.Close()
		if err != nil || !bytes.Equal(got, data) || obj.Size() != int64(size) {
			t.Fatalf("%d bytes: read %d (size %d), %v", size, len(got), obj.Size(), err)
		}
		if got := st.Location(name); got != "s3://"+testBucket+"/"+name {
			t.Errorf("location %s", got)
		}
	}
	if n := rc.count("CreateMultipartUpload") + rc.count("UploadPart"); n != 0 {
		t.Errorf("%d multipart requests for objects of at most one part", n)
	}
	if n := rc.count("PutObject"); n != 4 {
		t.Errorf("%d PutObject, want 4", n)
	}
}

func TestS3AbortLeavesNothing(t *testing.T) {
	srv := StartS3Server(t)
	st := srv.Store(t, srv.Config(testBucket, "p"))
	ctx := context.Background()
	for _, size := range []int{0, 100, 2*S3MinPartSize + 1} {
		w, err := st.Create(ctx, "aborted.csv")
		if err != nil {
			t.Fatal(err)
		}
		writeChunks(t, w, randomBytes(size, 1))
		if size > S3MinPartSize {
			if u := Uploads(t, st); len(u) != 1 {
				t.Fatalf("uploads while writing: %v, want one", u)
			}
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("second abort: %v", err)
		}
		if err := w.Commit(ctx); err == nil {
			t.Fatal("commit after abort succeeded")
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatal("write after abort succeeded")
		}
		assertNothingLeft(t, st)
	}
}

func TestS3FailingWritesLeaveNothing(t *testing.T) {
	srv := StartS3Server(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		failOp string
		size   int
	}{
		{"part", "UploadPart", 4 * S3MinPartSize},
		{"complete", "CompleteMultipartUpload", 2*S3MinPartSize + 10},
		{"create", "CreateMultipartUpload", 2*S3MinPartSize + 10},
		{"put", "PutObject", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newRecordingClient()
			rc.fail = func(op string, r *http.Request) bool { // every attempt, so that retries fail too
				return op == tc.failOp && (op != "UploadPart" || r.URL.Query().Get("partNumber") == "2")
			}
			cfg := srv.Config("fail-"+tc.name, "")
			cfg.HTTPClient = rc
			st := srv.Store(t, cfg)
			w, err := st.Create(ctx, "f.csv")
			if err != nil {
				t.Fatal(err)
			}
			data := randomBytes(tc.size, 5)
			var werr error
			for len(data) > 0 && werr == nil {
				n := min(len(data), 64<<10)
				_, werr = w.Write(data[:n])
				data = data[n:]
			}
			cerr := w.Commit(ctx)
			if cerr == nil {
				t.Fatalf("commit succeeded with %s failing (write error: %v)", tc.failOp, werr)
			}
			if !strings.Contains(cerr.Error(), "injected failure of "+tc.failOp) {
				t.Errorf("commit error %q does not name the failure", cerr)
			}
			rc.mu.Lock()
			rc.fail = nil
			rc.mu.Unlock()
			assertNothingLeft(t, st)
		})
	}
}

// TestS3ServerKilledMidUpload kills the S3 server while a multipart upload
// is under way: Commit must fail, and once the server is back, Sweep must
// leave neither the upload nor an object.
func TestS3ServerKilledMidUpload(t *testing.T) {
	srv := StartS3Server(t)
	st := srv.Store(t, srv.Config(testBucket, "exports"))
	ctx := context.Background()
	w, err := st.Create(ctx, killedName)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, w, randomBytes(2*S3MinPartSize+1, 9)) // two parts in flight
	w.(*s3Writer).wg.Wait()                              // and stored: the upload has parts to leave behind
	if u := Uploads(t, st); len(u) != 1 {
		t.Fatalf("uploads before the kill: %v, want one", u)
	}
	srv.Kill()
	start := time.Now()
	var werr error
	for i := 0; i < 3*S3MinPartSize/(64<<10) && werr == nil; i++ {
		_, werr = w.Write(make([]byte, 64<<10))
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("commit succeeded with the server dead")
	} else {
		t.Logf("write error: %v; commit error after %s: %v", werr, time.Since(start).Round(time.Millisecond), err)
	}
	srv.Restart()
	// The writer could not abort its upload (the server was dead), so it
	// is there, and no longer this process's: Sweep takes it.
	if u := Uploads(t, st); len(u) != 1 {
		t.Fatalf("uploads after restart: %v, want the dangling one", u)
	}
	if n, err := st.Sweep(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep of recent uploads: %d, %v; want 0", n, err)
	}
	n, err := st.Sweep(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want 1", n, err)
	}
	assertNothingLeft(t, st)
	if _, err := st.Open(ctx, killedName); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open: %v, want ErrNotFound", err)
	}
}

// TestS3SweepSparesLiveWriters: Sweep never aborts an upload of a writer
// of this process, nor one younger than age; another replica's Sweep with
// age 0 takes it, and the writer then fails at Commit instead of exposing
// anything. Discard does the same for one object at once.
func TestS3SweepSparesLiveWriters(t *testing.T) {
	srv := StartS3Server(t)
	st := srv.Store(t, srv.Config(testBucket, "p"))
	other := srv.Store(t, srv.Config(testBucket, "p"))
	elsewhere := srv.Store(t, srv.Config(testBucket, "q"))
	ctx := context.Background()
	for _, how := range []string{"sweep", "discard"} {
		w, err := st.Create(ctx, liveName)
		if err != nil {
			t.Fatal(err)
		}
		writeChunks(t, w, randomBytes(S3MinPartSize+1, 3))
		// Let part 1 land first: versitygw, unlike AWS, lets a part that was
		// in flight during the abort bring the upload back.
		w.(*s3Writer).wg.Wait()
		if n, err := st.Sweep(ctx, 0); err != nil || n != 0 {
			t.Fatalf("own sweep: %d, %v; want 0", n, err)
		}
		if n, err := other.Sweep(ctx, time.Hour); err != nil || n != 0 {
			t.Fatalf("other's sweep with age 1h: %d, %v; want 0", n, err)
		}
		if n, err := elsewhere.Sweep(ctx, 0); err != nil || n != 0 {
			t.Fatalf("sweep of another prefix: %d, %v; want 0", n, err)
		}
		if err := elsewhere.Discard(ctx, liveName); err != nil {
			t.Fatal(err)
		}
		if err := other.Discard(ctx, liveName[:len(liveName)-1]); err != nil { // a prefix of the key, not the key
			t.Fatal(err)
		}
		if u := Uploads(t, st); len(u) != 1 {
			t.Fatalf("uploads: %v, want the live one", u)
		}
		if how == "sweep" {
			if n, err := other.Sweep(ctx, 0); err != nil || n != 1 {
				t.Fatalf("other's sweep with age 0: %d, %v; want 1", n, err)
			}
		} else if err := other.Discard(ctx, liveName); err != nil {
			t.Fatal(err)
		}
		writeChunks(t, w, randomBytes(S3MinPartSize, 4))
		if err := w.Commit(ctx); err == nil {
			t.Fatalf("%s: commit of a swept upload succeeded", how)
		}
		assertNothingLeft(t, st)
	}
	// Discard never touches a committed object.
	w, _ := st.Create(ctx, doneName)
	writeChunks(t, w, randomBytes(S3MinPartSize+1, 3))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Discard(ctx, doneName); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Open(ctx, doneName); err != nil {
		t.Fatalf("committed object after Discard: %v", err)
	}
}

func TestS3Check(t *testing.T) {
	srv := StartS3Server(t)
	ctx := context.Background()
	st := srv.Store(t, srv.Config(testBucket, "p"))
	if err := st.Check(ctx); err != nil {
		t.Fatalf("check of an existing bucket: %v", err)
	}
	missing, err := NewS3(ctx, srv.Config("no-such-bucket", "p"))
	if err != nil {
		t.Fatal(err)
	}
	if err := missing.Check(ctx); err == nil {
		t.Fatal("check of a missing bucket succeeded")
	}
	srv.Kill()
	if err := st.Check(ctx); err == nil {
		t.Fatal("check with the server dead succeeded")
	}
}

func TestS3OpenMissingAndInvalidNames(t *testing.T) {
	srv := StartS3Server(t)
	st := srv.Store(t, srv.Config(testBucket, "p"))
	ctx := context.Background()
	if _, err := st.Open(ctx, "nope.csv"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a missing object: %v, want ErrNotFound", err)
	}
	for _, name := range []string{"", "a/b", `a\b`, ".hidden"} {
		if _, err := st.Create(ctx, name); err == nil {
			t.Errorf("create %q succeeded", name)
		}
		if _, err := st.Open(ctx, name); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("open %q: %v", name, err)
		}
	}
}

// TestStorageOpenS3URL: EXPORTD_STORAGE_URL=s3://... reaches the server.
func TestStorageOpenS3URL(t *testing.T) {
	srv := StartS3Server(t)
	srv.Store(t, srv.Config(testBucket, ""))
	t.Setenv("AWS_ACCESS_KEY_ID", testS3Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testS3Secret)
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	st, err := Open("s3://" + testBucket + "/a/b/?endpoint=" + srv.Endpoint() + "&region=us-east-1&path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Check(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := st.Create(ctx, "u.csv")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("a,b\n"))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := st.Location("u.csv"), "s3://"+testBucket+"/a/b/u.csv"; got != want {
		t.Fatalf("location %s, want %s", got, want)
	}
	if _, err := st.Open(ctx, "u.csv"); err != nil {
		t.Fatal(err)
	}
}

// Object names of these tests: exportd's own form (the sweeps touch no other).
const (
	killedName = "00000000-0000-4000-8000-0000000000a1.csv.zst"
	liveName   = "00000000-0000-4000-8000-0000000000a2.csv"
	doneName   = "00000000-0000-4000-8000-0000000000a3.csv"
)

// Sweep leaves alone uploads whose keys exportd does not name, however old:
// the bucket may be shared with other writers under the same prefix.
func TestS3SweepTouchesOnlyExportKeys(t *testing.T) {
	srv := StartS3Server(t)
	st := srv.Store(t, srv.Config(testBucket, "shared"))
	ctx := context.Background()
	for _, name := range []string{"tenant-data.bin", "README.csv", "00000000-0000-4000-8000-0000000000a4", "00000000-0000-4000-8000-0000000000A5.csv"} {
		key := st.Key(name)
		if _, err := st.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(testBucket), Key: &key}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.Sweep(ctx, 0); err != nil || n != 0 {
		t.Fatalf("sweep of foreign uploads: %d, %v; want 0", n, err)
	}
	if u := Uploads(t, st); len(u) != 4 {
		t.Fatalf("uploads after the sweep: %v, want the 4 foreign ones", u)
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{{"00000000-0000-4000-8000-0000000000a4.csv", true}, {"00000000-0000-4000-8000-0000000000a4.parquet", true},
		{"00000000-0000-4000-8000-0000000000a4.csv.gz", true}, {"00000000-0000-4000-8000-0000000000a4", false},
		{"x.csv", false}, {"00000000-0000-4000-8000-0000000000a4.CSV", false}} {
		if ExportObjectName(c.name) != c.ok {
			t.Errorf("ExportObjectName(%q) = %v", c.name, !c.ok)
		}
	}
}

// Bodies go unsigned (UNSIGNED-PAYLOAD) by default on a loopback endpoint
// and signed with their SHA-256 when asked, with either checksum setting;
// the object reads back byte for byte in every combination.
func TestS3PayloadSigning(t *testing.T) {
	srv := StartS3Server(t)
	ctx := context.Background()
	for _, pl := range []Payload{"", PayloadSigned, PayloadUnsigned} {
		for _, cs := range []Checksum{ChecksumWhenRequired, ChecksumWhenSupported} {
			t.Run(fmt.Sprintf("%s-%s", cmp.Or(string(pl), "default"), cs), func(t *testing.T) {
				rc := newRecordingClient()
				cfg := srv.Config(strings.ReplaceAll(fmt.Sprintf("pl-%s-%s", cmp.Or(string(pl), "default"), cs), "_", "-"), "")
				cfg.Checksum, cfg.Payload, cfg.HTTPClient = cs, pl, rc
				st := srv.Store(t, cfg)
				want := PayloadUnsigned // a loopback endpoint
				if pl != "" {
					want = pl
				}
				if got := st.Config().Payload; got != want {
					t.Fatalf("payload %q, want %q", got, want)
				}
				big, small := randomBytes(2*S3MinPartSize+999, 3), randomBytes(1000, 4)
				for name, data := range map[string][]byte{"big.csv": big, "small.csv": small} {
					w, err := st.Create(ctx, name)
					if err != nil {
						t.Fatal(err)
					}
					writeChunks(t, w, data)
					if err := w.Commit(ctx); err != nil {
						t.Fatal(err)
					}
					obj, err := st.Open(ctx, name)
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(io.NewSectionReader(obj, 0, obj.Size()))
					obj.Close()
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("%s read back: %d bytes, %v (want %d equal bytes)", name, len(got), err, len(data))
					}
				}
				for _, op := range []string{"UploadPart", "PutObject"} {
					h := rc.payloadHeaders(op)
					unsigned := h["UNSIGNED-PAYLOAD"] || h["STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
					if len(h) == 0 || unsigned != (want == PayloadUnsigned) || (want == PayloadUnsigned && len(h) != 1) {
						t.Errorf("%s sent x-amz-content-sha256 %v with payload %s", op, h, want)
					}
				}
			})
		}
	}
}

func TestS3PayloadDefault(t *testing.T) {
	for ep, want := range map[string]Payload{
		"":                           PayloadUnsigned,
		"https://s3.example.com":     PayloadUnsigned,
		"http://127.0.0.1:7070":      PayloadUnsigned,
		"http://[::1]:7070":          PayloadUnsigned,
		"http://localhost:7070":      PayloadUnsigned,
		"http://minio.internal:9000": PayloadSigned,
		"http://10.0.0.5:9000":       PayloadSigned,
	} {
		c := S3Config{Bucket: "b", Endpoint: ep}
		c.setDefaults()
		if c.Payload != want {
			t.Errorf("endpoint %q: payload %q, want %q", ep, c.Payload, want)
		}
	}
	if _, err := ParseS3URL("s3://b?payload=maybe"); err == nil {
		t.Error("payload=maybe accepted")
	}
	if c, err := ParseS3URL("s3://b?endpoint=http://127.0.0.1:1&payload=signed"); err != nil || c.Payload != PayloadSigned {
		t.Errorf("payload=signed: %+v %v", c.Payload, err)
	}
}
