package csv

import (
	"bytes"
	stdcsv "encoding/csv"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
)

// The reference implementations below are deliberately naive and share no
// code with the encoder: they state SPEC §3 directly.

// refGuard applies the formula-injection guard to a free-text value.
func refGuard(v string) string {
	if v != "" && strings.IndexByte("=+-@\t\r", v[0]) >= 0 {
		return "'" + v
	}
	return v
}

// refNeedsQuote is the RFC 4180 quoting condition.
func refNeedsQuote(v string) bool { return strings.ContainsAny(v, ",\"\r\n") }

// refTimestamp formats Unix milliseconds with the time package.
func refTimestamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

var (
	ten18  = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	ten38  = new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil)
	two128 = new(big.Int).Lsh(big.NewInt(1), 128)
	mask64 = new(big.Int).SetUint64(^uint64(0))
)

// fuzzDecimal reads two fuzz words as a signed 128-bit raw value, brings it
// into Decimal(38,18) range (|v| < 10^38, keeping its sign), and returns it
// with its expected text, computed with math/big.
func fuzzDecimal(hi, lo uint64) (proto.Decimal128, string) {
	v := new(big.Int).SetUint64(hi)
	v.Lsh(v, 64).Or(v, new(big.Int).SetUint64(lo))
	if hi>>63 != 0 {
		v.Sub(v, two128)
	}
	v.Rem(v, ten38)

	u := new(big.Int).Set(v)
	if u.Sign() < 0 {
		u.Add(u, two128)
	}
	d := proto.Decimal128{
		High: new(big.Int).Rsh(u, 64).Uint64(),
		Low:  new(big.Int).And(u, mask64).Uint64(),
	}

	abs := new(big.Int).Abs(v)
	ip, fp := new(big.Int).QuoRem(abs, ten18, new(big.Int))
	text := ip.String()
	if fp.Sign() != 0 {
		f := fp.String()
		f = strings.Repeat("0", 18-len(f)) + f
		text += "." + strings.TrimRight(f, "0")
	}
	if v.Sign() < 0 {
		text = "-" + text
	}
	return d, text
}

// fuzzMillis maps a fuzz int onto the accepted timestamp range.
func fuzzMillis(x int64) int64 {
	span := uint64(activity.MaxTimestamp - activity.MinTimestamp + 1)
	return activity.MinTimestamp + int64(uint64(x)%span)
}

// field is one parsed CSV field and whether it was quoted.
type field struct {
	value  string
	quoted bool
}

var errStrict = errors.New("not strict RFC 4180")

// parseStrict parses RFC 4180 exactly: records end with CRLF, unquoted
// fields hold no comma, quote, CR or LF, quoted fields double their quotes.
// Unlike encoding/csv it keeps CRLF inside quoted fields and reports quoting.
func parseStrict(data []byte) ([][]field, error) {
	var recs [][]field
	for len(data) > 0 {
		var rec []field
		for {
			var f field
			if len(data) > 0 && data[0] == '"' {
				f.quoted = true
				data = data[1:]
				var sb strings.Builder
				for {
					i := bytes.IndexByte(data, '"')
					if i < 0 {
						return nil, errStrict
					}
					sb.Write(data[:i])
					data = data[i+1:]
					if len(data) > 0 && data[0] == '"' {
						sb.WriteByte('"')
						data = data[1:]
						continue
					}
					break
				}
				f.value = sb.String()
			} else {
				i := 0
				for i < len(data) && data[i] != ',' && data[i] != '\r' {
					if data[i] == '"' || data[i] == '\n' {
						return nil, errStrict
					}
					i++
				}
				f.value = string(data[:i])
				data = data[i:]
			}
			rec = append(rec, f)
			if len(data) > 0 && data[0] == ',' {
				data = data[1:]
				continue
			}
			if len(data) >= 2 && data[0] == '\r' && data[1] == '\n' {
				data = data[2:]
				break
			}
			return nil, errStrict
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// FuzzRoundTrip encodes rows built from fuzz input, parses the output back
// with encoding/csv and with a strict RFC 4180 parser, and compares every
// cell with the value computed by the reference implementations above.
func FuzzRoundTrip(f *testing.F) {
	f.Add("Acme, Inc.", "USDC", "", "", "He said \"hi\"\r\nbye", int64(0), uint64(0), uint64(250), uint64(0), uint64(1), false, int64(0), true)
	f.Add("=1+1", "+USD", "-EUR", "@x", "\r=x", int64(1_775_000_000_123), ^uint64(0), ^uint64(0), uint64(1), uint64(0), true, int64(-1), false)
	f.Add("\t", "\r", "\n", "\"", ",", int64(-1), uint64(1)<<63, uint64(7), uint64(0), uint64(0), false, int64(1)<<62, false)
	f.Add("支付 💸", "مرحبا", "\xff\xfe", "", "a\r\r\nb\n\r", int64(253402300799999), uint64(0), uint64(0), uint64(0), uint64(0), true, int64(0), true)

	f.Fuzz(func(t *testing.T, counterparty, currency, feeCurrency, failure, reference string,
		occurred int64, amtHi, amtLo, feeHi, feeLo uint64, feeNull bool, settled int64, settledNull bool) {
		amt, amtText := fuzzDecimal(amtHi, amtLo)
		fee, feeText := fuzzDecimal(feeHi, feeLo)
		occ := fuzzMillis(occurred)
		set := fuzzMillis(settled)

		// Row 0: fuzz text in the guarded columns, valid ids, enums and refs.
		r0 := activity.Row{
			OccurredAt: occ, ActivityID: uuidN(1), OperationID: uuidN(2),
			Family: "deposit", Status: "settled", EnterpriseRef: entRef, ClientRef: cliRef,
			AccountRef: accRef, CounterpartyRef: counterparty, Currency: currency, Amount: amt,
			FeeCurrency: feeCurrency, InitiatedBy: userRef, FailureReason: failure, Reference: reference,
		}
		if !feeNull {
			r0.FeeAmount = &fee
		}
		if !settledNull {
			r0.SettledAt = &set
		}
		// Row 1: the same strings rotated, and also in the unguarded text
		// columns, which must be quoted when needed but never guarded.
		r1 := activity.Row{
			OccurredAt: set, ActivityID: uuidN(3), OperationID: uuidN(4),
			Family: counterparty, Status: currency, EnterpriseRef: feeCurrency, ClientRef: failure,
			AccountRef: reference, CounterpartyRef: reference, Currency: counterparty, Amount: fee,
			FeeCurrency: currency, InitiatedBy: counterparty, FailureReason: feeCurrency, Reference: failure,
		}
		if !settledNull {
			r1.FeeAmount = &amt
		}
		if feeNull {
			r1.SettledAt = &occ
		}
		b := blockOf([]activity.Row{r0, r1})

		opt := func(p *proto.Decimal128, text string) string {
			if p == nil {
				return ""
			}
			return text
		}
		optTS := func(p *int64) string {
			if p == nil {
				return ""
			}
			return refTimestamp(*p)
		}
		want := [][]string{
			activity.Columns[:],
			{refTimestamp(occ), uuidN(1), uuidN(2), "deposit", "settled", entRef, cliRef, accRef,
				refGuard(counterparty), refGuard(currency), amtText, refGuard(feeCurrency),
				opt(r0.FeeAmount, feeText), optTS(r0.SettledAt), userRef, refGuard(failure), refGuard(reference)},
			{refTimestamp(set), uuidN(3), uuidN(4), counterparty, currency, feeCurrency, failure, reference,
				refGuard(reference), refGuard(counterparty), feeText, refGuard(currency),
				opt(r1.FeeAmount, amtText), optTS(r1.SettledAt), counterparty, refGuard(feeCurrency), refGuard(failure)},
		}

		out := AppendRows(AppendHeader(nil), b, 0, b.Rows())

		// Exact round trip, including quoting only when needed.
		recs, err := parseStrict(out)
		if err != nil {
			t.Fatalf("output is not strict RFC 4180: %v\n%q", err, out)
		}
		if len(recs) != len(want) {
			t.Fatalf("strict parse: %d records, want %d\n%q", len(recs), len(want), out)
		}
		for i, rec := range recs {
			if len(rec) != len(want[i]) {
				t.Fatalf("strict parse: record %d has %d fields, want %d\n%q", i, len(rec), len(want[i]), out)
			}
			for j, f := range rec {
				if f.value != want[i][j] {
					t.Errorf("record %d column %s = %q, want %q", i, activity.Columns[j], f.value, want[i][j])
				}
				if f.quoted != refNeedsQuote(want[i][j]) {
					t.Errorf("record %d column %s: quoted=%v for %q", i, activity.Columns[j], f.quoted, want[i][j])
				}
			}
		}

		// encoding/csv, strict mode. It turns CRLF inside quoted fields into LF.
		r := stdcsv.NewReader(bytes.NewReader(out))
		r.LazyQuotes = false
		r.FieldsPerRecord = len(activity.Columns)
		got, err := r.ReadAll()
		if err != nil {
			t.Fatalf("encoding/csv: %v\n%q", err, out)
		}
		if len(got) != len(want) {
			t.Fatalf("encoding/csv: %d records, want %d", len(got), len(want))
		}
		for i := range got {
			for j := range got[i] {
				if w := strings.ReplaceAll(want[i][j], "\r\n", "\n"); got[i][j] != w {
					t.Errorf("encoding/csv: record %d column %s = %q, want %q", i, activity.Columns[j], got[i][j], w)
				}
			}
		}
	})
}
