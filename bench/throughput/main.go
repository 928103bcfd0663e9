// Command throughput measures exportd against ClickHouse's own tools and a
// naive Go exporter, side by side, on the same rows in the same run.
//
// For each size N it starts from an empty database in a private ClickHouse,
// generates N activity rows for one enterprise with `exportd ingest`, and
// times every contender exporting all of them (the full 17-column activity of
// that enterprise over the generated range, in export order) to a local file:
//
//	null       clickhouse-client ... FORMAT Null            (ClickHouse's floor: read,
//	           sort and send the rows; the client discards them; no file)
//	native     clickhouse-client ... FORMAT Native > file   (the bound)
//	chcsv      clickhouse-client ... FORMAT CSVWithNames > file
//	httpcsv    ClickHouse HTTP interface, CSVWithNames, through curl
//	naive      bench/naive: clickhouse-go Query/Scan + encoding/csv
//	cli        exportd export --out file
//	cli-jsonl  exportd export --format jsonl --out file   (SPEC §7 formats and a
//	cli-parquet exportd export --format parquet --out file  5-column selection,
//	cli-5col   exportd export --columns <5 of 17> --out file  each against cli)
//	api-none   exportd serve: POST (Prefer: wait=60) → poll → ready
//	api-zstd   the same with "compression": "zstd"
//	api-gzip   the same with "compression": "gzip"
//	api-2x     the first serve, two exports at once of two enterprises of N
//	           rows each (the second generated with the next seed),
//	           compression none: timed from the first POST to both ready;
//	           aggregate rows/s 2N/time against api-none's N/time, with
//	           the CPU seconds of exportd serve and clickhouse-server
//	           (-concurrent=false leaves it and the second enterprise out)
//	api-s3     a second exportd serve storing to S3 (a private versitygw,
//	           POSIX backend, loopback), "compression": "none"; compared
//	           with api-none (×file API). On by default when versitygw is
//	           found (deploy/scripts/ensure-s3.sh installs it); -s3=false
//	           leaves it out.
//
// Contenders alternate within each run (the order rotates from run to run)
// and every figure is the median of the runs. Results go to stdout (a table
// per size and the target summary), to OUT/throughput.json, OUT/throughput.md
// and OUT/throughput.svg. Progress goes to stderr.
//
// Run it from the module root after `make build` (make bench does both):
//
//	go run ./bench/throughput -sizes 1e5,1e6,1e7 -runs 3 -out bench/results
//
// A size may carry its own run count: -sizes 1e5,1e6,1e7:1.
//
// -replot FILE redraws OUT/throughput.svg from an earlier run's JSON and
// measures nothing (make bench-replot):
//
//	go run ./bench/throughput -replot bench/results/throughput.json -out bench/results
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/exportd/exportd/engine/pgstore/pglocal"
	"github.com/exportd/exportd/ingest/chlocal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "throughput: interrupted; children stopped, temporary files removed")
		} else if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "throughput: FAILED:", err)
		}
		os.Exit(1)
	}
}

// sizeSpec is one size to measure and its number of runs.
type sizeSpec struct {
	N    int64
	Runs int
}

type config struct {
	sizes   []sizeSpec
	outDir  string
	exportd string
	seed    int64
	keep    bool
	tmpRoot string
	pprof   bool
	s3      bool // measure the S3 contender
	s3Set   bool // -s3 given explicitly: a missing versitygw is an error
	// concurrent: a second enterprise of N rows and the api-2x contender
	concurrent bool
	replot     string // a throughput.json to redraw; nothing is measured
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("throughput", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "1e5,1e6,1e7", "row counts to measure, comma-separated; N:R gives size N its own run count R")
	runs := fs.Int("runs", 3, "runs per size (the median is reported)")
	out := fs.String("out", "bench/results", "directory for throughput.json, .md and .svg")
	bin := fs.String("exportd", "bin/exportd", "exportd binary (built by make build)")
	seed := fs.Int64("seed", 42, "generator seed")
	keep := fs.Bool("keep", false, "keep the temporary directory (ClickHouse data, outputs, logs) for inspection")
	prof := fs.Bool("pprof", false, "after each size's runs, profile one `exportd export`-equivalent run (bench/exportprof) into OUT/cpu-<size>.pprof and OUT/cpu-<size>-top.txt")
	tmp := fs.String("tmpdir", "", "parent of the temporary directory (default: $TMPDIR); outputs are written there")
	useS3 := fs.Bool("s3", true, "also measure \"exportd API → S3\" against a private versitygw ($EXPORTD_VERSITYGW, PATH or $GOPATH/bin; "+
		"deploy/scripts/ensure-s3.sh installs it); by default skipped with a note when versitygw is missing")
	concurrent := fs.Bool("concurrent", true, "also generate a second enterprise of N rows (next seed) and measure \"api-2x\": "+
		"two exports of the two enterprises at once through the same serve (aggregate rows/s against api-none, CPU split)")
	replotFrom := fs.String("replot", "", "redraw OUT/throughput.svg from this `throughput.json` of an earlier run; measures nothing")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *runs < 1 {
		return config{}, errors.New("-runs must be at least 1")
	}
	c := config{outDir: *out, exportd: *bin, seed: *seed, keep: *keep, tmpRoot: *tmp, pprof: *prof, s3: *useS3, concurrent: *concurrent}
	fs.Visit(func(f *flag.Flag) { c.s3Set = c.s3Set || f.Name == "s3" })
	if c.replot = *replotFrom; c.replot != "" {
		return c, nil
	}
	for _, f := range strings.Split(*sizes, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		spec := sizeSpec{Runs: *runs}
		if n, r, ok := strings.Cut(f, ":"); ok {
			v, err := strconv.Atoi(r)
			if err != nil || v < 1 {
				return config{}, fmt.Errorf("-sizes %q: run count %q is not a positive integer", f, r)
			}
			f, spec.Runs = n, v
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 1 || v > 1e10 || v != float64(int64(v)) {
			return config{}, fmt.Errorf("-sizes: %q is not a row count (like 1e6 or 250000)", f)
		}
		spec.N = int64(v)
		c.sizes = append(c.sizes, spec)
	}
	if len(c.sizes) == 0 {
		return config{}, errors.New("-sizes is empty")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.replot != "" {
		if err := replot(cfg.replot, cfg.outDir); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "redrew %s from %s\n", filepath.Join(cfg.outDir, "throughput.svg"), cfg.replot)
		return nil
	}
	h := &harness{cfg: cfg, log: stderr}
	if err := h.locateTools(ctx); err != nil {
		return err
	}

	// Everything temporary lives under one directory, removed on every path.
	h.tmp, err = os.MkdirTemp(cfg.tmpRoot, "exportd-bench-")
	if err != nil {
		return fmt.Errorf("create temporary directory: %w", err)
	}
	defer func() {
		if cfg.keep {
			h.logf("kept %s", h.tmp)
			return
		}
		if rmErr := os.RemoveAll(h.tmp); rmErr != nil {
			h.logf("warning: remove %s: %v", h.tmp, rmErr)
		}
	}()

	rep := newReport()
	rep.Machine = machineInfo()
	h.logf("machine: %d cores, %s, %.1f GiB RAM; load average %s", rep.Machine.Cores, rep.Machine.CPU,
		float64(rep.Machine.MemBytes)/(1<<30), rep.LoadBefore)

	h.logf("building the naive baseline (bench/naive)")
	if h.naive, err = h.build(ctx, "naive"); err != nil {
		return err
	}
	if cfg.pprof {
		if h.prof, err = h.build(ctx, "exportprof"); err != nil {
			return err
		}
	}

	h.logf("starting a private ClickHouse under %s", h.tmp)
	h.ch, err = chlocal.Start(ctx, chlocal.Options{Dir: filepath.Join(h.tmp, "clickhouse")})
	if err != nil {
		return fmt.Errorf("start private ClickHouse: %w", err)
	}
	defer func() {
		h.logf("stopping the private ClickHouse")
		_ = h.ch.Stop()
	}()
	// exportd serve keeps its control plane in PostgreSQL: a private one
	// (or EXPORTD_TEST_POSTGRES_DSN's).
	pgDSN, pgStop, err := pglocal.ForTests(ctx)
	if err != nil {
		return fmt.Errorf("start private PostgreSQL: %w", err)
	}
	h.pgDSN = pgDSN
	defer func() {
		h.logf("stopping the private PostgreSQL")
		pgStop()
	}()
	rep.ClickHouse = h.clickhouseVersion(ctx)
	if h.chPID = findPID(h.ch.Dir, "clickhouse"); h.chPID == 0 {
		h.logf("warning: clickhouse-server's pid not found: its CPU seconds are not reported")
	}
	h.logf("ClickHouse %s on tcp %s, http %s", rep.ClickHouse, h.ch.TCPAddr, h.ch.HTTPAddr)

	if h.versitygw != "" {
		h.logf("starting a private S3 server (versitygw %s) under %s", h.versitygw, h.tmp)
		if h.s3, err = h.startS3(ctx); err != nil {
			return fmt.Errorf("start private S3 server: %w", err)
		}
		defer func() {
			h.logf("stopping the private S3 server")
			h.s3.stop()
		}()
		h.logf("versitygw on %s, bucket %s", h.s3.endpoint(), s3Bucket)
		rep.S3 = "versitygw (POSIX backend, loopback) " + h.s3.endpoint()
	}

	for _, spec := range cfg.sizes {
		sr, err := h.measureSize(ctx, spec)
		if err != nil {
			return fmt.Errorf("size %s: %w", fmtCount(spec.N), err)
		}
		rep.Sizes = append(rep.Sizes, sr)
		printSizeTable(stdout, sr)
	}
	rep.finish()
	printSummary(stdout, rep)
	if err := rep.write(cfg.outDir); err != nil {
		return err
	}
	h.logf("wrote %s, %s and %s", filepath.Join(cfg.outDir, "throughput.json"),
		filepath.Join(cfg.outDir, "throughput.md"), filepath.Join(cfg.outDir, "throughput.svg"))
	return nil
}

// harness holds what every size shares: tools, the private ClickHouse and
// the temporary directory.
type harness struct {
	cfg     config
	log     io.Writer
	root    string // module root
	exportd string // absolute path of bin/exportd
	naive   string // the naive baseline, built into tmp
	prof    string // bench/exportprof, built into tmp with -pprof
	curl    string // "" when curl is missing (Go net/http is used instead)
	chc     string // clickhouse-client
	tmp     string
	ch      *chlocal.Server
	pgDSN   string // the control plane of the exportd serve contenders
	chPID   int    // the private clickhouse-server's pid (CPU split); 0: unknown

	versitygw string    // "" when the S3 contender is off
	s3        *s3Server // the private S3 server, when on
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (h *harness) locateTools(ctx context.Context) error {
	out, err := command(ctx, nil, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("run from inside the exportd module (go env GOMOD is empty)")
	}
	h.root = filepath.Dir(gomod)
	bin := h.cfg.exportd
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(h.root, bin)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return fmt.Errorf("exportd binary %s not found: run `make build` first (or `make bench`, which builds it)", bin)
	}
	h.exportd = bin
	if h.chc, err = exec.LookPath("clickhouse-client"); err != nil {
		return errors.New("clickhouse-client not found: run deploy/scripts/ensure-clickhouse.sh (make bench does)")
	}
	if _, err := chlocal.FindBinary(); err != nil {
		return err
	}
	if h.curl, err = exec.LookPath("curl"); err != nil {
		h.curl = ""
		h.logf("curl not found: the HTTP-interface contender streams with Go net/http instead")
	}
	if h.cfg.s3 {
		p, err := findVersityGW()
		switch {
		case err == nil:
			h.versitygw = p
		case h.cfg.s3Set:
			return fmt.Errorf("-s3: %v: run deploy/scripts/ensure-s3.sh", err)
		default:
			h.logf("NOTE: %v: the \"exportd API → S3\" contender is skipped "+
				"(deploy/scripts/ensure-s3.sh installs versitygw; -s3=false silences this note)", err)
		}
	}
	return nil
}

// build compiles ./bench/<pkg> into the temporary directory.
func (h *harness) build(ctx context.Context, pkg string) (string, error) {
	bin := filepath.Join(h.tmp, pkg)
	cmd := command(ctx, nil, "go", "build", "-o", bin, "./bench/"+pkg)
	cmd.Dir = h.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build bench/%s: %w\n%s", pkg, err, indent(string(out)))
	}
	return bin, nil
}
