// Package server is the fasthttp front end of exportd: routing, request
// decoding and validation, error → status mapping, download streaming and
// health (SPEC §1). Bearer tokens and coverage live in server/auth.
//
// # Timeouts
//
// fasthttp's timeouts are server-wide; the routes need different ones:
//
//   - ReadTimeout (15s) bounds reading one request, headers and body. The
//     only body is a create request of at most 64 KiB.
//   - WriteTimeout (30s) bounds writing a JSON response. It is armed by
//     fasthttp after the handler returns, so the create handler's wait
//     (Prefer: wait, up to 60s) does not count against it.
//   - Downloads can legitimately take longer than any fixed bound. Their
//     handler takes over the connection's write deadline and the body
//     stream pushes it forward before every chunk (DownloadStallTimeout,
//     60s): a download may last as long as it keeps moving, while a client
//     that stops reading is cut off. fasthttp clears a handler-set
//     deadline once the response is written.
//   - Every ClickHouse or storage call made for a request runs under its own
//     DependencyTimeout (30s) context derived from context.Background(),
//     never from the RequestCtx, and ends before the handler returns.
//   - ReadBufferSize (16 KiB) bounds the request line plus headers (431
//     beyond); bearer tokens are at most 8 KiB.
//
// # Readings where SPEC is silent
//
//   - Create checks run in a fixed order (see Server.create): 401, 403
//     missing_capability, 400 (body, then Idempotency-Key, then Prefer),
//     idempotent replay or 409, 503 shutting_down, 429, 422, 403
//     scope_not_covered, submit. The body's own order is on decodeCreate.
//   - Duplicate JSON keys, at any depth, are invalid_json (the document is
//     not I-JSON), not unknown_field. null is a wrong type
//     (invalid_field_value), for the optional compression too. The
//     Content-Type of a create is not checked: the body must be JSON.
//   - An invalid Prefer wait (not a whole number 0-60) and an invalid
//     Idempotency-Key are 400 invalid_field_value, details.field naming the
//     header. Unknown preferences are ignored (RFC 7240).
//   - Idempotency compares the normalised request (member order,
//     whitespace, explicit default compression, "+00:00" vs "Z" do not
//     matter); a replay is not rate limited and is served while draining.
//   - The resource's own timestamps are whole seconds, like the seed; the
//     requested dates keep their precision, normalised to UTC "Z".
//   - Ids must be canonical lowercase UUIDs (else 400 invalid_export_id).
//     Lists hold 1-100 items (default 20); page tokens are bound to the
//     caller that got them.
//   - Downloads: multi-range and malformed Range headers are ignored (200,
//     whole file); If-Range honours only our ETag; If-None-Match → 304.
//     HEAD is not served (405).
//   - Unknown routes are 404 with code not_found; wrong methods 405 with
//     Allow; 416 uses code range_not_satisfiable.
package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/server/admission"
	"github.com/exportd/exportd/server/auth"
)

// ScopeResolver finds the parents of client and account scopes
// (engine.Scopes, on ClickHouse): every distinct (enterprise, client) pair
// the scope's activity names.
type ScopeResolver interface {
	ScopeParents(ctx context.Context, kind, ref string) ([][2]string, error)
	Ping(ctx context.Context) error
}

// KeyStore reads idempotency keys (engine/pgstore, on PostgreSQL): the fast
// replay path of a create. Keys are claimed by the engine's Submit, in the
// transaction that records the export.
type KeyStore interface {
	BoundKey(ctx context.Context, caller, key, hash string) (exportID string, err error)
	Ping(ctx context.Context) error
}

// Config configures a Server. Engine, Scopes, Keys and Store are required.
type Config struct {
	Engine   *engine.Engine
	Scopes   ScopeResolver
	Keys     KeyStore
	Store    storage.Store
	Verifier *auth.Verifier   // nil: every protected request is 401
	Metrics  *metrics.Metrics // optional
	Logger   *zap.Logger      // default no-op
	// MaxRange is the longest admissible date range (default 8784h).
	MaxRange time.Duration
	// RateLimit (requests/s) and RateBurst bound creates per caller
	// (defaults 5 and 20). A negative RateLimit disables the limit.
	RateLimit float64
	RateBurst int
	// ReadRateLimit (requests/s) and ReadRateBurst bound each caller's
	// reads: get, list, download, cancel and idempotent replays (defaults
	// 20x RateLimit and 10x RateBurst; unlimited when RateLimit is).
	ReadRateLimit float64
	ReadRateBurst int
	// MaxCallers bounds the per-caller rate limit table (default 10000).
	MaxCallers int
	// PageSecret keys page tokens (default: random per process; replicas
	// behind one load balancer must share it).
	PageSecret []byte
	Now        func() time.Time
	// Admission, if set, bounds concurrently running exports adaptively;
	// creates beyond it wait in its queue, then get 503 overloaded.
	Admission *admission.Limiter
	// DependencyTimeout bounds each ClickHouse or storage call of a request
	// (default 30s).
	DependencyTimeout time.Duration
	// WriteTimeout bounds writing a JSON response (default 30s).
	WriteTimeout time.Duration
	// ReadTimeout bounds reading a request (default 15s).
	ReadTimeout time.Duration
	// MaxDownloadsPerCaller (default 4) and MaxDownloads (default 256)
	// bound concurrent downloads; beyond, 429 rate_limited.
	MaxDownloadsPerCaller, MaxDownloads int
	// DownloadMinRate (bytes/s, default 64 KiB/s) over DownloadRateWindow
	// (default 60s): a download whose reader takes less is cut off.
	DownloadMinRate    int64
	DownloadRateWindow time.Duration
	// MaxConnsPerIP bounds the connections of one client address (default
	// 256) and MaxConns all connections (default 16384).
	MaxConnsPerIP, MaxConns int
	// DownloadStallTimeout is how long a download may make no progress
	// before the connection is dropped (default 60s).
	DownloadStallTimeout time.Duration
	// Webhooks, if set, serves the webhook endpoints of SPEC §8 (webhooks.go).
	Webhooks *Webhooks
	// Schedules, if set, serves the schedule routes (SPEC §9; else 404);
	// SchedulePoke, if set, is called after a schedule is created (the
	// sweep runs soon, for a backfill).
	Schedules    ScheduleStore
	SchedulePoke func()
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.MaxRange == 0 {
		c.MaxRange = 8784 * time.Hour
	}
	if c.RateLimit == 0 {
		c.RateLimit = 5
	}
	if c.RateBurst == 0 {
		c.RateBurst = 20
	}
	if c.ReadRateLimit == 0 {
		c.ReadRateLimit = 20 * c.RateLimit // negative (unlimited) stays so
	}
	if c.ReadRateBurst == 0 {
		c.ReadRateBurst = 10 * c.RateBurst
	}
	if c.MaxCallers <= 0 {
		c.MaxCallers = defaultMaxCallers
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DependencyTimeout <= 0 {
		c.DependencyTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 15 * time.Second
	}
	if c.MaxDownloadsPerCaller <= 0 {
		c.MaxDownloadsPerCaller = 4
	}
	if c.MaxDownloads <= 0 {
		c.MaxDownloads = 256
	}
	if c.DownloadMinRate == 0 {
		c.DownloadMinRate = 64 << 10
	}
	if c.DownloadRateWindow <= 0 {
		c.DownloadRateWindow = 60 * time.Second
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = 256
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 16384
	}
	if c.DownloadStallTimeout <= 0 {
		c.DownloadStallTimeout = 60 * time.Second
	}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.Engine == nil || c.Scopes == nil || c.Keys == nil || c.Store == nil {
		return errors.New("server: Engine, Scopes, Keys and Store are required")
	}
	if c.MaxRange < 0 {
		return errors.New("server: negative MaxRange")
	}
	if c.RateBurst < 0 {
		return errors.New("server: negative RateBurst")
	}
	if c.PageSecret != nil && len(c.PageSecret) < 16 {
		return errors.New("server: PageSecret shorter than 16 bytes")
	}
	return nil
}

// Server serves the API. Its methods are safe for concurrent use.
type Server struct {
	readyMu  sync.Mutex // guards readyAt, readyErr (the cached readiness probe)
	readyAt  time.Time
	readyErr error

	cfg       Config
	log       *zap.Logger
	srv       *fasthttp.Server
	limiter   *callerLimiter
	reads     *callerLimiter
	downloads *downloadSlots
	secret    []byte
	// consoleAssets are the console's files by path (console.go).
	consoleAssets map[string]consoleAsset

	// waits ends the create handlers' waits on Shutdown, so that open
	// requests answer at once with the export's current state.
	waits     context.Context
	stopWaits context.CancelFunc

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds a server.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secret := cfg.PageSecret
	if secret == nil {
		secret = make([]byte, 32)
		rand.Read(secret) // never fails (crypto/rand, Go ≥ 1.24)
	}
	waits, stop := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: cfg.Logger, secret: secret, waits: waits, stopWaits: stop, consoleAssets: consoleAssets(),
		limiter:   newCallerLimiter(cfg.RateLimit, cfg.RateBurst, cfg.MaxCallers),
		reads:     newCallerLimiter(cfg.ReadRateLimit, cfg.ReadRateBurst, cfg.MaxCallers),
		downloads: &downloadSlots{perCaller: cfg.MaxDownloadsPerCaller, total: cfg.MaxDownloads, byCaller: map[string]int{}}}
	s.srv = &fasthttp.Server{
		Handler:      s.handle,
		Logger:       fasthttpLogger{cfg.Logger},
		ErrorHandler: s.handleTransportError,
		Name:         "exportd",
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		// Idle keep-alive connections go after 30 s; one address holds at
		// most MaxConnsPerIP connections and the server MaxConns in all, so
		// idle or slow clients cannot pin goroutines and buffers forever.
		IdleTimeout:           30 * time.Second,
		MaxConnsPerIP:         cfg.MaxConnsPerIP,
		Concurrency:           cfg.MaxConns,
		SecureErrorLogMessage: true,
		MaxRequestBodySize:    maxCreateBody,
		ReadBufferSize:        16 << 10,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
	}
	return s, nil
}

// fasthttpLogger routes fasthttp's own messages (connection-level errors
// such as a client that went away) to zap at debug level: each request
// already has its log line, and these are neither actionable nor bounded.
type fasthttpLogger struct{ log *zap.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if ce := l.log.Check(zap.DebugLevel, "fasthttp"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, args...)))
	}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting connections, ends pending create waits (they
// answer with the export's current state) and waits for open requests,
// downloads included, until ctx ends. It is idempotent: later calls return
// the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.stopWaits()
		s.shutdownErr = s.srv.ShutdownWithContext(ctx)
	})
	return s.shutdownErr
}

// Routes: bounded metric and log labels.
const (
	routeCreate   = "create"
	routeGet      = "get"
	routeList     = "list"
	routeDownload = "download"
	routeCancel   = "cancel"
	routeHealthz  = "healthz"
	routeReadyz   = "readyz"
	routeOther    = "other"
)

// request is what the server knows about one request, for its log line.
type request struct {
	id       string
	route    string
	method   string
	caller   string
	exportID string
	status   int
	err      *apiError
	start    time.Time
	// streamed: the download body stream logs the request when it ends.
	streamed bool
}

func (s *Server) newRequest(ctx *fasthttp.RequestCtx) *request {
	id := ctx.Request.Header.Peek(hdrRequestID)
	rq := &request{route: routeOther, method: string(ctx.Method()), start: time.Now()}
	if saneRequestID(id) {
		rq.id = string(id)
	} else {
		rq.id = uuid.NewString()
	}
	ctx.Response.Header.Set(hdrRequestID, rq.id)
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	return rq
}

// handle is the fasthttp handler: request id, routing, panic guard, log
// line and metrics.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	rq := s.newRequest(ctx)
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in handler", zap.String("request_id", rq.id), zap.Any("panic", v),
				zap.ByteString("stack", debug.Stack()))
			ctx.Response.Reset()
			ctx.Response.Header.Set(hdrRequestID, rq.id)
			rq.streamed = false
			s.fail(ctx, rq, internalError(errors.New("panic")))
		}
		rq.status = ctx.Response.StatusCode()
		if !rq.streamed {
			s.observe(rq, -1)
		}
	}()
	s.route(ctx, rq)
}

func (s *Server) route(ctx *fasthttp.RequestCtx, rq *request) {
	path := string(ctx.Path())
	get, post := ctx.IsGet(), ctx.IsPost()
	switch {
	case path == "/healthz":
		rq.route = routeHealthz
		if !get {
			s.methodNotAllowed(ctx, rq, "GET")
			return
		}
		s.writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	case path == "/readyz":
		rq.route = routeReadyz
		if !get {
			s.methodNotAllowed(ctx, rq, "GET")
			return
		}
		s.readyz(ctx)
	case path == openapiPath:
		rq.route = routeOpenAPI
		if !get {
			s.methodNotAllowed(ctx, rq, "GET")
			return
		}
		s.openapi(ctx)
	case path == exportsPath:
		switch {
		case post:
			rq.route = routeCreate
			s.create(ctx, rq)
		case get:
			rq.route = routeList
			s.list(ctx, rq)
		default:
			s.methodNotAllowed(ctx, rq, "GET, POST")
		}
	case strings.HasPrefix(path, exportsPath+"/"):
		id, sub, slash := strings.Cut(path[len(exportsPath)+1:], "/")
		switch {
		case id == "" || slash && sub == "": // no trailing-slash aliases (the OpenAPI route probe)
			s.fail(ctx, rq, routeNotFound())
		case sub == "" && get:
			rq.route = routeGet
			s.get(ctx, rq, id)
		case sub == "download" && get:
			rq.route = routeDownload
			s.download(ctx, rq, id)
		case sub == "cancel" && post:
			rq.route = routeCancel
			s.cancel(ctx, rq, id)
		case sub == "":
			s.methodNotAllowed(ctx, rq, "GET")
		case sub == "download":
			s.methodNotAllowed(ctx, rq, "GET")
		case sub == "cancel":
			s.methodNotAllowed(ctx, rq, "POST")
		default:
			s.fail(ctx, rq, routeNotFound())
		}
	case path == webhooksPath || strings.HasPrefix(path, webhooksPath+"/"):
		s.routeWebhooks(ctx, rq, path)
	case path == schedulesPath || strings.HasPrefix(path, schedulesPath+"/"):
		s.routeSchedules(ctx, rq, path)
	case path == "/console" || strings.HasPrefix(path, consolePath):
		s.console(ctx, rq, path)
	default:
		s.fail(ctx, rq, routeNotFound())
	}
}

func routeNotFound() *apiError {
	return &apiError{status: fasthttp.StatusNotFound, code: codeRouteNotFound, message: msgRouteNotFound,
		reason: reasonRouteNotFound}
}

func (s *Server) methodNotAllowed(ctx *fasthttp.RequestCtx, rq *request, allow string) {
	s.fail(ctx, rq, &apiError{status: fasthttp.StatusMethodNotAllowed, code: codeMethodNotAllowed,
		message: msgMethodNotAllowed, reason: reasonMethodNotAllowed, allow: allow})
}

// handleTransportError answers requests fasthttp could not read: too large
// (headers 431, body 400 body_too_large, as SPEC §1 asks of create),
// too slow (408) or malformed (400). The connection is closed afterwards.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	rq := s.newRequest(ctx)
	if string(ctx.Path()) == exportsPath && ctx.IsPost() {
		rq.route = routeCreate
	}
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.fail(ctx, rq, invalid(reasonBodyTooLarge, ""))
	case errors.As(err, &small):
		s.fail(ctx, rq, &apiError{status: fasthttp.StatusRequestHeaderFieldsTooLarge, code: codeHeaderTooLarge,
			message: msgHeaderTooLarge, reason: codeHeaderTooLarge})
	case errors.As(err, &netErr) && netErr.Timeout():
		s.fail(ctx, rq, &apiError{status: fasthttp.StatusRequestTimeout, code: codeRequestTimeout,
			message: msgRequestTimeout, reason: codeRequestTimeout})
	default:
		// fasthttp's parse errors quote the raw request, headers included
		// (Authorization: Bearer ...): log the category only, never err.
		e := invalid("malformed_request", "")
		e.cause = errMalformed
		s.fail(ctx, rq, e)
	}
	rq.status = ctx.Response.StatusCode()
	s.observe(rq, -1)
}

// errMalformed is the logged cause of a request fasthttp could not parse.
var errMalformed = errors.New("malformed request (parse error; details withheld: they quote the raw headers)")

// observe writes the request's log line and metrics. bytes ≥ 0 is the body
// bytes a download streamed.
func (s *Server) observe(rq *request, bytes int64) {
	elapsed := time.Since(rq.start)
	if m := s.cfg.Metrics; m != nil {
		m.HTTPRequests.WithLabelValues(rq.route, strconv.Itoa(rq.status)).Inc()
		m.HTTPDuration.WithLabelValues(rq.route).Observe(elapsed.Seconds())
	}
	fields := make([]zap.Field, 0, 10)
	fields = append(fields, zap.String("request_id", rq.id), zap.String("method", rq.method),
		zap.String("route", rq.route), zap.Int("status", rq.status), zap.Duration("duration", elapsed))
	if rq.caller != "" {
		fields = append(fields, zap.String("caller", rq.caller))
	}
	if rq.exportID != "" {
		fields = append(fields, zap.String("export_id", rq.exportID))
	}
	if bytes >= 0 {
		fields = append(fields, zap.Int64("bytes", bytes))
	}
	if rq.err != nil {
		fields = append(fields, zap.String("code", rq.err.code))
		if rq.err.reason != "" {
			fields = append(fields, zap.String("reason", rq.err.reason))
		}
		if rq.err.cause != nil {
			fields = append(fields, zap.NamedError("error", rq.err.cause))
		}
	}
	if rq.status >= 500 {
		s.log.Warn("request", fields...)
		return
	}
	s.log.Info("request", fields...)
}

const contentTypeJSON = "application/json; charset=utf-8"

// writeJSON writes v as the JSON body with status.
func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs and maps are written
		panic("BUG: marshal response: " + err.Error())
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentTypeJSON)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
}

type errorBody struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Details *errorDetails `json:"details,omitempty"`
}

type errorDetails struct {
	Reason       string `json:"reason,omitempty"`
	Field        string `json:"field,omitempty"`
	RetryAfterMs *int64 `json:"retry_after_ms,omitempty"`
}

// fail writes an error response in the envelope of SPEC §1.
func (s *Server) fail(ctx *fasthttp.RequestCtx, rq *request, e *apiError) {
	rq.err = e
	body := errorBody{Code: e.code, Message: e.message}
	if e.reason != "" || e.field != "" || e.retryAfterMs > 0 {
		body.Details = &errorDetails{Reason: e.reason, Field: e.field}
	}
	if e.retryAfterMs > 0 {
		ms := e.retryAfterMs
		body.Details.RetryAfterMs = &ms
		ctx.Response.Header.Set(hdrRetryAfter, strconv.FormatInt(retryAfterSeconds(ms), 10))
	}
	if e.allow != "" {
		ctx.Response.Header.Set("Allow", e.allow)
	}
	if e.status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, "Bearer") // RFC 6750 §3
	}
	s.writeJSON(ctx, e.status, body)
}

// authenticate verifies the bearer token and the capability: 401, then 403
// missing_capability.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, rq *request, capability string) (*auth.Principal, *apiError) {
	if s.cfg.Verifier == nil {
		return nil, unauthorized(errors.New("no token verifier configured"))
	}
	p, err := s.cfg.Verifier.Verify(bearerToken(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)))
	if err != nil {
		return nil, unauthorized(errors.New("token rejected: " + auth.Reason(err)))
	}
	rq.caller = p.Subject
	if !p.Can(capability) {
		return nil, missingCapability()
	}
	return p, nil
}

// allowRead takes a read token of p's (429 rate_limited with the wait
// when none is left): one caller cannot saturate the control plane or
// storage with reads either.
func (s *Server) allowRead(p *auth.Principal) *apiError {
	if d, ok := s.reads.allow(p.Subject, s.cfg.Now()); !ok {
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.RateLimited.Inc()
		}
		return rateLimited((d + time.Millisecond - 1).Milliseconds())
	}
	return nil
}

// opContext bounds one dependency call of a request. It derives from
// context.Background(), not from the RequestCtx, and the handler cancels it
// before returning.
func (s *Server) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.DependencyTimeout)
}

// Ready reports whether the service can take exports: ClickHouse,
// PostgreSQL and storage reachable, not draining.
func (s *Server) Ready(ctx context.Context) error {
	if s.cfg.Engine.Draining() {
		return errors.New("draining")
	}
	if err := s.cfg.Scopes.Ping(ctx); err != nil {
		return errors.New("clickhouse unreachable")
	}
	if err := s.cfg.Keys.Ping(ctx); err != nil {
		return errors.New("postgres unreachable")
	}
	if err := s.cfg.Store.Check(ctx); err != nil {
		return errors.New("storage not writable")
	}
	return nil
}

// readyProbeTTL is how long a readiness verdict is reused: /readyz is
// unauthenticated, so it must not become a way to hammer ClickHouse,
// PostgreSQL and storage (one probe a second at most, whatever the rate).
const readyProbeTTL = time.Second

// cachedReady returns the last readiness verdict if younger than
// readyProbeTTL, else probes (one caller at a time; the others wait for it).
func (s *Server) cachedReady() error {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if !s.readyAt.IsZero() && time.Since(s.readyAt) < readyProbeTTL && !s.cfg.Engine.Draining() {
		return s.readyErr
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.readyErr, s.readyAt = s.Ready(c), time.Now()
	return s.readyErr
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	if err := s.cachedReady(); err != nil {
		s.writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": err.Error()})
		return
	}
	s.writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ready"})
}
