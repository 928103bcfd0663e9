package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `devch start-pg` (what `make run` calls) starts a detached private
// PostgreSQL that outlives the command, answers on the DSN it prints, is
// found again by a second start, and `devch stop-pg` ends it.
func TestStartStopPG(t *testing.T) {
	parent, err := os.MkdirTemp("", "devch-pg-") // not t.TempDir: its 0700 parents keep the postgres user out
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "postgres")
	if err := run([]string{"start-pg", "--dir", dir}); err != nil {
		t.Fatalf("start-pg: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "dsn"))
	if err != nil {
		t.Fatal(err)
	}
	dsn := strings.TrimSpace(string(b))
	if err := pingPG(dsn); err != nil {
		t.Fatalf("the started server does not answer on %s: %v", dsn, err)
	}
	pidFile, _ := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	first, _, _ := strings.Cut(string(pidFile), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if err := run([]string{"start-pg", "--dir", dir}); err != nil { // found, not started again
		t.Fatalf("second start-pg: %v", err)
	}
	if b2, _ := os.ReadFile(filepath.Join(dir, "dsn")); strings.TrimSpace(string(b2)) != dsn {
		t.Fatalf("second start changed the DSN: %s", b2)
	}
	if err := run([]string{"stop-pg", "--dir", dir}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for pingPG(dsn) == nil {
		if time.Now().After(deadline) {
			t.Fatal("still answering after stop-pg")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
