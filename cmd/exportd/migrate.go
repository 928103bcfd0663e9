package main

import (
	"context"
	"fmt"
	"io"

	"github.com/exportd/exportd/ingest"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	s, err := parseSettings(fs, args, "clickhouse-dsn")
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
	return nil
}
