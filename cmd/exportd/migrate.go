package main

import (
	"context"
	"fmt"
	"io"

	"github.com/exportd/exportd/engine/pgstore"
	"github.com/exportd/exportd/ingest"
)

// runMigrate creates or upgrades the ClickHouse schema (activity, scope
// parents) and the PostgreSQL one (the control plane); both idempotent.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	s, err := parseSettings(fs, args, "clickhouse-dsn", "postgres-dsn")
	if err != nil {
		return err
	}
	conn, err := s.ch.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := ingest.Migrate(ctx, conn); err != nil {
		return fmt.Errorf("migrate %s: %w", s.ch, err)
	}
	fmt.Fprintf(stdout, "schema up to date on %s\n", s.ch)
	pool, err := pgstore.Open(ctx, s.PostgresDSN)
	if err != nil {
		return fmt.Errorf("EXPORTD_POSTGRES_DSN: %w", err)
	}
	defer pool.Close()
	applied, err := pgstore.Migrate(ctx, pool)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", pgstore.Redact(s.PostgresDSN), err)
	}
	fmt.Fprintf(stdout, "schema up to date on %s (%d migration(s) applied)\n", pgstore.Redact(s.PostgresDSN), applied)
	return nil
}
