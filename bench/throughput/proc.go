package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procResult is what one timed child process did.
type procResult struct {
	Elapsed time.Duration
	MaxRSS  int64 // bytes, from getrusage (ru_maxrss)
	Stdout  string
	Stderr  string
}

// command builds a child process that dies with the harness: the context
// kills it (SIGTERM, then SIGKILL after WaitDelay) and Pdeathsig kills it if
// the harness itself is killed without a chance to clean up.
func command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	return cmd
}

// runTimed runs a child to completion, timing it from just before start to
// just after it exits. stdout, if not nil, receives the child's standard
// output directly (a file: the child writes to it with no copy in between);
// otherwise the output is captured in the result. A non-zero exit is an
// error carrying the tail of the child's stderr.
func runTimed(ctx context.Context, env []string, stdout *os.File, name string, args ...string) (procResult, error) {
	cmd := command(ctx, env, name, args...)
	var outBuf bytes.Buffer
	errBuf := &tailBuffer{max: 64 << 10}
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		cmd.Stdout = &outBuf
	}
	cmd.Stderr = errBuf
	start := time.Now()
	err := cmd.Run()
	res := procResult{Elapsed: time.Since(start), Stdout: outBuf.String(), Stderr: errBuf.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		return res, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(redact(args), " "), err, indent(res.Stderr))
	}
	return res, nil
}

// redact shortens long arguments (queries) in error messages.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 160 {
			a = a[:160] + "..."
		}
		out[i] = a
	}
	return out
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no stderr)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

var _ io.Writer = (*tailBuffer)(nil)

// findPID returns the pid of a process whose command line contains both
// dir and name (the private ClickHouse runs with its config under dir); 0
// if none.
func findPID(dir, name string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte(dir)) && bytes.Contains(cmd, []byte(name)) {
			return pid
		}
	}
	return 0
}
