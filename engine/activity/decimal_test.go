package activity

import (
	"math/big"
	"math/rand"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
)

// bigOf converts a raw Decimal128 into a big.Int, independently of AppendDecimal.
func bigOf(d proto.Decimal128) *big.Int {
	v := new(big.Int).SetUint64(d.High)
	v.Lsh(v, 64)
	v.Or(v, new(big.Int).SetUint64(d.Low))
	if int64(d.High) < 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), 128))
	}
	return v
}

// refFormat formats with math/big: an independent oracle for AppendDecimal.
func refFormat(d proto.Decimal128) string {
	v := bigOf(d)
	neg := v.Sign() < 0
	v.Abs(v)
	s := v.String()
	for len(s) <= Scale {
		s = "0" + s
	}
	ip, fp := s[:len(s)-Scale], strings.TrimRight(s[len(s)-Scale:], "0")
	out := ip
	if fp != "" {
		out += "." + fp
	}
	if neg {
		out = "-" + out
	}
	return out
}

func TestParseFormatDecimal(t *testing.T) {
	cases := []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"-0.000", "0"}, {"+1", "1"}, {"1.50", "1.5"},
		{"-250.5", "-250.5"}, {"0.000000000000000001", "0.000000000000000001"},
		{"-0.000000000000000001", "-0.000000000000000001"},
		{"99999999999999999999.999999999999999999", "99999999999999999999.999999999999999999"},
		{"-99999999999999999999.999999999999999999", "-99999999999999999999.999999999999999999"},
		{"00012.3400", "12.34"}, {"18446744073709551616", "18446744073709551616"},
		{"10000000000000000000", "10000000000000000000"},
	}
	for _, c := range cases {
		d, err := ParseDecimal(c.in)
		if err != nil {
			t.Fatalf("ParseDecimal(%q): %v", c.in, err)
		}
		if got := string(AppendDecimal(nil, d)); got != c.want {
			t.Errorf("format(parse(%q)) = %q, want %q", c.in, got, c.want)
		}
		if got := refFormat(d); got != c.want {
			t.Errorf("refFormat(parse(%q)) = %q, want %q", c.in, got, c.want)
		}
	}
	bad := []string{"", "-", "+", ".5", "1.", "1e5", "1,5", " 1", "1 ", "NaN", "Inf", "0x10",
		"100000000000000000000", "1.0000000000000000001", "--1", "1.2.3", "١"}
	for _, s := range bad {
		if _, err := ParseDecimal(s); err == nil {
			t.Errorf("ParseDecimal(%q) accepted", s)
		}
	}
}

func TestAppendDecimalRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil)
	for i := 0; i < 100000; i++ {
		v := new(big.Int).Rand(rng, limit)
		if rng.Intn(2) == 0 {
			v.Neg(v)
		}
		if rng.Intn(4) == 0 { // many trailing zeros
			v.Quo(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(rng.Intn(30))), nil))
		}
		u := new(big.Int).Set(v)
		if u.Sign() < 0 {
			u.Add(u, new(big.Int).Lsh(big.NewInt(1), 128))
		}
		words := new(big.Int).Rsh(u, 64)
		d := proto.Decimal128{High: words.Uint64(), Low: new(big.Int).And(u, new(big.Int).SetUint64(^uint64(0))).Uint64()}
		got, want := string(AppendDecimal(nil, d)), refFormat(d)
		if got != want {
			t.Fatalf("AppendDecimal(%s) = %q, want %q", v, got, want)
		}
		back, err := ParseDecimal(got)
		if err != nil || back != d {
			t.Fatalf("ParseDecimal(%q) = %v, %v; want %v", got, back, err, d)
		}
	}
}

func TestAppendDecimalNoAlloc(t *testing.T) {
	d, _ := ParseDecimal("-12345678901234567890.123456789012345678")
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendDecimal(buf[:0], d) }); n != 0 {
		t.Fatalf("AppendDecimal allocates %v times", n)
	}
}
