package chconn_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/ingest/chlocal"
)

var cfg chconn.Config

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	dsn, stop, err := chlocal.ForTests(ctx)
	cancel()
	if err == nil {
		cfg, err = chconn.ParseDSN(dsn)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func TestNativeSelectExceptionAndReuse(t *testing.T) {
	ctx := context.Background()
	n, err := cfg.DialNative(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var c proto.ColUInt64
	var sum, rows uint64
	var progress int
	err = n.Select(ctx, "SELECT number AS c FROM system.numbers LIMIT 1000000", proto.Results{{Name: "c", Data: &c}},
		func(r int) error {
			for i := 0; i < c.Rows(); i++ {
				sum += c.Row(i)
			}
			rows += uint64(r)
			return nil
		}, func(proto.Progress) { progress++ })
	if err != nil {
		t.Fatal(err)
	}
	if rows != 1_000_000 || sum != 999_999*1_000_000/2 {
		t.Fatalf("rows %d sum %d", rows, sum)
	}
	// A server error is an *Exception and the connection stays usable.
	err = n.Select(ctx, "SELECT no_such_column FROM system.one", proto.Results{}, func(int) error { return nil }, nil)
	var exc *chconn.Exception
	if !errors.As(err, &exc) || exc.Code != 47 {
		t.Fatalf("want exception 47, got %v", err)
	}
	var one proto.ColUInt8
	if err := n.Select(ctx, "SELECT dummy FROM system.one", proto.Results{{Name: "dummy", Data: &one}}, func(int) error { return nil }, nil); err != nil {
		t.Fatalf("reuse after exception: %v", err)
	}
}

func TestNativeCancel(t *testing.T) {
	n, err := cfg.DialNative(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var c proto.ColUInt64
	start := time.Now()
	err = n.Select(ctx, "SELECT number AS c FROM system.numbers", proto.Results{{Name: "c", Data: &c}}, func(int) error { return nil }, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("cancel took %v", el)
	}
}

func TestDialUnreachable(t *testing.T) {
	port, _ := chlocal.FreePort()
	c := chconn.Config{Addr: fmt.Sprintf("127.0.0.1:%d", port), Database: "default", User: "default"}
	if _, err := c.DialNative(context.Background()); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}
