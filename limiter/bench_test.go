package limiter

import (
	"net/netip"
	"testing"

	"github.com/tollgate-ai/tollgate/ledger"
)

// benchConfig has ten rules of the kinds a deployment combines; the
// benchmark request matches eight of them, with nine windows.
const benchConfig = `
token_ratelimit:
  - rule_name: per_key
    rule_items:
      - limit_by_per_header: x-api-key
        limit_keys: [{key: "*", token_per_minute: 100000}]
  - rule_name: per_consumer
    rule_items:
      - limit_by_consumer: ""
        limit_keys: [{key: partner, token_per_minute: 1000000}]
      - limit_by_per_consumer: ""
        limit_keys:
          - {key: "regexp:^batch-", token_per_hour: 5000000}
          - {key: "*", token_per_minute: 50000, token_per_day: 5000000, token_type: input}
  - rule_name: gpt4_output
    match: {model: "regexp:^gpt-4"}
    rule_items:
      - limit_by_per_consumer: ""
        limit_keys: [{key: "*", token_per_minute: 20000, token_type: output}]
  - rule_name: per_model
    rule_items:
      - limit_by_per_model: ""
        limit_keys: [{key: "*", token_per_minute: 2000000}]
  - rule_name: embeddings
    match: {path_prefix: /v1/embeddings}
    global_threshold: {token_per_minute: 1000000}
  - rule_name: site
    global_threshold: {token_per_hour: 50000000}
  - rule_name: team_header
    rule_items:
      - limit_by_header: x-team
        limit_keys: [{key: research, token_per_day: 10000000}]
request_ratelimit:
  - rule_name: rpm
    rule_items:
      - limit_by_consumer: ""
        limit_keys: [{key: team-a, query_per_minute: 600}]
  - rule_name: per_ip
    rule_items:
      - limit_by_per_ip: from-remote-addr
        limit_keys:
          - {key: 10.0.0.0/8, query_per_second: 100}
          - {key: "*", query_per_second: 10}
  - rule_name: by_param
    rule_items:
      - limit_by_per_param: apikey
        limit_keys: [{key: "regexp:^k-", query_per_second: 5}]
`

func benchRequest() *Request {
	headers := map[string]string{"x-api-key": "sk-proj-0123456789abcdef0123456789abcdef", "x-team": "research"}
	return &Request{
		Consumer: "team-a",
		Model:    "gpt-4o-mini",
		Path:     "/v1/chat/completions",
		Host:     "llm.example.com",
		IP:       netip.MustParseAddr("10.20.30.40"),
		Header: func(name string) (string, bool) {
			v, ok := headers[name]
			return v, ok
		},
		Query:  func(string) (string, bool) { return "", false },
		Cookie: func(string) (string, bool) { return "", false },
	}
}

func BenchmarkMatch10Rules(b *testing.B) {
	rules := compileYAML(b, benchConfig)
	r := benchRequest()
	dst := make([]ledger.Window, 0, 32)
	if n := len(rules.Match(r, dst)); n != 9 {
		b.Fatalf("want 9 windows, got %d", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		dst = rules.Match(r, dst[:0])
	}
}

// BenchmarkMatchPrecomputed matches rules whose keys are all built at
// Compile time (exact keys, shared patterns, global thresholds).
func BenchmarkMatchPrecomputed(b *testing.B) {
	rules := compileYAML(b, `
token_ratelimit:
  - rule_name: a
    global_threshold: {token_per_minute: 1, token_per_hour: 2}
  - rule_name: b
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: team-a, token_per_minute: 1}]}]
  - rule_name: c
    rule_items: [{limit_by_header: x-team, limit_keys: [{key: "regexp:^res", token_per_day: 1}]}]
`)
	r := benchRequest()
	dst := make([]ledger.Window, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		dst = rules.Match(r, dst[:0])
	}
}

func BenchmarkNeedsTokens10Rules(b *testing.B) {
	rules := compileYAML(b, benchConfig)
	r := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		if !rules.NeedsTokens(r) {
			b.Fatal("token windows apply")
		}
	}
}

func BenchmarkCompile10Rules(b *testing.B) {
	c := decodeYAML(b, benchConfig)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(c); err != nil {
			b.Fatal(err)
		}
	}
}
