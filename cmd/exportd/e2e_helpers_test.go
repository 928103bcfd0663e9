package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exportd/exportd/engine/chconn"
	"github.com/exportd/exportd/engine/pgstore/pgtest"
	"github.com/exportd/exportd/ingest/chlocal"
)

// The end-to-end tests run the real binary (built once per test run)
// against a private ClickHouse and a private PostgreSQL.
var (
	binPath string
	testDSN string
	testCfg chconn.Config
	testPG  *pgtest.Server
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "exportd-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "exportd")
	build := exec.Command("go", "build", "-o", binPath, ".")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	dsn, stop, err := chlocal.ForTests(ctx)
	cancel()
	if err != nil {
		return 0, err
	}
	defer stop()
	testDSN = dsn
	if testCfg, err = chconn.ParseDSN(dsn); err != nil {
		return 0, err
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	testPG, err = pgtest.Start(ctx)
	cancel()
	if err != nil {
		return 0, err
	}
	defer testPG.Stop()
	return m.Run(), nil
}

type result struct {
	code           int
	stdout, stderr string
}

// exportd runs the binary with the test DSNs (plus env) and returns its output.
func exportd(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(append(os.Environ(), "EXPORTD_CLICKHOUSE_DSN="+testDSN, "EXPORTD_POSTGRES_DSN="+testPG.DSN), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run exportd %v: %v", args, err)
	}
	return r
}

func mustExportd(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := exportd(t, env, "", args...)
	if r.code != 0 {
		t.Fatalf("exportd %v: exit %d\nstderr: %s", args, r.code, r.stderr)
	}
	return r
}
