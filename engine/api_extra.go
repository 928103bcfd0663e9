package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ListVisible is List with the visibility filter bound as SQL tuples.
//
// Records.List binds each []string of the Visibility as a clickhouse-go
// array literal ("scope_ref IN ['a', 'b']"), which ClickHouse 18.16 rejects
// (code 53: Type mismatch in IN or VALUES section. Expected: String. Got:
// Array). Binding a clickhouse.GroupSet renders "IN ('a', 'b')", valid on
// 18.16 and on current releases. The server lists through this method until
// Records.List binds the same way; then it can go.
func (e *Engine) ListVisible(ctx context.Context, v Visibility, after *Cursor, limit int) ([]*Export, error) {
	list, err := e.cfg.Records.listVisible(ctx, v, after, limit)
	if err != nil {
		return nil, err
	}
	for i, x := range list {
		if j := e.local(x.ID); j != nil {
			list[i] = j.snapshot()
			continue
		}
		list[i] = e.view(ctx, x)
	}
	return list, nil
}

func (r *Records) listVisible(ctx context.Context, v Visibility, after *Cursor, limit int) ([]*Export, error) {
	var conds []string
	var args []any
	for _, c := range []struct {
		col  string
		refs []string
	}{{"scope_ref", v.Refs}, {"enterprise_ref", v.Enterprises}, {"client_ref", v.Clients}} {
		if len(c.refs) == 0 {
			continue
		}
		set := clickhouse.GroupSet{Value: make([]any, len(c.refs))}
		for i, ref := range c.refs {
			set.Value[i] = ref
		}
		conds = append(conds, c.col+" IN ?")
		args = append(args, set)
	}
	if len(conds) == 0 {
		return nil, nil
	}
	where := "(" + strings.Join(conds, " OR ") + ")"
	if after != nil {
		where += " AND (generated_at_ms < ? OR (generated_at_ms = ? AND id < ?))"
		args = append(args, after.GeneratedAtMs, after.GeneratedAtMs, after.ID)
	}
	q := "SELECT " + recordColumns + " FROM (" + latest + ") WHERE " + where +
		fmt.Sprintf(" ORDER BY generated_at_ms DESC, id DESC LIMIT %d", limit)
	return r.query(ctx, q, args...)
}
