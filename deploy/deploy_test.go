package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/exportd/exportd/engine/pgstore/pglocal"
	"github.com/exportd/exportd/ingest/chlocal"
)

// The artefacts whose queries are checked. Paths are relative to this
// directory (the tests' working directory).
const (
	dashboardPath      = "grafana/dashboards/exportd.json"
	alertsPath         = "prometheus/alerts.yml"
	prometheusRulePath = "k8s/prometheusrule.yaml"
	prometheusConfPath = "prometheus/prometheus.yml"
)

// prometheusOwn are series that Prometheus writes itself for every scrape
// target; exportd does not expose them.
var prometheusOwn = map[string]bool{"up": true}

// ruleFile is a Prometheus rule file; unknown fields are an error.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// prometheusRule is the Prometheus operator's PrometheusRule resource.
type prometheusRule struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec ruleFile `yaml:"spec"`
}

func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// alertRules reads the alert rules and checks their shape: named, unique,
// an expression, a `for`, a severity we route on, a summary and a
// description.
func alertRules(t *testing.T) ruleFile {
	t.Helper()
	var f ruleFile
	decodeYAML(t, alertsPath, &f)
	if len(f.Groups) == 0 {
		t.Fatalf("%s: no rule groups", alertsPath)
	}
	names := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("%s: group %s, alert %q", alertsPath, g.Name, r.Alert)
			switch {
			case r.Alert == "" || r.Record != "":
				t.Errorf("%s: want alerting rules only", where)
			case names[r.Alert]:
				t.Errorf("%s: duplicate alert name", where)
			case strings.TrimSpace(r.Expr) == "":
				t.Errorf("%s: empty expr", where)
			case r.For == "":
				t.Errorf("%s: no `for` (a single bad scrape would page)", where)
			case r.Labels["severity"] != "page" && r.Labels["severity"] != "ticket":
				t.Errorf("%s: severity %q, want page or ticket", where, r.Labels["severity"])
			case r.Annotations["summary"] == "" || r.Annotations["description"] == "":
				t.Errorf("%s: summary and description annotations are required", where)
			}
			names[r.Alert] = true
		}
	}
	return f
}

// dashboardQueries returns every PromQL expression of the dashboard (panel
// targets, also inside collapsed rows) and of its variables.
func dashboardQueries(t *testing.T) (exprs []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(d["panels"])
	templating, _ := d["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	for _, v := range vars {
		v, _ := v.(map[string]any)
		if v["type"] != "query" {
			continue
		}
		def, _ := v["definition"].(string)
		m := grafanaLabelValues.FindStringSubmatch(def)
		if m == nil {
			t.Errorf("%s: variable %v: query %q is not label_values(metric, label)", dashboardPath, v["name"], def)
			continue
		}
		exprs = append(exprs, m[1])
	}
	if len(exprs) == 0 {
		t.Fatalf("%s: no queries found", dashboardPath)
	}
	return exprs
}

// built is the exportd binary, built once for the package's tests.
var built struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
	os.Exit(code)
}

// exportdBinary builds ./cmd/exportd (from the repository root, one level
// up) on first use and returns its path.
func exportdBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "exportd-deploy-test-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "exportd")
		build := exec.Command("go", "build", "-o", built.path, "./cmd/exportd")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// The PrometheusRule for Kubernetes must carry exactly the rules of the
// plain rule file: one source of truth, checked rather than generated.
func TestPrometheusRuleMatchesAlertRules(t *testing.T) {
	want := alertRules(t)
	var pr prometheusRule
	decodeYAML(t, prometheusRulePath, &pr)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Errorf("%s: %s %s, want monitoring.coreos.com/v1 PrometheusRule", prometheusRulePath, pr.APIVersion, pr.Kind)
	}
	if !reflect.DeepEqual(pr.Spec, want) {
		t.Errorf("%s: spec.groups differ from %s; copy the groups over", prometheusRulePath, alertsPath)
	}
}

// Every metric that the dashboard and the alert rules query exists in a
// real scrape of a running exportd that has done some work, and every
// exportd_ metric of that scrape is on the dashboard.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	used := map[string][]string{} // metric name → where it is used
	for _, e := range dashboardQueries(t) {
		for _, n := range metricNames(e) {
			used[n] = append(used[n], dashboardPath)
		}
	}
	onDashboard := map[string]bool{}
	for n := range used {
		onDashboard[n] = true
	}
	for _, g := range alertRules(t).Groups {
		for _, r := range g.Rules {
			for _, n := range metricNames(r.Expr) {
				used[n] = append(used[n], alertsPath+" "+r.Alert)
			}
		}
	}

	exposed, families := scrapeWorkingExportd(t)
	var missing []string
	for n, where := range used {
		if !exposed[n] && !prometheusOwn[n] {
			missing = append(missing, fmt.Sprintf("%s (in %s)", n, strings.Join(dedupe(where), ", ")))
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("not in exportd's /metrics: %s", m)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.name, "exportd_") {
			continue
		}
		covered := false
		for _, s := range f.series() {
			covered = covered || onDashboard[s]
		}
		if !covered {
			t.Errorf("%s (%s) is exposed but on no dashboard panel", f.name, f.kind)
		}
	}
	t.Logf("%d metric names used, %d families exposed", len(used), len(families))
}

func dedupe(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}

// With promtool on PATH (Debian: apt-get install prometheus), Prometheus'
// own parser checks the rule file, the compose stack's Prometheus config
// and every dashboard expression (as recording rules, Grafana's variables
// substituted). Without it the test is skipped; the structural and
// metric-name checks above do not need it.
func TestPromtoolChecks(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not on PATH: install Debian's prometheus package (deploy/scripts/ensure-prometheus.sh)")
	}
	check := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	check("check", "rules", alertsPath)
	check("check", "config", prometheusConfPath)

	rateInterval := regexp.MustCompile(`\$__(?:rate_)?interval\b`)
	variable := regexp.MustCompile(`\$\{?\w+\}?`)
	var g ruleGroup
	g.Name = "dashboard"
	for i, e := range dashboardQueries(t) {
		e = variable.ReplaceAllString(rateInterval.ReplaceAllString(e, "5m"), ".*")
		g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: e})
	}
	b, err := yaml.Marshal(ruleFile{Groups: []ruleGroup{g}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	check("check", "rules", path)
}

// family is one metric family of a text exposition.
type family struct{ name, kind string }

// series returns the names under which the family's samples appear.
func (f family) series() []string {
	switch f.kind {
	case "histogram":
		return []string{f.name + "_bucket", f.name + "_sum", f.name + "_count"}
	case "summary":
		return []string{f.name, f.name + "_sum", f.name + "_count"}
	}
	return []string{f.name}
}

// parseExposition reads the families of a Prometheus text exposition that
// have samples (client_golang writes no TYPE line for a vector without
// children) and the set of names their samples appear under.
func parseExposition(t *testing.T, body []byte) (map[string]bool, []family) {
	t.Helper()
	exposed := map[string]bool{}
	var families []family
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			fam := family{name: f[2], kind: f[3]}
			families = append(families, fam)
			for _, s := range fam.series() {
				exposed[s] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return exposed, families
}

// scrapeWorkingExportd starts a private ClickHouse, a private PostgreSQL
// and `exportd serve`,
// makes it export (so the histograms and the by-status counter have
// series) and shed a create (so the shed counter has one), then scrapes
// /metrics on the admin listener.
func scrapeWorkingExportd(t *testing.T) (map[string]bool, []family) {
	t.Helper()
	dsn, pgDSN := privateServers(t)
	dir := t.TempDir()
	bin := exportdBinary(t)
	key := filepath.Join(dir, "key.pem")
	env := append(os.Environ(), "EXPORTD_CLICKHOUSE_DSN="+dsn, "EXPORTD_POSTGRES_DSN="+pgDSN, "EXPORTD_SIGNING_KEY="+key)
	run := exportdRunner(t, bin, env)
	run("migrate")
	// 300k rows: a whole-range gzip export of them runs for a second or
	// more, long enough to hold the only admission slot while creates pile up.
	run("ingest", "--generate", "300000", "--enterprises", "1", "--seed", "71", "--once")
	ent := run("ingest", "--print-enterprises", "--enterprises", "1", "--seed", "71")
	tok := run("token", "--sub", "service-accounts/00000000-0000-4000-8000-0000000000d1", "--scope", ent,
		"--capability", "operations_reports.create", "--capability", "operations_reports.read", "--ttl", "1h")

	httpPort, err := chlocal.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	adminPort, err := chlocal.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base, admin := fmt.Sprintf("http://127.0.0.1:%d", httpPort), fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	serve := exec.Command(bin, "serve")
	serve.Env = append(env, fmt.Sprintf("EXPORTD_HTTP_ADDR=127.0.0.1:%d", httpPort),
		fmt.Sprintf("EXPORTD_ADMIN_ADDR=127.0.0.1:%d", adminPort),
		"EXPORTD_STORAGE_URL=file://"+filepath.Join(dir, "exports"),
		"EXPORTD_MAX_EXPORTS=1") // one slot: easy to fill, so that admission sheds
	logs := &lockedBuffer{}
	serve.Stdout, serve.Stderr = logs, logs
	serve.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = serve.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = serve.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("serve logs:\n%s", logs.String())
		}
	})
	waitReady(t, base+"/readyz", done)

	create := func(from, to, compression, wait string) (int, string) {
		body := fmt.Sprintf(`{"format":"csv","filter_criteria":{"date_from_utc":%q,"date_to_utc":%q},"requested_scope":{"kind":"enterprise","ref":%q},"compression":%q}`,
			from, to, ent, compression)
		req, _ := http.NewRequest("POST", base+"/operations-activity-exports", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait="+wait)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("create: %v", err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// One export to completion: histograms, exports_total{status="ready"}.
	if code, body := create("2026-02-01T00:00:00Z", "2026-02-07T23:59:59Z", "none", "60"); code != 201 || !strings.Contains(body, `"status":"ready"`) {
		t.Fatalf("create: %d %s", code, body)
	}
	// Fill the slot with a long export, then send creates at once: the
	// queue (4 per slot) overflows and admission sheds.
	if code, body := create("2026-01-01T00:00:00Z", "2026-06-30T23:59:59Z", "gzip", "0"); code != 201 {
		t.Fatalf("create long export: %d %s", code, body)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	shed := 0
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := create("2026-03-01T00:00:00Z", "2026-03-01T23:59:59Z", "none", "0")
			if code == 503 && strings.Contains(body, "overloaded") {
				mu.Lock()
				shed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if shed == 0 {
		t.Fatal("no create was shed with 503 overloaded: exportd_admission_shed_total will have no series")
	}

	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return parseExposition(t, body)
}

func waitReady(t *testing.T, url string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			t.Fatal("exportd serve exited before it was ready")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("exportd serve not ready after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer collects a child's output; the child writes from its own
// goroutines while the test may read.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// privateServers starts a private ClickHouse and a private PostgreSQL side
// by side (stopped at the test's end) and returns their DSNs; it fails,
// never skips, when one cannot start.
func privateServers(t *testing.T) (chDSN, pgDSN string) {
	t.Helper()
	var (
		wg             sync.WaitGroup
		chErr, pgErr   error
		chStop, pgStop func()
		ctx, cancel    = context.WithTimeout(context.Background(), 2*time.Minute)
	)
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); chDSN, chStop, chErr = chlocal.ForTests(ctx) }()
	go func() { defer wg.Done(); pgDSN, pgStop, pgErr = pglocal.ForTests(ctx) }()
	wg.Wait()
	if chStop != nil {
		t.Cleanup(chStop)
	}
	if pgStop != nil {
		t.Cleanup(pgStop)
	}
	if chErr != nil || pgErr != nil {
		t.Fatalf("clickhouse: %v; postgres: %v", chErr, pgErr)
	}
	return chDSN, pgDSN
}

// exportdRunner returns a function that runs the exportd binary with env
// and returns its trimmed stdout, failing the test (with stderr) on error.
func exportdRunner(t *testing.T, bin string, env []string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("exportd %v: %v\n%s", args, err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
}
