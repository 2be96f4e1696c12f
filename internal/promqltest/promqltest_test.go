package promqltest

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`rate(tollgate_tokens_total[5m])`, []string{"tollgate_tokens_total"}},
		{`sum by (consumer, model) (rate(tollgate_tokens_total{type=~"input|output",consumer=~"$consumer"}[$__rate_interval])) * 60`, []string{"tollgate_tokens_total"}},
		{`histogram_quantile(0.99, sum by (le, op) (rate(tollgate_store_duration_seconds_bucket[5m]))) > 0.05`, []string{"tollgate_store_duration_seconds_bucket"}},
		{"a:b:rate5m > 3 * avg_over_time(a:b:rate5m[1d])\nand a:b:rate5m > 1e3", []string{"a:b:rate5m", "a:b:rate5m", "a:b:rate5m"}},
		{`x / on (provider) group_left(team) y unless z offset 5m`, []string{"x", "y", "z"}},
		{`sum(rate(x{a="}"}[5m])) without (instance)`, []string{"x"}},
		{`predict_linear(q{c!="other"}[1h], 4 * 3600) < 0 and q > 0`, []string{"q", "q"}},
		{`topk(20, sum by (c) (increase(m_total[$__range])))`, []string{"m_total"}},
		{`${ds} + up`, []string{"up"}},
		{`sum by (consumer) (rate(tollgate_tokens_total{type=~"input|output"}[5m]))`, []string{"tollgate_tokens_total"}},
		{`histogram_quantile(0.99, sum by (le, op) (rate(tollgate_store_duration_seconds_bucket[$__rate_interval])))`, []string{"tollgate_store_duration_seconds_bucket"}},
		{"consumer:tollgate_tokens:rate5m\n  > 3 * avg_over_time(consumer:tollgate_tokens:rate5m[1d])\nand consumer:tollgate_tokens:rate5m > 10",
			[]string{"consumer:tollgate_tokens:rate5m", "consumer:tollgate_tokens:rate5m", "consumer:tollgate_tokens:rate5m"}},
		{`a_total / on (provider) group_left(x) sum without (le) (b{c="}"}) offset 5m`, []string{"a_total", "b"}},
		{`sum(increase(x_total{consumer=~"${consumer:regex}"}[$__range])) unless y_total == bool 1`, []string{"x_total", "y_total"}},
		{`topk(20, sum by (consumer) (z))`, []string{"z"}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			if got := MetricNames(tc.expr); !slices.Equal(got, tc.want) {
				t.Errorf("MetricNames = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestQueriesOfShippedFiles reads the dashboard and rules tollgate ships:
// panels, variables and rules all found, each with a metric name.
func TestQueriesOfShippedFiles(t *testing.T) {
	dash, err := os.ReadFile("../../envoy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("../../envoy/prometheus-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exprs, recorded, err := Queries(dash, rules)
	if err != nil {
		t.Fatal(err)
	}
	var panels, variables, rulesSeen int
	for where, e := range exprs {
		switch {
		case strings.HasPrefix(where, "dashboard panel "):
			panels++
		case strings.HasPrefix(where, "dashboard variable "):
			variables++
		case strings.HasPrefix(where, "rule "):
			rulesSeen++
		}
		if len(MetricNames(e)) == 0 {
			t.Errorf("%s: no metric name in %q", where, e)
		}
	}
	if panels < 10 || variables == 0 || rulesSeen < 5 || len(recorded) == 0 {
		t.Errorf("found %d panel queries, %d variables, %d rules, %d recorded names", panels, variables, rulesSeen, len(recorded))
	}
	if _, _, err := Queries([]byte("{"), rules); err == nil {
		t.Error("a broken dashboard must be an error")
	}
}
