package ingest

import (
	"strconv"
	"unicode/utf8"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
)

// NDJSON input (SPEC §4): one JSON object per line whose keys are exactly the
// CSV column names of SPEC §3. The parser is a small hand-written scanner
// rather than encoding/json: it must reject duplicate keys (encoding/json keeps
// the last one), it validates while it scans, and the loader's steady state
// does not allocate (values are decoded into a reused scratch buffer and
// appended straight into the columns of an activity.Block).

// FieldError reports why a line was rejected. Field names the offending
// column (or the unknown key); it is empty when the line is not a JSON object
// at all. The loader wraps it in a *LineError that adds the line number.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + quoteField(e.Field) + ": " + e.Reason
}

// quoteField prints known-looking names bare and anything else quoted, so an
// unknown key holding spaces or control characters stays readable.
func quoteField(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return strconv.Quote(s)
		}
	}
	return s
}

// ParseLine parses and validates one NDJSON line into a Row. It is strict:
// the line must be a single JSON object; every key must be one of the 17
// column names and appear at most once; values must be JSON strings (or null
// for optional columns). Errors are *FieldError.
//
// What is accepted and refused (SPEC §3, and §6 on ingest). Only what §3
// forbids is refused; text is carried exactly as the ledger recorded it.
//   - Required: occurred_at_utc, activity_id, operation_id, family, status,
//     enterprise_ref, account_ref, currency, amount, initiated_by (null or ""
//     is an error). The other seven are optional: absent, null and "" all
//     mean empty.
//   - UUIDs (ids and the UUID part of refs) are 8-4-4-4-12 hex digits in any
//     case and are stored lowercased, the canonical form the export orders by.
//     Refs must carry the prefixes of SPEC §3; family and status must be one of
//     its values, spelled exactly.
//   - Timestamps are RFC 3339 in UTC ("Z" or "+00:00"), with zero to three
//     fractional digits after a '.', between 1970-01-01 and 9999-12-31.
//   - Amounts fit Decimal(38,18) exactly (activity.ParseDecimal); never rounded.
//   - Text columns (counterparty_ref, currency, fee_currency, failure_reason,
//     reference) hold any valid UTF-8: TAB, CR, LF, NUL and every other
//     control character, leading or trailing whitespace, leading formula
//     characters (the CSV guards those at export). Values are JSON strings, so
//     control characters arrive escaped (RFC 8259 forbids them raw) and
//     invalid UTF-8 or a lone \u surrogate is refused.
//   - fee_amount and fee_currency are independent: either may be given
//     without the other and is stored as given.
//   - Length caps, all inclusive and above SPEC §6's minimums: currency and
//     fee_currency 64 characters (§6: at least 16), counterparty_ref 4 KiB
//     (§6: 1 KiB), failure_reason 64 KiB, reference 256 KiB (§6: 64 KiB), in
//     bytes of UTF-8; and a whole line at most MaxLineBytes (1 MiB) as
//     written, escapes included.
//   - Cross-column business rules (settled_at_utc after occurred_at_utc,
//     failure_reason only when failed, ...) are not enforced: the loader
//     carries what the upstream system recorded.
//
// A UTF-8 byte order mark is not accepted here; Load skips one at the start
// of its input.
func ParseLine(line []byte) (activity.Row, error) {
	// Decoded values are never longer than the line: one right-sized buffer.
	p := lineParser{scratch: make([]byte, 0, len(line))}
	if err := p.parse(line); err != nil {
		return activity.Row{}, err
	}
	return p.row(), nil
}

// Field indices, in activity.Columns order.
const (
	fOccurredAt = iota
	fActivityID
	fOperationID
	fFamily
	fStatus
	fEnterpriseRef
	fClientRef
	fAccountRef
	fCounterpartyRef
	fCurrency
	fAmount
	fFeeCurrency
	fFeeAmount
	fSettledAt
	fInitiatedBy
	fFailureReason
	fReference
	numFields
)

// requiredFields is the bit set of columns that must be present and non-empty.
const requiredFields = 1<<fOccurredAt | 1<<fActivityID | 1<<fOperationID | 1<<fFamily |
	1<<fStatus | 1<<fEnterpriseRef | 1<<fAccountRef | 1<<fCurrency | 1<<fAmount | 1<<fInitiatedBy

// Length caps for text columns, in bytes (currencies are capped in
// characters). They bound memory per row and are well above SPEC §6's
// minimums (16 characters, 1 KiB, 64 KiB), so that a value the contract
// promises never comes near them. Values at those minimums fit in a line even
// when written entirely as \uXXXX escapes; near these caps, a line of mostly
// escaped characters can pass MaxLineBytes (ErrLineTooLong).
const (
	maxCurrencyChars   = 64
	maxCounterpartyLen = 4 << 10
	maxFailureLen      = 64 << 10
	maxReferenceLen    = 256 << 10
)

func fieldIndex(key []byte) int {
	switch string(key) { // compiled to a comparison, no allocation
	case "occurred_at_utc":
		return fOccurredAt
	case "activity_id":
		return fActivityID
	case "operation_id":
		return fOperationID
	case "family":
		return fFamily
	case "status":
		return fStatus
	case "enterprise_ref":
		return fEnterpriseRef
	case "client_ref":
		return fClientRef
	case "account_ref":
		return fAccountRef
	case "counterparty_ref":
		return fCounterpartyRef
	case "currency":
		return fCurrency
	case "amount":
		return fAmount
	case "fee_currency":
		return fFeeCurrency
	case "fee_amount":
		return fFeeAmount
	case "settled_at_utc":
		return fSettledAt
	case "initiated_by":
		return fInitiatedBy
	case "failure_reason":
		return fFailureReason
	case "reference":
		return fReference
	}
	return -1
}

type span struct{ start, end int }

// lineParser decodes one line at a time. Its scratch buffer is reused, so a
// parser kept across lines (as the loader does) does not allocate in steady
// state. The zero value is ready to use.
type lineParser struct {
	scratch []byte
	val     [numFields]span // decoded values in scratch; empty when absent, null or ""
	seen    uint32          // keys present in the line (including null values)

	// typed values, valid after a successful parse
	occurredAt int64
	settledAt  int64
	hasSettled bool
	amount     proto.Decimal128
	fee        proto.Decimal128
	hasFee     bool
}

func (p *lineParser) bytes(f int) []byte { v := p.val[f]; return p.scratch[v.start:v.end] }

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(line []byte, i int) int {
	for i < len(line) && isWS(line[i]) {
		i++
	}
	return i
}

// parse scans line, then validates the values in column order.
func (p *lineParser) parse(line []byte) error {
	p.scratch = p.scratch[:0]
	p.val = [numFields]span{}
	p.seen = 0
	if err := p.scan(line); err != nil {
		return err
	}
	return p.validate()
}

func (p *lineParser) scan(line []byte) error {
	i := skipWS(line, 0)
	if i == len(line) {
		return &FieldError{Reason: "empty line (want a JSON object)"}
	}
	if line[i] != '{' {
		return &FieldError{Reason: "not a JSON object"}
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return p.checkEnd(line, i+1)
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return syntaxError("expected a quoted key")
		}
		mark := len(p.scratch)
		var err error
		var key span
		key, i, err = p.readString(line, i)
		if err != nil {
			return &FieldError{Reason: "invalid JSON: " + err.Error()}
		}
		f := fieldIndex(p.scratch[key.start:key.end])
		if f < 0 {
			return &FieldError{Field: truncateKey(p.scratch[key.start:key.end]), Reason: "unknown field"}
		}
		p.scratch = p.scratch[:mark]
		name := activity.Columns[f]
		if p.seen&(1<<f) != 0 {
			return &FieldError{Field: name, Reason: "duplicate key"}
		}
		p.seen |= 1 << f
		i = skipWS(line, i)
		if i >= len(line) || line[i] != ':' {
			return &FieldError{Field: name, Reason: "invalid JSON: expected ':' after key"}
		}
		i = skipWS(line, i+1)
		if i >= len(line) {
			return &FieldError{Field: name, Reason: "invalid JSON: missing value"}
		}
		switch c := line[i]; {
		case c == '"':
			var v span
			v, i, err = p.readString(line, i)
			if err != nil {
				return &FieldError{Field: name, Reason: "invalid JSON: " + err.Error()}
			}
			p.val[f] = v
		case c == 'n' && len(line)-i >= 4 && string(line[i:i+4]) == "null":
			i += 4
		default:
			return &FieldError{Field: name, Reason: "must be a JSON string, got " + jsonKind(c)}
		}
		i = skipWS(line, i)
		if i >= len(line) {
			return syntaxError("unterminated object")
		}
		switch line[i] {
		case ',':
			i = skipWS(line, i+1)
		case '}':
			return p.checkEnd(line, i+1)
		default:
			return syntaxError("expected ',' or '}' after the value of " + name)
		}
	}
}

func (p *lineParser) checkEnd(line []byte, i int) error {
	if skipWS(line, i) != len(line) {
		return syntaxError("trailing data after the object")
	}
	return nil
}

func syntaxError(msg string) error { return &FieldError{Reason: "invalid JSON: " + msg} }

func jsonKind(c byte) string {
	switch {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == '-' || c >= '0' && c <= '9':
		return "number"
	case c == 'n':
		return "malformed null"
	}
	return "malformed value"
}

func truncateKey(k []byte) string {
	const max = 64
	if len(k) > max {
		k = k[:max]
		for len(k) > 0 && !utf8.Valid(k) { // do not cut a character in half
			k = k[:len(k)-1]
		}
		return string(k) + "..."
	}
	return string(k)
}

type stringError string

func (e stringError) Error() string { return string(e) }

const (
	errUnterminated = stringError("unterminated string")
	errControl      = stringError("unescaped control character in string")
	errBadUTF8      = stringError("invalid UTF-8 in string")
	errBadEscape    = stringError("invalid escape in string")
	errSurrogate    = stringError("unpaired UTF-16 surrogate in \\u escape")
)

// readString decodes the JSON string starting at line[i] == '"' into
// p.scratch, returning its span and the index after the closing quote.
func (p *lineParser) readString(line []byte, i int) (span, int, error) {
	start := len(p.scratch)
	i++
	for {
		// Fast path: a run of plain ASCII.
		j := i
		for j < len(line) {
			c := line[j]
			if c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				break
			}
			j++
		}
		p.scratch = append(p.scratch, line[i:j]...)
		i = j
		if i >= len(line) {
			return span{}, i, errUnterminated
		}
		switch c := line[i]; {
		case c == '"':
			return span{start, len(p.scratch)}, i + 1, nil
		case c == '\\':
			var err error
			if i, err = p.readEscape(line, i); err != nil {
				return span{}, i, err
			}
		case c < 0x20:
			return span{}, i, errControl
		default:
			r, size := utf8.DecodeRune(line[i:])
			if r == utf8.RuneError && size <= 1 {
				return span{}, i, errBadUTF8
			}
			p.scratch = append(p.scratch, line[i:i+size]...)
			i += size
		}
	}
}

// readEscape decodes the escape at line[i] == '\\'.
func (p *lineParser) readEscape(line []byte, i int) (int, error) {
	if i+1 >= len(line) {
		return i, errUnterminated
	}
	var c byte
	switch line[i+1] {
	case '"':
		c = '"'
	case '\\':
		c = '\\'
	case '/':
		c = '/'
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		r, ok := hex4(line, i+2)
		if !ok {
			return i, errBadEscape
		}
		i += 6
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return i, errSurrogate
		case r >= 0xD800 && r <= 0xDBFF:
			if i+1 >= len(line) || line[i] != '\\' || line[i+1] != 'u' {
				return i, errSurrogate
			}
			lo, ok := hex4(line, i+2)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return i, errSurrogate
			}
			i += 6
			r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
		}
		p.scratch = utf8.AppendRune(p.scratch, r)
		return i, nil
	default:
		return i, errBadEscape
	}
	p.scratch = append(p.scratch, c)
	return i + 2, nil
}

func hex4(line []byte, i int) (rune, bool) {
	if i+4 > len(line) {
		return 0, false
	}
	var r rune
	for _, c := range line[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// row copies the parsed values into a Row: one string allocation shared by
// all text fields.
func (p *lineParser) row() activity.Row {
	all := string(p.scratch)
	s := func(f int) string { return all[p.val[f].start:p.val[f].end] }
	r := activity.Row{
		OccurredAt:      p.occurredAt,
		ActivityID:      s(fActivityID),
		OperationID:     s(fOperationID),
		Family:          canonicalEnum(s(fFamily), activity.Families),
		Status:          canonicalEnum(s(fStatus), activity.Statuses),
		EnterpriseRef:   s(fEnterpriseRef),
		ClientRef:       s(fClientRef),
		AccountRef:      s(fAccountRef),
		CounterpartyRef: s(fCounterpartyRef),
		Currency:        s(fCurrency),
		Amount:          p.amount,
		FeeCurrency:     s(fFeeCurrency),
		InitiatedBy:     s(fInitiatedBy),
		FailureReason:   s(fFailureReason),
		Reference:       s(fReference),
	}
	if p.hasFee {
		fee := p.fee
		r.FeeAmount = &fee
	}
	if p.hasSettled {
		at := p.settledAt
		r.SettledAt = &at
	}
	return r
}

// canonicalEnum returns the package-level copy of an enum value, so rows do
// not pin the line's scratch string through their most repeated fields.
func canonicalEnum(s string, set []string) string {
	for _, v := range set {
		if v == s {
			return v
		}
	}
	return s // unreachable after validation
}

// appendTo appends the parsed row to b without allocating (beyond column growth).
func (p *lineParser) appendTo(b *activity.Block) {
	b.OccurredAt.Append(p.occurredAt)
	b.ActivityID.Append(p.bytes(fActivityID))
	b.OperationID.Append(p.bytes(fOperationID))
	b.Family.AppendBytes(p.bytes(fFamily))
	b.Status.AppendBytes(p.bytes(fStatus))
	b.EnterpriseRef.AppendBytes(p.bytes(fEnterpriseRef))
	b.ClientRef.AppendBytes(p.bytes(fClientRef))
	b.AccountRef.AppendBytes(p.bytes(fAccountRef))
	b.CounterpartyRef.AppendBytes(p.bytes(fCounterpartyRef))
	b.Currency.AppendBytes(p.bytes(fCurrency))
	b.Amount.Append(p.amount)
	b.FeeCurrency.AppendBytes(p.bytes(fFeeCurrency))
	b.FeeAmount.Append(proto.Nullable[proto.Decimal128]{Value: p.fee, Set: p.hasFee})
	b.SettledAt.Append(proto.Nullable[int64]{Value: p.settledAt, Set: p.hasSettled})
	b.InitiatedBy.AppendBytes(p.bytes(fInitiatedBy))
	b.FailureReason.AppendBytes(p.bytes(fFailureReason))
	b.Reference.AppendBytes(p.bytes(fReference))
}
