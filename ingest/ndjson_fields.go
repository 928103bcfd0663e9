package ingest

import (
	"strings"
	"unicode/utf8"

	"github.com/exportd/exportd/engine/activity"
)

// Validation of decoded NDJSON values, column by column (rules in ParseLine's
// doc comment). Checks run in activity.Columns order, so a line with several
// problems always reports the same one first.

var (
	reasonFamily = "must be one of " + strings.Join(activity.Families, ", ")
	reasonStatus = "must be one of " + strings.Join(activity.Statuses, ", ")
)

const (
	reasonTimestamp = "not an RFC 3339 UTC timestamp (Z or +00:00) with at most millisecond precision"
	reasonTSRange   = "outside 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z"
	reasonUUID      = "not a UUID (8-4-4-4-12 hex digits)"
)

func (p *lineParser) validate() error {
	p.hasFee, p.hasSettled = false, false
	for f := 0; f < numFields; f++ {
		v := p.bytes(f)
		if len(v) == 0 {
			if requiredFields&(1<<f) != 0 {
				return p.missing(f)
			}
			continue
		}
		if err := p.validateField(f, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *lineParser) missing(f int) error {
	reason := "required field is missing"
	if p.seen&(1<<f) != 0 {
		reason = "required field is null or empty"
	}
	return &FieldError{Field: activity.Columns[f], Reason: reason}
}

func (p *lineParser) validateField(f int, v []byte) error {
	reason := ""
	switch f {
	case fOccurredAt, fSettledAt:
		ms, r := parseTimestamp(v)
		if r != "" {
			reason = r
		} else if f == fOccurredAt {
			p.occurredAt = ms
		} else {
			p.settledAt, p.hasSettled = ms, true
		}
	case fActivityID, fOperationID:
		if !normalizeUUID(v) {
			reason = reasonUUID
		}
	case fFamily:
		if !activity.ValidFamily(string(v)) {
			reason = reasonFamily
		}
	case fStatus:
		if !activity.ValidStatus(string(v)) {
			reason = reasonStatus
		}
	case fEnterpriseRef:
		if !normalizeRef(v, activity.PrefixEnterprise) {
			reason = "must be enterprises/<uuid>"
		}
	case fClientRef:
		if !normalizeRef(v, activity.PrefixClient) {
			reason = "must be clients/<uuid> or empty"
		}
	case fAccountRef:
		if !normalizeRef(v, activity.PrefixClientAccount) && !normalizeRef(v, activity.PrefixMasterAccount) {
			reason = "must be client-accounts/<uuid> or master-accounts/<uuid>"
		}
	case fInitiatedBy:
		if !normalizeRef(v, activity.PrefixUser) && !normalizeRef(v, activity.PrefixServiceAccount) {
			reason = "must be users/<uuid> or service-accounts/<uuid>"
		}
	case fCurrency, fFeeCurrency:
		reason = checkChars(v, maxCurrencyChars)
	case fAmount, fFeeAmount:
		d, err := activity.ParseDecimal(string(v))
		if err != nil {
			reason = err.Error()
		} else if f == fAmount {
			p.amount = d
		} else {
			p.fee, p.hasFee = d, true
		}
	case fCounterpartyRef:
		reason = checkLen(v, maxCounterpartyLen)
	case fFailureReason:
		reason = checkLen(v, maxFailureLen)
	case fReference:
		reason = checkLen(v, maxReferenceLen)
	}
	if reason != "" {
		return &FieldError{Field: activity.Columns[f], Reason: reason}
	}
	return nil
}

// checkChars caps text at max characters (code points). Any character is
// allowed: the scanner has already checked that v is valid UTF-8.
func checkChars(v []byte, max int) string {
	if len(v) > max && utf8.RuneCount(v) > max {
		return "longer than " + itoa(max) + " characters"
	}
	return ""
}

// checkLen caps text at max bytes. Any character is allowed: the scanner has
// already checked that v is valid UTF-8.
func checkLen(v []byte, max int) string {
	if len(v) > max {
		return "longer than " + itoa(max) + " bytes"
	}
	return ""
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

// normalizeUUID reports whether v is 8-4-4-4-12 hex digits in any case and
// lowercases it in place.
func normalizeUUID(v []byte) bool {
	if len(v) != activity.UUIDLen {
		return false
	}
	for i, c := range v {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			switch {
			case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			case c >= 'A' && c <= 'F':
				v[i] = c + ('a' - 'A')
			default:
				return false
			}
		}
	}
	return true
}

// normalizeRef reports whether v is prefix + UUID and lowercases the UUID.
func normalizeRef(v []byte, prefix string) bool {
	return len(v) > len(prefix) && string(v[:len(prefix)]) == prefix && normalizeUUID(v[len(prefix):])
}

// parseTimestamp parses YYYY-MM-DDTHH:MM:SS[.f{1,3}](Z|+00:00) into Unix
// milliseconds. It accepts exactly what activity.ParseTimestampMillis accepts,
// minus ',' as the fraction separator and more than three fractional digits
// (SPEC §4: at most millisecond precision); it exists because time.Parse
// allocates on every call. The empty reason means success.
func parseTimestamp(b []byte) (int64, string) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, reasonTimestamp
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	hh, ok4 := digits(b[11:13])
	mm, ok5 := digits(b[14:16])
	ss, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, reasonTimestamp
	}
	i := 19
	var ms int64
	if b[i] == '.' {
		i++
		n := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if n == 3 {
				return 0, reasonTimestamp
			}
			ms = ms*10 + int64(b[i]-'0')
			n++
		}
		if n == 0 {
			return 0, reasonTimestamp
		}
		for ; n < 3; n++ {
			ms *= 10
		}
	}
	if zone := b[i:]; string(zone) != "Z" && string(zone) != "+00:00" {
		return 0, reasonTimestamp
	}
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || hh > 23 || mm > 59 || ss > 59 {
		return 0, reasonTimestamp
	}
	t := ((daysFromCivil(y, mo, d)*24+hh)*60+mm)*60 + ss
	t = t*1000 + ms
	if t < activity.MinTimestamp || t > activity.MaxTimestamp {
		return 0, reasonTSRange
	}
	return t, ""
}

func digits(b []byte) (int64, bool) {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm, http://howardhinnant.github.io/date_algorithms.html).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
