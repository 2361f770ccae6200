// Package monitoring proves the Prometheus rules and the Grafana dashboard:
// promtool checks and unit-tests the rules, every expression names only
// metrics parley-xmpp exports, and a real Prometheus scraping a real serve
// evaluates the rules and sees the link come up and the engine go down.
package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/parley-go/parley-xmpp/cluster"
	"github.com/parley-go/parley-xmpp/internal/xmpptest"
	"github.com/parley-go/parley-xmpp/metrics"
	"github.com/parley-go/parley-xmpp/observe"
)

func TestPromtoolChecksTheRules(t *testing.T) {
	promtool := xmpptest.RequireTool(t, "promtool", "prometheus")
	out, err := exec.Command(promtool, "check", "rules", "alerts.yml").CombinedOutput()
	require.NoError(t, err, "promtool check rules: %s", out)
	assert.Contains(t, string(out), "SUCCESS")
}

func TestPromtoolUnitTestsTheRules(t *testing.T) {
	promtool := xmpptest.RequireTool(t, "promtool", "prometheus")
	out, err := exec.Command(promtool, "test", "rules", "alerts_test.yml").CombinedOutput()
	require.NoError(t, err, "promtool test rules: %s", out)
	assert.Contains(t, string(out), "SUCCESS")
}

// Every alert has a test in alerts_test.yml that expects it to fire.
func TestEveryAlertIsUnitTested(t *testing.T) {
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	b, err := os.ReadFile("alerts_test.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &tests))
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	for _, r := range rules(t) {
		assert.True(t, fired[r.Alert], "alerts_test.yml has no case where %s fires", r.Alert)
	}
}

type rule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func rules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile("alerts.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &f))
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	require.NotEmpty(t, out)
	return out
}

// exported lists the metric names a serve's /metrics has: package metrics'
// collectors (each touched once so every vector has a series), a cluster
// node's, the Go runtime's and the process's, and Prometheus's own up.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	p := metrics.New()
	cluster.RegisterMetrics(p.Registry())
	p.ConnectionState(observe.State(1))
	p.Reconnected()
	p.Resumed()
	p.UnackedStanzas(1)
	r := p.Room("t")
	r.Joined(true)
	r.MessageIn()
	r.MessageOut()
	r.Replayed(1)
	r.PendingPosts(1)
	r.SubscriberQueue(1)
	r.(observe.GapRecorder).HistoryGap()
	r.(observe.RowDropper).ArchiveRowsDropped(1)
	p.Delivered("r", "t")
	p.SinkFailure("r")
	p.Backlog("r", "t", 1)
	p.Skipped("r", "refused")
	p.DeadLettered("r")
	p.Stopped("r", "t")
	fams, err := p.Registry().Gather()
	require.NoError(t, err)
	names := map[string]bool{"up": true}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

var (
	// labelValuesArg is label_values(SELECTOR, LABEL): $1 is the selector.
	labelValuesArg = regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)
	strLit         = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers       = regexp.MustCompile(`\{[^}]*\}`)
	ranges         = regexp.MustCompile(`\[[^\]]*\]`)
	grouping       = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	variables      = regexp.MustCompile(`\$\{?\w+\}?`)
	ident          = regexp.MustCompile(`\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(\s*\()?`)
	keywords       = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}
)

// metricNames are the metric names a PromQL expression selects: identifiers
// that are not functions, keywords, label names or durations.
func metricNames(expr string) []string {
	e := strLit.ReplaceAllString(expr, `""`)
	e = matchers.ReplaceAllString(e, " ")
	e = ranges.ReplaceAllString(e, " ")
	e = grouping.ReplaceAllString(e, " ")
	e = variables.ReplaceAllString(e, " ")
	var out []string
	for _, m := range ident.FindAllStringSubmatch(e, -1) {
		name := strings.TrimRightFunc(m[0], func(r rune) bool { return r == '(' || r == ' ' || r == '\t' || r == '\n' })
		if m[1] != "" || keywords[name] {
			continue // a function or an aggregation
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesOfAnExpression(t *testing.T) {
	got := metricNames(`sum by (job, route) (rate(parley_xmpp_sink_failures_total{route=~"a|b", x="y{z}"}[5m])) > 0 unless on (job) max(up{job="$job"}[$__rate_interval]) offset 1h`)
	sort.Strings(got)
	assert.Equal(t, []string{"parley_xmpp_sink_failures_total", "up"}, got)
	assert.Equal(t, []string{"parley_xmpp_nope"}, metricNames("parley_xmpp_nope == 0"))
}

func TestRulesUseExportedMetrics(t *testing.T) {
	names := exported(t)
	for _, r := range rules(t) {
		got := metricNames(r.Expr)
		assert.NotEmpty(t, got, "%s: no metric in %q", r.Alert, r.Expr)
		for _, n := range got {
			assert.True(t, names[n], "%s: %q is not a metric parley-xmpp exports (expr %q)", r.Alert, n, r.Expr)
		}
	}
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("dashboard.json")
	require.NoError(t, err)
	var d struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	require.NoError(t, dec.Decode(&d), "dashboard.json parses")
	assert.NotEmpty(t, d.Title)
	assert.NotEmpty(t, d.UID)
	assert.GreaterOrEqual(t, d.SchemaVersion, 30)
	require.NotEmpty(t, d.Panels)
	names := exported(t)
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		require.NotNil(t, p.GridPos, "panel %q has a gridPos", p.Title)
		assert.Positive(t, p.GridPos.W*p.GridPos.H, "panel %q has a size", p.Title)
		if p.Type == "row" {
			continue // a heading
		}
		require.NotEmpty(t, p.Targets, "panel %q queries something", p.Title)
		for _, tg := range p.Targets {
			got := metricNames(tg.Expr)
			assert.NotEmpty(t, got, "panel %q: no metric in %q", p.Title, tg.Expr)
			for _, n := range got {
				used[n] = true
				assert.True(t, names[n], "panel %q: %q is not a metric parley-xmpp exports (expr %q)", p.Title, n, tg.Expr)
			}
		}
	}
	for _, v := range d.Templating.List {
		for _, n := range metricNames(labelValuesArg.ReplaceAllString(v.Definition, "$1")) {
			assert.True(t, names[n], "variable %s: %q is not exported", v.Name, n)
		}
	}
	for n := range names {
		if strings.HasPrefix(n, "parley_xmpp_") {
			assert.True(t, used[n], "the dashboard shows no panel of %s", n)
		}
	}
}

// The dashboard queries the data source chosen when it is imported: Grafana
// replaces each ${DS_...} of __inputs with the chosen data source's uid, and
// nothing else. So every panel, query and query variable uses the datasource
// variable, and that variable starts at ${DS_PROMETHEUS} (switchable later;
// provisioned from a file, where nothing is replaced, Grafana falls back to
// the default Prometheus). Imported with a data source "chosen-uid", every
// query resolves to it.
func TestDashboardUsesTheDataSourceChosenAtImport(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	require.NoError(t, err)
	var inputs struct {
		Inputs []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			PluginID string `json:"pluginId"`
		} `json:"__inputs"`
	}
	require.NoError(t, json.Unmarshal(raw, &inputs))
	require.Len(t, inputs.Inputs, 1, "one data source to choose")
	in := inputs.Inputs[0]
	assert.Equal(t, "datasource", in.Type)
	assert.Equal(t, "prometheus", in.PluginID)
	placeholder := "${" + in.Name + "}"
	for _, m := range regexp.MustCompile(`\$\{(DS_\w+)\}`).FindAllStringSubmatch(string(raw), -1) {
		assert.Equal(t, in.Name, m[1], "%s is no input of __inputs: import would leave it unreplaced", m[0])
	}

	// Import: Grafana replaces the input's placeholder, as text.
	imported := strings.ReplaceAll(string(raw), placeholder, "chosen-uid")
	var d struct {
		Panels     []dsPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string      `json:"name"`
				Type       string      `json:"type"`
				Query      any         `json:"query"`
				Datasource *datasource `json:"datasource"`
				Current    struct {
					Value any `json:"value"`
				} `json:"current"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal([]byte(imported), &d))
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			assert.Equal(t, "prometheus", v.Query, "variable %s lists Prometheus data sources", v.Name)
			value, _ := v.Current.Value.(string)
			vars["${"+v.Name+"}"] = value
		}
	}
	require.Contains(t, vars, "${datasource}", "a datasource variable")
	assert.Equal(t, "chosen-uid", vars["${datasource}"], "the datasource variable starts at the data source chosen at import")
	resolve := func(what string, ds *datasource) {
		t.Helper()
		if !assert.NotNil(t, ds, "%s names its data source", what) {
			return
		}
		assert.Equal(t, "prometheus", ds.Type, what)
		assert.Equal(t, "${datasource}", ds.UID, "%s uses the datasource variable", what)
		uid := ds.UID
		if v, ok := vars[uid]; ok {
			uid = v
		}
		assert.Equal(t, "chosen-uid", uid, "%s queries the data source chosen at import", what)
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			resolve("variable "+v.Name, v.Datasource)
		}
	}
	require.NotEmpty(t, d.Panels)
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		resolve(fmt.Sprintf("panel %q", p.Title), p.Datasource)
		for _, tg := range p.Targets {
			resolve(fmt.Sprintf("panel %q, query %s", p.Title, tg.RefID), tg.Datasource)
		}
	}
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dsPanel struct {
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}
