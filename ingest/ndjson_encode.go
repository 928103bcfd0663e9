package ingest

import (
	"unicode/utf8"

	"github.com/exportd/exportd/engine/activity"
)

// AppendNDJSON appends row i of b as one NDJSON line, terminated by '\n', in
// the form ParseLine reads: keys in activity.Columns order, every value a JSON
// string, empty optional columns omitted. Text is written as UTF-8 with only
// the escapes JSON requires ('"', '\\' and control characters); invalid UTF-8
// (which validated blocks never hold) becomes U+FFFD. It is used to write
// generated data sets to files and by tests.
func AppendNDJSON(dst []byte, b *activity.Block, i int) []byte {
	dst = append(dst, `{"occurred_at_utc":"`...)
	dst = activity.AppendTimestamp(dst, b.OccurredAt.Row(i))
	dst = append(dst, `","activity_id":"`...)
	dst = append(dst, b.ActivityID.Row(i)...)
	dst = append(dst, `","operation_id":"`...)
	dst = append(dst, b.OperationID.Row(i)...)
	dst = append(dst, '"')
	dst = appendField(dst, "family", b.Family.RowBytes(i))
	dst = appendField(dst, "status", b.Status.RowBytes(i))
	dst = appendField(dst, "enterprise_ref", b.EnterpriseRef.RowBytes(i))
	dst = appendField(dst, "client_ref", b.ClientRef.RowBytes(i))
	dst = appendField(dst, "account_ref", b.AccountRef.RowBytes(i))
	dst = appendField(dst, "counterparty_ref", b.CounterpartyRef.RowBytes(i))
	dst = appendField(dst, "currency", b.Currency.RowBytes(i))
	dst = append(dst, `,"amount":"`...)
	dst = activity.AppendDecimal(dst, b.Amount.Row(i))
	dst = append(dst, '"')
	dst = appendField(dst, "fee_currency", b.FeeCurrency.RowBytes(i))
	if fee := b.FeeAmount.Row(i); fee.Set {
		dst = append(dst, `,"fee_amount":"`...)
		dst = activity.AppendDecimal(dst, fee.Value)
		dst = append(dst, '"')
	}
	if at := b.SettledAt.Row(i); at.Set {
		dst = append(dst, `,"settled_at_utc":"`...)
		dst = activity.AppendTimestamp(dst, at.Value)
		dst = append(dst, '"')
	}
	dst = appendField(dst, "initiated_by", b.InitiatedBy.RowBytes(i))
	dst = appendField(dst, "failure_reason", b.FailureReason.RowBytes(i))
	dst = appendField(dst, "reference", b.Reference.RowBytes(i))
	return append(dst, "}\n"...)
}

// appendField appends `,"key":"value"`, or nothing when value is empty.
func appendField(dst []byte, key string, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, `":"`...)
	dst = appendJSONString(dst, v)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends the body of a JSON string (without quotes).
func appendJSONString(dst []byte, v []byte) []byte {
	start := 0
	for i := 0; i < len(v); {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, v[start:i]...)
				dst = append(dst, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, v[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	return append(dst, v[start:]...)
}
