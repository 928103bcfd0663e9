// Command overload measures how exportd behaves when offered more exports than it can run: does
// admission control keep goodput up, admitted exports fast, sheds cheap and reads responsive?
//
// Everything runs on loopback: a private ClickHouse (ingest/chlocal), `exportd migrate`, a
// deterministic data set (`exportd ingest --generate 400000 --enterprises 20 --seed 5`, about
// 3,300 rows per enterprise and month), and `exportd serve` with file storage and a per-caller
// rate limit high enough not to matter. Every create is one enterprise over one calendar month
// (both drawn at random), sent with `Prefer: wait=0`; an admitted export is then polled with GET
// until it is final. Its completion time runs from sending the create to the GET that sees it
// final, so it includes any wait in the admission queue.
//
// Phases:
//
//	warmup       closed loop, 2 workers (not reported)
//	uncontended  closed loop, 1 worker: the latency of an export on an idle server
//	capacity     closed loop, 4*max-exports workers: exports/s at saturation
//	1x ... 10x   open loop, Poisson arrivals at that multiple of the capacity
//	burst        open loop at -burst (30) times the capacity for -burst-duration (10s), a NEW
//	             connection per request (keep-alives off), a -burst-healthz (20%) share of the
//	             arrivals sent as GET /healthz through the same client instead of a create:
//	             shedding must cost no more than the cheapest answer the server gives
//
// Between open-loop levels the harness waits until every export of the level is final, so that
// levels do not overlap. Throughout, a separate open-loop reader GETs one ready export and lists
// the caller's exports (alternately, -get-rate per second) and times each response. A sampler
// reads exportd's VmRSS from /proc every 100ms and its admission gauges from /metrics every
// 300ms.
//
// To tell overload from a busy machine, each level also reports floors: the p99 of GET /healthz
// (exportd's HTTP path without token, ClickHouse or PostgreSQL), exportd's own view of its request latencies (upper bounds from its
// histograms), the mean run time of an export inside exportd, and the CPU used by exportd and by
// the harness. The harness shares the machine with exportd and ClickHouse, and so does anything
// else running: the load averages before and after are in the report.
//
// Results: a table and the target verdicts on stdout, OUT/overload.json and OUT/overload.svg;
// progress on stderr. The targets (at 10x): goodput >= 90% of the 1x goodput; admitted
// completion p99 <= 2x the uncontended p99; shed responses p99 < 5ms; GET p99 < 10ms; in the
// burst, the p99 of the shed answers (503 and 429) <= 1.5x the p99 of /healthz (issue 17); no create
// answered with anything but 201, 429 or 503; RSS peak no higher than 1.25x its peak at
// saturation (the capacity phase and 1x, where every slot is already in use).
//
// Run it from the module root after `make build` (make bench-overload does both):
//
//	go run ./bench/overload -out bench/results
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
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "overload: FAILED:", err)
		}
		os.Exit(1)
	}
}

type config struct {
	exportd     string
	outDir      string
	tmpRoot     string
	memRoot     string
	keep        bool
	rows        int64
	enterprises int
	seed        int64
	maxExports  int
	baseRate    float64
	levels      []float64
	burst       float64 // multiple of the capacity of the burst phase; 0: none
	burstDur    time.Duration
	burstHealth float64 // share of the burst's arrivals sent as GET /healthz instead of a create
	// burstMaxOpen bounds the burst's open requests: every one holds a connection, and the
	// server refuses a client address more than MaxConnsPerIP (256) of them with fasthttp's
	// own 429 before admission control sees the request.
	burstMaxOpen int
	levelDur     time.Duration
	capacityDur  time.Duration
	idleDur      time.Duration
	warmupDur    time.Duration
	drainMax     time.Duration
	poll         time.Duration
	getRate      float64
	timeout      time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("overload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var levels string
	fs.StringVar(&c.exportd, "exportd", "bin/exportd", "exportd binary (make build)")
	fs.StringVar(&c.outDir, "out", "bench/results", "directory for overload.json and overload.svg")
	fs.StringVar(&c.tmpRoot, "tmp", os.TempDir(), "parent of the exports directory (exportd's file storage)")
	fs.StringVar(&c.memRoot, "mem", defaultMemRoot(), "parent of the directory of ClickHouse's data and exportd's log")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory")
	fs.Int64Var(&c.rows, "rows", 400_000, "generated activity rows")
	fs.IntVar(&c.enterprises, "enterprises", 20, "enterprises the rows spread over")
	fs.Int64Var(&c.seed, "seed", 5, "generator seed")
	fs.IntVar(&c.maxExports, "max-exports", 4, "EXPORTD_MAX_EXPORTS of the server")
	fs.Float64Var(&c.baseRate, "base-rate", 0, "exports/s that the levels and the burst multiply (0: the capacity measured in this run); fix it to compare two builds at the same offered load")
	fs.StringVar(&levels, "levels", "1,2,5,10", "offered loads, as multiples of the measured capacity")
	fs.Float64Var(&c.burst, "burst", 30, "burst phase after the levels: open loop at this multiple of the capacity, every request on a new connection (0: none)")
	fs.IntVar(&c.burstMaxOpen, "burst-max-open", 160, "requests the burst keeps open at once (each on its own connection; the server allows 256 per client address, shared with the polls and reads); arrivals beyond are counted, not sent")
	fs.DurationVar(&c.burstDur, "burst-duration", 10*time.Second, "duration of the burst")
	fs.Float64Var(&c.burstHealth, "burst-healthz", 0.2, "share of the burst's arrivals sent as GET /healthz (same client, new connection) instead of a create")
	fs.DurationVar(&c.levelDur, "level-duration", 35*time.Second, "duration of each open-loop level")
	fs.DurationVar(&c.capacityDur, "capacity-duration", 20*time.Second, "duration of the capacity measurement")
	fs.DurationVar(&c.idleDur, "uncontended-duration", 15*time.Second, "duration of the uncontended measurement")
	fs.DurationVar(&c.warmupDur, "warmup", 5*time.Second, "warmup before the measurements")
	fs.DurationVar(&c.drainMax, "drain", 30*time.Second, "longest wait for a level's exports to finish")
	fs.DurationVar(&c.poll, "poll", 10*time.Millisecond, "GET interval while an admitted export runs")
	fs.Float64Var(&c.getRate, "get-rate", 40, "reads per second of the separate GET loop")
	fs.DurationVar(&c.timeout, "timeout", 9*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, f := range strings.Split(levels, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return c, fmt.Errorf("-levels: %q is not a positive number", f)
		}
		c.levels = append(c.levels, v)
	}
	if c.burst < 0 || c.burstMaxOpen < 1 || c.burstHealth <= 0 || c.burstHealth >= 1 || (c.burst > 0 && c.burstDur <= 0) {
		return c, errors.New("-burst must be >= 0, -burst-healthz within (0, 1), -burst-duration positive")
	}
	if c.baseRate < 0 {
		return c, errors.New("-base-rate must be >= 0")
	}
	if c.maxExports < 1 || c.enterprises < 1 || c.rows < 1 || c.getRate <= 0 || c.poll <= 0 {
		return c, errors.New("-max-exports, -enterprises, -rows, -get-rate and -poll must be positive")
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
	rep := &report{Started: time.Now().UTC(), LoadBefore: loadAvg(), CPUs: cpus(), Config: newReportConfig(cfg)}
	logf("load average before: %s", rep.LoadBefore)

	env, err := setUp(ctx, cfg, logf)
	if env != nil {
		defer env.tearDown(logf)
	}
	if err != nil {
		return err
	}
	if err := measure(ctx, cfg, env, rep, logf); err != nil {
		return err
	}
	rep.LoadAfter = loadAvg()
	logf("load average after: %s", rep.LoadAfter)
	rep.evaluate()
	rep.printTable(stdout)
	return rep.write(cfg.outDir)
}
