// Package chconn opens connections to ClickHouse from an exportd DSN:
// ch-go clients for the columnar hot paths (export reads, bulk inserts) and a
// clickhouse-go pool for the small statements of migrations and records.
package chconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DefaultDSN is EXPORTD_CLICKHOUSE_DSN's default (SPEC §4).
const DefaultDSN = "clickhouse://127.0.0.1:9000/default"

// Config is a parsed DSN.
type Config struct {
	Addr     string
	Database string
	User     string
	Password string
}

// ParseDSN parses clickhouse://[user[:password]@]host[:port][/database].
func ParseDSN(dsn string) (Config, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url.Error repeats the whole DSN, password included: keep the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Config{}, fmt.Errorf("parse ClickHouse DSN: %w", err)
	}
	if u.Scheme != "clickhouse" && u.Scheme != "tcp" {
		return Config{}, fmt.Errorf("parse ClickHouse DSN: scheme must be clickhouse://, got %q", u.Scheme)
	}
	if u.Host == "" {
		return Config{}, errors.New("parse ClickHouse DSN: missing host")
	}
	c := Config{Addr: u.Host, Database: strings.Trim(u.Path, "/"), User: "default"}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		c.Addr = net.JoinHostPort(u.Hostname(), "9000")
	} else if port == "" || u.Hostname() == "" {
		return Config{}, errors.New("parse ClickHouse DSN: empty host or port")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return Config{}, fmt.Errorf("parse ClickHouse DSN: invalid host: %w", err)
	}
	// A password with an unescaped '/' ends the authority early: the rest,
	// password included, would become the database (and be logged). Refuse
	// it without echoing it.
	if strings.ContainsAny(c.Database, "/@:?# ") {
		return Config{}, errors.New("parse ClickHouse DSN: invalid database name (percent-encode '/' or '@' in a password)")
	}
	if c.Database == "" {
		c.Database = "default"
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	return c, nil
}

// String returns the DSN without its password, for logs.
func (c Config) String() string {
	return "clickhouse://" + c.User + "@" + c.Addr + "/" + c.Database
}

// Dial opens a ch-go client. Compression is off: exports run next to
// ClickHouse where CPU, not bandwidth, bounds throughput, and ch-go's LZ4
// framing does not interoperate with 18.16 (see compat.go).
func (c Config) Dial(ctx context.Context) (*ch.Client, error) {
	client, err := ch.Dial(ctx, ch.Options{
		Address:     c.Addr,
		Database:    c.Database,
		User:        c.User,
		Password:    c.Password,
		ClientName:  "exportd",
		Dialer:      &compatDialer{d: net.Dialer{Timeout: 5 * time.Second}},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 5 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to ClickHouse at %s: %w", c.Addr, err)
	}
	return client, nil
}

// Open returns a clickhouse-go connection pool (native protocol, which works
// on 18.16; its HTTP protocol does not).
func (c Config) Open(ctx context.Context) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:         []string{c.Addr},
		Auth:         clickhouse.Auth{Database: c.Database, Username: c.User, Password: c.Password},
		DialTimeout:  5 * time.Second,
		ReadTimeout:  time.Minute,
		MaxOpenConns: 16,
		MaxIdleConns: 8,
	})
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse pool at %s: %w", c.Addr, err)
	}
	return conn, nil
}
