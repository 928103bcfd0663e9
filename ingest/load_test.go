package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/exportd/exportd/engine/chconn"
)

func stagingTables(t testing.TB, cfg chconn.Config) uint64 {
	return queryUint64(t, cfg, `SELECT count() AS v FROM system.tables WHERE name LIKE '`+StagingPrefix+`%'`)
}

// checkNothingLoaded asserts that no row of the enterprises reached the
// table and that no staging table is left.
func checkNothingLoaded(t *testing.T, cfg chconn.Config, seed int64, enterprises int) {
	t.Helper()
	for e := 0; e < enterprises; e++ {
		if n := countEnterprise(t, cfg, EnterpriseRef(seed, e)); n != 0 {
			t.Errorf("enterprise %d: %d rows loaded, want 0", e, n)
		}
	}
	if n := stagingTables(t, cfg); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
}

func TestLoadGoodFile(t *testing.T) {
	cfg := migratedConfig(t)
	const seed = 3001
	opts := GenerateOptions{N: 25_000, Seed: seed, Enterprises: 2}
	data := generateNDJSON(t, opts)
	// A byte order mark, CRLF line ends on some lines, no final newline
	// before two trailing blank lines: all accepted.
	input := append([]byte("\xef\xbb\xbf"), bytes.Replace(data, []byte("}\n"), []byte("}\r\n"), 100)...)
	input = append(bytes.TrimSuffix(input, []byte("\n")), "\n \n\t"...)
	var progress []int64
	stats, err := Load(context.Background(), cfg, bytes.NewReader(input), LoadOptions{
		BatchRows: 4_000, BatchBytes: 1 << 20,
		Progress: func(rows int64) { progress = append(progress, rows) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Rows != opts.N || stats.Bytes != int64(len(input)) || stats.Lines != opts.N+2 || stats.Partitions == 0 || stats.StagingLeft != "" {
		t.Errorf("stats = %+v", stats)
	}
	if len(progress) < 7 || progress[len(progress)-1] != opts.N {
		t.Errorf("progress = %v", progress)
	}
	stored := sortLines(selectNDJSON(t, cfg, EnterpriseRef(seed, 0), EnterpriseRef(seed, 1)))
	if !bytes.Equal(stored, sortLines(data)) {
		t.Fatal("stored rows differ from the file")
	}
	if n := stagingTables(t, cfg); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
}

func TestLoadBadLineAfterBatches(t *testing.T) {
	cfg := migratedConfig(t)
	const seed = 3002
	data := generateNDJSON(t, GenerateOptions{N: 10_000, Seed: seed, Enterprises: 2})
	before := queryUint64(t, cfg, "SELECT count() AS v FROM "+ActivityTable)
	bad := bytes.Replace(lastLine(data), []byte(`"amount":"`), []byte(`"amount":"1e3`), 1)
	input := append(data, bad...)
	var staged int64
	_, err := Load(context.Background(), cfg, bytes.NewReader(input), LoadOptions{
		BatchRows: 1000, Progress: func(rows int64) { staged = rows }})
	// The producer cannot reach the last line before the inserter has sent
	// block 8 (two blocks circulate), so the failure comes after real inserts.
	if staged < 8000 {
		t.Errorf("only %d rows staged before the error, want the test to cover sent batches", staged)
	}
	var le *LineError
	var fe *FieldError
	if !errors.As(err, &le) || le.Line != 10_001 || !errors.As(err, &fe) || fe.Field != "amount" {
		t.Fatalf("err = %v, want line 10001, field amount", err)
	}
	if !strings.HasPrefix(err.Error(), "line 10001: field amount: ") {
		t.Errorf("message %q", err)
	}
	checkNothingLoaded(t, cfg, seed, 2)
	if after := queryUint64(t, cfg, "SELECT count() AS v FROM "+ActivityTable); after != before {
		t.Errorf("table grew from %d to %d rows", before, after)
	}
}

func lastLine(data []byte) []byte {
	data = bytes.TrimSuffix(data, []byte("\n"))
	return append(data[bytes.LastIndexByte(data, '\n')+1:], '\n')
}

func TestLoadRejects(t *testing.T) {
	cfg := migratedConfig(t)
	const seed = 3003
	data := generateNDJSON(t, GenerateOptions{N: 3_000, Seed: seed, Enterprises: 1})
	lines := bytes.SplitAfter(data, []byte("\n"))
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name  string
		input []byte
		line  int64
		want  string
	}{
		{"blank line inside", join(join(lines[:1500]...), []byte("\n"), join(lines[1500:3000]...)), 1501, "empty line"},
		{"whitespace line inside", join(join(lines[:10]...), []byte("  \r\n"), join(lines[10:3000]...)), 11, "empty line"},
		{"line too long", join(join(lines[:2999]...), []byte(`{"reference":"`+strings.Repeat("x", MaxLineBytes)+`"}`+"\n")), 3000, "longer than 1 MiB"},
		{"long line at end without newline", join(join(lines[:2000]...), bytes.Repeat([]byte(" "), MaxLineBytes+1)), 2001, "longer than 1 MiB"},
		{"not json", join(join(lines[:2500]...), []byte("hello\n"), join(lines[2500:3000]...)), 2501, "not a JSON object"},
		{"duplicate key", join(lines[0], bytes.Replace(lines[1], []byte(`{`), []byte(`{"family":"deposit",`), 1)), 2, "field family: duplicate key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(context.Background(), cfg, bytes.NewReader(tt.input), LoadOptions{BatchRows: 500})
			var le *LineError
			if !errors.As(err, &le) || le.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want line %d: ...%s", err, tt.line, tt.want)
			}
			checkNothingLoaded(t, cfg, seed, 1)
		})
	}
}

func TestLoadEmpty(t *testing.T) {
	cfg := migratedConfig(t)
	for _, input := range []string{"", "\n", "\xef\xbb\xbf"} {
		stats, err := Load(context.Background(), cfg, strings.NewReader(input), LoadOptions{})
		if err != nil || stats.Rows != 0 {
			t.Errorf("%q: %+v, %v", input, stats, err)
		}
	}
	if n := stagingTables(t, cfg); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
}

// cancelReader cancels a context once n bytes have been read.
type cancelReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	n, err := c.r.Read(p[:min(len(p), 4096)])
	c.n -= n
	return n, err
}

func TestLoadCancelled(t *testing.T) {
	cfg := migratedConfig(t)
	const seed = 3004
	data := generateNDJSON(t, GenerateOptions{N: 20_000, Seed: seed, Enterprises: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Load(ctx, cfg, &cancelReader{r: bytes.NewReader(data), n: len(data) / 2, cancel: cancel}, LoadOptions{BatchRows: 1000})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	checkNothingLoaded(t, cfg, seed, 1)
}

func TestLoadOptionsValidate(t *testing.T) {
	if (LoadOptions{BatchRows: -1}).Validate() == nil || (LoadOptions{BatchBytes: -1}).Validate() == nil {
		t.Error("negative batch sizes accepted")
	}
	if err := (LoadOptions{}).Validate(); err != nil {
		t.Error(err)
	}
}
