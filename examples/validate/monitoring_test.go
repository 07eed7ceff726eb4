package validate

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const (
	dashboardFile  = "examples/monitoring/encfs-dashboard.json"
	alertsFile     = "examples/monitoring/encfs-alerts.yaml"
	alertTestsFile = "examples/monitoring/encfs-alerts.test.yaml"
	operationsFile = "docs/OPERATIONS.md"
)

// query is one PromQL expression of the dashboard or the alert rules, and where it is.
type query struct{ where, expr string }

// The parts of a Grafana dashboard the checks read.
type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Descr      string `json:"description"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	ID         any            `json:"id"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	var d grafanaDashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

func allPanels(ps []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// grafanaVar matches Grafana's variables in a query: $name, ${name} and ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\}?`)

// promQL turns a Grafana query into PromQL: interval variables become a duration, the others
// (used inside label matchers) a regular expression matching anything.
func promQL(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		name := grafanaVar.FindStringSubmatch(v)[1]
		switch name {
		case "__rate_interval", "__interval", "__range", "__range_s":
			return "5m"
		}
		return ".*"
	})
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)

func dashboardQueries(t *testing.T, d grafanaDashboard) []query {
	t.Helper()
	var qs []query
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("%s panel %q query %s", dashboardFile, p.Title, tg.RefID), promQL(tg.Expr)})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("%s: variable %s: %q is not label_values(METRIC{...}, LABEL); name a metric so that the variable lists only encfs sidecars", dashboardFile, v.Name, v.Definition)
			continue
		}
		qs = append(qs, query{fmt.Sprintf("%s variable %s", dashboardFile, v.Name), promQL(m[1])})
	}
	return qs
}

func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	rgs, errs := rulefmt.ParseFile(filepath.Join(root, alertsFile), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", alertsFile, err)
	}
	if rgs == nil {
		t.FailNow()
	}
	return rgs
}

func ruleQueries(rgs *rulefmt.RuleGroups) []query {
	var qs []query
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			qs = append(qs, query{fmt.Sprintf("%s rule %s", alertsFile, name), r.Expr})
		}
	}
	return qs
}

// metricNames returns the metric names a PromQL expression selects; an error if it does not
// parse or selects a series without naming its metric.
func metricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				if m.Type != labels.MatchEqual {
					bad = fmt.Errorf("%s: select metrics by exact name, not %s", vs, m)
				}
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("%s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("selects no metric")
	}
	return names, nil
}

// TestDashboard checks that the Grafana dashboard imports as is: valid JSON, no fixed id, a
// uid, a Prometheus datasource variable used by every panel, the instance and mount
// variables, unique panel ids, a position and a description for every panel, and queries that
// parse as PromQL.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("%s: title and uid are required", dashboardFile)
	}
	if d.ID != nil {
		t.Errorf("%s: remove \"id\": Grafana assigns it on import, and a fixed one overwrites another dashboard", dashboardFile)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "datasource" && v.Query != "prometheus" {
			t.Errorf("%s: datasource variable %s must have query \"prometheus\", has %v", dashboardFile, v.Name, v.Query)
		}
	}
	for name, typ := range map[string]string{"datasource": "datasource", "instance": "query", "mount": "query"} {
		if vars[name] != typ {
			t.Errorf("%s: want a %s variable named %s", dashboardFile, typ, name)
		}
	}
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		if prev, ok := ids[p.ID]; ok || p.ID == 0 {
			t.Errorf("%s: panel %q: id %d missing or also used by %q", dashboardFile, p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: panel %q: gridPos missing or wider than the 24 columns", dashboardFile, p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: panel %q: datasource must be the template variable ${datasource}, or the import binds it to one Prometheus", dashboardFile, p.Title)
		}
		if len(p.Descr) < 40 {
			t.Errorf("%s: panel %q: a description should tell a newcomer what the panel shows and what to do about it", dashboardFile, p.Title)
		}
	}
	for _, q := range dashboardQueries(t, d) {
		if _, err := metricNames(q.expr); err != nil {
			t.Errorf("%s: %q: %v", q.where, q.expr, err)
		}
	}
}

// TestAlertRules checks the alert rules with Prometheus's own rule parser, then with promtool
// (check rules, and the unit tests of encfs-alerts.test.yaml) when it is installed
// (scripts/test.sh installs it; CI=true requires it). Every alert must have a unit test that
// expects it to fire, and a runbook section of its name in docs/OPERATIONS.md.
func TestAlertRules(t *testing.T) {
	rgs := loadRules(t)
	var alerts []string
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if r.Labels["severity"] == "" {
				t.Errorf("%s: alert %s has no severity label", alertsFile, r.Alert)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: alert %s has no %s annotation", alertsFile, r.Alert, a)
				}
			}
			if want := "docs/OPERATIONS.md#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations["runbook_url"], want) {
				t.Errorf("%s: alert %s: runbook_url %q does not end in %s", alertsFile, r.Alert, r.Annotations["runbook_url"], want)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s: no alerts", alertsFile)
	}

	// Every alert expected to fire in at least one unit test.
	var tests struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string            `json:"alertname"`
				ExpAlerts []json.RawMessage `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, alertTestsFile), &tests); err != nil {
		t.Fatalf("%s: %v", alertTestsFile, err)
	}
	if !slices.Contains(tests.RuleFiles, filepath.Base(alertsFile)) {
		t.Errorf("%s: rule_files does not name %s", alertTestsFile, filepath.Base(alertsFile))
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	ops := string(readFile(t, operationsFile))
	for _, a := range alerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("%s: alert %s needs a unit test where it fires and one where it does not", alertTestsFile, a)
		}
		if !regexp.MustCompile(`(?m)^#{2,4} ` + a + `\s*$`).MatchString(ops) {
			t.Errorf("%s: no runbook section \"### %s\"", operationsFile, a)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (Debian package prometheus; scripts/test.sh installs it), and CI=true requires it")
		}
		t.Skip("promtool not installed (apt-get install prometheus): rules parsed, not unit-tested")
	}
	for _, args := range [][]string{{"check", "rules", alertsFile}, {"test", "rules", alertTestsFile}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestQueriesUseLiveMetricNames runs a real sidecar (liveMetricNames: the encfs binary,
// `encfs mount --config`, a FUSE mount, its /metrics scraped) and checks that every metric named
// by a dashboard query or an alert rule is one the sidecar exports, so that a renamed metric
// cannot leave a panel empty or an alert silent.
func TestQueriesUseLiveMetricNames(t *testing.T) {
	d := loadDashboard(t)
	qs := append(dashboardQueries(t, d), ruleQueries(loadRules(t))...)
	live := liveMetricNames(t)
	used := map[string]bool{}
	for _, q := range qs {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %q: %v", q.where, q.expr, err)
			continue
		}
		for _, n := range names {
			used[n] = true
			if !live[n] {
				t.Errorf("%s uses %s, which a live encfs mount does not export", q.where, n)
			}
		}
	}
	if t.Failed() {
		t.Logf("metrics of the live mount: %s", sortedKeys(live))
		return
	}
	t.Logf("%d queries use %d metrics, all exported", len(qs), len(used))
}
