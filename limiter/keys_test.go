package limiter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate-ai/tollgate/ledger"
)

const keysConfig = `
token_ratelimit:
  - rule_name: default_rule
    rule_items:
      - limit_by_per_header: x-api-key
        limit_keys: [{key: "*", token_per_minute: 100000}]
  - rule_name: per-consumer
    rule_items:
      - limit_by_per_consumer: ''
        limit_keys: [{key: "*", token_per_minute: 1000, token_per_day: 50000, token_type: input}]
  - rule_name: global
    global_threshold: {token_per_hour: 5000000}
request_ratelimit:
  - rule_name: rpm
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: team-a, query_per_minute: 600}]}]
  - rule_name: ip
    rule_items: [{limit_by_per_ip: from-remote-addr, limit_keys: [{key: "*", query_per_second: 5}]}]
  - rule_name: shared
    rule_items: [{limit_by_param: apikey, limit_keys: [{key: "regexp:^a", query_per_second: 5}]}]
`

var keysRequest = req{consumer: "team-a", ip: "192.0.2.1", attrs: map[string]string{"h:x-api-key": "sk-test-123", "q:apikey": "abc"}}

// TestKeysAreStable pins the keys: a change would silently reset every
// counter of a running deployment when it is upgraded.
func TestKeysAreStable(t *testing.T) {
	got := keys(compileYAML(t, keysConfig).Match(keysRequest.build(), nil))
	want := []string{
		"rl:{r:default_rule:12a021fa37bf77f843a2bd63a475cf38}:tokens:default_rule:header=x-api-key:1m",
		"rl:{c:team-a}:input_tokens:per-consumer:consumer:1m",
		"rl:{c:team-a}:input_tokens:per-consumer:consumer:1d",
		"rl:{g:global}:tokens:global:global:1h",
		"rl:{c:team-a}:requests:rpm:consumer:1m",
		"rl:{r:ip:3aafe6ace1cd1991c08d3650c89f1085}:requests:ip:ip=remote:1s",
		"rl:{r:shared:6fc073b293e161e8900637b62fed3875}:requests:shared:param=apikey:1s",
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys changed:\n got %q\nwant %q", got, want)
	}
}

func TestKeyDigestIsTruncatedSHA256(t *testing.T) {
	digest := func(mode, source, v string) string {
		sum := sha256.Sum256([]byte("tollgate/rl\x00" + mode + source + "\x00" + v))
		return hex.EncodeToString(sum[:])[:32]
	}
	got := keys(compileYAML(t, keysConfig).Match(keysRequest.build(), nil))
	for _, want := range []string{
		"{r:default_rule:" + digest("v", "header=x-api-key", "sk-test-123") + "}",
		"{r:ip:" + digest("v", "ip=remote", "192.0.2.1") + "}",
		"{r:shared:" + digest("k", "param=apikey", "regexp:^a") + "}",
	} {
		found := false
		for _, k := range got {
			found = found || strings.Contains(k, want)
		}
		if !found {
			t.Errorf("no key holds tag %s in %q", want, got)
		}
	}
}

func TestKeysNeverHoldRawValues(t *testing.T) {
	const secret = "sk-live-7f3a9c"
	rules := compileYAML(t, fmt.Sprintf(`
token_ratelimit:
  - rule_name: a
    rule_items: [{limit_by_per_header: authorization, limit_keys: [{key: "*", token_per_minute: 1}]}]
  - rule_name: b
    rule_items: [{limit_by_header: authorization, limit_keys: [{key: "Bearer %[1]s", token_per_minute: 1}]}]
  - rule_name: c
    rule_items: [{limit_by_per_param: key, limit_keys: [{key: "regexp:^sk-", token_per_minute: 1}]}]
  - rule_name: d
    rule_items: [{limit_by_param: key, limit_keys: [{key: "%[1]s", token_per_minute: 1}]}]
  - rule_name: e
    rule_items: [{limit_by_per_cookie: session, limit_keys: [{key: "*", token_per_minute: 1}]}]
  - rule_name: f
    rule_items: [{limit_by_cookie: session, limit_keys: [{key: "%[1]s", token_per_minute: 1}]}]
  - rule_name: g
    rule_items: [{limit_by_per_model: "", limit_keys: [{key: "*", token_per_minute: 1}]}]
  - rule_name: h
    rule_items: [{limit_by_per_ip: from-header-x-real-ip, limit_keys: [{key: "*", token_per_minute: 1}]}]
`, secret))
	ws := rules.Match(req{
		model: secret + "-model",
		attrs: map[string]string{
			"h:authorization": "Bearer " + secret, "q:key": secret, "c:session": secret, "h:x-real-ip": "203.0.113.77",
		},
	}.build(), nil)
	if len(ws) != 8 {
		t.Fatalf("want a window from each of 8 rules, got %q", describe(ws))
	}
	for _, w := range ws {
		if strings.Contains(w.Key, "7f3a9c") || strings.Contains(w.Key, "203.0.113") {
			t.Errorf("rule %s: key %q holds a raw request value", w.Rule, w.Key)
		}
	}
}

func TestKeysHoldOneHashTag(t *testing.T) {
	rules := compileYAML(t, `
token_ratelimit:
  - rule_name: cons
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: "team-a", token_per_minute: 1}]}]
  - rule_name: cons-pattern
    rule_items: [{limit_by_consumer: "", limit_keys: [{key: "regexp:^team", token_per_minute: 1}]}]
  - rule_name: per-cons
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 1, token_per_second: 1}]}]
  - rule_name: hdr
    rule_items: [{limit_by_per_header: x-k, limit_keys: [{key: "*", token_per_minute: 1, token_per_day: 3}]}]
  - rule_name: glob
    global_threshold: {token_per_minute: 1}
`)
	for _, consumer := range []string{"team-a", "weird{name}", "}{", "x}"} {
		ws := rules.Match(req{consumer: consumer, attrs: map[string]string{"h:x-k": "{v}"}}.build(), nil)
		for _, w := range ws {
			tag := tagOf(t, w.Key)
			var want string
			switch w.Rule {
			case "cons":
				want = "c:team-a"
			case "per-cons":
				want = strings.Trim(ConsumerTag(consumer), "{}")
			case "glob":
				want = "g:glob"
			default:
				if !strings.HasPrefix(tag, "r:"+w.Rule+":") {
					t.Errorf("rule %s: tag %q, want r:%s:<digest>", w.Rule, tag, w.Rule)
				}
				continue
			}
			if tag != want {
				t.Errorf("consumer %q rule %s: tag %q, want %q", consumer, w.Rule, tag, want)
			}
		}
	}
	if got := ConsumerTag("team-a"); got != "{c:team-a}" {
		t.Errorf("ConsumerTag(team-a) = %q", got)
	}
	if a, b := ConsumerTag("a{b"), ConsumerTag("a}b"); a == b || strings.Count(a, "{") != 1 || strings.Count(a, "}") != 1 {
		t.Errorf("ConsumerTag of names with braces: %q, %q", a, b)
	}
}

func TestEveryWindowHasItsOwnKey(t *testing.T) {
	rules := compileYAML(t, `
token_ratelimit:
  - rule_name: total
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_second: 1, token_per_minute: 2, token_per_hour: 3, token_per_day: 4}]}]
  - rule_name: input
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 2, token_type: input}]}]
  - rule_name: output
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 2, token_type: output}]}]
  - rule_name: reqs
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", token_per_minute: 2, limit_type: request}]}]
    global_threshold: {token_per_minute: 5, token_per_day: 6}
request_ratelimit:
  - rule_name: rpm
    rule_items: [{limit_by_per_consumer: "", limit_keys: [{key: "*", query_per_minute: 2}]}]
`)
	ws := rules.Match(req{consumer: "a"}.build(), nil)
	if len(ws) != 10 {
		t.Fatalf("want 10 windows, got %q", describe(ws))
	}
	seen := map[string]string{}
	for _, w := range ws {
		if prev, dup := seen[w.Key]; dup {
			t.Errorf("%s and %s share key %q", prev, WindowName(&w), w.Key)
		}
		seen[w.Key] = w.Rule + " " + WindowName(&w)
	}
}

// TestKeysDependOnContentNotOrder checks that reordering rules, items or
// keys keeps every counter: keys name what they count, not positions.
func TestKeysDependOnContentNotOrder(t *testing.T) {
	a := compileYAML(t, `
token_ratelimit:
  - rule_name: one
    rule_items:
      - limit_by_per_header: x-a
        limit_keys: [{key: "regexp:^z", token_per_minute: 5}, {key: "*", token_per_minute: 1}]
  - rule_name: two
    global_threshold: {token_per_minute: 2}
`)
	b := compileYAML(t, `
token_ratelimit:
  - rule_name: two
    global_threshold: {token_per_minute: 2}
  - rule_name: one
    rule_items:
      - limit_by_per_param: unused
        limit_keys: [{key: "*", token_per_minute: 9}]
      - limit_by_per_header: x-a
        limit_keys: [{key: "*", token_per_minute: 1}]
`)
	r := req{attrs: map[string]string{"h:x-a": "v"}}.build()
	ka, kb := keys(a.Match(r, nil)), keys(b.Match(r, nil))
	slices.Sort(ka)
	slices.Sort(kb)
	if !slices.Equal(ka, kb) {
		t.Errorf("reordering changed keys:\n%q\n%q", ka, kb)
	}
}

func TestMatchConcurrently(t *testing.T) {
	rules := compileYAML(t, keysConfig)
	want := rules.Match(keysRequest.build(), nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var dst = make([]ledger.Window, 0, 16)
			for range 200 {
				dst = rules.Match(keysRequest.build(), dst[:0])
				if !slices.Equal(dst, want) {
					t.Error("concurrent Match gave different windows")
					return
				}
			}
		})
	}
	wg.Wait()
}
