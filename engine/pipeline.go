package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
)

// Compression values (SPEC §1).
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// ValidCompression reports whether c is a supported compression.
func ValidCompression(c string) bool {
	return c == CompressionNone || c == CompressionGzip || c == CompressionZstd
}

// Extension returns the file name suffix of an artefact: ".csv" or ".jsonl"
// plus ".gz" or ".zst" for a compressed stream; ".parquet" whatever the
// compression (a Parquet file compresses its pages, SPEC §7).
func Extension(format, compression string) string {
	ext := ".csv"
	switch format {
	case FormatParquet:
		return ".parquet"
	case FormatJSONL:
		ext = ".jsonl"
	}
	switch compression {
	case CompressionGzip:
		return ext + ".gz"
	case CompressionZstd:
		return ext + ".zst"
	}
	return ext
}

// ContentType returns the media type of an artefact (SPEC §1, §7).
func ContentType(format, compression string) string {
	switch {
	case format == FormatParquet:
		return "application/vnd.apache.parquet"
	case compression == CompressionGzip:
		return "application/gzip"
	case compression == CompressionZstd:
		return "application/zstd"
	case format == FormatJSONL:
		return "application/x-ndjson"
	}
	return "text/csv; charset=utf-8"
}

// ErrRowLimit reports an export over the configured maximum of rows.
var ErrRowLimit = errors.New("row limit exceeded")

// Reader is the source of activity the pipeline drains (engine/source.ClickHouse).
// Stream blocks until the rows of q are delivered, ctx is cancelled or fn
// fails; the block passed to fn is valid only until fn returns.
type Reader interface {
	Plan(ctx context.Context, q source.Query) (*source.Plan, error)
	Stream(ctx context.Context, q source.Query, plan *source.Plan, fn func(*activity.Block) error) (source.Stats, error)
}

// Result is what an export wrote.
type Result struct {
	Rows      int64
	Bytes     int64  // bytes written to the sink (after compression)
	SHA256    string // hex SHA-256 of those bytes
	ReadBytes int64  // bytes ClickHouse reported reading
}

// Counters expose the progress of a running pipeline; safe for concurrent reads.
type Counters struct {
	Rows  atomic.Int64
	Bytes atomic.Int64
}

const (
	bufSize    = 1 << 20 // encoder hands the writer stage 1 MiB chunks
	queueDepth = 4       // chunks in flight between encoder and writer
)

// bufPool holds encoder chunks; oversized buffers are dropped on put.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, bufSize+64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 4*bufSize {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Encoding is how an export's rows become bytes: the format, the
// compression and the SPEC §7 options (columns, time zone, BOM). The zero
// value is uncompressed CSV of every column in UTC.
type Encoding struct {
	Format      string
	Compression string
	Options     Options
}

// Pipe streams the rows of q, encoded as enc says, into w. The encoder runs
// in the caller's goroutine (inside the source callback); a writer stage
// owned by Pipe compresses, hashes and writes, with at most queueDepth
// chunks between them (backpressure). maxRows > 0 caps the rows. The
// columns the encoder writes are enc.Options'; q should read just those
// (Options.Narrow).
func Pipe(ctx context.Context, r Reader, q source.Query, plan *source.Plan, enc Encoding, maxRows int64, w io.Writer, cnt *Counters) (Result, error) {
	if cnt == nil {
		cnt = &Counters{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	rowEnc, err := newEncoder(enc)
	if err != nil {
		return Result{}, err
	}
	streamCompression := enc.Compression
	if enc.Format == FormatParquet {
		streamCompression = CompressionNone // the codec is inside the file
	}
	sink := &countingWriter{w: w, h: sha256.New(), cnt: cnt}
	out, closeOut, err := compressor(streamCompression, sink)
	if err != nil {
		return Result{}, err
	}
	chunks := make(chan *[]byte, queueDepth)
	var (
		wg       sync.WaitGroup
		writeErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := range chunks {
			if writeErr == nil {
				if _, err := out.Write(*b); err != nil {
					writeErr = fmt.Errorf("%w: %w", errStorage, err)
					cancel()
				}
			}
			putBuf(b)
		}
		if writeErr == nil {
			if err := closeOut(); err != nil {
				writeErr = fmt.Errorf("%w: %w", errStorage, err)
			}
		}
	}()

	buf := getBuf()
	*buf = rowEnc.begin(*buf)
	var rows int64
	send := func() error {
		select {
		case chunks <- buf:
			buf = getBuf()
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	st, readErr := r.Stream(ctx, q, plan, func(b *activity.Block) error {
		n := b.Rows()
		if maxRows > 0 && rows+int64(n) > maxRows {
			return ErrRowLimit
		}
		// Encode in slices so a chunk stays near bufSize whatever the block size.
		const step = 1024
		for i := 0; i < n; i += step {
			var err error
			if *buf, err = rowEnc.rows(*buf, b, i, min(i+step, n)); err != nil {
				return err
			}
			if len(*buf) >= bufSize {
				if err := send(); err != nil {
					return err
				}
			}
		}
		rows += int64(n)
		cnt.Rows.Store(rows)
		return nil
	})
	if readErr == nil {
		*buf, readErr = rowEnc.end(*buf)
	}
	if readErr == nil && len(*buf) > 0 {
		readErr = send()
	}
	putBuf(buf)
	close(chunks)
	wg.Wait()
	if writeErr != nil {
		return Result{}, writeErr
	}
	if readErr != nil {
		return Result{}, readErr
	}
	return Result{Rows: rows, Bytes: sink.n, SHA256: hex.EncodeToString(sink.h.Sum(nil)), ReadBytes: st.Bytes}, nil
}

// errStorage marks failures of the destination (failure_reason storage_error).
var errStorage = errors.New("storage")

// IsStorageError reports whether err came from writing the artefact.
func IsStorageError(err error) bool { return errors.Is(err, errStorage) }

type countingWriter struct {
	w   io.Writer
	h   hash.Hash
	n   int64
	cnt *Counters
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	c.cnt.Bytes.Store(c.n)
	return n, err
}

// compressor wraps w. Output is deterministic for the same input: no gzip
// name or mtime, single-threaded zstd.
func compressor(c string, w io.Writer) (io.Writer, func() error, error) {
	switch c {
	case CompressionNone, "":
		return w, func() error { return nil }, nil
	case CompressionGzip:
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return nil, nil, err
		}
		return zw, zw.Close, nil
	case CompressionZstd:
		// SpeedFastest: the export is CPU-bound next to ClickHouse, and on
		// activity CSV it costs ~15% in ratio for about half the CPU of
		// SpeedDefault. A 4 MiB window and the low-memory mode keep the
		// encoder's state small (memory flat whatever the export size).
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(4<<20), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, nil, err
		}
		return zw, zw.Close, nil
	}
	return nil, nil, fmt.Errorf("unsupported compression %q", c)
}

// EmptyReader yields no rows: the export of a scope without activity is
// the header alone.
type EmptyReader struct{}

// Plan implements Reader.
func (EmptyReader) Plan(context.Context, source.Query) (*source.Plan, error) {
	return &source.Plan{}, nil
}

// Stream implements Reader.
func (EmptyReader) Stream(context.Context, source.Query, *source.Plan, func(*activity.Block) error) (source.Stats, error) {
	return source.Stats{}, nil
}
