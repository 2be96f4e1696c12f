package limiter

import (
	"slices"
	"strings"
	"testing"
)

type matchCase struct {
	name string
	req  req
	want []string
}

func runMatchCases(t *testing.T, config string, cases []matchCase) {
	t.Helper()
	rules := compileYAML(t, config)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := describe(rules.Match(tc.req.build(), nil))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Match = %q\nwant    %q", got, tc.want)
			}
		})
	}
}

func TestMatchEveryLimitByKind(t *testing.T) {
	const config = `
token_ratelimit:
  - rule_name: hdr
    rule_items:
      - limit_by_header: X-Team
        limit_keys: [{key: blue, token_per_minute: 10}]
  - rule_name: perhdr
    rule_items:
      - limit_by_per_header: x-api-key
        limit_keys: [{key: "*", token_per_minute: 11}]
  - rule_name: param
    rule_items:
      - limit_by_param: apikey
        limit_keys: [{key: k1, token_per_minute: 12}]
  - rule_name: perparam
    rule_items:
      - limit_by_per_param: apikey
        limit_keys: [{key: "*", token_per_minute: 13}]
  - rule_name: cookie
    rule_items:
      - limit_by_cookie: plan
        limit_keys: [{key: free, token_per_minute: 14}]
  - rule_name: percookie
    rule_items:
      - limit_by_per_cookie: session
        limit_keys: [{key: "*", token_per_minute: 15}]
  - rule_name: consumer
    rule_items:
      - limit_by_consumer: ''
        limit_keys: [{key: team-a, token_per_minute: 16}]
  - rule_name: perconsumer
    rule_items:
      - limit_by_per_consumer: ''
        limit_keys: [{key: "*", token_per_minute: 17}]
  - rule_name: model
    rule_items:
      - limit_by_model: ''
        limit_keys: [{key: gpt-4o, token_per_minute: 18}]
  - rule_name: permodel
    rule_items:
      - limit_by_per_model: ''
        limit_keys: [{key: "*", token_per_minute: 19}]
  - rule_name: perip
    rule_items:
      - limit_by_per_ip: from-remote-addr
        limit_keys: [{key: 10.0.0.0/8, token_per_minute: 20}]
`
	runMatchCases(t, config, []matchCase{
		{"nothing present", req{}, nil},
		{"header name is case-insensitive in config", req{attrs: map[string]string{"h:x-team": "blue"}},
			[]string{"hdr: tokens per minute <= 10"}},
		{"header value not a key", req{attrs: map[string]string{"h:x-team": "red"}}, nil},
		{"per header", req{attrs: map[string]string{"h:x-api-key": "sk-1"}},
			[]string{"perhdr: tokens per minute <= 11"}},
		{"empty header value matches nothing", req{attrs: map[string]string{"h:x-api-key": ""}}, nil},
		{"param", req{attrs: map[string]string{"q:apikey": "k1"}},
			[]string{"param: tokens per minute <= 12", "perparam: tokens per minute <= 13"}},
		{"cookie", req{attrs: map[string]string{"c:plan": "free"}}, []string{"cookie: tokens per minute <= 14"}},
		{"per cookie", req{attrs: map[string]string{"c:session": "s1"}}, []string{"percookie: tokens per minute <= 15"}},
		{"consumer", req{consumer: "team-a"},
			[]string{"consumer: tokens per minute <= 16", "perconsumer: tokens per minute <= 17"}},
		{"other consumer", req{consumer: "team-b"}, []string{"perconsumer: tokens per minute <= 17"}},
		{"model", req{model: "gpt-4o"},
			[]string{"model: tokens per minute <= 18", "permodel: tokens per minute <= 19"}},
		{"ip inside", req{ip: "10.1.2.3"}, []string{"perip: tokens per minute <= 20"}},
		{"ip outside", req{ip: "192.168.1.1"}, nil},
	})
}

func TestMatchSharedVersusPerValueCounters(t *testing.T) {
	rules := compileYAML(t, `
token_ratelimit:
  - rule_name: shared
    rule_items:
      - limit_by_header: x-api-key
        limit_keys: [{key: "regexp:^sk-", token_per_minute: 100}]
  - rule_name: per
    rule_items:
      - limit_by_per_header: x-api-key
        limit_keys: [{key: "regexp:^sk-", token_per_minute: 100}]
  - rule_name: sharedall
    rule_items:
      - limit_by_consumer: ''
        limit_keys: [{key: "*", token_per_minute: 100}]
  - rule_name: perall
    rule_items:
      - limit_by_per_consumer: ''
        limit_keys: [{key: "*", token_per_minute: 100}]
`)
	a := rules.Match(req{consumer: "a", attrs: map[string]string{"h:x-api-key": "sk-aaa"}}.build(), nil)
	b := rules.Match(req{consumer: "b", attrs: map[string]string{"h:x-api-key": "sk-bbb"}}.build(), nil)
	a2 := rules.Match(req{consumer: "a", attrs: map[string]string{"h:x-api-key": "sk-aaa"}}.build(), nil)
	if len(a) != 4 || len(b) != 4 {
		t.Fatalf("want 4 windows each, got %q and %q", keys(a), keys(b))
	}
	for i, want := range []bool{true, false, true, false} {
		if same := a[i].Key == b[i].Key; same != want {
			t.Errorf("rule %s: values sk-aaa and sk-bbb share a counter = %v, want %v (%q vs %q)", a[i].Rule, same, want, a[i].Key, b[i].Key)
		}
		if a[i].Key != a2[i].Key {
			t.Errorf("rule %s: the same value got two counters: %q and %q", a[i].Rule, a[i].Key, a2[i].Key)
		}
	}
}

func TestMatchPatterns(t *testing.T) {
	runMatchCases(t, `
token_ratelimit:
  - rule_name: r
    rule_items:
      - limit_by_per_header: x-key
        limit_keys:
          - {key: vip, token_per_minute: 1000}
          - {key: "regexp:^a", token_per_minute: 100}
          - {key: "regexp:z", token_per_minute: 50}
          - {key: "*", token_per_minute: 10}
`, []matchCase{
		{"exact key first", req{attrs: map[string]string{"h:x-key": "vip"}}, []string{"r: tokens per minute <= 1000"}},
		{"anchored regexp", req{attrs: map[string]string{"h:x-key": "abc"}}, []string{"r: tokens per minute <= 100"}},
		{"regexp is unanchored", req{attrs: map[string]string{"h:x-key": "xyz"}}, []string{"r: tokens per minute <= 50"}},
		{"first match wins over later", req{attrs: map[string]string{"h:x-key": "az"}}, []string{"r: tokens per minute <= 100"}},
		{"star catches the rest", req{attrs: map[string]string{"h:x-key": "vipx"}}, []string{"r: tokens per minute <= 10"}},
	})
}

func TestMatchIP(t *testing.T) {
	runMatchCases(t, `
request_ratelimit:
  - rule_name: peer
    rule_items:
      - limit_by_per_ip: from-remote-addr
        limit_keys:
          - {key: 1.1.1.1, query_per_second: 1}
          - {key: 1.1.1.0/24, query_per_second: 2}
          - {key: "2001:db8::/32", query_per_second: 3}
          - {key: 0.0.0.0/0, query_per_second: 4}
  - rule_name: xff
    rule_items:
      - limit_by_per_ip: from-header-X-Forwarded-For
        limit_keys:
          - {key: "*", query_per_second: 5}
`, []matchCase{
		{"exact v4", req{ip: "1.1.1.1"}, []string{"peer: requests per second <= 1"}},
		{"v4 prefix", req{ip: "1.1.1.7"}, []string{"peer: requests per second <= 2"}},
		{"v4-mapped v6 peer matches v4 keys", req{ip: "::ffff:1.1.1.7"}, []string{"peer: requests per second <= 2"}},
		{"v6 prefix", req{ip: "2001:db8::1"}, []string{"peer: requests per second <= 3"}},
		{"v4 catch-all does not match v6", req{ip: "2001:db9::1"}, nil},
		{"v4 catch-all", req{ip: "8.8.8.8"}, []string{"peer: requests per second <= 4"}},
		{"first forwarded address", req{attrs: map[string]string{"h:x-forwarded-for": " 9.9.9.9, 1.1.1.1"}},
			[]string{"xff: requests per second <= 5"}},
		{"forwarded address with port", req{attrs: map[string]string{"h:x-forwarded-for": "[2001:db8::5]:443"}},
			[]string{"xff: requests per second <= 5"}},
		{"forwarded garbage", req{attrs: map[string]string{"h:x-forwarded-for": "unknown"}}, nil},
	})
	rules := compileYAML(t, `
request_ratelimit:
  - rule_name: xff
    rule_items:
      - limit_by_per_ip: from-header-x-forwarded-for
        limit_keys: [{key: "*", query_per_second: 5}]
`)
	k := func(h string) string {
		ws := rules.Match(req{attrs: map[string]string{"h:x-forwarded-for": h}}.build(), nil)
		if len(ws) != 1 {
			t.Fatalf("%q: got %d windows", h, len(ws))
		}
		return ws[0].Key
	}
	if k("9.9.9.9") != k("9.9.9.9:1234, 10.0.0.1") || k("9.9.9.9") != k("::ffff:9.9.9.9") {
		t.Error("one client address got several counters")
	}
	if k("9.9.9.9") == k("9.9.9.8") {
		t.Error("two client addresses share a counter")
	}
}

func TestMatchFirstItemOfRuleAllRules(t *testing.T) {
	runMatchCases(t, `
token_ratelimit:
  - rule_name: tiers
    rule_items:
      - limit_by_consumer: ''
        limit_keys: [{key: vip, token_per_minute: 1000000}]
      - limit_by_per_header: x-api-key
        limit_keys: [{key: "*", token_per_minute: 1000}]
      - limit_by_per_consumer: ''
        limit_keys: [{key: "*", token_per_minute: 500}]
    global_threshold: {token_per_day: 9000000}
  - rule_name: input
    rule_items:
      - limit_by_per_consumer: ''
        limit_keys: [{key: "*", token_per_minute: 300, token_per_hour: 3000, token_type: input}]
`, []matchCase{
		{"first item wins", req{consumer: "vip", attrs: map[string]string{"h:x-api-key": "k"}}, []string{
			"tiers: tokens per day <= 9000000",
			"tiers: tokens per minute <= 1000000",
			"input: input tokens per minute <= 300",
			"input: input tokens per hour <= 3000",
		}},
		{"item without a matching key is skipped", req{consumer: "bob", attrs: map[string]string{"h:x-api-key": "k"}}, []string{
			"tiers: tokens per day <= 9000000",
			"tiers: tokens per minute <= 1000",
			"input: input tokens per minute <= 300",
			"input: input tokens per hour <= 3000",
		}},
		{"item without a value is skipped", req{consumer: "bob"}, []string{
			"tiers: tokens per day <= 9000000",
			"tiers: tokens per minute <= 500",
			"input: input tokens per minute <= 300",
			"input: input tokens per hour <= 3000",
		}},
		{"global applies alone", req{}, []string{"tiers: tokens per day <= 9000000"}},
	})
}

func TestMatchWindowsAndUnits(t *testing.T) {
	runMatchCases(t, `
token_ratelimit:
  - rule_name: all4
    rule_items:
      - limit_by_per_consumer: ''
        limit_keys:
          - {key: "*", token_per_day: 4, token_per_second: 1, token_per_hour: 3, token_per_minute: 2, token_type: output}
  - rule_name: reqs
    rule_items:
      - limit_by_per_consumer: ''
        limit_keys: [{key: "*", limit_type: request, token_per_minute: 60}]
request_ratelimit:
  - rule_name: rpm
    rule_items:
      - limit_by_consumer: ''
        limit_keys: [{key: team-a, query_per_minute: 600, query_per_day: 10000}]
`, []matchCase{
		{"every window in size order", req{consumer: "team-a"}, []string{
			"all4: output tokens per second <= 1",
			"all4: output tokens per minute <= 2",
			"all4: output tokens per hour <= 3",
			"all4: output tokens per day <= 4",
			"reqs: requests per minute <= 60",
			"rpm: requests per minute <= 600",
			"rpm: requests per day <= 10000",
		}},
	})
}

func TestMatchScope(t *testing.T) {
	runMatchCases(t, `
token_ratelimit:
  - rule_name: path
    match: {path_prefix: /v1/chat/}
    global_threshold: {token_per_minute: 1}
  - rule_name: host
    match: {host: API.example.com}
    global_threshold: {token_per_minute: 2}
  - rule_name: subdomains
    match: {host: "*.example.com"}
    global_threshold: {token_per_minute: 3}
  - rule_name: route
    match: {route: openai}
    global_threshold: {token_per_minute: 4}
  - rule_name: gpt4
    match: {model: "regexp:^gpt-4"}
    global_threshold: {token_per_minute: 5}
  - rule_name: mini
    match: {model: gpt-4o-mini, path_prefix: /v1/}
    rule_items:
      - limit_by_per_consumer: ''
        limit_keys: [{key: "*", token_per_minute: 6}]
`, []matchCase{
		{"nothing in scope", req{path: "/v2/x", host: "example.com", consumer: "a"}, nil},
		{"path prefix", req{path: "/v1/chat/completions?x=1"}, []string{"path: tokens per minute <= 1"}},
		{"host with port and case", req{host: "api.EXAMPLE.com:8443"}, []string{
			"host: tokens per minute <= 2", "subdomains: tokens per minute <= 3"}},
		{"wildcard is not the apex", req{host: "example.com"}, nil},
		{"wildcard subdomain", req{host: "eu.example.com"}, []string{"subdomains: tokens per minute <= 3"}},
		{"route", req{route: "openai"}, []string{"route: tokens per minute <= 4"}},
		{"model regexp", req{model: "gpt-4.1"}, []string{"gpt4: tokens per minute <= 5"}},
		{"every scope field must match", req{model: "gpt-4o-mini", path: "/v2/", consumer: "a"}, []string{"gpt4: tokens per minute <= 5"}},
		{"model and path", req{model: "gpt-4o-mini", path: "/v1/x", consumer: "a"}, []string{
			"gpt4: tokens per minute <= 5", "mini: tokens per minute <= 6"}},
		{"no model", req{path: "/v1/x", consumer: "a"}, nil},
	})
}

func TestNeedsTokens(t *testing.T) {
	rules := compileYAML(t, `
token_ratelimit:
  - rule_name: chat
    match: {path_prefix: /v1/chat/}
    rule_items:
      - limit_by_per_consumer: ''
        limit_keys:
          - {key: counted-by-requests, limit_type: request, token_per_minute: 5}
          - {key: "*", token_per_minute: 100}
  - rule_name: embeddings
    match: {path_prefix: /v1/embeddings}
    global_threshold: {token_per_minute: 100}
request_ratelimit:
  - rule_name: rpm
    global_threshold: {query_per_minute: 100}
`)
	for _, tc := range []struct {
		name string
		req  req
		want bool
	}{
		{"token key applies", req{path: "/v1/chat/completions", consumer: "a"}, true},
		{"only a request-type key applies", req{path: "/v1/chat/completions", consumer: "counted-by-requests"}, false},
		{"no consumer, so no token key", req{path: "/v1/chat/completions"}, false},
		{"global token threshold", req{path: "/v1/embeddings"}, true},
		{"only request rules", req{path: "/v1/models"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req.build()
			if got := rules.NeedsTokens(r); got != tc.want {
				t.Errorf("NeedsTokens = %v, want %v", got, tc.want)
			}
			hasToken := false
			for _, w := range rules.Match(r, nil) {
				hasToken = hasToken || w.Unit == 1
			}
			if hasToken != tc.want {
				t.Errorf("Match has token windows = %v, NeedsTokens disagrees", hasToken)
			}
		})
	}
}

func TestRejection(t *testing.T) {
	rules := compileYAML(t, `
token_ratelimit:
  - rule_name: default_rule
    global_threshold: {token_per_minute: 100000}
  - rule_name: custom
    global_threshold: {token_per_hour: 5}
    rejected_code: 200
    rejected_msg: '{"code":-1,"msg":"slow down"}'
request_ratelimit:
  - rule_name: code-only
    global_threshold: {query_per_second: 2}
    rejected_code: 503
`)
	ws := rules.Match(&Request{}, nil)
	if len(ws) != 3 {
		t.Fatalf("got %d windows", len(ws))
	}
	def := rules.Rejection(&ws[0])
	if def.Code != 429 || def.Custom || !strings.Contains(def.Message, "default_rule") ||
		!strings.Contains(def.Message, "tokens per minute") || !strings.Contains(def.Message, "100000") {
		t.Errorf("default rejection = %+v", def)
	}
	if got := rules.Rejection(&ws[1]); got != (Rejection{Code: 200, Message: `{"code":-1,"msg":"slow down"}`, Custom: true}) {
		t.Errorf("custom rejection = %+v", got)
	}
	stranger := ws[0]
	stranger.Rule = "not-a-rule"
	if got := rules.Rejection(&stranger); got.Code != 429 || got.Custom || !strings.Contains(got.Message, "not-a-rule") {
		t.Errorf("rejection for a window of no known rule = %+v", got)
	}
	if got := rules.Rejection(&ws[2]); got.Code != 503 || got.Custom || !strings.Contains(got.Message, "requests per second") {
		t.Errorf("code-only rejection = %+v", got)
	}
}

func TestEmpty(t *testing.T) {
	var nilRules *Rules
	if !nilRules.Empty() || nilRules.NeedsTokens(&Request{}) || len(nilRules.Match(&Request{}, nil)) != 0 {
		t.Error("nil Rules must behave as no rules")
	}
	empty, err := Compile(Config{})
	if err != nil || !empty.Empty() {
		t.Errorf("Compile(Config{}) = %v, %v; want empty rules", empty, err)
	}
	if compileYAML(t, "request_ratelimit: [{rule_name: a, global_threshold: {query_per_day: 1}}]").Empty() {
		t.Error("a rule makes Rules non-empty")
	}
}

func TestMatchAppendsToDst(t *testing.T) {
	rules := compileYAML(t, "request_ratelimit: [{rule_name: a, global_threshold: {query_per_day: 1}}]")
	dst := rules.Match(&Request{}, nil)
	dst = rules.Match(&Request{}, dst)
	if len(dst) != 2 || dst[0] != dst[1] {
		t.Errorf("Match must append: %v", dst)
	}
}
