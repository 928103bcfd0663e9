// Command naive is the baseline that bench/throughput measures exportd
// against: the export written the way a Go programmer would write it first,
// with the usual libraries and no tuning. clickhouse-go v2 over the native
// protocol (clickhouse.Open), conn.Query + rows.Scan into ordinary Go values
// (string for FixedString, shopspring decimal.Decimal for Decimal, pointers
// for Nullable), and encoding/csv writing to a buffered file. It applies the
// same formula guard and text forms as exportd (SPEC §3) so that its output
// is comparable.
//
// Usage:
//
//	naive --addr 127.0.0.1:9000 --database D --enterprise enterprises/<uuid> \
//	      --from-ms A --to-ms B --out FILE
//
// Rows, bytes and elapsed time go to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/shopspring/decimal"
)

// columns are the activity columns in CSV order (SPEC §3).
var columns = []string{
	"occurred_at_utc", "activity_id", "operation_id", "family", "status",
	"enterprise_ref", "client_ref", "account_ref", "counterparty_ref", "currency",
	"amount", "fee_currency", "fee_amount", "settled_at_utc", "initiated_by",
	"failure_reason", "reference",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("naive", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9000", "ClickHouse native address")
	database := fs.String("database", "default", "database")
	enterprise := fs.String("enterprise", "", "enterprises/<uuid>")
	fromMs := fs.Int64("from-ms", 0, "inclusive start, Unix ms")
	toMs := fs.Int64("to-ms", 0, "inclusive end, Unix ms")
	out := fs.String("out", "", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *enterprise == "" || *out == "" || strings.ContainsAny(*enterprise, `'\`) {
		return errors.New("--enterprise (a valid ref) and --out are required")
	}
	start := time.Now()

	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{*addr},
		Auth: clickhouse.Auth{Database: *database, Username: "default"},
	})
	if err != nil {
		return fmt.Errorf("open ClickHouse at %s: %w", *addr, err)
	}
	defer conn.Close()

	query := "SELECT " + strings.Join(columns, ", ") + " FROM operations_activity WHERE enterprise_ref = '" + *enterprise +
		"' AND occurred_at_utc BETWEEN " + strconv.FormatInt(*fromMs, 10) + " AND " + strconv.FormatInt(*toMs, 10) +
		" ORDER BY occurred_at_utc, activity_id"
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer rows.Close()

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 64<<10)
	w := csv.NewWriter(bw)
	w.UseCRLF = true
	if err := w.Write(columns); err != nil {
		return err
	}

	var (
		occurredAt                                         int64
		activityID, operationID, family, status            string
		enterpriseRef, clientRef, accountRef, counterparty string
		currency, feeCurrency, initiatedBy, failureReason  string
		reference                                          string
		amount                                             decimal.Decimal
		feeAmount                                          *decimal.Decimal
		settledAt                                          *int64
		n                                                  int64
		record                                             = make([]string, len(columns))
	)
	for rows.Next() {
		if err := rows.Scan(&occurredAt, &activityID, &operationID, &family, &status, &enterpriseRef,
			&clientRef, &accountRef, &counterparty, &currency, &amount, &feeCurrency, &feeAmount,
			&settledAt, &initiatedBy, &failureReason, &reference); err != nil {
			return fmt.Errorf("scan row %d: %w", n+1, err)
		}
		record[0] = timestamp(occurredAt)
		record[1] = activityID
		record[2] = operationID
		record[3] = family
		record[4] = status
		record[5] = enterpriseRef
		record[6] = clientRef
		record[7] = accountRef
		record[8] = guard(counterparty)
		record[9] = guard(currency)
		record[10] = amount.String()
		record[11] = guard(feeCurrency)
		record[12] = ""
		if feeAmount != nil {
			record[12] = feeAmount.String()
		}
		record[13] = ""
		if settledAt != nil {
			record[13] = timestamp(*settledAt)
		}
		record[14] = initiatedBy
		record[15] = guard(failureReason)
		record[16] = guard(reference)
		if err := w.Write(record); err != nil {
			return fmt.Errorf("write row %d: %w", n+1, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", *out, err)
	}
	st, err := os.Stat(*out)
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "naive: %d rows, %d bytes in %.3fs\n", n, st.Size(), el.Seconds())
	return nil
}

func timestamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// guard is the formula-injection guard of SPEC §3.
func guard(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
