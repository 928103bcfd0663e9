package csv_test

import (
	"bytes"
	"fmt"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/csv"
)

func ExampleAppendRows() {
	amount, _ := activity.ParseDecimal("-250.50")
	b := activity.NewBlock()
	b.Append(&activity.Row{
		OccurredAt:      1775038530123, // 2026-04-01T10:15:30.123Z
		ActivityID:      "01970c3a-0000-7000-8000-000000000001",
		OperationID:     "01970c3a-0000-7000-8000-000000000002",
		Family:          "withdrawal",
		Status:          "executed",
		EnterpriseRef:   "enterprises/0b7c6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e",
		AccountRef:      "master-accounts/3e0f9a4b-5c6d-4e7f-9a2b-3c4d5e6f7081",
		CounterpartyRef: "=HYPERLINK(\"http://x\")",
		Currency:        "USDC",
		Amount:          amount,
		InitiatedBy:     "users/4f1a0b5c-6d7e-4f80-8b3c-4d5e6f708192",
		Reference:       "invoice 42, April",
	})

	buf := csv.AppendHeader(nil)
	buf = csv.AppendRows(buf, b, 0, b.Rows())
	for _, rec := range bytes.SplitAfter(buf, []byte("\r\n")) {
		if len(rec) > 0 {
			fmt.Printf("%q\n", rec)
		}
	}
	// Output:
	// "occurred_at_utc,activity_id,operation_id,family,status,enterprise_ref,client_ref,account_ref,counterparty_ref,currency,amount,fee_currency,fee_amount,settled_at_utc,initiated_by,failure_reason,reference\r\n"
	// "2026-04-01T10:15:30.123Z,01970c3a-0000-7000-8000-000000000001,01970c3a-0000-7000-8000-000000000002,withdrawal,executed,enterprises/0b7c6d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e,,master-accounts/3e0f9a4b-5c6d-4e7f-9a2b-3c4d5e6f7081,\"'=HYPERLINK(\"\"http://x\"\")\",USDC,-250.5,,,,users/4f1a0b5c-6d7e-4f80-8b3c-4d5e6f708192,,\"invoice 42, April\"\r\n"
}
