package telemetry

import (
	"slices"
	"testing"
)

// promQLKeywords are the words of PromQL that are not metric names when
// they are not followed by a parenthesis.
var promQLKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
}

// aggregations may be followed by a grouping before their parenthesis
// (sum by (le) (...)).
var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

// groupingKeywords take a parenthesized list of label names.
var groupingKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// metricNames returns the metric names a PromQL expression selects: the
// identifiers that are not functions, keywords, label names of matchers or
// groupings, durations or numbers. Grafana variables ($x, ${x}) are skipped.
func metricNames(expr string) []string {
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			i = skipTo(expr, i, '}')
		case c == '[':
			i = skipTo(expr, i, ']')
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipTo(expr, i, '}')
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\n' || expr[k] == '\t') {
				k++
			}
			i = j
			switch {
			case groupingKeywords[word] && k < len(expr) && expr[k] == '(':
				i = skipTo(expr, k, ')')
			case k < len(expr) && expr[k] == '(':
				// A function or an aggregation.
			case promQLKeywords[word], aggregations[word]:
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names
}

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		if s[i] == '\\' && q != '`' {
			i++
			continue
		}
		if s[i] == q {
			return i + 1
		}
	}
	return len(s)
}

// skipTo returns the index after the first end outside string literals.
func skipTo(s string, i int, end byte) int {
	for i++; i < len(s); {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i)
		case end:
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

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
	} {
		t.Run(tc.expr, func(t *testing.T) {
			if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
				t.Errorf("metricNames = %q, want %q", got, tc.want)
			}
		})
	}
}
