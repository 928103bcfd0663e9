package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// measureSize prepares a database of spec.N rows, runs every contender
// spec.Runs times and returns the figures. The database and every output are
// removed before it returns.
func (h *harness) measureSize(ctx context.Context, spec sizeSpec) (*sizeResult, error) {
	db := fmt.Sprintf("bench_%d", spec.N)
	sr := &sizeResult{N: spec.N, Runs: spec.Runs, Database: db, LoadBefore: loadAverage()}
	h.logf("== %s rows, %d run(s); load average %s", fmtCount(spec.N), spec.Runs, sr.LoadBefore)
	enterprises, rows, err := h.prepare(ctx, db, spec.N, h.cfg.concurrent)
	if err != nil {
		return nil, err
	}
	enterprise := enterprises[0]
	sr.Enterprise = enterprise
	if len(enterprises) > 1 {
		sr.Enterprise2 = enterprises[1]
	}
	defer func() {
		if _, err := h.chQuery(context.WithoutCancel(ctx), "", "DROP DATABASE IF EXISTS "+db); err != nil {
			h.logf("warning: drop database %s: %v", db, err)
		}
	}()

	dir := filepath.Join(h.tmp, db)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := h.startServer(ctx, db, enterprises, dir, nil)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	sr.ServeIdleRSS = srv.idleRSS
	h.logf("exportd serve ready on %s, idle RSS %s", srv.base, fmtMiB(srv.idleRSS))
	var s3srv *server
	if h.s3 != nil {
		// A second serve on the same database, storing to the bucket under
		// the prefix db; it idles while the others run.
		if s3srv, err = h.startServer(ctx, db, enterprises[:1], filepath.Join(dir, "serve-s3"), h.s3); err != nil {
			return nil, fmt.Errorf("exportd serve with S3 storage: %w", err)
		}
		defer s3srv.stop()
		sr.ServeS3IdleRSS = s3srv.idleRSS
		h.logf("exportd serve (S3 storage, s3://%s/%s) ready on %s, idle RSS %s", s3Bucket, db, s3srv.base, fmtMiB(s3srv.idleRSS))
	}

	// Warm ClickHouse's page cache and caches once, untimed, so that the
	// first contender of the first run is not penalised.
	if _, err := h.toFile(ctx, os.DevNull, nil, h.chc, "--port", h.chPort(), "--database", db,
		"--query", exportQuery(enterprise, "Native")); err != nil {
		return nil, fmt.Errorf("warm-up query: %w", err)
	}

	cs := h.contenders(db, enterprise, srv, s3srv)
	res := make([]*contenderResult, len(cs))
	for i, c := range cs {
		res[i] = &contenderResult{Key: c.Key, Name: c.Name, Group: c.Group, Rows: -1, Exports: c.Exports}
	}
	for run := 0; run < spec.Runs; run++ {
		for j := range cs {
			i := (j + run) % len(cs) // rotate the order from run to run
			c, cr := cs[i], res[i]
			out := filepath.Join(dir, "out-"+c.Key)
			// Flush the previous contender's dirty pages now, not during
			// this one.
			syscall.Sync()
			m, err := c.run(ctx, out)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("contender %q failed (run %d): %w", c.Name, run+1, err)
			}
			if c.CSV {
				records, err := countCSVRecords(m.Path)
				if err != nil {
					return nil, fmt.Errorf("contender %q: count records of %s: %w", c.Name, m.Path, err)
				}
				if m.Rows >= 0 && m.Rows != records-1 {
					return nil, fmt.Errorf("contender %q: reported %d rows, its file holds %d data records", c.Name, m.Rows, records-1)
				}
				m.Rows = records - 1 // minus the header
			}
			if want := rows * int64(max(c.Exports, 1)); m.Rows >= 0 && m.Rows != want {
				return nil, fmt.Errorf("contender %q exported %d rows, want %d", c.Name, m.Rows, want)
			}
			if m.Path != "" {
				if err := os.Remove(m.Path); err != nil {
					return nil, fmt.Errorf("remove output: %w", err)
				}
			}
			cr.add(m)
			rss := fmtMiB(m.PeakRSS)
			extra := ""
			if isAPI(c.Key) {
				rss = fmt.Sprintf("%s (+%s over idle)", rss, fmtMiB(m.AboveIdle))
				extra = fmt.Sprintf("; CPU s: serve %.2f, clickhouse-server %.2f", m.ServeCPU, m.CHCPU)
				if c.Exports > 1 {
					extra += fmt.Sprintf("; %d of %d seen running at once", m.MaxRunning, c.Exports)
				}
			}
			h.logf("[%s run %d/%d] %-50s %8.3fs %10.0f rows/s %9s  peak RSS %s%s",
				fmtCount(spec.N), run+1, spec.Runs, c.Name, m.Elapsed.Seconds(), float64(m.Rows)/m.Elapsed.Seconds(),
				fmtBytes(m.Bytes), rss, extra)
		}
	}
	sr.Contenders = res
	if h.prof != "" {
		if err := h.profile(ctx, db, enterprise, dir, spec.N); err != nil {
			return nil, err
		}
	}
	sr.LoadAfter = loadAverage()
	sr.compute()
	if a, b := sr.get(keyAPINone), sr.get(keyCHCSV); a != nil && b != nil {
		sr.SameRowsAsCSVWithNames = a.Rows == b.Rows
		h.logf("sanity: exportd (none) wrote %d data records, CSVWithNames %d", a.Rows, b.Rows)
	}
	return sr, nil
}

// countCSVRecords counts the records of a CSV file whose fields are quoted
// with '"' and whose quotes inside fields are doubled (both RFC 4180 and
// ClickHouse's CSV): a line feed outside quotes ends a record. A doubled
// quote toggles the state twice, so it needs no special case.
func countCSVRecords(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	inQuotes := false
	var last byte = '\n'
	for {
		k, err := f.Read(buf)
		b := buf[:k]
		for len(b) > 0 {
			if inQuotes {
				i := bytes.IndexByte(b, '"')
				if i < 0 {
					b = nil
					break
				}
				inQuotes = false
				b = b[i+1:]
				continue
			}
			i := bytes.IndexAny(b, "\"\n")
			if i < 0 {
				break
			}
			if b[i] == '"' {
				inQuotes = true
			} else {
				n++
			}
			b = b[i+1:]
		}
		if k > 0 {
			last = buf[k-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if inQuotes {
		return 0, fmt.Errorf("unterminated quoted field at end of file")
	}
	if last != '\n' {
		n++ // a final record without a line end
	}
	return n, nil
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return "unknown"
	}
	return string(bytes.Join(f[:3], []byte(" ")))
}

// profile runs bench/exportprof once (untimed) and writes its CPU profile
// and the top of `go tool pprof -top` to the output directory.
func (h *harness) profile(ctx context.Context, db, enterprise, dir string, n int64) error {
	if err := os.MkdirAll(h.cfg.outDir, 0o755); err != nil {
		return err
	}
	prof := filepath.Join(h.cfg.outDir, "cpu-"+fmtCount(n)+".pprof")
	out := filepath.Join(dir, "out-profile")
	res, err := runTimed(ctx, nil, nil, h.prof, "--dsn", h.dsn(db), "--enterprise", enterprise,
		"--from-ms", strconv.FormatInt(rangeFrom.UnixMilli(), 10), "--to-ms", strconv.FormatInt(rangeTo.UnixMilli(), 10),
		"--out", out, "--cpuprofile", prof)
	os.Remove(out)
	if err != nil {
		return fmt.Errorf("profiled export: %w", err)
	}
	cmd := command(ctx, nil, "go", "tool", "pprof", "-top", "-nodecount=30", prof)
	cmd.Dir = h.root
	top, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go tool pprof -top %s: %w", prof, err)
	}
	topPath := strings.TrimSuffix(prof, ".pprof") + "-top.txt"
	if err := os.WriteFile(topPath, top, 0o644); err != nil {
		return err
	}
	h.logf("CPU profile of a %s-row export (%.2fs): %s, top functions in %s", fmtCount(n), res.Elapsed.Seconds(), prof, topPath)
	return nil
}
