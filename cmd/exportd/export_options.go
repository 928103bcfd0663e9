package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/exportd/exportd/engine"
)

// listFlag collects a repeatable, comma-separated flag: "--family a,b
// --family c" is [a b c].
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }

func (l *listFlag) Set(s string) error {
	l.set = true
	for _, v := range strings.Split(s, ",") {
		l.vals = append(l.vals, strings.TrimSpace(v))
	}
	return nil
}

// exportOptionFlags declares the SPEC §7 flags of `exportd export` on fs and
// returns the function that, after parsing, yields the validated format and
// options (an *exitError with status 2 naming the flag otherwise).
func exportOptionFlags(fs *flag.FlagSet) func() (string, engine.Options, error) {
	format := fs.String("format", engine.FormatCSV, "csv, jsonl or parquet")
	var columns, families, statuses, currencies listFlag
	fs.Var(&columns, "columns", "columns to export, in order (comma-separated; default all 17)")
	fs.Var(&families, "family", "keep only these families (comma-separated or repeated)")
	fs.Var(&statuses, "status", "keep only these statuses (comma-separated or repeated)")
	fs.Var(&currencies, "currency", "keep only these currencies (comma-separated or repeated)")
	zone := fs.String("time-zone", "", "IANA zone timestamps are rendered in (default UTC; not with parquet)")
	bom := fs.Bool("bom", false, "start the CSV with a UTF-8 byte order mark (csv only)")
	return func() (string, engine.Options, error) {
		if !engine.ValidFormat(*format) {
			return "", engine.Options{}, &exitError{2, fmt.Errorf("--format %q: want csv, jsonl or parquet", *format)}
		}
		opts := engine.Options{TimeZone: *zone, CSVBOM: *bom}
		if columns.set {
			opts.Columns = columns.vals
		}
		if families.set {
			opts.Families = families.vals
		}
		if statuses.set {
			opts.Statuses = statuses.vals
		}
		if currencies.set {
			opts.Currencies = currencies.vals
		}
		flagOf := map[string]string{
			engine.FieldColumns: "--columns", engine.FieldFamilies: "--family", engine.FieldStatuses: "--status",
			engine.FieldCurrencies: "--currency", engine.FieldTimeZone: "--time-zone", engine.FieldCSVBOM: "--bom",
		}
		if f := opts.Invalid(*format); f != "" {
			return "", engine.Options{}, &exitError{2, fmt.Errorf("%s: %s", flagOf[f], optionRule(f, *format))}
		}
		return *format, opts, nil
	}
}

// optionRule says what a flag accepts (SPEC §7).
func optionRule(field, format string) string {
	switch field {
	case engine.FieldColumns:
		return "want 1 to 17 distinct column names of operations_activity"
	case engine.FieldFamilies:
		return "want 1 to 50 distinct families (deposit, withdrawal, conversion, internal_transfer, on_ramp, off_ramp)"
	case engine.FieldStatuses:
		return "want 1 to 50 distinct statuses of SPEC §3"
	case engine.FieldCurrencies:
		return "want 1 to 50 distinct currencies of 1 to 16 characters without spaces"
	case engine.FieldTimeZone:
		if format == engine.FormatParquet {
			return "not with --format parquet (its timestamps are instants)"
		}
		return "want an IANA zone name such as Europe/Paris"
	}
	return "only with --format csv"
}
