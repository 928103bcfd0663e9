package source

import (
	"strings"
	"testing"
)

// unquoteCH reads one ClickHouse string literal the way ClickHouse's lexer
// does (a backslash escapes the next byte, \0 is NUL, two single quotes are one) and
// returns its value and whatever follows the closing quote.
func unquoteCH(lit string) (val, rest string, ok bool) {
	if !strings.HasPrefix(lit, "'") {
		return "", "", false
	}
	var b strings.Builder
	for i := 1; i < len(lit); i++ {
		switch c := lit[i]; c {
		case '\\':
			if i+1 == len(lit) {
				return "", "", false
			}
			i++
			if lit[i] == '0' {
				b.WriteByte(0)
			} else {
				b.WriteByte(lit[i])
			}
		case '\'':
			if i+1 < len(lit) && lit[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), lit[i+1:], true
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// FuzzQuote checks that no value can break out of the string literal the
// source splices into its SQL (ch-go binds nothing for 18.16): Quote(s) is
// exactly one literal, nothing follows it, and it reads back as s.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"enterprises/6f1d1f4e-8d5e-4b8a-9a51-0f2a3b4c5d6e", "", "'", `\`, `\'`, `'' OR 1=1 --`,
		"x' OR enterprise_ref != '", "a\x00b", `\0`, "\\\\'", "'; DROP TABLE operations_activity; --", "\xff\xfe'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		v, rest, ok := unquoteCH(q)
		if !ok || rest != "" || v != s {
			t.Fatalf("Quote(%q) = %q reads as %q then %q (ok %v)", s, q, v, rest, ok)
		}
		// The literal inside a WHERE stays one condition.
		w := where(Query{EnterpriseRef: s, FromMs: 1, ToMs: 2}, 1, 2)
		if !strings.HasPrefix(w, "enterprise_ref = "+q+" AND occurred_at_utc >= 1 AND occurred_at_utc < 2") || len(w) != len("enterprise_ref = "+q+" AND occurred_at_utc >= 1 AND occurred_at_utc < 2") {
			t.Fatalf("where: %q", w)
		}
	})
}
