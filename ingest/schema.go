// Package ingest gets activity into ClickHouse: schema migrations, the NDJSON
// loader and the synthetic generator.
package ingest

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Table names are part of the contract (SPEC §3).
const (
	ActivityTable = "operations_activity"
	ScopesTable   = "operations_activity_scopes"
)

// Schema choices (all valid on ClickHouse 18.16 and on current releases):
//
//   - Timestamps are Int64 milliseconds since the Unix epoch, UTC. 18.16 has no
//     DateTime64, and DateTime holds whole seconds only; an integer keeps the
//     exact millisecond and sorts correctly. Analysts convert with
//     toDateTime(intDiv(occurred_at_utc, 1000)).
//   - Amounts are Decimal(38,18): 20 integer and 18 fractional digits, exact.
//   - UUIDs are FixedString(36) in canonical lowercase text. ClickHouse's UUID
//     type does not sort in text order, and SPEC §3 orders ties by the text
//     form; fixed-width text sorts byte-wise exactly like the text.
//   - Enumerations are String, validated at ingest (no LowCardinality on 18.16
//     without experimental settings).
//   - Sort key (enterprise_ref, occurred_at_utc, activity_id): every export is
//     restricted to one enterprise and a time range, so the primary index
//     selects exactly the granules of that enterprise inside the range, and
//     rows come off disk already in the export order (SPEC §3) — ORDER BY in the
//     query is then cheap. Monthly partitions let old months be dropped whole.
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS ` + ActivityTable + ` (
		occurred_at_utc   Int64,
		activity_id       FixedString(36),
		operation_id      FixedString(36),
		family            String,
		status            String,
		enterprise_ref    String,
		client_ref        String,
		account_ref       String,
		counterparty_ref  String,
		currency          String,
		amount            Decimal(38, 18),
		fee_currency      String,
		fee_amount        Nullable(Decimal(38, 18)),
		settled_at_utc    Nullable(Int64),
		initiated_by      String,
		failure_reason    String,
		reference         String
	) ENGINE = MergeTree
	PARTITION BY toYYYYMM(toDateTime(intDiv(occurred_at_utc, 1000)))
	ORDER BY (enterprise_ref, occurred_at_utc, activity_id)
	SETTINGS index_granularity = 8192`,

	// Scope parents: which enterprise a client or account belongs to, kept
	// up to date by ClickHouse on every insert. Authorising a client or
	// account export needs its enterprise (SPEC §2 coverage) and a lookup
	// here reads a few KB instead of scanning the activity table.
	`CREATE MATERIALIZED VIEW IF NOT EXISTS ` + ScopesTable + `
	ENGINE = ReplacingMergeTree ORDER BY (enterprise_ref, client_ref, account_ref)
	AS SELECT enterprise_ref, client_ref, account_ref FROM ` + ActivityTable + `
	GROUP BY enterprise_ref, client_ref, account_ref`,
}

// Migrate creates or upgrades the schema. It is idempotent.
func Migrate(ctx context.Context, conn driver.Conn) error {
	for i, stmt := range migrations {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}
