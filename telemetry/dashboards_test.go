package telemetry

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/internal/promqltest"
	"github.com/tollgate-ai/tollgate/processor/usage"
)

// The dashboard and the alert rules ship beside the Envoy config.
var (
	dashboardPath = filepath.Join("..", "envoy", "grafana-dashboard.json")
	rulesPath     = filepath.Join("..", "envoy", "prometheus-rules.yaml")
	rulesTestPath = filepath.Join("..", "envoy", "prometheus-rules.test.yaml")
)

// exposedNames runs traffic of every kind through a Telemetry and returns
// the sample names its /metrics page shows, histogram suffixes included.
func exposedNames(t *testing.T) map[string]bool {
	t.Helper()
	tel, _ := newTest(t, Config{Models: []string{"gpt-4o*"}}, Options{Consumers: consumersFunc("alice", "bob")})
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, r := range []Request{
		{Status: 200, Usage: usage.Usage{Input: 100, Output: 50, CachedInput: 20, CacheCreation: 5, Reasoning: 10}},
		{Status: 200, Usage: usage.Usage{Input: 100, Output: 3, Estimated: true}, Cancelled: true},
		{Status: 503},
		{Status: 429},
		{Decision: RateLimited, Rule: "per-minute"},
		{Decision: QuotaExhausted},
		{Decision: StoreError},
		{Decision: Unauthenticated},
	} {
		r.Consumer, r.Model, r.Provider, r.Operation = []string{"alice", "bob"}[i%2], "gpt-4o", "openai", "chat"
		r.Start, r.FirstToken, r.End = start, start.Add(200*time.Millisecond), start.Add(2*time.Second)
		tel.RequestDone(&r)
	}
	for p := range numPhases {
		tel.Phase(p, 50*time.Microsecond)
	}
	tel.StoreCall("reserve", time.Millisecond, nil)
	tel.StoreCall("settle", time.Second, errors.New("connection refused"))
	tel.QuotaRemaining("alice", 1000)
	tel.SetSpoolDepth(func() int { return 0 })

	names := map[string]bool{}
	for name, f := range scrape(t, tel) {
		names[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	return names
}

type dashboard struct {
	SchemaVersion int    `json:"schemaVersion"`
	Title         string `json:"title"`
	UID           string `json:"uid"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, err)
	}
	return &d
}

// allPanels flattens rows.
func (d *dashboard) allPanels() []dashPanel {
	var out []dashPanel
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) *ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s is not valid YAML: %v", rulesPath, err)
	}
	return &rf
}

// TestDashboardAndRulesUseExposedMetrics checks that every metric the
// dashboard and the alert rules query is one tollgate exposes, so no panel
// stays empty and no alert silently never fires after a rename.
func TestDashboardAndRulesUseExposedMetrics(t *testing.T) {
	exposed := exposedNames(t)
	dash, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	exprs, recorded, err := promqltest.Queries(dash, rules)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for where, e := range exprs {
		names := promqltest.MetricNames(e)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, e)
		}
		for _, n := range names {
			used[n] = true
			if !exposed[n] && !recorded[n] {
				t.Errorf("%s uses %s, which tollgate does not expose", where, n)
			}
		}
	}
	// The views the operator needs are all there.
	for _, n := range []string{
		"tollgate_upstream_responses_total", "tollgate_tokens_total", "tollgate_requests_total",
		"gen_ai_server_request_duration_seconds_bucket", "gen_ai_server_time_to_first_token_seconds_bucket",
		"tollgate_quota_remaining", "tollgate_store_errors_total", "tollgate_spool_depth", "tollgate_extproc_phase_duration_seconds_bucket",
	} {
		if !used[n] {
			t.Errorf("neither the dashboard nor the rules use %s", n)
		}
	}
	var list []string
	for n := range used {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("metrics used: %s", strings.Join(list, " "))
}

func TestDashboardStructure(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 || d.Title == "" || d.UID == "" {
		t.Errorf("schemaVersion %d, title %q, uid %q", d.SchemaVersion, d.Title, d.UID)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no Prometheus datasource variable named datasource")
	}
	ids := map[int]bool{}
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Description == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d %q: needs a title, a description and a query", p.ID, p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
	}
	titles := strings.ToLower(panelTitles(d))
	for _, want := range []string{"upstream responses", "error rate", "model usage", "consumer usage", "token consumption", "rejections", "p50 / p99", "time to first token"} {
		if !strings.Contains(titles, want) {
			t.Errorf("no panel about %q", want)
		}
	}
}

func panelTitles(d *dashboard) string {
	var b strings.Builder
	for _, p := range d.allPanels() {
		b.WriteString(p.Title + "\n")
	}
	return b.String()
}

func TestRulesStructure(t *testing.T) {
	rf := loadRules(t)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs a severity, a summary and a description", r.Alert)
			}
			if !strings.HasSuffix(r.Annotations["runbook_url"], "#"+strings.ToLower(r.Alert)) {
				t.Errorf("alert %s: runbook_url %q does not point at its README section", r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
	for _, want := range []string{"TollgateTokenConsumptionAnomaly", "TollgateTrafficSpike", "TollgateProviderErrorRate",
		"TollgateQuotaNearExhaustion", "TollgateStoreErrors", "TollgateSpoolGrowing"} {
		if !alerts[want] {
			t.Errorf("missing alert %s", want)
		}
	}
}

// TestReadmeDescribesDashboardAndAlerts checks the README has a section for
// every alert (the runbook links point there) and names every panel.
func TestReadmeDescribesDashboardAndAlerts(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !strings.Contains(readme, "\n### "+r.Alert+"\n") {
				t.Errorf("README.md has no section \"### %s\"", r.Alert)
			}
		}
	}
	for _, p := range loadDashboard(t).allPanels() {
		if !strings.Contains(readme, p.Title) {
			t.Errorf("README.md does not describe the panel %q", p.Title)
		}
	}
}

// TestPromtool runs promtool over the rules: syntax and the unit tests of
// envoy/prometheus-rules.test.yaml, which check each alert fires on the
// series it is meant for and not on others.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: install the Debian package prometheus (apt-get install -y prometheus) or run `make deps`")
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(rulesPath)},
		{"test", "rules", filepath.Base(rulesTestPath)},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(rulesPath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
