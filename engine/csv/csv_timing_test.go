package csv

import (
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/exportd/exportd/engine/activity"
)

// benchBlock returns a block of n rows shaped like production activity:
// mostly settled rows, short counterparties, a few currencies, amounts with
// a handful of fractional digits, and free-text references of which about
// one in ten needs quoting and one in fifty is guarded.
func benchBlock(n int) *activity.Block {
	rng := rand.New(rand.NewPCG(1, 2))
	uuid := func() string {
		const hex = "0123456789abcdef"
		var b [activity.UUIDLen]byte
		for i := range b {
			switch i {
			case 8, 13, 18, 23:
				b[i] = '-'
			default:
				b[i] = hex[rng.IntN(16)]
			}
		}
		return string(b[:])
	}
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	amount := func() proto.Decimal128 {
		// up to 12 integer digits and 0..6 fractional digits, either sign.
		v := rng.Int64N(1_000_000_000_000_000)
		for range rng.IntN(7) {
			v /= 10
		}
		// raw value at scale 18 of v × 10^-6 is v × 10^12, up to 10^27: 128-bit.
		hi, lo := bits.Mul64(uint64(v), 1_000_000_000_000)
		if rng.IntN(3) == 0 { // two's complement negation
			var borrow uint64
			lo, borrow = bits.Sub64(0, lo, 0)
			hi, _ = bits.Sub64(0, hi, borrow)
		}
		return proto.Decimal128{Low: lo, High: hi}
	}
	ent := activity.PrefixEnterprise + uuid()
	clients := make([]string, 50)
	for i := range clients {
		clients[i] = activity.PrefixClient + uuid()
	}
	counterparties := []string{"Acme Corp", "Globex GmbH", "Initech Ltd", "Société Générale",
		"Umbrella, Inc.", "Wayne Enterprises", "Stark Industries", "", "", "0x52908400098527886E0F7030069857D2E4169EE7"}
	start := int64(1_775_000_000_000)
	b := activity.NewBlock()
	for i := range n {
		start += rng.Int64N(2000)
		r := activity.Row{
			OccurredAt:      start,
			ActivityID:      uuid(),
			OperationID:     uuid(),
			Family:          pick(activity.Families...),
			Status:          pick(activity.Statuses...),
			EnterpriseRef:   ent,
			AccountRef:      activity.PrefixClientAccount + uuid(),
			CounterpartyRef: pick(counterparties...),
			Currency:        pick("USDC", "USDC", "USDT", "EUR", "USD", "EURC", "BTC"),
			Amount:          amount(),
			InitiatedBy:     pick(activity.PrefixUser, activity.PrefixServiceAccount) + uuid(),
		}
		if rng.IntN(5) != 0 {
			r.ClientRef = clients[rng.IntN(len(clients))]
		}
		if rng.IntN(2) == 0 {
			r.FeeCurrency = r.Currency
			f := amount()
			r.FeeAmount = &f
		}
		if rng.IntN(10) != 0 {
			s := start + rng.Int64N(86_400_000)
			r.SettledAt = &s
		}
		if r.Status == "failed" {
			r.FailureReason = pick("insufficient_funds", "compliance_rejected", "upstream_error")
		}
		switch k := rng.IntN(50); {
		case k == 0:
			r.Reference = "=HYPERLINK(\"http://evil\")"
		case k < 5:
			r.Reference = "payout batch " + uuid()[:8] + ", line " + strings.Repeat("7", k)
		case k < 6:
			r.Reference = "multi\r\nline \"memo\""
		default:
			r.Reference = "INV-2026-" + uuid()[:13] + " monthly settlement for services #" + string(rune('0'+i%10))
		}
		b.Append(&r)
	}
	return b
}

func BenchmarkAppendRows(b *testing.B) {
	blk := benchBlock(8192)
	n := blk.Rows()
	dst := AppendRows(nil, blk, 0, n)
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendRows(dst[:0], blk, 0, n)
	}
}

func BenchmarkNeedsQuote(b *testing.B) {
	v := []byte("INV-2026-3fa85f64-5717 monthly settlement for services #7")
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if needsQuote(v) {
			b.Fatal("unexpected quote")
		}
	}
}
