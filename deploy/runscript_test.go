package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/exportd/exportd/ingest"
	"github.com/exportd/exportd/ingest/chlocal"
)

// `make run` once died with "Error 141": run.sh piped `exportd ingest
// --print-enterprises` into `head -1` under `set -o pipefail`, and when head
// exited before the writer had written everything, the writer died of
// SIGPIPE and the pipeline failed (issue 12). These tests keep every script
// free of that pattern and run the script's step against the real binary.

// scriptPaths are the shell scripts of the repository, relative to deploy/.
func scriptPaths(t *testing.T) []string {
	t.Helper()
	var paths []string
	for _, pattern := range []string{"scripts/*.sh", "docker/*.sh", "docker/*/*.sh"} {
		p, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p...)
	}
	paths = append(paths, "../.ci/run")
	if len(paths) < 8 {
		t.Fatalf("found only %v", paths)
	}
	return paths
}

var (
	heredocRE = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)
	// A reader that can exit before its input ends: head; grep that stops at
	// the first match (-q, -m, -l); sed with a q command; awk with exit; read.
	earlyReaderRE = regexp.MustCompile(`^(head\b|grep\s+(.*\s)?-(-quiet|-max-count|-files-with-matches|[a-zA-Z]*[qml])|sed\b.*([^a-zA-Z])q\b|awk\b.*\bexit\b|read\b)`)
)

// earlyExitPipes returns the lines (1-based) of a bash script that pipe into
// a reader that may exit early. Heredoc bodies and comments are skipped; ||
// is not a pipe.
func earlyExitPipes(script string) []int {
	var bad []int
	heredocEnd := ""
	for i, line := range strings.Split(script, "\n") {
		if heredocEnd != "" {
			if strings.TrimSpace(line) == heredocEnd {
				heredocEnd = ""
			}
			continue
		}
		code := stripComment(line)
		bare := maskQuoted(code)
		if m := heredocRE.FindStringSubmatch(code); m != nil {
			heredocEnd = m[1]
		}
		for j := 0; j < len(code); j++ {
			if bare[j] != '|' {
				continue
			}
			if j+1 < len(code) && bare[j+1] == '|' {
				j++
				continue
			}
			next := strings.TrimLeft(code[j+1:], " \t&")
			if earlyReaderRE.MatchString(next) {
				bad = append(bad, i+1)
				break
			}
		}
	}
	return bad
}

// maskQuoted returns line with quoted text blanked out (same length), except
// command substitutions $(...) inside double quotes, which are code.
func maskQuoted(line string) string {
	b := []byte(line)
	const code, single, double = 0, 1, 2
	stack := []int{code}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch top := stack[len(stack)-1]; top {
		case single:
			if c == '\'' {
				stack = stack[:len(stack)-1]
			} else {
				b[i] = ' '
			}
		case double:
			switch {
			case c == '"':
				stack = stack[:len(stack)-1]
			case c == '$' && i+1 < len(b) && b[i+1] == '(':
				stack = append(stack, code)
				i++
			case c == '\\' && i+1 < len(b):
				b[i], b[i+1] = ' ', ' '
				i++
			default:
				b[i] = ' '
			}
		default:
			switch {
			case c == '\'':
				stack = append(stack, single)
			case c == '"':
				stack = append(stack, double)
			case c == '$' && i+1 < len(b) && b[i+1] == '(':
				stack = append(stack, code)
				i++
			case c == ')' && len(stack) > 1:
				stack = stack[:len(stack)-1]
			case c == '\\' && i+1 < len(b):
				i++
				b[i] = ' '
			}
		}
	}
	return string(b)
}

// stripComment drops a '#' comment that starts a word outside quotes.
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' {
				i++
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '\\':
			i++
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i]
		}
	}
	return line
}

func TestEarlyExitPipeDetector(t *testing.T) {
	for _, tt := range []struct {
		script string
		bad    []int
	}{
		{`ENTERPRISE="$(bin/exportd ingest --print-enterprises --enterprises 3 --seed "$SEED" | head -1)"`, []int{1}},
		{"x=$(a | grep -q foo)\ny=$(a | grep -m1 foo)\nz=$(a |sed 1q)\nw=$(a | awk '{print; exit}')\na | read v", []int{1, 2, 3, 4, 5}},
		{"a || head -1\na | sort | tee f\na | sed -n 's/x/y/p'\n# a | head -1\necho '| head'", nil},
		{"cat <<EOT\n$(a) | head -1\nEOT\na | head -n 2", []int{4}},
		{"cat <<'EOF'\nx | grep -q y\nEOF", nil},
	} {
		if got := earlyExitPipes(tt.script); fmt.Sprint(got) != fmt.Sprint(tt.bad) {
			t.Errorf("%q: flagged lines %v, want %v", tt.script, got, tt.bad)
		}
	}
}

// TestScriptsNoEarlyExitReaderUnderPipefail: no script that sets pipefail
// pipes into head, grep -q and the like.
func TestScriptsNoEarlyExitReaderUnderPipefail(t *testing.T) {
	for _, p := range scriptPaths(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "pipefail") {
			continue
		}
		if bad := earlyExitPipes(string(b)); len(bad) > 0 {
			t.Errorf("%s: lines %v pipe into a reader that may exit early, under pipefail", p, bad)
		}
	}
}

// scriptLine returns the one line of run.sh that starts with prefix.
func scriptLine(t *testing.T, script, prefix string) string {
	t.Helper()
	var found []string
	for _, l := range strings.Split(script, "\n") {
		if strings.HasPrefix(l, prefix) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("run.sh: %d lines start with %q, want 1", len(found), prefix)
	}
	return found[0]
}

// TestRunScriptEnterpriseStep runs run.sh's own SEED= and ENTERPRISE= lines
// (as written in the script) under its `set -euo pipefail`, with the built
// binary as bin/exportd: the step succeeds every time and yields exactly the
// first demo enterprise. A `head` on PATH that closes its input at once
// makes any pipe into head fail at once, so the step cannot pass by luck of
// timing.
func TestRunScriptEnterpriseStep(t *testing.T) {
	b, err := os.ReadFile("scripts/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	seedLine := scriptLine(t, script, "SEED=")
	entLine := scriptLine(t, script, "ENTERPRISE=")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exportdBinary(t), filepath.Join(dir, "bin", "exportd")); err != nil {
		t.Fatal(err)
	}
	shims := filepath.Join(dir, "shims")
	if err := os.Mkdir(shims, 0o755); err != nil {
		t.Fatal(err)
	}
	// head that reads nothing and exits at once, then lingers: the writer
	// meets a closed pipe.
	if err := os.WriteFile(filepath.Join(shims, "head"), []byte("#!/bin/sh\nexec 0<&-\nsleep 0.2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	seed, err := strconv.ParseInt(strings.TrimPrefix(seedLine, "SEED="), 10, 64)
	if err != nil {
		t.Fatalf("run.sh: %s: %v", seedLine, err)
	}
	want := ingest.EnterpriseRef(seed, 0)
	prog := "set -euo pipefail\n" + seedLine + "\n" + entLine + "\nprintf '%s' \"$ENTERPRISE\"\n"
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-c", prog)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+shims+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("run %d of run.sh's step failed: %v\n%s\n%s", i, err, prog, stderrOf(err))
		}
		if string(out) != want {
			t.Fatalf("ENTERPRISE = %q, want %q", out, want)
		}
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// TestPrintEnterprisesEarlyClosingReader: `exportd ingest
// --print-enterprises` piped into a reader that closes after one line exits
// 0, whether the reader is head under pipefail or a pipe closed by this
// test, and however much is left to print.
func TestPrintEnterprisesEarlyClosingReader(t *testing.T) {
	bin := exportdBinary(t)
	want := ingest.EnterpriseRef(5, 0)
	// 300k refs are ~16 MiB, far more than a pipe buffers: the writer is
	// certainly still writing when its reader is gone.
	args := []string{"ingest", "--print-enterprises", "--enterprises", "300000", "--seed", "5"}

	prog := `set -euo pipefail; first="$("$0" "$@" | head -1)"; printf '%s' "$first"`
	out, err := exec.Command("bash", append([]string{"-c", prog, bin}, args...)...).Output()
	if err != nil {
		t.Fatalf("under pipefail, | head -1 failed: %v %s", err, stderrOf(err))
	}
	if string(out) != want {
		t.Errorf("head -1 read %q, want %q", out, want)
	}

	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != want+"\n" {
		t.Errorf("first line %q (%v), want %q", line, err, want)
	}
	stdout.Close() // the reader goes away after one line
	if err := cmd.Wait(); err != nil {
		t.Errorf("exportd with a reader closed after one line: %v, stderr %q", err, stderr.String())
	}
}

// TestRunScriptFirstStartUnderLoad runs deploy/scripts/run.sh from start to a
// ready API, twice (the first start loads the demo data, the second finds it
// loaded), on a loaded machine: a busy loop per CPU runs the whole time, so
// that every step's timing is off. Each start must print the first demo
// enterprise and a token that the API accepts.
func TestRunScriptFirstStartUnderLoad(t *testing.T) {
	dsn, pgDSN := privateServers(t)

	loadCtx, stopLoad := context.WithCancel(context.Background())
	var spinners sync.WaitGroup
	var spun atomic.Int64 // keeps the loops' work observable, so none is optimised away
	started := time.Now()
	for i := 0; i < runtime.NumCPU(); i++ {
		spinners.Add(1)
		go func() {
			defer spinners.Done()
			for loadCtx.Err() == nil {
				x := 0
				for j := 0; j < 1_000_000; j++ {
					x += j * j
				}
				spun.Add(int64(x & 1))
				spun.Add(1 << 32)
			}
		}()
	}
	t.Cleanup(func() {
		stopLoad()
		spinners.Wait()
		avg, _ := os.ReadFile("/proc/loadavg")
		t.Logf("load: %d busy goroutines ran %d million-step loops in %v; /proc/loadavg %s",
			runtime.NumCPU(), spun.Load()>>32, time.Since(started).Round(time.Second), strings.TrimSpace(string(avg)))
	})

	dir := t.TempDir()
	httpPort, err := chlocal.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	adminPort, err := chlocal.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	env := append(os.Environ(), "EXPORTD_CLICKHOUSE_DSN="+dsn, "EXPORTD_POSTGRES_DSN="+pgDSN,
		"EXPORTD_STORAGE_URL=file://"+filepath.Join(dir, "exports"),
		"EXPORTD_SIGNING_KEY="+filepath.Join(dir, "key.pem"),
		fmt.Sprintf("EXPORTD_HTTP_ADDR=127.0.0.1:%d", httpPort),
		fmt.Sprintf("EXPORTD_ADMIN_ADDR=127.0.0.1:%d", adminPort),
		"EXPORTD_DEMO_ROWS=20000")
	want := "Demo enterprise: " + ingest.EnterpriseRef(1, 0) + "\n"
	tokenRE := regexp.MustCompile(`(?m)^export TOKEN='([^']+)'$`)

	for start := 1; start <= 2; start++ {
		cmd := exec.Command("bash", "scripts/run.sh")
		cmd.Env = env
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		ready := false
		for deadline := time.Now().Add(5 * time.Minute); !ready && time.Now().Before(deadline); {
			select {
			case err := <-exited:
				t.Fatalf("start %d: run.sh exited (%v) before the API was ready:\n%s", start, err, out.String())
			case <-time.After(100 * time.Millisecond):
			}
			if resp, err := http.Get(base + "/readyz"); err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == 200
			}
		}
		if !ready {
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("start %d: API not ready after 5 minutes:\n%s", start, out.String())
		}
		text := out.String()
		m := tokenRE.FindStringSubmatch(text)
		if !strings.Contains(text, want) || m == nil {
			t.Errorf("start %d: output lacks %q or the token line:\n%s", start, want, text)
		} else {
			req, _ := http.NewRequest("GET", base+"/operations-activity-exports", nil)
			req.Header.Set("Authorization", "Bearer "+m[1])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
			} else {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("start %d: the printed token gets %d on list", start, resp.StatusCode)
				}
			}
		}
		if start == 2 && !strings.Contains(text, "demo data already loaded") {
			t.Errorf("second start did not find the demo data:\n%s", text)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM) // run.sh exec'd serve: this is serve
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("start %d: serve did not stop on SIGTERM", start)
		}
	}
}
