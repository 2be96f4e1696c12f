package limiter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/ledger"
)

// FuzzConfig feeds arbitrary YAML through Validate and Compile, and matches
// requests carrying an arbitrary value against whatever compiled.
func FuzzConfig(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "s3cr3t value")
	}
	f.Add(keysConfig, "10.1.2.3")
	f.Add("token_ratelimit: [{rule_name: a, rule_items: [{limit_by_per_ip: from-header-x, limit_keys: [{key: '::/0', token_per_day: 1}]}]}]", "[::1]:80")
	f.Add("request_ratelimit: [{rule_name: x, rule_items: [{limit_by_consumer: , limit_keys: [{key: 'a{b}', query_per_second: 1}]}]}]", "a{b}")
	f.Add("token_ratelimit: [{rule_name: a, match: {host: '*.x', model: 'regexp:.'}, global_threshold: {token_per_minute: -1}}]", "")
	f.Add("token_ratelimit: {}", "")
	f.Add("[1, 2", "")

	f.Fuzz(func(t *testing.T, doc, val string) {
		var c Config
		if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
			return
		}
		verr := c.Validate("")
		rules, cerr := Compile(c)
		if (verr == nil) != (cerr == nil) {
			t.Fatalf("Validate says %v, Compile says %v", verr, cerr)
		}
		for _, p := range problemsOf(verr) {
			if !strings.HasPrefix(p, "token_ratelimit[") && !strings.HasPrefix(p, "request_ratelimit[") {
				t.Fatalf("problem without a field path: %q", p)
			}
		}
		if cerr != nil {
			return
		}
		attrs := map[string]string{}
		for _, it := range append(c.TokenRules, c.RequestRules...) {
			for _, item := range it.RuleItems {
				for _, name := range []*string{item.LimitByHeader, item.LimitByPerHeader, item.LimitByPerIP} {
					if name != nil {
						attrs["h:"+strings.ToLower(strings.TrimPrefix(*name, "from-header-"))] = val
					}
				}
				for _, name := range []*string{item.LimitByParam, item.LimitByPerParam} {
					if name != nil {
						attrs["q:"+*name] = val
					}
				}
				for _, name := range []*string{item.LimitByCookie, item.LimitByPerCookie} {
					if name != nil {
						attrs["c:"+*name] = val
					}
				}
			}
		}
		for _, r := range []req{
			{consumer: "team-a", model: val, path: "/v1/chat/completions", host: "api.x", ip: "10.1.2.3", attrs: attrs},
			{consumer: val, model: "gpt-4o", path: val, host: val, route: val, ip: "2001:db8::1", attrs: attrs},
		} {
			checkWindows(t, rules, r.build(), val, r.consumer != val)
		}
	})
}

func checkWindows(t *testing.T, rules *Rules, r *Request, val string, secret bool) {
	ws := rules.Match(r, nil)
	tokens := false
	for i := range ws {
		w := &ws[i]
		if !strings.HasPrefix(w.Key, "rl:{") || strings.Count(w.Key, "{") != 1 || strings.Count(w.Key, "}") != 1 {
			t.Fatalf("key %q does not hold exactly one hash tag", w.Key)
		}
		if secret && len(val) >= 6 && strings.Contains(val, " ") && strings.Contains(w.Key, val) {
			t.Fatalf("key %q holds the request value %q", w.Key, val)
		}
		if w.Limit <= 0 || w.Size <= 0 || w.Rule == "" {
			t.Fatalf("bad window %+v", *w)
		}
		if rej := rules.Rejection(w); rej.Code < 200 || rej.Code > 599 || rej.Message == "" {
			t.Fatalf("bad rejection %+v", rej)
		}
		tokens = tokens || w.Unit == ledger.Tokens
	}
	if rules.NeedsTokens(r) != tokens {
		t.Fatalf("NeedsTokens = %v but Match gave token windows = %v", !tokens, tokens)
	}
}
