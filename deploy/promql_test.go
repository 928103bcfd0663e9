package deploy

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// A deliberately small PromQL reader: enough to pull the metric names out
// of the expressions this directory writes (selectors, functions,
// aggregations with by/without, binary operators with on/ignoring/group_*,
// range vectors and subqueries, Grafana variables), not a parser. Whatever
// it cannot classify it reports as a metric name, so a mistake shows up as
// a failed lookup in the scrape rather than as a silently skipped name.
var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promOffset   = regexp.MustCompile(`\boffset\s+-?[0-9a-z]+`)
	promNumber   = regexp.MustCompile(`(?i)(?:^|[^\w:$.])(?:0x[0-9a-f]+|[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?|\.[0-9]+(?:e[+-]?[0-9]+)?)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// label_values(metric{...}, label) and friends in Grafana variables.
	grafanaLabelValues = regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
)

// promKeywords are identifiers of PromQL that are not metric names when
// they are not followed by "(" (functions and aggregations always are).
var promKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
}

// metricNames returns the sorted, distinct metric names an expression selects.
func metricNames(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	for prev := ""; prev != s; { // nested subqueries: [..[..]..]
		prev = s
		s = promRange.ReplaceAllString(s, " ")
	}
	s = promGrouping.ReplaceAllString(s, " ")
	s = promOffset.ReplaceAllString(s, " ")
	s = promNumber.ReplaceAllStringFunc(s, func(m string) string {
		if m != "" && !strings.ContainsAny(m[:1], "0123456789.") {
			return m[:1] + " " // keep the delimiter that preceded the number
		}
		return " "
	})
	seen := map[string]bool{}
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && s[loc[0]-1] == '$' { // a Grafana variable outside a matcher
			continue
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\r\n"); strings.HasPrefix(rest, "(") {
			continue // function or aggregation
		}
		if promKeywords[strings.ToLower(name)] {
			continue
		}
		seen[name] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`up{job="exportd"} == 0`, []string{"up"}},
		{`sum by (status) (rate(exportd_exports_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))`,
			[]string{"exportd_exports_total"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(exportd_http_request_duration_seconds_bucket{route=~"get|list"}[5m]))) > 0.5`,
			[]string{"exportd_http_request_duration_seconds_bucket"}},
		{`(sum(rate(a_total{status="failed"}[15m])) / sum(rate(a_total[15m]))) > 0.05 and sum(increase(a_total[15m])) >= 10`,
			[]string{"a_total"}},
		{`min_over_time(sum(exportd_admission_queued)[10m:1m]) > 0`, []string{"exportd_admission_queued"}},
		{`sum(x) by (le) / on (instance) group_left(route) y offset 5m unless z`, []string{"x", "y", "z"}},
		{`a / clamp_min(b, 1e-9) * 2.5 + .5 - 0x1F`, []string{"a", "b"}},
		{`sum(rate(m{code=~"5..", code!="503"}[5m])) / sum(rate(m[5m])) > 0.01`, []string{"m"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`sum without (instance) (rate(m:ratio_5m[1h] offset -1h))`, []string{"m:ratio_5m"}},
		{`rate(m[5m] @ 1700000000)`, []string{"m"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
