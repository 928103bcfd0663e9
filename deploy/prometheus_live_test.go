package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exportd/exportd/ingest/chlocal"
)

// Grafana's built-in variables and the values the live test gives them.
var grafanaBuiltins = map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}

// notDriven names the alerts whose bad case the live test does not
// produce, and the selector of theirs that therefore has no series; every
// other selector of every alert and every panel must have data.
var notDriven = map[string]string{
	"ExportdHTTPServerErrors": `exportd_http_requests_total{code=~"5..", code!="503"}`,   // no 500/502: nothing broke
	"ExportdNotReady":         `exportd_http_requests_total{route="readyz", code="503"}`, // both replicas stay ready
}

// A real Prometheus (Debian package prometheus) scrapes two real `exportd
// serve` replicas every second while exports run through the API: on
// replica a (one slot) one ends ready, one is cancelled and a burst of
// creates is shed; on replica b (a 1 ms export deadline) one ends
// failed/timeout. Then, through Prometheus' HTTP API: the samples it holds
// equal the replicas' own /metrics, the alert rules loaded and evaluate
// without error, and every expression of every alert and of every Grafana
// panel and variable (Grafana's variables substituted) returns without
// error, with data wherever the selectors it reads have series.
func TestPrometheusScrapesExportd(t *testing.T) {
	start := time.Now()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatal("prometheus not on PATH: run deploy/scripts/ensure-prometheus.sh (Debian package prometheus)")
	}
	bin := exportdBinary(t)
	chDSN, pgDSN := privateServers(t)
	dir := t.TempDir()
	env := append(os.Environ(), "EXPORTD_CLICKHOUSE_DSN="+chDSN, "EXPORTD_POSTGRES_DSN="+pgDSN,
		"EXPORTD_SIGNING_KEY="+filepath.Join(dir, "key.pem"))
	run := exportdRunner(t, bin, env)
	run("migrate")
	// 300k rows: a whole-range gzip export of them holds replica a's only
	// slot for a second or more while creates pile up and are shed.
	run("ingest", "--generate", "300000", "--enterprises", "1", "--seed", "72", "--once")
	ent := run("ingest", "--print-enterprises", "--enterprises", "1", "--seed", "72")
	tok := run("token", "--sub", "service-accounts/00000000-0000-4000-8000-0000000000d2", "--scope", ent,
		"--capability", "operations_reports.create", "--capability", "operations_reports.read", "--ttl", "1h")
	t.Logf("servers and data ready after %v", time.Since(start).Round(time.Millisecond))

	// Two replicas of one deployment (same ClickHouse, PostgreSQL, store).
	type replica struct{ base, admin, target string }
	newReplica := func() replica {
		t.Helper()
		httpPort, err := chlocal.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		adminPort, err := chlocal.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		r := replica{base: fmt.Sprintf("http://127.0.0.1:%d", httpPort), target: fmt.Sprintf("127.0.0.1:%d", adminPort)}
		r.admin = "http://" + r.target
		return r
	}
	a, b := newReplica(), newReplica()
	prom := startPrometheus(t, dir, a.target, b.target) // up while the replicas start
	serve := func(r replica, name string, extra ...string) (ready func()) {
		t.Helper()
		httpAddr := strings.TrimPrefix(r.base, "http://")
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(append(env, "EXPORTD_HTTP_ADDR="+httpAddr,
			"EXPORTD_ADMIN_ADDR="+r.target, "EXPORTD_REPLICA_ID="+name,
			"EXPORTD_STORAGE_URL=file://"+filepath.Join(dir, "exports")), extra...)
		logs := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("%s logs:\n%s", name, logs.String())
			}
		})
		return func() { waitReady(t, r.base+"/readyz", done) }
	}
	readyA := serve(a, "replica-a", "EXPORTD_MAX_EXPORTS=1")
	readyB := serve(b, "replica-b", "EXPORTD_EXPORT_TIMEOUT=1ms")
	readyA()
	readyB()
	prom.waitUp(t, 2)
	t.Logf("prometheus scraping both replicas after %v", time.Since(start).Round(time.Millisecond))

	// The drive.
	api := func(method, url, body, wait string) (int, map[string]any) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if wait != "" {
			req.Header.Set("Prefer", "wait="+wait)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, url, err)
			return 0, nil
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var v map[string]any
		_ = json.Unmarshal(raw, &v)
		if v == nil {
			v = map[string]any{"raw": string(raw)}
		}
		return resp.StatusCode, v
	}
	create := func(r replica, from, to, compression, wait string) (int, map[string]any) {
		return api("POST", r.base+"/operations-activity-exports", fmt.Sprintf(
			`{"format":"csv","filter_criteria":{"date_from_utc":%q,"date_to_utc":%q},"requested_scope":{"kind":"enterprise","ref":%q},"compression":%q}`,
			from, to, ent, compression), wait)
	}
	if code, v := create(a, "2026-02-01T00:00:00Z", "2026-02-07T23:59:59Z", "none", "60"); code != 201 || v["status"] != "ready" {
		t.Fatalf("create on a: %d %v", code, v)
	}
	code, long := create(a, "2026-01-01T00:00:00Z", "2026-06-30T23:59:59Z", "gzip", "0")
	if code != 201 {
		t.Fatalf("create long export on a: %d %v", code, long)
	}
	var shedMu sync.Mutex
	shed := 0
	var burst sync.WaitGroup
	for range 10 {
		burst.Add(1)
		go func() {
			defer burst.Done()
			if code, v := create(a, "2026-03-01T00:00:00Z", "2026-03-01T23:59:59Z", "none", "0"); code == 503 {
				shedMu.Lock()
				shed++
				shedMu.Unlock()
			} else if code != 201 {
				t.Errorf("burst create: %d %v", code, v)
			}
		}()
	}
	burst.Wait()
	if shed == 0 {
		t.Fatal("no create of the burst was shed: exportd_admission_shed_total has no series")
	}
	longID, _ := long["id"].(string)
	if code, v := api("POST", a.base+"/operations-activity-exports/"+longID+"/cancel", "", ""); code != 200 {
		t.Logf("cancel of the long export: %d %v (it may have ended first)", code, v)
	}
	code, failed := create(b, "2026-02-01T00:00:00Z", "2026-02-07T23:59:59Z", "none", "60")
	if code != 201 {
		t.Fatalf("create on b: %d %v", code, failed)
	}
	failedID, _ := failed["id"].(string)
	waitStatus := func(r replica, id, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, v := api("GET", r.base+"/operations-activity-exports/"+id, "", "")
			if v["status"] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("export %s: %v, want status %s", id, v, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitStatus(b, failedID, "failed")
	// Everything admitted on a ends (the burst's creates run in turn).
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, v := api("GET", a.base+"/operations-activity-exports?limit=100", "", "")
		items, ok := v["items"].([]any)
		if code != 200 || !ok || len(items) < 2 {
			t.Fatalf("list on a: %d %v, want the ready and the long export at least", code, v)
		}
		busy := 0
		for _, it := range items {
			if m, _ := it.(map[string]any); m["status"] == "pending" || m["status"] == "running" {
				busy++
			}
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exports still pending or running on a after 30s: %v", v)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("drive done after %v (%d of 10 burst creates shed)", time.Since(start).Round(time.Millisecond), shed)

	// Prometheus holds what the replicas expose: its latest
	// exportd_exports_total per replica and status equals their /metrics.
	want := map[string]float64{}
	for _, r := range []replica{a, b} {
		for k, v := range scrapeCounter(t, r.admin+"/metrics", "exportd_exports_total", "status") {
			want[r.target+" "+k] = v
		}
	}
	if want[a.target+" ready"] < 1 || want[b.target+" failed"] != 1 {
		t.Fatalf("exportd_exports_total from /metrics: %v, want ready on a and one failed on b", want)
	}
	var got map[string]float64
	for deadline := time.Now().Add(15 * time.Second); ; {
		got = map[string]float64{}
		for _, s := range prom.query(t, `exportd_exports_total{job="exportd"}`).Result {
			got[s.Metric["instance"]+" "+s.Metric["status"]] = s.value(t)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Prometheus has exportd_exports_total %v, the replicas expose %v", got, want)
	}
	// Two more scrapes after the last change: every rate has two samples.
	time.Sleep(2500 * time.Millisecond)

	// The alert rules: loaded, evaluated, healthy.
	rules := alertRules(t)
	loaded := prom.alertRules(t)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			h, ok := loaded[r.Alert]
			switch {
			case !ok:
				t.Errorf("alert %s not loaded by Prometheus", r.Alert)
			case h.Health != "ok" || h.LastError != "":
				t.Errorf("alert %s: health %q, %s", r.Alert, h.Health, h.LastError)
			case h.LastEvaluation.Before(start):
				t.Errorf("alert %s: never evaluated", r.Alert)
			}
		}
	}

	// As Grafana writes a multi-value variable into a regex matcher: values
	// regex-escaped, the escapes escaped again for the PromQL string.
	promRegex := func(vs ...string) string {
		for i, v := range vs {
			vs[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
		}
		return "(" + strings.Join(vs, "|") + ")"
	}
	subst := map[string]string{"job": "exportd", "instance": promRegex(a.target, b.target)}
	for k, v := range grafanaBuiltins {
		subst[k] = v
	}
	var withData int
	var empty []string
	check := func(where, expr string, allowEmpty map[string]bool) {
		t.Helper()
		res := prom.query(t, expr)
		if res.err != "" {
			t.Errorf("%s: %s\n  %s", where, res.err, expr)
			return
		}
		var noSeries []string
		for _, sel := range selectors(expr) {
			if len(prom.query(t, "count("+sel+")").Result) == 0 {
				noSeries = append(noSeries, sel)
			}
		}
		for _, sel := range noSeries {
			if !allowEmpty[sel] {
				t.Errorf("%s: selector %s has no series after the drive\n  %s", where, sel, expr)
			}
		}
		switch {
		case len(res.Result) > 0:
			withData++
		case len(noSeries) > 0:
			empty = append(empty, where+" (no series: "+strings.Join(noSeries, ", ")+")")
		case allowEmpty[""]: // an alert's condition may well be false
			empty = append(empty, where+" (condition false)")
		default:
			t.Errorf("%s: no data although every selector has series\n  %s", where, expr)
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			allow := map[string]bool{"": true}
			if sel, ok := notDriven[r.Alert]; ok {
				allow[sel] = true
			}
			check("alert "+r.Alert, r.Expr, allow)
			// The operands of its condition must have data whenever their
			// selectors do. A subquery's step is shortened to the scrape
			// interval: at 1m steps a young Prometheus has no point yet.
			strict := map[string]bool{}
			for sel := range allow {
				strict[sel] = sel != ""
			}
			for _, part := range alertOperands(r.Expr) {
				check("alert "+r.Alert+" operand", subqueryStep.ReplaceAllString(part, "[$1:1s]"), strict)
			}
		}
	}
	panels := dashboardTargets(t)
	for _, p := range panels {
		expr, err := substituteGrafana(p.expr, subst)
		if err != nil {
			t.Errorf("panel %q: %v", p.title, err)
			continue
		}
		check(fmt.Sprintf("panel %q", p.title), expr, nil)
	}
	for _, v := range dashboardVariables(t) {
		match, err := substituteGrafana(v.match, subst)
		if err != nil {
			t.Errorf("variable %s: %v", v.name, err)
			continue
		}
		values := prom.labelValues(t, v.label, match)
		wantValues := map[string][]string{"job": {"exportd"}, "instance": {a.target, b.target}}[v.name]
		sort.Strings(wantValues)
		if fmt.Sprint(values) != fmt.Sprint(wantValues) {
			t.Errorf("variable %s = label_values(%s, %s): %v, want %v", v.name, match, v.label, values, wantValues)
		}
	}
	t.Logf("%d alerts, %d panel targets: %d expressions with data, %d empty:\n  %s", len(loaded), len(panels),
		withData, len(empty), strings.Join(empty, "\n  "))
	t.Logf("%v in all", time.Since(start).Round(time.Millisecond))
}

// alertOperands splits an alert expression at its top-level comparison,
// and/unless: `A > 0.05 and B >= 10` yields A and B, so that the inputs of
// a condition that is false still show they return data.
func alertOperands(expr string) []string {
	var parts []string
	depth, last, split := 0, 0, false
	flush := func(end int) {
		if p := strings.TrimSpace(expr[last:end]); p != "" {
			if !promNumberOnly.MatchString(p) {
				parts = append(parts, p)
			}
		}
	}
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		case c == '"':
			for i++; i < len(expr) && expr[i] != '"'; i++ {
				if expr[i] == '\\' {
					i++
				}
			}
		case depth == 0:
			if m := promTopOp.FindString(expr[i:]); m != "" && (i == 0 || !isIdent(expr[i-1])) {
				flush(i)
				split = true
				i += len(m) - 1
				last = i + 1
			}
		}
	}
	flush(len(expr))
	if !split {
		return nil
	}
	return parts
}

var (
	promTopOp      = regexp.MustCompile(`^(?:>=|<=|==|!=|>|<|and\b|unless\b|or\b)`)
	promNumberOnly = regexp.MustCompile(`^[0-9.e+-]+$`)
	subqueryStep   = regexp.MustCompile(`\[(\w+):\w+\]`)
	grafanaVar     = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)
)

func isIdent(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// selectors returns each metric selector of an expression (name and
// matchers, as written), e.g. `exportd_exports_total{status="failed"}`.
func selectors(expr string) []string {
	seen := map[string]bool{}
	var out []string
	for _, name := range metricNames(expr) {
		re := regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:])(` + regexp.QuoteMeta(name) + `(?:\s*\{[^{}]*\})?)`)
		for _, m := range re.FindAllStringSubmatch(expr, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1])
			}
		}
	}
	return out
}

// substituteGrafana replaces Grafana's variables ($x, ${x}, ${x:fmt});
// an unknown one is an error.
func substituteGrafana(expr string, values map[string]string) (string, error) {
	var missing []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		name := sm[1] + sm[2]
		v, ok := values[name]
		if !ok {
			missing = append(missing, m)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown Grafana variables %v in %s", missing, expr)
	}
	return out, nil
}

type panelTarget struct{ title, expr string }

// dashboardTargets returns every panel target's expression with its panel's
// title (rows' nested panels included).
func dashboardTargets(t *testing.T) []panelTarget {
	t.Helper()
	var d struct {
		Panels []dashPanel `json:"panels"`
	}
	readDashboard(t, &d)
	var out []panelTarget
	var walk func(ps []dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q has a target without expr", dashboardPath, p.Title)
					continue
				}
				out = append(out, panelTarget{p.Title, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		t.Fatalf("%s: no panel targets", dashboardPath)
	}
	return out
}

type dashPanel struct {
	Title   string                  `json:"title"`
	Targets []struct{ Expr string } `json:"targets"`
	Panels  []dashPanel             `json:"panels"`
}

type dashVariable struct{ name, match, label string }

var labelValuesCall = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$`)

// dashboardVariables returns the query variables: label_values(match, label).
func dashboardVariables(t *testing.T) []dashVariable {
	t.Helper()
	var d struct {
		Templating struct {
			List []struct {
				Name, Type, Definition string
			} `json:"list"`
		} `json:"templating"`
	}
	readDashboard(t, &d)
	var out []dashVariable
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesCall.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("%s: variable %s: %q is not label_values(selector, label)", dashboardPath, v.Name, v.Definition)
			continue
		}
		out = append(out, dashVariable{v.Name, m[1], m[2]})
	}
	return out
}

func readDashboard(t *testing.T, v any) {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
}

// scrapeCounter reads one counter family from a text exposition, keyed by
// the value of one label.
func scrapeCounter(t *testing.T, url, name, label string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{[^}]*\b` + label + `="([^"]*)"[^}]*\} (\S+)$`)
	out := map[string]float64{}
	for _, m := range line.FindAllStringSubmatch(string(body), -1) {
		var v float64
		if _, err := fmt.Sscan(m[2], &v); err != nil {
			t.Fatalf("%s: %q: %v", url, m[0], err)
		}
		out[m[1]] = v
	}
	return out
}

// prometheusServer is a private Prometheus: temp data dir, loopback port.
type prometheusServer struct {
	base   string
	exited <-chan struct{}
}

func startPrometheus(t *testing.T, dir string, targets ...string) *prometheusServer {
	t.Helper()
	rules, err := filepath.Abs(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: exportd
    metrics_path: /metrics
    static_configs:
      - targets: [%s]
`, rules, strings.Join(quoted, ", "))
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "config", confPath).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	port, err := chlocal.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := &prometheusServer{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	cmd := exec.Command("prometheus", "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(dir, "prometheus-data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", logs.String())
		}
	})
	p.exited = done
	return p
}

// waitUp waits until Prometheus has scraped n exportd targets successfully.
func (p *prometheusServer) waitUp(t *testing.T, n int) {
	t.Helper()
	waitReady(t, p.base+"/-/ready", p.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if len(p.query(t, `up{job="exportd"} == 1`).Result) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has not scraped %d exportd targets after 20s: %v", n, p.query(t, `up`).Result)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

func (s promSample) value(t *testing.T) float64 {
	t.Helper()
	var v float64
	if len(s.Value) != 2 {
		t.Fatalf("sample %v", s)
	}
	str, _ := s.Value[1].(string)
	if _, err := fmt.Sscan(str, &v); err != nil {
		t.Fatalf("sample %v: %v", s, err)
	}
	return v
}

type promResult struct {
	Result []promSample
	err    string
}

func (p *prometheusServer) get(t *testing.T, path string, params url.Values, data any) string {
	t.Helper()
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Warnings  []string        `json:"warnings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s: %d: %v", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Sprintf("%d %s: %s", resp.StatusCode, env.ErrorType, env.Error)
	}
	if len(env.Warnings) > 0 {
		return fmt.Sprintf("warnings: %v", env.Warnings)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ""
}

// query evaluates an instant query now; a scalar result counts as one sample.
func (p *prometheusServer) query(t *testing.T, expr string) promResult {
	t.Helper()
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if msg := p.get(t, "/api/v1/query", url.Values{"query": {expr}}, &data); msg != "" {
		return promResult{err: msg}
	}
	var r promResult
	switch data.ResultType {
	case "vector":
		if err := json.Unmarshal(data.Result, &r.Result); err != nil {
			t.Fatal(err)
		}
	case "scalar":
		var v []any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			t.Fatal(err)
		}
		r.Result = []promSample{{Value: v}}
	default:
		r.err = "result type " + data.ResultType + ", want vector or scalar"
	}
	return r
}

func (p *prometheusServer) labelValues(t *testing.T, label, match string) []string {
	t.Helper()
	var values []string
	if msg := p.get(t, "/api/v1/label/"+label+"/values", url.Values{"match[]": {match}}, &values); msg != "" {
		t.Errorf("label values %s of %s: %s", label, match, msg)
	}
	sort.Strings(values)
	return values
}

type ruleHealth struct {
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// alertRules returns the loaded alerting rules by name.
func (p *prometheusServer) alertRules(t *testing.T) map[string]ruleHealth {
	t.Helper()
	var data struct {
		Groups []struct {
			Rules []struct {
				Name string `json:"name"`
				Type string `json:"type"`
				ruleHealth
			} `json:"rules"`
		} `json:"groups"`
	}
	if msg := p.get(t, "/api/v1/rules", url.Values{"type": {"alert"}}, &data); msg != "" {
		t.Fatalf("rules: %s", msg)
	}
	out := map[string]ruleHealth{}
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			out[r.Name] = r.ruleHealth
		}
	}
	return out
}

func TestAlertOperandsAndGrafanaSubstitution(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{"up{job=\"exportd\"} == 0", []string{"up{job=\"exportd\"}"}},
		{"(\n  sum(rate(a{s=\"x>y\"}[15m])) / sum(rate(a[15m]))\n) > 0.05\nand sum(increase(a[15m])) >= 10",
			[]string{"(\n  sum(rate(a{s=\"x>y\"}[15m])) / sum(rate(a[15m]))\n)", "sum(increase(a[15m]))"}},
		{"sum by (instance) (rate(m{code=\"503\"}[5m])) > 0\nunless sum by (instance) (rate(m{code=\"200\"}[5m])) > 0",
			[]string{"sum by (instance) (rate(m{code=\"503\"}[5m]))", "sum by (instance) (rate(m{code=\"200\"}[5m]))"}},
		{"sum(x) >= sum(y)", []string{"sum(x)", "sum(y)"}},
		{"min_over_time(sum(q)[10m:1m]) > 0", []string{"min_over_time(sum(q)[10m:1m])"}},
		{"sum(rate(m[5m]))", nil},
	} {
		if got := alertOperands(tc.expr); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
			t.Errorf("alertOperands(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
	vals := map[string]string{"job": "exportd", "__rate_interval": "1m"}
	if got, err := substituteGrafana(`rate(m{job=~"$job"}[$__rate_interval]) + n{job=~"${job}"}`, vals); err != nil ||
		got != `rate(m{job=~"exportd"}[1m]) + n{job=~"exportd"}` {
		t.Errorf("substituteGrafana: %q, %v", got, err)
	}
	if _, err := substituteGrafana(`m{replica=~"$replica"}`, vals); err == nil {
		t.Error("substituteGrafana: an unknown variable is not an error")
	}
	if got := selectors(`sum(rate(m{a="1"}[5m])) / sum(rate(m[5m])) + up`); fmt.Sprint(got) != `[m{a="1"} m up]` {
		t.Errorf("selectors: %q", got)
	}
}
