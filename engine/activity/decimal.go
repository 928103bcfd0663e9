package activity

import (
	"errors"
	"math/bits"

	"github.com/ClickHouse/ch-go/proto"
)

// Scale is the number of fractional digits of amount columns: Decimal(38,18).
const Scale = 18

// MaxIntDigits is the number of integer digits an amount may have (38 - 18).
const MaxIntDigits = 38 - Scale

const pow18 = 1_000_000_000_000_000_000
const pow19 = 10_000_000_000_000_000_000

// ErrDecimal reports a malformed or out-of-range decimal.
var ErrDecimal = errors.New("not an exact decimal with at most 20 integer and 18 fractional digits")

// ParseDecimal parses a plain decimal string ("-250.5", "0.000000000000000001",
// "+12") into a Decimal(38,18) raw value. Exponents, spaces, "NaN", "Inf",
// more than 20 integer digits or more than 18 fractional digits are rejected:
// the value must fit the column exactly, never rounded.
func ParseDecimal(s string) (proto.Decimal128, error) {
	var zero proto.Decimal128
	i := 0
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	// Integer part: accumulate as 128-bit (hi, lo).
	var hi, lo uint64
	intDigits, sig := 0, 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		intDigits++
		if sig == 0 && s[i] == '0' {
			continue
		}
		sig++
		if sig > MaxIntDigits {
			return zero, ErrDecimal
		}
		hi, lo = mul10add(hi, lo, uint64(s[i]-'0'))
	}
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			fracDigits++
			if fracDigits > Scale {
				return zero, ErrDecimal
			}
			hi, lo = mul10add(hi, lo, uint64(s[i]-'0'))
		}
		if fracDigits == 0 {
			return zero, ErrDecimal
		}
	}
	if i != len(s) || intDigits == 0 {
		return zero, ErrDecimal
	}
	for k := fracDigits; k < Scale; k++ {
		hi, lo = mul10add(hi, lo, 0)
	}
	if neg {
		hi, lo = negate(hi, lo)
	}
	return proto.Decimal128{Low: lo, High: hi}, nil
}

func mul10add(hi, lo, d uint64) (uint64, uint64) {
	h, l := bits.Mul64(lo, 10)
	h += hi * 10
	l, c := bits.Add64(l, d, 0)
	return h + c, l
}

func negate(hi, lo uint64) (uint64, uint64) {
	lo = ^lo
	hi = ^hi
	lo, c := bits.Add64(lo, 1, 0)
	return hi + c, lo
}

// AppendDecimal appends the canonical text of a Decimal(38,18) raw value:
// no exponent, no trailing fractional zeros, no trailing dot, "0" never "-0".
// It does not allocate when dst has room.
func AppendDecimal(dst []byte, d proto.Decimal128) []byte {
	hi, lo := d.High, d.Low
	if int64(hi) < 0 {
		hi, lo = negate(hi, lo)
		if hi|lo != 0 {
			dst = append(dst, '-')
		}
	}
	// magnitude < 2^127; split into integer part (q1:q0) and fraction r.
	q1, r1 := hi/pow18, hi%pow18
	q0, frac := bits.Div64(r1, lo, pow18)
	// integer part = q1*2^64 + q0 < 2^67: split by 10^19 (q1 < 10^19).
	top, low := bits.Div64(q1, q0, pow19)
	if top > 0 {
		dst = appendUint(dst, top)
		dst = appendPadded(dst, low, 19)
	} else {
		dst = appendUint(dst, low)
	}
	if frac == 0 {
		return dst
	}
	n := Scale
	for frac%10 == 0 {
		frac /= 10
		n--
	}
	dst = append(dst, '.')
	return appendPadded(dst, frac, n)
}

func appendUint(dst []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	buf[i] = byte('0' + v)
	return append(dst, buf[i:]...)
}

// appendPadded appends v as exactly width digits, zero-padded on the left.
func appendPadded(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}
