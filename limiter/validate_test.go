package limiter

import (
	"errors"
	"strings"
	"testing"
)

// problemsOf returns the individual problems of a Validate error.
func problemsOf(err error) []string {
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range joined.Unwrap() {
		out = append(out, e.Error())
	}
	return out
}

func TestValidateReportsEachProblemWithItsPath(t *testing.T) {
	item := func(body string) string {
		return "token_ratelimit:\n  - rule_name: r\n    rule_items:\n      - " + body + "\n"
	}
	for _, tc := range []struct {
		name, config string
		want         []string // one entry per problem, each a substring of it
	}{
		{"rule_name missing", "token_ratelimit: [{global_threshold: {token_per_minute: 1}}]",
			[]string{"token_ratelimit[0]: rule_name is required"}},
		{"rule_name with a brace", "token_ratelimit: [{rule_name: 'a{b}', global_threshold: {token_per_minute: 1}}]",
			[]string{`token_ratelimit[0].rule_name: "a{b}": use at most 128 letters`}},
		{"rule_name too long", "token_ratelimit: [{rule_name: " + strings.Repeat("a", 129) + ", global_threshold: {token_per_minute: 1}}]",
			[]string{"token_ratelimit[0].rule_name:"}},
		{"duplicate rule_name across lists", `
token_ratelimit: [{rule_name: same, global_threshold: {token_per_minute: 1}}]
request_ratelimit: [{rule_name: same, global_threshold: {query_per_minute: 1}}]`,
			[]string{`request_ratelimit[0]: duplicate rule_name "same" (also token_ratelimit[0])`}},
		{"nothing to limit", "token_ratelimit: [{rule_name: r}]",
			[]string{"token_ratelimit[0]: set rule_items, global_threshold or both"}},
		{"empty rule_items", "token_ratelimit: [{rule_name: r, rule_items: []}]",
			[]string{"token_ratelimit[0]: set rule_items, global_threshold or both"}},
		{"rejected_code out of range", "token_ratelimit: [{rule_name: r, rejected_code: 99, global_threshold: {token_per_minute: 1}}]",
			[]string{"token_ratelimit[0].rejected_code: 99 is not an HTTP status"}},
		{"unknown rule field", "token_ratelimit: [{rule_name: r, rule_itmes: [], global_threshold: {token_per_minute: 1}}]",
			[]string{`token_ratelimit[0]: unknown field "rule_itmes"`}},
		{"unknown global_threshold field", "token_ratelimit: [{rule_name: r, global_threshold: {token_per_minute: 1, tokens_per_hour: 5}}]",
			[]string{`token_ratelimit[0].global_threshold: unknown field "tokens_per_hour"`}},
		{"no window in global_threshold", "request_ratelimit: [{rule_name: r, global_threshold: {}}]",
			[]string{"request_ratelimit[0].global_threshold: no window set: set at least one of query_per_second"}},
		{"match problems", `
token_ratelimit:
  - rule_name: r
    global_threshold: {token_per_minute: 1}
    match: {path_prefix: v1, host: "a*.b", model: "regexp:(", paht: /x}`,
			[]string{
				`token_ratelimit[0].match: unknown field "paht"`,
				`token_ratelimit[0].match.path_prefix: "v1" must start with '/'`,
				`token_ratelimit[0].match.host: "a*.b": want a host name`,
				`token_ratelimit[0].match.model: bad regexp "("`,
			}},
		{"no limit_by", item("limit_keys: [{key: a, token_per_minute: 1}]"),
			[]string{"token_ratelimit[0].rule_items[0]: set one limit_by_* field"}},
		{"two limit_by", item("{limit_by_header: a, limit_by_per_consumer: '', limit_keys: [{key: a, token_per_minute: 1}]}"),
			[]string{"token_ratelimit[0].rule_items[0]: only one limit_by_* field per item, found limit_by_header, limit_by_per_consumer"}},
		{"empty header name", item("{limit_by_per_header: '', limit_keys: [{key: '*', token_per_minute: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_by_per_header: "": want a non-empty name`}},
		{"param name with a space", item("{limit_by_param: 'api key', limit_keys: [{key: a, token_per_minute: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_by_param: "api key": want a non-empty name`}},
		{"cookie name with a brace", item("{limit_by_per_cookie: 'a}', limit_keys: [{key: '*', token_per_minute: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_by_per_cookie: "a}": want a non-empty name`}},
		{"per_ip source unknown", item("{limit_by_per_ip: x-forwarded-for, limit_keys: [{key: '*', token_per_minute: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_by_per_ip: "x-forwarded-for": want from-remote-addr or from-header-<header name>`}},
		{"per_ip header name empty", item("{limit_by_per_ip: from-header-, limit_keys: [{key: '*', token_per_minute: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_by_per_ip: "from-header-": want from-header-<header name>`}},
		{"unknown item field", item("{limit_by_consumer: '', limit_key: [], limit_keys: [{key: a, token_per_minute: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0]: unknown field "limit_key"`}},
		{"no limit_keys", item("{limit_by_consumer: ''}"),
			[]string{"token_ratelimit[0].rule_items[0]: limit_keys is empty"}},
		{"key missing", item("{limit_by_consumer: '', limit_keys: [{token_per_minute: 1}]}"),
			[]string{"token_ratelimit[0].rule_items[0].limit_keys[0]: key is required"}},
		{"bad regexp", item("{limit_by_per_header: x, limit_keys: [{key: 'regexp:a(b', token_per_minute: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_keys[0]: bad regexp "a(b"`}},
		{"ip key not an address", item("{limit_by_per_ip: from-remote-addr, limit_keys: [{key: 10.0.0/8, token_per_minute: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_keys[0]: key "10.0.0/8" is not an IP address or CIDR prefix`}},
		{"ip key is a regexp", item("{limit_by_per_ip: from-remote-addr, limit_keys: [{key: 'regexp:^10', token_per_minute: 1}]}"),
			[]string{`key "regexp:^10" is not an IP address or CIDR prefix`}},
		{"duplicate key", item("{limit_by_header: x, limit_keys: [{key: a, token_per_minute: 1}, {key: a, token_per_hour: 1}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_keys[1]: key "a": duplicate key: limit_keys[0] "a" has it already`}},
		{"key after star", item("{limit_by_per_header: x, limit_keys: [{key: '*', token_per_minute: 1}, {key: 'regexp:^a', token_per_minute: 2}]}"),
			[]string{`limit_keys[1]: key "regexp:^a": unreachable: limit_keys[0] "*" matches every value first`}},
		{"address inside an earlier prefix", item("{limit_by_per_ip: from-remote-addr, limit_keys: [{key: 1.1.1.0/24, token_per_minute: 1}, {key: 1.1.1.1, token_per_minute: 2}]}"),
			[]string{`limit_keys[1]: key "1.1.1.1": unreachable: limit_keys[0] "1.1.1.0/24" covers it and comes first`}},
		{"exact key matched by an earlier regexp", item("{limit_by_per_consumer: '', limit_keys: [{key: 'regexp:^team', token_per_minute: 1}, {key: team-a, token_per_minute: 2}]}"),
			[]string{`limit_keys[1]: key "team-a": unreachable: limit_keys[0] "regexp:^team" matches it first`}},
		{"unknown limit key field", item("{limit_by_consumer: '', limit_keys: [{key: a, token_per_minute: 1, token_tpye: input}]}"),
			[]string{`token_ratelimit[0].rule_items[0].limit_keys[0]: unknown field "token_tpye"`}},
		{"no window", item("{limit_by_consumer: '', limit_keys: [{key: a}]}"),
			[]string{"limit_keys[0]: no window set: set at least one of token_per_second, token_per_minute, token_per_hour, token_per_day"}},
		{"zero and negative", item("{limit_by_consumer: '', limit_keys: [{key: a, token_per_minute: 0, token_per_day: -5}]}"),
			[]string{"limit_keys[0]: token_per_minute must be > 0, got 0", "limit_keys[0]: token_per_day must be > 0, got -5"}},
		{"unknown token_type", item("{limit_by_consumer: '', limit_keys: [{key: a, token_per_minute: 1, token_type: prompt}]}"),
			[]string{`limit_keys[0]: unknown token_type "prompt" (want total, input or output)`}},
		{"unknown limit_type", item("{limit_by_consumer: '', limit_keys: [{key: a, token_per_minute: 1, limit_type: query}]}"),
			[]string{`limit_keys[0]: unknown limit_type "query" (want token or request)`}},
		{"token_type of a request window", item("{limit_by_consumer: '', limit_keys: [{key: a, token_per_minute: 1, limit_type: request, token_type: input}]}"),
			[]string{`limit_keys[0]: token_type "input" does not apply to limit_type request`}},
		{"query window in a token rule", item("{limit_by_consumer: '', limit_keys: [{key: a, query_per_minute: 1}]}"),
			[]string{"limit_keys[0]: query_per_minute is a request_ratelimit field; in token_ratelimit write token_per_minute with limit_type: request",
				"limit_keys[0]: no window set"}},
		{"token fields in a request rule", `
request_ratelimit:
  - rule_name: r
    rule_items:
      - limit_by_consumer: ''
        limit_keys: [{key: a, query_per_minute: 1, token_per_hour: 2, limit_type: request, token_type: input}]`,
			[]string{
				"request_ratelimit[0].rule_items[0].limit_keys[0]: limit_type is a token_ratelimit field",
				"request_ratelimit[0].rule_items[0].limit_keys[0]: token_type is a token_ratelimit field",
				"request_ratelimit[0].rule_items[0].limit_keys[0]: token_per_hour is a token_ratelimit field; request_ratelimit takes query_per_hour",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := decodeYAML(t, tc.config)
			got := problemsOf(c.Validate(""))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q\nwant it to contain %q", i, got[i], w)
				}
			}
			if _, err := Compile(c); err == nil {
				t.Error("Compile accepted a configuration Validate refused")
			}
		})
	}
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	c := decodeYAML(t, `
token_ratelimit:
  - rule_name: ok
    global_threshold: {token_per_minute: 1}
  - rule_name: ok
    rule_items:
      - limit_by_per_header: x-api-key
        limit_keys:
          - {key: "regexp:[", token_per_minute: 1}
          - {key: "*", token_per_minute: -1, token_type: both}
      - limit_by_per_ip: from-remote-addr
        limit_keys: [{key: not-an-ip, token_per_hour: 1}]
request_ratelimit:
  - rule_name: rpm
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: team-a}]}]
`)
	got := problemsOf(c.Validate("limits"))
	want := []string{
		`limits.token_ratelimit[1]: duplicate rule_name "ok" (also limits.token_ratelimit[0])`,
		`limits.token_ratelimit[1].rule_items[0].limit_keys[0]: bad regexp "["`,
		`limits.token_ratelimit[1].rule_items[0].limit_keys[1]: unknown token_type "both"`,
		`limits.token_ratelimit[1].rule_items[0].limit_keys[1]: token_per_minute must be > 0, got -1`,
		`limits.token_ratelimit[1].rule_items[1].limit_keys[0]: key "not-an-ip" is not an IP address or CIDR prefix`,
		`limits.request_ratelimit[0].rule_items[0].limit_keys[0]: no window set`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("no problem contains %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func TestValidateAcceptsGoodConfig(t *testing.T) {
	c := decodeYAML(t, `
token_ratelimit:
  - rule_name: default_rule
    rule_items:
      - limit_by_per_header: x-api-key
        limit_keys:
          - {key: "*", token_per_minute: 100000, token_type: total}
    rejected_code: 429
    rejected_msg: Too many tokens
    match: {path_prefix: /v1/, host: "", route: ""}
  - rule_name: global
    global_threshold: {token_per_hour: 5000000}
request_ratelimit:
  - rule_name: rpm
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: team-a, query_per_minute: 600}]}]
`)
	if err := c.Validate(""); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
