package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
	"github.com/exportd/exportd/engine/storage"
)

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", stderr)
	scope := fs.String("scope", "", "enterprises/<uuid>, clients/<uuid> or client-accounts/<uuid>")
	fromS := fs.String("from", "", "inclusive start, RFC 3339 UTC")
	toS := fs.String("to", "", "inclusive end, RFC 3339 UTC")
	compression := fs.String("compression", "none", "none, gzip or zstd")
	out := fs.String("out", "", "output file (default: stdout)")
	pick := fs.String("enterprise", "", "with a clients/ or client-accounts/ scope named under several enterprises: enterprises/<uuid> to export under")
	options := exportOptionFlags(fs)
	s, err := parseSettings(fs, args, "clickhouse-dsn", "max-rows")
	if err != nil {
		return err
	}
	format, opts, err := options()
	if err != nil {
		return err
	}
	kind := engine.ScopeKind(*scope)
	if kind == "" || !activity.ValidRef(*scope, activity.PrefixEnterprise, activity.PrefixClient, activity.PrefixClientAccount) {
		return &exitError{2, fmt.Errorf("--scope %q: want enterprises/<uuid>, clients/<uuid> or client-accounts/<uuid>", *scope)}
	}
	from, err := activity.ParseTimestamp(*fromS)
	if err != nil {
		return &exitError{2, fmt.Errorf("--from %q: %v", *fromS, err)}
	}
	to, err := activity.ParseTimestamp(*toS)
	if err != nil {
		return &exitError{2, fmt.Errorf("--to %q: %v", *toS, err)}
	}
	if to.Before(from) {
		return &exitError{2, errors.New("--from is after --to")}
	}
	if *pick != "" && (!activity.ValidRef(*pick, activity.PrefixEnterprise) || kind == engine.KindEnterprise && *pick != *scope) {
		return &exitError{2, fmt.Errorf("--enterprise %q: want enterprises/<uuid>, with a clients/ or client-accounts/ scope", *pick)}
	}
	if !engine.ValidCompression(*compression) {
		return &exitError{2, fmt.Errorf("--compression %q: want none, gzip or zstd", *compression)}
	}

	conn, err := s.ch.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	enterprise := *scope
	if kind != engine.KindEnterprise {
		parents, err := engine.NewScopes(conn).ScopeParents(ctx, kind, *scope)
		if err != nil {
			return fmt.Errorf("resolve scope %s: %w", *scope, err)
		}
		var note string
		if enterprise, note, err = scopeEnterprise(*scope, *pick, parents); err != nil {
			return &exitError{2, err}
		}
		if note != "" {
			fmt.Fprintln(stderr, "note:", note)
		}
	}
	q := source.Query{EnterpriseRef: enterprise, FromMs: engine.MillisCeil(from), ToMs: engine.MillisFloor(to)}
	switch kind {
	case engine.KindClient:
		q.ClientRef = *scope
	case engine.KindClientAccount:
		q.AccountRef = *scope
	}
	opts.Narrow(&q)
	var reader engine.Reader = source.New(s.ch, source.Options{})
	if enterprise == "" {
		reader = engine.EmptyReader{} // no activity for this scope: header only
	}

	// The file appears only when complete (temp file, fsync, rename).
	var w io.Writer = stdout
	var fw storage.Writer
	if *out != "" {
		st, err := storage.NewFile(filepath.Dir(*out))
		if err != nil {
			return err
		}
		if fw, err = st.Create(ctx, filepath.Base(*out)); err != nil {
			return err
		}
		w = fw
	}
	var cnt engine.Counters
	start := time.Now()
	p := startProgress(stderr, "export", cnt.Rows.Load)
	res, err := engine.Pipe(ctx, reader, q, nil, engine.Encoding{Format: format, Compression: *compression, Options: opts}, s.MaxRows, w, &cnt)
	p.Stop()
	if err == nil && fw != nil {
		err = fw.Commit(ctx)
	} else if fw != nil {
		fw.Abort()
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", *scope, err)
	}
	el := time.Since(start)
	fmt.Fprintf(stderr, "exported %d rows, %d bytes in %.3fs (%.0f rows/s, %.1f MB/s), sha256 %s\n",
		res.Rows, res.Bytes, el.Seconds(), float64(res.Rows)/el.Seconds(), float64(res.Bytes)/el.Seconds()/1e6, res.SHA256)
	if *out != "" {
		if abs, err := filepath.Abs(*out); err == nil {
			fmt.Fprintf(stderr, "wrote %s\n", abs)
		}
	}
	return nil
}

// scopeEnterprise picks the enterprise that a client or account scope is
// exported under (SPEC §6), given the (enterprise, client) pairs the scope has
// activity under (engine's ScopeParents) and pick, the --enterprise flag or "".
// Without pick: no activity anywhere gives "" (a header-only export), one
// enterprise gives it, several are an error naming them all. With pick, the
// export is restricted to pick whatever the pairs say (the query is the
// authority, and the pairs may be truncated); note then says when pick is not
// among them.
func scopeEnterprise(scope, pick string, parents [][2]string) (enterprise, note string, err error) {
	var ents []string
	for _, p := range parents {
		if !slices.Contains(ents, p[0]) {
			ents = append(ents, p[0])
		}
	}
	slices.Sort(ents)
	switch {
	case pick != "":
		if !slices.Contains(ents, pick) {
			note = fmt.Sprintf("%s has no activity under %s", scope, pick)
			if len(ents) > 0 {
				note += " (it has under " + strings.Join(ents, ", ") + ")"
			}
		}
		return pick, note, nil
	case len(ents) == 0:
		return "", "", nil
	case len(ents) == 1:
		return ents[0], "", nil
	}
	return "", "", fmt.Errorf("%s has activity under %d enterprises: %s; choose one with --enterprise",
		scope, len(ents), strings.Join(ents, ", "))
}
