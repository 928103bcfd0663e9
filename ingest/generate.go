package ingest

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"golang.org/x/sync/errgroup"

	"github.com/exportd/exportd/engine/activity"
	"github.com/exportd/exportd/engine/chconn"
)

// Default time range of generated data (never modified).
var (
	defaultGenerateFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	defaultGenerateTo   = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
)

// MaxGenerateBlockRows bounds GenerateOptions.BlockRows.
const MaxGenerateBlockRows = 1 << 20

// GenerateOptions describe a synthetic data set. Rows depend only on N, Seed,
// Enterprises, From and To: the same options give byte-identical rows, in
// the same order, whatever BlockRows is.
type GenerateOptions struct {
	N           int64     // rows to generate
	Seed        int64     // any value; 0 is a seed like any other
	Enterprises int       // enterprises the rows are spread over evenly (default 10)
	From, To    time.Time // occurred_at_utc lies in [From, To) (defaults: 2026-01-01, 2026-07-01 UTC)
	BlockRows   int       // rows per block handed out (default 65536, at most MaxGenerateBlockRows)
}

func (o *GenerateOptions) setDefaults() {
	if o.Enterprises == 0 {
		o.Enterprises = 10
	}
	if o.From.IsZero() {
		o.From = defaultGenerateFrom
	}
	if o.To.IsZero() {
		o.To = defaultGenerateTo
	}
	if o.BlockRows == 0 {
		o.BlockRows = 65536
	}
}

// Validate reports options that cannot work. Zero Enterprises, From, To and
// BlockRows mean their defaults.
func (o GenerateOptions) Validate() error {
	o.setDefaults()
	switch {
	case o.N < 0:
		return errors.New("generate: N must not be negative")
	case o.Enterprises < 1:
		return errors.New("generate: Enterprises must be positive")
	case o.BlockRows < 1 || o.BlockRows > MaxGenerateBlockRows:
		return fmt.Errorf("generate: BlockRows must be between 1 and %d", MaxGenerateBlockRows)
	}
	from, to := ceilMilli(o.From), ceilMilli(o.To)
	if from >= to {
		return errors.New("generate: From must be before To (at millisecond precision)")
	}
	if from < activity.MinTimestamp || to-1 > activity.MaxTimestamp {
		return errors.New("generate: From and To must lie within years 1970..9999")
	}
	return nil
}

// Generate produces opts.N synthetic activity rows and calls fn with blocks
// of up to opts.BlockRows rows. The block is borrowed: valid only until fn
// returns, then reused. An error from fn stops generation and is returned.
//
// The data set is built to exercise exports: enterprises with 3 to 20
// clients of 1 to 4 accounts each plus 1 to 3 master accounts (empty
// client_ref); operations that walk plausible status paths (one row per
// step, e.g. requested → admissible → executing → settled), with
// settled_at_utc on settled rows and a failure_reason on failed ones;
// amounts of 0 to 18 fractional digits from 1e-18 up to 1e15 (rarely 0 or
// the largest Decimal(38,18) value), negative for withdrawals and off-ramps;
// fees on about 60% of operations (rarely without fee_currency, and rarely a
// fee_currency without a fee); references and counterparties holding
// commas, quotes, line breaks, CRLF, TAB and other control characters,
// emoji, CJK, right-to-left scripts and formula prefixes (=, +, -, @, TAB, CR). Operations start uniformly in
// [From, To) at millisecond precision; later steps follow within hours and
// are clamped to To - 1ms. Every row passes ParseLine's validation.
func Generate(opts GenerateOptions, fn func(b *activity.Block) error) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts.setDefaults()
	g := newGenerator(opts)
	b := activity.NewBlock()
	for left := opts.N; left > 0; {
		n := min(left, int64(opts.BlockRows))
		b.Reset()
		g.fill(b, int(n))
		if err := fn(b); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// GenerateStats describe a finished GenerateInto.
type GenerateStats struct {
	Rows    int64
	Elapsed time.Duration
}

// GenerateInto generates opts.N rows (see Generate) and inserts them into
// operations_activity, generating the next block while the previous one is
// sent. The schema must exist (Migrate). progress, if not nil, is called with
// the cumulative number of rows sent after each block, from a sending
// goroutine, never concurrently with itself; it must return quickly. Unlike
// Load this is not atomic: on error or cancellation the blocks already sent
// stay in the table (the data is synthetic; regenerate into a fresh database).
func GenerateInto(ctx context.Context, cfg chconn.Config, opts GenerateOptions, progress func(int64)) (GenerateStats, error) {
	start := time.Now()
	if err := opts.Validate(); err != nil {
		return GenerateStats{}, err
	}
	opts.setDefaults()
	// Two insert streams: ClickHouse parses and sorts each INSERT on one
	// thread, and that, not generation, bounds the rate. Blocks are cut from
	// the single generator sequence under a lock, so the rows (the table's
	// contents) are the same whatever stream carries them.
	const streams = 2
	g := newGenerator(opts)
	var (
		mu    sync.Mutex // guards g and left
		pmu   sync.Mutex // serialises progress
		left  = opts.N
		total atomic.Int64
		sent  [streams]int64
	)
	eg, gctx := errgroup.WithContext(ctx)
	for w := 0; w < streams; w++ {
		eg.Go(func() error {
			client, err := cfg.Dial(gctx)
			if err != nil {
				return err
			}
			defer client.Close()
			_, err = insertStream(gctx, client, ActivityTable, func(p *blockPipe) error {
				for {
					mu.Lock()
					n := min(left, int64(opts.BlockRows))
					left -= n
					if n > 0 {
						g.fill(p.cur, int(n))
					}
					mu.Unlock()
					if n == 0 {
						return nil
					}
					if err := p.flush(); err != nil {
						return err
					}
				}
			}, func(rows int64) {
				pmu.Lock() // progress is never called concurrently
				defer pmu.Unlock()
				total.Add(rows - sent[w])
				sent[w] = rows
				if progress != nil {
					progress(total.Load())
				}
			})
			return err
		})
	}
	err := eg.Wait()
	return GenerateStats{Rows: total.Load(), Elapsed: time.Since(start)}, err
}

// ceilMilli returns the first whole millisecond at or after t.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// generator emits rows one at a time from a single random sequence, so the
// output depends only on the options, never on how it is cut into blocks.
type generator struct {
	seed        int64
	enterprises int
	from, to    int64 // ms; rows lie in [from, to)
	r           rng
	seq         int64 // operations started
	op          operation
	uuid        [activity.UUIDLen]byte
}

// operation is the state shared by the rows of one operation.
type operation struct {
	path        []string
	step        int
	at          int64 // occurred_at of the current step
	settledAt   int64
	settled     bool
	family      string
	operationID [activity.UUIDLen]byte
	enterprise  []byte
	client      []byte
	account     []byte
	counter     []byte
	currency    string
	amount      proto.Decimal128
	hasFee      bool
	feeCurrency string
	fee         proto.Decimal128
	initiatedBy []byte
	reference   []byte
}

func newGenerator(o GenerateOptions) *generator {
	return &generator{
		seed:        o.Seed,
		enterprises: o.Enterprises,
		from:        ceilMilli(o.From),
		to:          ceilMilli(o.To),
		r:           rng{s: derive(o.Seed, tagRows, o.Enterprises, 0)},
	}
}

func (g *generator) fill(b *activity.Block, n int) {
	for i := 0; i < n; i++ {
		if g.op.step >= len(g.op.path) {
			g.startOperation()
		}
		g.row(b)
	}
}

func (g *generator) newUUID() []byte {
	putUUID(&g.uuid, g.r.next(), g.r.next())
	return g.uuid[:]
}

func (g *generator) row(b *activity.Block) {
	op := &g.op
	status := op.path[op.step]
	if op.step > 0 {
		op.at = min(op.at+g.delay(), g.to-1)
	}
	op.step++
	b.OccurredAt.Append(op.at)
	b.ActivityID.Append(g.newUUID())
	b.OperationID.Append(op.operationID[:])
	b.Family.Append(op.family)
	b.Status.Append(status)
	b.EnterpriseRef.AppendBytes(op.enterprise)
	b.ClientRef.AppendBytes(op.client)
	b.AccountRef.AppendBytes(op.account)
	b.CounterpartyRef.AppendBytes(op.counter)
	b.Currency.Append(op.currency)
	b.Amount.Append(op.amount)
	b.FeeCurrency.Append(op.feeCurrency)
	b.FeeAmount.Append(proto.Nullable[proto.Decimal128]{Value: op.fee, Set: op.hasFee})
	switch status {
	case "partially_settled", "settled":
		op.settledAt, op.settled = op.at, true
	case "ledger_visible":
		if !op.settled {
			op.settledAt, op.settled = op.at, true
		}
	}
	settledRow := op.settled && (status == "partially_settled" || status == "settled" || status == "ledger_visible")
	b.SettledAt.Append(proto.Nullable[int64]{Value: op.settledAt, Set: settledRow})
	b.InitiatedBy.AppendBytes(op.initiatedBy)
	if status == "failed" {
		b.FailureReason.Append(failureReasons[g.r.intn(len(failureReasons))])
	} else {
		b.FailureReason.Append("")
	}
	b.Reference.AppendBytes(op.reference)
}

// delay between two steps of an operation: mostly sub-second to minutes,
// sometimes hours.
func (g *generator) delay() int64 {
	switch x := g.r.intn(100); {
	case x < 50:
		return 50 + g.r.int63n(2_000)
	case x < 85:
		return 2_000 + g.r.int63n(300_000)
	default:
		return 300_000 + g.r.int63n(6*3_600_000)
	}
}

func (g *generator) startOperation() {
	r := &g.r
	op := &g.op
	g.seq++
	e := r.intn(g.enterprises)
	fam := r.weighted(familyWeights, familyTotal)
	op.family = activity.Families[fam]
	op.path = statusPaths[r.weighted(pathWeights, pathTotal)]
	op.step = 0
	op.at = g.from + r.int63n(g.to-g.from)
	op.settled = false
	putUUID(&op.operationID, r.next(), r.next())
	op.enterprise = appendEnterpriseRef(op.enterprise[:0], g.seed, e)

	// Account: a client account (80%) or a master account of the enterprise.
	if r.chance(80) {
		c := r.intn(numClients(g.seed, e))
		op.client = appendClientRef(op.client[:0], g.seed, e, c)
		op.account = appendClientAccountRef(op.account[:0], g.seed, e, c, r.intn(numAccounts(g.seed, e, c)))
	} else {
		op.client = op.client[:0]
		op.account = appendMasterAccountRef(op.account[:0], g.seed, e, r.intn(numMasters(g.seed, e)))
	}
	if r.chance(85) {
		op.initiatedBy = appendUserRef(op.initiatedBy[:0], g.seed, e, r.intn(numUsers(g.seed, e)))
	} else {
		op.initiatedBy = appendServiceAccountRef(op.initiatedBy[:0], g.seed, e, r.intn(2))
	}

	cur := currencies[r.weighted(currencyWeights, currencyTotal)]
	op.currency = cur.code
	op.amount = g.amount(cur.scale)
	if fam == famWithdrawal || fam == famOffRamp {
		op.amount = negate128(op.amount)
	}
	// Fees on 60% of operations, in the operation's currency or (20% of
	// fees) another one; the ledger left the fee's currency blank on 2% of
	// fees, and 1% of operations without a fee name a fee currency anyway
	// (SPEC §6: the two columns are independent).
	feeDraw := r.intn(100)
	op.hasFee = feeDraw < 60
	op.feeCurrency = ""
	switch {
	case op.hasFee:
		fc := cur
		switch x := r.intn(100); {
		case x < 2:
			fc.code = ""
		case x < 20:
			fc = currencies[r.intn(len(currencies))]
		}
		op.feeCurrency = fc.code
		op.fee = g.fee(fc.scale)
	case feeDraw >= 99:
		op.feeCurrency = cur.code
	}
	op.counter = g.counterparty(op.counter[:0], fam, cur, e)
	op.reference = g.reference(op.reference[:0])
}

var maxAmount = func() proto.Decimal128 {
	d, err := activity.ParseDecimal("99999999999999999999.999999999999999999")
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return d
}()

// amount draws a positive amount: usually with the currency's scale and a
// magnitude between 1 and 1e6, otherwise any scale 0..18 and any magnitude
// from 10^-scale to 1e15; rarely zero or the largest Decimal(38,18).
func (g *generator) amount(scale int) proto.Decimal128 {
	r := &g.r
	switch x := r.intn(100_000); {
	case x < 5:
		return maxAmount
	case x < 200:
		return proto.Decimal128{}
	}
	if r.chance(30) {
		scale = r.intn(activity.Scale + 1)
	}
	exp := r.intn(7)
	if r.chance(20) {
		exp = -scale + r.intn(16+scale) // [-scale, 15]
	}
	return g.decimal(scale, max(exp, -scale))
}

// fee draws a non-negative fee, small compared to typical amounts.
func (g *generator) fee(scale int) proto.Decimal128 {
	if g.r.chance(3) {
		return proto.Decimal128{}
	}
	return g.decimal(scale, max(g.r.intn(6)-3, -scale))
}

// decimal returns a random value in [10^exp, 10^(exp+1)) with scale
// fractional digits (exp >= -scale), as a Decimal(38,18) raw value.
func (g *generator) decimal(scale, exp int) proto.Decimal128 {
	nd := exp + scale + 1 // significant digits, 1..34
	hi, lo := uint64(0), uint64(1+g.r.intn(9))
	for left := nd - 1; left > 0; {
		k := min(left, 18)
		hi, lo = mulAdd128(hi, lo, pow10[k], uint64(g.r.int63n(int64(pow10[k]))))
		left -= k
	}
	hi, lo = mulAdd128(hi, lo, pow10[activity.Scale-scale], 0)
	return proto.Decimal128{Low: lo, High: hi}
}

var pow10 = func() (p [19]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// mulAdd128 returns (hi:lo)*m + a; callers keep the result below 2^127.
func mulAdd128(hi, lo, m, a uint64) (uint64, uint64) {
	h, l := bits.Mul64(lo, m)
	h += hi * m
	l, c := bits.Add64(l, a, 0)
	return h + c, l
}

func negate128(d proto.Decimal128) proto.Decimal128 {
	lo, c := bits.Add64(^d.Low, 1, 0)
	return proto.Decimal128{Low: lo, High: ^d.High + c}
}

// counterparty appends a counterparty text fitting the family and currency.
func (g *generator) counterparty(dst []byte, fam int, cur currency, e int) []byte {
	r := &g.r
	switch x := r.intn(100); {
	case x < 10:
		return dst // unknown counterparty
	case x < 12:
		return append(dst, counterpartyOddities[r.intn(len(counterpartyOddities))]...)
	}
	switch {
	case fam == famConversion:
		return dst
	case fam == famInternalTransfer:
		c := r.intn(numClients(g.seed, e))
		return appendClientAccountRef(dst, g.seed, e, c, r.intn(numAccounts(g.seed, e, c)))
	case fam == famOnRamp || fam == famOffRamp || !cur.crypto:
		dst = append(dst, "IBAN DE"...)
		for i := 0; i < 20; i++ {
			dst = append(dst, byte('0'+r.intn(10)))
		}
		return dst
	case cur.code == "BTC":
		dst = append(dst, "bc1q"...)
		for i := 0; i < 38; i++ {
			dst = append(dst, bech32[r.intn(len(bech32))])
		}
		return dst
	case cur.code == "SOL":
		for i := 0; i < 44; i++ {
			dst = append(dst, base58[r.intn(len(base58))])
		}
		return dst
	default:
		dst = append(dst, "0x"...)
		for i := 0; i < 40; i++ {
			dst = append(dst, hexDigits[r.intn(16)])
		}
		return dst
	}
}

// reference appends a reference: empty (20%), a plain operation number
// (45%) or a template from referenceTemplates with a number (35%).
func (g *generator) reference(dst []byte) []byte {
	r := &g.r
	switch x := r.intn(100); {
	case x < 20:
		return dst
	case x < 65:
		dst = append(dst, "OP-"...)
		return strconv.AppendInt(dst, g.seq, 10)
	default:
		dst = append(dst, referenceTemplates[r.intn(len(referenceTemplates))]...)
		if r.chance(50) {
			dst = append(dst, " #"...)
			dst = strconv.AppendInt(dst, g.seq, 10)
		}
		return dst
	}
}
