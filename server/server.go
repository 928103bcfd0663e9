// Package server is the fasthttp front end of exportd: routing, request
// decoding and validation, error → status mapping, download streaming and
// health (SPEC §1). Bearer tokens and coverage live in server/auth.
package server

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/server/auth"
)

// Config configures a Server. Engine, Records and Store are required.
type Config struct {
	Engine   *engine.Engine
	Records  *engine.Records
	Store    storage.Store
	Verifier *auth.Verifier
	Metrics  *metrics.Metrics // optional
	Logger   *zap.Logger      // default no-op
	// MaxRange is the longest admissible date range (default 8784h).
	MaxRange time.Duration
	// RateLimit (requests/s) and RateBurst bound creates per caller.
	RateLimit float64
	RateBurst int
	// PageSecret keys page tokens (default: random per process).
	PageSecret []byte
	Now        func() time.Time
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
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server serves the API.
type Server struct {
	cfg Config
	log *zap.Logger
	srv *fasthttp.Server
}

// New builds a server.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil || cfg.Records == nil || cfg.Store == nil {
		return nil, errors.New("server: Engine, Records and Store are required")
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		Name:                          "exportd",
		ReadTimeout:                   30 * time.Second,
		IdleTimeout:                   2 * time.Minute,
		MaxRequestBodySize:            1 << 20,
		ReadBufferSize:                16 << 10,
		DisableHeaderNamesNormalizing: false,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 false,
		CloseOnShutdown:               true,
	}
	return s, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting connections and waits for open requests.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.ShutdownWithContext(ctx) }

// handle routes a request.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/healthz":
		ctx.SetContentType("application/json; charset=utf-8")
		ctx.SetBodyString(`{"status":"ok"}`)
		return
	case "/readyz":
		s.readyz(ctx)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNotFound)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBodyString(`{"code":"not_found","message":"No such route."}`)
}

// Ready reports whether the service can take exports: ClickHouse and
// storage reachable, not draining.
func (s *Server) Ready(ctx context.Context) error {
	if s.cfg.Engine.Draining() {
		return errors.New("draining")
	}
	if err := s.cfg.Records.Ping(ctx); err != nil {
		return errors.New("clickhouse unreachable")
	}
	if err := s.cfg.Store.Check(ctx); err != nil {
		return errors.New("storage not writable")
	}
	return nil
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ctx.SetContentType("application/json; charset=utf-8")
	if err := s.Ready(c); err != nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"status":"not_ready","reason":"` + err.Error() + `"}`)
		return
	}
	ctx.SetBodyString(`{"status":"ready"}`)
}
