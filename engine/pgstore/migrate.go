package pgstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key that serialises migrations of
// replicas starting at once.
const migrateLock = 0x6578706f7274 // "export"

// Migrate applies the embedded migrations not yet applied, each in its own
// transaction under an advisory lock, and records them in
// exportd_schema_migrations. Idempotent and safe to run from several
// processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (applied int, err error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return 0, err
	}
	sort.Strings(names)
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS exportd_schema_migrations (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("create migrations table: %w", err)
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return applied, fmt.Errorf("BUG: migration %s has no version prefix", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return applied, err
		}
		done, err := apply(ctx, pool, v, base, string(body))
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", base, err)
		}
		if done {
			applied++
		}
	}
	return applied, nil
}

func apply(ctx context.Context, pool *pgxpool.Pool, version int, name, body string) (bool, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLock)); err != nil {
		return false, err
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM exportd_schema_migrations WHERE version = $1", version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, body, pgx.QueryExecModeSimpleProtocol); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO exportd_schema_migrations (version, name) VALUES ($1, $2)", version, name); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}
