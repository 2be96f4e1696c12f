// Package promqltest reads the PromQL that tollgate's Grafana dashboard and
// Prometheus rules ship with, for tests that check every metric they query
// exists: the telemetry package's (against what a Telemetry exposes) and the
// end-to-end suite's (against /metrics after real traffic).
package promqltest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Queries returns every PromQL expression of a Grafana dashboard (its
// panels' targets, rows included, and the metric of each label_values
// variable) and of a Prometheus rules file, keyed by where it is, and the
// names the rules record (which Prometheus makes, not tollgate).
func Queries(dashboardJSON, rulesYAML []byte) (exprs map[string]string, recorded map[string]bool, err error) {
	var dash struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(dashboardJSON, &dash); err != nil {
		return nil, nil, fmt.Errorf("dashboard: %w", err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Record, Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(rulesYAML, &rules); err != nil {
		return nil, nil, fmt.Errorf("rules: %w", err)
	}
	exprs, recorded = map[string]string{}, map[string]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				exprs["dashboard panel "+p.Title+" "+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		q, _ := v.Query.(map[string]any)
		if s, ok := q["query"].(string); ok {
			if m := labelValuesRE.FindStringSubmatch(s); m != nil {
				exprs["dashboard variable "+v.Name] = m[1]
			}
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			exprs["rule "+r.Record+r.Alert] = r.Expr
		}
	}
	return exprs, recorded, nil
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

var labelValuesRE = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// keywords are the words of PromQL that are not metric names when they are
// not followed by a parenthesis; aggregations may be followed by a grouping
// before their parenthesis (sum by (le) (...)); groupings take a
// parenthesized list of label names.
const (
	keywords     = " and or unless bool offset by without on ignoring group_left group_right inf nan atan2 "
	aggregations = " sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio "
	groupings    = " by without on ignoring group_left group_right "
)

func is(list, word string) bool { return strings.Contains(list, " "+word+" ") }

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// MetricNames returns the metric names a PromQL expression selects, in
// order: the identifiers that are not functions, keywords, label names of
// matchers or groupings, durations or numbers. Grafana variables ($x,
// ${x}) are skipped.
func MetricNames(expr string) []string {
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
			for k < len(expr) && strings.IndexByte(" \t\r\n", expr[k]) >= 0 {
				k++
			}
			paren := k < len(expr) && expr[k] == '('
			i = j
			switch {
			case paren && is(groupings, word):
				i = skipTo(expr, k, ')')
			case paren, is(keywords, word), is(aggregations, word):
				// A function or an aggregation, or PromQL's own word.
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
