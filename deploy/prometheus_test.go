package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The unit tests of the alert rules (promtool test rules).
const alertsTestPath = "prometheus/alerts_test.yml"

// promtoolPath finds promtool (Debian package prometheus, installed by
// deploy/scripts/ensure-prometheus.sh); without it the test fails.
func promtoolPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not on PATH: run deploy/scripts/ensure-prometheus.sh (Debian package prometheus)")
	}
	return p
}

// Prometheus' own tools accept the rule file, and its unit tests pass:
// every alert fires on the documented threshold and does not fire just
// inside it, before its `for`, or on what its comment says must not page.
func TestPromtoolRules(t *testing.T) {
	promtool := promtoolPath(t)
	for _, args := range [][]string{
		{"check", "rules", alertsPath},
		{"test", "rules", alertsTestPath},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The unit tests cover every alert both ways: with every alert's expression
// replaced by one that always holds, `promtool test rules` fails on each
// alert (each has a case where it must not fire), and with expressions that
// never hold it fails on each alert again (each has a case where it fires).
func TestPromtoolRulesCoverEveryAlert(t *testing.T) {
	promtool := promtoolPath(t)
	tests, err := os.ReadFile(alertsTestPath)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range alertRules(t).Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	for _, m := range []struct{ kind, expr string }{
		{"always fires", "vector(1)"},
		{"never fires", "vector(1) < 0"},
	} {
		var f ruleFile
		decodeYAML(t, alertsPath, &f)
		for gi := range f.Groups {
			for ri := range f.Groups[gi].Rules {
				f.Groups[gi].Rules[ri].Expr = m.expr
			}
		}
		b, err := yaml.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(alertsPath)), b, 0o600); err != nil {
			t.Fatal(err)
		}
		testFile := filepath.Join(dir, filepath.Base(alertsTestPath))
		if err := os.WriteFile(testFile, tests, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "test", "rules", testFile).CombinedOutput()
		if err == nil {
			t.Errorf("every alert's expr %q (%s): the unit tests still pass", m.expr, m.kind)
			continue
		}
		for _, n := range names {
			if !strings.Contains(string(out), "alertname: "+n+",") {
				t.Errorf("%s: with its expr %q (%s) no test of %s fails: add a case", n, m.expr, m.kind, alertsTestPath)
			}
		}
	}
	t.Logf("%d alerts, each caught both ways by %s", len(names), alertsTestPath)
}
