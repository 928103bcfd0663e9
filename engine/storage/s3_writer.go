package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3CleanupTimeout bounds the abort (and delete) requests that clean up
// after a failed or aborted writer; they run on a fresh context because the
// writer's own may be the thing that was cancelled.
const s3CleanupTimeout = 30 * time.Second

var errWriterDone = errors.New("write to a committed or aborted writer")

// s3PartSize returns the size of part n (1-based): base for parts 1-1000,
// doubling every 1000 parts after that, at most 5 GiB. 10,000 parts then
// always reach S3's 5 TiB object limit (see s3PartsPerStep).
func s3PartSize(base int64, n int32) int64 {
	step := (n - 1) / s3PartsPerStep
	return min(base<<step, s3MaxPartSize)
}

// getPart returns an empty buffer with the capacity of part n: pooled for
// base-sized parts, allocated for the larger parts of very large objects.
func (s *S3) getPart(n int32) []byte {
	size := s3PartSize(s.cfg.PartSize, n)
	if size == s.cfg.PartSize {
		if p, ok := s.pool.Get().(*[]byte); ok {
			return (*p)[:0]
		}
	}
	return make([]byte, 0, size)
}

// putPart returns a buffer to the pool; larger buffers are dropped so that
// one huge export does not pin gigabytes.
func (s *S3) putPart(b []byte) {
	if cap(b) != int(s.cfg.PartSize) {
		return
	}
	b = b[:0]
	s.pool.Put(&b)
}

// s3Writer streams an object as a multipart upload. The caller's goroutine
// fills one part buffer at a time; a full buffer is handed to an upload
// goroutine (at most Uploads at once: Write blocks for a free slot, which is
// the backpressure on the export). An object that never fills a part is
// sent with one PutObject at Commit. The writer owns its upload goroutines
// and waits for them in Commit and Abort.
type s3Writer struct {
	s   *S3
	key string
	// ctx carries the uploads: the values of Create's context without its
	// cancellation, cancelled by Abort, by a failed part, or by Commit's
	// context ending.
	ctx    context.Context
	cancel context.CancelFunc

	// Owned by the caller's goroutine.
	buf      []byte // part being filled; nil before the first byte of a part
	next     int32  // number of the part buf becomes
	uploadID string // "" until the first part is sent
	done     bool
	werr     error // sticky error of Write: a later Commit returns it
	sem      chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex
	parts []types.CompletedPart // index = part number - 1
	err   error                 // first failed part
}

func newS3Writer(ctx context.Context, s *S3, key string) *s3Writer {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &s3Writer{s: s, key: key, ctx: wctx, cancel: cancel, next: 1, sem: make(chan struct{}, s.cfg.Uploads)}
}

// Write copies p into part buffers, starting the upload of each full part.
// It blocks while Uploads parts are in flight. After an error (its own or a
// failed part upload) every Write and Commit fail.
func (w *s3Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errWriterDone
	}
	if w.werr == nil {
		w.werr = w.failure()
	}
	if w.werr != nil {
		return 0, w.werr
	}
	written := 0
	for len(p) > 0 {
		// Flush lazily, when more bytes arrive for a full buffer, so that an
		// object of exactly one part is still a single PutObject.
		if w.buf != nil && len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				w.werr = err
				return written, err
			}
		}
		if w.buf == nil {
			if w.next > s3MaxParts {
				w.werr = fmt.Errorf("object %q exceeds %d parts", w.key, s3MaxParts)
				return written, w.werr
			}
			w.buf = w.s.getPart(w.next)
		}
		n := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		written += n
	}
	return written, nil
}

// failure returns the first failed part upload, if any.
func (w *s3Writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// flush hands the current buffer to an upload goroutine, creating the
// multipart upload first if needed.
func (w *s3Writer) flush() error {
	if w.uploadID == "" {
		in := &s3.CreateMultipartUploadInput{Bucket: &w.s.cfg.Bucket, Key: &w.key, ContentType: aws.String(contentType(w.key))}
		if w.s.cfg.Checksum == ChecksumWhenSupported {
			in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
		}
		out, err := w.s.client.CreateMultipartUpload(w.ctx, in)
		if err != nil {
			return fmt.Errorf("create multipart upload of %q: %w", w.key, err)
		}
		w.uploadID = aws.ToString(out.UploadId)
		w.s.live.Store(w.uploadID, struct{}{})
	}
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		if err := w.failure(); err != nil {
			return err
		}
		return fmt.Errorf("upload of %q: %w", w.key, w.ctx.Err())
	}
	buf, n := w.buf, w.next
	w.buf, w.next = nil, w.next+1
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		part, err := w.uploadPart(n, buf)
		w.s.putPart(buf)
		<-w.sem
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = err
				w.cancel() // stop the other parts: the upload is lost
			}
			return
		}
		for len(w.parts) < int(n) {
			w.parts = append(w.parts, types.CompletedPart{})
		}
		w.parts[n-1] = part
	}()
	return nil
}

func (w *s3Writer) uploadPart(n int32, buf []byte) (types.CompletedPart, error) {
	in := &s3.UploadPartInput{Bucket: &w.s.cfg.Bucket, Key: &w.key, UploadId: &w.uploadID, PartNumber: aws.Int32(n),
		Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf)))}
	if w.s.cfg.Checksum == ChecksumWhenSupported {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := w.s.client.UploadPart(w.ctx, in, w.s.bodyOptions()...)
	if err != nil {
		return types.CompletedPart{}, fmt.Errorf("upload part %d of %q: %w", n, w.key, err)
	}
	part := types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag}
	if w.s.cfg.Checksum == ChecksumWhenSupported {
		part.ChecksumCRC32 = out.ChecksumCRC32
	}
	return part, nil
}

// Commit sends what is buffered and makes the object visible: one
// PutObject for an object smaller than a part, else the last part and
// CompleteMultipartUpload after every part has succeeded. On any failure the
// upload is aborted, a possibly stored object deleted, and the error
// returned. If ctx ends, the uploads are cancelled.
func (w *s3Writer) Commit(ctx context.Context) error {
	if w.done {
		return errors.New("commit of a finished writer")
	}
	w.done = true
	defer w.release()
	stop := context.AfterFunc(ctx, w.cancel)
	defer stop()
	err := w.werr
	if err == nil && w.uploadID == "" {
		if err = w.putObject(ctx); err != nil {
			w.cleanup(true)
		}
		return err
	}
	if err == nil && len(w.buf) > 0 {
		err = w.flush()
	}
	w.wg.Wait()
	if err == nil {
		err = w.failure()
	}
	if err == nil {
		if err = w.complete(ctx); err != nil {
			// The upload may have completed even though the answer was lost:
			// delete the object as well, a failed export leaves nothing.
			w.cleanup(true)
			return err
		}
		w.s.live.Delete(w.uploadID)
		return nil
	}
	w.cleanup(false)
	return err
}

func (w *s3Writer) putObject(ctx context.Context) error {
	in := &s3.PutObjectInput{Bucket: &w.s.cfg.Bucket, Key: &w.key, Body: bytes.NewReader(w.buf),
		ContentLength: aws.Int64(int64(len(w.buf))), ContentType: aws.String(contentType(w.key))}
	if _, err := w.s.client.PutObject(ctx, in, w.s.bodyOptions()...); err != nil {
		return fmt.Errorf("put object %q: %w", w.key, err)
	}
	return nil
}

func (w *s3Writer) complete(ctx context.Context) error {
	w.mu.Lock()
	parts := w.parts
	w.mu.Unlock()
	// Every part succeeded (the caller checked failure after waiting), so
	// each must be recorded; a hole would complete a wrong object.
	if len(parts) != int(w.next-1) {
		return fmt.Errorf("BUG: %d parts of %q recorded, %d sent", len(parts), w.key, w.next-1)
	}
	for i, p := range parts {
		if aws.ToInt32(p.PartNumber) != int32(i+1) {
			return fmt.Errorf("BUG: part %d of %q missing at completion", i+1, w.key)
		}
	}
	_, err := w.s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &w.s.cfg.Bucket,
		Key: &w.key, UploadId: &w.uploadID, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return fmt.Errorf("complete multipart upload %s of %q (%d parts): %w", w.uploadID, w.key, len(parts), err)
	}
	return nil
}

// Abort cancels the part uploads, waits for them and aborts the multipart
// upload. An abort that fails leaves the upload to Sweep.
func (w *s3Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	defer w.release()
	w.cancel()
	w.wg.Wait()
	return w.cleanup(false)
}

// cleanup aborts the multipart upload, if one was started, and with
// deleteObject deletes the key too (a PutObject or CompleteMultipartUpload
// whose answer was lost may have stored the object). It runs on a fresh
// context; the caller has waited for the part uploads. An abort that fails
// leaves the upload to Sweep, which is then free to take it.
func (w *s3Writer) cleanup(deleteObject bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), s3CleanupTimeout)
	defer cancel()
	var errs []error
	if w.uploadID != "" {
		errs = append(errs, w.s.abortUpload(ctx, w.key, w.uploadID))
		w.s.live.Delete(w.uploadID)
	}
	if deleteObject {
		if _, err := w.s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.s.cfg.Bucket, Key: &w.key}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete object %q: %w", w.key, err))
		}
	}
	return errors.Join(errs...)
}

// release returns the part buffer and ends the uploads' context.
func (w *s3Writer) release() {
	w.cancel()
	if w.buf != nil {
		w.s.putPart(w.buf)
		w.buf = nil
	}
}
