package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/server/auth"
)

// download handles GET /operations-activity-exports/{id}/download.
//
// After lookup (401, 403, 400, 404): expired (by status or by clock) → 404
// export_expired; pending or running → 409 export_not_ready; failed or
// cancelled → 409 export_failed; If-None-Match naming the ETag (or *) →
// 304; then the object is opened (missing or of the wrong size while the
// record says ready → 502: storage disagrees with the record) and a single
// byte range honoured (If-Range with another validator → whole file), 416
// when unsatisfiable. The body is streamed from storage, never loaded
// whole; the object is closed when fasthttp closes the stream.
func (s *Server) download(ctx *fasthttp.RequestCtx, rq *request, id string) {
	opCtx, cancel := s.opContext()
	defer cancel()
	p, x, e := s.lookup(opCtx, ctx, rq, id, auth.CapRead)
	if e != nil {
		s.fail(ctx, rq, e)
		return
	}
	now := s.cfg.Now()
	switch {
	case x.Status == engine.StatusExpired,
		x.Status == engine.StatusReady && !x.ExpiresAt.IsZero() && !now.Before(x.ExpiresAt):
		s.fail(ctx, rq, expired())
		return
	case x.Status == engine.StatusFailed || x.Status == engine.StatusCancelled:
		s.fail(ctx, rq, conflict(reasonExportFailed))
		return
	case x.Status != engine.StatusReady:
		s.fail(ctx, rq, conflict(reasonExportNotReady))
		return
	}
	etag := `"` + x.Checksum + `"`
	if inm := ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch); len(inm) > 0 && etagMatches(string(inm), etag) {
		ctx.Response.Header.Set(fasthttp.HeaderETag, etag)
		ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "private, no-cache")
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}

	// Concurrent downloads are bounded per caller and in all: each holds a
	// goroutine, buffers and an open file or S3 stream for as long as the
	// client reads.
	release, ok := s.downloads.acquire(p.Subject)
	if !ok {
		s.fail(ctx, rq, rateLimited(1000))
		return
	}
	streaming := false
	defer func() {
		if !streaming {
			release()
		}
	}()
	obj, err := s.cfg.Store.Open(opCtx, x.ObjectName())
	if errors.Is(err, storage.ErrNotFound) {
		if !x.ExpiresAt.IsZero() && !s.cfg.Now().Before(x.ExpiresAt) { // expired meanwhile
			s.fail(ctx, rq, expired())
			return
		}
		s.fail(ctx, rq, upstream(fmt.Errorf("artefact of ready export %s missing: %w", x.ID, err)))
		return
	}
	if err != nil {
		s.fail(ctx, rq, dependencyError(fmt.Errorf("open artefact of export %s: %w", x.ID, err)))
		return
	}
	size := obj.Size()
	if size != x.ByteSize {
		obj.Close()
		s.fail(ctx, rq, upstream(fmt.Errorf("artefact of export %s has %d bytes, record says %d", x.ID, size, x.ByteSize)))
		return
	}

	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderETag, etag)
	h.Set(fasthttp.HeaderAcceptRanges, "bytes")
	h.Set(fasthttp.HeaderCacheControl, "private, no-cache")
	off, n, status := int64(0), size, fasthttp.StatusOK
	if rh := ctx.Request.Header.Peek(fasthttp.HeaderRange); len(rh) > 0 && ifRangeHolds(ctx, etag) {
		start, length, res := parseRange(string(rh), size)
		switch res {
		case rangeUnsatisfiable:
			obj.Close()
			h.Set(fasthttp.HeaderContentRange, "bytes */"+strconv.FormatInt(size, 10))
			s.fail(ctx, rq, &apiError{status: fasthttp.StatusRequestedRangeNotSatisfiable,
				code: codeRangeNotSatisfiable, message: msgRange, reason: reasonRange})
			return
		case rangeOK:
			off, n, status = start, length, fasthttp.StatusPartialContent
			h.Set(fasthttp.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
		}
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType(engine.ContentType(x.Format, x.Compression))
	h.Set(fasthttp.HeaderContentDisposition,
		`attachment; filename="operations-activity-`+x.ID+engine.Extension(x.Format, x.Compression)+`"`)

	// The stream, not this handler, ends the request: it logs when fasthttp
	// closes it. Take over the write deadline (see the package comment).
	rq.streamed = true
	snapshot := *rq
	snapshot.status = status
	st := &objectStream{r: io.NewSectionReader(obj, off, n), obj: obj, want: n, conn: ctx.Conn(),
		stall: s.cfg.DownloadStallTimeout, window: s.cfg.DownloadRateWindow,
		minPerWindow: int64(float64(s.cfg.DownloadMinRate) * s.cfg.DownloadRateWindow.Seconds()),
		done: func(sent int64, complete bool) {
			release()
			if !complete {
				s.log.Info("download ended early", zap.String("request_id", snapshot.id),
					zap.String("export_id", snapshot.exportID), zap.Int64("sent", sent), zap.Int64("want", n))
			}
			s.observe(&snapshot, sent)
		}}
	if err := ctx.SetWriteDeadline(time.Now().Add(s.cfg.DownloadStallTimeout)); err != nil {
		st.conn = nil // no deadline control (e.g. a test connection): rely on the server's
	}
	streaming = true
	ctx.SetBodyStream(st, int(n))
}

// downloadSlots bounds concurrent downloads per caller and in all.
type downloadSlots struct {
	mu        sync.Mutex
	perCaller int
	total     int
	byCaller  map[string]int
	all       int
}

// acquire takes a slot for caller; release returns it (once).
func (d *downloadSlots) acquire(caller string) (release func(), ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.all >= d.total || d.byCaller[caller] >= d.perCaller {
		return nil, false
	}
	d.all++
	d.byCaller[caller]++
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.all--
			if d.byCaller[caller]--; d.byCaller[caller] <= 0 {
				delete(d.byCaller, caller)
			}
		})
	}, true
}

// etagMatches implements If-None-Match's weak comparison (RFC 9110 §13.1.2)
// against our strong etag: "*" or any listed tag equal to it, W/ or not.
func etagMatches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}

// ifRangeHolds reports whether a Range header may be honoured: no If-Range,
// or an If-Range naming our etag with strong comparison (a date or another
// tag means the client's copy may differ: send the whole file).
func ifRangeHolds(ctx *fasthttp.RequestCtx, etag string) bool {
	ir := ctx.Request.Header.Peek(fasthttp.HeaderIfRange)
	return len(ir) == 0 || strings.TrimSpace(string(ir)) == etag
}

// objectStream is a download body: a section of a storage object. Before
// each read it pushes the connection's write deadline forward by stall, so
// a download is cut off only when it stops moving. Close (called by
// fasthttp once the response is written or abandoned) closes the object
// and reports the request. It never touches the RequestCtx.
type objectStream struct {
	r     *io.SectionReader
	obj   storage.Object
	want  int64
	conn  net.Conn
	stall time.Duration
	// A reader that takes fewer than minPerWindow bytes in a window is
	// cut off: the stall deadline alone lets a client that reads a few
	// bytes a minute hold the download for days.
	window       time.Duration
	minPerWindow int64
	done         func(sent int64, complete bool)

	sent        int64
	windowStart time.Time
	windowSent  int64
	closed      atomic.Bool
}

// errTooSlow ends a download whose reader stays under the minimum rate.
var errTooSlow = errors.New("download below the minimum rate")

func (o *objectStream) Read(p []byte) (int, error) {
	now := time.Now()
	if o.minPerWindow > 0 {
		switch {
		case o.windowStart.IsZero():
			o.windowStart = now
		case now.Sub(o.windowStart) >= o.window:
			if o.windowSent < o.minPerWindow {
				return 0, errTooSlow
			}
			o.windowStart, o.windowSent = now, 0
		}
	}
	if o.conn != nil {
		_ = o.conn.SetWriteDeadline(now.Add(o.stall))
	}
	n, err := o.r.Read(p)
	o.sent += int64(n)
	o.windowSent += int64(n)
	return n, err
}

func (o *objectStream) Close() error {
	if o.closed.Swap(true) {
		return nil
	}
	err := o.obj.Close()
	if o.done != nil {
		o.done(o.sent, o.sent == o.want)
	}
	return err
}
