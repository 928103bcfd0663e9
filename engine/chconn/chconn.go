// Package chconn opens connections to ClickHouse from an exportd DSN:
// ch-go clients for the columnar hot paths (export reads, bulk inserts) and a
// clickhouse-go pool for the small statements of migrations and records.
package chconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
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
	// TLS, from the DSN's secure=true (and ca_file=PATH for a private CA,
	// skip_verify=true to accept any certificate: tests only): nil means
	// plain TCP. Every client exportd opens (native reads, ch-go inserts,
	// the clickhouse-go pool) uses it.
	TLS *tls.Config
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
	q := u.Query()
	if secure, _ := strconv.ParseBool(q.Get("secure")); secure {
		host, _, _ := net.SplitHostPort(c.Addr)
		c.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if f := q.Get("ca_file"); f != "" {
			pem, err := os.ReadFile(f)
			if err != nil {
				return Config{}, fmt.Errorf("parse ClickHouse DSN: ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return Config{}, errors.New("parse ClickHouse DSN: ca_file holds no PEM certificate")
			}
			c.TLS.RootCAs = pool
		}
		if skip, _ := strconv.ParseBool(q.Get("skip_verify")); skip {
			c.TLS.InsecureSkipVerify = true
		}
	} else if q.Get("ca_file") != "" || q.Get("skip_verify") != "" {
		return Config{}, errors.New("parse ClickHouse DSN: ca_file and skip_verify need secure=true")
	}
	return c, nil
}

// dial opens the TCP (or, with TLS, the TLS) connection of every client.
func (c Config) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if c.TLS == nil {
		return d.DialContext(ctx, "tcp", c.Addr)
	}
	td := tls.Dialer{NetDialer: &d, Config: c.TLS}
	return td.DialContext(ctx, "tcp", c.Addr)
}

// String returns the DSN without its password, for logs.
func (c Config) String() string {
	s := "clickhouse://" + c.User + "@" + c.Addr + "/" + c.Database
	if c.TLS != nil {
		s += "?secure=true"
	}
	return s
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
		Dialer:      &compatDialer{dial: c.dial},
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
		TLS:          c.TLS,
	})
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse pool at %s: %w", c.Addr, err)
	}
	return conn, nil
}
