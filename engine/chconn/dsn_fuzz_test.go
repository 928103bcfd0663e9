package chconn

import (
	"net"
	"strings"
	"testing"
)

// FuzzParseDSN checks that a DSN's password never shows: not in the error
// of a DSN that does not parse (serve prints it at start), not in
// Config.String (which goes to logs), and that whatever parses has an
// address with a port and a database.
func FuzzParseDSN(f *testing.F) {
	f.Add("default", "s3cr3t-pass", "127.0.0.1:9000", "/default")
	f.Add("u", "pa ss word", "host", "")
	f.Add("u", "secret%zz", "h:1", "/db")
	f.Add("u", "secret/with/slash", "h", "/db")
	f.Add("u", "secret@at", "h:9000", "")
	f.Add("", "", "[::1]:9000", "/x?y#z")
	f.Add("us er", "password", "h:port", "/")
	f.Fuzz(func(t *testing.T, user, password, host, rest string) {
		dsn := "clickhouse://" + user + ":" + password + "@" + host + rest
		c, err := ParseDSN(dsn)
		distinctive := len(password) >= 6 && strings.Count(dsn, password) == 1
		if err != nil {
			if distinctive && strings.Contains(err.Error(), password) {
				t.Fatalf("the password shows in the error: %v", err)
			}
			return
		}
		if c.Password != "" && len(c.Password) >= 6 && strings.Contains(c.String(), c.Password) &&
			!strings.Contains(c.User+c.Addr+c.Database, c.Password) {
			t.Fatalf("String() shows the password: %s", c.String())
		}
		if distinctive && strings.Contains(c.String(), password) && !strings.Contains(c.User+c.Addr+c.Database, password) {
			t.Fatalf("String() shows the password: %s", c.String())
		}
		if _, _, err := net.SplitHostPort(c.Addr); err != nil || c.Database == "" {
			t.Fatalf("parsed %q as %+v", dsn, c)
		}
	})
}
