package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/engine/schedules"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
	"github.com/exportd/exportd/ingest"
	"github.com/exportd/exportd/metrics"
	"github.com/exportd/exportd/server"
	"github.com/exportd/exportd/server/admission"
	"github.com/exportd/exportd/server/auth"
)

func newLogger(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core)
}

// runServe wires everything and shuts down in order on SIGTERM/SIGINT:
// stop admitting (503 shutting_down, readiness false) while the listener
// stays open, let exports finish within the grace, cancel the rest, then
// close listeners and connections.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	s, err := parseSettings(fs, args)
	if err != nil {
		return err
	}
	log := newLogger(s.LogLevel, stderr)
	defer log.Sync() //nolint:errcheck

	store, err := storage.Open(s.StorageURL)
	if err != nil {
		return fmt.Errorf("EXPORTD_STORAGE_URL: %w", err)
	}
	conn, err := s.ch.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The schema is applied at start (idempotent) so a fresh ClickHouse works.
	startCtx, cancelStart := context.WithTimeout(ctx, time.Minute)
	defer cancelStart()
	if err := ingest.Migrate(startCtx, conn); err != nil {
		return fmt.Errorf("migrate %s: %w", s.ch, err)
	}
	pool, err := pgstore.Open(startCtx, s.PostgresDSN)
	if err != nil {
		return fmt.Errorf("EXPORTD_POSTGRES_DSN: %w", err)
	}
	defer pool.Close()
	if _, err := pgstore.Migrate(startCtx, pool); err != nil {
		return fmt.Errorf("migrate %s: %w", pgstore.Redact(s.PostgresDSN), err)
	}
	// The local key signs `exportd token` tokens: trusted by default only
	// when there is no identity provider (EXPORTD_JWKS); with one, only on
	// EXPORTD_TRUST_LOCAL_KEY=true. A JWKS without an audience would accept
	// the provider's tokens minted for any other service: refused unless
	// EXPORTD_ALLOW_ANY_AUDIENCE=true says it is meant.
	trustLocal := s.JWKS == ""
	if s.TrustLocalKey != nil {
		trustLocal = *s.TrustLocalKey
	}
	if s.JWKS != "" && s.JWTAudience == "" && !s.AllowAnyAudience {
		return errors.New("EXPORTD_JWKS is set without EXPORTD_JWT_AUDIENCE: tokens the identity provider issued for any other service would be accepted; set EXPORTD_JWT_AUDIENCE (or EXPORTD_ALLOW_ANY_AUDIENCE=true)")
	}
	if !trustLocal && s.JWKS == "" {
		return errors.New("EXPORTD_TRUST_LOCAL_KEY=false without EXPORTD_JWKS: no token could ever be verified")
	}
	verifierKey := ""
	if trustLocal {
		verifierKey = s.SigningKey
	}
	verifier, err := auth.New(ctx, auth.Config{SigningKeyPath: verifierKey, JWKS: s.JWKS,
		Issuer: s.JWTIssuer, Audience: s.JWTAudience, Logger: log.Named("auth")})
	if err != nil {
		return err
	}
	defer verifier.Close()

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	limiter, err := admission.New(admission.Config{
		Max: s.MaxExports,
		// The adaptive limit never drops below one more slot than an
		// enterprise may hold (EXPORTD_MAX_EXPORTS_PER_ENTERPRISE): a tenant
		// at its cap always leaves another tenant a slot.
		Min: max(1, min(s.MaxExports, s.MaxPerEnterprise+1)),
		OnChange: func(limit, inFlight, queued int) {
			m.AdmissionLimit.Set(float64(limit))
			m.AdmissionInFlight.Set(float64(inFlight))
			m.AdmissionQueued.Set(float64(queued))
		},
	})
	if err != nil {
		return err
	}
	m.AdmissionLimit.Set(float64(limiter.Limit()))
	records := pgstore.New(pool)
	mem := newMemReleaser() // memrelease.go; runs until the engine has drained
	eng, err := engine.New(engine.Config{
		Reader:                  source.New(s.ch, source.Options{MaxExecution: s.ExportTimeout}),
		Records:                 records,
		Store:                   store,
		Retention:               s.Retention,
		RecordRetention:         s.RecordRetention,
		MaxRows:                 s.MaxRows,
		MaxExports:              s.MaxExports,
		Slots:                   server.AdmissionSlots(limiter),
		MaxPerEnterprise:        s.MaxPerEnterprise,
		SortingWindows:          s.LongSorts,
		MaxPendingPerEnterprise: s.MaxPendingPerEnterprise,
		ExportTimeout:           s.ExportTimeout,
		Owner:                   s.ReplicaID,
		Logger:                  log.Named("engine"),
		OnFinish:                observeExport(m),
		OnRunning: func(n int) {
			m.ExportsRunning.Set(float64(n))
			mem.setRunning(n)
		},
		OnRead: func(rows, bytes int64) {
			m.ClickHouseRows.Add(float64(rows))
			m.ClickHouseBytes.Add(float64(bytes))
		},
	})
	if err != nil {
		return err
	}
	if err := eng.Start(startCtx); err != nil {
		return err
	}
	// The schedule sweep (SPEC §9): at start (downtime caught up), every
	// EXPORTD_SCHEDULE_SWEEP_INTERVAL and after each schedule create.
	sweeper, err := schedules.NewRunner(schedules.RunnerConfig{Store: records, Engine: eng, Scopes: engine.NewScopes(conn), Clock: records.Now, Interval: s.ScheduleSweep,
		Logger: log.Named("schedules")})
	if err != nil {
		return err
	}
	sweeper.Start()
	defer sweeper.Stop()
	// Page tokens must verify on every replica: their HMAC key is derived from
	// the signing key, which replicas share, rather than drawn per process.
	signingKey, _, err := auth.LoadOrCreateSigningKey(s.SigningKey)
	if err != nil {
		return err
	}
	pageSecret := sha256.Sum256(append([]byte("exportd page tokens\x00"), signingKey.Seed()...))
	hooks, hookClient, err := newWebhooks(s, records, reg, log)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{Engine: eng, Admission: limiter, Scopes: engine.NewScopes(conn), Keys: records, Store: store, Verifier: verifier,
		Metrics: m, Logger: log.Named("http"), MaxRange: s.MaxRange, RateLimit: s.RateLimit, RateBurst: s.RateBurst,
		PageSecret: pageSecret[:], MaxDownloadsPerCaller: s.MaxDownloadsPerCaller, MaxDownloads: s.MaxDownloads,
		Webhooks: &server.Webhooks{Store: records, URLs: hookClient}, Schedules: records, SchedulePoke: sweeper.Poke})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.HTTPAddr)
	if err != nil {
		return fmt.Errorf("EXPORTD_HTTP_ADDR %s: %w", s.HTTPAddr, err)
	}
	adminLn, err := net.Listen("tcp", s.AdminAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("EXPORTD_ADMIN_ADDR %s: %w", s.AdminAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	log.Info("serving", zap.String("http_addr", ln.Addr().String()), zap.String("admin_addr", adminLn.Addr().String()),
		zap.String("clickhouse", s.ch.String()), zap.String("postgres", pgstore.Redact(s.PostgresDSN)), zap.String("storage", s.StorageURL), zap.String("replica", s.ReplicaID),
		zap.String("version", version), zap.Bool("trust_local_key", trustLocal))

	// A listener that fails ends the process through the same ordered
	// shutdown as a signal (running exports drain, records are final).
	serveCtx, stopServing := context.WithCancelCause(ctx)
	defer stopServing(nil)
	var g errgroup.Group
	g.Go(func() error {
		err := srv.Serve(ln)
		if err != nil {
			err = fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
			stopServing(err)
		}
		return err
	})
	g.Go(func() error {
		if err := admin.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			err = fmt.Errorf("serve admin on %s: %w", adminLn.Addr(), err)
			stopServing(err)
			return err
		}
		return nil
	})
	// The webhook deliverer runs until the engine has drained (its last
	// exports' events are in the outbox by then; any replica delivers them).
	hooksCtx, stopHooks := context.WithCancel(context.Background())
	defer stopHooks()
	g.Go(func() error { hooks.Run(hooksCtx); return nil })
	g.Go(func() error { mem.run(hooksCtx); return nil })
	<-serveCtx.Done()
	if cause := context.Cause(serveCtx); ctx.Err() == nil && cause != nil {
		log.Error("listener failed; shutting down", zap.Error(cause))
	}
	log.Info("shutting down", zap.Duration("grace", s.ShutdownGrace))
	sweeper.Stop() // no scheduled submits while draining (an open run is any replica's next sweep's)
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), s.ShutdownGrace)
	eng.Shutdown(graceCtx) // draining: creates get 503, /readyz fails, reads still served
	cancelGrace()
	stopHooks()
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelStop()
	_ = srv.Shutdown(stopCtx)
	_ = admin.Shutdown(stopCtx)
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// observeExport feeds the export histograms and counters (SPEC §5).
func observeExport(m *metrics.Metrics) func(*engine.Export, time.Duration) {
	return func(x *engine.Export, elapsed time.Duration) {
		m.ExportsTotal.WithLabelValues(x.Status).Inc()
		m.ExportDuration.Observe(elapsed.Seconds())
		if x.Status == engine.StatusReady {
			m.ExportRows.Observe(float64(x.RowCount))
			m.ExportBytes.Observe(float64(x.ByteSize))
			m.StorageBytes.Add(float64(x.ByteSize))
		}
		if x.FailureReason == engine.ReasonUpstream {
			m.ClickHouseErrs.Inc()
		}
	}
}
