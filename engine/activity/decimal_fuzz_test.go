package activity

import (
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
)

var (
	plainDecimal     = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?$`)
	canonicalDecimal = regexp.MustCompile(`^(0|-?[1-9][0-9]{0,19}(\.[0-9]{0,17}[1-9])?|-?0\.[0-9]{0,17}[1-9])$`)
	scale18          = new(big.Int).Exp(big.NewInt(10), big.NewInt(Scale), nil)
	limit38          = new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil) // |raw| < 10^38
)

// exactRaw is the Decimal(38,18) raw value of a plain decimal computed with
// math/big, or nil when the text is not exactly representable.
func exactRaw(s string) *big.Int {
	if !plainDecimal.MatchString(s) {
		return nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil
	}
	r.Mul(r, new(big.Rat).SetInt(scale18))
	if !r.IsInt() {
		return nil
	}
	return new(big.Int).Set(r.Num())
}

func toBig(d proto.Decimal128) *big.Int {
	v := new(big.Int).SetUint64(d.High)
	v.Lsh(v, 64)
	v.Or(v, new(big.Int).SetUint64(d.Low))
	if int64(d.High) < 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), 128))
	}
	return v
}

// FuzzParseDecimal checks ParseDecimal against math/big: it accepts exactly
// the plain decimals with at most 20 integer (ignoring leading zeros) and 18
// fractional digits, with the value big computes; and AppendDecimal prints
// that value canonically, which parses back to the same raw value.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0", "+0.000", "-250.50", "1e5", "0.000000000000000001", "0.0000000000000000001",
		"99999999999999999999.999999999999999999", "-99999999999999999999.999999999999999999", "100000000000000000000",
		"000000000000000000000000001.5", "1.", ".5", "--1", "1_000", " 1", "NaN", "Inf", "١٢٣", "12.5\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDecimal(s)
		want := exactRaw(s)
		intDigits := strings.TrimLeft(strings.TrimLeft(strings.SplitN(s, ".", 2)[0], "+-"), "0")
		fits := want != nil && len(intDigits) <= MaxIntDigits && (!strings.Contains(s, ".") || len(strings.SplitN(s, ".", 2)[1]) <= Scale)
		if (err == nil) != fits {
			t.Fatalf("ParseDecimal(%q) error %v; math/big says representable=%v", s, err, fits)
		}
		if err != nil {
			return
		}
		if got := toBig(d); got.Cmp(want) != 0 {
			t.Fatalf("ParseDecimal(%q) = %s, want %s", s, got, want)
		}
		text := string(AppendDecimal(nil, d))
		if !canonicalDecimal.MatchString(text) {
			t.Fatalf("AppendDecimal of %q = %q: not canonical", s, text)
		}
		back, err := ParseDecimal(text)
		if err != nil || back != d {
			t.Fatalf("%q printed as %q, which parses to %v %v", s, text, back, err)
		}
	})
}

// FuzzAppendDecimal prints arbitrary raw values of the column's range and
// checks the text against math/big.
func FuzzAppendDecimal(f *testing.F) {
	f.Add(uint64(0), uint64(0))
	f.Add(^uint64(0), ^uint64(0)) // -1e-18
	f.Add(uint64(0x4b3b4ca85a86c47a), uint64(0x098a223fffffffff))
	f.Add(uint64(0xb4c4b357a5793b85), uint64(0xf675ddc000000001))
	f.Add(uint64(1<<63), uint64(0))
	f.Fuzz(func(t *testing.T, hi, lo uint64) {
		d := proto.Decimal128{High: hi, Low: lo}
		v := toBig(d)
		if new(big.Int).Abs(v).Cmp(limit38) >= 0 {
			return // outside Decimal(38,18): ClickHouse never sends it
		}
		text := string(AppendDecimal(nil, d))
		if !canonicalDecimal.MatchString(text) {
			t.Fatalf("AppendDecimal(%s) = %q: not canonical", v, text)
		}
		r, ok := new(big.Rat).SetString(text)
		if !ok || r.Cmp(new(big.Rat).SetFrac(v, scale18)) != 0 {
			t.Fatalf("AppendDecimal(%s) = %q: wrong value", v, text)
		}
		if back, err := ParseDecimal(text); err != nil || back != d {
			t.Fatalf("%q parses to %v %v, want %v", text, back, err, d)
		}
	})
}
