package engine

import (
	"fmt"
	"slices"
	"time"
	// Zone names resolve on a machine without zoneinfo (a distroless
	// image): the IANA database is compiled in (~450 KB).
	_ "time/tzdata"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/source"
)

// Formats (SPEC §1, §7).
const (
	FormatCSV     = "csv"
	FormatJSONL   = "jsonl"
	FormatParquet = "parquet"
)

// ValidFormat reports whether f is a supported format.
func ValidFormat(f string) bool { return f == FormatCSV || f == FormatJSONL || f == FormatParquet }

// DefaultTimeZone is the time zone of an export that names none.
const DefaultTimeZone = "UTC"

// MaxFilterValues bounds each filter set (SPEC §7).
const MaxFilterValues = 50

// Options are the optional export settings of SPEC §7 (columns, filters,
// time zone, BOM). The control plane stores them as JSON beside the record
// (the json tags are the stored form), so adding a field needs no schema
// change; the zero value means every default.
//
// Columns nil means all 17 in SPEC §3 order. A nil filter set means no
// filter (a given set is never empty). TimeZone "" means UTC.
type Options struct {
	Columns    []string `json:"columns,omitempty"`
	Families   []string `json:"families,omitempty"`
	Statuses   []string `json:"statuses,omitempty"`
	Currencies []string `json:"currencies,omitempty"`
	TimeZone   string   `json:"time_zone,omitempty"`
	CSVBOM     bool     `json:"csv_bom,omitempty"`
}

// Option field paths as the create request names them (details.field).
const (
	FieldColumns    = "columns"
	FieldFamilies   = "filter_criteria.families"
	FieldStatuses   = "filter_criteria.statuses"
	FieldCurrencies = "filter_criteria.currencies"
	FieldTimeZone   = "time_zone"
	FieldCSVBOM     = "csv_bom"
)

// Invalid returns the field path of the first invalid option for an export
// of format (checked in the order columns, families, statuses, currencies,
// time_zone, csv_bom), or "" when all are valid. Rules (SPEC §7): columns 1
// to 17 distinct §3 names; each filter set 1 to 50 distinct values, families
// and statuses from §3's enumerations, currencies as ingest accepts them; a
// loadable IANA zone other than "Local", and none other than UTC with
// parquet (its timestamps are instants); csv_bom true only with csv.
func (o *Options) Invalid(format string) string {
	if o.Columns != nil && (len(o.Columns) == 0 || len(o.Columns) > activity.NumColumns ||
		!distinct(o.Columns) || !all(o.Columns, func(s string) bool { return activity.ColumnIndex(s) >= 0 })) {
		return FieldColumns
	}
	if !validSet(o.Families, activity.ValidFamily) {
		return FieldFamilies
	}
	if !validSet(o.Statuses, activity.ValidStatus) {
		return FieldStatuses
	}
	if !validSet(o.Currencies, activity.ValidCurrency) {
		return FieldCurrencies
	}
	if o.TimeZone != "" {
		if _, err := LoadZone(o.TimeZone); err != nil {
			return FieldTimeZone
		}
		if format == FormatParquet && o.TimeZone != DefaultTimeZone {
			return FieldTimeZone
		}
	}
	if o.CSVBOM && format != FormatCSV {
		return FieldCSVBOM
	}
	return ""
}

func validSet(set []string, ok func(string) bool) bool {
	if set == nil {
		return true
	}
	return len(set) > 0 && len(set) <= MaxFilterValues && distinct(set) && all(set, ok)
}

func distinct(s []string) bool {
	for i := range s {
		if slices.Contains(s[:i], s[i]) {
			return false
		}
	}
	return true
}

func all(s []string, ok func(string) bool) bool {
	for _, v := range s {
		if !ok(v) {
			return false
		}
	}
	return true
}

// LoadZone resolves an IANA zone name; "" is UTC. "Local" is refused: the
// rendering would depend on the replica's configuration.
func LoadZone(name string) (*time.Location, error) {
	switch name {
	case "", DefaultTimeZone:
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("time zone %q: not an IANA zone name", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	return loc, nil
}

// ColumnNames returns the selected column names: Columns, or all 17.
func (o *Options) ColumnNames() []string {
	if o.Columns != nil {
		return o.Columns
	}
	return activity.Columns[:]
}

// ZoneName returns the time zone name the resource shows ("UTC" by default).
func (o *Options) ZoneName() string {
	if o.TimeZone == "" {
		return DefaultTimeZone
	}
	return o.TimeZone
}

// columnIndexes returns the selection as indices into activity.Columns,
// nil for all columns in order. Unknown names are skipped (validated before).
func (o *Options) columnIndexes() []int {
	if o.Columns == nil {
		return nil
	}
	cols := make([]int, 0, len(o.Columns))
	for _, name := range o.Columns {
		if i := activity.ColumnIndex(name); i >= 0 {
			cols = append(cols, i)
		}
	}
	return cols
}

// Narrow applies the options to a source query: only the selected columns
// are read, and the filter sets become predicates (beside the enterprise
// restriction the query always has).
func (o *Options) Narrow(q *source.Query) {
	q.Columns = o.columnIndexes()
	q.Families = o.Families
	q.Statuses = o.Statuses
	q.Currencies = o.Currencies
}
