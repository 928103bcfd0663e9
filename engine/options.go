package engine

// Options are the optional export settings of SPEC §7 (columns, filters,
// time zone, BOM). The control plane stores them as JSON beside the record
// (the json tags are the stored form), so adding a field needs no schema
// change; the zero value means every default.
type Options struct{}
