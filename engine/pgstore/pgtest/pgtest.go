// Package pgtest starts the private, migrated PostgreSQL that a test binary
// shares (pglocal; EXPORTD_TEST_POSTGRES_DSN names an existing server
// instead). For TestMain functions: it never skips.
package pgtest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/engine/pgstore/pglocal"
)

// Server is a running, migrated test PostgreSQL.
type Server struct {
	DSN   string
	Pool  *pgxpool.Pool
	Store *pgstore.Store
	stop  func()
}

// Start starts (or reaches) the server, migrates it and opens a pool.
func Start(ctx context.Context) (*Server, error) {
	dsn, stop, err := pglocal.ForTests(ctx)
	if err != nil {
		return nil, fmt.Errorf("test PostgreSQL: %w", err)
	}
	pool, err := pgstore.Open(ctx, dsn)
	if err != nil {
		stop()
		return nil, err
	}
	if _, err := pgstore.Migrate(ctx, pool); err != nil {
		pool.Close()
		stop()
		return nil, err
	}
	return &Server{DSN: dsn, Pool: pool, Store: pgstore.New(pool), stop: stop}, nil
}

// Stop closes the pool and stops the server.
func (s *Server) Stop() {
	s.Pool.Close()
	s.stop()
}
