package server

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// redoclyVersion is the Redocly CLI that lints openapi.json (a version
// known to install here; 1.34.21 does not).
const redoclyVersion = "2.77.0"

// repoRoot is the module's root directory (where go.mod is).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// redocly returns the path of the Redocly CLI, installing it from the npm
// registry into .cache/npm/redocly-cli@VERSION (gitignored) when missing:
// about 1 s, once per machine. Node and npm are required: without them the
// test fails.
func redocly(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), ".cache", "npm", "redocly-cli@"+redoclyVersion)
	bin := filepath.Join(dir, "node_modules", ".bin", "redocly")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is needed to install the Redocly CLI (apt-get install nodejs npm): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--no-save",
		"--loglevel=error", "@redocly/cli@"+redoclyVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install @redocly/cli@%s: %v\n%s", redoclyVersion, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("npm installed no %s: %v", bin, err)
	}
	return bin
}

// TestOpenAPIRedoclyLint checks openapi.json with a second, independent
// tool: Redocly CLI's recommended rules (OpenAPI 3.1 structure, $refs,
// operationIds, security, examples against their schemas, ...), with the
// exceptions SPEC forces listed in testdata/redocly/.redocly.lint-ignore.yaml.
// Any error or warning fails.
func TestOpenAPIRedoclyLint(t *testing.T) {
	bin := redocly(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "lint", "--config", "redocly.yaml", "--format", "json", "../../openapi.json")
	cmd.Dir = filepath.Join("testdata", "redocly")
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true",
		"REDOCLY_SUPPRESS_NOTIFICATIONS=true", "NO_UPDATE_NOTIFIER=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var report struct {
		Totals struct {
			Errors, Warnings, Ignored int
		}
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string
			Message  string
			Location []struct {
				Pointer string
			}
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("redocly lint (%v) printed no JSON report: %v\n%s\n%s", runErr, err, stdout.String(), stderr.String())
	}
	for _, p := range report.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		t.Errorf("redocly %s %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
	}
	if runErr != nil || report.Totals.Errors != 0 || report.Totals.Warnings != 0 {
		t.Fatalf("redocly lint: %v, %d errors, %d warnings", runErr, report.Totals.Errors, report.Totals.Warnings)
	}
	if report.Totals.Ignored != 5 {
		t.Errorf("redocly ignored %d problems, want the 5 of .redocly.lint-ignore.yaml", report.Totals.Ignored)
	}
	t.Logf("redocly %s lint: 0 errors, 0 warnings, %d ignored (SPEC-forced)", redoclyVersion, report.Totals.Ignored)
}
