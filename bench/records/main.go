// Command records measures whether exportd's control plane stays flat as the history of export
// records grows (issue 11): the same requests, the same replica binary and the same machine, at a
// small history (-small, 1,000 records) and at a large one (-records, 3,000,000), in one run.
//
// Everything runs on loopback: a private PostgreSQL (engine/pgstore/pglocal) and a private
// ClickHouse (ingest/chlocal) under a temporary directory, and the real binary (built by the
// harness unless -exportd names one). The two sizes are two deployments side by side on them:
// databases exportd_small and exportd_large, each migrated by `exportd migrate`, each with its own
// file:// storage and its own `exportd serve` replicas. Records are seeded through the store's own
// code (pgstore.Store.Import: one COPY per batch), oldest first over -history as a live table
// fills: one large enterprise holds -large-share of them, the rest spread over -enterprises small
// ones; most are expired, failed or cancelled, those of the last 24 hours mostly ready.
//
// After a warm-up, requests alternate between the two deployments one by one (so that whatever
// else loads the machine weighs on both sizes alike), each sequential on one keep-alive
// connection:
//
//	list first page  GET /operations-activity-exports?page_size=100 as the large enterprise
//	list deep page   the same with the page_token reached after walking -deep-pages pages
//	17 scopes        the first page as a caller who also covers 16 small enterprises (reported)
//	get              GET /operations-activity-exports/{id} of random records of the large enterprise
//	floors           GET /healthz, and the store's own List and Get called by the harness
//	create           POST (one second of activity, Prefer: wait=0) for a small enterprise
//	RSS              each replica's VmRSS after the warm-up and after the measurements
//	creates/s        -clients goroutines creating for -create-duration against one replica, then
//	                 round-robin against -replicas; only 201s count
//
// Then, on the large deployment, one SQL UPDATE marks -expire records ready with expires_at in the
// past, and the harness times how long a fresh replica's expiry pass takes to expire them all
// (polling PostgreSQL), sampling the replica's VmRSS every 100 ms.
//
// Targets (issue 11): every p99 at the large size within 2x, or +5 ms, of its value at the small
// size; RSS within +32 MiB; the expiry of 1,000,000 records finishing with RSS within +64 MiB of
// the replica's RSS before it.
//
// Results: progress on stderr, a table and the verdicts on stdout, OUT/records.json and
// OUT/records.svg. Run it from the module root (make bench-records):
//
//	go run ./bench/records -out bench/results
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "records: FAILED:", err)
		}
		os.Exit(1)
	}
}

type config struct {
	exportd        string
	outDir         string
	tmpRoot        string
	keep           bool
	small, large   int
	enterprises    int
	largeShare     float64
	history        time.Duration
	batch          int
	seed           uint64
	warmup         int
	requests       int
	creates        int
	deepPages      int
	expire         int
	expireTimeout  time.Duration
	clients        int
	createDuration time.Duration
	replicas       int
	maxExports     int
	timeout        time.Duration
}

// count parses a record count written as an integer or in e notation (3e6).
func count(s string) (int, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f != float64(int(f)) {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	return int(f), nil
}

type countFlag struct{ n *int }

func (c countFlag) String() string {
	if c.n == nil {
		return ""
	}
	return strconv.Itoa(*c.n)
}

func (c countFlag) Set(s string) error {
	n, err := count(s)
	if err != nil {
		return err
	}
	*c.n = n
	return nil
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("records", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := config{small: 1000, large: 3_000_000, expire: 1_000_000}
	fs.StringVar(&c.exportd, "exportd", "", "exportd binary to run (default: go build ./cmd/exportd into the work directory)")
	fs.StringVar(&c.outDir, "out", "bench/results", "directory for records.json and records.svg")
	fs.StringVar(&c.tmpRoot, "tmp", os.TempDir(), "parent of the work directory (PostgreSQL, ClickHouse, storage, logs)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory")
	fs.Var(countFlag{&c.small}, "small", "records at the small size")
	fs.Var(countFlag{&c.large}, "records", "records at the large size (3e6 is issue 11's)")
	fs.Var(countFlag{&c.expire}, "expire", "records marked ready and past expiry at once at the large size (0: skip)")
	fs.IntVar(&c.enterprises, "enterprises", 2000, "small enterprises sharing the records the large one does not hold")
	fs.Float64Var(&c.largeShare, "large-share", 0.7, "share of the records held by the large enterprise")
	fs.DurationVar(&c.history, "history", 80*24*time.Hour, "generated_at spreads over this much past (under the 90-day record retention, so nothing is deleted meanwhile)")
	fs.IntVar(&c.batch, "batch", 20000, "records per Import (one COPY)")
	fs.Uint64Var(&c.seed, "seed", 11, "generator seed")
	fs.IntVar(&c.warmup, "warmup", 100, "untimed requests of each kind before the timed ones")
	fs.IntVar(&c.requests, "requests", 1000, "timed list and get requests of each kind per size")
	fs.IntVar(&c.creates, "creates", 300, "timed creates per size")
	fs.IntVar(&c.deepPages, "deep-pages", 500, "pages walked through next_page_token to reach the deep page")
	fs.DurationVar(&c.expireTimeout, "expire-timeout", 15*time.Minute, "longest wait for the expiry pass")
	fs.IntVar(&c.clients, "clients", 8, "client goroutines of the creates/s measurement")
	fs.DurationVar(&c.createDuration, "create-duration", 20*time.Second, "duration of each creates/s measurement")
	fs.IntVar(&c.replicas, "replicas", 3, "replicas of the second creates/s measurement")
	fs.IntVar(&c.maxExports, "max-exports", 64, "EXPORTD_MAX_EXPORTS of every replica (creates/s is not meant to measure admission)")
	fs.DurationVar(&c.timeout, "timeout", 90*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.small < 1 || c.large <= c.small:
		return c, errors.New("-small must be positive and below -records")
	case c.largeShare <= 0 || c.largeShare >= 1:
		return c, errors.New("-large-share must be in (0, 1)")
	case c.enterprises < 1 || c.batch < 1 || c.requests < 10 || c.creates < 10 || c.clients < 1 || c.replicas < 1:
		return c, errors.New("-enterprises, -batch, -clients and -replicas must be positive, -requests and -creates at least 10")
	case c.expire > c.large:
		return c, errors.New("-expire cannot exceed -records")
	case c.history < 48*time.Hour:
		return c, errors.New("-history must be at least 48h")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	rep := newReport(cfg)
	logf("load average before: %s", rep.LoadBefore)

	env, err := setUp(ctx, cfg, logf)
	if env != nil {
		defer env.tearDown(logf)
	}
	if err != nil {
		return err
	}
	rep.Versions = env.versions(ctx)
	sizes, err := measureSizes(ctx, cfg, env, logf)
	rep.Sizes = sizes
	if err != nil {
		return err
	}
	if cfg.expire > 0 {
		if rep.Expiry, err = measureExpiry(ctx, cfg, env, env.deps[len(env.deps)-1], logf); err != nil {
			return err
		}
	}
	rep.finish()
	logf("load average after: %s", rep.LoadAfter)
	rep.evaluate()
	rep.printTable(stdout)
	return rep.write(cfg.outDir)
}
