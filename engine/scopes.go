package engine

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/exportd/exportd/engine/activity"
)

// Scopes resolves the parents of client and account scopes from ClickHouse
// (the operations_activity_scopes view of the data plane). Safe for
// concurrent use.
type Scopes struct {
	conn driver.Conn
}

// NewScopes returns a scope resolver over a clickhouse-go pool.
func NewScopes(conn driver.Conn) *Scopes { return &Scopes{conn: conn} }

// ScopeParents resolves the enterprise (and client) of a client or account
// ref from operations_activity_scopes. It returns every distinct parent
// pair; none when the scope has no activity.
func (r *Scopes) ScopeParents(ctx context.Context, kind, ref string) ([][2]string, error) {
	col := "client_ref"
	if kind == KindClientAccount {
		col = "account_ref"
	}
	rows, err := r.conn.Query(ctx, "SELECT DISTINCT enterprise_ref, client_ref FROM operations_activity_scopes WHERE "+col+" = ? LIMIT 1000", ref)
	if err != nil {
		return nil, fmt.Errorf("resolve scope: %w", err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, fmt.Errorf("scan scope: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Ping checks that ClickHouse answers.
func (r *Scopes) Ping(ctx context.Context) error { return r.conn.Ping(ctx) }

// ScopeKind returns the kind named by a ref's prefix, or "" (the ref must
// be a prefix and a canonical UUID).
func ScopeKind(ref string) string {
	kind, _ := activity.ScopeKindOf(ref)
	return kind
}
