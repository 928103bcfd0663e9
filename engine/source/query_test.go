package source

import (
	"strings"
	"testing"

	"github.com/exportd/exportd/engine/activity"
)

// TestQueryNarrowing: the SELECT lists exactly the selected columns in
// order, the filter sets become IN predicates on top of the enterprise
// restriction (values quoted), and an empty set matches nothing.
func TestQueryNarrowing(t *testing.T) {
	q := Query{EnterpriseRef: "enterprises/x", FromMs: 1, ToMs: 9,
		Columns:  []int{activity.ColAmount, activity.ColOccurredAt},
		Families: []string{"deposit", "on_ramp"}, Currencies: []string{"US'D"}}
	sql := selectSQL(q, 1, 10)
	for _, want := range []string{
		"SELECT amount, occurred_at_utc FROM operations_activity WHERE enterprise_ref = 'enterprises/x' AND occurred_at_utc >= 1 AND occurred_at_utc < 10",
		" AND family IN ('deposit', 'on_ramp')",
		` AND currency IN ('US\'D')`,
		" ORDER BY occurred_at_utc, activity_id ",
	} {
		if !strings.Contains(sql, want) {
			t.Errorf("%s\nlacks %s", sql, want)
		}
	}
	if strings.Contains(sql, "status") {
		t.Errorf("status filter without statuses: %s", sql)
	}
	if all := selectSQL(Query{EnterpriseRef: "enterprises/x"}, 0, 1); !strings.HasPrefix(all, "SELECT "+strings.Join(activity.Columns[:], ", ")+" FROM") {
		t.Errorf("default select: %s", all)
	}
	if w := where(Query{EnterpriseRef: "enterprises/x", Statuses: []string{}}, 0, 1); !strings.HasSuffix(w, " AND 0") {
		t.Errorf("empty set: %s", w)
	}
}
