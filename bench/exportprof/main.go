// Command exportprof runs one export the way `exportd export --out` does
// (the ClickHouse source, engine.Pipe, a file synced at the end) under a Go
// CPU profile, to show where exportd spends its time. bench/throughput runs
// it with -pprof; it can also be run alone:
//
//	exportprof --dsn clickhouse://127.0.0.1:9000/db --enterprise enterprises/<uuid> \
//	           --from-ms A --to-ms B [--compression none] --out FILE --cpuprofile cpu.pprof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/engine/source"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "exportprof:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("exportprof", flag.ContinueOnError)
	dsn := fs.String("dsn", chconn.DefaultDSN, "exportd ClickHouse DSN")
	enterprise := fs.String("enterprise", "", "enterprises/<uuid>")
	fromMs := fs.Int64("from-ms", 0, "inclusive start, Unix ms")
	toMs := fs.Int64("to-ms", 0, "inclusive end, Unix ms")
	compression := fs.String("compression", "none", "none, gzip or zstd")
	out := fs.String("out", "", "output file")
	profile := fs.String("cpuprofile", "", "CPU profile file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *enterprise == "" || *out == "" || *profile == "" {
		return errors.New("--enterprise, --out and --cpuprofile are required")
	}
	cfg, err := chconn.ParseDSN(*dsn)
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := os.Create(*profile)
	if err != nil {
		return err
	}
	defer pf.Close()
	if err := pprof.StartCPUProfile(pf); err != nil {
		return fmt.Errorf("start CPU profile: %w", err)
	}
	start := time.Now()
	q := source.Query{EnterpriseRef: *enterprise, FromMs: *fromMs, ToMs: *toMs}
	res, err := engine.Pipe(ctx, source.New(cfg, source.Options{}), q, nil, engine.Encoding{Compression: *compression}, 0, f, nil)
	if err == nil {
		err = f.Sync()
	}
	pprof.StopCPUProfile()
	if err != nil {
		return fmt.Errorf("export %s: %w", *enterprise, err)
	}
	if err := pf.Close(); err != nil {
		return fmt.Errorf("write CPU profile: %w", err)
	}
	fmt.Fprintf(os.Stderr, "exportprof: %d rows, %d bytes in %.3fs\n", res.Rows, res.Bytes, time.Since(start).Seconds())
	return nil
}
