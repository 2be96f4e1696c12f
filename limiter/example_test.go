package limiter_test

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/limiter"
)

func ExampleRules_Match() {
	var c limiter.Config
	err := yaml.Unmarshal([]byte(`
token_ratelimit:
  - rule_name: per_consumer
    rule_items:
      - limit_by_consumer: ""
        limit_keys: [{key: partner, token_per_minute: 1000000}]
      - limit_by_per_consumer: ""
        limit_keys: [{key: "*", token_per_minute: 50000, token_per_day: 2000000}]
request_ratelimit:
  - rule_name: site
    global_threshold: {query_per_second: 500}
`), &c)
	if err != nil {
		panic(err)
	}
	rules, err := limiter.Compile(c)
	if err != nil {
		panic(err)
	}
	for _, w := range rules.Match(&limiter.Request{Consumer: "team-a"}, nil) {
		fmt.Printf("%s: %d %s\n", w.Key, w.Limit, limiter.WindowName(&w))
	}
	// Output:
	// rl:{c:team-a}:tokens:per_consumer:consumer:1m: 50000 tokens per minute
	// rl:{c:team-a}:tokens:per_consumer:consumer:1d: 2000000 tokens per day
	// rl:{g:site}:requests:site:global:1s: 500 requests per second
}
