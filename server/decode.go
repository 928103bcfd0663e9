package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/exportd/exportd/engine"
	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/server/auth"
)

// maxCreateBody is the largest create body (SPEC §1: over 64 KiB is 400).
const maxCreateBody = 64 << 10

// maxJSONDepth bounds nesting; a create request is three levels deep.
const maxJSONDepth = 32

// createRequest is a validated create body, normalised.
type createRequest struct {
	Format      string
	Compression string // default applied
	From, To    time.Time
	// DateFrom and DateTo are From and To as RFC 3339 UTC with a Z and
	// without trailing fractional zeros: what the resource shows.
	DateFrom, DateTo string
	Kind, Ref        string
	// Options are the SPEC §7 settings, validated; unset ones are zero.
	Options engine.Options
}

// Field paths used in details.field.
const (
	fieldFormat      = "format"
	fieldCompression = "compression"
	fieldFilter      = "filter_criteria"
	fieldFrom        = "filter_criteria.date_from_utc"
	fieldTo          = "filter_criteria.date_to_utc"
	fieldScope       = "requested_scope"
	fieldKind        = "requested_scope.kind"
	fieldRef         = "requested_scope.ref"
	fieldColumns     = engine.FieldColumns
	fieldFamilies    = engine.FieldFamilies
	fieldStatuses    = engine.FieldStatuses
	fieldCurrencies  = engine.FieldCurrencies
	fieldTimeZone    = engine.FieldTimeZone
	fieldCSVBOM      = engine.FieldCSVBOM
)

// decodeCreate strictly decodes and validates a create body. It is pure and
// reports the first problem in this order:
//
//  1. body over 64 KiB → body_too_large;
//  2. not a single well-formed UTF-8 JSON object (syntax error, trailing
//     data, a duplicate key at any depth, nesting deeper than 32, a
//     top-level value that is not an object) → invalid_json;
//  3. a member not in the schema, top level first, then inside
//     filter_criteria and requested_scope, in document order → unknown_field;
//  4. a required member absent (format, filter_criteria and its two dates,
//     requested_scope and its kind and ref, in that order) → missing_required_field;
//  5. a member of the wrong JSON type, null included → invalid_field_value
//     (columns and the filter sets are arrays of strings, time_zone a
//     string, csv_bom a boolean);
//  6. values, in schema order: format not csv/jsonl/parquet →
//     unsupported_format; dates not RFC 3339 UTC → invalid_timestamp; from
//     after to → invalid_date_range; kind not a known kind or ref not a
//     scope ref → invalid_field_value; kind and ref prefix disagreeing →
//     invalid_scope; compression not none/gzip/zstd → invalid_field_value;
//     then the SPEC §7 options (engine.Options.Invalid: columns, families,
//     statuses, currencies, time_zone, csv_bom) → invalid_field_value.
//
// Member names are case-sensitive. details.field names the member by its
// dotted path.
func decodeCreate(body []byte) (*createRequest, *apiError) {
	if len(body) > maxCreateBody {
		return nil, invalid(reasonBodyTooLarge, "")
	}
	root, err := parseJSON(body)
	if err != nil || root.kind != jObject {
		return nil, invalid(reasonInvalidJSON, "")
	}
	return decodeRequest(root, "", true)
}

// decodeRequest runs steps 3-6 of decodeCreate on a parsed JSON object:
// a create request, or (dates false) the export template of a schedule
// (SPEC §9: a create request without filter_criteria dates, which are then
// unknown members, and filter_criteria optional). Every details.field is
// prefixed with prefix ("export." for a schedule's template).
func decodeRequest(root *jsonValue, prefix string, dates bool) (*createRequest, *apiError) {
	var err error
	f := func(field string) string { return prefix + field }
	// 3. Unknown members.
	if e := onlyKnown(root, prefix, fieldFormat, fieldCompression, fieldFilter, fieldScope,
		fieldColumns, fieldTimeZone, fieldCSVBOM); e != nil {
		return nil, e
	}
	filter, scope := root.get(fieldFilter), root.get(fieldScope)
	if filter != nil && filter.kind == jObject {
		known := []string{"date_from_utc", "date_to_utc", "families", "statuses", "currencies"}
		if !dates {
			known = known[2:]
		}
		if e := onlyKnown(filter, f(fieldFilter)+".", known...); e != nil {
			return nil, e
		}
	}
	if scope != nil && scope.kind == jObject {
		if e := onlyKnown(scope, f(fieldScope)+".", "kind", "ref"); e != nil {
			return nil, e
		}
	}

	// 4. Missing members.
	format := root.get(fieldFormat)
	if format == nil {
		return nil, invalid(reasonMissingField, f(fieldFormat))
	}
	if filter == nil && dates {
		return nil, invalid(reasonMissingField, f(fieldFilter))
	}
	var from, to, kind, ref *jsonValue
	if filter != nil && filter.kind == jObject && dates {
		if from = filter.get("date_from_utc"); from == nil {
			return nil, invalid(reasonMissingField, f(fieldFrom))
		}
		if to = filter.get("date_to_utc"); to == nil {
			return nil, invalid(reasonMissingField, f(fieldTo))
		}
	}
	if scope == nil {
		return nil, invalid(reasonMissingField, f(fieldScope))
	}
	if scope.kind == jObject {
		if kind = scope.get("kind"); kind == nil {
			return nil, invalid(reasonMissingField, f(fieldKind))
		}
		if ref = scope.get("ref"); ref == nil {
			return nil, invalid(reasonMissingField, f(fieldRef))
		}
	}
	compression := root.get(fieldCompression)
	columns, zone, bom := root.get(fieldColumns), root.get(fieldTimeZone), root.get(fieldCSVBOM)
	var families, statuses, currencies *jsonValue
	if filter != nil && filter.kind == jObject {
		families, statuses, currencies = filter.get("families"), filter.get("statuses"), filter.get("currencies")
	}

	// 5. Types.
	for _, c := range []struct {
		v     *jsonValue
		want  jsonKind
		field string
	}{
		{format, jString, fieldFormat},
		{filter, jObject, fieldFilter},
		{from, jString, fieldFrom},
		{to, jString, fieldTo},
		{scope, jObject, fieldScope},
		{kind, jString, fieldKind},
		{ref, jString, fieldRef},
		{compression, jString, fieldCompression},
		{columns, jArray, fieldColumns},
		{families, jArray, fieldFamilies},
		{statuses, jArray, fieldStatuses},
		{currencies, jArray, fieldCurrencies},
		{zone, jString, fieldTimeZone},
		{bom, jBool, fieldCSVBOM},
	} {
		if c.v != nil && c.v.kind != c.want {
			return nil, invalid(reasonInvalidValue, f(c.field))
		}
		if c.v != nil && c.want == jArray {
			for _, e := range c.v.elems {
				if e.kind != jString {
					return nil, invalid(reasonInvalidValue, f(c.field))
				}
			}
		}
	}

	// 6. Values.
	r := &createRequest{Format: format.str, Compression: engine.CompressionNone, Kind: kind.str, Ref: ref.str}
	if !engine.ValidFormat(r.Format) {
		return nil, invalid(reasonUnsupportedFormat, f(fieldFormat))
	}
	if dates {
		if r.From, err = activity.ParseTimestamp(from.str); err != nil {
			return nil, invalid(reasonInvalidTimestamp, f(fieldFrom))
		}
		if r.To, err = activity.ParseTimestamp(to.str); err != nil {
			return nil, invalid(reasonInvalidTimestamp, f(fieldTo))
		}
		if r.From.After(r.To) {
			return nil, invalid(reasonInvalidDateRange, f(fieldFilter))
		}
		r.DateFrom, r.DateTo = r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano)
	}
	switch r.Kind {
	case auth.KindEnterprise, auth.KindClient, auth.KindClientAccount:
	default:
		return nil, invalid(reasonInvalidValue, f(fieldKind))
	}
	refKind, ok := auth.KindOf(r.Ref)
	if !ok {
		return nil, invalid(reasonInvalidValue, f(fieldRef))
	}
	if refKind != r.Kind {
		return nil, invalid(reasonInvalidScope, f(fieldScope))
	}
	if compression != nil {
		r.Compression = compression.str
		if !engine.ValidCompression(r.Compression) {
			return nil, invalid(reasonInvalidValue, f(fieldCompression))
		}
	}
	r.Options = engine.Options{
		Columns:    stringList(columns),
		Families:   stringList(families),
		Statuses:   stringList(statuses),
		Currencies: stringList(currencies),
	}
	if zone != nil {
		r.Options.TimeZone = zone.str
	}
	if bom != nil {
		r.Options.CSVBOM = bom.b
	}
	field := r.Options.Invalid(r.Format)
	if zone != nil && zone.str == "" && (field == "" || field == fieldCSVBOM) {
		field = fieldTimeZone // "" is Options' "absent", never a zone name
	}
	if field != "" {
		return nil, invalid(reasonInvalidValue, f(field))
	}
	return r, nil
}

// stringList returns the elements of a JSON array of strings (type-checked
// before); nil for an absent member, an empty non-nil slice for [].
func stringList(v *jsonValue) []string {
	if v == nil {
		return nil
	}
	out := make([]string, len(v.elems))
	for i, e := range v.elems {
		out[i] = e.str
	}
	return out
}

// hash is the idempotency fingerprint of the request: a SHA-256 over its
// normalised form, so that bodies differing only in member order,
// whitespace, escapes, an explicit default (compression, columns, time
// zone, csv_bom) or an equivalent timestamp spelling ("+00:00" for "Z",
// trailing fractional zeros) count as the same request. The §7 options
// enter only when not the default, each as a tagged line, so a request
// without them keeps the fingerprint it had before they existed (keys
// claimed across an upgrade still replay). Filter sets keep their order:
// the resource echoes them as given.
func (r *createRequest) hash() string {
	h := sha256.New()
	line := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{'\n'})
	}
	for _, s := range []string{"v1", r.Format, r.Compression, r.DateFrom, r.DateTo, r.Kind, r.Ref} {
		line(s)
	}
	o := &r.Options
	set := func(tag string, vs []string) {
		if vs == nil {
			return
		}
		line(tag + "=" + strconv.Itoa(len(vs)))
		for _, v := range vs {
			line(v) // values hold no LF (validated), so lines stay unambiguous
		}
	}
	if o.Columns != nil && !slices.Equal(o.Columns, activity.Columns[:]) {
		set("columns", o.Columns)
	}
	set("families", o.Families)
	set("statuses", o.Statuses)
	set("currencies", o.Currencies)
	if z := o.ZoneName(); z != engine.DefaultTimeZone {
		line("time_zone=" + z)
	}
	if o.CSVBOM {
		line("csv_bom=true")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// onlyKnown returns unknown_field for the first member of obj not in names.
func onlyKnown(obj *jsonValue, prefix string, names ...string) *apiError {
	for _, m := range obj.members {
		known := false
		for _, n := range names {
			if m.key == n {
				known = true
				break
			}
		}
		if !known {
			return invalid(reasonUnknownField, prefix+clip(m.key, 100))
		}
	}
	return nil
}

// clip shortens s to at most n bytes on a rune boundary (details echo
// client input; keep it bounded).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

type jsonKind uint8

const (
	jNull jsonKind = iota
	jBool
	jNumber
	jString
	jObject
	jArray
)

// jsonValue is a parsed JSON value: enough of it to validate a schema.
// Numbers keep their text in str (a schedule's delay_minutes reads it).
type jsonValue struct {
	kind    jsonKind
	str     string
	b       bool         // booleans
	members []jsonMember // objects, in document order
	elems   []*jsonValue // arrays, in order
}

type jsonMember struct {
	key string
	val *jsonValue
}

// get returns the member named key, or nil.
func (v *jsonValue) get(key string) *jsonValue {
	for _, m := range v.members {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

var (
	errDuplicateKey = errors.New("duplicate object key")
	errTooDeep      = errors.New("JSON nested too deeply")
	errTrailing     = errors.New("data after the JSON value")
	errBadUTF8      = errors.New("body is not valid UTF-8")
)

// parseJSON parses exactly one JSON value from b (RFC 8259, I-JSON's
// duplicate-free objects): invalid UTF-8 is rejected rather than replaced.
func parseJSON(b []byte) (*jsonValue, error) {
	if !utf8.Valid(b) {
		return nil, errBadUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (*jsonValue, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return parseFrom(dec, tok, depth)
}

func parseFrom(dec *json.Decoder, tok json.Token, depth int) (*jsonValue, error) {
	switch t := tok.(type) {
	case nil:
		return &jsonValue{kind: jNull}, nil
	case bool:
		return &jsonValue{kind: jBool, b: t}, nil
	case json.Number:
		return &jsonValue{kind: jNumber, str: t.String()}, nil
	case string:
		return &jsonValue{kind: jString, str: t}, nil
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, errTooDeep
		}
		switch t {
		case '{':
			v := &jsonValue{kind: jObject}
			seen := map[string]struct{}{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				if _, dup := seen[key]; dup {
					return nil, errDuplicateKey
				}
				seen[key] = struct{}{}
				mv, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				v.members = append(v.members, jsonMember{key: key, val: mv})
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return v, nil
		case '[':
			v := &jsonValue{kind: jArray}
			for dec.More() {
				ev, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				v.elems = append(v.elems, ev)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return v, nil
		}
	}
	return nil, errors.New("unexpected JSON token")
}
