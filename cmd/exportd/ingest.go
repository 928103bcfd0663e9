package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/ingest"
)

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ingest", stderr)
	file := fs.String("file", "", "NDJSON file to load, or - for stdin")
	n := fs.Int64("generate", -1, "generate N synthetic rows instead of loading a file")
	seed := fs.Int64("seed", 1, "generator seed (same seed, same rows)")
	ents := fs.Int("enterprises", 10, "enterprises the generated rows spread over")
	fromS := fs.String("from", "", "generated rows start (RFC 3339 UTC, default 2026-01-01T00:00:00Z)")
	toS := fs.String("to", "", "generated rows end, exclusive (default 2026-07-01T00:00:00Z)")
	once := fs.Bool("once", false, "with --generate: do nothing if the first generated enterprise already has rows")
	printEnts := fs.Bool("print-enterprises", false, "print the refs of the enterprises --generate would create, and exit")
	s, err := parseSettings(fs, args, "clickhouse-dsn")
	if err != nil {
		return err
	}
	if *printEnts {
		return printEnterprises(stdout, *seed, *ents)
	}
	if (*file == "") == (*n < 0) {
		return &exitError{2, errors.New("give exactly one of --file F|- or --generate N")}
	}
	if *file != "" {
		return ingestFile(ctx, s, *file, stderr)
	}
	opts := ingest.GenerateOptions{N: *n, Seed: *seed, Enterprises: *ents}
	if *fromS != "" {
		if opts.From, err = activity.ParseTimestamp(*fromS); err != nil {
			return &exitError{2, fmt.Errorf("--from %q: %v", *fromS, err)}
		}
	}
	if *toS != "" {
		if opts.To, err = activity.ParseTimestamp(*toS); err != nil {
			return &exitError{2, fmt.Errorf("--to %q: %v", *toS, err)}
		}
	}
	if err := opts.Validate(); err != nil {
		return &exitError{2, err}
	}
	if *once {
		has, err := hasRows(ctx, s, ingest.EnterpriseRef(*seed, 0))
		if err != nil {
			return err
		}
		if has {
			fmt.Fprintf(stderr, "demo data already loaded (%s has rows); skipping\n", ingest.EnterpriseRef(*seed, 0))
			return nil
		}
	}
	var rows atomic.Int64
	p := startProgress(stderr, "generate", rows.Load)
	st, err := ingest.GenerateInto(ctx, s.ch, opts, func(r int64) { rows.Store(r) })
	p.Stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "generated %d rows over %d enterprises in %.2fs: %.0f rows/s into %s\n",
		st.Rows, opts.Enterprises, st.Elapsed.Seconds(), float64(st.Rows)/st.Elapsed.Seconds(), s.ch)
	return nil
}

// printEnterprises writes the refs of the first n generated enterprises, one
// per line. A reader that stops early (`| head -1`) has what it wanted, so
// that is not an error: with SIGPIPE ignored the write fails with EPIPE
// instead of killing the process (exit 141, which fails a pipeline under
// `set -o pipefail`), and printing stops there.
func printEnterprises(w io.Writer, seed int64, n int) error {
	signal.Ignore(syscall.SIGPIPE)
	bw := bufio.NewWriter(w)
	var err error
	for i := 0; i < n && err == nil; i++ {
		_, err = bw.WriteString(ingest.EnterpriseRef(seed, i) + "\n")
	}
	if err == nil {
		err = bw.Flush()
	}
	if errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

func ingestFile(ctx context.Context, s *settings, path string, stderr io.Writer) error {
	var r io.Reader = os.Stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, path
	}
	var rows atomic.Int64
	p := startProgress(stderr, "ingest", rows.Load)
	st, err := ingest.Load(ctx, s.ch, r, ingest.LoadOptions{Progress: func(n int64) { rows.Store(n) }})
	p.Stop()
	if errors.Is(err, ingest.ErrPartialCommit) {
		return fmt.Errorf("ingest %s: %w", name, err) // says which months landed
	}
	if err != nil {
		return fmt.Errorf("ingest %s: %w (nothing of it was loaded)", name, err)
	}
	fmt.Fprintf(stderr, "loaded %d rows from %s in %.2fs (%.0f rows/s)\n", st.Rows, name, st.Elapsed.Seconds(),
		float64(st.Rows)/max(st.Elapsed.Seconds(), 1e-9))
	if st.StagingLeft != "" {
		fmt.Fprintf(stderr, "warning: staging table %s could not be dropped; it is safe to drop\n", st.StagingLeft)
	}
	return nil
}

func hasRows(ctx context.Context, s *settings, enterprise string) (bool, error) {
	c, err := s.ch.DialNative(ctx)
	if err != nil {
		return false, err
	}
	defer c.Close()
	var cnt proto.ColUInt64
	err = c.Select(ctx, "SELECT count() AS c FROM "+source.Table+" WHERE enterprise_ref = "+source.Quote(enterprise),
		proto.Results{{Name: "c", Data: &cnt}}, func(int) error { return nil }, nil)
	if err != nil {
		return false, fmt.Errorf("count rows of %s: %w", enterprise, err)
	}
	return cnt.Rows() > 0 && cnt.Row(0) > 0, nil
}
