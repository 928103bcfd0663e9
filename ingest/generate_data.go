package ingest

import (
	"math/bits"

	"github.com/exportd/exportd/engine/activity"
)

// Deterministic randomness and the vocabulary of the synthetic data set.
// Everything here is pure integer arithmetic (no math/rand, no floats), so a
// seed yields the same rows on every platform and Go version.

// rng is a splitmix64 sequence (Steele, Lea, Flood: "Fast splittable
// pseudorandom number generators", OOPSLA 2014): tiny, fast, statistically
// fine for synthetic data, and stable forever.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// intn returns a value in [0, n) (Lemire's multiply-shift; the bias is below
// n/2^64, irrelevant here).
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

func (r *rng) int63n(n int64) int64 {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int64(hi)
}

// chance reports true with probability pct/100.
func (r *rng) chance(pct int) bool { return r.intn(100) < pct }

// weighted picks an index of w with probability proportional to its weight.
func (r *rng) weighted(w []int, total int) int {
	x := r.intn(total)
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

// Tags separate the hash streams that derive stable entities.
const (
	tagEnterprise = iota + 1
	tagClientCount
	tagClient
	tagAccountCount
	tagAccount
	tagMasterCount
	tagMaster
	tagUserCount
	tagUser
	tagServiceAccount
	tagRows
)

// derive hashes a seed, a tag and up to two indices into 64 bits.
func derive(seed int64, tag, a, b int) uint64 {
	h := mix64(uint64(seed) + 0x9e3779b97f4a7c15*uint64(tag))
	h = mix64(h ^ (uint64(a)+1)*0xd1b54a32d192ed03)
	return mix64(h ^ (uint64(b)+1)*0x8cb92ba72f3d8dd7)
}

// appendUUID appends a version-4-shaped UUID in canonical lowercase text
// built from two 64-bit values.
func appendUUID(dst []byte, hi, lo uint64) []byte {
	var u [activity.UUIDLen]byte
	putUUID(&u, hi, lo)
	return append(dst, u[:]...)
}

func putUUID(u *[activity.UUIDLen]byte, hi, lo uint64) {
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 4122 variant
	var raw [16]byte
	for i := 0; i < 8; i++ {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			u[j] = '-'
			j++
		}
		u[j] = hexDigits[c>>4]
		u[j+1] = hexDigits[c&0xf]
		j += 2
	}
}

// appendRef appends prefix and the UUID derived from (seed, tag, a, b).
func appendRef(dst []byte, prefix string, seed int64, tag, a, b int) []byte {
	dst = append(dst, prefix...)
	return appendUUID(dst, derive(seed, tag, a, b), derive(seed, tag+100, a, b))
}

// EnterpriseRef returns the ref of the i-th enterprise (0-based) of the data
// set generated with seed: stable, so demos and benchmarks can target it.
// Rows are spread evenly over GenerateOptions.Enterprises enterprises.
func EnterpriseRef(seed int64, i int) string {
	return string(appendEnterpriseRef(nil, seed, i))
}

// ClientRefs returns the refs of the clients of enterprise i (3 to 20 of them).
func ClientRefs(seed int64, enterprise int) []string {
	refs := make([]string, numClients(seed, enterprise))
	for c := range refs {
		refs[c] = string(appendClientRef(nil, seed, enterprise, c))
	}
	return refs
}

// ClientAccountRefs returns the refs of the accounts (1 to 4) of the c-th
// client of enterprise i, in the order of ClientRefs.
func ClientAccountRefs(seed int64, enterprise, client int) []string {
	refs := make([]string, numAccounts(seed, enterprise, client))
	for a := range refs {
		refs[a] = string(appendClientAccountRef(nil, seed, enterprise, client, a))
	}
	return refs
}

func numClients(seed int64, e int) int { return 3 + int(derive(seed, tagClientCount, e, 0)%18) }
func numAccounts(seed int64, e, c int) int {
	return 1 + int(derive(seed, tagAccountCount, e, c)%4)
}
func numMasters(seed int64, e int) int { return 1 + int(derive(seed, tagMasterCount, e, 0)%3) }
func numUsers(seed int64, e int) int   { return 2 + int(derive(seed, tagUserCount, e, 0)%9) }

func appendEnterpriseRef(dst []byte, seed int64, e int) []byte {
	return appendRef(dst, activity.PrefixEnterprise, seed, tagEnterprise, e, 0)
}

func appendClientRef(dst []byte, seed int64, e, c int) []byte {
	return appendRef(dst, activity.PrefixClient, seed, tagClient, e, c)
}

// appendClientAccountRef packs (client, account) into one index: accounts < 4.
func appendClientAccountRef(dst []byte, seed int64, e, c, a int) []byte {
	return appendRef(dst, activity.PrefixClientAccount, seed, tagAccount, e, c*4+a)
}

func appendMasterAccountRef(dst []byte, seed int64, e, m int) []byte {
	return appendRef(dst, activity.PrefixMasterAccount, seed, tagMaster, e, m)
}

func appendUserRef(dst []byte, seed int64, e, u int) []byte {
	return appendRef(dst, activity.PrefixUser, seed, tagUser, e, u)
}

func appendServiceAccountRef(dst []byte, seed int64, e, s int) []byte {
	return appendRef(dst, activity.PrefixServiceAccount, seed, tagServiceAccount, e, s)
}

// Families, weighted: deposits and withdrawals dominate.
var (
	familyWeights = []int{30, 25, 15, 12, 10, 8} // in activity.Families order
	familyTotal   = 100
)

const (
	famDeposit = iota
	famWithdrawal
	famConversion
	famInternalTransfer
	famOnRamp
	famOffRamp
)

// Status paths an operation takes; each step is one activity row.
var statusPaths = [][]string{
	{"requested", "admissible", "executing", "executed", "settled", "ledger_visible"},
	{"requested", "admissible", "executing", "settled"},
	{"requested", "pending_approval", "admissible", "executing", "executed", "ledger_visible"},
	{"requested", "admissible", "executing", "partially_settled", "settled"},
	{"requested", "admissible", "executing", "failed"},
	{"requested", "failed"},
	{"requested", "pending_approval", "cancelled"},
	{"requested", "cancelled"},
	{"requested", "admissible", "executing", "executed"},
	{"requested"},
	{"requested", "admissible"},
	{"requested", "pending_approval"},
}

var (
	pathWeights = []int{30, 15, 10, 7, 8, 4, 6, 4, 8, 3, 3, 2}
	pathTotal   = 100
)

type currency struct {
	code   string
	scale  int // usual number of fractional digits
	crypto bool
}

var currencies = []currency{
	{"USDC", 6, true}, {"USDT", 6, true}, {"BTC", 8, true}, {"ETH", 18, true},
	{"EUR", 2, false}, {"USD", 2, false}, {"SOL", 9, true}, {"GBP", 2, false},
	{"CHF", 2, false}, {"EURC", 6, true}, {"DAI", 18, true}, {"JPY", 0, false},
}

var (
	currencyWeights = []int{25, 14, 12, 12, 10, 10, 4, 4, 3, 3, 2, 1}
	currencyTotal   = 100
)

// failureReasons: free text, some starting with formula characters on
// purpose (SPEC §6 guards failure_reason).
var failureReasons = []string{
	"insufficient_funds",
	"compliance_rejected: sanctions screening hit",
	`Counterparty bank rejected: "account closed"`,
	"network_timeout, retries exhausted",
	"-1: provider error",
	"=ERROR() returned by upstream",
	"Limite dépassée pour ce compte",
	"风控拒绝",
}

// referenceTemplates exercise the CSV encoder: separators, quotes, line
// breaks, every script and formula-injection prefixes (SPEC §3, §6).
var referenceTemplates = []string{
	"Invoice 2026-0042, paid in full",
	`Payroll "March" batch`,
	"Line one\nline two",
	"Windows line\r\nsecond line",
	"Café déjà vu — naïve façade",
	"支付宝转账 参考号",
	"Emoji 🚀💸 payout",
	"تحويل بنكي للمورد",
	"העברה בנקאית לספק",
	`=HYPERLINK("http://evil.example","click")`,
	"+1 (555) 010-9999",
	"-42 adjustment",
	"@treasury please review",
	"\tTabbed reference",
	"\rCarriage-return first",
	"Mixed, \"quotes\", commas\nand a newline",
	"Family 👨‍👩‍👧 and combining é",
	"Ünïcödé Ωμέγα Привет",
	`Trailing backslash \`,
	"Semicolon; pipe | and 'single quotes'",
	"Bell\x07, unit separator\x1f and DEL\x7f",
	"Tab\tseparated\tcells",
}

// counterpartyOddities are rare counterparty texts that start with guarded
// characters or hold control characters, as free-text ledger fields do.
var counterpartyOddities = []string{
	"+41 44 668 18 00",
	"@acme-treasury",
	"=cmd|' /C calc'!A0",
	"-external-desk-",
	"\tdesk 7 (tab first)",
	"Treasury desk\nLondon branch",
	"ACME\x1fGmbH\x07",
}

const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
const bech32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
