package chlocal

import (
	"context"
	"fmt"
	"os"
)

// EnvDSN names the variable that points tests at an existing ClickHouse
// instead of a private one.
const EnvDSN = "EXPORTD_TEST_CLICKHOUSE_DSN"

// ForTests returns a DSN for integration tests and a function that stops
// what was started. With EXPORTD_TEST_CLICKHOUSE_DSN set it uses that server;
// otherwise it starts a private server in a temporary directory. A missing
// binary or a failed start is an error, never a silent skip: CI must not
// pass without a real ClickHouse.
func ForTests(ctx context.Context) (dsn string, stop func(), err error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "exportd-ch-")
	if err != nil {
		return "", nil, err
	}
	var srv *Server
	for attempt := 0; attempt < 3; attempt++ { // free ports can race with other processes
		srv, err = Start(ctx, Options{Dir: dir})
		if err == nil {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start private ClickHouse for tests: %w", err)
	}
	return srv.DSN(), func() {
		_ = srv.Stop()
		os.RemoveAll(dir)
	}, nil
}
