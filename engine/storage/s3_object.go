package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// s3MaxSkip is how far ahead of the open stream a read may start and still
// be served by reading and discarding the gap rather than by a new GET.
const s3MaxSkip = 256 << 10

// ErrObjectChanged reports that an object was replaced while it was being
// read (its ETag no longer matches the one seen at Open).
var ErrObjectChanged = errors.New("object changed while being read")

// s3Object reads a committed object with ranged GETs. A reader that goes
// forward (an io.SectionReader over the download) is served by one
// streaming GET, opened at the first read's offset and running to the end of
// the object; a read elsewhere reopens it there. A ReadAt that comes while
// another holds the stream gets a GET of exactly its own range, so
// concurrent readers never wait for each other. Every GET is pinned to the
// ETag seen at Open.
type s3Object struct {
	s    *S3
	key  string
	etag string
	size int64
	// ctx carries the GETs until Close (the context given to Open may end
	// as soon as the handler that opened the object returns).
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards the stream
	body   io.ReadCloser
	pos    int64 // object offset of body's next byte
	closed bool
}

func newS3Object(ctx context.Context, s *S3, key, etag string, size int64) *s3Object {
	octx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &s3Object{s: s, key: key, etag: etag, size: size, ctx: octx, cancel: cancel}
}

func (o *s3Object) Size() int64 { return o.size }

// ReadAt reads len(p) bytes at off, or up to the end of the object and
// io.EOF. Safe for concurrent use.
func (o *s3Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %q at negative offset %d", o.key, off)
	}
	if off >= o.size {
		return 0, io.EOF
	}
	want := p
	if rest := o.size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	var n int
	var err error
	// TryLock rather than Lock: a second reader would make the stream seek
	// back and forth; it is better served by a GET of its own.
	if o.mu.TryLock() {
		n, err = o.readStream(want, off)
		o.mu.Unlock()
	} else {
		n, err = o.readRange(want, off)
	}
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

// readStream serves p from the streaming GET, (re)opening it at off when it
// is elsewhere. A stream that breaks (a dropped connection, a server's idle
// timeout while a slow client held the download) is reopened once at the
// offset reached. o.mu is held.
func (o *s3Object) readStream(p []byte, off int64) (int, error) {
	if o.closed {
		return 0, fmt.Errorf("read %q: object closed", o.key)
	}
	n := 0
	for retried := false; ; retried = true {
		if o.body != nil && off > o.pos && off-o.pos <= s3MaxSkip {
			skipped, err := io.CopyN(io.Discard, o.body, off-o.pos)
			o.pos += skipped
			if err != nil {
				o.dropStream()
			}
		}
		if o.body == nil || o.pos != off {
			o.dropStream()
			body, err := o.get(off, 0)
			if err != nil {
				return n, err
			}
			o.body, o.pos = body, off
		}
		m, err := io.ReadFull(o.body, p[n:])
		n, off, o.pos = n+m, off+int64(m), o.pos+int64(m)
		if err == nil {
			if o.pos == o.size {
				o.dropStream()
			}
			return n, nil
		}
		o.dropStream()
		if retried || o.ctx.Err() != nil {
			return n, fmt.Errorf("read %q at %d: %w", o.key, off, err)
		}
	}
}

// readRange serves p with a GET of exactly its range.
func (o *s3Object) readRange(p []byte, off int64) (int, error) {
	body, err := o.get(off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, p)
	if err != nil {
		return n, fmt.Errorf("read %q at %d: %w", o.key, off+int64(n), err)
	}
	return n, nil
}

// get opens a GET of n bytes at off, or of the rest of the object when n is 0.
func (o *s3Object) get(off, n int64) (io.ReadCloser, error) {
	rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
	if n > 0 {
		rng += strconv.FormatInt(off+n-1, 10)
	}
	in := &s3.GetObjectInput{Bucket: &o.s.cfg.Bucket, Key: &o.key, Range: &rng}
	if o.etag != "" {
		in.IfMatch = aws.String(o.etag)
	}
	out, err := o.s.client.GetObject(o.ctx, in)
	if err != nil {
		var api smithy.APIError
		switch {
		case isNotFound(err):
			return nil, fmt.Errorf("get %q: %w", o.key, ErrNotFound)
		case errors.As(err, &api) && api.ErrorCode() == "PreconditionFailed":
			return nil, fmt.Errorf("get %q: %w", o.key, ErrObjectChanged)
		}
		return nil, fmt.Errorf("get %q %s: %w", o.key, rng, err)
	}
	return out.Body, nil
}

// dropStream closes the streaming GET, if open. o.mu is held.
func (o *s3Object) dropStream() {
	if o.body != nil {
		o.body.Close()
		o.body = nil
	}
}

// Close ends every GET of the object: it cancels them first, so that a read
// blocked on the network returns, then closes the stream.
func (o *s3Object) Close() error {
	o.cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.dropStream()
	return nil
}
