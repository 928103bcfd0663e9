package chconn

import (
	"context"
	sqldriver "database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/clickhouse-go/v2"
)

// ErrUnavailable wraps failures to reach ClickHouse at all (as opposed to
// ClickHouse answering with an error).
var ErrUnavailable = errors.New("ClickHouse unavailable")

// Unreachable reports whether err means ClickHouse could not be reached (or
// did not answer in time), as opposed to answering with an error: the one
// place exportd classifies ClickHouse errors (the API answers 503 for the
// former, 502 for the latter).
func Unreachable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	// A server exception is an answer, whatever it says.
	var native *Exception
	var chgo *ch.Exception
	var chpool *clickhouse.Exception
	if errors.As(err, &native) || errors.As(err, &chgo) || errors.As(err, &chpool) {
		return false
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, clickhouse.ErrAcquireConnTimeout), errors.Is(err, sqldriver.ErrBadConn),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}
