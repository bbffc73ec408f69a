// Package monitoring tests the Grafana dashboard and the Prometheus alert
// rules of examples/monitoring with Prometheus's own tools: promtool checks
// and unit-tests the rules and parses every dashboard query, and a real
// Prometheus (live_test.go) scrapes a metrics endpoint and answers every
// dashboard query with data.
//
// The tools come from Debian's prometheus package
// (examples/monitoring/install-prometheus.sh). Without them the tests skip,
// or fail when the environment variable CI is set.
package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The label values that the plugin exports; a matcher in the dashboard or
// the alerts that names anything else is a typo that would silently match
// nothing.
var (
	knownOutcomes = []string{
		"forwarded", "filtered", "delivered_earlier",
		"method_not_allowed", "too_large", "bad_request", "bad_signature",
		"app_refused", "seller_refused", "stale",
		"notify_verify_refused", "notify_verify_error",
		"upstream_error", "upstream_timeout",
		"verified", // alipay_verify's
	}
	knownStates  = []string{"pending", "dead", "delivered"}
	knownResults = []string{"accepted", "refused", "error", "timeout"}
)

// metricFamilies are the families the dashboard must show, each at least
// once.
var metricFamilies = []string{
	"caddy_alipay_notify_notifications_total",
	"caddy_alipay_notify_upstream_duration_seconds_bucket",
	"caddy_alipay_notify_verify_duration_seconds_bucket",
	"caddy_alipay_notify_outbox_entries",
	"caddy_alipay_notify_outbox_deliveries_total",
	"caddy_alipay_notify_outbox_oldest_pending_seconds",
}

// requireTool finds a Prometheus tool on PATH: without it the test skips,
// or fails under CI, where install-prometheus.sh must have run.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not found on PATH; install it with examples/monitoring/install-prometheus.sh (Debian's prometheus package)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// run runs a command in the package directory and fails the test, with its
// output, unless it succeeds.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAlertRules(t *testing.T) {
	promtool := requireTool(t, "promtool")
	out := run(t, promtool, "check", "rules", "alerts.yml")
	t.Logf("promtool check rules alerts.yml:\n%s", out)
	out = run(t, promtool, "test", "rules", "alerts_test.yml")
	t.Logf("promtool test rules alerts_test.yml:\n%s", out)

	rules, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, alert := range []string{
		"AlipayNotifyForgeryBurst", "AlipayVerifyForgeryBurst", "AlipayNotifyUpstreamFailing", "AlipayNotifyStaleRefusals",
		"AlipayNotifyOutboxOldestPending", "AlipayNotifyOutboxDead",
	} {
		if !strings.Contains(string(rules), "alert: "+alert+"\n") {
			t.Errorf("alerts.yml has no alert %s", alert)
		}
	}
	checkLabelValues(t, "alerts.yml", string(rules))
}

// dashboard is the part of a Grafana dashboard that the tests look at.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string      `json:"name"`
			Type       string      `json:"type"`
			Query      any         `json:"query"` // a string, or {"query": ...}
			Definition string      `json:"definition"`
			Datasource *datasource `json:"datasource"`
			AllValue   string      `json:"allValue"`
			IncludeAll bool        `json:"includeAll"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// query is one dashboard target, its expression with the template variables
// substituted.
type query struct {
	Name   string // "panel title/refId"
	Record string // a recording rule name for it: dashboard:panel<id>_<refId>
	Expr   string
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return d
}

// allPanels flattens rows: a collapsed row holds its panels.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// templateVar matches the ways Grafana spells a template variable in an
// expression: $name, ${name} and ${name:format}.
var templateVar = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::\w+)?\}`)

// expand substitutes the dashboard's template variables as Grafana would
// for "All": $app_id matches every app id, and $__rate_interval is
// rateInterval (Grafana makes it at least four scrape intervals).
func expand(t *testing.T, expr, rateInterval string) string {
	t.Helper()
	return templateVar.ReplaceAllStringFunc(expr, func(v string) string {
		m := templateVar.FindStringSubmatch(v)
		name := m[1] + m[2]
		switch name {
		case "app_id":
			return ".*"
		case "__rate_interval":
			return rateInterval
		}
		t.Errorf("expression %q uses template variable %s, which the tests do not know", expr, v)
		return v
	})
}

// dashboardQueries collects every panel target's expression, expanded.
func dashboardQueries(t *testing.T, d dashboard, rateInterval string) []query {
	t.Helper()
	var out []query
	for _, p := range d.allPanels() {
		for _, target := range p.Targets {
			if strings.TrimSpace(target.Expr) == "" {
				t.Errorf("panel %q target %s has no expression", p.Title, target.RefID)
				continue
			}
			out = append(out, query{
				Name:   p.Title + "/" + target.RefID,
				Record: fmt.Sprintf("dashboard:panel%d_%s", p.ID, target.RefID),
				Expr:   expand(t, target.Expr, rateInterval),
			})
		}
	}
	if len(out) == 0 {
		t.Fatal("dashboard.json has no queries")
	}
	return out
}

// labelValuesQuery parses the app_id variable's label_values(metric, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\(\s*(\w+)\s*,\s*(\w+)\s*\)$`)

// appIDVariable returns the metric and label of the app_id variable.
func appIDVariable(t *testing.T, d dashboard) (metric, label string) {
	t.Helper()
	for _, v := range d.Templating.List {
		if v.Name != "app_id" {
			continue
		}
		q := v.Definition
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		} else if s, ok := v.Query.(string); ok {
			q = s
		}
		m := labelValuesQuery.FindStringSubmatch(q)
		if m == nil {
			t.Fatalf("variable app_id: query %q is not label_values(metric, label)", q)
		}
		return m[1], m[2]
	}
	t.Fatal("dashboard.json has no app_id variable")
	return "", ""
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("schemaVersion %d, want about 39", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both needed for provisioning", d.UID, d.Title)
	}

	// Variables: the data source, and app_id from label_values.
	var haveDS bool
	for _, v := range d.Templating.List {
		switch v.Name {
		case "DS_PROMETHEUS":
			haveDS = v.Type == "datasource" && v.Query == "prometheus"
		case "app_id":
			if v.Type != "query" || !v.IncludeAll || v.AllValue != ".*" {
				t.Errorf("variable app_id: type %q includeAll %v allValue %q, want a query with All = .*", v.Type, v.IncludeAll, v.AllValue)
			}
			if v.Datasource == nil || v.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("variable app_id: datasource %+v, want uid ${DS_PROMETHEUS}", v.Datasource)
			}
		}
	}
	if !haveDS {
		t.Error("no datasource variable DS_PROMETHEUS of type prometheus")
	}
	if metric, label := appIDVariable(t, d); metric != "caddy_alipay_notify_notifications_total" || label != "app_id" {
		t.Errorf("variable app_id: label_values(%s, %s)", metric, label)
	}

	// Panels: unique ids, on the grid, each query on ${DS_PROMETHEUS}.
	ids := map[int]string{}
	var all strings.Builder
	for _, p := range d.allPanels() {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: datasource %+v, want uid ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
		for _, target := range p.Targets {
			if target.Datasource == nil || target.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q target %s: datasource %+v, want uid ${DS_PROMETHEUS}", p.Title, target.RefID, target.Datasource)
			}
			if strings.Contains(target.Expr, "caddy_alipay_notify_notifications_total") && !strings.Contains(target.Expr, `app_id=~"$app_id"`) {
				t.Errorf("panel %q target %s ignores the app_id variable: %s", p.Title, target.RefID, target.Expr)
			}
			all.WriteString(target.Expr + "\n")
		}
	}
	for _, family := range metricFamilies {
		if !strings.Contains(all.String(), family) {
			t.Errorf("no panel shows %s", family)
		}
	}
	checkLabelValues(t, "dashboard.json", all.String())

	// Every query parses: promtool has no "check expr", so the queries
	// become recording rules, which `promtool check rules` parses.
	promtool := requireTool(t, "promtool")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for _, q := range dashboardQueries(t, d, "1m") {
		quoted, err := json.Marshal(q.Expr) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		rules.WriteString("      # " + q.Name + "\n")
		rules.WriteString("      - record: " + q.Record + "\n")
		rules.WriteString("        expr: " + string(quoted) + "\n")
	}
	file := filepath.Join(t.TempDir(), "dashboard_queries.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, promtool, "check", "rules", file)
	t.Logf("promtool check rules (the dashboard's queries):\n%s", out)
}

// matcher finds the label matchers on outcome, state and result.
var matcher = regexp.MustCompile(`\b(outcome|state|result)\s*(=~|!~|=|!=)\s*"([^"]*)"`)

// checkLabelValues reports a matcher on outcome, state or result that
// names a value the plugin never exports.
func checkLabelValues(t *testing.T, file, text string) {
	t.Helper()
	known := map[string][]string{"outcome": knownOutcomes, "state": knownStates, "result": knownResults}
	found := 0
	for _, m := range matcher.FindAllStringSubmatch(text, -1) {
		found++
		for _, value := range strings.Split(m[3], "|") {
			if !slices.Contains(known[m[1]], value) {
				t.Errorf("%s: %s%s%q: the plugin exports no %s %q", file, m[1], m[2], m[3], m[1], value)
			}
		}
	}
	if found == 0 {
		t.Errorf("%s: no matcher on outcome, state or result found", file)
	}
}
