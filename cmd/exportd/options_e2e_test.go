package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exportd/exportd/engine/activity"
)

// TestE2ECLIExportOptions: `exportd export` with the SPEC §7 flags writes
// the full export's rows narrowed to the columns (in order), filtered by
// family, status and currency, timestamps in the zone, with the BOM; JSON
// Lines and Parquet come out too; a bad flag exits 2 naming it.
func TestE2ECLIExportOptions(t *testing.T) {
	mustExportd(t, nil, "migrate")
	mustExportd(t, nil, "ingest", "--generate", "4000", "--enterprises", "1", "--seed", "14")
	ent := strings.Fields(mustExportd(t, nil, "ingest", "--print-enterprises", "--enterprises", "1", "--seed", "14").stdout)[0]
	from, to := "2026-01-01T00:00:00Z", "2026-06-30T23:59:59.999Z"
	all := parseCSV(t, []byte(mustExportd(t, nil, "export", "--scope", ent, "--from", from, "--to", to).stdout))
	idx := map[string]int{} // parseCSV checked the header and dropped it
	for i, c := range activity.Columns {
		idx[c] = i
	}
	cols := []string{"currency", "occurred_at_utc", "amount", "status", "settled_at_utc"}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	zoned := func(s string) string {
		if s == "" {
			return ""
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return ts.In(paris).Format("2006-01-02T15:04:05.000Z07:00")
	}
	var want []string
	for _, rec := range all {
		fam, st := rec[idx["family"]], rec[idx["status"]]
		if (fam != "deposit" && fam != "on_ramp") || !slices.Contains([]string{"settled", "executed", "failed"}, st) {
			continue
		}
		var cells []string
		for _, c := range cols {
			v := rec[idx[c]]
			if strings.HasSuffix(c, "_at_utc") {
				v = zoned(v)
			}
			cells = append(cells, v)
		}
		want = append(want, strings.Join(cells, ","))
	}
	if len(want) < 50 {
		t.Fatalf("only %d matching rows: the data set does not exercise the filters", len(want))
	}
	out := filepath.Join(t.TempDir(), "sel.csv")
	mustExportd(t, nil, "export", "--scope", ent, "--from", from, "--to", to, "--out", out, "--columns", strings.Join(cols, ","),
		"--family", "deposit", "--family", "on_ramp", "--status", "settled,executed,failed", "--time-zone", "Europe/Paris", "--bom")
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("\xef\xbb\xbf"+strings.Join(cols, ",")+"\r\n")) {
		t.Fatalf("header %q", data[:min(len(data), 80)])
	}
	// Generated currencies and amounts never need quoting, so lines compare as text.
	got := strings.Split(strings.TrimSuffix(string(data[3:]), "\r\n"), "\r\n")[1:]
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("selected export: %d rows, want %d; first %q, want %q", len(got), len(want), got[0], want[0])
	}

	// A currency filter with JSON Lines.
	cur := all[0][idx["currency"]]
	jl := mustExportd(t, nil, "export", "--scope", ent, "--from", from, "--to", to, "--format", "jsonl", "--currency", cur, "--columns", "activity_id,currency")
	n := 0
	for _, rec := range all {
		if rec[idx["currency"]] == cur {
			n++
		}
	}
	lines := strings.Split(strings.TrimSuffix(jl.stdout, "\n"), "\n")
	var first map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["currency"] != cur || len(first) != 2 || len(lines) != n {
		t.Fatalf("jsonl: %d lines (want %d), first %q (%v)", len(lines), n, lines[0], err)
	}

	pq := mustExportd(t, nil, "export", "--scope", ent, "--from", from, "--to", to, "--format", "parquet", "--compression", "zstd")
	if !strings.HasPrefix(pq.stdout, "PAR1") || !strings.HasSuffix(pq.stdout, "PAR1") {
		t.Fatal("parquet: not a Parquet file")
	}

	for _, c := range []struct{ flag, value string }{
		{"--columns", "amount,balance"}, {"--family", "refund"}, {"--status", "done"}, {"--currency", "US D"},
		{"--time-zone", "Mars/Olympus"}, {"--format", "xlsx"},
	} {
		r := exportd(t, nil, "", "export", "--scope", ent, "--from", from, "--to", to, c.flag, c.value)
		if r.code != 2 || !strings.Contains(r.stderr, c.flag) {
			t.Errorf("%s %s: exit %d, %q", c.flag, c.value, r.code, r.stderr)
		}
	}
	for _, args := range [][]string{{"--format", "jsonl", "--bom"}, {"--format", "parquet", "--time-zone", "Europe/Paris"}} {
		r := exportd(t, nil, "", append([]string{"export", "--scope", ent, "--from", from, "--to", to}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, args[2]) {
			t.Errorf("%v: exit %d, %q", args, r.code, r.stderr)
		}
	}
}
