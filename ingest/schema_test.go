package ingest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/ingest/chlocal"
)

var testDSN string

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	dsn, stop, err := chlocal.ForTests(ctx)
	cancel()
	if err != nil {
		println("FAIL:", err.Error())
		os.Exit(1)
	}
	testDSN = dsn
	code := m.Run()
	stop()
	os.Exit(code)
}

func TestMigrateIdempotentAndRoundTrip(t *testing.T) {
	ctx := context.Background()
	cfg, err := chconn.ParseDSN(testDSN)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 2; i++ {
		if err := Migrate(ctx, conn); err != nil {
			t.Fatalf("migrate run %d: %v", i+1, err)
		}
	}
	client, err := cfg.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	in := activity.NewBlock()
	amt, _ := activity.ParseDecimal("-99999999999999999999.999999999999999999")
	settled := int64(1775038530124)
	r := activity.Row{OccurredAt: 1775038530123, ActivityID: "00000000-0000-4000-8000-000000000001",
		OperationID: "00000000-0000-4000-8000-000000000002", Family: "deposit", Status: "settled",
		EnterpriseRef: "enterprises/00000000-0000-4000-8000-0000000000e1", AccountRef: "master-accounts/00000000-0000-4000-8000-0000000000a1",
		Currency: "USDC", Amount: amt, SettledAt: &settled, InitiatedBy: "users/00000000-0000-4000-8000-0000000000b1",
		Reference: "a,\"b\"\r\n€"}
	in.Append(&r)
	if err := client.Do(ctx, ch.Query{Body: "INSERT INTO " + ActivityTable + " VALUES", Input: in.Input()}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	out := activity.NewBlock()
	rows := 0
	nc, err := cfg.DialNative(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	err = nc.Select(ctx, "SELECT * FROM "+ActivityTable+" WHERE enterprise_ref = 'enterprises/00000000-0000-4000-8000-0000000000e1'",
		out.Results(), func(int) error {
			for i := 0; i < out.Rows(); i++ {
				rows++
				if got := string(activity.AppendDecimal(nil, out.Amount.Row(i))); got != "-99999999999999999999.999999999999999999" {
					t.Errorf("amount = %s", got)
				}
				if out.Reference.Row(i) != r.Reference || string(out.ActivityID.Row(i)) != r.ActivityID {
					t.Errorf("row mismatch: %q %q", out.Reference.Row(i), out.ActivityID.Row(i))
				}
				if out.FeeAmount.Row(i).Set || out.SettledAt.Row(i).Value != settled {
					t.Errorf("nullable mismatch")
				}
			}
			return nil
		}, nil)
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if rows != 1 {
		t.Fatalf("rows = %d, want 1", rows)
	}
}
