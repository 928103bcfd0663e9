package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// A setting that does not parse is named with its value, but a DSN's
// password never shows (url.Parse's error repeats the whole DSN).
func TestSettingsErrorHidesDSNPassword(t *testing.T) {
	for _, dsn := range []string{
		"clickhouse://user:hunter2secret@h:port/db",
		"clickhouse://us er:hunter2secret@127.0.0.1:9000/",
		"clickhouse://user:hunter2secret@h/db%zz",
		"http://user:hunter2secret@h:9000/db",
	} {
		t.Setenv("EXPORTD_CLICKHOUSE_DSN", dsn)
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		_, err := parseSettings(fs, nil, "clickhouse-dsn")
		if err == nil {
			t.Fatalf("%s accepted", dsn)
		}
		if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "EXPORTD_CLICKHOUSE_DSN") {
			t.Fatalf("error %q", err)
		}
	}
}
