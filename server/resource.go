package server

import (
	"time"

	"github.com/exportd/exportd/engine"
)

// exportsPath is the collection path (SPEC §1).
const exportsPath = "/operations-activity-exports"

// resource is the export resource: exactly the seed's fields plus
// compression, checksum_sha256 and the §7 options (SPEC §6). Pointers are JSON null when nil.
type resource struct {
	ID              string         `json:"id"`
	Status          string         `json:"status"`
	Format          string         `json:"format"`
	Compression     string         `json:"compression"`
	FilterCriteria  filterCriteria `json:"filter_criteria"`
	RequestedScope  requestedScope `json:"requested_scope"`
	GeneratedBy     string         `json:"generated_by"`
	GeneratedAtUTC  string         `json:"generated_at_utc"`
	FinishedAtUTC   *string        `json:"finished_at_utc"`
	ExpiresAtUTC    *string        `json:"expires_at_utc"`
	RowCount        int64          `json:"row_count"`
	ByteSize        int64          `json:"byte_size"`
	ChecksumSHA256  *string        `json:"checksum_sha256"`
	DownloadPath    string         `json:"download_path"`
	StorageLocation string         `json:"storage_location"`
	FailureReason   *string        `json:"failure_reason"`
	// The SPEC §7 options, always present with their defaults (SPEC §6).
	Columns  []string `json:"columns"`
	TimeZone string   `json:"time_zone"`
	CSVBOM   bool     `json:"csv_bom"`
}

// filterCriteria echoes the dates and exactly the filter sets given.
type filterCriteria struct {
	DateFromUTC string   `json:"date_from_utc"`
	DateToUTC   string   `json:"date_to_utc"`
	Families    []string `json:"families,omitempty"`
	Statuses    []string `json:"statuses,omitempty"`
	Currencies  []string `json:"currencies,omitempty"`
}

type requestedScope struct {
	Kind string `json:"kind"`
	Ref  string `json:"ref"`
}

// timestamp renders the resource's own timestamps (generated, finished,
// expires) as RFC 3339 UTC in whole seconds, truncated, like the seed:
// "2026-05-01T10:00:00Z". The requested dates keep the precision they were
// asked with.
func timestamp(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func optTimestamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := timestamp(t)
	return &s
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// exportPath is the resource path of an export.
func exportPath(id string) string { return exportsPath + "/" + id }

// toResource renders an export record. The checksum is shown only for a
// ready (or since expired) file, never for a failed or cancelled export;
// a cancelled export has no failure_reason (SPEC §6).
func toResource(x *engine.Export) resource {
	r := resource{
		ID:          x.ID,
		Status:      x.Status,
		Format:      x.Format,
		Compression: x.Compression,
		FilterCriteria: filterCriteria{DateFromUTC: x.DateFrom, DateToUTC: x.DateTo,
			Families: x.Options.Families, Statuses: x.Options.Statuses, Currencies: x.Options.Currencies},
		RequestedScope:  requestedScope{Kind: x.ScopeKind, Ref: x.ScopeRef},
		GeneratedBy:     x.GeneratedBy,
		GeneratedAtUTC:  timestamp(x.GeneratedAt),
		FinishedAtUTC:   optTimestamp(x.FinishedAt),
		ExpiresAtUTC:    optTimestamp(x.ExpiresAt),
		RowCount:        x.RowCount,
		ByteSize:        x.ByteSize,
		DownloadPath:    exportPath(x.ID) + "/download",
		StorageLocation: x.StorageLocation,
		Columns:         x.Options.ColumnNames(),
		TimeZone:        x.Options.ZoneName(),
		CSVBOM:          x.Options.CSVBOM,
	}
	if x.Status == engine.StatusReady || x.Status == engine.StatusExpired {
		r.ChecksumSHA256 = optString(x.Checksum)
	}
	if x.Status == engine.StatusFailed {
		r.FailureReason = optString(x.FailureReason)
	}
	if r.Compression == "" {
		r.Compression = engine.CompressionNone
	}
	return r
}
