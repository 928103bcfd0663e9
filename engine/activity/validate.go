package activity

import (
	"errors"
	"strings"
	"time"
)

// Families are the allowed values of the family column.
var Families = []string{"deposit", "withdrawal", "conversion", "internal_transfer", "on_ramp", "off_ramp"}

// Statuses are the allowed values of the status column.
var Statuses = []string{"requested", "admissible", "pending_approval", "executing", "executed",
	"partially_settled", "settled", "ledger_visible", "failed", "cancelled"}

// Ref prefixes (SPEC §3).
const (
	PrefixEnterprise     = "enterprises/"
	PrefixClient         = "clients/"
	PrefixClientAccount  = "client-accounts/"
	PrefixMasterAccount  = "master-accounts/"
	PrefixUser           = "users/"
	PrefixServiceAccount = "service-accounts/"
)

// ValidFamily reports whether s is one of Families.
func ValidFamily(s string) bool { return oneOf(s, Families) }

// ValidStatus reports whether s is one of Statuses.
func ValidStatus(s string) bool { return oneOf(s, Statuses) }

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

// ValidUUID reports whether s is a UUID in canonical lowercase text form
// (8-4-4-4-12 lowercase hex digits).
func ValidUUID(s string) bool {
	if len(s) != UUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// ValidRef reports whether s is prefix followed by a canonical UUID, for one of prefixes.
func ValidRef(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) && ValidUUID(s[len(p):]) {
			return true
		}
	}
	return false
}

// ErrTimestamp reports a timestamp that is not RFC 3339 UTC with at most
// millisecond precision.
var ErrTimestamp = errors.New("not an RFC 3339 UTC timestamp with at most millisecond precision")

// ParseTimestampMillis parses an RFC 3339 timestamp in UTC ("Z" or "+00:00")
// with at most millisecond precision, returning Unix milliseconds.
func ParseTimestampMillis(s string) (int64, error) {
	t, err := ParseTimestamp(s)
	if err != nil {
		return 0, err
	}
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		return 0, ErrTimestamp
	}
	return t.UnixMilli(), nil
}

// ParseTimestamp parses an RFC 3339 timestamp whose offset is UTC ("Z" or
// "+00:00"), with any fractional precision up to nanoseconds.
func ParseTimestamp(s string) (time.Time, error) {
	if !(strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "+00:00")) || !strings.Contains(s, "T") {
		return time.Time{}, ErrTimestamp
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, ErrTimestamp
	}
	return t.UTC(), nil
}

// AppendTimestamp appends Unix milliseconds as "2006-01-02T15:04:05.000Z"
// (always three fractional digits), without time.Format or allocation.
// Years outside 0000-9999 are clamped by the caller's validation at ingest.
func AppendTimestamp(dst []byte, ms int64) []byte {
	days := floorDiv(ms, 86_400_000)
	rem := ms - days*86_400_000
	y, m, d := civilFromDays(days)
	secs := rem / 1000
	milli := rem % 1000
	hh, mm, ss := secs/3600, secs/60%60, secs%60
	var b [24]byte
	put4(b[0:], y)
	b[4] = '-'
	put2(b[5:], m)
	b[7] = '-'
	put2(b[8:], d)
	b[10] = 'T'
	put2(b[11:], hh)
	b[13] = ':'
	put2(b[14:], mm)
	b[16] = ':'
	put2(b[17:], ss)
	b[19] = '.'
	b[20] = byte('0' + milli/100)
	b[21] = byte('0' + milli/10%10)
	b[22] = byte('0' + milli%10)
	b[23] = 'Z'
	return append(dst, b[:]...)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's algorithm, http://howardhinnant.github.io/date_algorithms.html).
func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func put2(b []byte, v int64) {
	b[0] = byte('0' + v/10)
	b[1] = byte('0' + v%10)
}

func put4(b []byte, v int64) {
	b[0] = byte('0' + v/1000%10)
	b[1] = byte('0' + v/100%10)
	b[2] = byte('0' + v/10%10)
	b[3] = byte('0' + v%10)
}

// MinTimestamp and MaxTimestamp bound accepted timestamps (years 1970..9999),
// so that AppendTimestamp always prints four-digit years.
var (
	MinTimestamp = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	MaxTimestamp = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC).UnixMilli()
)
